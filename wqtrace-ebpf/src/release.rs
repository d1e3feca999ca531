//! `free_pipe_info(pipe)`: the pipe is gone; forget it so its address can be reused.

use aya_ebpf::{
    EbpfContext,
    helpers::bpf_get_current_pid_tgid,
    macros::{btf_tracepoint, fentry, kprobe},
    programs::{BtfTracePointContext, FEntryContext, ProbeContext},
};
use wqtrace_common::{EventKind, flags};

use crate::{
    emit::emit,
    filters::{task_filter_set, task_wanted, traced_pipe},
    kread::fill_ring,
};

/// `pipe` freed; `hook_flags` is FROM_KFUNC when a kernel-function hook saw it.
#[inline(always)]
fn released(pipe: u64, hook_flags: u16) {
    let Some(p) = traced_pipe(pipe) else {
        return;
    };
    // The address may be reused whoever freed it.
    crate::kread::forget(pipe);
    // A task outside -p/-c/--cgroup may free a pipe the wanted ones used (a child holding its
    // last fd): such a free is reported too. Only userspace knows which pipes its session
    // saw, so it drops the frees of the others (OUTSIDE_FILTER); a pipe whose ops the kernel
    // totals is known to be wanted here, and its room in the totals is given back at the
    // event. Without a task filter, only wqtrace's own pipes are outside.
    let mut outside = 0;
    if !task_wanted((bpf_get_current_pid_tgid() >> 32) as u32)
        && !crate::totals::held(p.pipe, p.ino)
    {
        if !task_filter_set() {
            return;
        }
        outside = flags::OUTSIDE_FILTER;
    }
    emit!(EventKind::PipeReleased, |e| {
        e.pipe = p.pipe;
        e.ino = p.ino;
        e.flags = hook_flags | outside | if p.notif { flags::NOTIFICATION_PIPE } else { 0 };
        fill_ring(e, p.pipe);
    });
}

#[fentry(function = "free_pipe_info")]
pub fn release_fentry(ctx: FEntryContext) -> i32 {
    crate::globals::empty_floor!();
    // A scalar, not a typed pointer: see kread::fentry_arg.
    released(crate::kread::fentry_arg(ctx.as_ptr(), 0), flags::FROM_KFUNC);
    0
}

#[kprobe]
pub fn release_kprobe(ctx: ProbeContext) -> u32 {
    crate::globals::empty_floor!();
    released(ctx.arg(0).unwrap_or(0), flags::FROM_KFUNC);
    0
}

/// Where free_pipe_info can be hooked neither way (this host): its `kfree(pipe)`, seen at the
/// kfree tracepoint, which every kfree on the machine passes. So the call site is looked at
/// first, and only one in free_pipe_info or the callers its kfree may be a tail call from
/// (`Ksyms::free_sites`) costs a pipe lookup. A known pipe's memory being freed is that pipe
/// gone, whichever of those functions frees it (the other kfrees there free other objects).
#[btf_tracepoint(function = "kfree")]
pub fn release_kfree(ctx: BtfTracePointContext) -> i32 {
    crate::globals::empty_floor!();
    let site: u64 = ctx.arg(0);
    let mut from_pipe_code = false;
    for i in 0..wqtrace_common::FREE_SITES {
        let [start, end] =
            unsafe { core::ptr::read_volatile(&raw const crate::globals::KSYMS.free_sites[i]) };
        from_pipe_code |= site >= start && site < end;
    }
    if from_pipe_code {
        released(kfree_ptr(&ctx), 0);
    }
    0
}

/// kfree's `const void *ptr`, read from the context by a probe read: before 6.13 (or so) the
/// verifier refuses a context load of a void pointer argument ("arg1 type UNKNOWN is not a
/// struct"). Only on a call from the pipe code, so the helper call is rare.
#[inline(always)]
fn kfree_ptr(ctx: &BtfTracePointContext) -> u64 {
    let mut ptr = 0u64;
    unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            (&raw mut ptr).cast(),
            8,
            ctx.as_ptr().cast::<u64>().add(1).cast(),
        )
    };
    ptr
}
