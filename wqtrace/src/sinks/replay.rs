//! `wqtrace replay FILE`: the TUI ([`crate::sinks::tui::run_replay`]) over the replay engine
//! ([`crate::source::replay::Replay`]: pause, step, seek, speed); `--dump` prints a text
//! picture of the model state at the end (or at `--at`) instead.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::model::{ModelConfig, PipeOrder};
use crate::source::replay::Replay;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A recording made by `wqtrace record`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Playback speed (1 = real time).
    #[arg(long, default_value_t = 1.0, value_parser = crate::argvalue::positive)]
    pub speed: f64,
    /// Print the model state (pipes, ring slots, occupancy) instead of the interactive UI.
    #[arg(long)]
    pub dump: bool,
    /// With --dump: the state SECS seconds into the recording (default: the end).
    /// Without: start the UI there (paused).
    #[arg(long, value_name = "SECS", value_parser = crate::argvalue::secs)]
    pub at: Option<f64>,
    /// UI: redraw every MS milliseconds.
    #[arg(
        short = 'i',
        long = "interval",
        value_name = "MS",
        default_value_t = 250
    )]
    pub interval: u64,
    /// UI: start paused at the beginning (p plays, n steps).
    #[arg(long)]
    pub paused: bool,
    #[command(flatten)]
    pub filter: crate::source::filter::FilterArgs,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let mut r = Replay::open_filtered(&args.file, ModelConfig::default(), &args.filter)?;
    if !args.dump {
        use std::io::IsTerminal as _;
        if !std::io::stdout().is_terminal() {
            bail!(
                "the replay UI needs a terminal; for text try `wqtrace replay --dump {}` or `wqtrace report {}`",
                crate::text::path(&args.file),
                crate::text::path(&args.file)
            );
        }
        r.set_speed(args.speed);
        if let Some(s) = args.at {
            r.seek(r.start_ts() + (s.max(0.0) * 1e9) as u64)?;
            r.pause();
        }
        if args.paused {
            r.pause();
        }
        let interval = std::time::Duration::from_millis(args.interval.max(20));
        return crate::sinks::tui::run_replay(r, interval);
    }
    match args.at {
        Some(s) => r.seek(r.start_ts() + (s.max(0.0) * 1e9) as u64)?,
        None => {
            r.run_to_end()?;
        }
    }
    r.print_warnings();
    print!("{}", dump(&r));
    Ok(ExitCode::SUCCESS)
}

/// A non-interactive picture of the model at the replay position.
pub fn dump(r: &Replay) -> String {
    use std::fmt::Write as _;
    let m = r.model();
    let c = m.counters();
    let mut o = String::new();
    let _ = writeln!(
        o,
        "at +{:.6}s of {:.6}s: {} events applied, {} lost, {} pipes",
        r.position_ts().saturating_sub(r.start_ts()) as f64 / 1e9,
        r.end_ts().saturating_sub(r.start_ts()) as f64 / 1e9,
        r.applied(),
        c.lost,
        m.pipes().count()
    );
    const SPARK: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    for p in m.pipes_sorted(PipeOrder::Activity) {
        let slots = p.ring.letters();
        let size = p.ring.size().max(1);
        let spark: String = p
            .history
            .dense(32, m.now_ns())
            .into_iter()
            .map(|v| SPARK[((v as usize * 7) / size as usize).min(7)])
            .collect();
        let _ = writeln!(
            o,
            "{:<28} {:>3}/{:<3} [{}] {} posted {} lost {} rejected {}{}",
            format!(
                "{}{}",
                p.label(),
                if p.notification { " notif" } else { "" }
            ),
            p.occupancy(),
            p.ring.size(),
            slots,
            spark,
            p.posts.posted,
            p.posts.lost,
            p.rejected(),
            if p.is_released() { " (released)" } else { "" }
        );
    }
    o
}
