//! What a live session asks of the probes: filters applied in the kernel, the attach method,
//! the BTF to read offsets from, and who the session runs as once attached. Every live command
//! (and doctor) flattens these into its arguments.

use anyhow::{Result, bail};
use wqtrace_common::Filter;

use crate::probe;

/// Options every live (probe-loading) command shares.
#[derive(Debug, Clone, clap::Args, Default)]
pub struct ProbeOpts {
    /// Only this process (tgid).
    #[arg(short = 'p', long = "pid")]
    pub pid: Option<u32>,
    /// Only tasks whose comm starts with this.
    #[arg(short = 'c', long = "comm")]
    pub comm: Option<String>,
    /// Only the pipe with this inode number.
    #[arg(long = "pipe")]
    pub pipe: Option<u32>,
    /// Only notification pipes (O_NOTIFICATION_PIPE).
    #[arg(long)]
    pub notification_only: bool,
    /// Only tasks in this cgroup (v2) or below it: a directory in the cgroup2 mount, or a
    /// path as /proc/PID/cgroup shows it (/system.slice/foo.service).
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<std::path::PathBuf>,
    /// Force one attach method for the kernel-function hooks: auto, fentry, kprobe, tracepoint.
    #[arg(long, default_value = "auto")]
    pub attach: probe::plan::AttachPref,
    /// Use this BTF file instead of /sys/kernel/btf/vmlinux.
    #[arg(long)]
    pub btf: Option<std::path::PathBuf>,
    /// Which events carry kernel and user call stacks: none, rare (rejections, lost, skipped
    /// and interleaved posts, lock contention, waits from --stack-wait), or all (every ring
    /// op too: a stack walk per syscall). Default: rare; serve, which exports no stacks: none.
    #[arg(long, value_name = "WHICH")]
    pub stacks: Option<crate::stacks::Mode>,
    /// With --stacks rare: waits for a pipe at least this long carry stacks.
    #[arg(long, value_name = "MS", default_value_t = 1.0, value_parser = crate::argvalue::millis)]
    pub stack_wait: f64,
    /// Benchmark floor: load and attach every program as planned, each returning at once.
    #[arg(long, hide = true)]
    pub empty_programs: bool,
    /// Tests: room for this many pipes' totals (`pipe_totals`; at least 2, see
    /// `probe::totals::Room`) instead of what the machine's CPUs allow, to see a pipe past the
    /// last one streamed.
    #[arg(long, hide = true, value_name = "PIPES")]
    pub pipe_totals_max: Option<u32>,
    /// Tests: this many slots in the counts array (`count_ordinary`; rounded up to a power of
    /// two) instead of what the machine's CPUs allow, to see a cgroup whose slot another holds
    /// counted in the hash.
    #[arg(long, hide = true, value_name = "SLOTS")]
    pub count_slots: Option<u32>,
    /// Tests: this many slots in the table of syscalls in progress and lock waits (rounded up
    /// to a power of two, at most `INFLIGHT_SLOTS`; 0: none), to see threads whose slot
    /// another holds traced through the overflow hashes.
    #[arg(long, hide = true, value_name = "SLOTS")]
    pub inflight_slots: Option<u32>,
    /// Have the kernel count the programs' runs and run time (BPF_ENABLE_STATS): for
    /// doctor --measure, and tui and serve with `--cost` ([`CostOpt`]). Not an option here:
    /// record and trace show no cost, and counting costs every BPF program on the machine
    /// two clock reads per run.
    #[arg(skip)]
    pub count_runs: bool,
    /// Count ring ops, waits and contention on ordinary pipes in the kernel instead of
    /// streaming them (`LiveSource::kernel_counts`): for serve without --all-pipes, which only
    /// counts them. Not an option: every other sink needs each event.
    #[arg(skip)]
    pub count_ordinary: bool,
    /// Total ring ops on ordinary pipes per pipe in the kernel instead of streaming them
    /// (`LiveSource::pipe_totals`): for the TUI without --all-pipes, which shows them only as
    /// totals. Not an option: set by the sink.
    #[arg(skip)]
    pub pipe_totals: bool,
    /// The thread that opens the source (the sink's) runs ahead of the workload too, like the
    /// drain thread (`source::live::run_ahead_of_the_workload`): for the TUI, whose model costs
    /// tens of ns per event but, left behind in its autogroup, queued up to 45 MiB of events.
    /// Not an option: a sink that formats text (trace) or serves HTTP (serve) must not.
    #[arg(skip)]
    pub sink_ahead: bool,
    /// Hand on a ring op that carries its wait (`flags::OFF_CPU`) whole instead of split into
    /// the wait and the op: for `record`, which stores it whole (format 6) and so encodes one
    /// event where it encoded two. Not an option: set by the sink.
    #[arg(skip)]
    pub waits_whole: bool,
    #[command(flatten)]
    pub privileges: crate::privileges::DropOpts,
}

