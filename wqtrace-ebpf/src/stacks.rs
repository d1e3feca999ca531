//! Call stacks for the rare events (rejections, lost posts, contention, long waits): taken
//! with `bpf_get_stackid` into one stack map, which deduplicates them; the event carries the
//! id (+1) and userspace reads and symbolizes each distinct stack once.

use core::ffi::c_void;

use aya_ebpf::{helpers::generated::bpf_get_stackid, macros::map, maps::StackTrace};
use wqtrace_common::{ExecCtx, stack_mode, stack_ref};

use crate::globals::filter;

#[map]
pub static STACKS: StackTrace = StackTrace::with_max_entries(stack_ref::MAX_ENTRIES, 0);

const BPF_F_USER_STACK: u64 = 1 << 8;
/// Same stack, same id: the stack map hashes the frames (BPF_F_FAST_STACK_CMP compares
/// hashes only; without it a collision is refused, never misattributed).
const FLAGS: u64 = 0;

/// Whether this event takes stacks: `rare` says it is one of the rare kinds (or a wait past
/// the threshold), `--stacks all` takes them for every event.
#[inline(always)]
pub fn wanted(rare: bool) -> bool {
    match filter!(stacks) {
        stack_mode::NONE => false,
        stack_mode::ALL => true,
        _ => rare,
    }
}

/// Whether a wait of `ns` is long enough to take stacks for.
#[inline(always)]
pub fn wait_wanted(ns: u64) -> bool {
    let min = unsafe { core::ptr::read_volatile(&raw const crate::globals::FILTER.stack_wait_ns) };
    wanted(ns >= min)
}

#[inline(always)]
fn take(ctx: *mut c_void, flags: u64) -> u16 {
    let id = unsafe { bpf_get_stackid(ctx, (&raw const STACKS).cast_mut().cast(), flags) };
    if id < 0 || id >= stack_ref::MAX_ENTRIES as i64 {
        stack_ref::FAILED
    } else {
        id as u16 + 1
    }
}

/// The kernel stack of the current task here.
#[inline(always)]
pub fn kernel(ctx: *mut c_void) -> u16 {
    take(ctx, FLAGS)
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
