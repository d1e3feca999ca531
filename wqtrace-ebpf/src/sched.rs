//! Off-CPU time inside pipe syscalls. Since 5.5 a blocked read()/write() sleeps in
//! pipe_read/pipe_write via wait_event on rd_wait/wr_wait and never calls pipe_wait_*; the only
//! way to see that wait without kprobes is to watch the task leave and re-enter the CPU.
//! splice, tee and vmsplice sleep in pipe_wait_readable/_writable, hooked where kernel-function
//! hooks work; elsewhere their sleeps are timed here too, but only those on one of their pipes'
//! wait queues: they may as well sleep for the file or socket at their other end.

use aya_ebpf::{
    EbpfContext as _, helpers::generated::bpf_get_current_task, macros::btf_tracepoint,
    programs::BtfTracePointContext,
};

use wqtrace_common::{NO_OFFSET, Op, stat};

use crate::{
    emit::now,
    globals::off,
    inflight,
    kread::{btf_load, rd},
    maps::{Inflight, WAIT_DST, WAIT_DST_RD, WAIT_DST_WR, WAIT_SRC_RD, WAIT_SRC_WR},
};

/// `task->pid` of a BTF-typed task pointer (the tracepoint's arguments are): a plain load the
/// verifier checks, not a probe-read call, twice on every context switch.
#[inline(always)]
fn tid_of(task: u64) -> Option<u32> {
    let o = off!(task_pid);
    (o != NO_OFFSET && task != 0).then(|| btf_load::<u32>(task, o))
}

/// Waiters looked at per wait queue: a pipe's has its reader or writer, a few pollers at most.
const MAX_WAITERS: u32 = 8;

/// What a walk of a pipe's wait queue found about the current task.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnQueue {
    Yes,
    /// The walk came back to the list head without meeting the task.
    No,
    /// The walk could not tell: it met an entry a waker had just taken off the list (its
    /// links point at itself), a pointer it could not read, or more waiters than it looks at.
    Unknown,
}

/// Whether `task` (the current task) is on the wait queue whose list head is at `pipe + head`:
/// its entries are read outside the queue's lock, but the task's own stays put while it sleeps.
#[inline(always)]
fn queued(pipe: u64, head: u32, task: u64) -> OnQueue {
    let (po, eo) = (off!(wqe_private), off!(wqe_entry));
    if pipe == 0 || head == NO_OFFSET || po == NO_OFFSET || eo == NO_OFFSET {
        return OnQueue::No;
    }
    let list = pipe + head as u64;
    let mut node: u64 = rd(list, 0).unwrap_or(0);
    for _ in 0..MAX_WAITERS {
        if node == list {
            return OnQueue::No;
        }
        if node == 0 {
            return OnQueue::Unknown;
        }
        // `private` is the sleeping task for wait_event's entries (a poller's is not a task).
        if rd::<u64>(node - eo as u64, po) == Some(task) {
            return OnQueue::Yes;
        }
        let next = rd(node, 0).unwrap_or(0);
        if next == node {
            return OnQueue::Unknown;
        }
        node = next;
    }
    OnQueue::Unknown
}

/// Which of `f`'s pipes' wait queues the current task sleeps on (a `WAIT_*` bit), 0 if none;
/// with it, whether some walk could not tell.
#[inline(always)]
fn pipe_queue(f: &Inflight) -> (u8, bool) {
    let task = unsafe { bpf_get_current_task() };
    let (rd_head, wr_head) = (off!(pipe_rd_wait_head), off!(pipe_wr_wait_head));
    let mut unknown = false;
    for (pipe, head, bit) in [
        (f.src.pipe, rd_head, WAIT_SRC_RD),
        (f.dst.pipe, wr_head, WAIT_DST_WR),
        (f.src.pipe, wr_head, WAIT_SRC_WR),
        (f.dst.pipe, rd_head, WAIT_DST_RD),
    ] {
        match queued(pipe, head, task) {
            OnQueue::Yes => return (bit, false),
            OnQueue::Unknown => unknown = true,
            OnQueue::No => {}
        }
    }
    (0, unknown)
}

/// Whether `task`, leaving the CPU to sleep in `prev_state`, has been woken already: a waker
/// on another CPU may queue the wake-up while the task is still switching out, and take its
/// entry off the wait queue right then (autoremove). Unknown (true) when the state cannot be read.
#[inline(always)]
fn woken_already(task: u64, prev_state: u32) -> bool {
    let o = off!(task_state);
    o == NO_OFFSET || btf_load::<u32>(task, o) != prev_state
}

/// Whether thread `tid` is waiting for a pipe's lock (`crate::locks`).
#[inline(always)]
fn waiting_for_lock(tid: u32) -> bool {
    let w = inflight::lock_wait(tid);
    !w.is_null() && unsafe { core::ptr::read_volatile(&raw const (*w).lock) } != 0
}

#[btf_tracepoint(function = "sched_switch")]
pub fn sched_switch(ctx: BtfTracePointContext) -> i32 {
    crate::globals::empty_floor!();
    // TP_PROTO(bool preempt, struct task_struct *prev, struct task_struct *next,
    //          unsigned int prev_state)
    let preempt: u64 = ctx.arg(0);
    let prev: u64 = ctx.arg(1);
    let next: u64 = ctx.arg(2);
    let prev_state: u64 = ctx.arg(3);
    // The clock is read only for a task inside a traced syscall (a clock read costs as
    // much as the rest of this program on a paravirtualised clock).
    // Only voluntary sleeps are waits; a preempted task is still runnable.
    if preempt & 0xff == 0 && prev_state as u32 != 0 {
        if let Some(tid) = tid_of(prev) {
            if let Some(f) = inflight::of(tid) {
                // Only inside a traced syscall whose wait is reported (`op` 0: the thread's
                // slot between syscalls).
                unsafe {
                    let op = Op::from_u8((*f).op);
                    let on = if crate::syscalls::waits_measured(op) {
                        Some(0)
                    } else if crate::syscalls::waits_queued(op) {
                        let (q, unknown) = pipe_queue(&*f);
                        if q == 0
                            && (unknown || woken_already(prev, prev_state as u32))
                            && !waiting_for_lock(tid)
                        {
                            // Asleep on a queue no walk can name now (not a pipe lock's:
                            // contention has its own hooks): whether it was one of its
                            // pipes' is unknown. Counted, so the waits this session reports
                            // can be told incomplete (another session, looking a moment
                            // earlier, may have seen it on the pipe's queue).
                            crate::emit::stat_add(stat::SLEEPS_UNATTRIBUTED, 1);
                        }
                        Some(q).filter(|&q| q != 0)
                    } else {
                        None
                    };
                    if let Some(q) = on {
                        (*f).off_since = now();
                        (*f).wait_now = q;
                        (*f).wait_on |= q;
                        // Where it sleeps (current is still `prev` here); whether the wait
                        // is long enough is known only at its end.
                        let k = if q & WAIT_DST != 0 {
                            &raw mut (*f).wait_kstack_dst
                        } else {
                            &raw mut (*f).wait_kstack
                        };
                        if *k == 0 {
                            *k = crate::stacks::at_sleep(ctx.as_ptr());
                        }
                    }
                }
            }
        }
    }
    if let Some(tid) = tid_of(next) {
        if let Some(f) = inflight::of(tid) {
            unsafe {
                if (*f).off_since != 0 {
                    let d = now() - (*f).off_since;
                    if (*f).wait_now & WAIT_DST != 0 {
                        (*f).arg += d;
                    } else {
                        (*f).off_cpu_ns += d;
                    }
                    (*f).off_since = 0;
                }
            }
        }
    }
    0
}
