//! Bounded time series: occupancy history for sparklines and event-rate windows.

use std::collections::VecDeque;

use serde::Serialize;

/// One bucket of an occupancy history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct OccSample {
    /// Start of the bucket (event clock, ns).
    pub ts_ns: u64,
    /// Highest occupancy seen in the bucket.
    pub max: u32,
    /// Occupancy at the end of the bucket.
    pub last: u32,
    pub ring_size: u32,
}

/// Occupancy over time in fixed-width buckets, keeping the newest `cap` buckets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OccHistory {
    bucket_ns: u64,
    cap: usize,
    samples: VecDeque<OccSample>,
}

impl OccHistory {
    pub fn new(bucket_ns: u64, cap: usize) -> Self {
        Self {
            bucket_ns: bucket_ns.max(1),
            cap: cap.max(1),
            samples: VecDeque::new(),
        }
    }

    pub fn record(&mut self, ts_ns: u64, occupancy: u32, ring_size: u32) {
        // Within (or before) the newest bucket: no division (this runs for most events).
        let b = match self.samples.back() {
            Some(s) if ts_ns < s.ts_ns.saturating_add(self.bucket_ns) => s.ts_ns,
            _ => ts_ns - ts_ns % self.bucket_ns,
        };
        match self.samples.back_mut() {
            // Same bucket, or a slightly out-of-order event: fold into the newest bucket.
            Some(s) if s.ts_ns >= b => {
                s.max = s.max.max(occupancy);
                s.last = occupancy;
                s.ring_size = ring_size;
            }
            _ => {
                if self.samples.len() == self.cap {
                    self.samples.pop_front();
                }
                self.samples.push_back(OccSample {
                    ts_ns: b,
                    max: occupancy,
                    last: occupancy,
                    ring_size,
                });
            }
        }
    }

    /// Buckets, oldest first. Buckets without events are absent (occupancy did not change).
    pub fn samples(&self) -> impl ExactSizeIterator<Item = &OccSample> + DoubleEndedIterator {
        self.samples.iter()
    }

    pub fn bucket_ns(&self) -> u64 {
        self.bucket_ns
    }

    /// The last `n` buckets as a dense series of max occupancy (gaps filled with the previous
    /// bucket's final occupancy), ending at the bucket containing `now_ns`. For sparklines.
    pub fn dense(&self, n: usize, now_ns: u64) -> Vec<u32> {
        let end = now_ns - now_ns % self.bucket_ns;
        let start = end.saturating_sub(self.bucket_ns * (n as u64).saturating_sub(1));
        let mut out = Vec::with_capacity(n);
        let mut it = self.samples.iter().peekable();
        let mut carry = 0;
        // Samples before the window only set the carried-over level.
        while let Some(s) = it.peek() {
            if s.ts_ns < start {
                carry = s.last;
                it.next();
            } else {
                break;
            }
        }
        let mut t = start;
        while out.len() < n {
            match it.peek() {
                Some(s) if s.ts_ns == t => {
                    out.push(s.max);
                    carry = s.last;
                    it.next();
                }
                _ => out.push(carry),
            }
            t += self.bucket_ns;
        }
        out
    }
}

/// Events per second over a sliding window of the event clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateWindow {
    bucket_ns: u64,
    /// (bucket start, count), newest last; at most `buckets` entries.
    buckets: VecDeque<(u64, u64)>,
    n: usize,
}

impl RateWindow {
    /// A window of `n` buckets of `bucket_ns` each.
    pub fn new(bucket_ns: u64, n: usize) -> Self {
        Self {
            bucket_ns: bucket_ns.max(1),
            buckets: VecDeque::new(),
            n: n.max(1),
        }
    }

    pub fn record(&mut self, ts_ns: u64) {
        self.record_n(ts_ns, 1)
    }

    /// `n` events at `ts_ns` (ops totalled in the kernel, read at once).
    #[inline]
    pub fn record_n(&mut self, ts_ns: u64, n: u64) {
        // Within (or before) the newest bucket: no division (this runs for every event).
        if let Some((t, c)) = self.buckets.back_mut()
            && ts_ns < t.saturating_add(self.bucket_ns)
        {
            *c += n;
            return;
        }
        let b = ts_ns - ts_ns % self.bucket_ns;
        match self.buckets.back_mut() {
            Some((t, c)) if *t >= b => *c += n,
            _ => {
                self.buckets.push_back((b, n));
                while self.buckets.len() > self.n {
                    self.buckets.pop_front();
                }
            }
        }
    }

    /// Events per second over the window ending at `now_ns` (event clock).
    pub fn per_sec(&self, now_ns: u64) -> f64 {
        let span = self.bucket_ns * self.n as u64;
        let from = now_ns.saturating_sub(span);
        let count: u64 = self
            .buckets
            .iter()
            .filter(|(t, _)| *t + self.bucket_ns > from)
            .map(|(_, c)| c)
            .sum();
        count as f64 * 1e9 / span as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occupancy_buckets_and_cap() {
        let mut h = OccHistory::new(10, 3);
        h.record(0, 1, 4);
        h.record(5, 3, 4);
        h.record(7, 2, 4);
        h.record(30, 0, 4);
        let v: Vec<_> = h.samples().map(|s| (s.ts_ns, s.max, s.last)).collect();
        assert_eq!(v, [(0, 3, 2), (30, 0, 0)]);
        assert_eq!(h.dense(4, 30), [3, 2, 2, 0]);
        h.record(40, 1, 4);
        h.record(50, 1, 4);
        assert_eq!(h.samples().len(), 3);
        assert_eq!(h.samples().next().unwrap().ts_ns, 30);
    }

    #[test]
    fn rate_window() {
        let mut r = RateWindow::new(100_000_000, 10); // 1 s window
        for i in 0..50 {
            r.record(i * 20_000_000); // 50 Hz for 1 s
        }
        let rate = r.per_sec(1_000_000_000);
        assert!((rate - 50.0).abs() < 6.0, "{rate}");
        assert_eq!(r.per_sec(10_000_000_000), 0.0);
    }
}
