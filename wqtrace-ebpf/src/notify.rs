//! Notification posts: `__post_watch_notification(wlist, n, cred, id)`.
//!
//! `post_one_notification` is what writes the ring, but on current kernels it only exists as an
//! untraceable `.isra` clone. So at entry we walk the watch list the way the poster will
//! (watches whose id matches → their queue → its pipe) and snapshot each pipe's ring and notes;
//! at return we compare: head moved → the note landed in slot `head_before`; otherwise the
//! ring or the notes were full (loss flagged) or the queue's filter skipped it.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_get_smp_processor_id},
    macros::{fentry, fexit, kprobe, kretprobe, map},
    maps::{LruHashMap, PerCpuArray},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
};
use wqtrace_common::{EventKind, Op, flags};

use crate::{
    emit::{emit, now},
    globals::off,
    kread::{self, PIPE_BUF_FLAG_LOSS, known_pipe, pipe_wanted, rd},
};

const MAX_WATCHES: usize = 4;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct PostEntry {
    pub pipe: u64,
    pub ino: u64,
    pub head: u32,
    pub tail: u32,
    pub ring_size: u32,
    pub max_usage: u32,
    pub nr_notes: u32,
    pub notes_used: u32,
    pub first_free: u32,
    pub info_id: u32,
    pub owner_tid: u32,
    pub loss_before: u32,
    pub owner_comm: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct PostCtx {
    pub start_ns: u64,
    pub type_sub: u32,
    pub info: u32,
    pub n: u32,
    pub _pad: u32,
    pub entries: [PostEntry; MAX_WATCHES],
}

/// Built here (too large for the 512-byte stack), then stored per task in POSTS.
#[map]
static POST_SCRATCH: PerCpuArray<PostCtx> = PerCpuArray::with_max_entries(1, 0);

#[map]
static POSTS: LruHashMap<u64, PostCtx> = LruHashMap::with_max_entries(1024, 0);

/// Key for the entry→return context: the thread, or the CPU when no task context exists.
#[inline(always)]
fn post_key() -> u64 {
    let tid = bpf_get_current_pid_tgid() as u32;
    if tid != 0 {
        tid as u64
    } else {
        (1 << 32) | unsafe { bpf_get_smp_processor_id() } as u64
    }
}

/// Which watches of a watch list a post (or removal) goes to.
#[derive(Clone, Copy)]
enum Watches {
    /// `__post_watch_notification`: every watch with this id.
    WithId(u64),
    /// `remove_watch_from_object(.., wq, id, false)`: the first watch of queue `wq` with `id`.
    OfQueue(u64, u64),
    /// `remove_watch_from_object(.., all = true)`.
    All,
}

/// Start a post context in the per-CPU scratch: notification header and start time.
#[inline(always)]
fn begin_post(type_sub: u32, info: u32) -> Option<&'static mut PostCtx> {
    let c = unsafe { &mut *POST_SCRATCH.get_ptr_mut(0)? };
    c.start_ns = now();
    c.type_sub = type_sub;
    c.info = info;
    c.n = 0;
    Some(c)
}

/// Keep the context for the return probe when any traced pipe is involved.
#[inline(always)]
fn finish_post(c: &PostCtx) {
    if c.n > 0 {
        let _ = POSTS.insert(post_key(), c, 0);
    }
}

/// Walk `wlist->watchers` as the poster will and snapshot the pipe of each selected watch.
#[inline(always)]
fn snap_watches(c: &mut PostCtx, wlist: u64, which: Watches) {
    let mut node: u64 = rd(wlist, off!(wlist_watchers)).unwrap_or(0);
    let node_off = off!(watch_list_node) as u64;
    let mut found = false;
    for i in 0..MAX_WATCHES {
        if node == 0 {
            break;
        }
        let watch = node - node_off;
        node = rd(node, 0).unwrap_or(0);
        c.entries[i].pipe = 0;
        let wq: u64 = rd(watch, off!(watch_queue)).unwrap_or(0);
        let id = rd::<u64>(watch, off!(watch_id));
        let selected = match which {
            Watches::WithId(want) => id == Some(want),
            Watches::OfQueue(q, want) => wq == q && id == Some(want),
            Watches::All => true,
        };
        if !selected {
            continue;
        }
        let info_id = rd(watch, off!(watch_info_id)).unwrap_or(0);
        if snap_queue(&mut c.entries[i], wq, info_id) {
            c.n = (i + 1) as u32;
        }
        if let Watches::OfQueue(..) = which {
            found = true;
            break;
        }
    }
    if node != 0 && !found {
        // Watches past the ones this bounded walk follows: whatever the poster writes into
        // their queues goes unreported, so it counts as lost rather than vanishing.
        crate::emit::lost();
    }
}

