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
//! Version 1 (still read): `kind:u8 ts pipe:ref task:ref mask fields…`, with per-kind (not
//! per-task) defaults, `-1` fds and an op's ring before it defaulting to its ring after.

use foldhash::HashMap;

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

fn put_d32(out: &mut Vec<u8>, d: u32) {
    put_zigzag(out, i64::from(d as i32));
}

// Field mask bits (format version 2 numbering), those a ring op usually sets first: a typical
// event needs a 1-byte mask. Fields follow in bit order (`slot`'s default needs `flags`,
// `head_before` and `ring_size` decoded first).
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

/// Encodes the events of one chunk.
pub struct ChunkEncoder {
    state: State,
    base_ts: u64,
    count: u64,
    body: Vec<u8>,
    pipe_index: HashMap<(u64, u64), usize>,
    task_index: HashMap<(u32, u32, [u8; 16]), usize>,
    /// A lock owner is usually a task of the chunk already: (tid, comm) → its task index.
    owner_index: HashMap<(u32, [u8; 16]), usize>,
    string_index: HashMap<[u8; 16], usize>,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    pub fn new() -> Self {
        Self {
            state: State::new(0),
            base_ts: 0,
            count: 0,
            body: Vec::with_capacity(64 * 1024),
            pipe_index: HashMap::default(),
            task_index: HashMap::default(),
            owner_index: HashMap::default(),
            string_index: HashMap::default(),
        }
    }

    /// Events encoded since the last [`ChunkEncoder::take`].
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Encoded bytes since the last [`ChunkEncoder::take`].
    pub fn len(&self) -> usize {
        self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Timestamp the chunk's deltas start from (the first event's).
    pub fn base_ts(&self) -> u64 {
        self.base_ts
    }

    fn string_ref(&mut self, s: &[u8; 16]) {
        let n = self.string_index.len();
        match self.string_index.get(s) {
            Some(&i) => put_varint(&mut self.body, i as u64),
            None => {
                self.string_index.insert(*s, n);
                put_varint(&mut self.body, n as u64);
                let len = comm_len(s);
                self.body.push(len as u8);
                self.body.extend_from_slice(&s[..len]);
            }
        }
    }

