//! View state and key handling: what the user chose (selection, order, filter, focus, pause),
//! independent of where events come from. Keys turn into [`Action`]s for the feed (live or
//! replay) to carry out; everything else is handled here.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::widgets::TableState;

use crate::model::{Model, PipeOrder, PipeState};

/// How long a released pipe stays in the table (event clock).
pub const GONE_LINGER_NS: u64 = 10_000_000_000;

/// What a key asks of the event feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    Quit,
    TogglePause,
    /// Replay: apply one event (and pause).
    Step,
    /// Replay: move by this many milliseconds of recorded time.
    Seek(i64),
    /// Replay: double (true) or halve (false) the speed.
    Speed(bool),
}

/// Which panel ↑/↓ act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Focus {
    #[default]
    Pipes,
    Alerts,
}

/// The order `s` cycles through.
pub const ORDERS: [PipeOrder; 4] = [
    PipeOrder::Activity,
    PipeOrder::Events,
    PipeOrder::Occupancy,
    PipeOrder::Ino,
];

pub fn order_name(o: PipeOrder) -> &'static str {
    match o {
        PipeOrder::Activity => "activity",
        PipeOrder::Events => "events",
        PipeOrder::Occupancy => "occupancy",
        PipeOrder::Ino => "inode",
    }
}

#[derive(Debug, Default)]
pub struct App {
    pub order: PipeOrder,
    /// The TUI's search (shown as "filter" to users; not the in-kernel filters): a substring
    /// matched against the pipe's inode, label and owners' comm / pid.
    pub search: String,
    /// `/` was pressed: keys edit the search until Enter or Esc.
    pub editing_search: bool,
    /// Display frozen (live) / playback paused (replay): the feed keeps the truth.
    pub paused: bool,
    pub show_help: bool,
    /// The selected alert's details (its stacks) are shown over the screen.
    pub show_detail: bool,
    pub focus: Focus,
    /// The selected pipe, by kernel address (stable while rows reorder).
    pub selected: Option<u64>,
    /// The user picked `selected` (arrows): keep it. Otherwise the selection follows the top
    /// row, so a notification pipe that shows up later is the one on display.
    pub pinned: bool,
    /// Row offset of the pipes table (kept between frames).
    pub table: TableState,
    /// Alerts scrolled back by this many lines (0 = newest on top).
    pub alert_scroll: usize,
    /// Replay keys (step, seek, speed) are live.
    pub replay: bool,
}

impl App {
    pub fn new(replay: bool) -> Self {
        Self {
            replay,
            ..Self::default()
        }
    }

    /// Whether `p` passes the filter.
    pub fn matches(&self, p: &PipeState) -> bool {
        if self.search.is_empty() {
            return true;
        }
        let f = self.search.to_lowercase();
        p.ino.to_string().contains(&f)
            || p.label().to_lowercase().contains(&f)
            || p.owners
                .iter()
                .any(|o| o.comm.as_str().to_lowercase().contains(&f) || o.tgid.to_string() == f)
    }

