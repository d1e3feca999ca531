//! Synthetic but realistic event sequences: what the probes emit for a notification pipe's life
//! (created, sized, watched, posts filling the ring, a loss, reads draining it, a rejected splice,
//! a contended mutex) and for an ordinary pipe. Used by tests, by `record --synthetic` and to
//! measure the on-disk size per event.

use crate::session::SessionMeta;
use wqtrace_common::{Event, EventKind, Op, flags};

/// Kernel addresses and inodes used by the fixtures.
pub const NPIPE: u64 = 0xffff_8881_0a3c_9e00;
pub const NPIPE_INO: u64 = 81_234;
pub const PIPE: u64 = 0xffff_8881_0a3d_1200;
pub const PIPE_INO: u64 = 81_240;
/// Offset of `pipe_inode_info.mutex` / `.rd_wait` in the fixtures.
pub const MUTEX_OFF: u64 = 0x10;
pub const RD_WAIT_OFF: u64 = 0x30;
/// `WATCH_TYPE_KEY_NOTIFY`, `NOTIFY_KEY_UPDATED`.
pub const KEY_NOTIFY: u32 = 1;
pub const KEY_UPDATED: u32 = 2;

/// Boot-time base of the fixtures' timestamps (about 1 h after boot).
pub const T0: u64 = 3_600_000_000_000;

pub fn comm(s: &str) -> [u8; 16] {
    let mut c = [0u8; 16];
    let n = s.len().min(15);
    c[..n].copy_from_slice(&s.as_bytes()[..n]);
    c
}

/// A task as the events name it.
#[derive(Clone, Copy, Debug)]
pub struct Task {
    pub tid: u32,
    pub tgid: u32,
    pub comm: &'static str,
    pub cpu: u32,
}

pub const READER: Task = Task {
    tid: 4101,
    tgid: 4100,
    comm: "wq-reader",
    cpu: 1,
};
pub const POSTER: Task = Task {
    tid: 4200,
    tgid: 4200,
    comm: "keyctl",
    cpu: 0,
};
pub const SPLICER: Task = Task {
    tid: 4301,
    tgid: 4300,
    comm: "splicer",
    cpu: 1,
};
pub const WRITER: Task = Task {
    tid: 4400,
    tgid: 4400,
    comm: "producer",
    cpu: 0,
};
pub const CONSUMER: Task = Task {
    tid: 4500,
    tgid: 4500,
    comm: "consumer",
    cpu: 1,
};

/// Builds events with a running ring state per pipe.
pub struct Builder {
    pub ts: u64,
    pub events: Vec<Event>,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new(T0)
    }
}

impl Builder {
    pub fn new(ts: u64) -> Self {
        Self {
            ts,
            events: Vec::new(),
        }
    }

    /// A fresh event of `kind` by `task` on `pipe`, `dt_ns` after the previous one.
    pub fn ev(
        &mut self,
        dt_ns: u64,
        kind: EventKind,
        op: Op,
        task: Task,
        pipe: u64,
        ino: u64,
    ) -> Event {
        self.ts += dt_ns;
        let mut e = Event::zeroed();
        e.ts_ns = self.ts;
        e.kind = kind as u8;
        e.op = op as u8;
        e.tid = task.tid;
        e.tgid = task.tgid;
        e.comm = comm(task.comm);
        e.cpu = task.cpu;
        e.ctx = wqtrace_common::ExecCtx::Task as u8;
        e.pipe = pipe;
        e.ino = ino;
        e.flags = flags::FROM_KFUNC;
        e
    }

    pub fn push(&mut self, e: Event) {
        self.events.push(e);
    }
}

fn ring(e: &mut Event, hb: u32, h: u32, tb: u32, t: u32, size: u32) {
    e.head_before = hb;
    e.head = h;
    e.tail_before = tb;
    e.tail = t;
    e.ring_size = size;
    e.max_usage = size;
}

/// The fields every KEY_UPDATED post of these sessions shares: watch 1's 16-byte record into
/// notification pipe `pipe`, whose queue has `nr_notes` notes, `in_use` of them taken.
fn key_update(e: &mut Event, pipe: u64, nr_notes: u32, in_use: u32) {
    e.flags |= flags::NOTIFICATION_PIPE;
    e.nr_notes = nr_notes;
    e.notes_in_use = in_use;
    e.ntype = KEY_NOTIFY;
    e.subtype = KEY_UPDATED;
    e.info = 16 | (1 << 8);
    e.lock = pipe + RD_WAIT_OFF;
}

