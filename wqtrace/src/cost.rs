//! What tracing costs: the run count and run time the kernel charges to each of our BPF
//! programs (time stolen from the traced tasks), and wqtrace's own CPU time and memory.
//!
//! The kernel counts program runs only while BPF statistics are on. We turn them on the way
//! bpftop does, with `BPF_ENABLE_STATS`: the kernel keeps them on while we hold the returned
//! descriptor and turns them back off when the last holder closes it, so they are restored even
//! if wqtrace is killed. Where that is refused (no CAP_SYS_ADMIN, a kernel before 5.8) and the
//! `kernel.bpf_stats_enabled` sysctl is not already on, the BPF figures are unknown, never 0.

use std::{
    os::fd::OwnedFd,
    time::{Duration, Instant},
};

/// Whether the kernel is counting our programs' runs.
#[derive(Debug)]
pub enum BpfStats {
    /// Turned on by us for as long as we hold this descriptor.
    Ours(#[allow(dead_code)] OwnedFd),
    /// Already on system-wide (`kernel.bpf_stats_enabled=1`), left as it is.
    System,
    /// Off, and we could not turn them on: why.
    Unavailable(String),
    /// Off: this command shows no cost, and counting is not free (two clock reads per run of
    /// every BPF program on the machine, not only ours).
    NotAsked,
}

impl BpfStats {
    /// Turns the statistics on for this process's lifetime (needs CAP_SYS_ADMIN; call before
    /// dropping privileges).
    pub fn enable() -> Self {
        match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
            Ok(fd) => Self::Ours(fd),
            Err(e) if sysctl_on() => {
                log::debug!("BPF_ENABLE_STATS: {e}; kernel.bpf_stats_enabled is on");
                Self::System
            }
            Err(e) => Self::Unavailable(format!(
                "BPF run-time statistics are off and BPF_ENABLE_STATS failed ({}): program cost unknown",
                crate::probe::loader::short(&e)
            )),
        }
    }

    /// Counting only if already on system-wide (the sysctl): for commands that show no cost.
    pub fn if_on() -> Self {
        if sysctl_on() {
            Self::System
        } else {
            Self::NotAsked
        }
    }

    pub fn available(&self) -> bool {
        matches!(self, Self::Ours(_) | Self::System)
    }
}

fn sysctl_on() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok_and(|v| v.trim() == "1")
}

/// Runs and run time summed over `ps`.
pub fn totals(ps: &[ProgramStat]) -> (u64, u64) {
    ps.iter()
        .fold((0, 0), |(r, t), p| (r + p.runs, t + p.run_ns))
}

/// One program's counters since it was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramStat {
    /// The program's name in the eBPF crate (its function name).
    pub name: String,
    pub runs: u64,
    pub run_ns: u64,
}

/// wqtrace's own resource use since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessUsage {
    /// User plus system CPU time of every thread.
    pub cpu_ns: u64,
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
}

impl ProcessUsage {
    pub fn now() -> Self {
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
        // statm: size resident shared ... (pages).
        let rss_pages = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0);
        Self {
            cpu_ns: tv(ru.ru_utime) + tv(ru.ru_stime),
            rss_bytes: rss_pages * page,
            peak_rss_bytes: ru.ru_maxrss as u64 * 1024,
        }
    }
}

/// Every counter at one instant.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    /// None: the kernel is not counting program runs (see [`BpfStats`]).
    pub programs: Option<Vec<ProgramStat>>,
    /// Not counted because the session did not ask (`--cost`), rather than could not.
    pub bpf_off: bool,
    pub process: ProcessUsage,
}

impl Sample {
    /// Runs and run time summed over programs.
    pub fn bpf_totals(&self) -> Option<(u64, u64)> {
        self.programs.as_deref().map(totals)
    }

    /// Each program's runs and run time since `earlier` (the same programs' counters at an
    /// earlier instant; a program not in it counts from 0, a counter never goes back). None:
    /// this sample has no counts.
    pub fn programs_since(&self, earlier: &[ProgramStat]) -> Option<Vec<ProgramStat>> {
        let now = self.programs.as_ref()?;
        Some(
            now.iter()
                .map(|p| {
                    let p0 = earlier.iter().find(|q| q.name == p.name);
                    ProgramStat {
                        name: p.name.clone(),
                        runs: p.runs - p0.map_or(0, |q| q.runs.min(p.runs)),
                        run_ns: p.run_ns - p0.map_or(0, |q| q.run_ns.min(p.run_ns)),
                    }
                })
                .collect(),
        )
    }