    /// The pipes the table shows, in order (notification pipes first, live before released in
    /// each kind). A released pipe stays [`GONE_LINGER_NS`] (event clock) so its end can be
    /// read, then leaves the table — short-lived pipes would otherwise bury the live ones —
    /// unless it is the pinned selection or the filter asks for it (the model and reports keep
    /// it).
    pub fn visible<'m>(&self, m: &'m Model) -> Vec<&'m PipeState> {
        let cutoff = m.now_ns().saturating_sub(GONE_LINGER_NS);
        m.pipes_sorted(self.order)
            .into_iter()
            .filter(|p| {
                p.released_ts_ns.is_none_or(|t| t >= cutoff)
                    || !self.search.is_empty()
                    || (self.pinned && self.selected == Some(p.addr))
            })
            .filter(|p| self.matches(p))
            .collect()
    }

    /// Index of the selected pipe in `rows`, fixing the selection up when it vanished (filtered
    /// out, evicted): then the first row is selected.
    pub fn selected_index(&mut self, rows: &[&PipeState]) -> Option<usize> {
        if !self.pinned {
            self.selected = rows.first().map(|p| p.addr);
        }
        if let Some(i) = self
            .selected
            .and_then(|a| rows.iter().position(|p| p.addr == a))
        {
            return Some(i);
        }
        self.selected = rows.first().map(|p| p.addr);
        self.selected.map(|_| 0)
    }

    /// The selected pipe, if it is visible.
    pub fn selected_pipe<'m>(&mut self, m: &'m Model) -> Option<&'m PipeState> {
        let rows = self.visible(m);
        let i = self.selected_index(&rows)?;
        Some(rows[i])
    }

    fn move_selection(&mut self, m: &Model, delta: isize) {
        let rows = self.visible(m);
        if rows.is_empty() {
            self.selected = None;
            return;
        }
        let i = self.selected_index(&rows).unwrap_or(0) as isize;
        let j = (i + delta).clamp(0, rows.len() as isize - 1) as usize;
        self.selected = Some(rows[j].addr);
        // Back on the top row: follow the top again.
        self.pinned = j != 0;
    }

    fn scroll(&mut self, m: &Model, delta: isize) {
        match self.focus {
            Focus::Pipes => self.move_selection(m, delta),
            Focus::Alerts => {
                self.alert_scroll = self.alert_scroll.saturating_add_signed(-delta);
            }
        }
    }

    /// Handles one key. `m` is the model on screen (for moving the selection).
    /// A key while `/` edits the search.
    fn edit_search(&mut self, code: KeyCode, ctrl: bool) {
        match code {
            KeyCode::Enter => self.editing_search = false,
            KeyCode::Esc => {
                self.editing_search = false;
                self.search.clear();
            }
            KeyCode::Backspace => {
                self.search.pop();
            }
            KeyCode::Char('u') if ctrl => self.search.clear(),
            KeyCode::Char(c) if !ctrl => self.search.push(c),
            _ => {}
        }
    }

    pub fn on_key(&mut self, k: KeyEvent, m: &Model) -> Action {
        if k.kind == KeyEventKind::Release {
            return Action::None;
        }
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(k.code, KeyCode::Char('c') | KeyCode::Char('d')) {
            return Action::Quit;
        }
        if self.editing_search {
            self.edit_search(k.code, ctrl);
            return Action::None;
        }
        if self.show_help || self.show_detail {
            // Any key closes the help or the details; q still quits.
            self.show_help = false;
            self.show_detail = false;
            if k.code != KeyCode::Char('q') {
                return Action::None;
            }
        }
        match k.code {
            KeyCode::Char('q') => Action::Quit,
            KeyCode::Esc if !self.search.is_empty() => {
                self.search.clear();
                Action::None
            }
            KeyCode::Esc => Action::Quit,
            KeyCode::Char('p') | KeyCode::Char(' ') => {
                self.paused = !self.paused;
                Action::TogglePause
            }
            KeyCode::Char('?') | KeyCode::Char('h') | KeyCode::F(1) => {
                self.show_help = true;
                Action::None
            }
            // The alert at the top of the alerts panel: its details and stacks.
            KeyCode::Enter if self.focus == Focus::Alerts => {
                self.show_detail = m.rejections().total() + m.interleaves().total() > 0;
                Action::None
            }
            KeyCode::Char('/') => {
                self.editing_search = true;
                Action::None
            }
            KeyCode::Char('s') => {
                let i = ORDERS.iter().position(|&o| o == self.order).unwrap_or(0);
                self.order = ORDERS[(i + 1) % ORDERS.len()];
                Action::None
            }
            KeyCode::Char('S') => {
                let i = ORDERS.iter().position(|&o| o == self.order).unwrap_or(0);
                self.order = ORDERS[(i + ORDERS.len() - 1) % ORDERS.len()];
                Action::None
            }
            // Two panels take focus: forward and back are the same toggle.
            KeyCode::Tab | KeyCode::BackTab => {
                self.focus = match self.focus {
                    Focus::Pipes => Focus::Alerts,
                    Focus::Alerts => Focus::Pipes,
                };
                Action::None
            }
            KeyCode::Up
            | KeyCode::Char('k')
            | KeyCode::Down
            | KeyCode::Char('j')
            | KeyCode::PageUp
            | KeyCode::PageDown
            | KeyCode::Home
            | KeyCode::Char('g')
            | KeyCode::End
            | KeyCode::Char('G') => {
                self.scroll(m, scroll_step(k.code));
                Action::None
            }
            KeyCode::Char('n') if self.replay => Action::Step,
            KeyCode::Left if self.replay => Action::Seek(-1_000),
            KeyCode::Right if self.replay => Action::Seek(1_000),
            KeyCode::Char('[') if self.replay => Action::Seek(-10_000),
            KeyCode::Char(']') if self.replay => Action::Seek(10_000),
            KeyCode::Char('+') | KeyCode::Char('=') if self.replay => Action::Speed(true),
            KeyCode::Char('-') | KeyCode::Char('_') if self.replay => Action::Speed(false),
            _ => Action::None,
        }
    }
}

