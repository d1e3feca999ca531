//! Events into a chunk body: references into the chunk's tables, fields that differ from their
//! defaults, ring indices as deltas.

use foldhash::HashMap;
use wqtrace_common::{Event, EventKind};

use super::*;

fn put_d32(out: &mut Vec<u8>, d: u32) {
    put_zigzag(out, i64::from(d as i32));
}

/// A task as the chunk's table knows it.
type TaskKey = (u32, u32, [u8; 16]);

/// Tasks of recent events looked up without hashing: a chunk's events mostly come from a few
/// tasks taking turns (a reader and a writer), and comparing keys costs less than hashing one.
const RECENT_TASKS: usize = 4;

// Field mask bits (format version 2 numbering), those a ring op usually sets first: a typical
// event needs a 1-byte mask. Fields follow in bit order (`slot`'s default needs `flags`,
// `head_before` and `ring_size` decoded first).

/// Encodes the events of one chunk.
pub struct ChunkEncoder {
    state: State,
    base_ts: u64,
    count: u64,
    body: Vec<u8>,
    pipe_index: HashMap<(u64, u64), usize>,
    task_index: HashMap<TaskKey, usize>,
    /// (key, index in `task_index`) of tasks met lately; `usize::MAX`: empty.
    recent_tasks: [(TaskKey, usize); RECENT_TASKS],
    recent_next: usize,
    /// Each pipe's key by its index: an event on its task's last pipe is known without hashing.
    pipe_keys: Vec<(u64, u64)>,
    /// A lock owner is usually a task of the chunk already: (tid, comm) → its task index.
    owner_index: HashMap<(u32, [u8; 16]), usize>,
    string_index: HashMap<[u8; 16], usize>,
}

