//! What serving costs, as metrics: each BPF program's runs and run time (the kernel's BPF
//! statistics, see [`crate::cost`]) and the standard `process_*` metrics of wqtrace itself.
//!
//! Updated from the main loop's samples (every [`SAMPLE_EVERY`]), so a scrape sees values at
//! most that old. Where the kernel does not count program runs, the `wqtrace_bpf_run*` families
//! have no series (unknown, not 0) and `wqtrace_bpf_stats_enabled` is 0.

use std::{
    sync::atomic::AtomicU64,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::{Registry, Unit},
};

use crate::cost::{ProgramStat, Sample};

pub const SAMPLE_EVERY: Duration = Duration::from_millis(500);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProgramLabels {
    program: String,
}

pub struct CostMetrics {
    stats_enabled: Gauge,
    runs: Family<ProgramLabels, Counter>,
    run_seconds: Family<ProgramLabels, Counter<f64, AtomicU64>>,
    /// The programs' counters as last counted (none yet: from 0).
    programs_seen: Vec<ProgramStat>,
    cpu: Counter<f64, AtomicU64>,
    cpu_seen_ns: u64,
    rss: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
}

impl CostMetrics {
    pub fn register(root: &mut Registry) -> Self {
        let start = Gauge::<f64, AtomicU64>::default();
        start.set(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
        );
        let m = Self {
            stats_enabled: Gauge::default(),
            runs: Family::default(),
            run_seconds: Family::default(),
            programs_seen: Vec::new(),
            cpu: Counter::default(),
            cpu_seen_ns: 0,
            rss: Gauge::default(),
            open_fds: Gauge::default(),
            max_fds: Gauge::default(),
        };
        let wq = root.sub_registry_with_prefix("wqtrace");
        wq.register(
            "bpf_stats_enabled",
            "1 while the kernel counts wqtrace's BPF program runs (BPF_ENABLE_STATS, serve --cost), 0 when that cost is unknown",
            m.stats_enabled.clone(),
        );
        wq.register(
            "bpf_runs",
            "Runs of each wqtrace BPF program (every hit of its hook, filtered out or not)",
            m.runs.clone(),
        );
        wq.register_with_unit(
            "bpf_run",
            "Time the kernel spent running each wqtrace BPF program: CPU time taken from the traced tasks",
            Unit::Seconds,
            m.run_seconds.clone(),
        );
        let p = root.sub_registry_with_prefix("process");
        p.register_with_unit(
            "cpu",
            "User and system CPU time of wqtrace serve (all threads)",
            Unit::Seconds,
            m.cpu.clone(),
        );
        p.register_with_unit(
            "resident_memory",
            "Resident memory of wqtrace serve (the BPF ring buffer's mapping included)",
            Unit::Bytes,
            m.rss.clone(),
        );
        p.register_with_unit(
            "start_time",
            "Start time of wqtrace serve since the Unix epoch",
            Unit::Seconds,
            start,
        );
        p.register("open_fds", "Open file descriptors", m.open_fds.clone());
        p.register(
            "max_fds",
            "Limit on open file descriptors",
            m.max_fds.clone(),
        );
        m
    }

    /// Moves the counters up to `s` (cumulative values since the programs were loaded).
    pub fn update(&mut self, s: &Sample) {
        self.stats_enabled.set(i64::from(s.programs.is_some()));
        for p in s.programs_since(&self.programs_seen).iter().flatten() {
            let labels = ProgramLabels {
                program: p.name.clone(),
            };
            self.runs.get_or_create(&labels).inc_by(p.runs);
            self.run_seconds
                .get_or_create(&labels)
                .inc_by(p.run_ns as f64 / 1e9);
        }
        if let Some(ps) = &s.programs {
            self.programs_seen.clone_from(ps);
        }
        let cpu = s.process.cpu_ns;
        self.cpu
            .inc_by(cpu.saturating_sub(self.cpu_seen_ns) as f64 / 1e9);
        self.cpu_seen_ns = self.cpu_seen_ns.max(cpu);
        self.rss.set(s.process.rss_bytes as i64);
        if let Ok(d) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(d.count() as i64);
        }
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            self.max_fds.set(lim.rlim_cur.min(i64::MAX as u64) as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::cost::ProcessUsage;

    fn scrape(reg: &Registry) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, reg).unwrap();
        s
    }

    fn sample(programs: Option<Vec<(u64, u64)>>, cpu_ns: u64) -> Sample {
        Sample {
            at: Instant::now(),
            programs: programs.map(|ps| {
                ps.into_iter()
                    .enumerate()
                    .map(|(i, (runs, run_ns))| ProgramStat {
                        name: format!("prog{i}"),
                        runs,
                        run_ns,
                    })
                    .collect()
            }),
            bpf_off: false,
            process: ProcessUsage {
                cpu_ns,
                rss_bytes: 5 << 20,
                peak_rss_bytes: 6 << 20,
            },
        }
    }

    #[test]
    fn counters_follow_the_kernels_cumulative_values() {
        let mut reg = Registry::default();
        let mut m = CostMetrics::register(&mut reg);
        m.update(&sample(Some(vec![(10, 1_000), (0, 0)]), 1_000_000_000));
        m.update(&sample(
            Some(vec![(30, 3_500_000_000), (4, 80)]),
            2_500_000_000,
        ));
        let s = scrape(&reg);
        for line in [
            "wqtrace_bpf_stats_enabled 1",
            "wqtrace_bpf_runs_total{program=\"prog0\"} 30",
            "wqtrace_bpf_runs_total{program=\"prog1\"} 4",
            "wqtrace_bpf_run_seconds_total{program=\"prog0\"} 3.5",
            "process_cpu_seconds_total 2.5",
            "process_resident_memory_bytes 5242880",
        ] {
            assert!(s.lines().any(|l| l == line), "no {line:?} in\n{s}");
        }
        assert!(s.contains("process_start_time_seconds "), "{s}");
        assert!(s.contains("process_open_fds "), "{s}");
    }

    #[test]
    fn unknown_program_cost_has_no_series() {
        let mut reg = Registry::default();
        let mut m = CostMetrics::register(&mut reg);
        m.update(&sample(None, 0));
        let s = scrape(&reg);
        assert!(s.lines().any(|l| l == "wqtrace_bpf_stats_enabled 0"), "{s}");
        assert!(!s.contains("wqtrace_bpf_runs_total{"), "{s}");
        assert!(!s.contains("wqtrace_bpf_run_seconds_total{"), "{s}");
    }
}
