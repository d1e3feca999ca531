//! Events on ordinary pipes that the programs count in the kernel instead of streaming
//! (`ProbeOpts::count_ordinary`: ring ops, waits, contention), read into the metrics every
//! [`EVERY`].

use std::time::{Duration, Instant};

use anyhow::Result;

use super::metrics::Metrics;
use crate::source::live::LiveSource;

/// How often the counts are read (a walk of a small map, one array lookup).
const EVERY: Duration = Duration::from_millis(100);

pub struct KernelCounts {
    last_read: Instant,
    failing: bool,
}

impl KernelCounts {
    /// The first read, before serving: it opens a sysfs file (see `Probes::kernel_counts`),
    /// which must not wait until the connections may have taken every descriptor.
    pub fn start(src: &mut LiveSource, m: &mut Metrics) -> Result<Self> {
        m.add_counted(&src.kernel_counts()?);
        Ok(Self {
            last_read: Instant::now(),
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
        match src.kernel_counts() {
            Ok(t) => {
                m.add_counted(&t);
                if self.failing {
                    log::warn!("serve: the counts kept in the kernel are read again");
                    self.failing = false;
                }
            }
            Err(e) if !self.failing => {
                log::warn!(
                    "serve: {e:#}; the counts of ordinary pipes' events stand still until a read works"
                );
                self.failing = true;
            }
            Err(_) => {}
        }
    }

    /// At stop: ops counted since the last read belong to the last scrape too.
    pub fn finish(&mut self, src: &mut LiveSource, m: &mut Metrics) {
        match src.kernel_counts() {
            Ok(t) => m.add_counted(&t),
            Err(e) => log::warn!("serve: the last counts kept in the kernel were not read: {e:#}"),
        }
    }
}
