//! `wqtrace replay FILE`: the model over a recording, with pause, step, seek and speed.
//!
//! [`Replay`] is the engine the TUI drives: it paces events by their recorded timestamps ×
//! speed, feeds the [`Model`], and seeks by restoring a model snapshot taken at a chunk
//! boundary and re-applying events from there. `wqtrace replay FILE` opens the TUI
//! ([`crate::sinks::tui::run_replay`]) over it; `--dump` prints a text picture of the model
//! state at the end (or at `--at`) instead.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Result, bail};
use wqtrace_common::Event;

use crate::model::{Model, ModelConfig, PipeOrder, SlotKind};
use crate::recording::ChunkInfo;
use crate::source::recording::RecordingSource;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A recording made by `wqtrace record`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Playback speed (1 = real time).
    #[arg(long, default_value_t = 1.0, value_parser = crate::cli::positive)]
    pub speed: f64,
    /// Print the model state (pipes, ring slots, occupancy) instead of the interactive UI.
    #[arg(long)]
    pub dump: bool,
    /// With --dump: the state SECS seconds into the recording (default: the end).
    /// Without: start the UI there (paused).
    #[arg(long, value_name = "SECS", value_parser = crate::cli::secs)]
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
}

pub fn run(args: Args) -> Result<ExitCode> {
    let mut r = Replay::open(&args.file, ModelConfig::default())?;
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

/// Snapshots kept for seeking (one every `len / MAX_SNAPSHOTS` chunks).
const MAX_SNAPSHOTS: usize = 32;

type Snapshot = (usize, u64, Option<u64>, Model);

/// Replay engine over a recording.
pub struct Replay {
    src: RecordingSource,
    index: Vec<ChunkInfo>,
    cfg: ModelConfig,
    model: Model,
    /// Events of chunk `chunk`, and the next one to apply.
    buf: Vec<Event>,
    pos: usize,
    chunk: usize,
    /// Events applied since the start of the recording.
    applied: u64,
    last_ts: Option<u64>,
    start_ts: u64,
    end_ts: u64,
    speed: f64,
    paused: bool,
    /// (wall clock, recorded ts) pacing is measured from.
    anchor: Option<(Instant, u64)>,
    snap_every: usize,
    /// (chunk, applied, last_ts, model before the chunk).
    snapshots: Vec<Snapshot>,
}

impl Replay {
    /// Opens `path` and indexes its chunks (one pass over the file).
    pub fn open(path: &Path, cfg: ModelConfig) -> Result<Self> {
        let mut src = RecordingSource::open(path)?;
        let index = src.index()?;
        // Chunk boundaries are the only seek points; the end comes from the last chunk.
        let mut end_ts = 0;
        if let Some(last) = index.last() {
            src.seek(last)?;
            if let Some((_, evs)) = src.next_chunk()? {
                end_ts = evs.iter().map(|e| e.ts_ns).max().unwrap_or(0);
            }
        }
        let start_ts = index.first().map_or(0, |c| c.base_ts);
        let snap_every = index.len().div_ceil(MAX_SNAPSHOTS).max(1);
        if let Some(first) = index.first() {
            src.seek(first)?;
        }
        // Damage warnings were collected by the index pass; keep them for the caller.
        Ok(Self {
            src,
            index,
            model: Model::new(cfg.clone()),
            cfg,
            buf: Vec::new(),
            pos: 0,
            chunk: usize::MAX,
            applied: 0,
            last_ts: None,
            start_ts,
            end_ts: end_ts.max(start_ts),
            speed: 1.0,
            paused: false,
            anchor: None,
            snap_every,
            snapshots: Vec::new(),
        })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The recorded session's metadata (kernel, attach methods, notification pipes).
    pub fn meta(&self) -> &crate::source::SessionMeta {
        use crate::source::EventSource as _;
        self.src.meta()
    }

    pub fn print_warnings(&mut self) {
        self.src.print_warnings();
    }

    /// First and last event timestamps of the recording.
    pub fn start_ts(&self) -> u64 {
        self.start_ts
    }

    pub fn end_ts(&self) -> u64 {
        self.end_ts
    }

    /// Timestamp of the last applied event (the start before any).
    pub fn position_ts(&self) -> u64 {
        self.last_ts.unwrap_or(self.start_ts)
    }

    /// Events applied so far.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Whether every event has been applied.
    pub fn at_end(&mut self) -> Result<bool> {
        Ok(self.peek()?.is_none())
    }

    /// Sets the speed (clamped to 1/1000 … 1e6); pacing continues from the current position.
    pub fn set_speed(&mut self, speed: f64) {
        self.speed = if speed.is_finite() {
            speed.clamp(1e-3, 1e6)
        } else {
            1.0
        };
        self.anchor = None;
    }

    pub fn pause(&mut self) {
        self.paused = true;
        self.anchor = None;
    }

    pub fn resume(&mut self) {
        self.paused = false;
        self.anchor = None;
    }

    pub fn toggle_pause(&mut self) {
        if self.paused {
            self.resume()
        } else {
            self.pause()
        }
    }

    /// The next event to apply, loading the next chunk when needed.
    fn peek(&mut self) -> Result<Option<&Event>> {
        while self.pos >= self.buf.len() {
            let next = self.chunk.wrapping_add(1);
            if next >= self.index.len() {
                return Ok(None);
            }
            if next.is_multiple_of(self.snap_every) && !self.snapshots.iter().any(|s| s.0 == next) {
                self.snapshots
                    .push((next, self.applied, self.last_ts, self.model.clone()));
            }
            match self.src.next_chunk()? {
                Some((_, evs)) => {
                    self.buf = evs;
                    self.pos = 0;
                    self.chunk = next;
                }
                None => return Ok(None),
            }
        }
        Ok(self.buf.get(self.pos))
    }

    fn apply_next(&mut self) -> Result<Option<Event>> {
        let Some(e) = self.peek()?.copied() else {
            return Ok(None);
        };
        self.pos += 1;
        self.applied += 1;
        self.model.apply(&e);
        self.last_ts = Some(self.last_ts.map_or(e.ts_ns, |t| t.max(e.ts_ns)));
        self.model.set_lost(self.src.tracer_lost());
        Ok(Some(e))
    }

    /// Applies one event and pauses (the UI's "step").
    pub fn step(&mut self) -> Result<Option<Event>> {
        self.pause();
        self.apply_next()
    }

    /// Applies every event due at wall time `now`: recorded time advances `speed` times as fast
    /// as wall time from the moment playback (re)started. Returns the number applied.
    pub fn tick(&mut self, now: Instant) -> Result<usize> {
        if self.paused {
            return Ok(0);
        }
        let (wall0, ts0) = *self.anchor.get_or_insert((now, self.position_ts()));
        let elapsed = now.saturating_duration_since(wall0).as_secs_f64();
        let target = ts0.saturating_add((elapsed * self.speed * 1e9) as u64);
        let mut n = 0;
        while let Some(e) = self.peek()? {
            if e.ts_ns > target {
                break;
            }
            self.apply_next()?;
            n += 1;
        }
        Ok(n)
    }

    /// Applies everything that is left.
    pub fn run_to_end(&mut self) -> Result<u64> {
        let mut n = 0;
        while self.apply_next()?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    /// Moves to recorded time `ts`: the model afterwards reflects every event with
    /// `ts_ns <= ts` (forward or backward).
    pub fn seek(&mut self, ts: u64) -> Result<()> {
        self.anchor = None;
        // The chunk holding `ts`: the last one starting at or before it.
        let target = self
            .index
            .iter()
            .rposition(|c| c.base_ts <= ts)
            .unwrap_or(0);
        let going_back = self.last_ts.is_some_and(|t| ts < t);
        let next = self.chunk.wrapping_add(1);
        let best = self
            .snapshots
            .iter()
            .filter(|s| s.0 <= target)
            .max_by_key(|s| s.0)
            .map(|s| s.0);
        match best {
            // Going back, or a snapshot beats replaying the chunks in between.
            Some(c) if going_back || c > next => self.restore(c)?,
            None if going_back => self.restore_start()?,
            _ => {}
        }
        while let Some(e) = self.peek()? {
            if e.ts_ns > ts {
                break;
            }
            self.apply_next()?;
        }
        Ok(())
    }

    fn restore(&mut self, chunk: usize) -> Result<()> {
        let i = self
            .snapshots
            .iter()
            .position(|s| s.0 == chunk)
            .expect("snapshot exists");
        let (_, applied, last_ts, model) = &self.snapshots[i];
        self.model = model.clone();
        self.applied = *applied;
        self.last_ts = *last_ts;
        let ci = self.index[chunk];
        self.src.seek(&ci)?;
        self.chunk = chunk.wrapping_sub(1);
        self.buf.clear();
        self.pos = 0;
        Ok(())
    }

    fn restore_start(&mut self) -> Result<()> {
        self.model = Model::new(self.cfg.clone());
        self.applied = 0;
        self.last_ts = None;
        if let Some(ci) = self.index.first().copied() {
            self.src.seek(&ci)?;
        }
        self.chunk = usize::MAX;
        self.buf.clear();
        self.pos = 0;
        Ok(())
    }
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
        let slots: String = p
            .ring
            .slots()
            .iter()
            .map(|s| match (s.kind, s.loss) {
                (SlotKind::Empty, _) => '.',
                (SlotKind::Data, false) => 'd',
                (SlotKind::Data, true) => 'D',
                (SlotKind::Notification { .. }, false) => 'n',
                (SlotKind::Notification { .. }, true) => 'N',
                (SlotKind::Unknown, _) => '?',
            })
            .collect();
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