    pub fn push(&mut self, e: &Event) {
        if self.count == 0 {
            self.base_ts = e.ts_ns;
            self.state.prev_ts = e.ts_ns;
        }
        self.count += 1;
        // Version 2: a head byte (kind, and whether the pipe is the task's last), the time, the
        // task, then the pipe unless it is the task's last.
        let known_task = self.task_index.get(&(e.tid, e.tgid, e.comm)).copied();
        let known_pipe = self.pipe_index.get(&(e.pipe, e.ino)).copied();
        let same_pipe = matches!(
            (known_task, known_pipe),
            (Some(t), Some(p)) if self.state.tasks[t].pipe == p
        );
        let out = &mut self.body;
        let kind_code = if e.kind < KIND_ESCAPE {
            e.kind
        } else {
            KIND_ESCAPE
        };
        out.push(kind_code | if same_pipe { HEAD_SAME_PIPE } else { 0 });
        if kind_code == KIND_ESCAPE {
            out.push(e.kind);
        }
        put_zigzag(out, e.ts_ns.wrapping_sub(self.state.prev_ts) as i64);

        let task = match known_task {
            Some(i) => {
                put_varint(&mut self.body, i as u64);
                i
            }
            None => {
                let n = self.task_index.len();
                self.task_index.insert((e.tid, e.tgid, e.comm), n);
                self.owner_index.entry((e.tid, e.comm)).or_insert(n);
                self.state.tasks.push(TaskCtx::default());
                put_varint(&mut self.body, n as u64);
                put_varint(&mut self.body, u64::from(e.tid));
                put_varint(&mut self.body, u64::from(e.tgid));
                self.string_ref(&e.comm);
                n
            }
        };
        let out = &mut self.body;
        let pipe = match known_pipe {
            Some(i) => {
                if !same_pipe {
                    put_varint(out, i as u64);
                }
                i
            }
            None => {
                let n = self.pipe_index.len();
                self.pipe_index.insert((e.pipe, e.ino), n);
                self.state.pipes.push(PipeCtx::default());
                put_varint(out, n as u64);
                put_varint(out, e.pipe);
                put_varint(out, e.ino);
                n
            }
        };

        let p = self.state.pipes[pipe];
        let t = self.state.tasks[task];
        let k = e.kind as usize;
        let mut mask = 0u32;
        let mut set = |bit: u32, differs: bool| {
            if differs {
                mask |= bit;
            }
        };
        set(F_OP, e.op != t.op[k % 16]);
        set(F_FLAGS, e.flags != t.flags[k % 16]);
        set(F_RET, e.ret != State::default_ret(e, &t, false));
        set(F_HEAD, e.head != p.head);
        // Before an op the ring is usually where the pipe's previous event left it.
        set(F_HEAD_BEFORE, e.head_before != p.head);
        set(F_TAIL, e.tail != p.tail);
        set(F_TAIL_BEFORE, e.tail_before != p.tail);
        set(F_CPU, e.cpu != t.cpu);
        set(F_DURATION, e.duration_ns != 0);
        set(F_RING_SIZE, e.ring_size != p.ring_size);
        set(F_MAX_USAGE, e.max_usage != p.max_usage);
        set(F_NR_NOTES, e.nr_notes != p.nr_notes);
        set(F_NOTES_IN_USE, e.notes_in_use != p.notes_in_use);
        set(F_SLOT, e.slot != State::default_slot(e));
        set(F_NOTE, e.note().is_some());
        let post = e.kind == EventKind::NotifyPosted as u8;
        let (dt, ds, di) = if post {
            (p.ntype, p.subtype, p.info)
        } else {
            (0, 0, 0)
        };
        set(F_NTYPE, e.ntype != dt);
        set(F_SUBTYPE, e.subtype != ds);
        set(F_INFO, e.info != di);
        // A task keeps using the same fds.
        set(F_FD_IN, e.fd_in != t.fd_in[fd_side(e)]);
        set(F_FD_OUT, e.fd_out != t.fd_out[fd_side(e)]);
        set(F_LOCK, e.lock != 0);
        set(F_OWNER, e.owner_tid != 0 || e.owner_comm != [0; 16]);
        set(F_CTX, e.ctx != t.ctx);
        set(F_PAD, e._pad != [0; 7]);

        let out = &mut self.body;
        put_varint(out, u64::from(mask));
        // In bit order, as the decoder reads them.
        if mask & F_HEAD != 0 {
            put_d32(out, e.head.wrapping_sub(p.head));
        }
        if mask & F_TAIL != 0 {
            put_d32(out, e.tail.wrapping_sub(p.tail));
        }
        if mask & F_DURATION != 0 {
            put_varint(out, e.duration_ns);
        }
        if mask & F_OWNER != 0 {
            // 1 + a task's index, or 0 and the owner spelled out.
            match self.owner_index.get(&(e.owner_tid, e.owner_comm)) {
                Some(&i) => put_varint(out, i as u64 + 1),
                None => {
                    put_varint(out, 0);
                    put_varint(out, u64::from(e.owner_tid));
                    self.string_ref(&e.owner_comm);
                }
            }
        }
        let out = &mut self.body;
        if mask & F_HEAD_BEFORE != 0 {
            put_d32(out, e.head_before.wrapping_sub(p.head));
        }
        if mask & F_TAIL_BEFORE != 0 {
            put_d32(out, e.tail_before.wrapping_sub(p.tail));
        }
        if mask & F_RET != 0 {
            put_zigzag(out, e.ret);
        }
        if mask & F_OP != 0 {
            out.push(e.op);
        }
        if mask & F_FLAGS != 0 {
            // The bits that changed, rotated so RING_DST (bit 14, flipping between a task's
            // reads and writes) fits one byte.
            put_varint(out, u64::from((e.flags ^ t.flags[k % 16]).rotate_left(2)));
        }
        if mask & F_CPU != 0 {
            put_varint(out, u64::from(e.cpu));
        }
        if mask & F_FD_IN != 0 {
            put_zigzag(out, i64::from(e.fd_in));
        }
        if mask & F_FD_OUT != 0 {
            put_zigzag(out, i64::from(e.fd_out));
        }
        if mask & F_RING_SIZE != 0 {
            put_varint(out, u64::from(e.ring_size));
        }
        if mask & F_MAX_USAGE != 0 {
            put_varint(out, u64::from(e.max_usage));
        }
        if mask & F_NR_NOTES != 0 {
            put_varint(out, u64::from(e.nr_notes));
        }
        if mask & F_NOTES_IN_USE != 0 {
            put_d32(out, e.notes_in_use.wrapping_sub(p.notes_in_use));
        }
        if mask & F_SLOT != 0 {
            put_varint(out, u64::from(e.slot.wrapping_add(1)));
        }
        if mask & F_NOTE != 0 {
            put_varint(out, u64::from(e.note.wrapping_add(1)));
        }
        if mask & F_NTYPE != 0 {
            put_varint(out, u64::from(e.ntype));
        }
        if mask & F_SUBTYPE != 0 {
            put_varint(out, u64::from(e.subtype));
        }
        if mask & F_INFO != 0 {
            put_varint(out, u64::from(e.info));
        }
        if mask & F_LOCK != 0 {
            // The lock lives inside the pipe_inode_info: a small offset from `pipe`.
            put_zigzag(out, e.lock.wrapping_sub(e.pipe) as i64);
        }
        if mask & F_CTX != 0 {
            out.push(e.ctx);
        }
        if mask & F_PAD != 0 {
            out.extend_from_slice(&e._pad);
        }
        self.state.after(e, pipe, task);
    }

