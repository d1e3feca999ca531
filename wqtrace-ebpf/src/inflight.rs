//! Where each thread's pipe syscall in progress is kept: the [`INFLIGHT_BY_TID`] slot its
//! thread id picks, or, when another live thread holds that slot, [`INFLIGHT`].
//!
//! Only the owning thread writes its slot's record (its own syscall hooks, or sched_switch
//! while it leaves or takes a CPU), so the record needs no lock. Claiming a free slot is the
//! one step two threads can race for: a compare-and-swap on the owner decides.

use aya_ebpf::bindings::BPF_NOEXIST;
use core::intrinsics::{AtomicOrdering, atomic_cxchg, atomic_xadd};

use crate::{
    maps::{INFLIGHT, INFLIGHT_BY_TID, INFLIGHT_SLOTS, INFLIGHT_SPILLED, Inflight},
    words,
};

#[inline(always)]
fn slot(tid: u32) -> Option<*mut Inflight> {
    INFLIGHT_BY_TID
        .get_ptr_mut(tid & (INFLIGHT_SLOTS - 1))
        .map(|s| unsafe { &raw mut (*s).f })
}

/// Adds `n` (wrapping: -1 is u64::MAX) to the count of records in the hash.
#[inline(always)]
fn spilled_add(n: u64) {
    if let Some(c) = INFLIGHT_SPILLED.get_ptr_mut(0) {
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(c, n) };
    }
}

#[inline(always)]
fn spilled() -> bool {
    INFLIGHT_SPILLED
        .get(0)
        .is_some_and(|c| unsafe { core::ptr::read_volatile(c) } != 0)
}

#[inline(always)]
fn owner(s: *mut Inflight) -> u64 {
    unsafe { core::ptr::read_volatile(&raw const (*s).tid) }
}

/// `tid`'s record, if it has one (`op` 0: between syscalls).
#[inline(always)]
pub fn of(tid: u32) -> Option<*mut Inflight> {
    // 0 is a free slot's owner, and the idle task's id.
    if tid == 0 {
        return None;
    }
    if let Some(s) = slot(tid) {
        if owner(s) == tid as u64 {
            return Some(s);
        }
    }
    // A thread's own insert precedes its later lookups (on any CPU: the switch between them
    // orders memory), so a count of 0 seen here cannot miss its record.
    if !spilled() {
        return None;
    }
    INFLIGHT.get_ptr_mut(tid)
}

/// Stores `f` (its `tid` set) as its thread's record. False when there is no room: the caller
/// counts the syscall as lost.
#[inline(always)]
pub fn put(f: &Inflight) -> bool {
    let tid = f.tid;
    if tid == 0 {
        return false;
    }
    if let Some(s) = slot(tid as u32) {
        let o = owner(s);
        let mine = o == tid
            || (o == 0
                && unsafe {
                    atomic_cxchg::<u64, { AtomicOrdering::Relaxed }, { AtomicOrdering::Relaxed }>(
                        &raw mut (*s).tid,
                        0,
                        tid,
                    )
                }
                .1);
        if mine {
            words::copy(s, f);
            return true;
        }
    }
    let tid = tid as u32;
    match INFLIGHT.get_ptr_mut(tid) {
        Some(h) => {
            words::copy(h, f);
            true
        }
        None => {
            let ok = INFLIGHT.insert(tid, f, BPF_NOEXIST as u64).is_ok();
            if ok {
                spilled_add(1);
            }
            ok
        }
    }
}

/// The thread `tid` is gone: its slot is free again, its record forgotten.
#[inline(always)]
pub fn forget(tid: u32) {
    if tid == 0 {
        return;
    }
    if let Some(s) = slot(tid) {
        if owner(s) == tid as u64 {
            // Cleared before the slot is given up, so the next owner starts from nothing.
            words::zero(s);
        }
    }
    if INFLIGHT.remove(tid).is_ok() {
        spilled_add(u64::MAX);
    }
}
