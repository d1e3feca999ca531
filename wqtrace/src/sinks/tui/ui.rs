//! The screen layout: header, pipes table, ring of the selected pipe, locks | alerts, footer.
//!
//! ```text
//! ┌ header: kernel, mode, events/s, lost; attach methods; (no notification pipes → demo hint)
//! ├ Pipes: one row per traced pipe, notification pipes first (◆)
//! ├ Ring: one cell per slot, H/T markers, wrap-around, occupancy sparkline
//! ├ Locks (selected pipe)        │ Rejections & alerts (newest first)
//! └ footer: key hints (or the filter being typed)
//! ```
//!
//! Everything fits 80×24: the ring gets the rows it needs (a 256-slot ring is 4 rows of 64),
//! the table the rest.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::app::App;
use super::view::View;
use super::widgets::{self, DIM, KEY};

/// Draws one frame.
pub fn draw(f: &mut Frame, v: &View, app: &mut App) {
    let area = f.area();
    let header_h = widgets::header::height(v, area.width);
    let rows = app.visible(v.model);
    let sel = app.selected_index(&rows).map(|i| rows[i]);
    let body = area.height.saturating_sub(header_h + 1);
    // The bottom panels: 4 lines + title, more on tall screens.
    let bottom_h = (body / 4).clamp(5, 12);
    // The table keeps at least its title, header and two rows.
    let ring_max = body.saturating_sub(bottom_h + 4);
    let ring_h = widgets::ring::height(sel, area.width, ring_max);
    let [header, pipes, ring, bottom, footer] = Layout::vertical([
        Constraint::Length(header_h),
        Constraint::Min(0),
        Constraint::Length(ring_h),
        Constraint::Length(bottom_h),
        Constraint::Length(1),
    ])
    .areas(area);
    widgets::header::render(f, header, v, app);
    widgets::pipes::render(f, pipes, v, app, &rows);
    widgets::ring::render(f, ring, v, sel);
    let [locks, alerts] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)])
            .spacing(1)
            .areas(bottom);
    widgets::locks::render(f, locks, v, sel);
    widgets::alerts::render(f, alerts, v, app);
    render_footer(f, footer, app);
    if app.show_help {
        render_help(f, area, app);
    } else if app.show_detail {
        render_detail(f, area, v, app);
    }
}

/// The top alert of the alerts panel with its kernel and user stacks, over everything.
fn render_detail(f: &mut Frame, area: Rect, v: &View, app: &App) {
    let items = widgets::alerts::merged(v.model);
    let Some(alert) = items.get(app.alert_scroll) else {
        return;
    };
    let mut lines = vec![alert.line(v), Line::raw("")];
    let refs = alert.stacks();
    let table = v
        .stacks
        .as_ref()
        .map(|t| t.read().unwrap_or_else(|p| p.into_inner()));
    for (user, r, side) in [
        (false, refs.kstack, "kernel stack"),
        (true, refs.ustack, "user stack"),
    ] {
        let s = table.as_ref().and_then(|t| t.get(r, user, refs.tgid));
        lines.push(Line::styled(format!("{side}:"), KEY));
        match s {
            Some(s) => {
                for l in s.lines() {
                    lines.push(Line::raw(format!(
                        "  {}",
                        crate::text::escape(l.as_bytes())
                    )));
                }
                if let Some(e) = s.error.as_ref().filter(|_| !s.frames.is_empty()) {
                    lines.push(Line::styled(format!("  ({e})"), DIM));
                }
            }
            None => lines.push(Line::styled(
                "  none taken (the session ran with --stacks none, or before stacks existed)",
                DIM,
            )),
        }
    }
    let w = area.width.min(100);
    let h = (lines.len() as u16 + 2).min(area.height);
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" alert — any key closes "),
        ),
        r,
    );
}

fn hint<'a>(k: &'a str, what: &'a str) -> [Span<'a>; 3] {
    [Span::styled(k, KEY), Span::raw(" "), Span::raw(what)]
}

fn render_footer(f: &mut Frame, area: Rect, app: &App) {
    if app.editing_search {
        let l = Line::from(vec![
            Span::styled("filter: ", KEY),
            Span::raw(app.search.clone()),
            Span::styled("█", Style::new().add_modifier(Modifier::SLOW_BLINK)),
            Span::styled("  Enter keep · Esc clear", DIM),
        ]);
        f.render_widget(Paragraph::new(l), area);
        return;
    }
    let mut keys: Vec<(&str, &str)> = vec![("q", "quit"), ("p", "pause")];
    if app.replay {
        keys.extend([("n", "step"), ("←→[]", "seek"), ("+-", "speed")]);
    }
    keys.push(("↑↓", "select"));
    if !app.replay {
        // (Replay needs the room for its keys at 80 columns; `?` lists Tab and Enter.)
        keys.push(("Tab", "focus"));
        if app.focus == super::app::Focus::Alerts {
            keys.push(("Enter", "stacks"));
        }
    }
    keys.extend([("/", "filter"), ("s", "sort"), ("?", "help")]);
    let mut spans = Vec::new();
    for (i, (k, w)) in keys.into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw(" "));
        }
        spans.extend(hint(k, w));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The key reference, as a centred box over everything.
pub const HELP: &[(&str, &str)] = &[
    ("q Esc ^C", "quit (probes detached, terminal restored)"),
    (
        "p Space",
        "pause (live: freeze the display, events still counted)",
    ),
    ("↑↓ j k", "select a pipe (or scroll alerts, see Tab)"),
    ("PgUp PgDn", "move by 10; g / G first / last"),
    ("Tab", "focus: pipes table ↔ alerts"),
    ("Enter", "alerts: the top alert's kernel and user stacks"),
    ("/", "filter pipes by comm, pid or inode (Esc clears)"),
    ("s S", "sort: activity, events, occupancy, inode"),
    ("n", "replay: one event forward (pauses)"),
    ("← →  [ ]", "replay: seek 1 s / 10 s"),
    ("+ -", "replay: speed ×2 / ÷2"),
    ("", ""),
    ("ring", "· empty  ▒ data  █ notification  ! loss-flagged"),
    ("", "? unseen (filled before tracing)  T tail  H head"),
];

fn render_help(f: &mut Frame, area: Rect, app: &App) {
    let w = 70.min(area.width);
    let h = (HELP.len() as u16 + 2).min(area.height);
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let lines: Vec<Line> = HELP
        .iter()
        .filter(|(k, _)| app.replay || !k.starts_with(['n', '←', '+']))
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!("{k:<10}"), KEY),
                Span::raw(*what),
            ])
        })
        .collect();
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" keys — any key closes "),
        ),
        r,
    );
}
