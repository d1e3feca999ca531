//! Events on ordinary pipes counted in the kernel instead of streamed, for a sink that only
//! counts them (`Filter::count_ordinary`, see `wqtrace_common::counts`).

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::generated::bpf_get_current_cgroup_id};
use core::intrinsics::{AtomicOrdering, atomic_xadd};
use wqtrace_common::{
    EventKind,
    counts::{self, CountKey},
};

use crate::{
    globals::filter,
    maps::{EVENT_COUNTS, WAIT_HISTOGRAMS},
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
    let key = CountKey {
        cgroup: unsafe { bpf_get_current_cgroup_id() },
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
