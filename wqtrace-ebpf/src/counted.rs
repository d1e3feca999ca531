//! Ring ops counted in the kernel instead of streamed, for a sink that only counts them.

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::generated::bpf_get_current_cgroup_id};
use core::intrinsics::{AtomicOrdering, atomic_xadd};

use crate::{globals::filter, maps::RING_OP_COUNTS};

/// Whether this ring op (on an ordinary pipe) was counted and must not be streamed: only when
/// the session asked for counts, and the map had room for the task's cgroup.
#[inline(always)]
pub fn ring_op() -> bool {
    if filter!(count_ring_ops) == 0 {
        return false;
    }
    let cg = unsafe { bpf_get_current_cgroup_id() };
    if add(cg) {
        return true;
    }
    // First op of this cgroup: a new entry, zero on the other CPUs. Another task may have
    // made it meanwhile (EEXIST): then it is there to add to.
    RING_OP_COUNTS.insert(&cg, &1, BPF_NOEXIST as u64).is_ok() || add(cg)
}

#[inline(always)]
fn add(cg: u64) -> bool {
    match RING_OP_COUNTS.get_ptr_mut(&cg) {
        Some(c) => {
            // An atomic add (BPF_ATOMIC): whether a syscall-exit program can be preempted by
            // another task's on the same CPU has changed between kernels (faultable syscall
            // tracepoints). core's AtomicU64 has no fetch_add on BPF (no compare-and-swap).
            unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(c, 1) };
            true
        }
        None => false,
    }
}
