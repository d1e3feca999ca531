//! Compact per-chunk event encoding.
//!
//! Every chunk starts with empty tables; the encoder and the decoder grow identical state as
//! events go by, so a chunk decodes on its own (seek, damage recovery) and needs no string table
//! up front. Per event (format version 2):
//!
//! ```text
//! head:u8 (kind | same-pipe bit)  ts:zigzag(ts - prev_ts)  task:ref  [pipe:ref]  mask:varint  fields…
//! ```
//!
//! `ref` is an index into a per-chunk table; the index equal to the table length defines a new
//! entry inline (pipe: address + inode; task: tid + tgid + comm string ref; string: len + bytes).
//! The pipe reference is left out when the event is on its task's previous event's pipe.
//! `mask` says which fields differ from their default; defaults are what the same pipe or task
//! showed last in this chunk (ring indices, the op, flags and result of its last event of that
//! kind, its fds, cpu, …) or the field's "unused" value, and ring indices are stored as small
//! deltas. A lock owner that is a task of the chunk is a task reference. The encoding is exact:
//! every bit of an [`Event`], padding included, round-trips.
//!
//! Version 3 adds the stack references (mask bit 24, two varints) and the task's cgroup id
//! (bit 25, defaulting to the task's last), after every other field; the padding (bit 23)
//! shrank from 7 bytes to 3.
//!
//! Version 1 (still read): `kind:u8 ts pipe:ref task:ref mask fields…`, with per-kind (not
//! per-task) defaults, `-1` fds and an op's ring before it defaulting to its ring after.

use wqtrace_common::{Event, EventKind, flags};

/// A chunk payload that does not decode. The reader turns this into a damage warning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt event data: {0}")]
pub struct DecodeError(pub &'static str);

type DResult<T> = Result<T, DecodeError>;

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn put_zigzag(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// A cursor over a payload; every read is bounds-checked.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub fn u8(&mut self) -> DResult<u8> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(DecodeError("truncated event"))?;
        self.pos += 1;
        Ok(b)
    }

    pub fn bytes(&mut self, n: usize) -> DResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(DecodeError("length overflow"))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(DecodeError("truncated event"))?;
        self.pos = end;
        Ok(s)
    }

    pub fn varint(&mut self) -> DResult<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return Err(DecodeError("varint overflow"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError("varint too long"))
    }

    pub fn zigzag(&mut self) -> DResult<i64> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    fn u32(&mut self) -> DResult<u32> {
        u32::try_from(self.varint()?).map_err(|_| DecodeError("u32 out of range"))
    }

    fn d32(&mut self) -> DResult<u32> {
        // A wrapping u32 delta stored as zigzag of its i32 reading.
        let v = self.zigzag()?;
        i32::try_from(v)
            .map(|d| d as u32)
            .map_err(|_| DecodeError("delta out of range"))
    }
}

mod decode;
mod encode;

pub use decode::decode_events;
pub use encode::ChunkEncoder;

