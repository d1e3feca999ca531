//! The programs: one entry (and return) per hooked function and attach method, each handing
//! its arguments to the walk in [`super`].

use aya_ebpf::{
    EbpfContext as _,
    macros::{fentry, fexit, kprobe, kretprobe},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
};

use super::*;

#[fentry(function = "__post_watch_notification")]
pub fn post_fentry(ctx: FEntryContext) -> i32 {
    crate::globals::empty_floor!();
    post_entry(ctx.arg(0), ctx.arg(1), ctx.arg(3));
    0
}

#[fexit(function = "__post_watch_notification")]
pub fn post_fexit(ctx: FExitContext) -> i32 {
    crate::globals::empty_floor!();
    post_return(ctx.as_ptr());
    0
}

#[kprobe]
pub fn post_kprobe(ctx: ProbeContext) -> u32 {
    crate::globals::empty_floor!();
    if let (Some(wlist), Some(n), Some(id)) = (ctx.arg(0), ctx.arg(1), ctx.arg(3)) {
        post_entry(wlist, n, id);
    }
    0
}

#[kretprobe]
pub fn post_kretprobe(ctx: RetProbeContext) -> u32 {
    crate::globals::empty_floor!();
    post_return(ctx.as_ptr());
    0
}

#[fentry(function = "post_one_notification")]
pub fn post1_fentry(ctx: FEntryContext) -> i32 {
    crate::globals::empty_floor!();
    post1_entry(ctx.arg(0), ctx.arg(1));
    0
}

#[fexit(function = "post_one_notification")]
pub fn post1_fexit(ctx: FExitContext) -> i32 {
    crate::globals::empty_floor!();
    post_return(ctx.as_ptr());
    0
}

#[kprobe]
pub fn post1_kprobe(ctx: ProbeContext) -> u32 {
    crate::globals::empty_floor!();
    if let (Some(wq), Some(n)) = (ctx.arg(0), ctx.arg(1)) {
        post1_entry(wq, n);
    }
    0
}

#[kretprobe]
pub fn post1_kretprobe(ctx: RetProbeContext) -> u32 {
    crate::globals::empty_floor!();
    post_return(ctx.as_ptr());
    0
}

#[fentry(function = "remove_watch_from_object")]
pub fn removal_fentry(ctx: FEntryContext) -> i32 {
    crate::globals::empty_floor!();
    removal_entry(ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3));
    0
}

#[fexit(function = "remove_watch_from_object")]
pub fn removal_fexit(ctx: FExitContext) -> i32 {
    crate::globals::empty_floor!();
    post_return(ctx.as_ptr());
    0
}

#[kprobe]
pub fn removal_kprobe(ctx: ProbeContext) -> u32 {
    crate::globals::empty_floor!();
    if let (Some(wlist), Some(wq), Some(id), Some(all)) =
        (ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3))
    {
        removal_entry(wlist, wq, id, all);
    }
    0
}

#[kretprobe]
pub fn removal_kretprobe(ctx: RetProbeContext) -> u32 {
    crate::globals::empty_floor!();
    post_return(ctx.as_ptr());
    0
}

#[fentry(function = "__wake_up_locked_sync_key")]
pub fn landed_fentry(ctx: FEntryContext) -> i32 {
    crate::globals::empty_floor!();
    // A scalar, not a typed pointer: see kread::fentry_arg.
    landed(ctx.as_ptr(), crate::kread::fentry_arg(ctx.as_ptr(), 0));
    0
}

#[kprobe]
pub fn landed_kprobe(ctx: ProbeContext) -> u32 {
    crate::globals::empty_floor!();
    landed(ctx.as_ptr(), ctx.arg(0).unwrap_or(0));
    0
}
