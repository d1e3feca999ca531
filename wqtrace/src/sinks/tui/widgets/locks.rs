//! Locks of the selected pipe: the mutex owner as last seen (at a post), the rd_wait spinlock
//! posts hold, contention counts and the worst wait, and tasks in pipe waits.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::{BAD, DIM, TITLE, ago, dur};
use crate::model::{Contention, LockKind, PipeState};
use crate::sinks::tui::view::View;

const LABEL: Style = Style::new().fg(Color::Cyan);

/// `1× contended worst 15µs wq-reader←splicer` (waiter ← holder of the worst wait).
fn contention(c: &Contention) -> Vec<Span<'static>> {
    if c.count == 0 {
        return vec![Span::styled("no contention", DIM)];
    }
    let mut v = vec![
        Span::styled(
            format!("{}× contended", c.count),
            Style::new().fg(Color::Yellow),
        ),
        Span::raw(format!(" worst {} {}", dur(c.worst_ns), c.worst_waiter)),
    ];
    if c.worst_holder_tid != 0 {
        v.push(Span::styled(format!("←{}", c.worst_holder), DIM));
    }
    v
}

pub fn lines(v: &View, p: &PipeState) -> Vec<Line<'static>> {
    let l = &p.locks;
    let mut out = Vec::new();
    // The mutex: who held it when a post came in (the only moment the probes read the owner).
    let mut mutex = vec![Span::styled("mutex   ", LABEL)];
    match l.last_owner_at_post {
        Some(o) => {
            mutex.push(Span::styled(format!("{}/{}", o.comm, o.tid), TITLE));
            mutex.push(Span::styled(format!(" {}", ago(v, o.ts_ns)), DIM));
            if l.posts_under_mutex > 1 {
                mutex.push(Span::raw(format!(
                    ", {} posts under it",
                    l.posts_under_mutex
                )));
            }
        }
        None => mutex.push(Span::styled("owner not seen (at posts)", DIM)),
    }
    out.push(Line::from(mutex));
    let mut c = vec![Span::raw("  ")];
    c.extend(contention(l.contention(LockKind::Mutex)));
    out.push(Line::from(c));
    // rd_wait: held by the poster for the duration of each post.
    let mut rd = vec![Span::styled("rd_wait ", LABEL)];
    let h = &l.post_hold;
    if let Some(avg) = h.total_ns.checked_div(h.count) {
        rd.push(Span::raw(format!(
            "hold avg {} max {}",
            dur(avg),
            dur(h.max_ns)
        )));
        rd.push(Span::raw(" · "));
    }
    rd.extend(contention(l.contention(LockKind::RdWait)));
    out.push(Line::from(rd));
    // Waits: tasks asleep on this pipe now (their wait covers the clock), else the last one.
    let mut w = vec![Span::styled("waits   ", LABEL)];
    let ws = &p.waits;
    if ws.count == 0 {
        w.push(Span::styled("none", DIM));
    } else {
        w.push(Span::raw(format!("{}× max {}", ws.count, dur(ws.max_ns))));
        let now: Vec<String> = v
            .model
            .tasks_waiting_at(v.now_ns)
            .into_iter()
            .filter(|t| t.last_wait.is_some_and(|(_, _, pipe)| pipe == p.addr))
            .map(|t| format!("{}/{}", t.comm, t.tid))
            .collect();
        if !now.is_empty() {
            w.push(Span::styled(format!(" waiting: {}", now.join(",")), BAD));
        } else if let Some(t) = v
            .model
            .tasks_sorted()
            .into_iter()
            .filter_map(|t| t.last_wait.map(|w| (w, t)))
            .filter(|((_, _, pipe), _)| *pipe == p.addr)
            .max_by_key(|((_, end, _), _)| *end)
        {
            let ((s, e, _), t) = t;
            w.push(Span::raw(format!(
                " last {}/{} {}",
                t.comm,
                t.tid,
                dur(e.saturating_sub(s))
            )));
            w.push(Span::styled(format!(" {}", ago(v, e)), DIM));
        }
    }
    out.push(Line::from(w));
    out
}

pub fn render(f: &mut Frame, area: Rect, v: &View, p: Option<&PipeState>) {
    let block = Block::default()
        .borders(Borders::TOP)
        .title(Span::styled(" Locks & waits ", TITLE));
    let body = match p {
        Some(p) => lines(v, p),
        None => vec![Line::styled("no pipe selected", DIM)],
    };
    f.render_widget(Paragraph::new(body).block(block), area);
}