/// Rows a scrolling key moves: one, a page, or to either end.
fn scroll_step(code: KeyCode) -> isize {
    match code {
        KeyCode::Up | KeyCode::Char('k') => -1,
        KeyCode::Down | KeyCode::Char('j') => 1,
        KeyCode::PageUp => -10,
        KeyCode::PageDown => 10,
        KeyCode::Home | KeyCode::Char('g') => isize::MIN / 2,
        _ => isize::MAX / 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::fixtures::{self, NPIPE, NPIPE_INO, PIPE, PIPE_INO};

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    fn ch(c: char) -> KeyEvent {
        key(KeyCode::Char(c))
    }

    /// The fixture session stopped before both pipes are released (so both are listed).
    fn model() -> Model {
        let mut m = Model::default();
        let evs = fixtures::notification_session();
        for e in &evs[..evs.len() - 3] {
            m.apply(e);
        }
        m
    }

    #[test]
    fn quit_keys() {
        let m = model();
        let mut a = App::new(false);
        assert_eq!(a.on_key(ch('q'), &m), Action::Quit);
        assert_eq!(a.on_key(key(KeyCode::Esc), &m), Action::Quit);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(a.on_key(ctrl_c, &m), Action::Quit);
        // Ctrl-C quits even while typing a filter; q there is just a letter.
        a.on_key(ch('/'), &m);
        assert_eq!(a.on_key(ch('q'), &m), Action::None);
        assert_eq!(a.search, "q");
        assert_eq!(a.on_key(ctrl_c, &m), Action::Quit);
    }

    #[test]
    fn filter_by_comm_and_inode() {
        let m = model();
        let mut a = App::new(false);
        assert_eq!(a.visible(&m).len(), 2);
        a.on_key(ch('/'), &m);
        assert!(a.editing_search);
        for c in "PRODU".chars() {
            a.on_key(ch(c), &m);
        }
        a.on_key(key(KeyCode::Enter), &m);
        assert!(!a.editing_search);
        let v: Vec<u64> = a.visible(&m).iter().map(|p| p.ino).collect();
        assert_eq!(v, [PIPE_INO], "case-insensitive comm match");
        assert_eq!(a.selected_pipe(&m).map(|p| p.addr), Some(PIPE));
        // By inode number.
        a.on_key(ch('/'), &m);
        for _ in 0..5 {
            a.on_key(key(KeyCode::Backspace), &m);
        }
        for c in NPIPE_INO.to_string().chars() {
            a.on_key(ch(c), &m);
        }
        a.on_key(key(KeyCode::Enter), &m);
        let v: Vec<u64> = a.visible(&m).iter().map(|p| p.ino).collect();
        assert_eq!(v, [NPIPE_INO]);
        assert_eq!(a.selected_pipe(&m).map(|p| p.addr), Some(NPIPE));
        // Esc clears the filter (and does not quit while one is set).
        assert_eq!(a.on_key(key(KeyCode::Esc), &m), Action::None);
        assert!(a.search.is_empty());
        assert_eq!(a.visible(&m).len(), 2);
    }

    #[test]
    fn sort_cycles_and_notification_pipes_stay_first() {
        let m = model();
        let mut a = App::new(false);
        let mut seen = vec![a.order];
        for _ in 0..4 {
            a.on_key(ch('s'), &m);
            seen.push(a.order);
            assert_eq!(a.visible(&m)[0].addr, NPIPE, "{:?}", a.order);
        }
        assert_eq!(seen, [ORDERS.to_vec(), vec![ORDERS[0]]].concat());
        a.on_key(ch('S'), &m);
        assert_eq!(a.order, PipeOrder::Ino);
    }

    #[test]
    fn selection_moves_and_follows_the_pipe() {
        let m = model();
        let mut a = App::new(false);
        assert_eq!(a.selected_pipe(&m).map(|p| p.addr), Some(NPIPE));
        a.on_key(key(KeyCode::Down), &m);
        assert_eq!(a.selected, Some(PIPE));
        a.on_key(key(KeyCode::Down), &m);
        assert_eq!(a.selected, Some(PIPE), "clamped at the last row");
        assert!(a.pinned);
        a.on_key(ch('k'), &m);
        assert_eq!(a.selected, Some(NPIPE));
        assert!(!a.pinned, "top row: the selection follows the top again");
        // Tab moves the focus to the alerts: arrows scroll them instead.
        a.on_key(key(KeyCode::Tab), &m);
        a.on_key(key(KeyCode::Up), &m);
        assert_eq!((a.selected, a.alert_scroll), (Some(NPIPE), 1));
    }

    #[test]
    fn unpinned_selection_follows_the_top_row() {
        let evs = fixtures::notification_session();
        // The ordinary pipe alone first, then the notification pipe appears above it.
        let (np, p): (Vec<_>, Vec<_>) = evs[..evs.len() - 3].iter().partition(|e| e.pipe == NPIPE);
        let mut m = Model::default();
        p.iter().for_each(|e| m.apply(e));
        let mut a = App::new(false);
        assert_eq!(a.selected_pipe(&m).map(|p| p.addr), Some(PIPE));
        np.iter().for_each(|e| m.apply(e));
        assert_eq!(a.selected_pipe(&m).map(|p| p.addr), Some(NPIPE));
        // Once the user picks a row, it stays picked.
        a.on_key(key(KeyCode::Down), &m);
        let mut m2 = m.clone();
        m2.apply(&evs[0]);
        assert_eq!(a.selected_pipe(&m2).map(|p| p.addr), Some(PIPE));
    }

    #[test]
    fn pause_help_and_replay_keys() {
        let m = model();
        let mut live = App::new(false);
        assert_eq!(live.on_key(ch('p'), &m), Action::TogglePause);
        assert!(live.paused);
        assert_eq!(live.on_key(ch('p'), &m), Action::TogglePause);
        assert!(!live.paused);
        // Seek keys mean nothing live.
        assert_eq!(live.on_key(key(KeyCode::Right), &m), Action::None);
        assert_eq!(live.on_key(ch('n'), &m), Action::None);
        live.on_key(ch('?'), &m);
        assert!(live.show_help);
        assert_eq!(live.on_key(ch('x'), &m), Action::None);
        assert!(!live.show_help);

        let mut r = App::new(true);
        assert_eq!(r.on_key(ch('n'), &m), Action::Step);
        assert_eq!(r.on_key(key(KeyCode::Left), &m), Action::Seek(-1_000));
        assert_eq!(r.on_key(ch(']'), &m), Action::Seek(10_000));
        assert_eq!(r.on_key(ch('+'), &m), Action::Speed(true));
        assert_eq!(r.on_key(ch('-'), &m), Action::Speed(false));
    }
}
