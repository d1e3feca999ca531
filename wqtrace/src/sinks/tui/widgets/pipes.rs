//! The pipes table: one row per traced pipe, notification pipes first and marked.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Row, Table};

use super::{BAD, DIM, NOTIF, NOTIF_MARK, TITLE, count, fit};
use crate::model::PipeState;
use crate::sinks::tui::app::{App, Focus, order_name};
use crate::sinks::tui::view::View;

/// Column headers, in order.
pub const COLUMNS: [&str; 10] = [
    "PIPE",
    "PROCESSES",
    "SIZE",
    "OCC",
    "NOTES",
    "POSTED",
    "LOST",
    "REJ",
    "EV/S",
    "",
];

/// A terminal at least this wide shows the CGROUP column (at 80 columns the processes need
/// the room).
pub const CGROUP_MIN_WIDTH: u16 = 110;

/// The first owner's cgroup path, its end kept when it does not fit (`…/foo.service`).
pub fn cgroup(p: &PipeState, t: Option<&crate::cgroup::CgroupTable>, w: usize) -> String {
    let Some(o) = p.owners.first().filter(|o| o.cgroup != 0) else {
        return "-".into();
    };
    let path = t
        .and_then(|t| t.path(o.cgroup).map(str::to_string))
        .unwrap_or_else(|| format!("#{}", o.cgroup));
    let n = path.chars().count();
    if n <= w {
        path
    } else if w == 0 {
        String::new()
    } else {
        std::iter::once('…')
            .chain(path.chars().skip(n - (w - 1)))
            .collect()
    }
}

/// "comm/pid" of the pipe's first owner, "+N" for the others, "+?" when ops the kernel
/// totalled (`PipeState::totalled_ops`) may have come from tasks not shown.
pub fn owners(p: &PipeState, w: usize) -> String {
    let unknown = if p.totalled_ops > 0 { " +?" } else { "" };
    let Some(first) = p.owners.first() else {
        return if unknown.is_empty() { "-" } else { "?" }.into();
    };
    let more = if p.owners.len() > 1 {
        format!(" +{}{unknown}", p.owners.len() - 1)
    } else {
        unknown.to_string()
    };
    let base = format!("{}/{}", first.comm, first.tgid);
    format!(
        "{}{more}",
        fit(&base, w.saturating_sub(more.chars().count()))
    )
}

// Long on purpose: a panel's layout, drawn top to bottom.
pub fn render(f: &mut Frame, area: Rect, v: &View, app: &mut App, rows: &[&PipeState]) {
    let now = v.now_ns;
    let wide = area.width >= CGROUP_MIN_WIDTH;
    let cgroup_w = if wide { (area.width - 58) / 2 } else { 0 };
    let procs_w = area.width.saturating_sub(58 + cgroup_w).max(10) as usize;
    let cgroups = v
        .cgroups
        .as_ref()
        .map(|t| t.read().unwrap_or_else(|p| p.into_inner()));
    let body: Vec<Row> = rows
        .iter()
        .map(|p| {
            // 0: a pipe first seen by a post, before any syscall named it.
            let ino = if p.ino != 0 {
                p.ino.to_string()
            } else {
                "?".to_string()
            };
            let mark = if p.notification {
                Span::styled(format!("{NOTIF_MARK}{ino}"), NOTIF)
            } else {
                Span::raw(format!(" {ino}"))
            };
            let size = p.ring.size();
            let occ = p.occupancy();
            let occ_style = if size > 0 && occ >= size {
                BAD
            } else if size > 0 && occ * 4 >= size * 3 {
                Style::new().fg(Color::Yellow)
            } else {
                Style::new()
            };
            let notes = if p.nr_notes > 0 {
                format!("{}/{}", p.notes_in_use, p.nr_notes)
            } else {
                "-".into()
            };
            let (posted, lost) = if p.notification || p.posts.attempts > 0 {
                (p.posts.posted.to_string(), p.posts.lost.to_string())
            } else {
                ("-".into(), "-".into())
            };
            let lost_style = if p.posts.lost > 0 { BAD } else { Style::new() };
            let rej = p.rejected();
            let rej_style = if rej > 0 {
                Style::new().fg(Color::Yellow)
            } else {
                Style::new()
            };
            let state = if p.is_released() {
                Span::styled("gone", DIM)
            } else {
                Span::raw("")
            };
            let mut cells = vec![Cell::from(mark), Cell::from(owners(p, procs_w))];
            if wide {
                cells.push(Cell::from(Span::styled(
                    crate::text::escape(
                        cgroup(p, cgroups.as_deref(), cgroup_w as usize).as_bytes(),
                    )
                    .into_owned(),
                    DIM,
                )));
            }
            cells.extend([
                Cell::from(if size > 0 {
                    size.to_string()
                } else {
                    "?".into()
                }),
                Cell::from(Span::styled(format!("{occ}"), occ_style)),
                Cell::from(notes),
                Cell::from(posted),
                Cell::from(Span::styled(lost, lost_style)),
                Cell::from(Span::styled(rej.to_string(), rej_style)),
                Cell::from(count(p.rate.per_sec(now.max(p.last_ts_ns)))),
                Cell::from(state),
            ]);
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(9),
        Constraint::Min(10),
        Constraint::Length(4),
        Constraint::Length(4),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Length(4),
        Constraint::Length(5),
        Constraint::Length(4),
    ];
    let mut header: Vec<Cell> = COLUMNS.iter().map(|c| Cell::from(*c).style(DIM)).collect();
    if wide {
        widths.insert(2, Constraint::Length(cgroup_w));
        header.insert(2, Cell::from("CGROUP").style(DIM));
    }
    let header = Row::new(header);
    let focus = app.focus == Focus::Pipes;
    let mut title = vec![
        Span::styled(" Pipes ", if focus { TITLE.fg(Color::Cyan) } else { TITLE }),
        Span::styled(format!("{} ", rows.len()), DIM),
    ];
    let hidden = v.model.pipes().count().saturating_sub(rows.len());
    if hidden > 0 && app.search.is_empty() {
        title.push(Span::styled(format!("(+{hidden} released) "), DIM));
    }
    title.extend([
        Span::styled(format!("{NOTIF_MARK}=notification "), NOTIF),
        Span::styled(format!("sort:{} ", order_name(app.order)), DIM),
    ]);
    if !app.search.is_empty() {
        title.push(Span::styled(
            format!("filter:{} ", app.search),
            Style::new().fg(Color::Yellow),
        ));
    }
    let empty = rows.is_empty();
    let table = Table::new(body, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .block(
            Block::default()
                .borders(Borders::TOP)
                .title(Line::from(title)),
        );
    let sel = app.selected_index(rows);
    app.table.select(sel);
    f.render_stateful_widget(table, area, &mut app.table);
    if empty && area.height > 2 {
        let msg = if app.search.is_empty() {
            "no pipe traced yet: waiting for pipe activity…"
        } else {
            "no pipe matches the filter (Esc clears it)"
        };
        let r = Rect::new(area.x + 1, area.y + 2, area.width.saturating_sub(2), 1);
        f.render_widget(ratatui::widgets::Paragraph::new(msg).style(DIM), r);
    }
}
