//! `wqtrace record -o FILE [-d SECS] [filters] [-- CMD…]`: events to a recording file.
//!
//! The file is written chunk by chunk (see [`crate::recording`]): SIGKILL or a full disk loses
//! at most the last 100 ms / 64 KiB, and the file is fsynced every [`SYNC_EVERY`], so a crash
//! of the machine loses at most that much more. SIGINT/SIGTERM, `-d` and the end of `CMD` stop
//! cleanly, write the trailer and fsync the file.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, ExitStatus};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result, anyhow};
use wqtrace_common::{ABI_VERSION, Event};

use crate::probe::opts::ProbeOpts;
use crate::recording::{Header, Writer};
use crate::source::{EventSource, SessionMeta, live::LiveSource, synthetic::Synthetic};
use crate::{child, kernel, stop};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub probe: ProbeOpts,
    /// Write the recording here (`-`: standard output). Created 0600, handed to the sudo user
    /// (or --user); an existing file is kept unless --force.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,
    /// Replace FILE if it exists (a symlink there is replaced, never followed).
    #[arg(long)]
    pub force: bool,
    /// Stop after SECS seconds.
    #[arg(short = 'd', long, value_name = "SECS", value_parser = crate::cli::secs)]
    pub duration: Option<f64>,
    /// No progress line on stderr (the final summary is still printed).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Testing aid: record N synthetic events instead of loading the probes.
    #[arg(long, hide = true, value_name = "N")]
    pub synthetic: Option<usize>,
    /// Testing aid: pace --synthetic events at this many per second.
    #[arg(long, hide = true, value_name = "PER_SEC", value_parser = crate::cli::positive)]
    pub synthetic_rate: Option<f64>,
    /// Run this command once the probes are attached, and stop when it exits.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Why recording stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Duration,
    Command(Option<i32>),
    Signal,
    /// The source ran dry (recordings, synthetic sources).
    SourceEnded,
}

impl StopReason {
    pub fn name(&self) -> &'static str {
        match self {
            StopReason::Duration => "duration",
            StopReason::Command(_) => "command",
            StopReason::Signal => "signal",
            StopReason::SourceEnded => "source",
        }
    }
}

/// Progress reporting on stderr.
pub struct Progress {
    tty: bool,
    quiet: bool,
    last: Instant,
    last_events: u64,
    printed: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let now = Instant::now();
        Self {
            tty: std::io::stderr().is_terminal(),
            quiet,
            last: now,
            last_events: 0,
            printed: false,
        }
    }

    fn update(&mut self, events: u64, lost: u64, bytes: u64) {
        let every = if self.tty {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(5)
        };
        if self.quiet || self.last.elapsed() < every {
            return;
        }
        let dt = self.last.elapsed().as_secs_f64();
        let rate = (events - self.last_events) as f64 / dt;
        self.last = Instant::now();
        self.last_events = events;
        let line = format!(
            "wqtrace: recording: {events} events, {lost} lost, {}, {rate:.0} ev/s",
            human_bytes(bytes)
        );
        if self.tty {
            eprint!("\r\x1b[K{line}");
            self.printed = true;
        } else {
            eprintln!("{line}");
        }
    }

    fn finish(&mut self) {
        if self.printed {
            eprint!("\r\x1b[K");
        }
    }
}

pub fn human_bytes(b: u64) -> String {
    match b {
        0..1024 => format!("{b} B"),
        1024..1_048_576 => format!("{:.1} KiB", b as f64 / 1024.0),
        _ => format!("{:.1} MiB", b as f64 / 1_048_576.0),
    }
}

/// Turns a write error into the one-line message users see.
fn write_error(path: &Path, events: u64, e: std::io::Error) -> anyhow::Error {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        anyhow!(
            "{}: disk full (no space left on device) after {events} events; the recording is readable up to its last complete chunk",
            crate::text::path(path)
        )
    } else {
        anyhow!(
            "{}: write failed after {events} events: {e}",
            crate::text::path(path)
        )
    }
}

