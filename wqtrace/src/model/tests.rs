use wqtrace_common::{Event, EventKind, Op, flags};

use super::*;
use crate::recording::fixtures::{self, NPIPE, NPIPE_INO, PIPE_INO, POSTER, READER, SPLICER};

fn ev(kind: EventKind, op: Op, ts: u64) -> Event {
    let mut e = Event::zeroed();
    e.kind = kind as u8;
    e.op = op as u8;
    e.ts_ns = ts;
    e.pipe = 0xffff_0000_0000_1000;
    e.ino = 77;
    e.tid = 10;
    e.tgid = 10;
    e.comm = fixtures::comm("t");
    e
}

fn ring(e: &mut Event, hb: u32, h: u32, tb: u32, t: u32, size: u32) {
    (e.head_before, e.head, e.tail_before, e.tail, e.ring_size) = (hb, h, tb, t, size);
}

fn session() -> Model {
    let mut m = Model::default();
    for e in fixtures::notification_session() {
        m.apply(&e);
    }
    m
}

fn slots(p: &PipeState) -> String {
    p.ring.letters()
}

#[test]
fn fixture_session_end_state() {
    let m = session();
    let c = m.counters();
    assert_eq!(c.events, fixtures::notification_session().len() as u64);
    assert_eq!(c.kind(EventKind::NotifyPosted), 6);
    assert_eq!((c.posted, c.posts_lost), (5, 1));
    let sorted = m.pipes_sorted(PipeOrder::Activity);
    assert_eq!(sorted.len(), 2);
    let np = sorted[0];
    assert!(np.notification);
    assert_eq!(np.ino, NPIPE_INO);
    assert_eq!(np.addr, NPIPE);
    assert_eq!(np.posts.posted, 5);
    assert_eq!(np.posts.lost, 1);
    assert_eq!(np.posts.ring_full, 1);
    assert_eq!(np.posts.loss_seen_by_reader, 1);
    assert_eq!(np.max_occupancy, 4);
    assert_eq!(np.ring.size(), 4);
    assert_eq!(np.nr_notes, 32);
    assert_eq!(np.max_notes_in_use, 4);
    assert_eq!(np.rejected(), 2);
    assert_eq!(np.waits.count, 1);
    assert_eq!(np.waits.max_ns, 1_990_000);
    let mc = np.locks.contention(LockKind::Mutex);
    assert_eq!(
        (mc.count, mc.worst_ns, mc.worst_holder_tid),
        (1, 15_000, SPLICER.tid)
    );
    assert_eq!(np.locks.posts_under_mutex, 1);
    assert_eq!(np.locks.last_owner_at_post.unwrap().tid, READER.tid);
    assert_eq!(np.locks.post_hold.count, 6);
    assert_eq!(np.watches.len(), 1);
    assert_eq!(np.watches[0].watch_id, 1);
    assert_eq!(
        np.fds,
        [PipeFds {
            tgid: READER.tgid,
            read_fd: 3,
            write_fd: 4
        }]
    );
    // Posters are not owners; the reader and the splicer are.
    let owners: Vec<_> = np.owners.iter().map(|o| o.comm.as_str()).collect();
    assert_eq!(owners, ["wq-reader", "splicer"]);
    assert!(np.is_released());
    assert_eq!(np.fd_closes, 1);
    assert_eq!(np.occupancy(), 0);
    assert_eq!(slots(np), "....");
    // Rejections by syscall and process.
    let r: Vec<_> = np
        .rejections
        .iter()
        .map(|r| (r.op, r.comm.as_str(), r.count))
        .collect();
    assert_eq!(r, [(Op::Splice, "splicer", 1), (Op::Tee, "splicer", 1)]);
    assert_eq!(m.rejections().total(), 2);
    // A post under the reader's mutex during its 2-slot read is a reader consuming while
    // posts land, not an interleave: only an op that writes slots can be split by a post.
    assert_eq!(m.interleaves().total(), 0);
    assert_eq!(np.interleaves, 0);

    let p = sorted[1];
    assert!(!p.notification);
    assert_eq!(p.ino, PIPE_INO);
    assert_eq!(p.ring.size(), 8, "F_SETPIPE_SZ resize seen");
    assert_eq!(p.op_stats(Op::Write).bytes, 4 * 4096);
    assert_eq!(p.op_stats(Op::Read).calls, 2);
    assert_eq!(p.waits.off_cpu, 1);
    assert_eq!(p.locks.contention(LockKind::RdWait).count, 1);
    assert_eq!(m.contention(LockKind::Mutex).count, 1);
    assert_eq!(m.contention(LockKind::RdWait).count, 1);
    assert_eq!(m.task(READER.tid).unwrap().waits.count, 1);
    assert_eq!(m.task(POSTER.tid).unwrap().comm.as_str(), "keyctl");
}

