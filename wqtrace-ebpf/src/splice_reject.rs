//! `get_pipe_info(file, for_splice)` returning NULL for a notification pipe: the moment the
//! kernel refuses splice/tee/vmsplice on it. The verdict is attached to the syscall in flight
//! (reported once at sys_exit, with its fds and errno); without one it is reported at once.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{fexit, kprobe, kretprobe},
    programs::{FExitContext, ProbeContext, RetProbeContext},
};
use wqtrace_common::{EventKind, flags};

use crate::{
    emit::{emit, now},
    filters::task_wanted,
    kread,
    kread::fill_ring,
    maps::{FN_ENTRY, FnEntry},
};

const HOOK_GPI: u64 = 1;

#[inline(always)]
fn gpi_return(ctx: *mut core::ffi::c_void, file: u64, for_splice: u64, ret: u64) {
    if ret != 0 || for_splice & 0xff == 0 {
        return;
    }
    let Some(p) = kread::file_pipe(file) else {
        return;
    };
    if !p.notif || !crate::filters::pipe_wanted(p.ino, true) {
        return;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    if let Some(f) = crate::inflight::of(pid_tgid as u32).filter(|f| unsafe { (**f).op } != 0) {
        unsafe {
            if (*f).rejected_pipe == 0 {
                (*f).rejected_pipe = p.pipe;
                // Here, not at sys_exit, the kernel stack runs through the refusing path.
                let task = wqtrace_common::ExecCtx::Task as u8;
                ((*f).rej_kstack, (*f).rej_ustack) =
                    crate::stacks::pair_now(ctx, crate::stacks::Budget::Other, true, task);
            }
        }
        return;
    }
    if !task_wanted((pid_tgid >> 32) as u32) {
        return;
    }
    kread::remember(&p);
    emit!(EventKind::SpliceRejected, |e| {
        e.pipe = p.pipe;
        e.ino = p.ino;
        e.flags = flags::NOTIFICATION_PIPE | flags::FROM_KFUNC;
        fill_ring(e, p.pipe);
        (e.kstack, e.ustack) =
            crate::stacks::pair(ctx, crate::stacks::Budget::Other, true, e.ctx, e.ts_ns);
    });
}

#[fexit(function = "get_pipe_info")]
pub fn gpi_fexit(ctx: FExitContext) -> i32 {
    use aya_ebpf::EbpfContext as _;
    crate::globals::empty_floor!();
    gpi_return(ctx.as_ptr(), ctx.arg(0), ctx.arg(1), ctx.arg(2));
    0
}

#[kprobe]
pub fn gpi_kprobe(ctx: ProbeContext) -> u32 {
    crate::globals::empty_floor!();
    let key = ((bpf_get_current_pid_tgid() & 0xffff_ffff) << 8) | HOOK_GPI;
    let entry = FnEntry {
        start_ns: now(),
        arg0: ctx.arg(0).unwrap_or(0),
        arg1: ctx.arg(1).unwrap_or(0),
    };
    let _ = FN_ENTRY.insert(key, entry, 0);
    0
}

#[kretprobe]
pub fn gpi_kretprobe(ctx: RetProbeContext) -> u32 {
    use aya_ebpf::EbpfContext as _;
    crate::globals::empty_floor!();
    let key = ((bpf_get_current_pid_tgid() & 0xffff_ffff) << 8) | HOOK_GPI;
    let Some(en) = FN_ENTRY.get_ptr(key) else {
        return 0;
    };
    let en = unsafe { *en };
    let _ = FN_ENTRY.remove(key);
    let ret: u64 = ctx.ret();
    gpi_return(ctx.as_ptr(), en.arg0, en.arg1, ret);
    0
}
