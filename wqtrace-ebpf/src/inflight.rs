//! Where each thread's pipe syscall in progress, and its wait for a pipe lock, are kept: the
//! [`INFLIGHT_BY_TID`] slot its thread id picks, or, when another live thread holds that slot,
//! [`INFLIGHT`] and [`LOCK_WAITS`].
//!
//! Only the owning thread writes its slot's records (its own syscall and lock hooks, or
//! sched_switch while it leaves or takes a CPU), so a record needs no lock. Claiming a free
//! slot is the one step two threads can race for: a compare-and-swap on the owner decides.

use aya_ebpf::bindings::BPF_NOEXIST;
use core::intrinsics::{AtomicOrdering, atomic_xadd};

use wqtrace_common::INFLIGHT_NO_SLOTS;

use crate::{
    globals::filter,
    maps::{
        INFLIGHT, INFLIGHT_BY_TID, INFLIGHT_SLOTS, INFLIGHT_SPILLED, Inflight, InflightSlot,
        LOCK_WAITS, LockWait, SPILLED_INFLIGHT, SPILLED_LOCK_WAITS,
    },
    words,
};

#[inline(always)]
fn slot(tid: u32) -> Option<*mut InflightSlot> {
    // A .rodata constant: the verifier keeps one of the two paths.
    let mask = filter!(inflight_slot_mask);
    if mask == INFLIGHT_NO_SLOTS {
        return None;
    }
    INFLIGHT_BY_TID.get_ptr_mut(tid & mask & (INFLIGHT_SLOTS - 1))
}

/// Adds `n` (wrapping: -1 is u64::MAX) to the count of records in hash `which`.
#[inline(always)]
fn spilled_add(which: u32, n: u64) {
    if let Some(c) = INFLIGHT_SPILLED.get_ptr_mut(which) {
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(c, n) };
    }
}

#[inline(always)]
fn spilled(which: u32) -> bool {
    INFLIGHT_SPILLED
        .get(which)
        .is_some_and(|c| unsafe { core::ptr::read_volatile(c) } != 0)
}

#[inline(always)]
fn owner(s: *mut InflightSlot) -> u64 {
    unsafe { core::ptr::read_volatile(&raw const (*s).f.tid) }
}

/// `tid`'s slot if it holds it.
#[inline(always)]
fn owned(tid: u32) -> Option<*mut InflightSlot> {
    // 0 is a free slot's owner, and the idle task's id.
    if tid == 0 {
        return None;
    }
    let s = slot(tid)?;
    (owner(s) == tid as u64).then_some(s)
}

/// `tid`'s slot: held already, or free and claimed now. None when another live thread holds it.
#[inline(always)]
fn claim(tid: u32) -> Option<*mut InflightSlot> {
    if tid == 0 {
        return None;
    }
    let s = slot(tid)?;
    let mine = crate::words::claim(unsafe { &raw mut (*s).f.tid }, tid as u64);
    mine.then_some(s)
}

/// `tid`'s record, if it has one (`op` 0: between syscalls).
#[inline(always)]
pub fn of(tid: u32) -> Option<*mut Inflight> {
    if let Some(s) = owned(tid) {
        return Some(unsafe { &raw mut (*s).f });
    }
    // A thread's own insert precedes its later lookups (on any CPU: the switch between them
    // orders memory), so a count of 0 seen here cannot miss its record.
    if tid == 0 || !spilled(SPILLED_INFLIGHT) {
        return None;
    }
    INFLIGHT.get_ptr_mut(tid)
}

/// Where sys_enter builds thread `tid`'s record, and whether that is where it is kept: the
/// thread's own slot when it holds one (no copy of ~128 bytes at every traced syscall), else
/// this CPU's spare entry past the slots, which [`put`] then copies to a slot or the hash
/// (claiming a slot only there, once the syscall proved to be on a pipe). One map for both,
/// so the verifier walks the rest of sys_enter once. None only if the loader left the map
/// without a spare entry per CPU.
#[inline(always)]
pub fn entry_record(tid: u32) -> Option<(*mut Inflight, bool)> {
    if let Some(s) = owned(tid) {
        return Some((unsafe { &raw mut (*s).f }, true));
    }
    let cpu = unsafe { aya_ebpf::helpers::generated::bpf_get_smp_processor_id() };
    let s = INFLIGHT_BY_TID.get_ptr_mut(INFLIGHT_SLOTS + cpu)?;
    Some((unsafe { &raw mut (*s).f }, false))
}

/// Stores `f` (its `tid` set) as its thread's record. False when there is no room: the caller
/// counts the syscall as lost.
#[inline(always)]
pub fn put(f: &Inflight) -> bool {
    let tid = f.tid as u32;
    if tid == 0 {
        return false;
    }
    if let Some(s) = claim(tid) {
        words::copy(unsafe { &raw mut (*s).f }, f);
        return true;
    }
    match INFLIGHT.get_ptr_mut(tid) {
        Some(h) => {
            words::copy(h, f);
            true
        }
        None => {
            let ok = INFLIGHT.insert(tid, f, BPF_NOEXIST as u64).is_ok();
            if ok {
                spilled_add(SPILLED_INFLIGHT, 1);
            }
            ok
        }
    }
}

/// `tid`'s lock wait record (`lock` 0: not waiting), or null. Every contended lock on the
/// machine asks, so a thread that holds no slot costs a hash lookup only while the hash holds
/// some thread's record. A pointer, not an `Option`: the caller keeps it across its checks,
/// and LLVM kept an `Option`'s pointer in a register that its `None` path never set, which
/// the verifier refuses ("!read_ok").
#[inline(always)]
pub fn lock_wait(tid: u32) -> *mut LockWait {
    if let Some(s) = owned(tid) {
        return unsafe { &raw mut (*s).w };
    }
    if !spilled(SPILLED_LOCK_WAITS) {
        return core::ptr::null_mut();
    }
    LOCK_WAITS.get_ptr_mut(tid).unwrap_or(core::ptr::null_mut())
}

/// Stores `w` as `tid`'s lock wait record (`at`: the record [`lock_wait`] found, or null).
/// False when there is no room: the caller counts the wait as lost.
#[inline(always)]
pub fn put_lock_wait(tid: u32, at: *mut LockWait, w: &LockWait) -> bool {
    if !at.is_null() {
        words::copy(at, w);
        return true;
    }
    if let Some(s) = claim(tid) {
        words::copy(unsafe { &raw mut (*s).w }, w);
        return true;
    }
    let ok = LOCK_WAITS.insert(tid, w, BPF_NOEXIST as u64).is_ok();
    if ok {
        spilled_add(SPILLED_LOCK_WAITS, 1);
    }
    ok
}

/// The thread `tid` is gone: its slot is free again, its records forgotten.
#[inline(always)]
pub fn forget(tid: u32) {
    if tid == 0 {
        return;
    }
    if let Some(s) = owned(tid) {
        // Cleared before the slot is given up (the owner is `f`'s last word), so the next
        // owner starts from nothing.
        unsafe {
            words::zero(&raw mut (*s).w);
            words::zero(&raw mut (*s).f);
        }
    }
    if INFLIGHT.remove(tid).is_ok() {
        spilled_add(SPILLED_INFLIGHT, u64::MAX);
    }
    if LOCK_WAITS.remove(tid).is_ok() {
        spilled_add(SPILLED_LOCK_WAITS, u64::MAX);
    }
}
