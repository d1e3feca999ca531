//! The report for people: totals, then one section per pipe.

use crate::model::{LockKind, PipeOrder, PipeState};

use super::*;

/// The text report.
pub fn to_text(a: &Analysis) -> String {
    use std::fmt::Write as _;
    let m = &a.model;
    let meta = &a.header.meta;
    let c = m.counters();
    let mut o = String::new();
    let _ = writeln!(o, "Recording {}", crate::text::path(&a.path));
    let _ = writeln!(
        o,
        "  events     {} ({} lost by the tracer{}), over {}",
        c.events,
        a.tracer_lost,
        if a.damaged_events > 0 {
            format!(", {} lost to file damage", a.damaged_events)
        } else {
            String::new()
        },
        crate::text::duration(duration_ns(a))
    );
    match a.trailer.as_ref().map(|t| t.sleeps_unattributed) {
        Some(0) => {}
        Some(n) => {
            let _ = writeln!(o, "  waits      {}", crate::sinks::unattributed_sleeps(n));
        }
        // Only the trailer has the count: where sched_switch timed the splice waits, a
        // recording without one cannot say whether any sleep went unplaced.
        None if splice_waits_by_sched_switch(meta) => {
            let _ = writeln!(
                o,
                "  waits      splice, tee or vmsplice sleeps not timed as pipe waits: unknown \
                 (no trailer: the recording did not stop cleanly)"
            );
        }
        None => {}
    }
    let _ = writeln!(
        o,
        "  kernel     {} on {} (event ABI {}, wqtrace {})",
        or_dash(&meta.kernel_release),
        or_dash(&meta.hostname),
        meta.abi_version,
        or_dash(&a.header.wqtrace_version)
    );
    if !meta.attach.is_empty() {
        let at: Vec<String> = meta
            .attach
            .iter()
            .map(|(h, m)| format!("{}={}", or_dash(h), or_dash(m)))
            .collect();
        let _ = writeln!(o, "  attach     {}", at.join(" "));
    }
    if let Some(why) = frees_unseen(a) {
        let _ = writeln!(
            o,
            "  frees      {why}: a pipe not marked released may have been freed"
        );
    }
    if !a.filters_applied.is_empty() {
        let _ = writeln!(
            o,
            "  applied    {} (only these events are counted below)",
            a.filters_applied.join(" ")
        );
    }
    if !a.header.filters.is_empty() {
        let _ = writeln!(o, "  filters    {}", or_dash(&a.header.filters.join(" ")));
    }
    if !a.header.command.is_empty() {
        let _ = writeln!(o, "  command    {}", or_dash(&a.header.command.join(" ")));
    }
    let kinds: Vec<String> = EventKind::ALL
        .iter()
        .filter(|k| c.kind(**k) > 0)
        .map(|k| format!("{} {}", k.name(), c.kind(*k)))
        .collect();
    let _ = writeln!(o, "  by kind    {}", kinds.join(", "));
    let _ = writeln!(
        o,
        "  stop       {}",
        match &a.trailer {
            Some(t) => format!("clean ({})", t.stop_reason),
            None => "no trailer: the recording did not stop cleanly".into(),
        }
    );
    let pipes = m.all_pipes_sorted(PipeOrder::Ino);
    let _ = writeln!(
        o,
        "  pipes      {} ({} notification), {} rejections, {} interleave alerts",
        pipes.len(),
        pipes.iter().filter(|p| p.notification).count(),
        m.rejections().total(),
        m.interleaves().total()
    );
    for p in pipes {
        o.push('\n');
        pipe_text(&mut o, a, p);
    }
    stacks_text(&mut o, a);
    o
}