#[test]
fn ring_picture_through_the_session() {
    let evs = fixtures::notification_session();
    let mut m = Model::default();
    let mut pictures = Vec::new();
    for e in &evs {
        m.apply(e);
        if e.pipe == NPIPE && e.ring_size != 0 {
            pictures.push(slots(m.pipe(NPIPE).unwrap()));
        }
    }
    // created(16) sized(4) watched, 4 posts, loss, read 2, post, read 2, read 1.
    assert_eq!(
        pictures[1..].join(" "),
        ".... .... n... nn.. nnn. nnnn nnnN ..nN n.nN n... ...."
    );
}

#[test]
fn every_kind_is_counted() {
    let mut m = Model::default();
    for k in 1..=9u8 {
        let mut e = ev(EventKind::from_u8(k).unwrap(), Op::None, u64::from(k) * 10);
        if k == EventKind::PipeReleased as u8 {
            e.ts_ns = 1000;
        }
        m.apply(&e);
    }
    let mut unknown = ev(EventKind::RingOp, Op::Read, 2000);
    unknown.kind = 42;
    m.apply(&unknown);
    let c = m.counters();
    assert_eq!(c.events, 10);
    assert!(c.per_kind[1..].iter().all(|&n| n == 1));
    assert_eq!(c.per_kind[0], 1);
    assert_eq!(m.time_span(), Some((10, 2000)));
}

#[test]
fn write_read_counts_and_wrap_around_u32_max() {
    let mut m = Model::default();
    let start = u32::MAX - 2;
    let mut e = ev(EventKind::RingOp, Op::Write, 1);
    ring(&mut e, start, start.wrapping_add(5), start, start, 8);
    e.ret = 5 * 4096;
    m.apply(&e);
    let p = m.pipe_by_ino(77).unwrap();
    assert_eq!(p.occupancy(), 5);
    assert_eq!(p.ring.head(), 2);
    // start = 0xfffffffd → index 5, 6, 7, 0, 1.
    assert_eq!(slots(p), "dd...ddd");
    let mut e = ev(EventKind::RingOp, Op::Read, 2);
    ring(&mut e, 2, 2, start, 1, 8);
    e.ret = 4 * 4096;
    m.apply(&e);
    let p = m.pipe_by_ino(77).unwrap();
    assert_eq!(p.occupancy(), 1);
    assert_eq!(slots(p), ".d......");
    assert_eq!(p.max_occupancy, 5);
    assert_eq!(p.op_stats(Op::Read).bytes, 4 * 4096);
    // A failed read counts as an error.
    let mut e = ev(EventKind::RingOp, Op::Read, 3);
    ring(&mut e, 2, 2, 1, 1, 8);
    e.ret = -11;
    m.apply(&e);
    let s = m.pipe_by_ino(77).unwrap().op_stats(Op::Read);
    assert_eq!((s.calls, s.errors, s.last_error), (2, 1, -11));
}

/// A landed post as the landing hook reports it: the ring after it (`tail` → `head`, of 256)
/// and the notes in use, both read with the ring lock held.
fn landed(m: &mut Model, ts: u64, head: u32, tail: u32, notes_in_use: u32) {
    let mut e = ev(EventKind::NotifyPosted, Op::Post, ts);
    e.flags = flags::NOTIFICATION_PIPE;
    ring(&mut e, head - 1, head, tail, tail, 256);
    e.slot = (head - 1) % 256;
    e.note = 0;
    e.nr_notes = 256;
    e.notes_in_use = notes_in_use;
    m.apply(&e);
}

