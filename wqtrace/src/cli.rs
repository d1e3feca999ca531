//! Command line: one subcommand per job. Each module owns its own `Args`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{assets, doctor, sinks, workload};

/// `0.1.0 (git 1a2b3c4d5e6f, event ABI 3, recording format 3)`: what `--version` prints, and
/// what a user quotes in a bug report.
pub static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (git {}, event ABI {}, recording format {})",
        env!("CARGO_PKG_VERSION"),
        env!("WQTRACE_GIT_COMMIT"),
        wqtrace_common::ABI_VERSION,
        crate::recording::FORMAT_VERSION
    )
});

const EXAMPLES: &str = "\
Examples:
  sudo wqtrace tui                               watch every pipe live
  sudo wqtrace record -o keys.wqt -- ./watcher   record a program's whole run
  wqtrace report keys.wqt                        summary per pipe (anywhere, no privileges)";

#[derive(Debug, Parser)]
#[command(
    name = "wqtrace",
    version = VERSION.as_str(),
    about = "Watch pipe rings and notification pipes live with eBPF",
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// What this kernel offers: BTF, privileges, notification pipes, and the attach method per hook.
    #[command(after_help = "\
Examples:
  sudo wqtrace doctor                    can this kernel be traced, and how
  sudo wqtrace doctor --measure 10       what tracing this machine's pipe traffic costs
  sudo wqtrace doctor --attach kprobe    the plan with kprobes instead of fentry")]
    Doctor(doctor::Args),
    /// Print one line (or JSON object) per event, like `perf trace`.
    #[command(after_help = "\
Examples:
  sudo wqtrace trace --notification-only       notification pipes only
  sudo wqtrace trace -p 1234 --json | jq .     one process, as JSON
  sudo wqtrace trace -c keymon -d 10           processes named keymon, for 10 s")]
    Trace(sinks::trace::Args),
    /// Live terminal UI.
    #[command(after_help = "\
Examples:
  sudo wqtrace tui                                   every pipe on this machine
  sudo wqtrace tui --notification-only -- ./watcher  run ./watcher, watch its notification pipes
  sudo wqtrace tui -c keymon                         processes named keymon")]
    Tui(sinks::tui::Args),
    /// Record events to a file.
    #[command(after_help = "\
Examples:
  sudo wqtrace record -o s.wqt -d 30                 30 s of every pipe
  sudo wqtrace record -o s.wqt -- ./watcher          a program's whole run (it runs as you)
  sudo wqtrace record -o - | ssh dev 'cat > s.wqt'   record on a test box, keep it elsewhere")]
    Record(sinks::record::Args),
    /// The TUI over a recording (no privileges needed).
    #[command(after_help = "\
Examples:
  wqtrace replay s.wqt                       play it back at recorded speed
  wqtrace replay --speed 0.1 s.wqt           ten times slower
  wqtrace replay --paused --at 12.5 s.wqt    start paused, 12.5 s in")]
    Replay(sinks::replay::Args),
    /// Per-pipe summary of a recording.
    #[command(after_help = "\
Examples:
  wqtrace report s.wqt                    totals, then posts, losses, rejections per pipe
  wqtrace report --json s.wqt | jq .      the same as JSON")]
    Report(sinks::report::Args),
    /// Convert a recording to a timeline (perfetto, chrome-json, jsonl).
    #[command(after_help = "\
Examples:
  wqtrace export s.wqt -f perfetto -o s.pftrace   open it in ui.perfetto.dev
  wqtrace export s.wqt -f jsonl | jq -c 'select(.kind == \"notify_posted\")'")]
    Export(sinks::export::Args),
    /// Run a scenario that exercises pipes and notification pipes, printing a JSON summary.
    #[command(after_help = "\
Examples:
  wqtrace workload notify                                  key notifications through a notification pipe
  sudo wqtrace record -o m.wqt -- wqtrace workload mixed   record every scenario at once")]
    Workload(workload::Args),
    /// Serve Prometheus/OpenMetrics metrics (/metrics, /healthz) from the live probes.
    #[command(after_help = "\
Examples:
  sudo wqtrace serve                                     http://127.0.0.1:9435/metrics
  curl -s 127.0.0.1:9435/metrics | grep notifications_lost
  sudo wqtrace serve --notification-only --listen 127.0.0.1:9500
Run it as a service: deploy/systemd/wqtrace-serve.service (see the README).")]
    Serve(sinks::serve::Args),
    /// Write the man pages and shell completions (used by `cargo xtask install` and `dist`).
    #[command(hide = true)]
    Assets(assets::Args),
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
        Command::Assets(a) => assets::run(a),
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
