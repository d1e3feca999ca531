//! What a live session asks of the probes: filters applied in the kernel, the attach method,
//! the BTF to read offsets from, and who the session runs as once attached. Every live command
//! (and doctor) flattens these into its arguments.

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
    /// Force one attach method for the kernel-function hooks: auto, fentry, kprobe, tracepoint.
    #[arg(long, default_value = "auto")]
    pub attach: probe::plan::AttachPref,
    /// Use this BTF file instead of /sys/kernel/btf/vmlinux.
    #[arg(long)]
    pub btf: Option<std::path::PathBuf>,
    /// Benchmark floor: load and attach every program as planned, each returning at once.
    #[arg(long, hide = true)]
    pub empty_programs: bool,
    #[command(flatten)]
    pub privileges: crate::privileges::DropOpts,
}
