//! Rejected splice/tee/vmsplice and interleave alerts, newest first.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::{BAD, DIM, TITLE, WARN, when};
use crate::model::{Interleave, Model, Rejection, StackRefs};
use crate::sinks::tui::app::{App, Focus};
use crate::sinks::tui::view::View;

fn fd(n: i32) -> String {
    if n < 0 { "-".into() } else { n.to_string() }
}

pub fn rejection_line(v: &View, r: &Rejection) -> Line<'static> {
    Line::from(vec![
        Span::styled(when(v, r.ts_ns), DIM),
        Span::raw(" "),
        Span::styled(r.op.name(), WARN),
        Span::raw(format!(" {} {} ", r.tgid, r.comm)),
        Span::raw(format!("fd {}→{} ", fd(r.fd_in), fd(r.fd_out))),
        Span::styled(crate::text::ret_name(r.ret), BAD),
        Span::styled(format!(" pipe:[{}]", r.ino), DIM),
    ])
}

pub fn interleave_line(v: &View, i: &Interleave) -> Line<'static> {
    Line::from(vec![
        Span::styled(when(v, i.post_ts_ns), DIM),
        Span::raw(" "),
        Span::styled("INTERLEAVE ", BAD),
        Span::raw(format!(
            "slot {} in {}/{} {}×{}",
            i.slot,
            i.owner,
            i.owner_tid,
            i.op.name(),
            i.slots_moved
        )),
        Span::styled(format!(" pipe:[{}]", i.ino), DIM),
    ])
}

/// One line of the panel.
pub enum Alert<'a> {
    Rej(&'a Rejection),
    Il(&'a Interleave),
}

impl Alert<'_> {
    pub fn line(&self, v: &View) -> Line<'static> {
        match self {
            Alert::Rej(r) => rejection_line(v, r),
            Alert::Il(i) => interleave_line(v, i),
        }
    }

    pub fn stacks(&self) -> StackRefs {
        match self {
            Alert::Rej(r) => r.stacks,
            Alert::Il(i) => i.stacks,
        }
    }
}

/// Both logs merged, newest first: the panel's lines in order.
pub fn merged(m: &Model) -> Vec<Alert<'_>> {
    let mut items: Vec<(u64, Alert)> = m
        .rejections()
        .iter()
        .map(|r| (r.ts_ns, Alert::Rej(r)))
        .chain(m.interleaves().iter().map(|i| (i.post_ts_ns, Alert::Il(i))))
        .collect();
    items.sort_by_key(|it| std::cmp::Reverse(it.0));
    items.into_iter().map(|(_, a)| a).collect()
}

pub fn render(f: &mut Frame, area: Rect, v: &View, app: &mut App) {
    let m = v.model;
    let rej = m.rejections();
    let il = m.interleaves();
    // Lines are built for the visible ones only.
    let items = merged(m);
    let inner_h = area.height.saturating_sub(1) as usize;
    let max_scroll = items.len().saturating_sub(inner_h);
    app.alert_scroll = app.alert_scroll.min(max_scroll);
    let focus = app.focus == Focus::Alerts;
    let mut title = vec![
        Span::styled(
            " Rejections & alerts ",
            if focus { TITLE.fg(Color::Cyan) } else { TITLE },
        ),
        Span::styled(
            format!("rejected {} ", rej.total()),
            if rej.total() > 0 { WARN } else { Style::new() },
        ),
        Span::styled(
            format!("interleaves {} ", il.total()),
            if il.total() > 0 { BAD } else { Style::new() },
        ),
    ];
    if app.alert_scroll > 0 {
        title.push(Span::styled(format!("↑{} ", app.alert_scroll), DIM));
    }
    let mut lines: Vec<Line> = items
        .iter()
        .skip(app.alert_scroll)
        .take(inner_h)
        .enumerate()
        .map(|(n, it)| {
            let mut l = it.line(v);
            // With the focus here, the top line is the one Enter opens.
            if focus && n == 0 {
                l.spans.insert(0, Span::styled("▶", TITLE.fg(Color::Cyan)));
            }
            l
        })
        .collect();
    if lines.is_empty() {
        lines.push(Line::styled("no rejected splice, no interleave", DIM));
    }
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::TOP)
                .title(Line::from(title)),
        ),
        area,
    );
}
