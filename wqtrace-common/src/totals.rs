//! Ring ops on ordinary pipes that a live view (tui without --all-pipes) has the programs add
//! up per pipe in the kernel instead of streaming: the keys and values of `PIPE_TOTALS`. The
//! view reads them every frame and adds what they grew by to the pipes' op counts, so a busy
//! pipe costs a map update per op instead of an event through the ring buffer and two cores.
//!
//! What an event would have told and a total cannot: which task made each op (its users stay
//! those seen in streamed events) and the ring before each op.

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
    /// The last of them, and when (boot ns; 0: none).
    pub last_error: i64,
    pub last_error_ts: u64,
}

/// A value of `PIPE_TOTALS` (per CPU): counts that only grow, and the ring as the last op
/// counted on that CPU left it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipeTotals {
    /// CLOCK_BOOTTIME ns of that last op (0: none on this CPU).
    pub ts_ns: u64,
    /// Its ring: `head | tail << 32`, one store, so a reader never pairs one op's head with
    /// another's tail.
    pub head_tail: u64,
    pub ring_size: u32,
    pub max_usage: u32,
    /// The most slots in use any op counted here left.
    pub max_occupancy: u32,
    pub _pad: u32,
    pub ops: [OpTotals; RING_OPS.len()],
}

impl PipeTotals {
    pub const ZERO: PipeTotals = PipeTotals {
        ts_ns: 0,
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
            last_error_ts: 0,
        }; RING_OPS.len()],
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
    /// the newest.
    pub fn merge(&mut self, other: &PipeTotals) {
        for (a, b) in self.ops.iter_mut().zip(&other.ops) {
            a.calls += b.calls;
            a.bytes += b.bytes;
            a.errors += b.errors;
            if b.last_error_ts > a.last_error_ts {
                a.last_error = b.last_error;
                a.last_error_ts = b.last_error_ts;
            }
        }
        self.max_occupancy = self.max_occupancy.max(other.max_occupancy);
        if other.ts_ns > self.ts_ns {
            self.ts_ns = other.ts_ns;
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

    fn share(ts: u64, head: u32, tail: u32, writes: u64, err: (i64, u64)) -> PipeTotals {
        let mut t = PipeTotals::ZERO;
        t.ts_ns = ts;
        t.head_tail = head as u64 | (tail as u64) << 32;
        t.ring_size = 16;
        t.max_occupancy = head - tail;
        t.ops[2].calls = writes;
        t.ops[2].bytes = writes * 10;
        if err.1 != 0 {
            t.ops[2].errors = 1;
            t.ops[2].last_error = err.0;
            t.ops[2].last_error_ts = err.1;
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
            assert_eq!((t.ops[2].last_error, t.ops[2].last_error_ts), (-32, 180));
            assert_eq!((t.ts_ns, t.head(), t.tail()), (200, 9, 5));
            assert_eq!(t.max_occupancy, 6);
        }
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