/// Posts into a 256-slot, 256-note queue while a reader drains it, as the 6.12 guest's storm
/// recorded them when the queue lost a note: the second post's slot was consumed and its note
/// freed before the post took the note, so from the third landing on one note more is in use
/// than the ring holds.
pub fn leaked_note_session() -> Vec<Event> {
    let mut b = Builder::default();
    // (head, tail, notes in use) at each landing.
    for (i, (head, tail, in_use)) in [(1, 0, 1), (2, 1, 1), (3, 2, 2), (4, 3, 2), (5, 3, 3)]
        .into_iter()
        .enumerate()
    {
        let mut e = b.ev(
            20_000,
            EventKind::NotifyPosted,
            Op::Post,
            POSTER,
            NPIPE,
            NPIPE_INO,
        );
        key_update(&mut e, NPIPE, 256, in_use);
        ring(&mut e, head - 1, head, tail, tail, 256);
        e.slot = head - 1;
        e.note = i as u32;
        b.push(e);
    }
    b.events
}

/// The life of one notification pipe (ring of 4 slots, 32 notes) and one ordinary pipe.
///
/// Contents, in order: notification pipe created, sized, watched; 4 posts fill the ring; a 5th
/// is lost (ring full: the last slot gets the loss flag); a post lands while the reader holds the
/// mutex in the middle of a 2-slot read (no interleave: a reader); the reader waits, then drains; a splice
/// is rejected; the reader contends on the mutex. Then an ordinary pipe: a 3-page write, a
/// writer waiting for room, a contended rd_wait, a partial read, the ring resized to 8 slots
/// (F_SETPIPE_SZ) and both pipes released.
/// Long on purpose: a scripted session, read top to bottom like the story above.
pub fn notification_session() -> Vec<Event> {
    use EventKind::*;
    let mut b = Builder::default();
    let np = |b: &mut Builder, dt, k, op, t| b.ev(dt, k, op, t, NPIPE, NPIPE_INO);

    let mut e = np(&mut b, 0, PipeCreated, Op::Pipe2, READER);
    e.flags |= flags::NOTIFICATION_PIPE;
    e.fd_in = 3;
    e.fd_out = 4;
    ring(&mut e, 0, 0, 0, 0, 16);
    b.push(e);

    let mut e = np(&mut b, 40_000, WatchQueueSized, Op::Ioctl, READER);
    e.flags |= flags::NOTIFICATION_PIPE;
    e.nr_notes = 32;
    ring(&mut e, 0, 0, 0, 0, 4);
    b.push(e);

    let mut e = np(&mut b, 25_000, WatchAdded, Op::Keyctl, READER);
    e.flags |= flags::NOTIFICATION_PIPE;
    e.info = 1 << 8;
    e.nr_notes = 32;
    ring(&mut e, 0, 0, 0, 0, 4);
    b.push(e);

    // Four posts fill the ring.
    for i in 0..4u32 {
        let mut e = np(
            &mut b,
            180_000 + u64::from(i) * 3_000,
            NotifyPosted,
            Op::Post,
            POSTER,
        );
        key_update(&mut e, NPIPE, 32, i + 1);
        ring(&mut e, i, i + 1, 0, 0, 4);
        e.slot = i;
        e.note = i;
        e.duration_ns = 900 + u64::from(i) * 40;
        b.push(e);
    }
    // The fifth is lost: the ring is full; the kernel flags the last buffer.
    let mut e = np(&mut b, 150_000, NotifyPosted, Op::Post, POSTER);
    key_update(&mut e, NPIPE, 32, 4);
    e.flags |= flags::LOSS | flags::RING_FULL;
    ring(&mut e, 4, 4, 0, 0, 4);
    e.duration_ns = 400;
    b.push(e);

    // The reader drains two notes; while it holds the mutex (mid 2-slot read) nothing can post
    // (ring full), so first it reads…
    let mut e = np(&mut b, 500_000, RingOp, Op::Read, READER);
    e.flags |= flags::NOTIFICATION_PIPE;
    ring(&mut e, 4, 4, 0, 2, 4);
    e.ret = 32;
    e.nr_notes = 32;
    e.notes_in_use = 2;
    b.push(e);
    // …then a post lands while the reader (tid READER) holds the mutex in its next read, which
    // consumes 2 slots: a reader consuming while posts land, not an interleave.
    let mut e = np(&mut b, 30_000, NotifyPosted, Op::Post, POSTER);
    key_update(&mut e, NPIPE, 32, 3);
    e.flags |= flags::MUTEX_HELD;
    ring(&mut e, 4, 5, 2, 2, 4);
    e.slot = 0;
    e.note = 4;
    e.duration_ns = 1_100;
    e.owner_tid = READER.tid;
    e.owner_comm = comm(READER.comm);
    b.push(e);
    let mut e = np(&mut b, 4_000, RingOp, Op::Read, READER);
    e.flags |= flags::NOTIFICATION_PIPE | flags::LOSS_SEEN;
    ring(&mut e, 5, 5, 2, 4, 4);
    e.ret = 32;
    e.nr_notes = 32;
    e.notes_in_use = 1;
    b.push(e);

    // The reader sleeps for the next note (2 ms), reads it.
    let mut e = np(&mut b, 2_000_000, PipeWait, Op::Read, READER);
    e.flags |= flags::NOTIFICATION_PIPE;
    e.duration_ns = 1_990_000;
    b.push(e);
    let mut e = np(&mut b, 3_000, RingOp, Op::Read, READER);
    e.flags |= flags::NOTIFICATION_PIPE;
    ring(&mut e, 5, 5, 4, 5, 4);
    e.ret = 16;
    e.nr_notes = 32;
    e.notes_in_use = 0;
    b.push(e);

    // splice() from a notification pipe is refused.
    let mut e = np(&mut b, 700_000, SpliceRejected, Op::Splice, SPLICER);
    e.flags |= flags::NOTIFICATION_PIPE;
    e.ret = -22;
    e.fd_in = 3;
    b.push(e);
    let mut e = np(&mut b, 200_000, SpliceRejected, Op::Tee, SPLICER);
    e.flags |= flags::NOTIFICATION_PIPE;
    e.ret = -22;
    b.push(e);

    // The reader contends for the mutex held by the splicer.
    let mut e = np(&mut b, 90_000, LockContended, Op::Read, READER);
    e.flags |= flags::NOTIFICATION_PIPE | flags::LOCK_MUTEX | flags::MUTEX_HELD;
    e.duration_ns = 15_000;
    e.lock = NPIPE + MUTEX_OFF;
    e.owner_tid = SPLICER.tid;
    e.owner_comm = comm(SPLICER.comm);
    b.push(e);

    // An ordinary pipe.
    let p = |b: &mut Builder, dt, k, op, t| b.ev(dt, k, op, t, PIPE, PIPE_INO);
    let mut e = p(&mut b, 1_000_000, PipeCreated, Op::Pipe2, WRITER);
    e.fd_in = 5;
    e.fd_out = 6;
    ring(&mut e, 0, 0, 0, 0, 4);
    b.push(e);
    let mut e = p(&mut b, 10_000, RingOp, Op::Write, WRITER);
    ring(&mut e, 0, 3, 0, 0, 4);
    e.ret = 3 * 4096;
    b.push(e);
    let mut e = p(&mut b, 3_000_000, PipeWait, Op::Write, WRITER);
    e.duration_ns = 2_500_000;
    e.flags |= flags::OFF_CPU;
    b.push(e);
    let mut e = p(&mut b, 2_000, LockContended, Op::Write, CONSUMER);
    e.duration_ns = 2_000;
    e.lock = PIPE + RD_WAIT_OFF;
    b.push(e);
    let mut e = p(&mut b, 8_000, RingOp, Op::Read, CONSUMER);
    ring(&mut e, 3, 3, 0, 2, 4);
    e.ret = 2 * 4096;
    b.push(e);
    let mut e = p(&mut b, 9_000, RingOp, Op::Write, WRITER);
    ring(&mut e, 3, 4, 2, 2, 4);
    e.ret = 4096;
    b.push(e);
    // F_SETPIPE_SZ to 8 pages: pipe_resize_ring() compacts [tail, head) to [0, n).
    let mut e = p(&mut b, 50_000, RingOp, Op::Writev, WRITER);
    ring(&mut e, 2, 3, 0, 0, 8);
    e.ret = 4096;
    b.push(e);
    let mut e = p(&mut b, 100_000, RingOp, Op::Read, CONSUMER);
    ring(&mut e, 3, 3, 0, 3, 8);
    e.ret = 3 * 4096;
    b.push(e);

    let mut e = np(&mut b, 4_000_000, PipeReleased, Op::Close, READER);
    e.fd_in = 4;
    b.push(e);
    let e = np(&mut b, 1_000_000, PipeReleased, Op::None, READER);
    b.push(e);
    let e = p(&mut b, 10_000, PipeReleased, Op::None, CONSUMER);
    b.push(e);
    b.events
}

