//! Events on ordinary pipes counted in the kernel instead of streamed, for a sink that only
//! counts them (`Filter::count_ordinary`, see `wqtrace_common::counts`).

use aya_ebpf::bindings::BPF_NOEXIST;
use core::{
    intrinsics::{AtomicOrdering, atomic_cxchg, atomic_xadd},
    ptr::read_volatile,
};
use wqtrace_common::{
    EventKind,
    counts::{self, CountKey},
};

use crate::{
    globals::filter,
    maps::{COUNT_OWNERS, COUNTS_BY_SLOT, EVENT_COUNTS, WAIT_HISTOGRAMS},
};

/// Whether the session counts events on ordinary pipes instead of streaming them.
#[inline(always)]
pub fn enabled() -> bool {
    filter!(count_ordinary) != 0
}

/// Counts `n` events of `kind` (on ordinary pipes) under the current task's cgroup; false when
/// they were not counted and must be streamed: the session asked for no counts, or the map
/// had no room for the key. `w`: who counts `kind`.
#[inline(always)]
pub fn events(kind: EventKind, n: u64, w: Writers) -> bool {
    if !enabled() {
        return false;
    }
    let cgroup = crate::emit::current_cgroup_id();
    if in_slot(cgroup, kind as usize, n, w) {
        return true;
    }
    let key = CountKey {
        cgroup,
        kind: kind as u32,
        _pad: 0,
    };
    if add(&key, n, w) {
        return true;
    }
    // First event of this key: a new entry, zero on the other CPUs. Another task may have
    // made it meanwhile (EEXIST): then it is there to add to.
    EVENT_COUNTS.insert(&key, &n, BPF_NOEXIST as u64).is_ok() || add(&key, n, w)
}

/// Counts `n` events of `kind` in `cgroup`'s slot of the counts array, claiming it if free;
/// false when another cgroup holds it.
#[inline(always)]
fn in_slot(cgroup: u64, kind: usize, n: u64, w: Writers) -> bool {
    let slot = counts::slot_of(cgroup, filter!(count_slot_mask));
    let Some(o) = COUNT_OWNERS.get_ptr_mut(slot) else {
        return false;
    };
    let me = cgroup.wrapping_add(1);
    let mut owner = unsafe { read_volatile(o) };
    if owner == 0 {
        // Claimed for good: the loser of a race reads the winner's id.
        unsafe {
            atomic_cxchg::<u64, { AtomicOrdering::Relaxed }, { AtomicOrdering::Relaxed }>(o, 0, me)
        };
        owner = unsafe { read_volatile(o) };
    }
    if owner != me {
        return false;
    }
    let Some(c) = COUNTS_BY_SLOT.get_ptr_mut(slot) else {
        return false;
    };
    match unsafe { (*c).get_mut(kind) } {
        Some(c) => {
            add_by(c, n, w);
            true
        }
        None => false,
    }
}

/// Counts a wait (or contention) of `ns` of `kind` into histogram `row`; false: stream it.
/// `w`: who counts `kind` (and so `row`).
#[inline(always)]
pub fn wait(kind: EventKind, row: u32, ns: u64, w: Writers) -> bool {
    if !events(kind, 1, w) {
        return false;
    }
    if let Some(h) = WAIT_HISTOGRAMS.get_ptr_mut(row) {
        let b = counts::bucket(ns);
        unsafe {
            if let Some(c) = (*h).counts.get_mut(b) {
                add_by(c, 1, w);
            }
            add_by(&mut (*h).sum_ns, ns, w);
        }
    }
    true
}

#[inline(always)]
fn add(key: &CountKey, n: u64, w: Writers) -> bool {
    match EVENT_COUNTS.get_ptr_mut(key) {
        Some(c) => {
            add_by(c, n, w);
            true
        }
        None => false,
    }
}

/// Who adds to a per-CPU counter, which decides how it is added.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Writers {
    /// One syscall program only (sys_enter, or sys_exit with the programs it tail-calls): a
    /// plain add. No other run of that program starts on the CPU before this one ends: the
    /// kernel runs tracepoint programs with preemption off (for the syscall tracepoints, which
    /// newer kernels let fault, `__BPF_DECLARE_TRACE_SYSCALL` turns it off around them), and
    /// `__bpf_trace_run` skips a run on a CPU where the program is still active
    /// (`prog->active`). A syscall program never runs in an interrupt. The locked adds were
    /// ~15 of the TUI's ~100 ns of sys_exit per op (host, stress-ng --splice; issue #13).
    OneSyscallProgram,
    /// Hooks that may run in an interrupt while a run of their own is under way on the same
    /// CPU (contention on rd_wait), or counters several programs add to: an atomic add
    /// (BPF_ATOMIC).
    Any,
}

/// Adds `n` to the per-CPU counter `c`, as its `writers` allow.
#[inline(always)]
pub(crate) fn add_by(c: *mut u64, n: u64, writers: Writers) {
    match writers {
        Writers::OneSyscallProgram => unsafe { *c += n },
        // core's AtomicU64 has no fetch_add on BPF (no compare-and-swap).
        Writers::Any => {
            unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(c, n) };
        }
    }
}
