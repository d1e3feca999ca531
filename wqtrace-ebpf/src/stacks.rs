//! Call stacks for the rare events (rejections, lost posts, contention, long waits): taken
//! with `bpf_get_stackid` into one stack map, which deduplicates them; the event carries the
//! id (+1) and userspace reads and symbolizes each distinct stack once.
//!
//! "Rare" events can come at a high rate (a contended pipe), so each CPU takes at most
//! [`PER_SEC`] stack pairs a second of each [`Budget`] kind; past that an event is marked
//! `SKIPPED`, never silently stackless, and the walk's cost stays bounded. One budget per kind:
//! with one for all, a contended lock spent it before any wait ended, and every wait said
//! "not taken".

use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::bpf_get_stackid,
    macros::map,
    maps::{PerCpuArray, StackTrace},
};
use wqtrace_common::{ExecCtx, stack_mode, stack_ref};

use crate::globals::filter;

#[map]
pub static STACKS: StackTrace = StackTrace::with_max_entries(stack_ref::MAX_ENTRIES, 0);

/// Which of a CPU's budgets a stack is charged to.
#[derive(Clone, Copy)]
pub enum Budget {
    /// Ring ops (`--stacks all` only).
    Op = 0,
    /// Lock contention.
    Lock = 1,
    /// Waits for a pipe: the user stack at the wait's end, the kernel one where it slept,
    /// one spend for both.
    Wait = 2,
    /// Rejections, posts that did not land or landed inside an op.
    Other = 3,
}

/// One CPU's use of one budget: pairs taken in the current one-second window.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Spent {
    window_ns: u64,
    used: u64,
}

#[map]
static STACK_BUDGET: PerCpuArray<Spent> = PerCpuArray::with_max_entries(4, 0);

/// Stack pairs a CPU takes per second at most.
pub const PER_SEC: u64 = stack_ref::PER_CPU_PER_SEC as u64;

const BPF_F_USER_STACK: u64 = 1 << 8;
/// Same stack, same id: the stack map hashes the frames and compares them (a collision is
/// refused, never misattributed).
const FLAGS: u64 = 0;

/// Whether the mode asks for stacks here: `rare` says it is one of the rare kinds (or a wait
/// past the threshold); `--stacks all` takes them for every event.
#[inline(always)]
fn asked(rare: bool) -> bool {
    match filter!(stacks) {
        stack_mode::NONE => false,
        stack_mode::ALL => true,
        _ => rare,
    }
}

/// Takes one from this CPU's budget `kind`; false when it is spent for this second. `now`: the
/// event's timestamp (a clock read of its own was one more per contended lock).
#[inline(always)]
fn spend(kind: Budget, now: u64) -> bool {
    let Some(b) = STACK_BUDGET.get_ptr_mut(kind as u32) else {
        return false;
    };
    // Per CPU, and a program on this CPU is not preempted: no lock needed.
    unsafe {
        if now.wrapping_sub((*b).window_ns) >= 1_000_000_000 {
            (*b).window_ns = now;
            (*b).used = 0;
        }
        if (*b).used >= PER_SEC {
            return false;
        }
        (*b).used += 1;
    }
    true
}

/// Whether a wait of `ns` is long enough to take stacks for.
#[inline(always)]
pub fn wait_is_rare(ns: u64) -> bool {
    ns >= unsafe { core::ptr::read_volatile(&raw const crate::globals::FILTER.stack_wait_ns) }
}

#[inline(always)]
fn take(ctx: *mut c_void, flags: u64) -> u16 {
    const EEXIST: i64 = 17;
    let id = unsafe { bpf_get_stackid(ctx, (&raw const STACKS).cast_mut().cast(), flags) };
    if id == -EEXIST {
        stack_ref::COLLIDED
    } else if id < 0 || id >= stack_ref::MAX_ENTRIES as i64 {
        stack_ref::FAILED
    } else {
        id as u16 + 1
    }
}

/// The user stack of the current task, only in task context: in an interrupt the current
/// task's user stack says nothing about the event.
#[inline(always)]
pub fn user(ctx: *mut c_void, exec_ctx: u8) -> u16 {
    if exec_ctx != ExecCtx::Task as u8 {
        return stack_ref::NONE;
    }
    take(ctx, FLAGS | BPF_F_USER_STACK)
}

/// The kernel and user stacks of the current task for an event at `now` (`rare`: see
/// [`asked`]): NONE when not asked, SKIPPED past budget `kind`.
#[inline(always)]
pub fn pair(ctx: *mut c_void, kind: Budget, rare: bool, exec_ctx: u8, now: u64) -> (u16, u16) {
    if !asked(rare) {
        (stack_ref::NONE, stack_ref::NONE)
    } else if !spend(kind, now) {
        (stack_ref::SKIPPED, stack_ref::SKIPPED)
    } else {
        (take(ctx, FLAGS), user(ctx, exec_ctx))
    }
}

/// Whether every event takes stacks (`--stacks all`): ring ops then take their own.
#[inline(always)]
pub fn all() -> bool {
    filter!(stacks) == stack_mode::ALL
}

/// The stacks of a wait of `off_cpu_ns` ending now (an event at `now`): the user side from
/// here, the kernel side where it slept if sched_switch took it (see [`at_sleep`]; a kernel
/// walk here would only show the exit path, so none is taken). One pair, one spend: a sleep
/// that took the kernel side paid for the pair, and one that found the budget spent leaves
/// both sides skipped (a second spend here made waits skip one side or the other, and use
/// the budget twice as fast).
#[inline(always)]
pub fn of_wait(
    ctx: *mut c_void,
    off_cpu_ns: u64,
    wait_kstack: u16,
    exec_ctx: u8,
    now: u64,
) -> (u16, u16) {
    if !asked(wait_is_rare(off_cpu_ns)) {
        return (stack_ref::NONE, stack_ref::NONE);
    }
    let u = match wait_kstack {
        stack_ref::SKIPPED => stack_ref::SKIPPED,
        stack_ref::NONE if !spend(Budget::Wait, now) => stack_ref::SKIPPED,
        _ => user(ctx, exec_ctx),
    };
    (wait_kstack, u)
}

/// As [`pair`], for a hook with no event to take the time from: the clock is read only when
/// stacks are asked for.
#[inline(always)]
pub fn pair_now(ctx: *mut c_void, kind: Budget, rare: bool, exec_ctx: u8) -> (u16, u16) {
    if !asked(rare) {
        (stack_ref::NONE, stack_ref::NONE)
    } else {
        pair(ctx, kind, rare, exec_ctx, crate::emit::now())
    }
}

/// The kernel stack where a traced syscall goes to sleep, taken only when every wait takes
/// stacks (`--stack-wait 0`, `--stacks all`): the wait's length is known only at its end, and
/// a walk at every sleep of a busy pipe cost more than the rest of the tracing together.
#[inline(always)]
pub fn at_sleep(ctx: *mut c_void) -> u16 {
    if !asked(wait_is_rare(0)) {
        stack_ref::NONE
    } else if !spend(Budget::Wait, crate::emit::now()) {
        stack_ref::SKIPPED
    } else {
        take(ctx, FLAGS)
    }
}
