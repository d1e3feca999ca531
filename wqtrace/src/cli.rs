//! Command line: one subcommand per job. Each module owns its own `Args`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{doctor, probe, sinks, workload};

#[derive(Debug, Parser)]
#[command(
    name = "wqtrace",
    version,
    about = "Watch pipe rings and notification pipes live with eBPF"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// What this kernel offers: BTF, privileges, notification pipes, and the attach method per hook.
    Doctor(doctor::Args),
    /// Print one line (or JSON object) per event, like `perf trace`.
    Trace(sinks::trace::Args),
    /// Live terminal UI.
    Tui(sinks::tui::Args),
    /// Record events to a file.
    Record(sinks::record::Args),
    /// The TUI over a recording (no privileges needed).
    Replay(sinks::replay::Args),
    /// Per-pipe summary of a recording.
    Report(sinks::report::Args),
    /// Convert a recording to a timeline (perfetto, chrome-json, jsonl).
    Export(sinks::export::Args),
    /// Run a scenario that exercises pipes and notification pipes, printing a JSON summary.
    Workload(workload::Args),
    /// Serve Prometheus/OpenMetrics metrics (/metrics, /healthz) from the live probes.
    Serve(sinks::serve::Args),
}

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

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Doctor(a) => doctor::run(a),
        Command::Trace(a) => sinks::trace::run(a),
        Command::Tui(a) => sinks::tui::run(a),
        Command::Record(a) => sinks::record::run(a),
        Command::Replay(a) => sinks::replay::run(a),
        Command::Report(a) => sinks::report::run(a),
        Command::Export(a) => sinks::export::run(a),
        Command::Workload(a) => workload::run(a),
        Command::Serve(a) => sinks::serve::run(a),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            // One line: the outermost context first, then its causes.
            let msg = e
                .chain()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(": ");
            eprintln!("wqtrace: {msg}");
            ExitCode::FAILURE
        }
    }
}
