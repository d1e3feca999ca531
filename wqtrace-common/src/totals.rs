//! Ring ops on ordinary pipes that a live view (tui without --all-pipes) has the programs add
//! up per pipe in the kernel instead of streaming: the totals array and `PIPE_TOTALS`. The
//! view reads them every frame and adds what they grew by to the pipes' op counts, so a busy
//! pipe costs a map update per op instead of an event through the ring buffer and two cores.
//!
//! Contention on those pipes' locks is totalled too (count, time, and the worst wait with its
//! waiter and holder), and so are the short off-CPU waits in their reads and writes.
//!
//! What an event would have told and a total cannot: which task made each op or waited for a
//! lock (the pipe's users stay those seen in streamed events), the ring before each op, and
//! when, closer than the read, the worst wait ended.

use crate::Op;

/// The ring ops, in the order of [`PipeTotals::ops`].
pub const RING_OPS: [Op; 9] = [
    Op::Read,
    Op::Readv,
    Op::Write,
    Op::Writev,
    Op::Vmsplice,
    Op::Splice,
    Op::Tee,
    Op::Sendfile,
    Op::CopyFileRange,
];

/// `op`'s index in [`PipeTotals::ops`]; None for an op that moves no data.
#[inline(always)]
pub const fn index(op: Op) -> Option<usize> {
    Some(match op {
        Op::Read => 0,
        Op::Readv => 1,
        Op::Write => 2,
        Op::Writev => 3,
        Op::Vmsplice => 4,
        Op::Splice => 5,
        Op::Tee => 6,
        Op::Sendfile => 7,
        Op::CopyFileRange => 8,
        _ => return None,
    })
}

/// A key of `PIPE_TOTALS`: the `pipe_inode_info` address and the inode, which together name
/// one pipe even after its address is reused.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PipeKey {
    pub pipe: u64,
    pub ino: u64,
}

/// One op's calls on one pipe (one CPU's share, or the sum).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpTotals {
    pub calls: u64,
    /// Sum of the positive returns.
    pub bytes: u64,
    /// Calls that returned -errno.
    pub errors: u64,
    /// The last of them, and the clock tick it came in (jiffies; 0: none).
    pub last_error: i64,
    pub last_error_tick: u64,
}

/// Contention on one of a pipe's locks (`locks[0]` the mutex, `locks[1]` rd_wait).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockTotals {
    pub count: u64,
    pub total_ns: u64,
    /// The longest wait, who waited and who held the lock then (tid 0: not known).
    pub worst_ns: u64,
    pub worst_waiter_tid: u32,
    pub worst_holder_tid: u32,
    pub worst_waiter: [u8; 16],
    pub worst_holder: [u8; 16],
}

impl LockTotals {
    pub const ZERO: LockTotals = LockTotals {
        count: 0,
        total_ns: 0,
        worst_ns: 0,
        worst_waiter_tid: 0,
        worst_holder_tid: 0,
        worst_waiter: [0; 16],
        worst_holder: [0; 16],
    };

    /// Adds another CPU's share: counts and time add up, the worst is the longer one.
    pub fn merge(&mut self, other: &LockTotals) {
        let worst = if other.worst_ns > self.worst_ns {
            *other
        } else {
            *self
        };
        *self = LockTotals {
            count: self.count + other.count,
            total_ns: self.total_ns.wrapping_add(other.total_ns),
            ..worst
        };
    }
}

/// Off-CPU waits inside read()/write() of a pipe shorter than the stack threshold
/// (`Filter::stack_wait_ns`); longer ones stream, with their stacks and their task.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WaitTotals {
    pub count: u64,
    pub total_ns: u64,
    pub max_ns: u64,
}

impl WaitTotals {
    pub const ZERO: WaitTotals = WaitTotals {
        count: 0,
        total_ns: 0,
        max_ns: 0,
    };

    /// Adds another CPU's share: counts and time add up, the longest is kept.
    pub fn merge(&mut self, other: &WaitTotals) {
        self.count += other.count;
        self.total_ns = self.total_ns.wrapping_add(other.total_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
    }
}

/// A value of `PIPE_TOTALS` (per CPU): counts that only grow, and the ring as the last op
/// counted on that CPU left it.
///
/// Which CPU's ring is the newest is told by the clock tick (jiffies: a load, where a clock
/// read cost as much as the rest of the update on a paravirtualised clock), and within one
/// tick by head and tail, which only grow while the ring keeps its size.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipeTotals {
    /// The clock tick (jiffies) of that last op (0: none on this CPU).
    pub tick: u64,
    /// Its ring: `head | tail << 32`, one store, so a reader never pairs one op's head with
    /// another's tail.
    pub head_tail: u64,
    pub ring_size: u32,
    pub max_usage: u32,
    /// The most slots in use any op counted here left.
    pub max_occupancy: u32,
    pub _pad: u32,
    pub ops: [OpTotals; RING_OPS.len()],
    pub locks: [LockTotals; 2],
    pub waits: WaitTotals,
}

