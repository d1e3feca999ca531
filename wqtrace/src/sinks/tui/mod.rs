//! `wqtrace tui`: the live terminal UI, and the same UI over a recording (`wqtrace replay`).
//!
//! One loop serves both: a [`Feed`] applies events to a [`Model`] (the live BPF ring buffer,
//! drained continuously so nothing is dropped while the screen only redraws every `-i` ms; or
//! the [`Replay`] engine, paced by recorded time), keys go to [`app::App`], and [`ui::draw`]
//! renders the model. Rendering reads only the model and the view state, so the tests draw on
//! ratatui's `TestBackend` from hand-made events.
//!
//! Quitting (q, Ctrl-C, SIGINT/SIGTERM/SIGHUP, a panic) always restores the terminal
//! ([`terminal::TerminalGuard`] + panic hook) and detaches the probes (the live source drops).

pub mod app;
mod feed;
pub mod terminal;
pub mod ui;
pub mod view;
pub mod widgets;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use ratatui::crossterm::event::{self, Event as TermEvent};

use self::app::{Action, App};
pub use self::feed::{Feed, LiveFeed, ReplayFeed};

use crate::model::ModelConfig;
use crate::probe::opts::ProbeOpts;
use crate::source::EventSource as _;
use crate::source::live::LiveSource;
use crate::source::replay::Replay;
use crate::{child, stop};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub probe: ProbeOpts,
    #[command(flatten)]
    pub cost: crate::probe::opts::CostOpt,
    /// Redraw every MS milliseconds (events are applied continuously in between).
    #[arg(
        short = 'i',
        long = "interval",
        value_name = "MS",
        default_value_t = 250
    )]
    pub interval: u64,
    /// Stream every ring op, lock wait and pipe wait of ordinary pipes too, as `record` does,
    /// instead of having the kernel total them per pipe: their tasks then show among each
    /// pipe's users, at the cost of an event each (notification pipes always stream).
    #[arg(long)]
    pub all_pipes: bool,
    /// Run this command once the probes are attached (its output is discarded: the terminal is
    /// the TUI's). The TUI stays after it exits; quitting stops it if it still runs.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    stop::install();
    // Load and attach before touching the terminal: errors (privileges, BTF) print normally.
    // The header shows what tracing costs: the programs' part only if asked.
    let probe = ProbeOpts {
        count_runs: args.cost.cost,
        sink_ahead: true,
        // With --stacks all, each op's stacks are what was asked for: they come only in events.
        pipe_totals: !args.all_pipes && args.probe.stacks_mode() != crate::stacks::Mode::All,
        ..args.probe.clone()
    };
    let src = LiveSource::open(&probe)?;
    let mut traced = child::start(&args.command, true)?;
    let mut feed = LiveFeed::new(src, ModelConfig::default());
    if probe.pipe_totals {
        feed = feed.with_pipe_totals()?;
    }
    let interval = Duration::from_millis(args.interval.max(20));
    let res = run_loop(&mut feed, App::new(false), interval);
    if let Some(c) = traced.as_mut() {
        child::stop(c, Duration::from_secs(2));
    }
    res?;
    if probe.pipe_totals {
        feed.read_totals()?;
    }
    crate::sinks::print_unattributed_sleeps(feed.src.sleeps_unattributed());
    let c = feed.model.counters();
    let totalled = if c.totalled_ops + c.totalled_lock_waits + c.totalled_waits > 0 {
        format!(
            " ({} ring ops, {} lock waits and {} pipe waits of them on ordinary pipes, \
             totalled in the kernel)",
            c.totalled_ops, c.totalled_lock_waits, c.totalled_waits
        )
    } else {
        String::new()
    };
    eprintln!("wqtrace: {} events, {} lost{totalled}", c.events, c.lost);
    // `feed` drops here: the probes detach.
    Ok(ExitCode::SUCCESS)
}

/// The TUI over a recording, driven by the replay engine.
pub fn run_replay(replay: Replay, interval: Duration) -> Result<ExitCode> {
    stop::install();
    let mut feed = ReplayFeed { replay };
    run_loop(&mut feed, App::new(true), interval)?;
    feed.replay.print_warnings();
    Ok(ExitCode::SUCCESS)
}

/// Redraw on the interval (and at once after a key or a resize); pump events in between.
pub fn run_loop(feed: &mut impl Feed, mut app: App, interval: Duration) -> Result<()> {
    let mut term = terminal::TerminalGuard::new()?;
    let mut next_draw = Instant::now();
    let mut dirty = true;
    loop {
        if stop::requested() {
            break;
        }
        // Keys first: every pending one, without waiting.
        let mut quit = false;
        while event::poll(Duration::ZERO)? {
            match event::read()? {
                TermEvent::Key(k) => {
                    let action = {
                        let v = feed.view()?;
                        app.on_key(k, v.model)
                    };
                    if action == Action::Quit {
                        quit = true;
                        break;
                    }
                    feed.act(action, &mut app)?;
                    dirty = true;
                }
                TermEvent::Resize(..) => dirty = true,
                _ => {}
            }
        }
        if quit {
            break;
        }
        let now = Instant::now();
        if dirty || now >= next_draw {
            let v = feed.view()?;
            term.terminal.draw(|f| ui::draw(f, &v, &mut app))?;
            dirty = false;
            next_draw = now + interval;
        }
        // Events until the next frame, waking at least every 50 ms for keys.
        let wait = next_draw
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(50));
        feed.pump(wait)?;
    }
    drop(term);
    Ok(())
}
