//! Header: mode, kernel, events/s, lost events, pipes; attach method per hook and (live) what
//! tracing costs; and, on a kernel
//! without notification pipes, where to see them.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{BAD, DIM, NOTIF, NOTIF_MARK, TITLE, WARN, count};
use crate::sinks::tui::app::App;
use crate::sinks::tui::view::{Mode, View};

/// The hint shown when the traced kernel has no notification pipes.
pub const NO_NOTIF_HINT: &str =
    "no notification pipes on this kernel; see them in the VM: cargo xtask demo";

pub fn height(v: &View, width: u16) -> u16 {
    let cost_line = v.cost.is_some() && !cost_fits_beside(v, width);
    2 + u16::from(!v.meta.notification_pipes) + u16::from(cost_line)
}

/// Whether the cost fits on the attach line (else it gets a line of its own).
fn cost_fits_beside(v: &View, width: u16) -> bool {
    let Some(cost) = &v.cost else { return false };
    let attach: usize = attach_line(&v.meta.attach).iter().map(|s| s.width()).sum();
    attach + " │ cost ".len() + cost.short().chars().count() <= width as usize
}

/// Short hook names for the attach line.
fn hook_short(h: &str) -> &str {
    match h {
        "ring_ops" => "ops",
        "off_cpu_waits" => "offcpu",
        "lock_contention" => "locks",
        "notification_post" => "post",
        "get_pipe_info" => "gpi",
        "pipe_wait" => "wait",
        "pipe_release" => "release",
        other => other,
    }
}

/// `fentry: post,gpi  tp_btf: ops,offcpu,locks  n/a: wait` (hooks grouped by method).
pub fn attach_line(attach: &[(String, String)]) -> Vec<Span<'static>> {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for (hook, m) in attach {
        let method = if crate::probe::plan::Method::says_unavailable(m) {
            "n/a"
        } else {
            m.split_whitespace().next().unwrap_or("?")
        };
        match groups.iter_mut().find(|(k, _)| k == method) {
            Some((_, v)) => v.push(hook_short(hook)),
            None => groups.push((method.to_string(), vec![hook_short(hook)])),
        }
    }
    let mut spans = vec![Span::styled("attach ", DIM)];
    if groups.is_empty() {
        spans.push(Span::styled("(unknown)", DIM));
    }
    for (i, (m, hooks)) in groups.into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw("  "));
        }
        let style = if m == "n/a" {
            WARN
        } else {
            Style::new().fg(Color::Green)
        };
        // A recording's strings are whoever wrote the file's: shown, never sent to the terminal.
        let m = crate::text::escape(m.as_bytes());
        let hooks = crate::text::escape(hooks.join(",").as_bytes()).into_owned();
        spans.push(Span::styled(format!("{m}:"), style));
        spans.push(Span::raw(format!(" {hooks}")));
    }
    spans
}

// Long on purpose: a panel's layout, drawn top to bottom.
pub fn render(f: &mut Frame, area: Rect, v: &View, app: &App) {
    let m = v.model;
    let c = m.counters();
    let sep = || Span::styled(" │ ", DIM);
    let mut l1 = vec![Span::styled(
        " wqtrace ",
        Style::new()
            .fg(Color::Black)
            .bg(Color::Cyan)
            .add_modifier(Modifier::BOLD),
    )];
    match v.mode {
        Mode::Live => {
            l1.push(Span::raw(" "));
            if app.paused {
                l1.push(Span::styled("PAUSED", WARN.add_modifier(Modifier::BOLD)));
                l1.push(Span::styled(format!(" (+{} new)", v.behind), DIM));
            } else {
                l1.push(Span::styled("LIVE", Style::new().fg(Color::Green)));
            }
        }
        Mode::Replay {
            start_ns,
            pos_ns,
            end_ns,
            speed,
            at_end,
        } => {
            let state = if app.paused {
                Span::styled("⏸", WARN)
            } else if at_end {
                Span::styled("end", DIM)
            } else {
                Span::styled("▶", Style::new().fg(Color::Green))
            };
            l1.push(Span::raw(" REPLAY "));
            l1.push(state);
            l1.push(Span::raw(format!(
                " {:.1}/{:.1}s ×{}",
                pos_ns.saturating_sub(start_ns) as f64 / 1e9,
                end_ns.saturating_sub(start_ns) as f64 / 1e9,
                fmt_speed(speed)
            )));
        }
    }
    l1.push(sep());
    let kernel = if v.meta.kernel_release.is_empty() {
        "?".into()
    } else {
        crate::text::escape(v.meta.kernel_release.as_bytes())
    };
    l1.push(Span::styled(format!("kernel {kernel}"), TITLE));
    l1.push(sep());
    l1.push(Span::raw(format!(
        "{} ev/s",
        count(m.events_per_sec_at(v.now_ns))
    )));
    l1.push(sep());
    let lost_style = if c.lost > 0 {
        BAD
    } else {
        Style::new().fg(Color::Green)
    };
    l1.push(Span::styled(format!("lost {}", c.lost), lost_style));
    l1.push(sep());
    if c.sleeps_unattributed > 0 {
        // Waits not timed because their wait queue could not be told: the wait counts are
        // short by up to that many.
        l1.push(Span::styled(
            format!("{} sleeps unplaced", c.sleeps_unattributed),
            WARN,
        ));
        l1.push(sep());
    }
    if c.known_pipes.is_some_and(|k| k.past_room()) {
        // Past the programs' room a pipe may be dropped from their memory: its free goes
        // unseen, and it stays in the table.
        l1.push(Span::styled("frees may be missed", WARN));
        l1.push(sep());
    }
    let pipes = m.pipes().count();
    let notif = m.pipes().filter(|p| p.notification).count();
    l1.push(Span::raw(format!("{pipes} pipes ")));
    l1.push(Span::styled(format!("{NOTIF_MARK}{notif}"), NOTIF));
    l1.push(sep());
    l1.push(Span::styled(
        format!("{} events", count(c.events as f64)),
        DIM,
    ));
    let mut l2 = attach_line(&v.meta.attach);
    let mut l3 = None;
    if let Some(cost) = &v.cost {
        let text = Span::styled(format!("cost {}", cost.short()), DIM);
        if cost_fits_beside(v, area.width) {
            l2.push(sep());
            l2.push(text);
        } else {
            l3 = Some(Line::from(text));
        }
    }
    let mut lines = vec![Line::from(l1), Line::from(l2)];
    lines.extend(l3);
    if !v.meta.notification_pipes {
        lines.push(Line::from(vec![
            Span::styled("⚠ ", WARN),
            Span::styled(NO_NOTIF_HINT, WARN),
        ]));
    }
    f.render_widget(Paragraph::new(lines), area);
}

pub fn fmt_speed(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.0}")
    } else {
        format!("{s:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}