const F_HEAD: u32 = 1 << 0;
const F_TAIL: u32 = 1 << 1;
const F_DURATION: u32 = 1 << 2;
const F_OWNER: u32 = 1 << 3;
const F_HEAD_BEFORE: u32 = 1 << 4;
const F_TAIL_BEFORE: u32 = 1 << 5;
const F_RET: u32 = 1 << 6;
const F_OP: u32 = 1 << 7;
const F_FLAGS: u32 = 1 << 8;
const F_CPU: u32 = 1 << 9;
const F_FD_IN: u32 = 1 << 10;
const F_FD_OUT: u32 = 1 << 11;
const F_RING_SIZE: u32 = 1 << 12;
const F_MAX_USAGE: u32 = 1 << 13;
const F_NR_NOTES: u32 = 1 << 14;
const F_NOTES_IN_USE: u32 = 1 << 15;
const F_SLOT: u32 = 1 << 16;
const F_NOTE: u32 = 1 << 17;
const F_NTYPE: u32 = 1 << 18;
const F_SUBTYPE: u32 = 1 << 19;
const F_INFO: u32 = 1 << 20;
const F_LOCK: u32 = 1 << 21;
const F_CTX: u32 = 1 << 22;
const F_PAD: u32 = 1 << 23;
/// Version 3: the event's stack references (two varints), after every version 2 field.
const F_STACKS: u32 = 1 << 24;
/// Version 3: the task's cgroup id, when it differs from the task's last (a varint).
const F_CGROUP: u32 = 1 << 25;
/// Version 2's event head byte: the kind (this value escapes a kind ≥ 31 into a second byte)…
const KIND_ESCAPE: u8 = 0x1f;
/// …and whether the event's pipe is its task's last (no pipe reference follows).
const HEAD_SAME_PIPE: u8 = 0x20;
/// Format version 1's bit `i` (and wire order) is this version's `V1_BITS[i]`.
const V1_BITS: [u32; 24] = [
    F_OP,
    F_FLAGS,
    F_RET,
    F_HEAD,
    F_HEAD_BEFORE,
    F_TAIL,
    F_TAIL_BEFORE,
    F_CPU,
    F_DURATION,
    F_RING_SIZE,
    F_MAX_USAGE,
    F_NR_NOTES,
    F_NOTES_IN_USE,
    F_SLOT,
    F_NOTE,
    F_NTYPE,
    F_SUBTYPE,
    F_INFO,
    F_FD_IN,
    F_FD_OUT,
    F_LOCK,
    F_OWNER,
    F_CTX,
    F_PAD,
];
const F_ALL: u32 = (1 << 24) - 1;
const F_ALL_V3: u32 = (1 << 26) - 1;

#[derive(Clone, Copy, Default)]
struct PipeCtx {
    head: u32,
    tail: u32,
    ring_size: u32,
    max_usage: u32,
    nr_notes: u32,
    notes_in_use: u32,
    ntype: u32,
    subtype: u32,
    info: u32,
}

#[derive(Clone, Copy)]
struct TaskCtx {
    cpu: u32,
    ctx: u8,
    /// Version 2: the fds of this task's last event whose pipe was the op's source ([0]) or
    /// destination ([1]): splice in and splice out alternate, each keeps its fds.
    fd_in: [i32; 2],
    fd_out: [i32; 2],
    /// Version 2: the op and flags of this task's last event of each kind (`kind % 16`): a
    /// task that reads keeps reading (version 1 kept one per kind for all tasks).
    op: [u8; 16],
    flags: [u16; 16],
    /// Version 2: the result of this task's last ring op (a loop moves the same bytes).
    ring_ret: i64,
    /// Version 2: the pipe of this task's last event (`usize::MAX`: none yet).
    pipe: usize,
    /// Version 3: the cgroup of this task's last event.
    cgroup: u64,
}

impl Default for TaskCtx {
    fn default() -> Self {
        Self {
            cpu: 0,
            ctx: 0,
            fd_in: [-1; 2],
            fd_out: [-1; 2],
            op: [0; 16],
            flags: [0; 16],
            ring_ret: 0,
            pipe: usize::MAX,
            cgroup: 0,
        }
    }
}

/// The state both sides grow while walking a chunk.
struct State {
    prev_ts: u64,
    pipes: Vec<PipeCtx>,
    tasks: Vec<TaskCtx>,
    last_op: [u8; 256],
    last_flags: [u16; 256],
}

impl State {
    fn new(base_ts: u64) -> Self {
        Self {
            prev_ts: base_ts,
            pipes: Vec::new(),
            tasks: Vec::new(),
            last_op: [0; 256],
            last_flags: [0; 256],
        }
    }

    /// The default `ret` of an event of `e.kind`.
    fn default_ret(e: &Event, t: &TaskCtx, v1: bool) -> i64 {
        if !v1 && e.kind == EventKind::RingOp as u8 {
            t.ring_ret
        } else {
            0
        }
    }

    /// The default `slot` given the fields decoded before it.
    fn default_slot(e: &Event) -> u32 {
        if e.kind == EventKind::NotifyPosted as u8
            && e.flags & flags::LOSS == 0
            && e.ring_size.is_power_of_two()
        {
            e.head_before & (e.ring_size - 1)
        } else {
            u32::MAX
        }
    }