impl PipeTotals {
    pub const ZERO: PipeTotals = PipeTotals {
        tick: 0,
        head_tail: 0,
        ring_size: 0,
        max_usage: 0,
        max_occupancy: 0,
        _pad: 0,
        ops: [OpTotals {
            calls: 0,
            bytes: 0,
            errors: 0,
            last_error: 0,
            last_error_tick: 0,
        }; RING_OPS.len()],
        locks: [LockTotals::ZERO; 2],
        waits: WaitTotals::ZERO,
    };

    pub fn head(&self) -> u32 {
        self.head_tail as u32
    }

    pub fn tail(&self) -> u32 {
        (self.head_tail >> 32) as u32
    }

    /// Every op counted.
    pub fn calls(&self) -> u64 {
        self.ops.iter().map(|o| o.calls).sum()
    }

    /// Adds another CPU's share: counts add up, the ring is the newer one's, the last error
    /// the one of the later tick.
    pub fn merge(&mut self, other: &PipeTotals) {
        for (a, b) in self.ops.iter_mut().zip(&other.ops) {
            a.calls += b.calls;
            a.bytes += b.bytes;
            a.errors += b.errors;
            if b.last_error_tick > a.last_error_tick {
                a.last_error = b.last_error;
                a.last_error_tick = b.last_error_tick;
            }
        }
        for (a, b) in self.locks.iter_mut().zip(&other.locks) {
            a.merge(b);
        }
        self.waits.merge(&other.waits);
        self.max_occupancy = self.max_occupancy.max(other.max_occupancy);
        let same_tick = other.tick == self.tick && other.ring_size == self.ring_size;
        if same_tick {
            // Both rings were read within one tick: each index at its furthest.
            let later = |a: u32, b: u32| if b.wrapping_sub(a) as i32 > 0 { b } else { a };
            let head = later(self.head(), other.head());
            let tail = later(self.tail(), other.tail());
            self.head_tail = head as u64 | (tail as u64) << 32;
            self.max_usage = self.max_usage.max(other.max_usage);
        } else if other.tick > self.tick {
            self.tick = other.tick;
            self.head_tail = other.head_tail;
            self.ring_size = other.ring_size;
            self.max_usage = other.max_usage;
        }
    }

    /// What the counts grew by since `earlier` (the same pipe's totals, read before).
    pub fn since(&self, earlier: &PipeTotals) -> [OpTotals; RING_OPS.len()] {
        let mut d = self.ops;
        for (a, b) in d.iter_mut().zip(&earlier.ops) {
            a.calls = a.calls.saturating_sub(b.calls);
            a.bytes = a.bytes.saturating_sub(b.bytes);
            a.errors = a.errors.saturating_sub(b.errors);
        }
        d
    }
}

// The programs build a new entry from a static (a BPF stack is 512 bytes); userspace sizes the
// map by it.
const _: () = assert!(core::mem::size_of::<PipeTotals>() == 544);

/// Who holds a slot of the totals array (`TOTALS_OWNERS`, indexed like the values in
/// `TOTALS_BY_SLOT`). A pipe's totals go to the slot its address hashes to, claimed by the
/// first op that finds it free; a pipe whose slot another holds uses the `PIPE_TOTALS` hash. An
/// array lookup is one the verifier inlines: the hash lookup was ~40 ns per pipe at every
/// totalled exit (issue #13).
///
/// `tag` is [`SLOT_FREE`], [`SLOT_BUSY`] while a claim writes the key, or a tag that names
/// this claim alone (`claims` + 2: a new owner never takes an old one's per-CPU totals). Userspace
/// maps the array (BPF_F_MMAPABLE), reads owners from memory, and frees a slot by setting its
/// tag from the owner's to free once the pipe is gone and its final totals were read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotOwner {
    pub tag: u64,
    /// Claims of this slot so far (only a claimer writes it, between BUSY and its tag).
    pub claims: u64,
    pub pipe: u64,
    pub ino: u64,
}

pub const SLOT_FREE: u64 = 0;
pub const SLOT_BUSY: u64 = 1;

/// The tag of a slot's claim number `claims`.
pub const fn slot_tag(claims: u64) -> u64 {
    claims + 2
}

/// One CPU's totals in a slot: those of the pipe `key`, for the claim `tag`. A CPU's first op
/// under a new claim starts them from zero (only that CPU writes them); a reader adds up the
/// CPUs whose tag is the owner's.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotTotals {
    /// [`SLOT_BUSY`] while this CPU resets them.
    pub tag: u64,
    pub key: PipeKey,
    pub t: PipeTotals,
}