/// `__post_watch_notification(wlist, n, cred, id)`.
#[inline(always)]
fn post_entry(wlist: u64, n: u64, id: u64) {
    let hdr: u64 = rd(n, 0).unwrap_or(0);
    let Some(c) = begin_post(hdr as u32, (hdr >> 32) as u32) else {
        return;
    };
    snap_watches(c, wlist, Watches::WithId(id));
    finish_post(c);
}

/// `remove_watch_from_object(wlist, wq, id, all)`: posts WATCH_META_REMOVAL_NOTIFICATION through
/// post_one_notification directly (not through __post_watch_notification) to every watch it
/// removes: those of queue `wq` with `id`, or all of them.
#[inline(always)]
fn removal_entry(wlist: u64, wq: u64, id: u64, all: u64) {
    // type WATCH_TYPE_META (0), subtype WATCH_META_REMOVAL_NOTIFICATION (0); the record is a
    // bare watch_notification (8 bytes) or, with an id, watch_notification_removal (16).
    let Some(c) = begin_post(0, if id != 0 { 16 } else { 8 }) else {
        return;
    };
    let which = if all & 0xff != 0 {
        Watches::All
    } else {
        Watches::OfQueue(wq, id)
    };
    snap_watches(c, wlist, which);
    finish_post(c);
}

/// Snapshot one queue's pipe before a post. False when the pipe is gone or filtered out.
#[inline(always)]
fn snap_queue(e: &mut PostEntry, wq: u64, info_id: u32) -> bool {
    let pipe: u64 = rd(wq, off!(wq_pipe)).unwrap_or(0);
    e.pipe = 0;
    if pipe == 0 {
        return false;
    }
    let ino = known_pipe(pipe).map(|p| p.ino).unwrap_or(0);
    if !pipe_wanted(ino, true) {
        return false;
    }
    let r = kread::ring(pipe);
    let (nr, used, first) = kread::notes_state(wq);
    let (owner, task) = kread::mutex_owner(pipe);
    e.pipe = pipe;
    e.ino = ino;
    e.head = r.head;
    e.tail = r.tail;
    e.ring_size = r.ring_size;
    e.max_usage = r.max_usage;
    e.nr_notes = nr;
    e.notes_used = used;
    e.first_free = first;
    e.info_id = info_id;
    e.loss_before =
        kread::buf_flags(pipe, r.head.wrapping_sub(1), r.ring_size) & PIPE_BUF_FLAG_LOSS;
    e.owner_tid = owner;
    e.owner_comm = [0; 16];
    kread::task_comm(task, &mut e.owner_comm);
    true
}

/// `post_one_notification(wqueue, n)`: one queue, the watch id already in n->info.
#[inline(always)]
fn post1_entry(wq: u64, n: u64) {
    let hdr: u64 = rd(n, 0).unwrap_or(0);
    let Some(c) = begin_post(hdr as u32, (hdr >> 32) as u32) else {
        return;
    };
    if snap_queue(&mut c.entries[0], wq, c.info & 0xff00) {
        c.n = 1;
    }
    finish_post(c);
}