#[test]
fn notes_in_use_past_the_occupancy_are_leaked_for_good() {
    let mut m = Model::default();
    let leaked = |m: &Model| m.pipe_by_ino(77).unwrap().notes_leaked;
    // One note per filled slot; a reader that has freed a slot's note and not yet given the
    // slot back leaves fewer notes than slots (the reader frees before it moves the tail).
    landed(&mut m, 1, 1, 0, 1);
    landed(&mut m, 2, 3, 0, 2);
    landed(&mut m, 3, 4, 2, 2);
    assert_eq!(leaked(&m).count, 0);
    // One odd read of the bitmap (a failed word reads as all in use) is not a leak.
    landed(&mut m, 4, 5, 4, 65);
    landed(&mut m, 5, 6, 5, 1);
    assert_eq!(leaked(&m).count, 0);
    // As the storm's recording showed it (6.12 guest): the post that takes note 0 sees one
    // note for its one slot; the reader had already consumed and freed that slot before the
    // post took the note, so from the next landing on one note too many is in use, for good.
    landed(&mut m, 10, 7, 6, 1);
    landed(&mut m, 11, 8, 7, 2);
    assert_eq!(leaked(&m).count, 0, "one landing is not proof");
    landed(&mut m, 12, 10, 8, 3);
    let l = leaked(&m);
    assert_eq!(
        (l.count, l.first_ts_ns, l.last_ts_ns),
        (1, Some(12), Some(12))
    );
    // A reader's freed-but-not-returned slot hides it for a landing; it is not forgotten.
    landed(&mut m, 13, 11, 8, 3);
    assert_eq!(leaked(&m).count, 1);
    landed(&mut m, 20, 13, 10, 5);
    landed(&mut m, 21, 14, 10, 6);
    let l = leaked(&m);
    assert_eq!(
        (l.count, l.first_ts_ns, l.last_ts_ns),
        (2, Some(12), Some(21))
    );
}

/// A post into a pipe no traced syscall had named yet comes without its inode (the kernel
/// cannot tell it there); the reader's next read names it, and it is the same pipe.
#[test]
fn a_pipe_first_seen_by_a_post_learns_its_inode() {
    let mut m = Model::default();
    let mut e = ev(EventKind::NotifyPosted, Op::Post, 1);
    e.ino = 0;
    e.flags = flags::NOTIFICATION_PIPE;
    ring(&mut e, 0, 1, 0, 0, 4);
    e.slot = 0;
    m.apply(&e);
    assert!(m.pipe_by_ino(77).is_none());
    assert_eq!(m.pipes().count(), 1);
    let mut r = ev(EventKind::RingOp, Op::Read, 2);
    r.flags = flags::NOTIFICATION_PIPE;
    r.ret = 16;
    ring(&mut r, 1, 1, 0, 1, 4);
    m.apply(&r);
    assert_eq!(m.pipes().count(), 1, "one pipe, not one per inode seen");
    let p = m.pipe_by_ino(77).expect("the read named the pipe");
    assert_eq!(p.label(), "pipe:[77]");
    assert_eq!((p.posts.posted, p.op_stats(Op::Read).calls), (1, 1));
}

#[test]
fn loss_flags_last_slot_and_counts() {
    let mut m = Model::default();
    for i in 0..2u32 {
        let mut e = ev(EventKind::NotifyPosted, Op::Post, u64::from(i));
        e.flags = flags::NOTIFICATION_PIPE;
        ring(&mut e, i, i + 1, 0, 0, 2);
        e.slot = i;
        m.apply(&e);
    }
    let mut e = ev(EventKind::NotifyPosted, Op::Post, 5);
    e.flags = flags::NOTIFICATION_PIPE | flags::LOSS | flags::NOTES_FULL;
    ring(&mut e, 2, 2, 0, 0, 2);
    m.apply(&e);
    let p = m.pipe_by_ino(77).unwrap();
    assert_eq!(slots(p), "nN");
    assert_eq!(
        (
            p.posts.posted,
            p.posts.lost,
            p.posts.notes_full,
            p.posts.ring_full
        ),
        (2, 1, 1, 0)
    );
    // Lost with the reason hidden by concurrent posters and readers: lost, neither reason.
    let mut e = ev(EventKind::NotifyPosted, Op::Post, 5);
    e.flags = flags::NOTIFICATION_PIPE | flags::LOSS;
    ring(&mut e, 2, 2, 0, 0, 2);
    m.apply(&e);
    let p = m.pipe_by_ino(77).unwrap();
    assert_eq!((p.posts.lost, p.posts.lost_reason_unknown), (2, 1));
    // A filtered post changes nothing in the ring.
    let mut e = ev(EventKind::NotifyPosted, Op::Post, 6);
    e.flags = flags::NOTIFICATION_PIPE | flags::FILTERED;
    ring(&mut e, 2, 2, 0, 0, 2);
    m.apply(&e);
    let p = m.pipe_by_ino(77).unwrap();
    assert_eq!(slots(p), "nN");
    assert_eq!(p.posts.filtered, 1);
    // Did not land, cause unknown: neither lost nor filtered nor landed.
    let mut e = ev(EventKind::NotifyPosted, Op::Post, 7);
    e.flags = flags::NOTIFICATION_PIPE | flags::OUTCOME_UNKNOWN;
    ring(&mut e, 2, 2, 0, 0, 2);
    m.apply(&e);
    let p = m.pipe_by_ino(77).unwrap();
    assert_eq!((p.posts.unknown, p.posts.lost, p.posts.posted), (1, 2, 2));
    assert_eq!(p.posts.attempts, 6);
    let s = &p.posts;
    assert_eq!(
        s.attempts,
        s.posted + s.lost + s.filtered + s.unknown,
        "every attempt has exactly one outcome"
    );
    let c = m.counters();
    assert_eq!(c.post_outcomes.iter().sum::<u64>(), 6);
}

