//! Where the TUI's events come from: the live ring buffer (drained continuously, so nothing is
//! lost while the screen redraws every `-i` ms) or the replay engine (paced by recorded time).
//! Both apply events to a model and say what a frame is drawn from.

use std::time::{Duration, Instant};

use anyhow::Result;
use wqtrace_common::Event;

use super::app::{Action, App};
use super::view::{Mode, View};
use ratatui::crossterm::event;

use crate::cost::Meter;
use crate::kernel;
use crate::model::{Model, ModelConfig};
use crate::source::EventSource;
use crate::source::replay::Replay;

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
    cost: Meter,
    /// When the kernel's per-pipe totals were last read (None: the source keeps none).
    totals_read: Option<Instant>,
}

/// How often the kernel's per-pipe totals are read: a frame's worth of freshness at most.
const TOTALS_EVERY: Duration = Duration::from_millis(100);

impl<S: EventSource> LiveFeed<S> {
    pub fn new(src: S, cfg: ModelConfig) -> Self {
        Self {
            src,
            model: Model::new(cfg),
            frozen: None,
            batch: Vec::with_capacity(4096),
            next: 0,
            clock: None,
            cost: Meter::new(Duration::from_secs(1)),
            totals_read: None,
        }
    }

    /// Reads the ring ops the kernel totals per pipe (`ProbeOpts::pipe_totals`) into the
    /// model as it goes; the first read is now, before any event.
    pub fn with_pipe_totals(mut self) -> Result<Self> {
        self.read_totals()?;
        Ok(self)
    }

    /// Applies the kernel's per-pipe totals, and has it forget those of pipes that are gone.
    pub fn read_totals(&mut self) -> Result<()> {
        let read = self.src.pipe_totals()?;
        let now = self.now();
        for (k, t) in &read {
            self.model.apply_totals(*k, t, now);
        }
        let done = self.model.final_totals(read.iter().map(|(k, _)| k));
        if !done.is_empty() {
            self.src.forget_pipe_totals(&done)?;
        }
        self.totals_read = Some(Instant::now());
        Ok(())
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
        // Once per pump, not per drained chunk: a map lookup is a syscall.
        self.model
            .set_sleeps_unattributed(self.src.sleeps_unattributed());
        self.model.set_known_pipes(self.src.known_pipes());
        // After the events drained so far: a pipe they say was freed has all its ops in this
        // read.
        if self
            .totals_read
            .is_some_and(|t| t.elapsed() >= TOTALS_EVERY)
        {
            self.read_totals()?;
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
        let src = &self.src;
        let cost = self.cost.tick(|| src.cost());
        let meta = self.src.meta();
        let stacks = self.src.stacks();
        let cgroups = self.src.cgroups();
        Ok(match &self.frozen {
            Some((m, at)) => View {
                model: m,
                meta,
                mode: Mode::Live,
                now_ns: *at,
                behind: self.model.counters().events - m.counters().events,
                cost,
                stacks,
                cgroups,
            },
            None => View {
                model: &self.model,
                meta,
                mode: Mode::Live,
                now_ns: self.clock.unwrap_or_else(kernel::boottime_ns),
                behind: 0,
                cost,
                stacks,
                cgroups,
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
            cost: None,
            stacks: r.stacks(),
            cgroups: r.cgroups(),
        })
    }
}
