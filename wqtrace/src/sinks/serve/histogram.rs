//! The wait and contention histograms: classic Prometheus histograms that take both single
//! observations (streamed events) and whole buckets counted in the kernel
//! (`wqtrace_common::counts`), which prometheus-client's `Histogram` cannot.

use std::sync::{Arc, Mutex};

use prometheus_client::{
    encoding::{EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::{MetricType, TypedMetric},
};
use wqtrace_common::counts::{self, BUCKETS, WaitRow};

/// Cheap to clone: clones share the values (one in the registry, one in `Metrics`).
#[derive(Debug, Clone, Default)]
pub struct WaitHistogram {
    inner: Arc<Mutex<WaitRow>>,
}

impl WaitHistogram {
    /// One wait of `ns`.
    pub fn observe_ns(&self, ns: u64) {
        let mut r = self.lock();
        r.counts[counts::bucket(ns)] += 1;
        r.sum_ns = r.sum_ns.wrapping_add(ns);
    }

    /// Waits counted elsewhere: `more`'s buckets and sum added to these.
    pub fn add(&self, more: &WaitRow) {
        self.lock().add(more);
    }

    pub fn snapshot(&self) -> WaitRow {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WaitRow> {
        // Only plain additions happen under the lock: a panic there leaves consistent values.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl TypedMetric for WaitHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for WaitHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let r = self.snapshot();
        // Per bucket, not cumulative: the encoder sums them up for `le`.
        let buckets: Vec<(f64, u64)> = (0..BUCKETS)
            .map(|i| {
                let le = if i < counts::FINITE_BUCKETS {
                    counts::bound_ns(i) as f64 / 1e9
                } else {
                    f64::INFINITY
                };
                (le, r.counts[i])
            })
            .collect();
        let count = r.counts.iter().sum();
        encoder.encode_histogram::<NoLabelSet>(r.sum_ns as f64 / 1e9, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::{
        metrics::histogram::{Histogram, exponential_buckets},
        registry::Registry,
    };

    use super::*;

    fn text(name: &str, m: impl EncodeMetric + Send + Sync + std::fmt::Debug + 'static) -> String {
        let mut reg = Registry::default();
        reg.register(name, "h", m);
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &reg).unwrap();
        s
    }

    /// The same waits, one by one or as kernel buckets, scrape exactly as prometheus-client's
    /// own histogram with 1 µs ×4 buckets does (bounds included: `le` is inclusive).
    #[test]
    fn scrapes_like_a_classic_histogram() {
        let waits_ns = [
            0,
            999,
            1000,
            1001,
            4000,
            4001,
            250_000,
            16_384_000,
            4_194_304_000,
            5e9 as u64,
        ];
        let theirs = Histogram::new(exponential_buckets(1e-6, 4.0, 12));
        let one_by_one = WaitHistogram::default();
        let mut kernel = WaitRow::default();
        for &ns in &waits_ns {
            theirs.observe(ns as f64 / 1e9);
            one_by_one.observe_ns(ns);
            kernel.counts[counts::bucket(ns)] += 1;
            kernel.sum_ns += ns;
        }
        let bulk = WaitHistogram::default();
        bulk.add(&kernel.since(&WaitRow::default()));
        let want = text("w", theirs);
        assert_eq!(text("w", one_by_one), want);
        assert_eq!(text("w", bulk), want);
        assert!(want.contains("w_bucket{le=\"0.000001\"} 3"), "{want}");
    }

    #[test]
    fn growth_is_per_bucket_and_never_negative() {
        let mut a = WaitRow::default();
        a.counts[2] = 5;
        a.sum_ns = 100;
        let mut b = a;
        b.counts[2] = 7;
        b.counts[0] = 1;
        b.sum_ns = 150;
        let d = b.since(&a);
        assert_eq!((d.counts[0], d.counts[2], d.sum_ns), (1, 2, 50));
        assert_eq!(
            a.since(&b),
            WaitRow {
                counts: [0; BUCKETS],
                sum_ns: 0
            }
        );
    }
}