#[test]
fn watch_queue_resize_and_ring_index_wrap_for_posts() {
    let mut m = Model::default();
    let mut e = ev(EventKind::PipeCreated, Op::Pipe2, 1);
    e.flags = flags::NOTIFICATION_PIPE;
    ring(&mut e, 0, 0, 0, 0, 16);
    m.apply(&e);
    assert_eq!(m.pipe_by_ino(77).unwrap().ring.size(), 16);
    let mut e = ev(EventKind::WatchQueueSized, Op::Ioctl, 2);
    e.nr_notes = 64;
    ring(&mut e, 0, 0, 0, 0, 2);
    m.apply(&e);
    let p = m.pipe_by_ino(77).unwrap();
    assert_eq!((p.ring.size(), p.nr_notes), (2, 64));
    // Post, read, post, post: the third post wraps to index 0.
    let steps = [
        (0, 1, 0, 0, 0),
        (1, 1, 0, 1, u32::MAX),
        (1, 2, 1, 1, 1),
        (2, 3, 1, 1, 0),
    ];
    for (i, (hb, h, tb, t, slot)) in steps.into_iter().enumerate() {
        let kind = if slot == u32::MAX {
            EventKind::RingOp
        } else {
            EventKind::NotifyPosted
        };
        let mut e = ev(kind, Op::Post, 10 + i as u64);
        e.flags = flags::NOTIFICATION_PIPE;
        ring(&mut e, hb, h, tb, t, 2);
        e.slot = slot;
        m.apply(&e);
    }
    assert_eq!(slots(m.pipe_by_ino(77).unwrap()), "nn");
}

#[test]
fn wait_and_contention_per_task() {
    let mut m = Model::default();
    let mut e = ev(EventKind::PipeWait, Op::WaitReadable, 5_000);
    e.duration_ns = 3_000;
    m.apply(&e);
    assert_eq!(m.tasks_waiting_at(4_000).len(), 1);
    assert!(m.tasks_waiting_at(6_000).is_empty());
    let mut e = ev(EventKind::LockContended, Op::Write, 9_000);
    e.flags = flags::LOCK_MUTEX;
    e.duration_ns = 700;
    e.owner_tid = 99;
    e.owner_comm = fixtures::comm("holder");
    m.apply(&e);
    let t = m.task(10).unwrap();
    assert_eq!(t.waits.total_ns, 3_000);
    assert_eq!(
        t.contention[LockKind::Mutex.idx()].worst_holder.as_str(),
        "holder"
    );
    assert_eq!(m.waits().count, 1);
}