/// The slot of the pipe at `pipe` in a totals array of `mask + 1` slots (a power of two).
/// Fibonacci hashing: `pipe_inode_info` addresses are slab objects one size apart.
#[inline(always)]
pub const fn slot_of(pipe: u64, mask: u32) -> u32 {
    (((pipe >> 6).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as u32) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ring_op_has_its_own_index() {
        for (i, op) in RING_OPS.iter().enumerate() {
            assert_eq!(index(*op), Some(i));
        }
        assert_eq!(index(Op::Pipe2), None);
        assert_eq!(index(Op::Post), None);
    }

    fn share(tick: u64, head: u32, tail: u32, writes: u64, err: (i64, u64)) -> PipeTotals {
        let mut t = PipeTotals::ZERO;
        t.tick = tick;
        t.head_tail = head as u64 | (tail as u64) << 32;
        t.ring_size = 16;
        t.max_occupancy = head.wrapping_sub(tail);
        t.ops[2].calls = writes;
        t.ops[2].bytes = writes * 10;
        if err.1 != 0 {
            t.ops[2].errors = 1;
            t.ops[2].last_error = err.0;
            t.ops[2].last_error_tick = err.1;
        }
        t
    }

    #[test]
    fn shares_add_up_and_the_newest_ring_and_error_win() {
        let a = share(200, 9, 5, 3, (-11, 150));
        let b = share(100, 7, 1, 4, (-32, 180));
        for (x, y) in [(a, b), (b, a)] {
            let mut t = PipeTotals::ZERO;
            t.merge(&x);
            t.merge(&y);
            assert_eq!(t.ops[2].calls, 7);
            assert_eq!(t.ops[2].bytes, 70);
            assert_eq!(t.ops[2].errors, 2);
            assert_eq!((t.ops[2].last_error, t.ops[2].last_error_tick), (-32, 180));
            assert_eq!((t.tick, t.head(), t.tail()), (200, 9, 5));
            assert_eq!(t.max_occupancy, 6);
        }
    }

    /// Two CPUs' rings read within one tick: the furthest head and tail, even across the
    /// u32 wrap; a ring of another size is not mixed in.
    #[test]
    fn within_one_tick_each_index_at_its_furthest() {
        let a = share(7, 4, u32::MAX - 1, 1, (0, 0));
        let b = share(7, 2, 1, 1, (0, 0));
        for (x, y) in [(a, b), (b, a)] {
            let mut t = PipeTotals::ZERO;
            t.merge(&x);
            t.merge(&y);
            assert_eq!((t.head(), t.tail()), (4, 1));
        }
        let mut c = share(7, 50, 40, 1, (0, 0));
        c.ring_size = 32;
        let mut t = PipeTotals::ZERO;
        t.merge(&a);
        t.merge(&c);
        assert_eq!((t.head(), t.tail(), t.ring_size), (4, u32::MAX - 1, 16));
    }

    fn waited(count: u64, total_ns: u64, worst_ns: u64, waiter: u32, holder: u32) -> PipeTotals {
        let mut t = PipeTotals::ZERO;
        t.locks[0] = LockTotals {
            count,
            total_ns,
            worst_ns,
            worst_waiter_tid: waiter,
            worst_holder_tid: holder,
            ..LockTotals::ZERO
        };
        t
    }

    #[test]
    fn contention_adds_up_and_keeps_the_worst_wait_with_its_tasks() {
        let a = waited(3, 300, 200, 7, 8);
        let mut b = waited(2, 500, 450, 9, 0);
        b.locks[1].count = 1;
        for (x, y) in [(a, b), (b, a)] {
            let mut t = PipeTotals::ZERO;
            t.merge(&x);
            t.merge(&y);
            let m = t.locks[0];
            assert_eq!((m.count, m.total_ns, m.worst_ns), (5, 800, 450));
            assert_eq!((m.worst_waiter_tid, m.worst_holder_tid), (9, 0));
            assert_eq!(t.locks[1].count, 1);
        }
    }

    #[test]
    fn waits_add_up_and_keep_the_longest() {
        let mut t = PipeTotals::ZERO;
        for (count, total_ns, max_ns) in [(2, 30, 20), (1, 15, 15)] {
            let mut x = PipeTotals::ZERO;
            x.waits = WaitTotals {
                count,
                total_ns,
                max_ns,
            };
            t.merge(&x);
        }
        assert_eq!(
            t.waits,
            WaitTotals {
                count: 3,
                total_ns: 45,
                max_ns: 20
            }
        );
    }

    #[test]
    fn growth_since_an_earlier_read() {
        let early = share(100, 2, 0, 2, (0, 0));
        let late = share(300, 9, 5, 7, (-11, 250));
        let d = late.since(&early);
        assert_eq!((d[2].calls, d[2].bytes, d[2].errors), (5, 50, 1));
        assert_eq!(d[0], OpTotals::default());
    }
}