#[inline(always)]
fn post_return() {
    let key = post_key();
    let Some(c) = POSTS.get_ptr(key) else {
        return;
    };
    let c = unsafe { &*c };
    for i in 0..MAX_WATCHES {
        if i as u32 >= c.n {
            break;
        }
        let en = &c.entries[i];
        if en.pipe == 0 {
            continue;
        }
        let r = kread::ring(en.pipe);
        let posted = r.head != en.head;
        let ring_full = en.head.wrapping_sub(en.tail) >= en.ring_size;
        let notes_full = en.nr_notes > 0 && en.first_free == u32::MAX;
        let loss_now =
            kread::buf_flags(en.pipe, r.head.wrapping_sub(1), r.ring_size) & PIPE_BUF_FLAG_LOSS;
        emit!(EventKind::NotifyPosted, |e| {
            e.op = Op::Post as u8;
            e.pipe = en.pipe;
            e.ino = en.ino;
            e.duration_ns = e.ts_ns.wrapping_sub(c.start_ns);
            e.head_before = en.head;
            e.tail_before = en.tail;
            e.head = r.head;
            e.tail = r.tail;
            e.ring_size = r.ring_size;
            e.max_usage = r.max_usage;
            e.nr_notes = en.nr_notes;
            e.ntype = c.type_sub & 0x00ff_ffff;
            e.subtype = c.type_sub >> 24;
            e.info = (c.info & !0xff00) | (en.info_id & 0xff00);
            e.owner_tid = en.owner_tid;
            e.owner_comm = en.owner_comm;
            e.flags = flags::NOTIFICATION_PIPE | flags::FROM_KFUNC;
            if en.owner_tid != 0 {
                e.flags |= flags::MUTEX_HELD;
            }
            if posted {
                e.slot = en.head & r.ring_size.wrapping_sub(1);
                e.note = en.first_free;
                e.notes_in_use = en.notes_used + 1;
            } else {
                e.notes_in_use = en.notes_used;
                if ring_full {
                    e.flags |= flags::RING_FULL | flags::LOSS;
                }
                if notes_full {
                    e.flags |= flags::NOTES_FULL | flags::LOSS;
                }
                if loss_now != 0 && en.loss_before == 0 {
                    e.flags |= flags::LOSS;
                }
                if e.flags & flags::LOSS == 0 {
                    e.flags |= flags::FILTERED;
                }
            }
        });
    }
    let _ = POSTS.remove(key);
}

#[fentry(function = "__post_watch_notification")]
pub fn post_fentry(ctx: FEntryContext) -> i32 {
    crate::globals::empty_floor!();
    post_entry(ctx.arg(0), ctx.arg(1), ctx.arg(3));
    0
}

#[fexit(function = "__post_watch_notification")]
pub fn post_fexit(_ctx: FExitContext) -> i32 {
    crate::globals::empty_floor!();
    post_return();
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
pub fn post_kretprobe(_ctx: RetProbeContext) -> u32 {
    crate::globals::empty_floor!();
    post_return();
    0
}

#[fentry(function = "post_one_notification")]
pub fn post1_fentry(ctx: FEntryContext) -> i32 {
    crate::globals::empty_floor!();
    post1_entry(ctx.arg(0), ctx.arg(1));
    0
}

#[fexit(function = "post_one_notification")]
pub fn post1_fexit(_ctx: FExitContext) -> i32 {
    crate::globals::empty_floor!();
    post_return();
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
pub fn post1_kretprobe(_ctx: RetProbeContext) -> u32 {
    crate::globals::empty_floor!();
    post_return();
    0
}

#[fentry(function = "remove_watch_from_object")]
pub fn removal_fentry(ctx: FEntryContext) -> i32 {
    crate::globals::empty_floor!();
    removal_entry(ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3));
    0
}

#[fexit(function = "remove_watch_from_object")]
pub fn removal_fexit(_ctx: FExitContext) -> i32 {
    crate::globals::empty_floor!();
    post_return();
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
pub fn removal_kretprobe(_ctx: RetProbeContext) -> u32 {
    crate::globals::empty_floor!();
    post_return();
    0
}

/// Whether a known pipe is traced (used by the other kernel-function hooks).
#[inline(always)]
pub fn traced_pipe(pipe: u64) -> Option<kread::PipeRef> {
    let p = known_pipe(pipe)?;
    if pipe_wanted(p.ino, p.notif) {
        Some(p)
    } else {
        None
    }
}
