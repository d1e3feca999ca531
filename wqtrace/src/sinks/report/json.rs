//! The report as one JSON document.

use serde_json::{Value, json};

use super::*;

fn contention_json(c: &Contention) -> Value {
    json!({
        "count": c.count,
        "total_ns": c.total_ns,
        "worst_ns": c.worst_ns,
        "worst_waiter": {"tid": c.worst_waiter_tid, "comm": c.worst_waiter},
        "worst_holder": {"tid": c.worst_holder_tid, "comm": c.worst_holder},
    })
}

/// The JSON report.
// Long on purpose: the report's JSON document, written out as one literal.
pub fn to_json(a: &Analysis) -> Value {
    let m = &a.model;
    let c = m.counters();
    let meta = &a.header.meta;
    let frees = frees_unseen(a).is_none();
    let by_kind: serde_json::Map<String, Value> = EventKind::ALL
        .iter()
        .map(|k| (k.name().to_string(), json!(c.kind(*k))))
        .collect();
    let pipes: Vec<Value> = m
        .all_pipes_sorted(PipeOrder::Ino)
        .into_iter()
        .map(|p| {
            let interleaves: Vec<&crate::model::Interleave> = m
                .interleaves()
                .iter()
                .filter(|i| i.pipe == p.addr && i.ino == p.ino)
                .collect();
            let ops: serde_json::Map<String, Value> = p
                .ops_used()
                .map(|(op, s)| (op.name().to_string(), json!(s)))
                .collect();
            json!({
                "ino": p.ino,
                "addr": format!("{:#x}", p.addr),
                "notification": p.notification,
                // null: not seen released by a session that could not see every free.
                "released": (p.is_released() || frees).then_some(p.is_released()),
                "owners": p.owners,
                "cgroups": a.cgroups.get(&p.ino).cloned().unwrap_or_default(),
                "fds": p.fds,
                "ring_size": p.ring.size(),
                "max_occupancy": p.max_occupancy,
                "nr_notes": p.nr_notes,
                "max_notes_in_use": p.max_notes_in_use,
                "notes_leaked": p.notes_leaked,
                "notifications": p.posts,
                "ops": ops,
                "rejections": {"total": p.rejected(), "by": p.rejections},
                "waits": p.waits,
                "contention": {
                    "mutex": contention_json(p.locks.contention(LockKind::Mutex)),
                    "rd_wait": contention_json(p.locks.contention(LockKind::RdWait)),
                },
                "post_hold": p.locks.post_hold,
                "posts_under_mutex": p.locks.posts_under_mutex,
                "interleaves": interleaves,
                "watches": p.watches,
            })
        })
        .collect();
    json!({
        "file": a.path.display().to_string(),
        "totals": {
            "events": c.events,
            "lost": a.tracer_lost,
            "damaged_events": a.damaged_events,
            // Unknown (null) without a trailer: the recording did not stop cleanly.
            "sleeps_unattributed": a.trailer.as_ref().map(|t| t.sleeps_unattributed),
            "duration_ns": duration_ns(a),
            "first_ts_ns": m.time_span().map(|s| s.0),
            "by_kind": by_kind,
            "notifications_posted": c.posted,
            "notifications_lost": c.posts_lost,
            "post_outcomes": wqtrace_common::PostOutcome::ALL
                .iter()
                .map(|o| (o.name().to_string(), json!(c.post_outcomes[*o as usize])))
                .collect::<serde_json::Map<_, _>>(),
            "rejections": m.rejections().total(),
            "interleaves": m.interleaves().total(),
            "contention": {
                "mutex": contention_json(m.contention(LockKind::Mutex)),
                "rd_wait": contention_json(m.contention(LockKind::RdWait)),
            },
        },
        "kernel": meta.kernel_release,
        "hostname": meta.hostname,
        "abi_version": meta.abi_version,
        "realtime_offset_ns": meta.realtime_offset_ns,
        "attach": meta.attach.iter().map(|(h, m)| json!({"hook": h, "method": m})).collect::<Vec<_>>(),
        "wqtrace_version": a.header.wqtrace_version,
        "command": a.header.command,
        "filters": a.header.filters,
        "filters_applied": a.filters_applied,
        "clean_stop": a.trailer.as_ref().map(|t| t.stop_reason.clone()),
        "warnings": a.warnings,
        "pipes": pipes,
        "stacks": a.stacks.iter().map(|g| json!({
            "ino": g.ino,
            "kind": g.kind,
            "count": g.count,
            "kstack": g.kstack.as_ref().map(|s| s.lines()),
            "ustack": g.ustack.as_ref().map(|s| s.lines()),
        })).collect::<Vec<_>>(),
        "stacks_missing": a.no_stacks,
    })
}
