//! The consumer side of `record`: batches from a source into the file's writer until a stop,
//! synced as it goes. The command (arguments, output file, probes, the traced command) is in
//! [`super`].

use std::io::Write;
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use wqtrace_common::Event;

use super::Progress;
use crate::recording::Writer;
use crate::source::EventSource;
use crate::stop;

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

/// Turns a write error into the one-line message users see.
pub(super) fn write_error(path: &Path, events: u64, e: std::io::Error) -> anyhow::Error {
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
        // One read of the loss counters per batch: a map lookup is a syscall (2 % of record's
        // CPU when it was read twice).
        let lost = src.lost();
        if !batch.is_empty() {
            // Read after the batch was drained, so it covers every event in it: written before
            // them, it tells a recording cut short that their frees may have been missed.
            w.set_known_pipes(src.known_pipes());
        }
        push_all(w, &batch, lost, path)?;
        progress.update(w.events(), lost, w.bytes());
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
        w.set_known_pipes(src.known_pipes());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::Header;
    use crate::recording::fixtures;
    use crate::source::SessionMeta;

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
