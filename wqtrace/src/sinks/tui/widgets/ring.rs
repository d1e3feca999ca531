//! The ring of the selected pipe: one cell per slot in ring order (index = counter & (size-1)),
//! a marker row under the rows holding the tail (T) and head (H), and the occupancy history.
//!
//! Small rings get wide cells (`███ `); rings too wide for one row wrap into rows of a power of
//! two (a 256-slot ring is 4 rows of 64 at 80 columns); rings too large even for that fold `k`
//! slots into one cell (showing the most notable slot of the group).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Sparkline};

use super::{BAD, DIM, NOTIF, NOTIF_MARK, TITLE};
use crate::model::{PipeState, Slot, SlotKind};
use crate::sinks::tui::view::View;

pub const EMPTY: char = '·';
pub const DATA: char = '▒';
pub const NOTE: char = '█';
pub const LOSS: char = '!';
pub const UNKNOWN: char = '?';

/// Glyph and style of a slot.
pub fn glyph(s: &Slot) -> (char, Style) {
    if s.loss {
        return (LOSS, BAD.bg(Color::Reset));
    }
    match s.kind {
        SlotKind::Empty => (EMPTY, Style::new().fg(Color::DarkGray)),
        SlotKind::Data => (DATA, Style::new().fg(Color::Blue)),
        SlotKind::Notification { .. } => (NOTE, Style::new().fg(Color::Green)),
        SlotKind::Unknown => (UNKNOWN, Style::new().fg(Color::Gray)),
    }
}

/// Which slot of a folded group to show: loss > notification > data > unknown > empty.
fn rank(s: &Slot) -> u8 {
    if s.loss {
        return 4;
    }
    match s.kind {
        SlotKind::Notification { .. } => 3,
        SlotKind::Data => 2,
        SlotKind::Unknown => 1,
        SlotKind::Empty => 0,
    }
}

/// How slots map onto the screen for one ring at one width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Slots per cell (1 unless the ring is huge).
    pub fold: usize,
    /// Cells.
    pub cells: usize,
    /// Columns per cell (glyph repeated `cw - 1` times plus a gap when `cw > 1`).
    pub cw: usize,
    /// Cells per row.
    pub per_row: usize,
    pub rows: usize,
    /// Width of the slot-index prefix of each row (0 for one row).
    pub prefix: usize,
}

/// Lines the panel always uses besides slot and marker rows: title, info, history.
const FIXED: usize = 3;
/// Slot rows at most (before folding).
const MAX_ROWS: usize = 8;

pub fn geometry(size: usize, width: usize, max_rows: usize) -> Option<Geometry> {
    if size == 0 || width < 8 {
        return None;
    }
    let max_rows = max_rows.clamp(1, MAX_ROWS);
    // One row with wide cells when it fits without a prefix.
    let cw = (width / size).min(4);
    if cw >= 1 {
        return Some(Geometry {
            fold: 1,
            cells: size,
            cw,
            per_row: size,
            rows: 1,
            prefix: 0,
        });
    }
    let prefix = format!("{} ", size - 1).len();
    let avail = width - prefix;
    // A power of two per row keeps slot indices round (0, 64, 128, …).
    let per_row = 1usize << (usize::BITS - 1 - avail.leading_zeros());
    let fold = size.div_ceil(per_row * max_rows).max(1);
    let cells = size.div_ceil(fold);
    Some(Geometry {
        fold,
        cells,
        cw: 1,
        per_row,
        rows: cells.div_ceil(per_row),
        prefix,
    })
}

/// Rows the panel wants for pipe `p` at `width`, within `max` (0 when nothing is selected).
pub fn height(p: Option<&PipeState>, width: u16, max: u16) -> u16 {
    let Some(p) = p else {
        return 3.min(max);
    };
    let max_slot_rows = (max as usize).saturating_sub(FIXED + 2);
    let g = geometry(p.ring.slots().len(), width as usize, max_slot_rows.max(1));
    let want = match g {
        // Slot rows plus at most two marker rows.
        Some(g) => FIXED + g.rows + g.rows.min(2),
        None => FIXED,
    };
    (want as u16).min(max)
}