/// The top stacks, grouped by pipe and kind of event.
fn stacks_text(o: &mut String, a: &Analysis) {
    use std::fmt::Write as _;
    o.push('\n');
    if let Some(why) = &a.no_stacks {
        let _ = writeln!(o, "Stacks: none recorded ({why})");
        return;
    }
    if a.stacks.is_empty() {
        let _ = writeln!(o, "Stacks: none (no event here took one)");
        return;
    }
    let _ = writeln!(
        o,
        "Stacks (top {} per pipe and kind, innermost frame first)",
        super::stacks::TOP
    );
    for g in &a.stacks {
        let _ = writeln!(o, "  pipe:[{}] {} ×{}", g.ino, g.kind, g.count);
        for (side, s) in [("kernel", &g.kstack), ("user", &g.ustack)] {
            let Some(s) = s else { continue };
            let _ = writeln!(o, "    {side}:");
            let lines = s.lines();
            for l in lines.iter().take(super::stacks::FRAMES_SHOWN) {
                let _ = writeln!(o, "      {}", crate::text::escape(l.as_bytes()));
            }
            if lines.len() > super::stacks::FRAMES_SHOWN {
                let _ = writeln!(
                    o,
                    "      … {} more",
                    lines.len() - super::stacks::FRAMES_SHOWN
                );
            }
        }
    }
}

/// A recording's own strings, escaped: the file may come from anyone.
fn or_dash(s: &str) -> std::borrow::Cow<'_, str> {
    if s.is_empty() {
        "-".into()
    } else {
        crate::text::escape(s.as_bytes())
    }
}

/// One pipe's section of the text report.
fn pipe_text(o: &mut String, a: &Analysis, p: &PipeState) {
    pipe_head_text(o, p);
    notes_leaked_text(o, a, p);
    cgroups_text(o, a, p);
    ops_text(o, p);
    waits_and_locks_text(o, p);
    interleaves_text(o, a, p);
}

/// Notes the queue lost for good (`model::NoteLeaks`), when it lost any.
fn notes_leaked_text(o: &mut String, a: &Analysis, p: &PipeState) {
    use std::fmt::Write as _;
    let l = &p.notes_leaked;
    let (Some(first), Some(last)) = (l.first_ts_ns, l.last_ts_ns) else {
        return;
    };
    let _ = writeln!(
        o,
        "  notes leaked  {} of {}: in use with no ring slot holding them, never handed out again ({} to {}); {} notes left for the ring",
        l.count,
        p.nr_notes,
        rel(a, first),
        rel(a, last),
        p.nr_notes.saturating_sub(l.count)
    );
}

/// The cgroups of the tasks whose events touched the pipe, most events first.
fn cgroups_text(o: &mut String, a: &Analysis, p: &PipeState) {
    use std::fmt::Write as _;
    let Some(cgs) = a.cgroups.get(&p.ino).filter(|v| !v.is_empty()) else {
        return;
    };
    let list: Vec<String> = cgs
        .iter()
        .map(|c| format!("{} ({} events)", or_dash(&c.label()), c.events))
        .collect();
    let _ = writeln!(o, "  cgroups       {}", list.join(", "));
}

/// Who used the pipe, its ring and its notifications.
fn pipe_head_text(o: &mut String, p: &PipeState) {
    use std::fmt::Write as _;
    let owners: Vec<String> = p.owners.iter().map(|w| who(&w.comm, w.tgid)).collect();
    let _ = writeln!(
        o,
        "{}{}  ({:#x}; used by {}{})",
        p.label(),
        if p.notification { " notification" } else { "" },
        p.addr,
        if owners.is_empty() {
            "-".to_string()
        } else {
            owners.join(", ")
        },
        if p.is_released() { "; released" } else { "" }
    );
    let _ = writeln!(
        o,
        "  ring          {} slots, max occupancy {}{}",
        p.ring.size(),
        p.max_occupancy,
        if p.nr_notes > 0 {
            format!(", {} notes (max in use {})", p.nr_notes, p.max_notes_in_use)
        } else {
            String::new()
        }
    );
    if p.notification || p.posts.attempts > 0 {
        let s = &p.posts;
        let _ = writeln!(
            o,
            "  notifications attempts {}: landed {}, lost {} (ring full {}, notes full {}, reason unknown {}), filtered {}, unknown {}; reads returning a loss record {} ({} records)",
            s.attempts,
            s.posted,
            s.lost,
            s.ring_full,
            s.notes_full,
            s.lost_reason_unknown,
            s.filtered,
            s.unknown,
            s.loss_seen_by_reader,
            s.loss_records_read
        );
    }
}

