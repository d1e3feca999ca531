//! Off-CPU time inside pipe syscalls. Since 5.5 a blocked read()/write() sleeps in
//! pipe_read/pipe_write via wait_event on rd_wait/wr_wait and never calls pipe_wait_*; the only
//! way to see that wait without kprobes is to watch the task leave and re-enter the CPU.

use aya_ebpf::{EbpfContext as _, macros::btf_tracepoint, programs::BtfTracePointContext};

use wqtrace_common::{NO_OFFSET, Op};

use crate::{emit::now, globals::off, inflight, kread::btf_load};

/// `task->pid` of a BTF-typed task pointer (the tracepoint's arguments are): a plain load the
/// verifier checks, not a probe-read call, twice on every context switch.
#[inline(always)]
fn tid_of(task: u64) -> Option<u32> {
    let o = off!(task_pid);
    (o != NO_OFFSET && task != 0).then(|| btf_load::<u32>(task, o))
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
                // slot between syscalls; a splice's wait is not measured here).
                unsafe {
                    if crate::syscalls::waits_measured(Op::from_u8((*f).op)) {
                        (*f).off_since = now();
                        // Where it sleeps (current is still `prev` here); whether the wait
                        // is long enough is known only at its end.
                        if (*f).wait_kstack == 0 {
                            (*f).wait_kstack = crate::stacks::at_sleep(ctx.as_ptr());
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
                    (*f).off_cpu_ns += now() - (*f).off_since;
                    (*f).off_since = 0;
                }
            }
        }
    }
    0
}