/// A long, busy stream (`n` events, deterministic from `seed`): `pipes` notification pipes of
/// 16 slots fed by a poster and drained by readers, with occasional losses, waits and
/// contention. Good for size measurements and load tests.
pub fn busy_stream(n: usize, pipes: u32, seed: u64) -> Vec<Event> {
    BusyStream::new(pipes, seed).take(n).collect()
}

/// The endless generator behind [`busy_stream`].
pub struct BusyStream {
    rng: u64,
    b: Builder,
    pipes: u32,
    created: u32,
    state: Vec<(u32, u32)>,
}

impl BusyStream {
    pub fn new(pipes: u32, seed: u64) -> Self {
        let pipes = pipes.max(1);
        Self {
            rng: seed | 1,
            b: Builder::default(),
            pipes,
            created: 0,
            state: vec![(0, 0); pipes as usize],
        }
    }
}

fn busy_addr(i: u32) -> u64 {
    NPIPE + u64::from(i) * 0x400
}

fn busy_ino(i: u32) -> u64 {
    NPIPE_INO + u64::from(i)
}

impl Iterator for BusyStream {
    type Item = Event;

    // Long on purpose: one arm per kind of made-up event, a table in code.
    fn next(&mut self) -> Option<Event> {
        use EventKind::*;
        let (addr, ino) = (busy_addr, busy_ino);
        let b = &mut self.b;
        if self.created < self.pipes {
            let i = self.created;
            self.created += 1;
            let reader = Task {
                tid: READER.tid + i,
                ..READER
            };
            let mut e = b.ev(20_000, PipeCreated, Op::Pipe2, reader, addr(i), ino(i));
            e.flags |= flags::NOTIFICATION_PIPE;
            e.fd_in = 3 + 2 * i as i32;
            e.fd_out = 4 + 2 * i as i32;
            ring(&mut e, 0, 0, 0, 0, 16);
            e.nr_notes = 32;
            return Some(e);
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let r = self.rng;
        let i = (r % u64::from(self.pipes)) as u32;
        let (head, tail) = self.state[i as usize];
        let dt = 2_000 + (r >> 8) % 60_000;
        let reader = Task {
            tid: READER.tid + i,
            ..READER
        };
        let e = match (r >> 32) % 16 {
            0..=8 => {
                let full = head.wrapping_sub(tail) >= 16;
                let mut e = b.ev(dt, NotifyPosted, Op::Post, POSTER, addr(i), ino(i));
                key_update(&mut e, addr(i), 32, head.wrapping_sub(tail));
                e.duration_ns = 600 + (r >> 40) % 900;
                if full {
                    e.flags |= flags::LOSS | flags::RING_FULL;
                    ring(&mut e, head, head, tail, tail, 16);
                } else {
                    ring(&mut e, head, head + 1, tail, tail, 16);
                    e.slot = head & 15;
                    e.note = head & 31;
                    e.notes_in_use += 1;
                    self.state[i as usize].0 = head + 1;
                }
                e
            }
            9..=13 => {
                let n = head.wrapping_sub(tail).min(1 + (r >> 44) as u32 % 4);
                let mut e = b.ev(dt, RingOp, Op::Read, reader, addr(i), ino(i));
                e.flags |= flags::NOTIFICATION_PIPE;
                ring(&mut e, head, head, tail, tail + n, 16);
                e.ret = if n == 0 { -11 } else { i64::from(n) * 16 };
                e.nr_notes = 32;
                e.notes_in_use = head.wrapping_sub(tail + n);
                self.state[i as usize].1 = tail + n;
                e
            }
            14 => {
                let mut e = b.ev(dt, PipeWait, Op::Read, reader, addr(i), ino(i));
                e.flags |= flags::NOTIFICATION_PIPE;
                e.duration_ns = dt / 2;
                e
            }
            _ => {
                let mut e = b.ev(dt, LockContended, Op::Read, reader, addr(i), ino(i));
                e.flags |= flags::NOTIFICATION_PIPE | flags::LOCK_MUTEX;
                e.duration_ns = 1_000 + (r >> 50) % 20_000;
                e.lock = addr(i) + MUTEX_OFF;
                e
            }
        };
        Some(e)
    }
}

/// A session's metadata as the TUI tests need it: a kernel release, whether it had
/// notification pipes, a mixed attach table.
pub fn session_meta(kernel: &str, notification_pipes: bool) -> SessionMeta {
    SessionMeta {
        kernel_release: kernel.into(),
        notification_pipes,
        attach: vec![
            ("ring_ops".into(), "tp_btf sys_enter".into()),
            (
                "notification_post".into(),
                "fentry __post_watch_notification".into(),
            ),
            ("get_pipe_info".into(), "kprobe get_pipe_info".into()),
            ("pipe_wait".into(), "unavailable".into()),
        ],
        ..Default::default()
    }
}