#[test]
fn interleave_needs_a_post_inside_the_owners_written_slots() {
    let mut m = Model::default();
    // A post at ring index `at` while task 10 holds the mutex.
    let post = |m: &mut Model, ts: u64, at: u32| {
        let mut p = ev(EventKind::NotifyPosted, Op::Post, ts);
        p.flags = flags::NOTIFICATION_PIPE | flags::MUTEX_HELD;
        p.owner_tid = 10;
        p.tid = 20;
        ring(&mut p, at, at + 1, 0, 0, 8);
        p.slot = at;
        m.apply(&p);
    };
    // An op by task 10 that moved head `from..to` (a write) or tail (a read).
    let op = |m: &mut Model, ts: u64, o: Op, from: u32, to: u32, dst: bool| {
        let mut e = ev(EventKind::RingOp, o, ts);
        e.tid = 10;
        if dst {
            e.flags = flags::RING_DST;
            ring(&mut e, from, to, 0, 0, 8);
        } else {
            ring(&mut e, to, to, from, to, 8);
        }
        m.apply(&e);
    };
    // A reader consuming 3 slots while a post lands among them: never an alert.
    post(&mut m, 1, 1);
    op(&mut m, 2, Op::Read, 0, 3, false);
    assert_eq!(m.interleaves().total(), 0);
    // A writer whose 3 slots (3, 5, 6) have a post at 4 strictly between them: an alert.
    post(&mut m, 3, 4);
    op(&mut m, 4, Op::Write, 3, 7, true);
    assert_eq!(m.interleaves().total(), 1);
    let i = m.interleaves().iter().next().unwrap();
    assert_eq!(
        (i.owner_tid, i.slot, i.slots_moved, i.op),
        (10, 4, 3, Op::Write)
    );
    // A post after the writer's last slot (its own 7, 8; the post at 9): no alert.
    post(&mut m, 5, 9);
    op(&mut m, 6, Op::Write, 7, 10, true);
    assert_eq!(m.interleaves().total(), 1);
    // A post that was lost under the writer's mutex took no slot: no alert.
    let mut lost = ev(EventKind::NotifyPosted, Op::Post, 7);
    lost.flags = flags::NOTIFICATION_PIPE | flags::MUTEX_HELD | flags::LOSS | flags::RING_FULL;
    lost.owner_tid = 10;
    ring(&mut lost, 11, 11, 0, 0, 8);
    m.apply(&lost);
    op(&mut m, 7, Op::Write, 10, 13, true);
    assert_eq!(m.interleaves().total(), 1);
    // A one-slot write cannot be split.
    post(&mut m, 7, 13);
    op(&mut m, 8, Op::Write, 13, 15, true);
    assert_eq!(m.interleaves().total(), 1);
    // Another task's multi-slot write does not consume task 10's pending posts.
    post(&mut m, 9, 16);
    let mut other = ev(EventKind::RingOp, Op::Write, 10);
    other.tid = 30;
    other.flags = flags::RING_DST;
    ring(&mut other, 15, 18, 0, 0, 8);
    m.apply(&other);
    assert_eq!(m.interleaves().total(), 1);
    op(&mut m, 11, Op::Write, 15, 18, true);
    assert_eq!(m.interleaves().total(), 2);
}

#[test]
fn address_reuse_retires_old_pipe() {
    let mut m = Model::default();
    let mut c = ev(EventKind::PipeCreated, Op::Pipe2, 1);
    m.apply(&c);
    m.apply(&ev(EventKind::PipeReleased, Op::Close, 2));
    assert!(
        !m.pipe_by_ino(77).unwrap().is_released(),
        "an fd close is not the end"
    );
    m.apply(&ev(EventKind::PipeReleased, Op::None, 2));
    c.ts_ns = 3;
    c.ino = 78;
    m.apply(&c);
    assert_eq!(m.pipes().count(), 1);
    assert_eq!(m.retired_pipes().count(), 1);
    assert_eq!(m.pipe(c.pipe).unwrap().ino, 78);
    assert!(m.pipe_by_ino(77).is_none());
    assert_eq!(m.all_pipes_sorted(PipeOrder::Ino).len(), 2);
}

#[test]
fn bounded_pipes_evict_released_first() {
    let cfg = ModelConfig {
        max_pipes: 4,
        max_retired: 2,
        ..ModelConfig::default()
    };
    let mut m = Model::new(cfg);
    for i in 0..4u64 {
        let mut e = ev(EventKind::PipeCreated, Op::Pipe2, 10 + i);
        e.pipe = 0x1000 + i;
        e.ino = 100 + i;
        m.apply(&e);
    }
    let mut r = ev(EventKind::PipeReleased, Op::None, 20);
    r.pipe = 0x1002;
    r.ino = 102;
    m.apply(&r);
    for i in 4..10u64 {
        let mut e = ev(EventKind::PipeCreated, Op::Pipe2, 30 + i);
        e.pipe = 0x1000 + i;
        e.ino = 100 + i;
        m.apply(&e);
        assert!(m.pipes().count() <= 4);
    }
    assert!(m.pipe(0x1002).is_none(), "released pipe evicted first");
    assert!(m.pipe(0x1009).is_some());
    assert_eq!(m.retired_pipes().count(), 2);
    assert_eq!(m.counters().evicted_pipes, 6);
}