/// The slot rows with their marker rows (only under rows holding T or H).
pub fn slot_lines(p: &PipeState, width: usize, max_rows: usize) -> Vec<Line<'static>> {
    let slots = p.ring.slots();
    let Some(g) = geometry(slots.len(), width, max_rows) else {
        return Vec::new();
    };
    let size = slots.len();
    let t = p.ring.tail() as usize % size / g.fold;
    let h = p.ring.head() as usize % size / g.fold;
    let mut out = Vec::new();
    for r in 0..g.rows {
        let first = r * g.per_row;
        let last = ((r + 1) * g.per_row).min(g.cells);
        let mut spans = Vec::new();
        if g.prefix > 0 {
            spans.push(Span::styled(
                format!("{:>w$} ", first * g.fold, w = g.prefix - 1),
                Style::new().fg(Color::DarkGray),
            ));
        }
        for c in first..last {
            let group = &slots[c * g.fold..((c + 1) * g.fold).min(size)];
            let s = group
                .iter()
                .max_by_key(|s| rank(s))
                .copied()
                .unwrap_or_default();
            let (ch, mut st) = glyph(&s);
            if c == h || c == t {
                st = st.add_modifier(Modifier::UNDERLINED);
            }
            let text = if g.cw > 1 {
                let mut s: String = std::iter::repeat_n(ch, g.cw - 1).collect();
                s.push(' ');
                s
            } else {
                ch.to_string()
            };
            spans.push(Span::styled(text, st));
        }
        out.push(Line::from(spans));
        if (first..last).contains(&t) || (first..last).contains(&h) {
            let mut m = String::new();
            m.push_str(&" ".repeat(g.prefix));
            for c in first..last {
                let mark = match (c == t, c == h) {
                    (true, true) if g.cw >= 3 => "TH",
                    (true, true) => "^",
                    (true, false) => "T",
                    (false, true) => "H",
                    _ => "",
                };
                m.push_str(mark);
                m.push_str(&" ".repeat(g.cw.saturating_sub(mark.chars().count())));
            }
            out.push(Line::styled(
                m.trim_end().to_string(),
                Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            ));
        }
    }
    out
}

/// The info line: occupancy, head/tail (counter → slot), wrap, notes.
pub fn info_line(p: &PipeState) -> Line<'static> {
    let r = &p.ring;
    let size = r.size();
    let occ = r.occupancy();
    let mut spans = vec![Span::styled(format!("occ {occ}/{size}"), TITLE)];
    if size > 0 {
        spans.push(Span::raw(format!(
            " {:>3}%",
            occ as u64 * 100 / size as u64
        )));
        let t = r.tail() % size;
        let h = r.head() % size;
        spans.push(Span::styled(
            format!("  T {}→{t}  H {}→{h}", r.tail(), r.head()),
            Style::new().fg(Color::Yellow),
        ));
        if occ > 0 && occ <= size && t + occ > size {
            spans.push(Span::styled(" wrapped", Style::new().fg(Color::Cyan)));
        }
    }
    spans.push(Span::styled(format!("  max {}", p.max_occupancy), DIM));
    if p.nr_notes > 0 {
        spans.push(Span::raw(format!(
            "  notes {}/{} (max {})",
            p.notes_in_use, p.nr_notes, p.max_notes_in_use
        )));
        if p.notes_leaked.count > 0 {
            spans.push(Span::styled(
                format!("  {} notes leaked", p.notes_leaked.count),
                BAD,
            ));
        }
    }
    let losses = p.ring.slots().iter().filter(|s| s.loss).count();
    if losses > 0 {
        spans.push(Span::styled(format!("  {losses} loss-flagged"), BAD));
    }
    let s = &p.posts;
    if s.attempts > 0 {
        // One outcome per post attempt, as `report` counts them.
        spans.push(Span::raw(format!(
            "  posts {} landed {}",
            s.attempts, s.posted
        )));
        let parts = [
            ("ring-full", s.ring_full, BAD),
            ("notes-full", s.notes_full, BAD),
            ("lost(why?)", s.lost_reason_unknown, BAD),
            ("filtered", s.filtered, DIM),
            ("unknown", s.unknown, Style::new().fg(Color::Yellow)),
        ];
        for (name, n, style) in parts {
            if n > 0 {
                spans.push(Span::styled(format!(" {name} {n}"), style));
            }
        }
    }
    Line::from(spans)
}

