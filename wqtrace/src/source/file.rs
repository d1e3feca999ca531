//! Reading events back from a recording file (format: [`crate::recording`]).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use wqtrace_common::Event;

use super::{
    EventSource, SessionMeta,
    filter::{EventFilter, FilterArgs},
};
use crate::recording::{Chunk, ChunkInfo, Header, Reader, Trailer};

/// A recording as an [`EventSource`]: batches are the file's chunks. Damage is reported as
/// warnings (see [`FileSource::take_warnings`]); events before and after it are delivered.
pub struct FileSource {
    path: PathBuf,
    reader: Reader<BufReader<File>>,
    /// Applied to every chunk read ([`FileSource::set_filter`]).
    filter: Option<EventFilter>,
}

impl FileSource {
    /// Opens `path` and checks its header. Errors read `PATH: why`, e.g.
    /// `trace.wqt: not a wqtrace recording (bad magic)`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let f = File::open(path).with_context(|| crate::text::path(path).to_string())?;
        let reader =
            Reader::new(BufReader::new(f)).with_context(|| crate::text::path(path).to_string())?;
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            filter: None,
        })
    }

    /// Opens `path` with the after-the-fact filters (nothing filtered when `args` is empty).
    pub fn open_filtered(path: &Path, args: &FilterArgs) -> anyhow::Result<Self> {
        let mut src = Self::open(path)?;
        if let Some(c) = &args.cgroup
            && src.reader.version() < 3
        {
            anyhow::bail!(
                "--cgroup {}: {} was recorded before events carried their cgroup (format {}); filter while recording (wqtrace record --cgroup PATH)",
                crate::text::path(c),
                crate::text::path(path),
                src.reader.version()
            );
        }
        let f = EventFilter::new(args, src.meta())?;
        src.set_filter(f);
        Ok(src)
    }

    /// The after-the-fact filters in force, for people (empty: none).
    pub fn filters_applied(&self) -> Vec<String> {
        self.filter
            .as_ref()
            .map(|f| f.describe())
            .unwrap_or_default()
    }

    /// From now on, only events `f` keeps are returned. Times given from the start are
    /// counted from the first event read, unless `f` was anchored already.
    pub fn set_filter(&mut self, f: EventFilter) {
        self.filter = (!f.is_empty()).then_some(f);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> &Header {
        self.reader.header()
    }

    /// Why this recording has no stacks to show, if it has none (made with `--stacks none`,
    /// or by a wqtrace before stacks).
    pub fn no_stacks_reason(&self) -> Option<String> {
        match self.header().stacks.as_deref() {
            Some("none") => Some("it was recorded with --stacks none".into()),
            Some(_) => None,
            None => Some(format!(
                "it was recorded by {} before stacks were recorded",
                match self.header().wqtrace_version.as_str() {
                    "" => "a wqtrace",
                    v => v,
                }
            )),
        }
    }

    /// The trailer, once the whole file was read, if the recording stopped cleanly.
    pub fn trailer(&self) -> Option<&Trailer> {
        self.reader.trailer()
    }

    /// What the file says of the most pipes its programs knew at once (Err: why it cannot).
    pub fn known_pipes_said(&self) -> Result<Option<crate::session::KnownPipes>, String> {
        self.reader.known_pipes()
    }

    /// Damage met so far, as `PATH: warning` lines; cleared by the call.
    pub fn take_warnings(&mut self) -> Vec<String> {
        let p = crate::text::path(&self.path).to_string();
        self.reader
            .take_warnings()
            .into_iter()
            .map(|w| format!("{p}: {w}"))
            .collect()
    }

    /// Prints pending warnings to stderr as `wqtrace: warning: PATH: …`.
    pub fn print_warnings(&mut self) {
        for w in self.take_warnings() {
            eprintln!("wqtrace: warning: {w}");
        }
    }

    /// Events the tracer lost (as recorded), not counting damage.
    pub fn tracer_lost(&self) -> u64 {
        self.reader.tracer_lost()
    }

    /// Events lost to file damage between good chunks.
    pub fn damaged_events(&self) -> u64 {
        self.reader.damaged_events()
    }

    /// Reads the rest of the file and returns where every events chunk is (for seeking).
    pub fn index(&mut self) -> anyhow::Result<Vec<ChunkInfo>> {
        self.reader
            .index()
            .with_context(|| crate::text::path(&self.path).to_string())
    }

    /// Continues at a chunk from [`FileSource::index`].
    pub fn seek(&mut self, chunk: &ChunkInfo) -> anyhow::Result<()> {
        self.reader
            .seek_to(chunk.offset, chunk.first_index)
            .with_context(|| crate::text::path(&self.path).to_string())
    }

    /// Next events chunk (skipping the trailer), or None at the end.
    pub fn next_chunk(&mut self) -> anyhow::Result<Option<(u64, Vec<Event>)>> {
        loop {
            match self
                .reader
                .next_chunk()
                .with_context(|| crate::text::path(&self.path).to_string())?
            {
                None => return Ok(None),
                Some(Chunk::Trailer(_)) => continue,
                Some(Chunk::Events {
                    first_index,
                    mut events,
                    ..
                }) => {
                    if let Some(f) = &mut self.filter {
                        if !f.is_anchored()
                            && let Some(first) = events.first()
                        {
                            f.anchor(first.ts_ns);
                        }
                        // The chunk's cgroups were named before it.
                        let cgroups = self.reader.cgroups();
                        let t = cgroups.read().unwrap_or_else(|p| p.into_inner());
                        events.retain(|e| f.admits(e, Some(&t)));
                    }
                    return Ok(Some((first_index, events)));
                }
            }
        }
    }

    /// Every remaining event.
    pub fn read_all(&mut self) -> anyhow::Result<Vec<Event>> {
        let mut v = Vec::new();
        while self.next_batch(&mut v, Duration::ZERO)? {}
        Ok(v)
    }
}