#[test]
fn bounded_tasks_and_history() {
    let cfg = ModelConfig {
        max_tasks: 16,
        history_len: 8,
        history_bucket_ns: 1,
        ..ModelConfig::default()
    };
    let mut m = Model::new(cfg);
    for i in 0..1000u32 {
        let mut e = ev(EventKind::RingOp, Op::Write, u64::from(i));
        e.tid = i + 1;
        ring(&mut e, i, i + 1, 0, 0, 4096 * 4);
        m.apply(&e);
    }
    assert!(m.tasks_sorted().len() <= 16);
    let p = m.pipe_by_ino(77).unwrap();
    assert_eq!(p.history.samples().len(), 8);
    assert!(p.ring.slots().is_empty(), "huge ring: no picture");
    assert_eq!(p.occupancy(), 1000);
}

#[test]
fn events_without_pipe_are_counted_not_keyed() {
    let mut m = Model::default();
    let mut e = ev(EventKind::LockContended, Op::None, 1);
    e.pipe = 0;
    e.ino = 0;
    e.duration_ns = 5;
    m.apply(&e);
    assert_eq!(m.counters().no_pipe, 1);
    assert_eq!(m.contention(LockKind::RdWait).count, 1);
    assert_eq!(m.pipes().count(), 0);
}

#[test]
fn sorting_puts_notification_pipes_first() {
    let mut m = Model::default();
    for (i, notif) in [(0u64, false), (1, true), (2, false)] {
        let mut e = ev(EventKind::PipeCreated, Op::Pipe2, 100 - i);
        e.pipe = 0x2000 + i;
        e.ino = 200 + i;
        if notif {
            e.flags = flags::NOTIFICATION_PIPE;
        }
        m.apply(&e);
    }
    let v: Vec<u64> = m
        .pipes_sorted(PipeOrder::Activity)
        .iter()
        .map(|p| p.ino)
        .collect();
    assert_eq!(v, [201, 200, 202]);
    let v: Vec<u64> = m
        .pipes_sorted(PipeOrder::Ino)
        .iter()
        .map(|p| p.ino)
        .collect();
    assert_eq!(v, [201, 200, 202]);
    assert!(m.events_per_sec() > 0.0);
}

#[test]
fn rejections_keep_fds_and_rate_decays_with_the_clock() {
    let m = session();
    let r: Vec<_> = m
        .rejections()
        .iter()
        .map(|r| (r.op, r.fd_in, r.fd_out))
        .collect();
    assert_eq!(r, [(Op::Splice, 3, -1), (Op::Tee, -1, -1)]);
    let now = m.now_ns();
    assert_eq!(m.events_per_sec_at(now), m.events_per_sec());
    assert!(m.events_per_sec_at(now) > 0.0);
    // Ten seconds of silence: the window is empty.
    assert_eq!(m.events_per_sec_at(now + 10_000_000_000), 0.0);
    // A clock behind the last event reads as the last event.
    assert_eq!(m.events_per_sec_at(0), m.events_per_sec());
}

/// A released pipe sorts after the live ones of its group, whatever the order asked for.
#[test]
fn released_pipes_sort_after_live_ones() {
    let mut m = Model::default();
    for (i, addr) in [0x1000u64, 0x2000].iter().enumerate() {
        let mut e = ev(EventKind::PipeCreated, Op::Pipe2, 100 + i as u64);
        e.pipe = *addr;
        e.ino = 500 + i as u64;
        m.apply(&e);
    }
    // The first pipe is freed last: most recently active, yet released.
    let mut e = ev(EventKind::PipeReleased, Op::None, 200);
    e.pipe = 0x1000;
    e.ino = 500;
    m.apply(&e);
    for order in [PipeOrder::Activity, PipeOrder::Ino, PipeOrder::Events] {
        let inos: Vec<u64> = m.pipes_sorted(order).iter().map(|p| p.ino).collect();
        assert_eq!(inos, vec![501, 500], "{order:?}");
    }
}