/// Ring operations by syscall, and rejected splices.
fn ops_text(o: &mut String, p: &PipeState) {
    use std::fmt::Write as _;
    let ops: Vec<String> = p
        .ops_used()
        .map(|(op, s)| {
            let mut t = format!("{} {}", op.name(), s.calls);
            if s.bytes > 0 {
                t += &format!(" ({} B)", s.bytes);
            }
            if s.errors > 0 {
                t += &format!(
                    " [{} failed, last {}]",
                    s.errors,
                    crate::text::ret_name(s.last_error)
                );
            }
            t
        })
        .collect();
    if !ops.is_empty() {
        let _ = writeln!(o, "  ops           {}", ops.join(", "));
    }
    let rj: Vec<String> = p
        .rejections
        .iter()
        .map(|r| {
            format!(
                "{} by {} ×{} ({})",
                r.op.name(),
                who(&r.comm, r.tgid),
                r.count,
                crate::text::ret_name(r.last_ret)
            )
        })
        .collect();
    let _ = writeln!(
        o,
        "  rejections    {}{}",
        p.rejected(),
        if rj.is_empty() {
            String::new()
        } else {
            format!(": {}", rj.join(", "))
        }
    );
}

/// Waits, lock contention and how long posts held rd_wait.
fn waits_and_locks_text(o: &mut String, p: &PipeState) {
    use std::fmt::Write as _;
    let w = &p.waits;
    let _ = writeln!(
        o,
        "  waits         {}{}",
        w.count,
        if w.count > 0 {
            format!(
                ", total {}, max {}",
                crate::text::duration(w.total_ns),
                crate::text::duration(w.max_ns)
            )
        } else {
            String::new()
        }
    );
    for k in LockKind::ALL {
        let _ = writeln!(
            o,
            "  contention    {:<7} {}",
            k.name(),
            contention_text(p.locks.contention(k))
        );
    }
    if p.locks.post_hold.count > 0 {
        let h = &p.locks.post_hold;
        let _ = writeln!(
            o,
            "  post holds    {} (rd_wait held avg {}, max {}); {} posts found the mutex held",
            h.count,
            crate::text::duration(h.total_ns / h.count),
            crate::text::duration(h.max_ns),
            p.locks.posts_under_mutex
        );
    }
}

/// Notifications that landed between the slots of one write by the mutex holder.
fn interleaves_text(o: &mut String, a: &Analysis, p: &PipeState) {
    use std::fmt::Write as _;
    let _ = writeln!(o, "  interleaves   {}", p.interleaves);
    for i in a
        .model
        .interleaves()
        .iter()
        .filter(|i| i.pipe == p.addr && i.ino == p.ino)
    {
        let _ = writeln!(
            o,
            "    {} notification into slot {} while {} held the mutex in the middle of a {}-slot {}",
            rel(a, i.post_ts_ns),
            i.slot,
            who(&i.owner, i.owner_tid),
            i.slots_moved,
            i.op.name()
        );
    }
}

/// Whether the recording's session timed splice waits from sched_switch (its attach plan says
/// so), where some sleeps may go unplaced (`Trailer::sleeps_unattributed`).
fn splice_waits_by_sched_switch(meta: &crate::session::SessionMeta) -> bool {
    attach_method(meta, Hook::PipeWait).is_some_and(|m| m.contains("sched_switch"))
}
