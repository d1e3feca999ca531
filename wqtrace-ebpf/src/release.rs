//! `free_pipe_info(pipe)`: the pipe is gone; forget it so its address can be reused.

use aya_ebpf::{
    EbpfContext,
    helpers::bpf_get_current_pid_tgid,
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
};
use wqtrace_common::{EventKind, flags};

use crate::{
    emit::emit,
    filters::{task_wanted, traced_pipe},
    kread::fill_ring,
};

#[inline(always)]
fn released(pipe: u64) {
    let Some(p) = traced_pipe(pipe) else {
        return;
    };
    // The address may be reused whoever freed it; the event obeys -p/-c like every other.
    crate::kread::forget(pipe);
    if !task_wanted((bpf_get_current_pid_tgid() >> 32) as u32) {
        return;
    }
    emit!(EventKind::PipeReleased, |e| {
        e.pipe = p.pipe;
        e.ino = p.ino;
        e.flags = flags::FROM_KFUNC | if p.notif { flags::NOTIFICATION_PIPE } else { 0 };
        fill_ring(e, p.pipe);
    });
}

#[fentry(function = "free_pipe_info")]
pub fn release_fentry(ctx: FEntryContext) -> i32 {
    crate::globals::empty_floor!();
    // A scalar, not a typed pointer: see kread::fentry_arg.
    released(crate::kread::fentry_arg(ctx.as_ptr(), 0));
    0
}

#[kprobe]
pub fn release_kprobe(ctx: ProbeContext) -> u32 {
    crate::globals::empty_floor!();
    released(ctx.arg(0).unwrap_or(0));
    0
}
