//! Events on ordinary pipes that a counting-only session (serve without --all-pipes) has the
//! programs count in the kernel instead of streaming: the keys of `EVENT_COUNTS` and the rows
//! of `WAIT_HISTOGRAMS`. Userspace adds what they grew by into the counters and histograms the
//! streamed events feed, so both paths give the same figures.

/// A key of `EVENT_COUNTS`: events of one kind (`EventKind` as u32) by the tasks of one cgroup
/// (v2 id; 0: none).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CountKey {
    pub cgroup: u64,
    pub kind: u32,
    pub _pad: u32,
}

/// Counts per cgroup go to an array slot first (`COUNT_OWNERS`, `COUNTS_BY_SLOT`): the slot its
/// id hashes to, claimed for good by the first event that finds it free (the owner word then
/// holds the id + 1; 0 is free). A cgroup whose slot another holds uses `EVENT_COUNTS`. An
/// array lookup is one the verifier inlines; the hash lookup was ~60 ns at every counted
/// sys_enter (issue #13). A slot holds a counter per kind, indexed by `EventKind` as u32.
pub const COUNT_KINDS: usize = 16;

/// The slot of cgroup `cgroup` in a counts array of `mask + 1` slots (a power of two).
#[inline(always)]
pub const fn slot_of(cgroup: u64, mask: u32) -> u32 {
    ((cgroup.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as u32) & mask
}

/// Rows of `WAIT_HISTOGRAMS`: the counted pipe waits, mutex and rd_wait contention.
pub mod hist {
    pub const PIPE_WAIT: u32 = 0;
    pub const LOCK_MUTEX: u32 = 1;
    pub const LOCK_RD_WAIT: u32 = 2;
    pub const ROWS: u32 = 3;
}

/// Finite buckets: bucket `i` holds waits of at most [`bound_ns`]`(i)`; the last bucket
/// ([`BUCKETS`] - 1) holds the rest (+Inf). 1 µs, ×4 per bucket, up to ~4.2 s: serve's
/// histograms use these bounds for every observation, counted or streamed.
pub const FINITE_BUCKETS: usize = 12;
pub const BUCKETS: usize = FINITE_BUCKETS + 1;

/// The upper bound (inclusive, as Prometheus' `le`) of finite bucket `i`, in ns.
pub const fn bound_ns(i: usize) -> u64 {
    1000 << (2 * i)
}

/// The bucket of a wait of `ns`.
#[inline(always)]
pub fn bucket(ns: u64) -> usize {
    let mut i = 0;
    while i < FINITE_BUCKETS && ns > bound_ns(i) {
        i += 1;
    }
    i
}

/// One histogram: waits per bucket, and their sum.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WaitRow {
    pub counts: [u64; BUCKETS],
    pub sum_ns: u64,
}

impl WaitRow {
    /// Adds `more`'s waits (another CPU's, or what running totals grew by) to these.
    pub fn add(&mut self, more: &WaitRow) {
        for (c, m) in self.counts.iter_mut().zip(more.counts) {
            *c += m;
        }
        self.sum_ns = self.sum_ns.wrapping_add(more.sum_ns);
    }

    /// What running totals grew by since `earlier`, per bucket and sum (never negative).
    pub fn since(&self, earlier: &WaitRow) -> WaitRow {
        let mut d = WaitRow::default();
        for i in 0..BUCKETS {
            d.counts[i] = self.counts[i].saturating_sub(earlier.counts[i]);
        }
        d.sum_ns = self.sum_ns.saturating_sub(earlier.sum_ns);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_inclusive_upper_bounds() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1000), 0);
        assert_eq!(bucket(1001), 1);
        assert_eq!(bucket(4000), 1);
        assert_eq!(bucket(bound_ns(11)), 11);
        assert_eq!(bound_ns(11), 4_194_304_000);
        assert_eq!(bucket(bound_ns(11) + 1), 12);
        assert_eq!(bucket(u64::MAX), 12);
    }
}