    fn after(&mut self, e: &Event, pipe: usize, task: usize) {
        self.prev_ts = e.ts_ns;
        self.last_op[e.kind as usize] = e.op;
        self.last_flags[e.kind as usize] = e.flags;
        let p = &mut self.pipes[pipe];
        p.head = e.head;
        p.tail = e.tail;
        p.ring_size = e.ring_size;
        p.max_usage = e.max_usage;
        p.nr_notes = e.nr_notes;
        p.notes_in_use = e.notes_in_use;
        if e.kind == EventKind::NotifyPosted as u8 {
            p.ntype = e.ntype;
            p.subtype = e.subtype;
            p.info = e.info;
        }
        let t = &mut self.tasks[task];
        t.cpu = e.cpu;
        t.ctx = e.ctx;
        t.fd_in[fd_side(e)] = e.fd_in;
        t.fd_out[fd_side(e)] = e.fd_out;
        if e.kind == EventKind::RingOp as u8 {
            t.ring_ret = e.ret;
        }
        t.pipe = pipe;
        t.cgroup = e.cgroup;
        t.op[e.kind as usize % 16] = e.op;
        t.flags[e.kind as usize % 16] = e.flags;
    }
}

/// Which of a task's fd defaults an event uses (its flags are decoded before its fds).
fn fd_side(e: &Event) -> usize {
    usize::from(e.flags & flags::RING_DST != 0)
}

