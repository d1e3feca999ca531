//! Ring ops, lock contention and short waits on ordinary pipes added up per pipe in the kernel
//! instead of streamed, for a live view that shows only their totals (`Filter::pipe_totals`,
//! see `wqtrace_common::totals`).

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_current_pid_tgid, generated::bpf_jiffies64},
};
use core::{
    intrinsics::{AtomicOrdering, atomic_cxchg},
    ptr::{read_volatile, write_volatile},
};
use wqtrace_common::{
    Op,
    totals::{self, PipeKey, PipeTotals, SLOT_BUSY, SLOT_FREE, SlotOwner, slot_tag},
};

use crate::{
    counted::{Writers, add_by},
    emit,
    globals::filter,
    kread,
    maps::{LockWait, PIPE_TOTALS, Side, TOTALS_BY_SLOT, TOTALS_OWNERS},
    words,
};

/// What a new entry starts from: .rodata, as a 544-byte value would not fit in a BPF stack.
static ZERO: PipeTotals = PipeTotals::ZERO;

/// Whether the session totals ring ops on ordinary pipes instead of streaming them.
#[inline(always)]
pub fn enabled() -> bool {
    filter!(pipe_totals) != 0
}

/// Whether the kernel holds totals of `pipe` for this session, in its slot of the totals
/// array or in the hash. Userspace gives that room back when it sees the pipe freed, so such a
/// free is reported whoever frees it (`release::released`).
#[inline(always)]
pub fn held(pipe: u64, ino: u64) -> bool {
    if !enabled() {
        return false;
    }
    let slot = totals::slot_of(pipe, filter!(totals_slot_mask));
    if let Some(o) = TOTALS_OWNERS.get_ptr(slot) {
        let tag = unsafe { read_volatile(&raw const (*o).tag) };
        if tag != SLOT_FREE && unsafe { claimed_by(o, tag, pipe, ino) } {
            return true;
        }
    }
    PIPE_TOTALS.get_ptr(&PipeKey { pipe, ino }).is_some()
}

/// Whether the slot owner `o`, whose tag read `tag` (not FREE), is `pipe`'s claim: the key,
/// then the tag again (unchanged, the key read was this claim's, not a reclaim's half-written
/// one).
#[inline(always)]
unsafe fn claimed_by(o: *const SlotOwner, tag: u64, pipe: u64, ino: u64) -> bool {
    unsafe {
        tag != SLOT_BUSY
            && read_volatile(&raw const (*o).pipe) == pipe
            && read_volatile(&raw const (*o).ino) == ino
            && read_volatile(&raw const (*o).tag) == tag
    }
}

/// `pipe`'s totals on this CPU: in its slot of the totals array, else in the hash, made on
/// first use; None when neither has room.
#[inline(always)]
fn entry(pipe: u64, ino: u64) -> Option<&'static mut PipeTotals> {
    if let Some(t) = in_slot(pipe, ino) {
        return Some(t);
    }
    let key = PipeKey { pipe, ino };
    let t = match PIPE_TOTALS.get_ptr_mut(&key) {
        Some(t) => t,
        None => {
            // EEXIST: another CPU's op made it meanwhile (this CPU's share is then zero).
            let _ = PIPE_TOTALS.insert(&key, &ZERO, BPF_NOEXIST as u64);
            PIPE_TOTALS.get_ptr_mut(&key)?
        }
    };
    Some(unsafe { &mut *t })
}

