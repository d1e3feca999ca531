//! Command line: one subcommand per job. Each module owns its own `Args`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{doctor, sinks, workload};

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

pub fn main() -> ExitCode {
    init_logging();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        // --help, --version, and no subcommand at all: clap's own help text.
        Err(e)
            if !e.use_stderr()
                || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            e.exit()
        }
        Err(e) => {
            // One line, like every other error (clap adds a usage hint below it).
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("bad arguments");
            eprintln!(
                "wqtrace: {}",
                first.strip_prefix("error: ").unwrap_or(first)
            );
            return ExitCode::from(2);
        }
    };
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

/// Problems found while running (serve's accept errors, say) reach stderr as
/// `wqtrace: warning: ...`; `RUST_LOG` (e.g. `debug`) changes the level.
fn init_logging() {
    use std::io::Write as _;
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format(|buf, rec| {
            let level = match rec.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warning",
                log::Level::Info => "info",
                log::Level::Debug => "debug",
                log::Level::Trace => "trace",
            };
            writeln!(buf, "wqtrace: {level}: {}", rec.args())
        })
        .init();
}
