//! An event as people read it (one line) and as programs read it (one JSON object).

use std::io::Write;

use serde_json::Value;
use wqtrace_common::{Event, EventKind, ExecCtx, Op, PostOutcome, flags};

use crate::{cgroup::CgroupTable, stacks::StackTable, text};

/// ` cgroup=PATH` after an event's line, when its cgroup is named and is not the root.
pub fn cgroup_suffix(e: &Event, t: &CgroupTable) -> String {
    match t.path(e.cgroup) {
        Some(p) if p != "/" => format!(" cgroup={}", text::escape(p.as_bytes())),
        _ => String::new(),
    }
}

/// The kind's name, `unknown` for a kind this build does not know.
pub fn kind_name(k: Option<EventKind>) -> &'static str {
    k.map_or("unknown", EventKind::name)
}

fn flag_names(f: u16) -> Vec<&'static str> {
    [
        (flags::NOTIFICATION_PIPE, "notification_pipe"),
        (flags::LOSS, "loss"),
        (flags::RING_FULL, "ring_full"),
        (flags::NOTES_FULL, "notes_full"),
        (flags::FILTERED, "filtered"),
        (flags::MUTEX_HELD, "mutex_held"),
        (flags::LOCK_MUTEX, "lock_mutex"),
        (flags::LOSS_SEEN, "loss_seen"),
        (flags::OFF_CPU, "off_cpu"),
        (flags::FROM_KFUNC, "kfunc"),
        (flags::OUTCOME_UNKNOWN, "outcome_unknown"),
        (flags::UNATTRIBUTED, "unattributed"),
        (flags::LOCK_SPIN, "spin"),
        (flags::LOCK_SLEEP, "sleep"),
        (flags::RING_DST, "dst"),
        (flags::OUTSIDE_FILTER, "outside_filter"),
    ]
    .into_iter()
    .filter(|(b, _)| f & b != 0)
    .map(|(_, n)| n)
    .collect()
}

fn ctx_name(c: u8) -> &'static str {
    match ExecCtx::from_u8(c) {
        ExecCtx::Task => "task",
        ExecCtx::Softirq => "softirq",
        ExecCtx::Irq => "irq",
        ExecCtx::Unknown => "unknown",
    }
}

/// The event as JSON, borrowed: every field a consumer may need, named as in the ABI. `trace
/// --json` and `export --format jsonl` write it straight out (no `Value` per event: they must
/// keep up with hundreds of thousands of events a second); [`to_json`] builds a `Value` from it.
pub struct EventJson<'a> {
    pub event: &'a Event,
    /// CLOCK_REALTIME − CLOCK_BOOTTIME, for `wall_ns`.
    pub realtime_offset_ns: i64,
    /// Where the event's stack references lead (`kstack`/`ustack`, when it has any).
    pub stacks: Option<&'a StackTable>,
    /// The path of the event's cgroup id.
    pub cgroups: Option<&'a CgroupTable>,
}