fn totals(tick: u64, head: u32, tail: u32, writes: u64, reads: u64) -> PipeTotals {
    let mut t = PipeTotals::ZERO;
    t.tick = tick;
    t.head_tail = head as u64 | (tail as u64) << 32;
    t.ring_size = 16;
    t.max_usage = 16;
    t.max_occupancy = head - tail;
    t.ops[2].calls = writes;
    t.ops[2].bytes = writes * 100;
    t.ops[0].calls = reads;
    t.ops[0].bytes = reads * 100;
    t
}

use wqtrace_common::totals::{PipeKey, PipeTotals};

/// Ring ops the kernel totalled: each read adds what the totals grew by to the op counts, the
/// ring moves to the newest ring, and no task is credited with them.
#[test]
fn kernel_totals_add_what_they_grew_by() {
    let mut m = Model::default();
    let mut e = ev(EventKind::PipeCreated, Op::Pipe2, 10);
    e.ring_size = 16;
    m.apply(&e);
    let key = PipeKey {
        pipe: e.pipe,
        ino: e.ino,
    };
    m.apply_totals(key, &totals(100, 3, 0, 3, 0), 100);
    m.apply_totals(key, &totals(200, 10, 4, 10, 4), 200);
    // Read again unchanged: nothing more.
    m.apply_totals(key, &totals(200, 10, 4, 10, 4), 200);
    let p = m.pipe_by_ino(77).unwrap();
    assert_eq!(p.op_stats(Op::Write).calls, 10);
    assert_eq!(p.op_stats(Op::Write).bytes, 1000);
    assert_eq!(p.op_stats(Op::Read).calls, 4);
    assert_eq!((p.ring.head(), p.ring.tail(), p.occupancy()), (10, 4, 6));
    assert_eq!(slots(p), "....dddddd......");
    assert_eq!(p.max_occupancy, 6);
    assert_eq!((p.events, p.totalled_ops, p.last_ts_ns), (15, 14, 200));
    assert_eq!(p.owners.len(), 1, "only pipe2's task is known");
    assert_eq!(m.counters().totalled_ops, 14);
    assert_eq!(m.counters().kind(EventKind::RingOp), 14);
    assert_eq!(m.counters().events, 15);
    assert!(m.tasks_sorted().iter().all(|t| t.events == 1));
}

/// A pipe first met through its totals, then seen again after the model evicted it: its ops
/// are counted once.
#[test]
fn totals_of_an_evicted_pipe_are_not_counted_twice() {
    let mut m = Model::new(ModelConfig {
        max_pipes: 1,
        ..ModelConfig::default()
    });
    let a = PipeKey {
        pipe: 0xa000,
        ino: 1,
    };
    let b = PipeKey {
        pipe: 0xb000,
        ino: 2,
    };
    m.apply_totals(a, &totals(100, 2, 0, 2, 0), 100);
    m.apply_totals(b, &totals(110, 1, 0, 1, 0), 110);
    assert!(m.pipe(a.pipe).is_none(), "evicted");
    m.apply_totals(a, &totals(120, 5, 0, 5, 0), 120);
    let p = m.pipe(a.pipe).unwrap();
    assert_eq!(
        p.op_stats(Op::Write).calls,
        3,
        "what it grew by while evicted"
    );
    let evicted = m.retired_pipes().find(|p| p.addr == a.pipe).unwrap();
    assert_eq!(evicted.op_stats(Op::Write).calls, 2);
    assert_eq!(m.counters().totalled_ops, 6);
}

