//! One event's effect on its pipe: the ring, per-op counts, posts and their outcomes, waits,
//! locks, watches, the pipe's life.

use wqtrace_common::{Event, EventKind, Op, PostOutcome};

use super::alerts::PendingPost;
use super::{Comm, LockKind, MutexOwnerSeen, PipeState, SlotKind, WatchSeen, pipes};

/// What every event says about its pipe: activity, identity, users, notes.
fn note_event(p: &mut PipeState, e: &Event, kind: EventKind) {
    let ts = e.ts_ns;
    p.events += 1;
    p.first_ts_ns = p.first_ts_ns.min(ts);
    p.last_ts_ns = p.last_ts_ns.max(ts);
    p.rate.record(ts);
    if p.ino == 0 && e.ino != 0 {
        p.ino = e.ino;
    }
    if e.is_notification_pipe() {
        p.notification = true;
    }
    if kind != EventKind::NotifyPosted {
        // Posts run in the poster's context: the poster is not a user of the pipe.
        p.touch_owner(e.tgid, Comm(e.comm), e.cgroup, ts);
    }
    if e.max_usage != 0 {
        p.max_usage = e.max_usage;
    }
    if e.nr_notes != 0 || kind == EventKind::WatchQueueSized {
        p.nr_notes = e.nr_notes;
    }
    if e.nr_notes != 0 {
        p.notes_in_use = e.notes_in_use;
        p.max_notes_in_use = p.max_notes_in_use.max(e.notes_in_use);
    }
}

/// What applying an event to its pipe leaves for the model: an op's written slots to check
/// for interleaved posts, a post to remember for that check.
#[derive(Default)]
pub(super) struct PipeAfter {
    pub(super) interleave: Option<(Op, u32, u32)>,
    pub(super) pending: Option<PendingPost>,
}

/// The event's effect on its pipe's state.
pub(super) fn apply_to_pipe(p: &mut PipeState, e: &Event, kind: EventKind, key: u64) -> PipeAfter {
    let ts = e.ts_ns;
    let comm = Comm(e.comm);
    note_event(p, e, kind);
    // The ring: every event carrying ring_size carries a head/tail snapshot.
    let ring_valid = e.has_ring();
    if ring_valid {
        p.ring.resize(e.ring_size);
    }
    let mut after = PipeAfter::default();
    match kind {
        EventKind::PipeCreated => {
            p.created_ts_ns = Some(ts);
            p.add_fds(e.tgid, e.fd_in, e.fd_out);
        }
        EventKind::RingOp => after.interleave = ring_op(p, e, ring_valid),
        EventKind::NotifyPosted => after.pending = notify_posted(p, e, key, ring_valid),
        EventKind::SpliceRejected => {
            p.add_rejection(e.op(), e.tgid, comm, e.ret);
        }
        EventKind::PipeWait => {
            p.waits.add(e.duration_ns, e.off_cpu());
        }
        EventKind::LockContended => {
            let k = lock_kind(e);
            p.locks.contention[k.idx()].add_event(e);
            if e.lock != 0 {
                p.locks.addr[k.idx()] = e.lock;
            }
        }
        EventKind::WatchQueueSized => {
            p.notification = true;
        }
        EventKind::WatchAdded => {
            p.notification = true;
            if p.watches.len() == pipes::MAX_WATCHES {
                p.watches.remove(0);
            }
            p.watches.push(WatchSeen {
                ts_ns: ts,
                watch_id: e.watch_id(),
                ret: e.ret,
                tgid: e.tgid,
                comm,
            });
        }
        EventKind::PipeReleased => {
            if e.op() == Op::Close {
                // One fd closed; the pipe lives on while other fds or references remain.
                p.fd_closes += 1;
            } else {
                p.released_ts_ns = Some(ts);
            }
        }
    }
    if ring_valid && !matches!(kind, EventKind::RingOp | EventKind::NotifyPosted) {
        p.ring.sync(e.head, e.tail);
    }
    if ring_valid {
        let occ = p.ring.occupancy();
        p.max_occupancy = p.max_occupancy.max(occ);
        p.history.record(ts, occ, p.ring.size());
    }
    after
}

/// A syscall moved data through the pipe: per-op counts, loss records a reader saw, the ring.
/// Returns the slots it wrote (the range a post may have landed inside).
fn ring_op(p: &mut PipeState, e: &Event, ring_valid: bool) -> Option<(Op, u32, u32)> {
    let op = e.op();
    let s = &mut p.ops[op as usize];
    s.calls += 1;
    if e.ret < 0 {
        s.errors += 1;
        s.last_error = e.ret;
    } else {
        s.bytes += e.ret as u64;
    }
    if e.loss_seen() {
        p.posts.loss_seen_by_reader += 1;
        p.posts.loss_records_read += u64::from(e.loss_records());
    }
    if ring_valid {
        p.ring
            .apply_move(e.head_before, e.head, e.tail_before, e.tail, SlotKind::Data);
    }
    if e.ring_is_dst() {
        // Only an op that wrote slots can have a post land between them.
        return Some((op, e.head_before, e.head));
    }
    None
}

/// The kernel posted (or failed to post) a notification into the pipe: outcome counts, the
/// rd_wait hold, the ring and its slot; a landed post under another task's mutex is kept
/// (returned) to check that task's next write against.
fn notify_posted(p: &mut PipeState, e: &Event, key: u64, ring_valid: bool) -> Option<PendingPost> {
    let ts = e.ts_ns;
    let f = e.flags;
    let outcome = PostOutcome::from_flags(f);
    p.posts.add(outcome);
    if e.duration_ns != 0 {
        p.locks.post_hold.add(e.duration_ns, false);
    }
    if e.lock != 0 {
        p.locks.addr[LockKind::RdWait.idx()] = e.lock;
    }
    if outcome.is_lost() {
        if ring_valid {
            p.ring.sync(e.head, e.tail);
            p.ring.mark_loss();
        }
    } else if outcome == PostOutcome::Landed {
        if ring_valid {
            let k = SlotKind::Notification {
                ntype: e.ntype,
                subtype: e.subtype,
            };
            p.ring
                .apply_move(e.head_before, e.head, e.tail_before, e.tail, k);
            if let Some(slot) = e.slot() {
                p.ring.post(slot, e.ntype, e.subtype);
            }
            if e.nr_notes != 0 {
                p.notes_leaked
                    .landed(ts, e.notes_in_use, e.head.wrapping_sub(e.tail));
            }
        }
    } else if ring_valid {
        p.ring.sync(e.head, e.tail);
    }
    if e.mutex_held() {
        p.locks.posts_under_mutex += 1;
        if e.owner_tid != 0 {
            p.locks.last_owner_at_post = Some(MutexOwnerSeen {
                ts_ns: ts,
                tid: e.owner_tid,
                comm: Comm(e.owner_comm),
            });
        }
        // Only a post that took a slot can sit between an op's slots.
        if e.owner_tid != 0 && outcome == PostOutcome::Landed {
            return Some(PendingPost {
                ts_ns: ts,
                pipe: key,
                ino: p.ino,
                slot: e.slot,
                index: e.head_before,
                owner_tid: e.owner_tid,
                owner: Comm(e.owner_comm),
                stacks: super::StackRefs::of(e),
            });
        }
    }
    None
}

pub(super) fn lock_kind(e: &Event) -> LockKind {
    if e.on_mutex() {
        LockKind::Mutex
    } else {
        LockKind::RdWait
    }
}
