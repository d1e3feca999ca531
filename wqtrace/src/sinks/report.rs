//! `wqtrace report FILE [--json]`: totals, then one section per pipe (notification pipes first).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use serde_json::{Value, json};
use wqtrace_common::EventKind;

use crate::model::{Comm, Contention, LockKind, Model, ModelConfig, PipeOrder, PipeState};
use crate::recording::{Header, Trailer};
use crate::source::EventSource;
use crate::source::file::FileSource;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A recording made by `wqtrace record`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A recording read through the model: what `report` (and tests) look at.
pub struct Analysis {
    pub path: PathBuf,
    pub header: Header,
    pub trailer: Option<Trailer>,
    pub model: Model,
    pub tracer_lost: u64,
    pub damaged_events: u64,
    pub warnings: Vec<String>,
}

/// Reads the whole recording into a [`Model`] (report-sized caps).
pub fn analyze(path: &Path) -> Result<Analysis> {
    let mut src = FileSource::open(path)?;
    let mut model = Model::new(ModelConfig::for_report());
    let mut batch = Vec::new();
    let mut warnings = Vec::new();
    loop {
        batch.clear();
        let more = src.next_batch(&mut batch, std::time::Duration::ZERO)?;
        for e in &batch {
            model.apply(e);
        }
        warnings.extend(src.take_warnings());
        if !more {
            break;
        }
    }
    model.set_lost(src.lost());
    Ok(Analysis {
        path: path.to_path_buf(),
        header: src.header().clone(),
        trailer: src.trailer().cloned(),
        tracer_lost: src.tracer_lost(),
        damaged_events: src.damaged_events(),
        warnings,
        model,
    })
}

pub fn run(args: Args) -> Result<ExitCode> {
    let a = analyze(&args.file)?;
    for w in &a.warnings {
        eprintln!("wqtrace: warning: {w}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&a))?);
    } else {
        print!("{}", to_text(&a));
    }
    Ok(ExitCode::SUCCESS)
}

fn who(comm: &Comm, id: u32) -> String {
    if comm.is_empty() {
        format!("?[{id}]")
    } else {
        format!("{comm}[{id}]")
    }
}

fn duration_ns(a: &Analysis) -> u64 {
    a.model.time_span().map_or(0, |(f, l)| l - f)
}

fn rel(a: &Analysis, ts: u64) -> String {
    let t0 = a.model.time_span().map_or(ts, |(f, _)| f);
    format!("+{:.6}s", ts.saturating_sub(t0) as f64 / 1e9)
}

fn contention_text(c: &Contention) -> String {
    if c.count == 0 {
        return "0".into();
    }
    let mut s = format!(
        "{} (total {}, worst {}: {} waited",
        c.count,
        crate::text::duration(c.total_ns),
        crate::text::duration(c.worst_ns),
        who(&c.worst_waiter, c.worst_waiter_tid)
    );
    if c.worst_holder_tid != 0 {
        s += &format!(" for {}", who(&c.worst_holder, c.worst_holder_tid));
    }
    s + ")"
}

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
    o
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
    ops_text(o, p);
    waits_and_locks_text(o, p);
    interleaves_text(o, a, p);
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
                "released": p.is_released(),
                "owners": p.owners,
                "fds": p.fds,
                "ring_size": p.ring.size(),
                "max_occupancy": p.max_occupancy,
                "nr_notes": p.nr_notes,
                "max_notes_in_use": p.max_notes_in_use,
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
        "clean_stop": a.trailer.as_ref().map(|t| t.stop_reason.clone()),
        "warnings": a.warnings,
        "pipes": pipes,
    })
}