impl serde::Serialize for EventJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let e = self.event;
        let (comm, comm_bytes) = text::json_comm(&e.comm);
        let (owner_comm, owner_bytes) = text::json_comm(&e.owner_comm);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("ts_ns", &e.ts_ns)?;
        m.serialize_entry("wall_ns", &(e.ts_ns as i64 + self.realtime_offset_ns))?;
        m.serialize_entry("kind", kind_name(e.kind()))?;
        m.serialize_entry("op", e.op().name())?;
        m.serialize_entry("pipe", &format_args!("{:#x}", e.pipe))?;
        m.serialize_entry("ino", &e.ino)?;
        m.serialize_entry("tid", &e.tid)?;
        m.serialize_entry("tgid", &e.tgid)?;
        m.serialize_entry("comm", &comm)?;
        m.serialize_entry("cpu", &e.cpu)?;
        m.serialize_entry("ctx", ctx_name(e.ctx))?;
        m.serialize_entry("flags", &flag_names(e.flags))?;
        m.serialize_entry("outcome", &e.post_outcome().map(|o| o.name()))?;
        m.serialize_entry("loss_records", &e.loss_records())?;
        m.serialize_entry("ret", &e.ret)?;
        // Ring ops are not timed (a clock read per op): null, not a duration of 0. Recordings
        // from before that change carry one.
        let timed = e.duration_ns != 0 || e.kind() != Some(EventKind::RingOp);
        m.serialize_entry("duration_ns", &timed.then_some(e.duration_ns))?;
        m.serialize_entry("head_before", &e.head_before)?;
        m.serialize_entry("tail_before", &e.tail_before)?;
        m.serialize_entry("head", &e.head)?;
        m.serialize_entry("tail", &e.tail)?;
        m.serialize_entry("occupancy", &e.occupancy())?;
        m.serialize_entry("ring_size", &e.ring_size)?;
        m.serialize_entry("max_usage", &e.max_usage)?;
        m.serialize_entry("fd_in", &e.fd_in)?;
        m.serialize_entry("fd_out", &e.fd_out)?;
        m.serialize_entry("nr_notes", &e.nr_notes)?;
        m.serialize_entry("notes_in_use", &e.notes_in_use)?;
        m.serialize_entry("slot", &e.slot())?;
        m.serialize_entry("note", &e.note())?;
        m.serialize_entry("type", &e.ntype)?;
        m.serialize_entry("subtype", &e.subtype)?;
        m.serialize_entry("watch_id", &e.watch_id())?;
        m.serialize_entry("len", &e.note_len())?;
        m.serialize_entry("lock", &format_args!("{:#x}", e.lock))?;
        m.serialize_entry("owner_tid", &e.owner_tid)?;
        m.serialize_entry("owner_comm", &owner_comm)?;
        if let Some(b) = comm_bytes {
            m.serialize_entry("comm_bytes", b)?;
        }
        if let Some(b) = owner_bytes {
            m.serialize_entry("owner_comm_bytes", b)?;
        }
        if e.cgroup != 0 {
            m.serialize_entry("cgroup_id", &e.cgroup)?;
            m.serialize_entry("cgroup", &self.cgroups.and_then(|t| t.path(e.cgroup)))?;
        }
        if let Some(t) = self.stacks.filter(|_| e.has_stacks()) {
            for (user, key) in [(false, "kstack"), (true, "ustack")] {
                if let Some(s) = t.of(e, user) {
                    m.serialize_entry(key, &s.lines())?;
                    if let Some(err) = s.error.as_ref().filter(|_| !s.frames.is_empty()) {
                        m.serialize_entry(&format!("{key}_note"), err)?;
                    }
                }
            }
        }
        m.end()
    }
}

/// The event as a JSON `Value` (tests, one-off uses).
pub fn to_json(e: &Event, realtime_offset_ns: i64) -> Value {
    serde_json::to_value(EventJson {
        event: e,
        realtime_offset_ns,
        stacks: None,
        cgroups: None,
    })
    .expect("an event always serializes")
}

/// One JSON object and a newline.
pub fn write_json(
    w: &mut impl Write,
    e: &Event,
    realtime_offset_ns: i64,
    stacks: Option<&StackTable>,
    cgroups: Option<&CgroupTable>,
) -> std::io::Result<()> {
    serde_json::to_writer(
        &mut *w,
        &EventJson {
            event: e,
            realtime_offset_ns,
            stacks,
            cgroups,
        },
    )?;
    w.write_all(b"\n")
}

/// The event's stacks under its line, indented (nothing when it has none).
pub fn write_stacks(w: &mut impl Write, e: &Event, t: &StackTable) -> std::io::Result<()> {
    if !e.has_stacks() {
        return Ok(());
    }
    for (user, side) in [(false, "kernel"), (true, "user")] {
        if let Some(s) = t.of(e, user) {
            writeln!(w, "    {side} stack:")?;
            for l in s.lines() {
                writeln!(w, "      {l}")?;
            }
            if let Some(err) = s.error.as_ref().filter(|_| !s.frames.is_empty()) {
                writeln!(w, "      ({err})")?;
            }
        }
    }
    Ok(())
}

