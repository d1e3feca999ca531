//! A recording played back: events paced by their recorded timestamps × speed, fed to a
//! [`Model`], with pause, step and seek. Seeking restores a model snapshot taken at a chunk
//! boundary and re-applies events from there, so the engine owns the model it feeds (the TUI
//! and `replay --dump` read it).

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use wqtrace_common::Event;

use crate::model::{Model, ModelConfig};
use crate::recording::ChunkInfo;
use crate::source::EventSource as _;
use crate::source::file::FileSource;
use crate::source::filter::{EventFilter, FilterArgs};

/// Snapshots kept for seeking (one every `len / MAX_SNAPSHOTS` chunks).
const MAX_SNAPSHOTS: usize = 32;

type Snapshot = (usize, u64, Option<u64>, Model);

/// Replay engine over a recording.
pub struct Replay {
    src: FileSource,
    index: Vec<ChunkInfo>,
    cfg: ModelConfig,
    model: Model,
    /// Events of chunk `chunk`, and the next one to apply.
    buf: Vec<Event>,
    pos: usize,
    chunk: usize,
    /// Events applied since the start of the recording.
    applied: u64,
    last_ts: Option<u64>,
    start_ts: u64,
    end_ts: u64,
    speed: f64,
    paused: bool,
    /// (wall clock, recorded ts) pacing is measured from.
    anchor: Option<(Instant, u64)>,
    snap_every: usize,
    /// (chunk, applied, last_ts, model before the chunk).
    snapshots: Vec<Snapshot>,
}

impl Replay {
    /// Opens `path` and indexes its chunks (one pass over the file).
    pub fn open(path: &Path, cfg: ModelConfig) -> Result<Self> {
        Self::open_filtered(path, cfg, &FilterArgs::default())
    }