impl EventSource for FileSource {
    fn next_batch(&mut self, out: &mut Vec<Event>, _timeout: Duration) -> anyhow::Result<bool> {
        match self.next_chunk()? {
            Some((_, events)) => {
                out.extend(events);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Tracer losses plus events known lost to damage.
    fn lost(&self) -> u64 {
        self.reader.tracer_lost() + self.reader.damaged_events()
    }

    /// From the trailer: known once the whole file was read, and only if it stopped cleanly.
    fn sleeps_unattributed(&self) -> u64 {
        self.reader.trailer().map_or(0, |t| t.sleeps_unattributed)
    }

    fn known_pipes(&self) -> Option<crate::session::KnownPipes> {
        self.reader.known_pipes().ok().flatten()
    }

    fn meta(&self) -> &SessionMeta {
        &self.reader.header().meta
    }

    fn stacks(&self) -> Option<crate::stacks::SharedStacks> {
        Some(self.reader.stacks())
    }

    fn cgroups(&self) -> Option<crate::cgroup::SharedCgroups> {
        Some(self.reader.cgroups())
    }
}

/// An [`EventSource`] over events in memory (tests, `record --synthetic`).
pub struct VecSource {
    meta: SessionMeta,
    events: std::vec::IntoIter<Event>,
    batch: usize,
    lost: u64,
}

impl VecSource {
    pub fn new(meta: SessionMeta, events: Vec<Event>, batch: usize, lost: u64) -> Self {
        Self {
            meta,
            events: events.into_iter(),
            batch: batch.max(1),
            lost,
        }
    }
}

impl EventSource for VecSource {
    fn next_batch(&mut self, out: &mut Vec<Event>, _timeout: Duration) -> anyhow::Result<bool> {
        let before = out.len();
        out.extend(self.events.by_ref().take(self.batch));
        Ok(out.len() > before)
    }

    fn lost(&self) -> u64 {
        self.lost
    }

    fn meta(&self) -> &SessionMeta {
        &self.meta
    }
}
