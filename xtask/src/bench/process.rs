//! What /proc and the kernel say about a tracer process: CPU time, peak RSS, the run time of
//! the BPF programs it holds (with `kernel.bpf_stats_enabled` switched on for the run), each
//! by name.

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

/// One BPF program a process holds open: its id and the kernel's counters for it (counted
/// only while kernel.bpf_stats_enabled = 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ProgCounters {
    pub id: u64,
    pub run_ns: u64,
    pub runs: u64,
}

/// The counters in the fdinfo text of one descriptor; None when it is not a BPF program's.
fn prog_counters(fdinfo: &str) -> Option<ProgCounters> {
    if !fdinfo.contains("prog_type:") {
        return None;
    }
    let field = |key: &str| {
        fdinfo
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some(ProgCounters {
        id: field("prog_id:")?,
        run_ns: field("run_time_ns:").unwrap_or(0),
        runs: field("run_cnt:").unwrap_or(0),
    })
}

/// Every BPF program process `pid` holds open, once each (by id), from its fdinfo. The same
/// for wqtrace and bpftrace.
pub(super) fn bpf_progs(pid: i32) -> Option<Vec<ProgCounters>> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fdinfo")).ok()?;
    let mut ps: Vec<ProgCounters> = dir
        .flatten()
        .filter_map(|e| prog_counters(&std::fs::read_to_string(e.path()).ok()?))
        .collect();
    ps.sort_by_key(|p| p.id);
    ps.dedup_by_key(|p| p.id);
    Some(ps)
}

/// (run time in ns, runs) summed over `ps`.
pub(super) fn bpf_totals(ps: &[ProgCounters]) -> (u64, u64) {
    ps.iter()
        .fold((0, 0), |(n, r), p| (n + p.run_ns, r + p.runs))
}

/// Each program's (run time in ns, runs) between two readings of the same process.
pub(super) fn bpf_deltas(before: &[ProgCounters], after: &[ProgCounters]) -> Vec<ProgCounters> {
    after
        .iter()
        .map(|a| {
            let b = before.iter().find(|b| b.id == a.id);
            ProgCounters {
                id: a.id,
                run_ns: a.run_ns.saturating_sub(b.map_or(0, |b| b.run_ns)),
                runs: a.runs.saturating_sub(b.map_or(0, |b| b.runs)),
            }
        })
        .collect()
}

/// The names of the BPF programs with these ids (their function names in the eBPF object,
/// cut to 15 characters by the kernel), as bpftool lists them; empty where bpftool fails.
pub(super) fn bpf_prog_names(ids: &[u64]) -> std::collections::HashMap<u64, String> {
    let out = std::process::Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .output();
    let Ok(out) = out else {
        return Default::default();
    };
    prog_names(&String::from_utf8_lossy(&out.stdout), ids)
}

/// [`bpf_prog_names`] from `bpftool -j prog show`'s output.
fn prog_names(json: &str, ids: &[u64]) -> std::collections::HashMap<u64, String> {
    let Ok(serde_json::Value::Array(ps)) = serde_json::from_str(json) else {
        return Default::default();
    };
    ps.iter()
        .filter_map(|p| Some((p["id"].as_u64()?, p["name"].as_str()?.to_string())))
        .filter(|(id, _)| ids.contains(id))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_programs_counters_come_from_its_fdinfo() {
        let prog = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nprog_type:\t26\n\
                    prog_jited:\t1\nprog_tag:\t153fedb3a4a17c62\nmemlock:\t53248\n\
                    prog_id:\t811\nrun_time_ns:\t524500000\nrun_cnt:\t4412612\n\
                    recursion_misses:\t0\nverified_insns:\t7167\n";
        assert_eq!(
            prog_counters(prog),
            Some(ProgCounters {
                id: 811,
                run_ns: 524_500_000,
                runs: 4_412_612
            })
        );
        // A map's and a link's descriptors are not programs (a link names its program's id).
        assert_eq!(prog_counters("map_type:\t27\nmap_id:\t90\n"), None);
        assert_eq!(
            prog_counters("link_type:\ttracing\nlink_id:\t4\nprog_id:\t811\n"),
            None
        );
    }

    #[test]
    fn deltas_and_names_are_per_program() {
        let c = |id, run_ns, runs| ProgCounters { id, run_ns, runs };
        let before = [c(1, 100, 10), c(2, 50, 5)];
        let after = [c(1, 400, 40), c(2, 50, 5), c(3, 7, 1)];
        assert_eq!(
            bpf_deltas(&before, &after),
            [c(1, 300, 30), c(2, 0, 0), c(3, 7, 1)]
        );
        assert_eq!(bpf_totals(&after), (457, 46));
        let json = r#"[{"id":1,"type":"tracing","name":"sys_enter"},
                       {"id":2,"type":"tracing","name":"sys_exit"},
                       {"id":9,"type":"kprobe","name":"someone_elses"}]"#;
        let names = prog_names(json, &[1, 2, 3]);
        assert_eq!(names.len(), 2);
        assert_eq!(names[&1], "sys_enter");
        assert!(prog_names("not json", &[1]).is_empty());
    }
}
