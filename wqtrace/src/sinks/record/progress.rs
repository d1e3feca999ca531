//! The progress line `record` keeps on stderr.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

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

    pub(super) fn update(&mut self, events: u64, lost: u64, bytes: u64) {
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

    pub(super) fn finish(&mut self) {
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