const LEGEND: &str = " ·empty ▒data █notif !loss ?unseen";

// Long on purpose: a panel's layout, drawn top to bottom.
pub fn render(f: &mut Frame, area: Rect, v: &View, p: Option<&PipeState>) {
    if area.height == 0 {
        return;
    }
    let mut title = vec![Span::styled(" Ring ", TITLE)];
    if let Some(p) = p {
        if p.notification {
            title.push(Span::styled(format!("{NOTIF_MARK} {} ", p.label()), NOTIF));
            title.push(Span::styled("notification pipe ", NOTIF));
        } else {
            title.push(Span::raw(format!("{} ", p.label())));
        }
        if p.is_released() {
            title.push(Span::styled("(released) ", DIM));
        }
    }
    let block = Block::default()
        .borders(Borders::TOP)
        .title(Line::from(title));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let Some(p) = p else {
        f.render_widget(Paragraph::new("no pipe selected").style(DIM), inner);
        return;
    };
    let w = inner.width as usize;
    let h = inner.height as usize;
    let mut lines = vec![info_line(p)];
    if p.ring.size() == 0 {
        lines.push(Line::styled("ring size not seen yet", DIM));
    } else if p.ring.slots().is_empty() {
        lines.push(Line::styled(
            format!(
                "{}-slot ring: too large to picture (occupancy only)",
                p.ring.size()
            ),
            DIM,
        ));
    } else {
        let mut slot_rows = h.saturating_sub(2);
        // Leave room for the marker rows.
        let mut sl = slot_lines(p, w, slot_rows);
        while sl.len() + 2 > h && slot_rows > 1 {
            slot_rows -= 1;
            sl = slot_lines(p, w, slot_rows);
        }
        lines.extend(sl);
    }
    let used = lines.len().min(h) as u16;
    f.render_widget(
        Paragraph::new(lines),
        Rect {
            height: used,
            ..inner
        },
    );
    // Occupancy history on the last line: sparkline, then the legend.
    if inner.height > used {
        let y = inner.y + inner.height - 1;
        let label = "hist ";
        let legend_w = if w >= 60 { LEGEND.chars().count() } else { 0 };
        let spark_w = w.saturating_sub(label.len() + legend_w);
        f.render_widget(
            Paragraph::new(Span::styled(label, DIM)),
            Rect::new(inner.x, y, label.len() as u16, 1),
        );
        let data: Vec<u64> = p
            .history
            .dense(spark_w, v.now_ns.max(p.last_ts_ns))
            .into_iter()
            .map(u64::from)
            .collect();
        f.render_widget(
            Sparkline::default()
                .data(&data)
                .max(u64::from(p.ring.size().max(1)))
                .style(Style::new().fg(Color::Cyan)),
            Rect::new(inner.x + label.len() as u16, y, spark_w as u16, 1),
        );
        if legend_w > 0 {
            f.render_widget(
                Paragraph::new(Span::styled(LEGEND, DIM)),
                Rect::new(
                    inner.x + (label.len() + spark_w) as u16,
                    y,
                    legend_w as u16,
                    1,
                ),
            );
        }
    }
}
