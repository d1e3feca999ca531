//! The model's caps and time resolutions.

/// Caps and time resolutions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    /// Live pipes tracked at once; beyond, released then least recently active pipes are
    /// retired.
    pub max_pipes: usize,
    /// Retired pipes kept for reports (released pipes whose address was reused, evicted pipes).
    pub max_retired: usize,
    pub max_tasks: usize,
    /// Occupancy history: bucket width and number of buckets kept per pipe.
    pub history_bucket_ns: u64,
    pub history_len: usize,
    /// Event-rate window: bucket width and count (default 10 × 100 ms = 1 s).
    pub rate_bucket_ns: u64,
    pub rate_buckets: usize,
    /// Alerts kept (rejections, interleaves); totals still count every alert.
    pub max_alerts: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            max_pipes: 1024,
            max_retired: 256,
            max_tasks: 4096,
            history_bucket_ns: 10_000_000,
            history_len: 600,
            rate_bucket_ns: 100_000_000,
            rate_buckets: 10,
            max_alerts: 1000,
        }
    }
}

impl ModelConfig {
    /// Larger caps for offline reports, where completeness matters more than memory.
    pub fn for_report() -> Self {
        Self {
            max_pipes: 65_536,
            max_retired: 65_536,
            max_tasks: 65_536,
            history_len: 64,
            max_alerts: 100_000,
            ..Self::default()
        }
    }
}
