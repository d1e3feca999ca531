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
pub mod terminal;
pub mod ui;
pub mod view;
pub mod widgets;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use ratatui::crossterm::event::{self, Event as TermEvent};
use wqtrace_common::Event;

use self::app::{Action, App};
use self::view::{Mode, View};
use crate::model::{Model, ModelConfig};
use crate::probe::opts::ProbeOpts;
use crate::source::replay::Replay;
use crate::source::{EventSource, live::LiveSource};
use crate::{child, kernel, stop};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub probe: ProbeOpts,
    /// Redraw every MS milliseconds (events are applied continuously in between).
    #[arg(
        short = 'i',
        long = "interval",
        value_name = "MS",
        default_value_t = 250
    )]
    pub interval: u64,
    /// Run this command once the probes are attached (its output is discarded: the terminal is
    /// the TUI's). The TUI stays after it exits; quitting stops it if it still runs.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    stop::install();
    // Load and attach before touching the terminal: errors (privileges, BTF) print normally.
    let src = LiveSource::open(&args.probe)?;
    let mut traced = child::start(&args.command, true)?;
    let mut feed = LiveFeed::new(src, ModelConfig::default());
    let interval = Duration::from_millis(args.interval.max(20));
    let res = run_loop(&mut feed, App::new(false), interval);
    if let Some(c) = traced.as_mut() {
        child::stop(c, Duration::from_secs(2));
    }
    res?;
    let c = feed.model.counters();
    eprintln!("wqtrace: {} events, {} lost", c.events, c.lost);
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

/// Where the model comes from.
pub trait Feed {
    /// Applies pending events, waiting at most `max_wait` for some (or for a key).
    fn pump(&mut self, max_wait: Duration) -> Result<()>;
    /// Carries out a key's [`Action`] (pause, step, seek, speed).
    fn act(&mut self, a: Action, app: &mut App) -> Result<()>;
    /// The frame to draw.
    fn view(&mut self) -> Result<View<'_>>;
}

/// Events applied between two looks at the keyboard (at most).
pub const APPLY_CHUNK: usize = 2048;

/// Events from a live (or any) [`EventSource`], applied as they come. Pausing freezes a copy
/// of the model for display; the live model keeps counting.
pub struct LiveFeed<S: EventSource> {
    pub src: S,
    pub model: Model,
    frozen: Option<(Model, u64)>,
    /// Events taken from the source; those from `next` on are not applied yet.
    batch: Vec<Event>,
    next: usize,
    /// Override of the clock (tests); None = CLOCK_BOOTTIME.
    pub clock: Option<u64>,
}

impl<S: EventSource> LiveFeed<S> {
    pub fn new(src: S, cfg: ModelConfig) -> Self {
        Self {
            src,
            model: Model::new(cfg),
            frozen: None,
            batch: Vec::with_capacity(4096),
            next: 0,
            clock: None,
        }
    }

    fn now(&self) -> u64 {
        self.clock.unwrap_or_else(kernel::boottime_ns)
    }

    /// Applies up to [`APPLY_CHUNK`] events: left over from the last batch, else from the source
    /// (waiting at most `max_wait` for the first). Returns the number applied; 0 = none came.
    /// A batch can hold a quarter of a million events, and a model far behind (a slow machine,
    /// an emulated one) must still see keys between chunks.
    pub fn drain(&mut self, max_wait: Duration) -> Result<usize> {
        if self.next == self.batch.len() {
            self.batch.clear();
            self.next = 0;
            self.src.next_batch(&mut self.batch, max_wait)?;
        }
        let end = self.batch.len().min(self.next + APPLY_CHUNK);
        for e in &self.batch[self.next..end] {
            self.model.apply(e);
        }
        let n = end - self.next;
        self.next = end;
        self.model.set_lost(self.src.lost());
        Ok(n)
    }
}

impl<S: EventSource> Feed for LiveFeed<S> {
    fn pump(&mut self, max_wait: Duration) -> Result<()> {
        let deadline = Instant::now() + max_wait;
        // Keep draining while events flow, up to the deadline (keys are checked between).
        while self.drain(deadline.saturating_duration_since(Instant::now()))? > 0 {
            if Instant::now() >= deadline {
                break;
            }
        }
        Ok(())
    }

    fn act(&mut self, a: Action, app: &mut App) -> Result<()> {
        if a == Action::TogglePause {
            self.frozen = if app.paused {
                Some((self.model.clone(), self.now()))
            } else {
                None
            };
        }
        Ok(())
    }

    fn view(&mut self) -> Result<View<'_>> {
        let meta = self.src.meta();
        Ok(match &self.frozen {
            Some((m, at)) => View {
                model: m,
                meta,
                mode: Mode::Live,
                now_ns: *at,
                behind: self.model.counters().events - m.counters().events,
            },
            None => View {
                model: &self.model,
                meta,
                mode: Mode::Live,
                now_ns: self.clock.unwrap_or_else(kernel::boottime_ns),
                behind: 0,
            },
        })
    }
}

/// The replay engine as a feed: paced playback, pause, step, seek, speed.
pub struct ReplayFeed {
    pub replay: Replay,
}

impl Feed for ReplayFeed {
    fn pump(&mut self, max_wait: Duration) -> Result<()> {
        self.replay.tick(Instant::now())?;
        // Nothing to wait on but time and keys: sleep in small steps, waking on a key.
        let _ = event::poll(max_wait.min(Duration::from_millis(20)));
        Ok(())
    }

    fn act(&mut self, a: Action, app: &mut App) -> Result<()> {
        let r = &mut self.replay;
        match a {
            Action::TogglePause => r.toggle_pause(),
            Action::Step => {
                r.step()?;
            }
            Action::Seek(ms) => {
                let pos = r.position_ts() as i128 + ms as i128 * 1_000_000;
                let t = pos.clamp(r.start_ts() as i128, r.end_ts() as i128) as u64;
                r.seek(t)?;
            }
            Action::Speed(up) => r.set_speed(if up { r.speed() * 2.0 } else { r.speed() / 2.0 }),
            Action::None | Action::Quit => {}
        }
        app.paused = r.is_paused();
        Ok(())
    }

    fn view(&mut self) -> Result<View<'_>> {
        let at_end = self.replay.at_end()?;
        let r = &self.replay;
        Ok(View {
            model: r.model(),
            meta: r.meta(),
            mode: Mode::Replay {
                start_ns: r.start_ts(),
                pos_ns: r.position_ts(),
                end_ns: r.end_ts(),
                speed: r.speed(),
                at_end,
            },
            now_ns: r.position_ts(),
            behind: 0,
        })
    }
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