    /// The same, showing only the events `filter` keeps (the timeline stays the recording's).
    pub fn open_filtered(path: &Path, cfg: ModelConfig, filter: &FilterArgs) -> Result<Self> {
        let mut src = FileSource::open(path)?;
        let index = src.index()?;
        // Chunk boundaries are the only seek points; the end comes from the last chunk.
        let mut end_ts = 0;
        if let Some(last) = index.last() {
            src.seek(last)?;
            if let Some((_, evs)) = src.next_chunk()? {
                end_ts = evs.iter().map(|e| e.ts_ns).max().unwrap_or(0);
            }
        }
        let start_ts = index.first().map_or(0, |c| c.base_ts);
        let mut f = EventFilter::new(filter, src.meta())?;
        f.anchor(start_ts);
        src.set_filter(f);
        let snap_every = index.len().div_ceil(MAX_SNAPSHOTS).max(1);
        if let Some(first) = index.first() {
            src.seek(first)?;
        }
        // Damage warnings were collected by the index pass; keep them for the caller.
        Ok(Self {
            src,
            index,
            model: Model::new(cfg.clone()),
            cfg,
            buf: Vec::new(),
            pos: 0,
            chunk: usize::MAX,
            applied: 0,
            last_ts: None,
            start_ts,
            end_ts: end_ts.max(start_ts),
            speed: 1.0,
            paused: false,
            anchor: None,
            snap_every,
            snapshots: Vec::new(),
        })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The recorded session's metadata (kernel, attach methods, notification pipes).
    /// The recording's stacks (all of them: opening read the whole file).
    pub fn stacks(&self) -> Option<crate::stacks::SharedStacks> {
        self.src.stacks()
    }

    /// The recording's cgroup paths.
    pub fn cgroups(&self) -> Option<crate::cgroup::SharedCgroups> {
        self.src.cgroups()
    }

    pub fn meta(&self) -> &crate::source::SessionMeta {
        use crate::source::EventSource as _;
        self.src.meta()
    }

    pub fn print_warnings(&mut self) {
        self.src.print_warnings();
    }

    /// First and last event timestamps of the recording.
    pub fn start_ts(&self) -> u64 {
        self.start_ts
    }

    pub fn end_ts(&self) -> u64 {
        self.end_ts
    }

    /// Timestamp of the last applied event (the start before any).
    pub fn position_ts(&self) -> u64 {
        self.last_ts.unwrap_or(self.start_ts)
    }

    /// Events applied so far.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Whether every event has been applied.
    pub fn at_end(&mut self) -> Result<bool> {
        Ok(self.peek()?.is_none())
    }

    /// Sets the speed (clamped to 1/1000 … 1e6); pacing continues from the current position.
    pub fn set_speed(&mut self, speed: f64) {
        self.speed = if speed.is_finite() {
            speed.clamp(1e-3, 1e6)
        } else {
            1.0
        };
        self.anchor = None;
    }

    pub fn pause(&mut self) {
        self.paused = true;
        self.anchor = None;
    }

    pub fn resume(&mut self) {
        self.paused = false;
        self.anchor = None;
    }

    pub fn toggle_pause(&mut self) {
        if self.paused {
            self.resume()
        } else {
            self.pause()
        }
    }

    /// The next event to apply, loading the next chunk when needed.
    fn peek(&mut self) -> Result<Option<&Event>> {
        while self.pos >= self.buf.len() {
            let next = self.chunk.wrapping_add(1);
            if next >= self.index.len() {
                return Ok(None);
            }
            if next.is_multiple_of(self.snap_every) && !self.snapshots.iter().any(|s| s.0 == next) {
                self.snapshots
                    .push((next, self.applied, self.last_ts, self.model.clone()));
            }
            match self.src.next_chunk()? {
                Some((_, evs)) => {
                    self.buf = evs;
                    self.pos = 0;
                    self.chunk = next;
                }
                None => return Ok(None),
            }
        }
        Ok(self.buf.get(self.pos))
    }

    fn apply_next(&mut self) -> Result<Option<Event>> {
        let Some(e) = self.peek()?.copied() else {
            return Ok(None);
        };
        self.pos += 1;
        self.applied += 1;
        self.model.apply(&e);
        self.last_ts = Some(self.last_ts.map_or(e.ts_ns, |t| t.max(e.ts_ns)));
        self.model.set_lost(self.src.tracer_lost());
        self.model
            .set_sleeps_unattributed(self.src.sleeps_unattributed());
        self.model.set_known_pipes(self.src.known_pipes());
        Ok(Some(e))
    }

    /// Applies one event and pauses (the UI's "step").
    pub fn step(&mut self) -> Result<Option<Event>> {
        self.pause();
        self.apply_next()
    }

    /// Applies every event due at wall time `now`: recorded time advances `speed` times as fast
    /// as wall time from the moment playback (re)started. Returns the number applied.
    pub fn tick(&mut self, now: Instant) -> Result<usize> {
        if self.paused {
            return Ok(0);
        }
        let (wall0, ts0) = *self.anchor.get_or_insert((now, self.position_ts()));
        let elapsed = now.saturating_duration_since(wall0).as_secs_f64();
        let target = ts0.saturating_add((elapsed * self.speed * 1e9) as u64);
        let mut n = 0;
        while let Some(e) = self.peek()? {
            if e.ts_ns > target {
                break;
            }
            self.apply_next()?;
            n += 1;
        }
        Ok(n)
    }

    /// Applies everything that is left.
    pub fn run_to_end(&mut self) -> Result<u64> {
        let mut n = 0;
        while self.apply_next()?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    /// Moves to recorded time `ts`: the model afterwards reflects every event with
    /// `ts_ns <= ts` (forward or backward).
    pub fn seek(&mut self, ts: u64) -> Result<()> {
        self.anchor = None;
        // The chunk holding `ts`: the last one starting at or before it.
        let target = self
            .index
            .iter()
            .rposition(|c| c.base_ts <= ts)
            .unwrap_or(0);
        let going_back = self.last_ts.is_some_and(|t| ts < t);
        let next = self.chunk.wrapping_add(1);
        let best = self
            .snapshots
            .iter()
            .filter(|s| s.0 <= target)
            .max_by_key(|s| s.0)
            .map(|s| s.0);
        match best {
            // Going back, or a snapshot beats replaying the chunks in between.
            Some(c) if going_back || c > next => self.restore(c)?,
            None if going_back => self.restore_start()?,
            _ => {}
        }
        while let Some(e) = self.peek()? {
            if e.ts_ns > ts {
                break;
            }
            self.apply_next()?;
        }
        Ok(())
    }

    fn restore(&mut self, chunk: usize) -> Result<()> {
        let i = self
            .snapshots
            .iter()
            .position(|s| s.0 == chunk)
            .expect("snapshot exists");
        let (_, applied, last_ts, model) = &self.snapshots[i];
        self.model = model.clone();
        self.applied = *applied;
        self.last_ts = *last_ts;
        let ci = self.index[chunk];
        self.src.seek(&ci)?;
        self.chunk = chunk.wrapping_sub(1);
        self.buf.clear();
        self.pos = 0;
        Ok(())
    }

    fn restore_start(&mut self) -> Result<()> {
        self.model = Model::new(self.cfg.clone());
        self.applied = 0;
        self.last_ts = None;
        if let Some(ci) = self.index.first().copied() {
            self.src.seek(&ci)?;
        }
        self.chunk = usize::MAX;
        self.buf.clear();
        self.pos = 0;
        Ok(())
    }
}
