//! Splice-path waits: `pipe_wait_readable` / `pipe_wait_writable` (>= 5.10), entry → return.

use aya_ebpf::{
    EbpfContext as _,
    helpers::bpf_get_current_pid_tgid,
    macros::{fentry, fexit, kprobe, kretprobe},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
};
use wqtrace_common::{EventKind, Op, flags};

use crate::{
    emit::{emit, now},
    filters::{task_wanted, traced_pipe},
    kread::fill_ring,
    maps::{FN_ENTRY, FnEntry},
};

const HOOK_WAIT_RD: u64 = 2;
const HOOK_WAIT_WR: u64 = 3;

#[inline(always)]
fn key(hook: u64) -> u64 {
    ((bpf_get_current_pid_tgid() & 0xffff_ffff) << 8) | hook
}

#[inline(always)]
fn wait_entry(hook: u64, pipe: u64) {
    if traced_pipe(pipe).is_none() || !task_wanted((bpf_get_current_pid_tgid() >> 32) as u32) {
        return;
    }
    let _ = FN_ENTRY.insert(
        key(hook),
        FnEntry {
            start_ns: now(),
            arg0: pipe,
            arg1: 0,
        },
        0,
    );
}

#[inline(always)]
fn wait_return(ctx: *mut core::ffi::c_void, hook: u64, op: Op) {
    let k = key(hook);
    let Some(en) = FN_ENTRY.get_ptr(k) else {
        return;
    };
    let en = unsafe { *en };
    let _ = FN_ENTRY.remove(k);
    let Some(p) = traced_pipe(en.arg0) else {
        return;
    };
    emit!(EventKind::PipeWait, |e| {
        e.op = op as u8;
        e.pipe = p.pipe;
        e.ino = p.ino;
        e.duration_ns = e.ts_ns.wrapping_sub(en.start_ns);
        e.flags = flags::FROM_KFUNC | if p.notif { flags::NOTIFICATION_PIPE } else { 0 };
        fill_ring(e, p.pipe);
        let rare = crate::stacks::wait_is_rare(e.duration_ns);
        (e.kstack, e.ustack) =
            crate::stacks::pair(ctx, crate::stacks::Budget::Wait, rare, e.ctx, e.ts_ns);
    });
}

#[fentry(function = "pipe_wait_readable")]
pub fn wait_rd_fentry(ctx: FEntryContext) -> i32 {
    crate::globals::empty_floor!();
    wait_entry(HOOK_WAIT_RD, crate::kread::fentry_arg(ctx.as_ptr(), 0));
    0
}

#[fexit(function = "pipe_wait_readable")]
pub fn wait_rd_fexit(ctx: FExitContext) -> i32 {
    crate::globals::empty_floor!();
    wait_return(ctx.as_ptr(), HOOK_WAIT_RD, Op::WaitReadable);
    0
}

#[fentry(function = "pipe_wait_writable")]
pub fn wait_wr_fentry(ctx: FEntryContext) -> i32 {
    crate::globals::empty_floor!();
    wait_entry(HOOK_WAIT_WR, crate::kread::fentry_arg(ctx.as_ptr(), 0));
    0
}

#[fexit(function = "pipe_wait_writable")]
pub fn wait_wr_fexit(ctx: FExitContext) -> i32 {
    crate::globals::empty_floor!();
    wait_return(ctx.as_ptr(), HOOK_WAIT_WR, Op::WaitWritable);
    0
}

#[kprobe]
pub fn wait_rd_kprobe(ctx: ProbeContext) -> u32 {
    crate::globals::empty_floor!();
    wait_entry(HOOK_WAIT_RD, ctx.arg(0).unwrap_or(0));
    0
}

#[kretprobe]
pub fn wait_rd_kretprobe(ctx: RetProbeContext) -> u32 {
    crate::globals::empty_floor!();
    wait_return(ctx.as_ptr(), HOOK_WAIT_RD, Op::WaitReadable);
    0
}

#[kprobe]
pub fn wait_wr_kprobe(ctx: ProbeContext) -> u32 {
    crate::globals::empty_floor!();
    wait_entry(HOOK_WAIT_WR, ctx.arg(0).unwrap_or(0));
    0
}

#[kretprobe]
pub fn wait_wr_kretprobe(ctx: RetProbeContext) -> u32 {
    crate::globals::empty_floor!();
    wait_return(ctx.as_ptr(), HOOK_WAIT_WR, Op::WaitWritable);
    0
}