/// `pipe`'s totals on this CPU in its slot of the totals array (see `SlotOwner`), the slot
/// claimed if free; None when another pipe holds it, or a claim or reset is under way (an
/// interrupt's hook on the same CPU, or another CPU's claim).
#[inline(always)]
fn in_slot(pipe: u64, ino: u64) -> Option<&'static mut PipeTotals> {
    let slot = totals::slot_of(pipe, filter!(totals_slot_mask));
    let o = TOTALS_OWNERS.get_ptr_mut(slot)?;
    let tag_at = unsafe { &raw mut (*o).tag };
    let mut tag = unsafe { read_volatile(tag_at) };
    if tag == SLOT_FREE {
        if !unsafe {
            atomic_cxchg::<u64, { AtomicOrdering::Relaxed }, { AtomicOrdering::Relaxed }>(
                tag_at, SLOT_FREE, SLOT_BUSY,
            )
        }
        .1
        {
            return None;
        }
        unsafe {
            let g = read_volatile(&raw const (*o).claims) + 1;
            write_volatile(&raw mut (*o).claims, g);
            write_volatile(&raw mut (*o).pipe, pipe);
            write_volatile(&raw mut (*o).ino, ino);
            tag = slot_tag(g);
            // Last: a reader that sees the tag sees the key.
            write_volatile(tag_at, tag);
        }
    } else if !unsafe { claimed_by(o, tag, pipe, ino) } {
        return None;
    }
    let e = TOTALS_BY_SLOT.get_ptr_mut(slot)?;
    let mine = unsafe { read_volatile(&raw const (*e).tag) };
    if mine != tag {
        // This CPU's first op under this claim: what the slot holds is an earlier owner's,
        // read and released. BUSY while it is reset: a hook interrupting this on the same CPU
        // goes to the hash instead of counting into totals about to be zeroed.
        if mine == SLOT_BUSY {
            return None;
        }
        unsafe {
            write_volatile(&raw mut (*e).tag, SLOT_BUSY);
            words::copy(&raw mut (*e).t, &ZERO);
            write_volatile(&raw mut (*e).key.pipe, pipe);
            write_volatile(&raw mut (*e).key.ino, ino);
            write_volatile(&raw mut (*e).tag, tag);
        }
    }
    Some(unsafe { &mut (*e).t })
}

/// Adds one `op` on `s`'s pipe that returned `ret`, with the ring it left, to the pipe's
/// totals; false when it was not added and must be streamed (no room for a new pipe).
#[inline(always)]
pub fn add(op: u8, s: &Side, ret: i64) -> bool {
    let Some(i) = totals::index(Op::from_u8(op)) else {
        return false;
    };
    let Some(t) = entry(s.pipe, s.ino) else {
        return false;
    };
    let r = kread::ring(s.pipe);
    // After the ring read: the latest tick over the CPUs is then the newest ring's. A tick,
    // not a clock read: the verifier inlines it as a load of `jiffies`.
    let tick = unsafe { bpf_jiffies64() };
    if let Some(o) = t.ops.get_mut(i) {
        // Only sys_exit (with its tail calls) adds ring ops and their waits.
        let w = Writers::OneSyscallProgram;
        add_by(&mut o.calls, 1, w);
        if ret < 0 {
            add_by(&mut o.errors, 1, w);
            o.last_error = ret;
            o.last_error_tick = tick;
        } else {
            add_by(&mut o.bytes, ret as u64, w);
        }
    }
    let occ = r.head.wrapping_sub(r.tail);
    if occ <= r.ring_size && occ > t.max_occupancy {
        t.max_occupancy = occ;
    }
    unsafe {
        core::ptr::write_volatile(&mut t.head_tail, r.head as u64 | (r.tail as u64) << 32);
        core::ptr::write_volatile(
            (&raw mut t.ring_size).cast::<u64>(),
            r.ring_size as u64 | (r.max_usage as u64) << 32,
        );
        core::ptr::write_volatile(&mut t.tick, tick);
    }
    true
}

/// Adds a wait of `ns` for lock `w` (an ordinary pipe's) to the pipe's totals; false when it
/// must be streamed (no room for a new pipe).
#[inline(always)]
pub fn lock(w: &LockWait, ns: u64) -> bool {
    let Some(t) = entry(w.pipe, w.ino) else {
        return false;
    };
    let Some(l) = t.locks.get_mut(if w.is_mutex != 0 { 0 } else { 1 }) else {
        return false;
    };
    add_by(&mut l.count, 1, Writers::Any);
    add_by(&mut l.total_ns, ns, Writers::Any);
    // Not atomic: a longer wait ending on this CPU in between (an interrupt's, on rd_wait)
    // could be overwritten by this one.
    if ns > l.worst_ns {
        l.worst_ns = ns;
        l.worst_waiter_tid = bpf_get_current_pid_tgid() as u32;
        emit::current_comm(&mut l.worst_waiter);
        l.worst_holder_tid = w.owner_tid;
        l.worst_holder = w.owner_comm;
    }
    true
}

/// Adds an off-CPU wait of `ns` in a read or write of `s`'s pipe to its totals; false when it
/// must be streamed (no room for a new pipe).
#[inline(always)]
pub fn wait(s: &Side, ns: u64) -> bool {
    let Some(t) = entry(s.pipe, s.ino) else {
        return false;
    };
    let w = &mut t.waits;
    add_by(&mut w.count, 1, Writers::OneSyscallProgram);
    add_by(&mut w.total_ns, ns, Writers::OneSyscallProgram);
    if ns > w.max_ns {
        w.max_ns = ns;
    }
    true
}
