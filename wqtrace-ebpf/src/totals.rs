//! Ring ops, lock contention and short waits on ordinary pipes added up per pipe in the kernel
//! instead of streamed, for a live view that shows only their totals (`Filter::pipe_totals`,
//! see `wqtrace_common::totals`).

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_current_pid_tgid, generated::bpf_jiffies64},
};
use wqtrace_common::{
    Op,
    totals::{self, PipeKey, PipeTotals},
};

use crate::{
    counted::xadd,
    emit,
    globals::filter,
    kread,
    maps::{LockWait, PIPE_TOTALS, Side},
};

/// What a new entry starts from: .rodata, as a 544-byte value would not fit in a BPF stack.
static ZERO: PipeTotals = PipeTotals::ZERO;

/// Whether the session totals ring ops on ordinary pipes instead of streaming them.
#[inline(always)]
pub fn enabled() -> bool {
    filter!(pipe_totals) != 0
}

/// `pipe`'s totals on this CPU, made on first use; None when the map has no room.
#[inline(always)]
fn entry(pipe: u64, ino: u64) -> Option<&'static mut PipeTotals> {
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
        xadd(&mut o.calls, 1);
        if ret < 0 {
            xadd(&mut o.errors, 1);
            o.last_error = ret;
            o.last_error_tick = tick;
        } else {
            xadd(&mut o.bytes, ret as u64);
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
    xadd(&mut l.count, 1);
    xadd(&mut l.total_ns, ns);
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
    xadd(&mut w.count, 1);
    xadd(&mut w.total_ns, ns);
    if ns > w.max_ns {
        w.max_ns = ns;
    }
    true
}
