//! Ring ops on ordinary pipes that the programs count in the kernel instead of streaming
//! (`ProbeOpts::count_ring_ops`), read into the metrics every [`EVERY`].

use std::time::{Duration, Instant};

use anyhow::Result;

use super::metrics::Metrics;
use crate::source::live::LiveSource;

/// How often the counts are read (a walk of a small map).
const EVERY: Duration = Duration::from_millis(100);

pub struct KernelCounts {
    last_read: Instant,
    /// Ring ops added to the metrics so far.
    pub total: u64,
    failing: bool,
}

impl KernelCounts {
    /// The first read, before serving: it opens a sysfs file (see `Probes::ring_op_counts`),
    /// which must not wait until the connections may have taken every descriptor.
    pub fn start(src: &mut LiveSource, m: &mut Metrics) -> Result<Self> {
        let total = m.add_counted_ring_ops(&src.counted_ring_ops()?);
        Ok(Self {
            last_read: Instant::now(),
            total,
            failing: false,
        })
    }

    /// Reads the counts when they are due. The totals are running: a read that fails loses
    /// nothing, the next one that works catches up (said once each way).
    pub fn poll(&mut self, src: &mut LiveSource, m: &mut Metrics) {
        if self.last_read.elapsed() < EVERY {
            return;
        }
        self.last_read = Instant::now();
        match src.counted_ring_ops() {
            Ok(t) => {
                self.total += m.add_counted_ring_ops(&t);
                if self.failing {
                    log::warn!("serve: the ring-op counts are read again");
                    self.failing = false;
                }
            }
            Err(e) if !self.failing => {
                log::warn!(
                    "serve: {e:#}; the ring-op counts of ordinary pipes stand still until a read works"
                );
                self.failing = true;
            }
            Err(_) => {}
        }
    }

    /// At stop: ops counted since the last read belong to the last scrape too.
    pub fn finish(&mut self, src: &mut LiveSource, m: &mut Metrics) {
        match src.counted_ring_ops() {
            Ok(t) => self.total += m.add_counted_ring_ops(&t),
            Err(e) => log::warn!("serve: the last ring-op counts were not read: {e:#}"),
        }
    }
}
