//! Ring ops counted in the kernel instead of streamed, for a sink that only counts them.

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::generated::bpf_get_current_cgroup_id};
use core::intrinsics::{AtomicOrdering, atomic_xadd};

use crate::{globals::filter, maps::RING_OP_COUNTS};

/// Whether the session counts ring ops on ordinary pipes instead of streaming them.
#[inline(always)]
pub fn enabled() -> bool {
    filter!(count_ring_ops) != 0
}

/// Counts `n` ring ops (on ordinary pipes) of the current task's cgroup; false when they were
/// not counted and must be streamed: the session asked for no counts, or the map had no room
/// for the task's cgroup.
#[inline(always)]
pub fn ring_ops(n: u64) -> bool {
    if !enabled() {
        return false;
    }
    let cg = unsafe { bpf_get_current_cgroup_id() };
    if add(cg, n) {
        return true;
    }
    // First op of this cgroup: a new entry, zero on the other CPUs. Another task may have
    // made it meanwhile (EEXIST): then it is there to add to.
    RING_OP_COUNTS.insert(&cg, &n, BPF_NOEXIST as u64).is_ok() || add(cg, n)
}

#[inline(always)]
fn add(cg: u64, n: u64) -> bool {
    match RING_OP_COUNTS.get_ptr_mut(&cg) {
        Some(c) => {
            // An atomic add (BPF_ATOMIC): whether a syscall-exit program can be preempted by
            // another task's on the same CPU has changed between kernels (faultable syscall
            // tracepoints). core's AtomicU64 has no fetch_add on BPF (no compare-and-swap).
            unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(c, n) };
            true
        }
        None => false,
    }
}