/// Totals read after the pipe was freed are final: the model hands them back to be forgotten,
/// once; those of live pipes, or read before the free, are not final.
#[test]
fn totals_are_final_once_read_after_the_pipe_was_freed() {
    let mut m = Model::default();
    let key = PipeKey {
        pipe: 0xffff_0000_0000_1000,
        ino: 77,
    };
    let other = PipeKey {
        pipe: 0x5000,
        ino: 9,
    };
    assert!(m.final_totals([]).is_empty());
    m.apply_totals(key, &totals(100, 2, 0, 2, 0), 100);
    m.apply_totals(other, &totals(100, 2, 0, 2, 0), 100);
    assert!(m.final_totals([&key, &other]).is_empty());
    // A close of one fd is not the pipe freed.
    m.apply(&ev(EventKind::PipeReleased, Op::Close, 150));
    assert!(m.final_totals([&key, &other]).is_empty());
    m.apply(&ev(EventKind::PipeReleased, Op::None, 160));
    // The last ops, read after the free: applied, then final.
    m.apply_totals(key, &totals(155, 3, 3, 3, 1), 155);
    assert_eq!(m.final_totals([&key, &other]), vec![key]);
    assert!(m.final_totals([&key, &other]).is_empty());
    let p = m.pipe_by_ino(77).unwrap();
    assert_eq!(p.op_stats(Op::Write).calls, 3);
    assert_eq!(p.op_stats(Op::Read).calls, 1);
    // A freed pipe's ring is not moved by an op that ended as it was freed.
    assert_eq!(p.occupancy(), 2);
}

/// A new pipe at a freed pipe's address, met through its totals: a pipe of its own.
#[test]
fn totals_of_a_new_pipe_at_a_reused_address() {
    let mut m = Model::default();
    let mut e = ev(EventKind::PipeCreated, Op::Pipe2, 10);
    e.ring_size = 16;
    m.apply(&e);
    m.apply(&ev(EventKind::PipeReleased, Op::None, 20));
    let key = PipeKey {
        pipe: e.pipe,
        ino: 78,
    };
    m.apply_totals(key, &totals(30, 1, 0, 1, 0), 30);
    assert_eq!(m.pipe(e.pipe).unwrap().ino, 78);
    assert_eq!(m.pipe_by_ino(78).unwrap().op_stats(Op::Write).calls, 1);
    assert!(m.retired_pipes().any(|p| p.ino == 77));
}

/// Contention the kernel totalled: counts and time add what they grew by, per pipe and over
/// all pipes; the worst wait, with its waiter and holder, only when a longer one came.
#[test]
fn totalled_contention_adds_up_and_keeps_the_worst() {
    use wqtrace_common::totals::LockTotals;
    let mut m = Model::default();
    let key = PipeKey {
        pipe: 0x7000,
        ino: 5,
    };
    let mut t = totals(1, 0, 0, 0, 0);
    t.locks[0] = LockTotals {
        count: 2,
        total_ns: 300,
        worst_ns: 200,
        worst_waiter_tid: 7,
        worst_holder_tid: 8,
        worst_waiter: fixtures::comm("waiter"),
        worst_holder: fixtures::comm("holder"),
    };
    m.apply_totals(key, &t, 100);
    t.locks[0].count = 5;
    t.locks[0].total_ns = 350;
    t.locks[1].count = 1;
    t.locks[1].total_ns = 40;
    t.locks[1].worst_ns = 40;
    m.apply_totals(key, &t, 200);
    let c = m.pipe(key.pipe).unwrap().locks.contention(LockKind::Mutex);
    assert_eq!((c.count, c.total_ns, c.worst_ns), (5, 350, 200));
    assert_eq!((c.worst_waiter_tid, c.worst_holder_tid), (7, 8));
    assert_eq!(c.worst_waiter, Comm(fixtures::comm("waiter")));
    assert_eq!(c.worst_ts_ns, 100, "dated to the read that brought it");
    assert_eq!(m.contention(LockKind::Mutex).count, 5);
    assert_eq!(m.contention(LockKind::RdWait).count, 1);
    assert_eq!(m.counters().kind(EventKind::LockContended), 6);
    assert_eq!(m.counters().totalled_lock_waits, 6);
    assert_eq!(m.pipe(key.pipe).unwrap().events, 6);
    // Short waits: added to the pipe's and the machine's, with no task.
    t.waits.count = 4;
    t.waits.total_ns = 400;
    t.waits.max_ns = 150;
    m.apply_totals(key, &t, 300);
    let w = m.pipe(key.pipe).unwrap().waits;
    assert_eq!((w.count, w.total_ns, w.max_ns, w.off_cpu), (4, 400, 150, 4));
    assert_eq!(m.waits().count, 4);
    assert_eq!(m.counters().totalled_waits, 4);
    assert_eq!(m.counters().kind(EventKind::PipeWait), 4);
    assert!(m.tasks_sorted().is_empty());
}