impl ProbeOpts {
    /// `--stacks`, or its default (rare).
    pub fn stacks_mode(&self) -> crate::stacks::Mode {
        self.stacks.unwrap_or_default()
    }

    /// Whether only some tasks are traced (-p, -c, --cgroup). Then the free hooks report frees
    /// by tasks outside them too, flagged (`flags::OUTSIDE_FILTER`), and the live source keeps
    /// those of the pipes its session saw (`source::filter::PipesSeen`).
    pub fn tasks_filtered(&self) -> bool {
        self.pid.is_some() || self.comm.is_some() || self.cgroup.is_some()
    }

    /// The filters as the programs read them (the `FILTER` global).
    pub fn kernel_filter(&self) -> Result<Filter> {
        let mut f = Filter::none();
        f.self_tgid = std::process::id();
        f.tgid = self.pid.unwrap_or(0);
        f.ino = self.pipe.unwrap_or(0);
        f.notification_only = self.notification_only as u32;
        f.empty = self.empty_programs as u32;
        f.stacks = self.stacks_mode().abi();
        f.stack_wait_ns = (self.stack_wait * 1e6) as u64;
        f.count_ordinary = self.count_ordinary as u32;
        f.pipe_totals = self.pipe_totals as u32;
        if let Some(path) = &self.cgroup {
            let cg = crate::cgroup::resolve(path)?;
            f.cgroup_id = cg.id;
            f.cgroup_level = cg.level;
        }
        if let Some(c) = &self.comm {
            if c.len() > 15 {
                bail!("--comm {c:?}: a task comm is at most 15 bytes");
            }
            f.comm[..c.len()].copy_from_slice(c.as_bytes());
        }
        Ok(f)
    }

    /// The same filters for people (a recording's header, its report).
    pub fn describe(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(pid) = self.pid {
            v.push(format!("pid={pid}"));
        }
        if let Some(c) = &self.comm {
            v.push(format!("comm={c}"));
        }
        if let Some(i) = self.pipe {
            v.push(format!("pipe={i}"));
        }
        if self.notification_only {
            v.push("notification-only".into());
        }
        if let Some(c) = &self.cgroup {
            v.push(format!("cgroup={}", crate::text::path(c)));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every filter the kernel applies is also in the description, and no other.
    #[test]
    fn kernel_filter_and_description_agree() {
        let o = ProbeOpts {
            pid: Some(42),
            comm: Some("wq-reader".into()),
            pipe: Some(7),
            notification_only: true,
            ..Default::default()
        };
        let f = o.kernel_filter().unwrap();
        assert_eq!((f.tgid, f.ino, f.notification_only), (42, 7, 1));
        assert_eq!(&f.comm[..9], b"wq-reader");
        assert_eq!(
            o.describe(),
            ["pid=42", "comm=wq-reader", "pipe=7", "notification-only"]
        );
        assert!(ProbeOpts::default().describe().is_empty());
        let long = ProbeOpts {
            comm: Some("a-very-long-command".into()),
            ..Default::default()
        };
        assert!(long.kernel_filter().is_err());
    }
}

/// `--cost` of the live views (tui, serve): whether they show what the programs cost.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CostOpt {
    /// Show the programs' cost: have the kernel count their runs and run time
    /// (BPF_ENABLE_STATS, as bpftop does) while this session runs. Off by default: counting
    /// makes every run of every BPF program on the machine read the clock twice, which on a
    /// pipe-heavy workload and a paravirtualised clock can cost as much as tracing itself.
    /// wqtrace's own CPU and memory are shown either way.
    #[arg(long)]
    pub cost: bool,
}
