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
/// had no room for the key.
#[inline(always)]
pub fn events(kind: EventKind, n: u64) -> bool {
    if !enabled() {
        return false;
    }
    let cgroup = crate::emit::current_cgroup_id();
    if in_slot(cgroup, kind as usize, n) {
        return true;
    }
    let key = CountKey {
        cgroup,
        kind: kind as u32,
        _pad: 0,
    };
    if add(&key, n) {
        return true;
    }
    // First event of this key: a new entry, zero on the other CPUs. Another task may have
    // made it meanwhile (EEXIST): then it is there to add to.
    EVENT_COUNTS.insert(&key, &n, BPF_NOEXIST as u64).is_ok() || add(&key, n)
}

/// Counts `n` events of `kind` in `cgroup`'s slot of the counts array, claiming it if free;
/// false when another cgroup holds it.
#[inline(always)]
fn in_slot(cgroup: u64, kind: usize, n: u64) -> bool {
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
            xadd(c, n);
            true
        }
        None => false,
    }
}

/// Counts a wait (or contention) of `ns` of `kind` into histogram `row`; false: stream it.
#[inline(always)]
pub fn wait(kind: EventKind, row: u32, ns: u64) -> bool {
    if !events(kind, 1) {
        return false;
    }
    if let Some(h) = WAIT_HISTOGRAMS.get_ptr_mut(row) {
        let b = counts::bucket(ns);
        unsafe {
            if let Some(c) = (*h).counts.get_mut(b) {
                xadd(c, 1);
            }
            xadd(&mut (*h).sum_ns, ns);
        }
    }
    true
}

#[inline(always)]
fn add(key: &CountKey, n: u64) -> bool {
    match EVENT_COUNTS.get_ptr_mut(key) {
        Some(c) => {
            xadd(c, n);
            true
        }
        None => false,
    }
}

/// An atomic add (BPF_ATOMIC): whether a syscall-exit program can be preempted by another
/// task's on the same CPU has changed between kernels (faultable syscall tracepoints), and a
/// contention_end in an interrupt can land inside a program updating the same per-CPU value.
/// core's AtomicU64 has no fetch_add on BPF (no compare-and-swap).
#[inline(always)]
pub(crate) fn xadd(c: *mut u64, n: u64) {
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(c, n) };
}