/// A post's line body: where it landed (or why not), the notes and the ring after it.
fn post_text(e: &Event, pipe: &str, ring: &str, owner: &str) -> String {
    let what = match PostOutcome::from_flags(e.flags) {
        PostOutcome::Landed => format!("slot {} note {}", e.slot, e.note),
        PostOutcome::LostRingFull => "LOST (ring full)".to_string(),
        PostOutcome::LostNotesFull => "LOST (notes full)".to_string(),
        PostOutcome::LostReasonUnknown => "LOST (ring or notes full: unknown)".to_string(),
        PostOutcome::SkippedFilter => "filtered".to_string(),
        PostOutcome::Unknown => "did not land (cause unknown)".to_string(),
        PostOutcome::Unattributed => "past the watch walk: unattributed".to_string(),
    };
    format!(
        "{pipe} post type={} subtype={} id={} len={} {what} notes {}/{} {ring} {}us{owner}",
        e.ntype,
        e.subtype,
        e.watch_id(),
        e.note_len(),
        e.notes_in_use,
        e.nr_notes,
        e.duration_ns / 1000
    )
}

/// One human line per event: time, task, what happened, the ring after it.
// Long on purpose: one arm per event kind.
pub fn format_line(e: &Event) -> String {
    let t = e.ts_ns as f64 / 1e9;
    let who = format!("{}/{}", text::comm(&e.comm), e.tid);
    let ring = format!(
        "ring {}/{} h={} t={}",
        e.occupancy(),
        e.ring_size,
        e.head,
        e.tail
    );
    let pipe = crate::model::pipe_label(e.pipe, e.ino);
    let notif = if e.is_notification_pipe() {
        " notif"
    } else {
        ""
    };
    let owner = if e.owner_tid != 0 {
        format!(" mutex={}/{}", text::comm(&e.owner_comm), e.owner_tid)
    } else {
        String::new()
    };
    let body = match e.kind() {
        Some(EventKind::PipeCreated) => {
            format!("{pipe}{notif} created fds {},{}", e.fd_in, e.fd_out)
        }
        Some(EventKind::RingOp) => format!(
            "{pipe}{notif} {} fd={}→{} ret={} {ring}{}{owner}",
            e.op().name(),
            e.fd_in,
            e.fd_out,
            e.ret,
            if e.loss_seen() {
                format!(" loss-records={}", e.loss_records())
            } else {
                String::new()
            }
        ),
        Some(EventKind::NotifyPosted) => post_text(e, &pipe, &ring, &owner),
        Some(EventKind::SpliceRejected) => format!(
            "{pipe} REJECTED {} fd_in={} fd_out={} ret={}",
            e.op().name(),
            e.fd_in,
            e.fd_out,
            e.ret
        ),
        Some(EventKind::PipeWait) => format!(
            "{pipe}{notif} wait {} {}us{}",
            e.op().name(),
            e.duration_ns / 1000,
            if e.off_cpu() { " (off-cpu)" } else { "" }
        ),
        Some(EventKind::LockContended) => format!(
            "{pipe}{notif} contended {} {}us{owner}",
            if e.on_mutex() { "mutex" } else { "rd_wait" },
            e.duration_ns / 1000
        ),
        Some(EventKind::WatchQueueSized) => {
            format!("{pipe} watch_queue sized: {} notes, {ring}", e.nr_notes)
        }
        Some(EventKind::WatchAdded) => {
            format!("{pipe} watch added id={} ret={}", e.watch_id(), e.ret)
        }
        Some(EventKind::PipeReleased) => {
            if e.op() == Op::Close {
                format!("{pipe}{notif} fd {} closed", e.fd_in)
            } else {
                format!("{pipe}{notif} released")
            }
        }
        None => format!("unknown event kind {}", e.kind),
    };
    format!("{t:>14.6} {:>3} {who:<24} {body}", e.cpu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(kind: EventKind) -> Event {
        let mut e = Event::zeroed();
        e.kind = kind as u8;
        e.ino = 4242;
        e.comm[..4].copy_from_slice(b"test");
        e.tid = 7;
        e
    }

    #[test]
    fn lost_post_says_why() {
        let mut e = ev(EventKind::NotifyPosted);
        e.flags = flags::NOTIFICATION_PIPE | flags::LOSS | flags::RING_FULL;
        e.info = (3 << 8) | 16;
        let l = format_line(&e);
        assert!(l.contains("LOST (ring full)"), "{l}");
        assert!(l.contains("id=3 len=16"), "{l}");
        let j = to_json(&e, 0);
        assert_eq!(j["kind"], "notify_posted");
        assert_eq!(j["watch_id"], 3);
        assert_eq!(j["slot"], Value::Null);
        assert!(
            j["flags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "ring_full")
        );
    }

    /// A post into a pipe no syscall had named yet has no inode: the line names the pipe by
    /// its address, not as a `pipe:[0]` that does not exist.
    #[test]
    fn a_pipe_without_its_inode_is_named_by_address() {
        let mut e = ev(EventKind::NotifyPosted);
        e.flags = flags::NOTIFICATION_PIPE;
        e.pipe = 0xffff_8880_0328_ff00;
        assert!(
            format_line(&e).contains(" pipe:[4242] "),
            "{}",
            format_line(&e)
        );
        e.ino = 0;
        let l = format_line(&e);
        assert!(l.contains(" pipe@0xffff88800328ff00 "), "{l}");
        e.pipe = 0;
        assert!(
            format_line(&e).contains(" pipe:[?] "),
            "{}",
            format_line(&e)
        );
    }

    /// A ring op carries no duration (null, not 0 ns) unless an older recording gave it one;
    /// a wait's duration is always shown.
    #[test]
    fn ring_ops_are_not_timed() {
        let mut e = ev(EventKind::RingOp);
        assert_eq!(to_json(&e, 0)["duration_ns"], Value::Null);
        e.duration_ns = 1500;
        assert_eq!(to_json(&e, 0)["duration_ns"], 1500);
        let w = ev(EventKind::PipeWait);
        assert_eq!(to_json(&w, 0)["duration_ns"], 0);
    }

    /// The written line and the `Value` agree on every field, for every kind.
    #[test]
    fn write_json_matches_to_json() {
        for k in 1..=9u8 {
            let mut e = ev(EventKind::from_u8(k).unwrap());
            e.flags = flags::NOTIFICATION_PIPE | flags::LOSS | flags::LOSS_SEEN;
            e.info = 2;
            e.slot = if k % 2 == 0 { 3 } else { u32::MAX };
            e.owner_comm[..3].copy_from_slice(b"a\"b");
            if k % 3 == 0 {
                e.comm[..4].copy_from_slice(b"x\xff\x1by");
            }
            e.ret = -22;
            let mut buf = vec![];
            write_json(&mut buf, &e, 1000, None, None).unwrap();
            let fast: Value = serde_json::from_slice(&buf).unwrap();
            assert_eq!(fast, to_json(&e, 1000));
        }
    }

    /// A task may name itself with terminal escapes or bytes that are not UTF-8: the line shows
    /// them escaped, JSON keeps them exactly.
    #[test]
    fn hostile_names_are_escaped_in_lines_and_exact_in_json() {
        let mut e = ev(EventKind::RingOp);
        e.comm = [0; 16];
        e.comm[..15].copy_from_slice(b"\x1b[31mEVIL\x1b]0;x\x07");
        e.owner_tid = 9;
        e.owner_comm[..3].copy_from_slice(b"o\xffk");
        let l = format_line(&e);
        assert!(!l.bytes().any(|b| b == 0x1b || b == 0x07), "{l:?}");
        assert!(l.contains(r"\x1b[31mEVIL\x1b]0;x\x07/7"), "{l}");
        assert!(l.contains(r"mutex=o\xffk/9"), "{l}");
        let j = to_json(&e, 0);
        assert_eq!(j["comm"], "\x1b[31mEVIL\x1b]0;x\x07");
        assert!(j.get("comm_bytes").is_none(), "UTF-8 names need no bytes");
        assert_eq!(j["owner_comm"], "o\u{fffd}k");
        assert_eq!(j["owner_comm_bytes"], json!([b'o', 0xff, b'k']));
        let mut buf = vec![];
        write_json(&mut buf, &e, 0, None, None).unwrap();
        assert!(
            !buf.contains(&0x1b),
            "JSON escapes control characters itself"
        );
    }

    #[test]
    fn rejection_names_the_syscall_and_fds() {
        let mut e = ev(EventKind::SpliceRejected);
        e.op = Op::Tee as u8;
        e.fd_in = 3;
        e.fd_out = 5;
        e.ret = -22;
        let l = format_line(&e);
        assert!(l.contains("REJECTED tee fd_in=3 fd_out=5 ret=-22"), "{l}");
        assert_eq!(to_json(&e, 0)["op"], "tee");
    }
}