fn comm_len(c: &[u8; 16]) -> usize {
    c.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

/// Format version 2's wire order of the fields: its bit order.
const V2_ORDER: [u32; 24] = {
    let mut o = [0; 24];
    let mut i = 0;
    while i < 24 {
        o[i] = 1 << i;
        i += 1;
    }
    o
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(Cursor::new(&b).varint().unwrap(), v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            let mut b = Vec::new();
            put_zigzag(&mut b, v);
            assert_eq!(Cursor::new(&b).zigzag().unwrap(), v);
        }
        // 11 continuation bytes: rejected, not a panic.
        assert!(Cursor::new(&[0xff; 11]).varint().is_err());
        assert!(Cursor::new(&[0xff; 9]).varint().is_err());
    }

    #[test]
    fn round_trip_with_wrap() {
        let mut evs = Vec::new();
        let mut e = Event::zeroed();
        e.kind = EventKind::RingOp as u8;
        e.pipe = 0xffff_8880_1234_5000;
        e.ino = 4242;
        e.ring_size = 16;
        e.head_before = u32::MAX - 1;
        e.head = 2;
        e.tail_before = u32::MAX - 3;
        e.tail = u32::MAX - 3;
        e.ts_ns = 1_000;
        evs.push(e);
        e.ts_ns = 500; // out of order timestamps are fine
        e.lock = e.pipe + 0x28;
        e.comm[..4].copy_from_slice(b"keyc");
        evs.push(e);
        e.kstack = 1;
        e.ustack = wqtrace_common::stack_ref::FAILED;
        e.cgroup = 4242;
        evs.push(e);
        e.cgroup = 0;
        evs.push(e);
        let mut enc = ChunkEncoder::new();
        for e in &evs {
            enc.push(e);
        }
        let (n, base, body) = enc.take();
        let mut out = Vec::new();
        decode_events(&body, n, base, crate::recording::FORMAT_VERSION, &mut out).unwrap();
        assert_eq!(out, evs);
    }

    /// More tasks than the encoder compares without hashing, taking turns on several pipes,
    /// two of them with one tid and different names (a thread that renamed itself): every
    /// chunk reads back exactly, the second one on its own although its tasks were known.
    #[test]
    fn tasks_taking_turns_round_trip_in_every_chunk() {
        let mut evs = Vec::new();
        for i in 0..200u32 {
            let mut e = Event::zeroed();
            e.kind = EventKind::RingOp as u8;
            let t = (i * 7 + i / 3) % 7;
            e.tid = 100 + t.min(5);
            e.tgid = 100;
            e.comm[..6].copy_from_slice(b"worker");
            e.comm[6] = b'0' + t as u8;
            let p = u64::from((i / 2 + t) % 3);
            e.pipe = 0xffff_8880_0000_0000 + p * 0x400;
            e.ino = 4000 + p;
            e.ts_ns = 1_000 + u64::from(i) * 300;
            (e.head_before, e.head) = (i, i + 1);
            e.ret = 512;
            evs.push(e);
        }
        let mut enc = ChunkEncoder::new();
        for half in evs.chunks(100) {
            for e in half {
                enc.push(e);
            }
            let (n, base, body) = enc.take();
            let mut out = Vec::new();
            decode_events(&body, n, base, crate::recording::FORMAT_VERSION, &mut out).unwrap();
            assert_eq!(out, half);
        }
    }

    /// A read that slept, as the programs stream it: the op carrying its wait.
    fn read_that_slept() -> Event {
        let mut e = Event::zeroed();
        e.kind = EventKind::RingOp as u8;
        e.op = wqtrace_common::Op::Read as u8;
        e.flags = wqtrace_common::flags::OFF_CPU | wqtrace_common::flags::NOTIFICATION_PIPE;
        e.ts_ns = 5_000;
        e.duration_ns = 1_500_000;
        e.pipe = 0xffff_8880_1234_5000;
        e.ino = 4242;
        e.tid = 7;
        e.tgid = 7;
        e.comm[..6].copy_from_slice(b"reader");
        e.cgroup = 99;
        e.ret = 16;
        e.fd_in = 3;
        (e.head_before, e.tail_before, e.head, e.tail) = (5, 4, 5, 5);
        (e.ring_size, e.max_usage) = (16, 16);
        e.owner_tid = 8;
        e.kstack = 3;
        e.ustack = 4;
        e
    }

    #[test]
    fn a_ring_op_carrying_its_wait_reads_back_as_the_wait_and_the_op() {
        let e = read_that_slept();
        let mut plain = e;
        plain.flags = 0;
        plain.duration_ns = 0;
        plain.kstack = 0;
        plain.ustack = 0;
        let mut enc = ChunkEncoder::new();
        assert_eq!(enc.push(&e), 2);
        assert_eq!(enc.push(&plain), 1);
        let (n, base, body) = enc.take();
        assert_eq!(n, 3, "the chunk counts the events read back");
        let mut out = Vec::new();
        decode_events(&body, n, base, crate::recording::FORMAT_VERSION, &mut out).unwrap();
        assert_eq!(out.len(), 3);
        let (wait, op) = (&out[0], &out[1]);
        // The wait: its own kind, duration and stacks, the op's task, pipe, result and ring.
        assert_eq!(wait.kind(), Some(EventKind::PipeWait));
        assert_eq!(wait.op(), wqtrace_common::Op::Read);
        assert_eq!(
            (wait.ts_ns, wait.duration_ns, wait.ret),
            (5_000, 1_500_000, 16)
        );
        assert_eq!(
            wait.flags,
            wqtrace_common::flags::OFF_CPU | wqtrace_common::flags::NOTIFICATION_PIPE
        );
        assert_eq!((wait.tid, wait.comm, wait.cgroup), (7, e.comm, 99));
        assert_eq!((wait.pipe, wait.ino), (e.pipe, 4242));
        assert_eq!((wait.head, wait.tail, wait.ring_size), (5, 5, 16));
        assert_eq!((wait.kstack, wait.ustack), (3, 4));
        // None of the op's own fields.
        assert_eq!((wait.fd_in, wait.owner_tid, wait.head_before), (-1, 0, 0));
        // The op: as it was, without the wait.
        assert_eq!(op.kind(), Some(EventKind::RingOp));
        assert_eq!(op.flags, wqtrace_common::flags::NOTIFICATION_PIPE);
        assert_eq!((op.duration_ns, op.kstack, op.ustack), (0, 0, 0));
        assert_eq!(
            (op.head_before, op.tail_before, op.fd_in, op.owner_tid),
            (5, 4, 3, 8)
        );
        assert_eq!(out[2], plain);
    }

    #[test]
    fn a_count_that_splits_a_ring_op_from_its_wait_is_damage() {
        let mut enc = ChunkEncoder::new();
        enc.push(&read_that_slept());
        let (_, base, body) = enc.take();
        let mut out = Vec::new();
        assert!(decode_events(&body, 1, base, crate::recording::FORMAT_VERSION, &mut out).is_err());
    }
}