const NO_RECENT_TASK: (TaskKey, usize) = ((0, 0, [0; 16]), usize::MAX);

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
            recent_tasks: [NO_RECENT_TASK; RECENT_TASKS],
            recent_next: 0,
            pipe_keys: Vec::new(),
            owner_index: HashMap::default(),
            string_index: HashMap::default(),
        }
    }

    /// Events encoded since the last [`ChunkEncoder::take`] (a ring op carrying its wait counts
    /// as the two it is read back as).
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

    fn string_ref(index: &mut HashMap<[u8; 16], usize>, out: &mut Vec<u8>, s: &[u8; 16]) {
        let n = index.len();
        match index.get(s) {
            Some(&i) => put_varint(out, i as u64),
            None => {
                index.insert(*s, n);
                put_varint(out, n as u64);
                let len = comm_len(s);
                out.push(len as u8);
                out.extend_from_slice(&s[..len]);
            }
        }
    }

    /// The task's index in the chunk's table, if it has one.
    #[inline]
    fn known_task(&mut self, key: &TaskKey) -> Option<usize> {
        if let Some(&(_, i)) = self
            .recent_tasks
            .iter()
            .find(|(k, i)| k == key && *i != usize::MAX)
        {
            return Some(i);
        }
        let i = self.task_index.get(key).copied()?;
        self.remember_task(key, i);
        Some(i)
    }

    fn remember_task(&mut self, key: &TaskKey, i: usize) {
        self.recent_tasks[self.recent_next] = (*key, i);
        self.recent_next = (self.recent_next + 1) % RECENT_TASKS;
    }

    /// Appends one event; returns how many events it stands for (2 for a ring op carrying its
    /// wait, which the decoder splits: `Event::split_wait`). Long on purpose: this runs once
    /// per recorded event (2M/s on a busy host), and one body keeps every field's default in
    /// registers; the field order mirrors the decoder's.
    pub fn push(&mut self, e: &Event) -> u64 {
        if self.count == 0 {
            self.base_ts = e.ts_ns;
            self.state.prev_ts = e.ts_ns;
        }
        let stands_for = 1 + u64::from(e.carries_wait());
        self.count += stands_for;
        // Version 2: a head byte (kind, and whether the pipe is the task's last), the time, the
        // task, then the pipe unless it is the task's last.
        let task_key = (e.tid, e.tgid, e.comm);
        let known_task = self.known_task(&task_key);
        let pipe_key = (e.pipe, e.ino);
        // The task's last pipe, compared where a lookup would hash.
        let last_pipe = known_task
            .map(|t| self.state.tasks[t].pipe)
            .filter(|&p| self.pipe_keys.get(p) == Some(&pipe_key));
        let same_pipe = last_pipe.is_some();
        let known_pipe = last_pipe.or_else(|| self.pipe_index.get(&pipe_key).copied());
        // The chunk's bytes, moved out while the event is encoded: a byte pushed onto the
        // encoder's own `body` reloaded its length through `self` (the store may alias it).
        let mut out = std::mem::take(&mut self.body);
        let kind_code = if e.kind < KIND_ESCAPE {
            e.kind
        } else {
            KIND_ESCAPE
        };
        out.push(kind_code | if same_pipe { HEAD_SAME_PIPE } else { 0 });
        if kind_code == KIND_ESCAPE {
            out.push(e.kind);
        }
        put_zigzag(&mut out, e.ts_ns.wrapping_sub(self.state.prev_ts) as i64);

        let task = match known_task {
            Some(i) => {
                put_varint(&mut out, i as u64);
                i
            }
            None => {
                let n = self.task_index.len();
                self.task_index.insert(task_key, n);
                self.remember_task(&task_key, n);
                self.owner_index.entry((e.tid, e.comm)).or_insert(n);
                self.state.tasks.push(TaskCtx::default());
                put_varint(&mut out, n as u64);
                put_varint(&mut out, u64::from(e.tid));
                put_varint(&mut out, u64::from(e.tgid));
                Self::string_ref(&mut self.string_index, &mut out, &e.comm);
                n
            }
        };
        let pipe = match known_pipe {
            Some(i) => {
                if !same_pipe {
                    put_varint(&mut out, i as u64);
                }
                i
            }
            None => {
                let n = self.pipe_index.len();
                self.pipe_index.insert(pipe_key, n);
                self.pipe_keys.push(pipe_key);
                self.state.pipes.push(PipeCtx::default());
                put_varint(&mut out, n as u64);
                put_varint(&mut out, e.pipe);
                put_varint(&mut out, e.ino);
                n
            }
        };

        let p = &self.state.pipes[pipe];
        let t = &self.state.tasks[task];
        let k = e.kind as usize;
        let mut mask = 0u32;
        let mut set = |bit: u32, differs: bool| {
            if differs {
                mask |= bit;
            }
        };
        set(F_OP, e.op != t.op[k % 16]);
        set(F_FLAGS, e.flags != t.flags[k % 16]);
        set(F_RET, e.ret != State::default_ret(e, t, false));
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
        set(F_PAD, e._pad != [0; 3]);
        set(F_STACKS, e.has_stacks());
        set(F_CGROUP, e.cgroup != t.cgroup);

        let out = &mut out;
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
                    Self::string_ref(&mut self.string_index, out, &e.owner_comm);
                }
            }
        }
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
        if mask & F_STACKS != 0 {
            put_varint(out, u64::from(e.kstack));
            put_varint(out, u64::from(e.ustack));
        }
        if mask & F_CGROUP != 0 {
            put_varint(out, e.cgroup);
        }
        self.body = std::mem::take(out);
        self.state.after(e, pipe, task);
        stands_for
    }

    /// Returns (event count, base ts, encoded body) and resets the tables for the next chunk.
    pub fn take(&mut self) -> (u64, u64, Vec<u8>) {
        let body = std::mem::replace(&mut self.body, Vec::with_capacity(64 * 1024));
        let r = (self.count, self.base_ts, body);
        self.count = 0;
        self.state = State::new(0);
        self.pipe_index.clear();
        self.task_index.clear();
        self.recent_tasks = [NO_RECENT_TASK; RECENT_TASKS];
        self.pipe_keys.clear();
        self.owner_index.clear();
        self.string_index.clear();
        r
    }
}
