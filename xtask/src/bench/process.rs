//! What /proc and the kernel say about a tracer process: CPU time, peak RSS, the run time of
//! the BPF programs it holds (with `kernel.bpf_stats_enabled` switched on for the run).

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::Context as _;

pub(super) fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as f64
}

/// utime + stime of a process, in clock ticks.
pub(super) fn cpu_ticks(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// (run time in ns, runs) summed over the BPF programs process `pid` holds open, from their
/// fdinfo (counted only while kernel.bpf_stats_enabled = 1). The same for wqtrace and bpftrace.
pub(super) fn bpf_prog_stats(pid: i32) -> Option<(u64, u64)> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fdinfo")).ok()?;
    let (mut ns, mut runs) = (0u64, 0u64);
    for e in dir.flatten() {
        let Ok(s) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        if !s.contains("prog_type:") {
            continue;
        }
        for l in s.lines() {
            let num = |v: &str| v.trim().parse::<u64>().unwrap_or(0);
            if let Some(v) = l.strip_prefix("run_time_ns:") {
                ns += num(v);
            } else if let Some(v) = l.strip_prefix("run_cnt:") {
                runs += num(v);
            }
        }
    }
    Some((ns, runs))
}

/// kernel.bpf_stats_enabled set to 1 while it lives, and back to what it was after (as bpftop
/// does). Counting adds two clock reads to every program run, so the runs that report ops/s
/// for the slowdown are made without it.
pub struct BpfStats {
    old: String,
}

pub(super) const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    pub fn enable() -> anyhow::Result<Self> {
        let old = std::fs::read_to_string(BPF_STATS).context(BPF_STATS)?;
        std::fs::write(BPF_STATS, "1").context(BPF_STATS)?;
        Ok(Self { old })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(BPF_STATS, self.old.trim());
    }
}

/// Peak RSS (VmHWM) in KiB.
pub(super) fn vm_hwm_kib(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

pub(super) fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
}

pub(super) fn kill(pid: i32, sig: i32) {
    // SAFETY: plain kill(2) on a pid we started.
    unsafe { libc::kill(pid, sig) };
}

pub(super) fn wait_timeout(c: &mut Child, t: Duration) -> bool {
    let end = Instant::now() + t;
    while Instant::now() < end {
        if c.try_wait().ok().flatten().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
