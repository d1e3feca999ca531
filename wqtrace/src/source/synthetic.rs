//! Made-up events for `record --synthetic` (a testing aid: the recording path without a kernel).

use std::time::{Duration, Instant};

use anyhow::Result;
use wqtrace_common::Event;

use super::{EventSource, SessionMeta};

/// Synthetic events, optionally paced like a live source (never "ends" until exhausted).
pub struct Synthetic {
    meta: SessionMeta,
    events: std::iter::Take<crate::recording::fixtures::BusyStream>,
    rate: Option<f64>,
    start: Instant,
    emitted: u64,
}

impl Synthetic {
    /// `n` events of a busy made-up session, `rate` a second (None: as fast as they are taken).
    pub fn new(n: usize, rate: Option<f64>) -> Self {
        Self {
            meta: SessionMeta {
                attach: vec![("synthetic".into(), "synthetic".into())],
                ..SessionMeta::default()
            },
            events: crate::recording::fixtures::BusyStream::new(4, 7).take(n),
            rate,
            start: Instant::now(),
            emitted: 0,
        }
    }
}

impl EventSource for Synthetic {
    fn next_batch(&mut self, out: &mut Vec<Event>, timeout: Duration) -> Result<bool> {
        let due = match self.rate {
            None => u64::MAX,
            Some(r) => (self.start.elapsed().as_secs_f64() * r) as u64,
        };
        let n = due.saturating_sub(self.emitted).min(4096) as usize;
        if n == 0 {
            std::thread::sleep(timeout.min(Duration::from_millis(10)));
        }
        let before = out.len();
        out.extend(self.events.by_ref().take(n));
        let got = out.len() - before;
        self.emitted += got as u64;
        Ok(got > 0 || (n == 0 && self.events.size_hint().1 != Some(0)))
    }

    fn lost(&self) -> u64 {
        0
    }

    fn meta(&self) -> &SessionMeta {
        &self.meta
    }
}