    /// Cost per second between `earlier` and this sample.
    pub fn rates_since(&self, earlier: &Sample) -> Rates {
        let secs = self
            .at
            .saturating_duration_since(earlier.at)
            .max(Duration::from_millis(1))
            .as_secs_f64();
        let deltas = earlier
            .programs
            .as_deref()
            .and_then(|e| self.programs_since(e));
        let bpf = match deltas {
            Some(ps) => {
                let (runs, ns) = totals(&ps);
                Some(BpfRates {
                    runs_per_sec: runs as f64 / secs,
                    cpu_frac: ns as f64 / 1e9 / secs,
                    ns_per_run: (runs > 0).then(|| ns as f64 / runs as f64),
                })
            }
            _ => None,
        };
        Rates {
            secs,
            bpf,
            bpf_off: self.bpf_off,
            self_cpu_frac: self.process.cpu_ns.saturating_sub(earlier.process.cpu_ns) as f64
                / 1e9
                / secs,
            rss_bytes: self.process.rss_bytes,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BpfRates {
    pub runs_per_sec: f64,
    /// Program run time per wall-clock second, in CPUs (0.02 = 2 % of one CPU).
    pub cpu_frac: f64,
    pub ns_per_run: Option<f64>,
}

/// What tracing cost over an interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub secs: f64,
    /// None: program runs are not counted on this kernel/session.
    pub bpf: Option<BpfRates>,
    /// They are not because the session did not ask (`--cost`).
    pub bpf_off: bool,
    /// wqtrace's CPU time per second, in CPUs.
    pub self_cpu_frac: f64,
    pub rss_bytes: u64,
}

impl Rates {
    /// `BPF 2.1% CPU 310 ns/run · wqtrace 3.0% CPU 41 MiB` (the TUI header's cost field).
    pub fn short(&self) -> String {
        let bpf = match &self.bpf {
            Some(b) => match b.ns_per_run {
                Some(ns) => format!("BPF {:.1}% CPU {ns:.0} ns/run", b.cpu_frac * 100.0),
                None => format!("BPF {:.1}% CPU", b.cpu_frac * 100.0),
            },
            None if self.bpf_off => "BPF cost off (--cost)".to_string(),
            None => "BPF cost unknown".to_string(),
        };
        format!(
            "{bpf} · wqtrace {:.1}% CPU {:.0} MiB",
            self.self_cpu_frac * 100.0,
            self.rss_bytes as f64 / (1u64 << 20) as f64
        )
    }
}

/// Keeps the last sample and the rates over the last interval of at least `every`.
#[derive(Debug)]
pub struct Meter {
    every: Duration,
    last: Option<Sample>,
    rates: Option<Rates>,
}

impl Meter {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            rates: None,
        }
    }

    /// Takes a sample with `take` when the last one is at least `every` old; returns the rates
    /// over the latest full interval (None until there is one).
    pub fn tick(&mut self, take: impl FnOnce() -> Option<Sample>) -> Option<Rates> {
        let due = self
            .last
            .as_ref()
            .is_none_or(|l| l.at.elapsed() >= self.every);
        if due && let Some(s) = take() {
            if let Some(l) = &self.last {
                self.rates = Some(s.rates_since(l));
            }
            self.last = Some(s);
        }
        self.rates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: Instant, progs: Option<&[(u64, u64)]>, cpu_ns: u64) -> Sample {
        Sample {
            at,
            programs: progs.map(|ps| {
                ps.iter()
                    .enumerate()
                    .map(|(i, &(runs, run_ns))| ProgramStat {
                        name: format!("p{i}"),
                        runs,
                        run_ns,
                    })
                    .collect()
            }),
            bpf_off: false,
            process: ProcessUsage {
                cpu_ns,
                rss_bytes: 10 << 20,
                peak_rss_bytes: 10 << 20,
            },
        }
    }

    #[test]
    fn rates_are_per_second_and_per_run() {
        let t0 = Instant::now();
        let a = sample(t0, Some(&[(100, 10_000), (0, 0)]), 0);
        let b = sample(
            t0 + Duration::from_secs(2),
            Some(&[(1100, 210_000), (1000, 100_000)]),
            100_000_000,
        );
        let r = b.rates_since(&a);
        let bpf = r.bpf.unwrap();
        assert_eq!(bpf.runs_per_sec, 1000.0);
        assert_eq!(bpf.ns_per_run, Some(150.0));
        assert!((bpf.cpu_frac - 150e-6).abs() < 1e-12, "{bpf:?}");
        assert!((r.self_cpu_frac - 0.05).abs() < 1e-12);
        assert_eq!(
            r.short(),
            "BPF 0.0% CPU 150 ns/run · wqtrace 5.0% CPU 10 MiB"
        );
    }

    /// Per program, by name: one not counted before counts from 0, a counter that went back
    /// (a reloaded program) adds nothing.
    #[test]
    fn program_deltas_are_by_name_and_never_negative() {
        let t0 = Instant::now();
        let earlier = sample(t0, Some(&[(50, 5_000)]), 0);
        let mut now = sample(t0, Some(&[(80, 9_000), (7, 700)]), 0);
        let d = now.programs_since(earlier.programs.as_deref().unwrap());
        let d: Vec<_> = d
            .unwrap()
            .into_iter()
            .map(|p| (p.name, p.runs, p.run_ns))
            .collect();
        assert_eq!(d, [("p0".into(), 30, 4_000), ("p1".into(), 7, 700)]);
        now.programs.as_mut().unwrap()[0].runs = 10;
        let d = now
            .programs_since(earlier.programs.as_deref().unwrap())
            .unwrap();
        assert_eq!(d[0].runs, 0);
        assert_eq!(sample(t0, None, 0).programs_since(&[]), None);
    }

    #[test]
    fn unknown_program_stats_stay_unknown() {
        let t0 = Instant::now();
        let a = sample(t0, None, 0);
        let b = sample(t0 + Duration::from_secs(1), None, 0);
        let r = b.rates_since(&a);
        assert_eq!(r.bpf, None);
        assert!(r.short().starts_with("BPF cost unknown"), "{}", r.short());
        // Not counted because not asked: said so, with the way to ask.
        let off = |at| Sample {
            bpf_off: true,
            ..sample(at, None, 0)
        };
        let r = off(t0 + Duration::from_secs(1)).rates_since(&off(t0));
        assert_eq!(r.bpf, None);
        assert!(
            r.short().starts_with("BPF cost off (--cost) · wqtrace"),
            "{}",
            r.short()
        );
    }

    #[test]
    fn the_process_sees_its_own_cpu_time_grow() {
        let a = ProcessUsage::now();
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(30) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let b = ProcessUsage::now();
        assert!(x > 0);
        assert!(b.cpu_ns >= a.cpu_ns + 10_000_000, "{a:?} {b:?}");
        assert!(
            b.rss_bytes > 0 && b.peak_rss_bytes >= b.rss_bytes / 2,
            "{b:?}"
        );
    }
}