    /// Returns (event count, base ts, encoded body) and resets the tables for the next chunk.
    pub fn take(&mut self) -> (u64, u64, Vec<u8>) {
        let body = std::mem::replace(&mut self.body, Vec::with_capacity(64 * 1024));
        let r = (self.count, self.base_ts, body);
        self.count = 0;
        self.state = State::new(0);
        self.pipe_index.clear();
        self.task_index.clear();
        self.owner_index.clear();
        self.string_index.clear();
        r
    }
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

fn string_ref(c: &mut Cursor, strings: &mut Vec<[u8; 16]>) -> DResult<[u8; 16]> {
    let i = c.varint()?;
    if let Some(s) = strings.get(i as usize) {
        return Ok(*s);
    }
    if i != strings.len() as u64 {
        return Err(DecodeError("bad string reference"));
    }
    let len = c.u8()? as usize;
    if len > 16 {
        return Err(DecodeError("string too long"));
    }
    let mut s = [0u8; 16];
    s[..len].copy_from_slice(c.bytes(len)?);
    strings.push(s);
    Ok(s)
}

/// One field of `e`: read when `present`, else its default (version 1's defaults for the ring
/// indices before the op and the fds differ: see the encoder).
#[allow(clippy::too_many_arguments)]
fn decode_field(
    c: &mut Cursor,
    e: &mut Event,
    bit: u32,
    present: bool,
    v1: bool,
    p: &PipeCtx,
    t: &TaskCtx,
    st: &State,
    tasks: &[(u32, u32, [u8; 16])],
    strings: &mut Vec<[u8; 16]>,
) -> DResult<()> {
    let k = e.kind as usize;
    let fd = |c: &mut Cursor| -> DResult<i32> {
        i32::try_from(c.zigzag()?).map_err(|_| DecodeError("fd out of range"))
    };
    let post = e.kind == EventKind::NotifyPosted as u8;
    match (bit, present) {
        (F_OP, true) => e.op = c.u8()?,
        (F_OP, false) => e.op = if v1 { st.last_op[k] } else { t.op[k % 16] },
        (F_FLAGS, true) => {
            let v = u16::try_from(c.varint()?).map_err(|_| DecodeError("flags out of range"))?;
            e.flags = if v1 {
                v
            } else {
                v.rotate_right(2) ^ t.flags[k % 16]
            }
        }
        (F_FLAGS, false) => {
            e.flags = if v1 {
                st.last_flags[k]
            } else {
                t.flags[k % 16]
            }
        }
        (F_RET, true) => e.ret = c.zigzag()?,
        (F_RET, false) => e.ret = State::default_ret(e, t, v1),
        (F_HEAD, true) => e.head = p.head.wrapping_add(c.d32()?),
        (F_HEAD, false) => e.head = p.head,
        (F_TAIL, true) => e.tail = p.tail.wrapping_add(c.d32()?),
        (F_TAIL, false) => e.tail = p.tail,
        (F_HEAD_BEFORE, true) if v1 => e.head_before = e.head.wrapping_sub(c.d32()?),
        (F_HEAD_BEFORE, true) => e.head_before = p.head.wrapping_add(c.d32()?),
        (F_HEAD_BEFORE, false) => e.head_before = if v1 { e.head } else { p.head },
        (F_TAIL_BEFORE, true) if v1 => e.tail_before = e.tail.wrapping_sub(c.d32()?),
        (F_TAIL_BEFORE, true) => e.tail_before = p.tail.wrapping_add(c.d32()?),
        (F_TAIL_BEFORE, false) => e.tail_before = if v1 { e.tail } else { p.tail },
        (F_CPU, true) => e.cpu = c.u32()?,
        (F_CPU, false) => e.cpu = t.cpu,
        (F_DURATION, true) => e.duration_ns = c.varint()?,
        (F_DURATION, false) => e.duration_ns = 0,
        (F_RING_SIZE, true) => e.ring_size = c.u32()?,
        (F_RING_SIZE, false) => e.ring_size = p.ring_size,
        (F_MAX_USAGE, true) => e.max_usage = c.u32()?,
        (F_MAX_USAGE, false) => e.max_usage = p.max_usage,
        (F_NR_NOTES, true) => e.nr_notes = c.u32()?,
        (F_NR_NOTES, false) => e.nr_notes = p.nr_notes,
        (F_NOTES_IN_USE, true) => e.notes_in_use = p.notes_in_use.wrapping_add(c.d32()?),
        (F_NOTES_IN_USE, false) => e.notes_in_use = p.notes_in_use,
        (F_SLOT, true) => e.slot = c.u32()?.wrapping_sub(1),
        (F_SLOT, false) => e.slot = State::default_slot(e),
        (F_NOTE, true) => e.note = c.u32()?.wrapping_sub(1),
        (F_NOTE, false) => e.note = u32::MAX,
        (F_NTYPE, true) => e.ntype = c.u32()?,
        (F_NTYPE, false) => e.ntype = if post { p.ntype } else { 0 },
        (F_SUBTYPE, true) => e.subtype = c.u32()?,
        (F_SUBTYPE, false) => e.subtype = if post { p.subtype } else { 0 },
        (F_INFO, true) => e.info = c.u32()?,
        (F_INFO, false) => e.info = if post { p.info } else { 0 },
        (F_FD_IN, true) => e.fd_in = fd(c)?,
        (F_FD_IN, false) => e.fd_in = if v1 { -1 } else { t.fd_in[fd_side(e)] },
        (F_FD_OUT, true) => e.fd_out = fd(c)?,
        (F_FD_OUT, false) => e.fd_out = if v1 { -1 } else { t.fd_out[fd_side(e)] },
        (F_LOCK, true) => e.lock = e.pipe.wrapping_add(c.zigzag()? as u64),
        (F_LOCK, false) => e.lock = 0,
        (F_OWNER, true) => {
            let r = if v1 { 0 } else { c.varint()? };
            if r == 0 {
                e.owner_tid = c.u32()?;
                e.owner_comm = string_ref(c, strings)?;
            } else {
                let &(tid, _, comm) = tasks
                    .get(r as usize - 1)
                    .ok_or(DecodeError("bad owner reference"))?;
                (e.owner_tid, e.owner_comm) = (tid, comm);
            }
        }
        (F_OWNER, false) => {}
        (F_CTX, true) => e.ctx = c.u8()?,
        (F_CTX, false) => e.ctx = t.ctx,
        (F_PAD, true) => e._pad.copy_from_slice(c.bytes(7)?),
        _ => {}
    }
    Ok(())
}

/// Decodes the events of one chunk body.
pub fn decode_events(
    body: &[u8],
    count: u64,
    base_ts: u64,
    version: u32,
    out: &mut Vec<Event>,
) -> DResult<()> {
    let v1 = version < 2;
    let mut c = Cursor::new(body);
    let mut st = State::new(base_ts);
    let mut pipes: Vec<(u64, u64)> = Vec::new();
    let mut tasks: Vec<(u32, u32, [u8; 16])> = Vec::new();
    let mut strings: Vec<[u8; 16]> = Vec::new();

    for _ in 0..count {
        let mut e = Event::zeroed();
        let mut same_pipe = false;
        e.kind = c.u8()?;
        if !v1 {
            let head = e.kind;
            if head & !(KIND_ESCAPE | HEAD_SAME_PIPE) != 0 {
                return Err(DecodeError("bad event head"));
            }
            same_pipe = head & HEAD_SAME_PIPE != 0;
            e.kind = head & KIND_ESCAPE;
            if e.kind == KIND_ESCAPE {
                e.kind = c.u8()?;
            }
        }
        e.ts_ns = st.prev_ts.wrapping_add(c.zigzag()? as u64);
        let mut pipe_ref = |c: &mut Cursor, st: &mut State| -> DResult<usize> {
            let i = c.varint()?;
            if (i as usize) < pipes.len() {
                Ok(i as usize)
            } else if i == pipes.len() as u64 {
                let addr = c.varint()?;
                let ino = c.varint()?;
                pipes.push((addr, ino));
                st.pipes.push(PipeCtx::default());
                Ok(pipes.len() - 1)
            } else {
                Err(DecodeError("bad pipe reference"))
            }
        };
        let v1_pipe = if v1 {
            Some(pipe_ref(&mut c, &mut st)?)
        } else {
            None
        };
        let i = c.varint()?;
        let task = if (i as usize) < tasks.len() {
            i as usize
        } else if i == tasks.len() as u64 {
            let tid = c.u32()?;
            let tgid = c.u32()?;
            let comm = string_ref(&mut c, &mut strings)?;
            tasks.push((tid, tgid, comm));
            st.tasks.push(TaskCtx::default());
            tasks.len() - 1
        } else {
            return Err(DecodeError("bad task reference"));
        };
        let pipe = match v1_pipe {
            Some(p) => p,
            None if same_pipe => st.tasks[task].pipe,
            None => pipe_ref(&mut c, &mut st)?,
        };
        let &(addr, ino) = pipes.get(pipe).ok_or(DecodeError("bad pipe reference"))?;
        (e.pipe, e.ino) = (addr, ino);
        (e.tid, e.tgid, e.comm) = tasks[task];
        let p = st.pipes[pipe];
        let t = st.tasks[task];

        let mask = c.varint()?;
        if mask > u64::from(F_ALL) {
            return Err(DecodeError("unknown field bits"));
        }
        let mask = mask as u32;
        let mask = if v1 {
            V1_BITS
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .fold(0, |m, (_, &b)| m | b)
        } else {
            mask
        };
        let order: &[u32; 24] = if v1 { &V1_BITS } else { &V2_ORDER };
        for &bit in order {
            decode_field(
                &mut c,
                &mut e,
                bit,
                mask & bit != 0,
                v1,
                &p,
                &t,
                &st,
                &tasks,
                &mut strings,
            )?;
        }
        st.after(&e, pipe, task);
        out.push(e);
    }
    if !c.is_empty() {
        return Err(DecodeError("trailing bytes after the last event"));
    }
    Ok(())
}

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
        let mut enc = ChunkEncoder::new();
        for e in &evs {
            enc.push(e);
        }
        let (n, base, body) = enc.take();
        let mut out = Vec::new();
        decode_events(&body, n, base, crate::recording::FORMAT_VERSION, &mut out).unwrap();
        assert_eq!(out, evs);
    }
}