/// How often a recording in progress is made durable (fdatasync).
pub const SYNC_EVERY: Duration = Duration::from_secs(2);

/// An output that can be made durable: a file is fsynced; pipes, devices and in-memory
/// writers have nothing to do.
pub trait Durable {
    fn make_durable(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Durable for std::fs::File {
    fn make_durable(&mut self) -> std::io::Result<()> {
        match self.sync_data() {
            // A pipe or a character device: nothing to sync.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
            r => r,
        }
    }
}

impl Durable for Vec<u8> {}

/// The loop shared by the live and synthetic paths: pulls batches from `src` into `w` until a
/// signal, the deadline, the end of `child` or the end of the source.
pub fn record_loop<S: EventSource + ?Sized, W: Write + Durable>(
    src: &mut S,
    w: &mut Writer<W>,
    path: &Path,
    mut child: Option<&mut Child>,
    deadline: Option<Instant>,
    progress: &mut Progress,
) -> Result<StopReason> {
    let mut batch: Vec<Event> = Vec::with_capacity(4096);
    let (mut synced_at, mut synced_bytes) = (Instant::now(), w.bytes());
    let reason = loop {
        if stop::requested() {
            break StopReason::Signal;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break StopReason::Duration;
        }
        if let Some(c) = child.as_deref_mut()
            && let Some(status) = c.try_wait().context("waiting for the command")?
        {
            break StopReason::Command(exit_code(status));
        }
        batch.clear();
        let more = src.next_batch(&mut batch, Duration::from_millis(50))?;
        push_all(w, &batch, src.lost(), path)?;
        progress.update(w.events(), src.lost(), w.bytes());
        if synced_at.elapsed() >= SYNC_EVERY && w.bytes() > synced_bytes {
            w.get_mut()
                .make_durable()
                .map_err(|err| write_error(path, w.events(), err))?;
            (synced_at, synced_bytes) = (Instant::now(), w.bytes());
        }
        if !more {
            break StopReason::SourceEnded;
        }
    };
    if reason != StopReason::SourceEnded {
        // What the kernel already produced belongs to the recording.
        batch.clear();
        src.finish(&mut batch)?;
        push_all(w, &batch, src.lost(), path)?;
    }
    progress.finish();
    Ok(reason)
}

fn push_all<W: Write>(w: &mut Writer<W>, batch: &[Event], lost: u64, path: &Path) -> Result<()> {
    for e in batch {
        w.push(e)
            .map_err(|err| write_error(path, w.events(), err))?;
    }
    w.set_lost(lost);
    w.maybe_flush()
        .map_err(|err| write_error(path, w.events(), err))
}

fn exit_code(s: ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    s.code().or_else(|| s.signal().map(|sig| 128 + sig))
}

/// Fills what a source did not say about the session.
fn complete_meta(mut m: SessionMeta) -> SessionMeta {
    if m.kernel_release.is_empty() {
        m.kernel_release = kernel::release();
    }
    if m.hostname.is_empty() {
        m.hostname = kernel::hostname();
    }
    if m.abi_version == 0 {
        m.abi_version = ABI_VERSION;
    }
    if m.realtime_offset_ns == 0 {
        m.realtime_offset_ns = kernel::realtime_offset_ns();
    }
    m
}

pub fn run(args: Args) -> Result<ExitCode> {
    stop::install();
    // Before the probes load: a refused FILE costs nothing.
    let owner = crate::privileges::session_user(&args.probe.privileges)?;
    let path = &args.output;
    let file = crate::output::create(path, args.force, owner.as_ref())?;
    let mut src: Box<dyn EventSource> = match args.synthetic {
        Some(n) => Box::new(Synthetic::new(n, args.synthetic_rate)),
        None => Box::new(LiveSource::open(&args.probe)?),
    };
    let header = Header {
        meta: complete_meta(src.meta().clone()),
        wqtrace_version: env!("CARGO_PKG_VERSION").to_string(),
        created_unix_ns: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64),
        command: args.command.clone(),
        filters: args.probe.describe(),
    };
    let mut w = Writer::new(file, &header).map_err(|e| write_error(path, 0, e))?;
    let mut traced = child::start(&args.command, false)?;
    eprintln!(
        "wqtrace: recording to {}; Ctrl-C to stop",
        crate::text::path(path)
    );
    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d.max(0.0)));
    let mut progress = Progress::new(args.quiet);
    let started = Instant::now();
    let res = record_loop(
        src.as_mut(),
        &mut w,
        path,
        traced.as_mut(),
        deadline,
        &mut progress,
    );
    if let Some(c) = traced.as_mut() {
        // We stop before the command did (signal, -d or an error): take it down with us.
        child::stop(c, Duration::from_secs(5));
    }
    let reason = res?;
    let written = w.bytes();
    let (mut file, trailer) = w
        .finish(reason.name())
        .map_err(|e| write_error(path, 0, e))?;
    // A stopped recording is evidence someone will fetch later: on disk before we say "recorded".
    file.make_durable()
        .map_err(|e| write_error(path, trailer.events, e))?;
    // The descriptor, not the name: the name may be out of this (unprivileged) process's reach.
    let size = file.metadata().map_or(0, |m| m.len()).max(written);
    let per_event = if trailer.events > 0 {
        format!(", {:.1} B/event", size as f64 / trailer.events as f64)
    } else {
        String::new()
    };
    eprintln!(
        "wqtrace: recorded {} events ({} lost) to {} in {:.1} s: {}{per_event}; stopped by {}",
        trailer.events,
        trailer.lost,
        crate::text::path(path),
        started.elapsed().as_secs_f64(),
        human_bytes(size),
        match reason {
            StopReason::Command(Some(c)) => format!("command exit (status {c})"),
            StopReason::Command(None) => "command exit".into(),
            r => r.name().into(),
        }
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::fixtures;

    /// Counts fsyncs; keeps what is written.
    #[derive(Default)]
    struct Disk {
        data: Vec<u8>,
        syncs: Vec<usize>,
    }
    impl Write for &mut Disk {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.data.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Durable for &mut Disk {
        fn make_durable(&mut self) -> std::io::Result<()> {
            self.syncs.push(self.data.len());
            Ok(())
        }
    }

    /// A trickle of events for `for_`, a batch every 50 ms.
    struct Trickle {
        events: std::vec::IntoIter<Event>,
        end: Instant,
    }
    impl EventSource for Trickle {
        fn next_batch(&mut self, out: &mut Vec<Event>, _: Duration) -> Result<bool> {
            std::thread::sleep(Duration::from_millis(50));
            out.extend(self.events.by_ref().take(20));
            Ok(Instant::now() < self.end)
        }
        fn finish(&mut self, _: &mut Vec<Event>) -> Result<()> {
            Ok(())
        }
        fn lost(&self) -> u64 {
            0
        }
        fn meta(&self) -> &SessionMeta {
            static META: std::sync::OnceLock<SessionMeta> = std::sync::OnceLock::new();
            META.get_or_init(SessionMeta::default)
        }
    }

    /// A long recording is fsynced every SYNC_EVERY while it runs, each time holding every
    /// chunk written so far: a crash loses at most that interval (plus the chunk in progress).
    #[test]
    fn a_recording_in_progress_is_synced_periodically() {
        let mut disk = Disk::default();
        let mut src = Trickle {
            events: fixtures::busy_stream(100_000, 2, 3).into_iter(),
            end: Instant::now() + SYNC_EVERY * 2 + Duration::from_millis(500),
        };
        let mut w = Writer::new(&mut disk, &Header::default()).unwrap();
        let mut progress = Progress::new(true);
        let reason =
            record_loop(&mut src, &mut w, Path::new("x"), None, None, &mut progress).unwrap();
        assert_eq!(reason, StopReason::SourceEnded);
        drop(w);
        assert_eq!(disk.syncs.len(), 2, "synced at {:?}", disk.syncs);
        assert!(disk.syncs[0] > 0 && disk.syncs[1] > disk.syncs[0]);
    }
}
