//! Contention on a known pipe's mutex or rd_wait spinlock (lock:contention_begin/end, 5.19+).
//!
//! A thread's wait is kept with its syscall in progress (`crate::inflight`) and paired by
//! thread and lock address: a mutex reports contention_begin twice (its optimistic spin, then
//! its sleep) and one contention_end; a lock taken meanwhile (the mutex's own wait_lock) ends
//! with its own address and must not close the wait.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::btf_tracepoint, programs::BtfTracePointContext,
};
use wqtrace_common::{EventKind, NO_OFFSET, counts::hist, flags};

use crate::{
    emit::{emit, now},
    globals::off,
    inflight,
    kread::{self, known_pipe},
    maps::LockWait,
    words,
};

/// include/trace/events/lock.h
const LCB_F_SPIN: u32 = 1 << 0;
const LCB_F_MUTEX: u32 = 1 << 5;

#[btf_tracepoint(function = "contention_begin")]
pub fn contention_begin(ctx: BtfTracePointContext) -> i32 {
    crate::globals::empty_floor!();
    let lock: u64 = ctx.arg(0);
    let lcb: u32 = ctx.arg(1);
    let phase = if lcb & LCB_F_SPIN != 0 || lcb & LCB_F_MUTEX == 0 {
        flags::LOCK_SPIN
    } else {
        flags::LOCK_SLEEP
    } as u32;
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    let slot = inflight::lock_wait(tid);
    if !slot.is_null() {
        let w = unsafe { &mut *slot };
        if w.lock == lock {
            // The next phase of the same wait: it started at the first begin.
            w.phases |= phase;
            return 0;
        }
    }
    if !crate::filters::task_wanted((pid_tgid >> 32) as u32) {
        return 0;
    }
    let mo = off!(pipe_mutex);
    let wo = off!(pipe_rd_wait);
    let as_mutex = if mo != NO_OFFSET && lock >= mo as u64 {
        known_pipe(lock - mo as u64)
    } else {
        None
    };
    let (p, is_mutex) = match as_mutex {
        Some(p) => (p, 1),
        None if wo != NO_OFFSET && lock >= wo as u64 => match known_pipe(lock - wo as u64) {
            Some(p) => (p, 0),
            None => return 0,
        },
        None => return 0,
    };
    // --pipe / --notification-only: a known pipe is not necessarily a traced one.
    if !crate::filters::pipe_wanted(p.ino, p.notif) {
        return 0;
    }
    let mut wm = core::mem::MaybeUninit::<LockWait>::uninit();
    words::zero(wm.as_mut_ptr());
    let w = unsafe { wm.assume_init_mut() };
    w.start_ns = now();
    w.lock = lock;
    w.pipe = p.pipe;
    w.ino = p.ino;
    w.is_mutex = is_mutex;
    w.phases = phase;
    w.notif = p.notif as u32;
    // The owner only goes into a streamed event: none for a wait that will be counted.
    if is_mutex != 0 && (p.notif || !crate::counted::enabled()) {
        let (owner, task) = kread::mutex_owner(p.pipe);
        w.owner_tid = owner;
        kread::task_comm(task, &mut w.owner_comm);
    }
    if !inflight::put_lock_wait(tid, slot, w) {
        crate::emit::lost();
    }
    0
}

#[btf_tracepoint(function = "contention_end")]
pub fn contention_end(ctx: BtfTracePointContext) -> i32 {
    use aya_ebpf::EbpfContext as _;
    crate::globals::empty_floor!();
    let lock: u64 = ctx.arg(0);
    let tid = bpf_get_current_pid_tgid() as u32;
    let wp = inflight::lock_wait(tid);
    if wp.is_null() {
        return 0;
    }
    if unsafe { core::ptr::read_volatile(&(*wp).lock) } != lock || lock == 0 {
        return 0;
    }
    let w: LockWait = unsafe { *wp };
    unsafe { core::ptr::write_volatile(&mut (*wp).lock, 0) };
    // Counted (serve) or totalled (tui): the clock is read for them only, a streamed event
    // has its own stamp.
    if w.notif == 0 && (crate::counted::enabled() || crate::totals::enabled()) {
        let ns = now().wrapping_sub(w.start_ns);
        let row = if w.is_mutex != 0 {
            hist::LOCK_MUTEX
        } else {
            hist::LOCK_RD_WAIT
        };
        if crate::counted::wait(
            EventKind::LockContended,
            row,
            ns,
            crate::counted::Writers::Any,
        ) || (crate::totals::enabled() && crate::totals::lock(&w, ns))
        {
            return 0;
        }
    }
    // A mutex is only ever taken in task context: no preempt_count reads for it.
    let x = if w.is_mutex != 0 {
        wqtrace_common::ExecCtx::Task as u8
    } else {
        crate::emit::exec_ctx()
    };
    emit!(@ x, EventKind::LockContended, |e| {
        e.pipe = w.pipe;
        e.ino = w.ino;
        e.lock = w.lock;
        e.duration_ns = e.ts_ns.wrapping_sub(w.start_ns);
        e.owner_tid = w.owner_tid;
        e.owner_comm = w.owner_comm;
        e.flags |= w.phases as u16;
        if w.is_mutex != 0 {
            e.flags |= flags::LOCK_MUTEX;
        }
        if w.notif != 0 {
            e.flags |= flags::NOTIFICATION_PIPE;
        }
        crate::kread::fill_ring(e, w.pipe);
        let budget = crate::stacks::Budget::Lock;
        (e.kstack, e.ustack) = crate::stacks::pair(ctx.as_ptr(), budget, true, x, e.ts_ns);
    });
    0
}
