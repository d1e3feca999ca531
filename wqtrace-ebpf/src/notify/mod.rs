//! Notification posts.
//!
//! Where a post lands is read where the kernel serializes it. post_one_notification, holding
//! `pipe->rd_wait.lock` with IRQs off, bumps `head`, takes a note and then wakes readers with
//! `wake_up_interruptible_sync_poll_locked()` → `__wake_up_locked_sync_key(&pipe->rd_wait, ..)`
//! (6.1 through today; its only caller). Hooked there, `head - 1` is this post's slot and that
//! slot's buffer names its note, whatever other CPUs post or read meanwhile.
//!
//! A post that does not land makes no call under the lock. So the poster's own function
//! (`__post_watch_notification`, `remove_watch_from_object`) is hooked too: at entry it walks
//! the watches it will post to (watches whose id matches → queue → pipe), evaluates the queue's
//! filter as `filter_watch_notification()` will, and snapshots each ring; at return every
//! walked watch that did not land gets its outcome. Ring full or notes full is decided from
//! the entry and exit snapshots only where they prove it (head and tail only grow).

mod posts;
mod programs;
mod queue_filter;

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid,
    generated::{bpf_get_smp_processor_id, bpf_probe_read_kernel},
};
use posts::Place;
use queue_filter::{apply_filters, snap_filters};
use wqtrace_common::{EventKind, NO_OFFSET, Op, flags};

use crate::{
    emit::{emit, exec_ctx, now},
    filters::{pipe_wanted, task_wanted},
    globals::off,
    kread::{self, known_notify_pipe, rd},
    maps::{HOOK_POST_LANDED, HOOK_SECURITY_MAY_SKIP, hooks},
};

const MAX_WATCHES: usize = 4;
/// watch_queue_set_filter() accepts at most 16 filters.
const MAX_FILTERS: u32 = 16;
/// The type a landed post reports when no poster context names it (type 0xffffff).
const NTYPE_UNKNOWN: u32 = u32::MAX;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct PostEntry {
    pub pipe: u64,
    pub ino: u64,
    pub wq: u64,
    /// The queue's `struct watch_filter` (0: none) and how many of its filters apply.
    pub wf: u64,
    pub nr_filters: u32,
    pub _pad0: u32,
    /// The ring at the poster's entry.
    pub head: u32,
    pub tail: u32,
    pub ring_size: u32,
    pub info_id: u32,
    /// The queue's filter rejects this notification.
    pub filtered: u8,
    /// Set by the landing hook.
    pub landed: u8,
    /// Posted straight to post_one_notification (removals): no filter, no security check.
    pub direct: u8,
    pub _pad: u8,
    /// The outcome flags decided at return (kept in map memory: as a constant per branch it
    /// would make the verifier walk the event's emission once per outcome).
    pub outcome: u16,
    pub _pad2: u16,
    /// At return, for a watch that did not land: its ring (head, tail, ring_size, max_usage)
    /// and the pipe mutex owner's tid (0: unlocked).
    pub after: [u32; 4],
    pub owner: u32,
    pub _pad3: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct PostCtx {
    pub start_ns: u64,
    /// The `struct watch_notification` being posted (0 for removals, a callee's local): by
    /// the time a copy lands, the poster has set its id bits to that watch's.
    pub note_ptr: u64,
    pub type_sub: u32,
    pub info: u32,
    pub n: u32,
    /// The object had watches past the ones walked.
    pub overflow: u32,
    /// One `struct watch_type_filter` (16 bytes) and the subtype word the kernel tests.
    pub filter_words: [u32; 6],
    pub entries: [PostEntry; MAX_WATCHES],
    /// The return's execution context (`emit::exec_ctx`), kept in map memory for its events.
    pub ectx: u32,
    pub _pad: u32,
}

/// Key for the poster's context: the thread (or the CPU when no task context exists) and the
/// execution context, so a softirq post interrupting a task's own post keeps its own entry.
/// The landing hook runs in the same context as the post it sees, so it finds the same key.
/// With it, the poster's process id, for the filters: one helper call for both.
#[inline(always)]
fn poster() -> (u64, u32) {
    poster_in(exec_ctx())
}

/// [`poster`] in execution context `ctx` (`emit::exec_ctx`), known already.
#[inline(always)]
fn poster_in(ctx: u8) -> (u64, u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    let who = if tid != 0 {
        tid as u64
    } else {
        (1 << 32) | unsafe { bpf_get_smp_processor_id() } as u64
    };
    (who | ((ctx as u64) << 48), (pid_tgid >> 32) as u32)
}

/// Which watches of a watch list a post (or removal) goes to.
#[derive(Clone, Copy)]
enum Watches {
    /// `__post_watch_notification`: every watch with this id, through the queue's filter.
    WithId(u64),
    /// `remove_watch_from_object(.., wq, id, false)`: the first watch of queue `wq` with `id`.
    OfQueue(u64, u64),
    /// `remove_watch_from_object(.., all = true)`.
    All,
}

/// Start the current poster's post context (see [`posts`]): notification header and start
/// time; with the poster's key (see [`poster`]) and where the context lives. None when the
/// posting task is filtered out (-p/-c apply to posts as to every event).
#[inline(always)]
fn begin_post(type_sub: u32, info: u32) -> Option<(u64, Place, &'static mut PostCtx)> {
    let (key, tgid) = poster();
    if !task_wanted(tgid) {
        return None;
    }
    let (place, c) = posts::start(key)?;
    c.start_ns = now();
    c.type_sub = type_sub;
    c.info = info;
    c.n = 0;
    c.overflow = 0;
    c.note_ptr = 0;
    Some((key, place, c))
}

/// Keep the context for the landing hook and the return probe, if it walked a traced pipe.
#[inline(always)]
fn finish_post(key: u64, place: Place, c: &PostCtx) {
    posts::finish(key, place, c, c.n > 0 || c.overflow != 0);
}

/// Raw read into map memory; on a fault the destination keeps what it had.
#[inline(always)]
fn read_into<T>(dst: &mut T, src: u64) {
    unsafe {
        bpf_probe_read_kernel(
            (dst as *mut T).cast(),
            core::mem::size_of::<T>() as u32,
            src as *const core::ffi::c_void,
        );
    }
}

/// Walk `wlist->watchers` as the poster will and snapshot the queue of each selected watch.
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
        let e = &mut c.entries[i];
        if snap_queue(e, wq, info_id) {
            if let Watches::WithId(_) = which {
                e.direct = 0;
            }
            c.n = (i + 1) as u32;
        }
        if let Watches::OfQueue(..) = which {
            found = true;
            break;
        }
    }
    if node != 0 && !found {
        c.overflow = 1;
    }
}

/// `__post_watch_notification(wlist, n, cred, id)`.
#[inline(always)]
fn post_entry(wlist: u64, n: u64, id: u64) {
    let hdr: u64 = rd(n, 0).unwrap_or(0);
    let Some((key, place, c)) = begin_post(hdr as u32, (hdr >> 32) as u32) else {
        return;
    };
    c.note_ptr = n;
    snap_watches(c, wlist, Watches::WithId(id));
    finish_post(key, place, c);
}

/// `remove_watch_from_object(wlist, wq, id, all)`: posts WATCH_META_REMOVAL_NOTIFICATION through
/// post_one_notification directly (not through __post_watch_notification) to every watch it
/// removes: those of queue `wq` with `id`, or all of them.
#[inline(always)]
fn removal_entry(wlist: u64, wq: u64, id: u64, all: u64) {
    // type WATCH_TYPE_META (0), subtype WATCH_META_REMOVAL_NOTIFICATION (0); the record is a
    // bare watch_notification (8 bytes) or, with an id, watch_notification_removal (16).
    let Some((key, place, c)) = begin_post(0, if id != 0 { 16 } else { 8 }) else {
        return;
    };
    let which = if all & 0xff != 0 {
        Watches::All
    } else {
        Watches::OfQueue(wq, id)
    };
    snap_watches(c, wlist, which);
    finish_post(key, place, c);
}

/// Snapshot one queue's pipe before a post. False when the pipe is gone or filtered out.
#[inline(always)]
fn snap_queue(e: &mut PostEntry, wq: u64, info_id: u32) -> bool {
    let pipe: u64 = rd(wq, off!(wq_pipe)).unwrap_or(0);
    e.pipe = 0;
    if pipe == 0 {
        return false;
    }
    // Unknown (or known only by a stale entry): inode unknown.
    let ino = known_notify_pipe(pipe).map_or(0, |p| p.ino);
    if !pipe_wanted(ino, true) {
        return false;
    }
    let r = kread::ring(pipe);
    e.pipe = pipe;
    e.ino = ino;
    e.wq = wq;
    e.head = r.head;
    e.tail = r.tail;
    e.ring_size = r.ring_size;
    e.info_id = info_id;
    e.wf = 0;
    e.nr_filters = 0;
    e.filtered = 0;
    e.landed = 0;
    e.direct = 1;
    true
}

/// `post_one_notification(wqueue, n)`: one queue, the watch id already in n->info.
#[inline(always)]
fn post1_entry(wq: u64, n: u64) {
    let hdr: u64 = rd(n, 0).unwrap_or(0);
    let Some((key, place, c)) = begin_post(hdr as u32, (hdr >> 32) as u32) else {
        return;
    };
    if snap_queue(&mut c.entries[0], wq, c.info & 0xff00) {
        c.n = 1;
    }
    finish_post(key, place, c);
}

/// Inside post_one_notification's critical section, right after the post landed.
#[inline(always)]
fn landed(ctx: *mut core::ffi::c_void, wq_head: u64) {
    let ro = off!(pipe_rd_wait);
    if ro == NO_OFFSET || wq_head < ro as u64 {
        return;
    }
    let pipe = wq_head - ro as u64;
    // A pipe not known as a notification pipe: the walk below decides.
    let known = known_notify_pipe(pipe);
    if let Some(p) = known {
        if !pipe_wanted(p.ino, true) {
            return;
        }
    }
    let ectx = exec_ctx();
    let (key, tgid) = poster_in(ectx);
    if !task_wanted(tgid) {
        return;
    }
    let mut type_sub = NTYPE_UNKNOWN;
    let mut info = 0;
    let mut start = 0;
    // A pipe no traced syscall has named yet (its reader blocked in read() since before the
    // session) is still this post's when the poster walked its watch to it: it landed, and
    // left unmarked the return would call it lost. Its inode stays unknown (0): nothing
    // reachable from the pipe names it.
    let mut walked = false;
    if let Some(c) = posts::find(key) {
        type_sub = c.type_sub;
        info = c.info;
        start = c.start_ns;
        for i in 0..MAX_WATCHES {
            if i as u32 >= c.n {
                break;
            }
            let en = &mut c.entries[i];
            if en.pipe == pipe && en.landed == 0 {
                en.landed = 1;
                walked = true;
                info = (info & !0xff00) | (en.info_id & 0xff00);
                break;
            }
        }
        // Watches past the walk too: the poster's notification carries this watch's id now.
        if c.note_ptr != 0 {
            if let Some(i) = rd::<u32>(c.note_ptr, 4) {
                info = i;
            }
        }
    }
    let ino = match known {
        Some(p) => p.ino,
        None if walked => 0,
        None => return,
    };
    let r = kread::ring(pipe);
    let slot = r.head.wrapping_sub(1);
    let note = kread::buf_note(pipe, slot, r.ring_size);
    let wq: u64 = rd(pipe, off!(pipe_watch_queue)).unwrap_or(0);
    // Exact: the note bits change only under this lock (taken) or by readers releasing notes
    // they consumed, which is the kernel's own state at this instant.
    let (nr, used) = kread::notes_state(wq);
    let (owner, task) = kread::mutex_owner(pipe);
    emit!(@ ectx, EventKind::NotifyPosted, |e| {
        e.op = Op::Post as u8;
        e.pipe = pipe;
        e.ino = ino;
        if start != 0 {
            e.duration_ns = e.ts_ns.wrapping_sub(start);
        }
        e.head_before = slot;
        e.tail_before = r.tail;
        e.head = r.head;
        e.tail = r.tail;
        e.ring_size = r.ring_size;
        e.max_usage = r.max_usage;
        e.nr_notes = nr;
        e.notes_in_use = used;
        e.slot = slot & r.ring_size.wrapping_sub(1);
        e.note = note;
        // NTYPE_UNKNOWN stays recognisable: its type bits are all ones too.
        e.ntype = type_sub & 0x00ff_ffff;
        e.subtype = type_sub >> 24;
        e.info = info;
        e.lock = wq_head;
        e.flags = flags::NOTIFICATION_PIPE | flags::FROM_KFUNC;
        if owner != 0 {
            e.owner_tid = owner;
            kread::task_comm(task, &mut e.owner_comm);
            e.flags |= flags::MUTEX_HELD;
        }
        // A post landing inside a userspace op's critical section is an interleave: rare.
        let budget = crate::stacks::Budget::Other;
        (e.kstack, e.ustack) = crate::stacks::pair(ctx, budget, owner != 0, e.ctx, e.ts_ns);
    });
}

/// The outcome flags of a walked watch that did not land, from what the snapshots prove.
#[inline(always)]
fn not_landed(en: &PostEntry, head: u32, tail: u32, hooks: u64) -> u16 {
    if hooks & HOOK_POST_LANDED == 0 {
        return flags::OUTCOME_UNKNOWN;
    }
    if en.filtered != 0 {
        return flags::FILTERED;
    }
    if en.direct == 0 && hooks & HOOK_SECURITY_MAY_SKIP != 0 {
        return flags::OUTCOME_UNKNOWN;
    }
    if rd::<u8>(en.wq, off!(wq_defunct)).unwrap_or(0) != 0 {
        return flags::OUTCOME_UNKNOWN;
    }
    // post_one_notification ran and hit `lost`: the ring was full (pipe_full(head, tail,
    // ring_size)) or no note was free, at one instant between entry and return. head and
    // tail only grow, so the occupancy then lay in [head0 - tail1, head1 - tail0].
    let rs = en.ring_size as i64;
    let least = en.head.wrapping_sub(tail) as i32 as i64;
    let most = head.wrapping_sub(en.tail) as i32 as i64;
    if least >= rs {
        flags::LOSS | flags::RING_FULL
    } else if most < rs {
        flags::LOSS | flags::NOTES_FULL
    } else {
        flags::LOSS
    }
}

/// Whether a walked watch reached a traced pipe and its post did not land: what the return
/// decides and reports (the landing hook reported the others).
#[inline(always)]
fn unlanded(en: &PostEntry) -> bool {
    en.pipe != 0 && en.landed == 0
}

#[inline(always)]
fn post_return(ctx: *mut core::ffi::c_void) {
    // Every walked post landed, and the landing hook reported each: nothing to decide. The
    // usual case, kept short (the filter walk below is 64 steps).
    let missed = |c: &PostCtx| {
        let mut missed = c.overflow != 0;
        for i in 0..MAX_WATCHES {
            if i as u32 >= c.n {
                break;
            }
            if unlanded(&c.entries[i]) {
                missed = true;
            }
        }
        missed
    };
    let Some(c) = posts::for_return(poster().0, missed) else {
        return;
    };
    snap_filters(c);
    apply_filters(c);
    let hooks = hooks();
    // What the events say is decided first, into map memory, with no event emitted: an event
    // emitted in the same loop made 6.1's verifier walk every combination of the decisions'
    // outcomes across the watches (936k instructions per program, 4.6 s of the test guest's
    // attach; the limit is 1M).
    for i in 0..MAX_WATCHES {
        if i as u32 >= c.n {
            break;
        }
        if !unlanded(&c.entries[i]) {
            continue;
        }
        let r = kread::ring(c.entries[i].pipe);
        c.entries[i].outcome = not_landed(&c.entries[i], r.head, r.tail, hooks);
        c.entries[i].after = [r.head, r.tail, r.ring_size, r.max_usage];
        // No notes count here: read outside the ring lock it would be a guess (the landing
        // hook reports it exactly), and the bitmap walk per watch is more than 6.1's
        // verifier takes on top of the filter evaluation.
        c.entries[i].owner = kread::mutex_owner(c.entries[i].pipe).0;
    }
    // One poster, one call path: the stacks of every watch that did not land, taken once.
    // The context is read again, not kept from the key: a value live across the filter walk
    // splits its verifier states four ways, and 6.1 refused the program (E2BIG).
    c.ectx = crate::emit::exec_ctx() as u32;
    let ectx = || unsafe { core::ptr::read_volatile(&c.ectx) } as u8;
    let (kstack, ustack) = crate::stacks::pair_now(ctx, crate::stacks::Budget::Other, true, ectx());
    for i in 0..MAX_WATCHES {
        if i as u32 >= c.n {
            break;
        }
        let en = &c.entries[i];
        if !unlanded(en) {
            continue;
        }
        emit!(@ ectx(), EventKind::NotifyPosted, |e| {
            e.op = Op::Post as u8;
            e.pipe = en.pipe;
            e.ino = en.ino;
            e.duration_ns = e.ts_ns.wrapping_sub(c.start_ns);
            e.head_before = en.head;
            e.tail_before = en.tail;
            [e.head, e.tail, e.ring_size, e.max_usage] = en.after;
            e.ntype = c.type_sub & 0x00ff_ffff;
            e.subtype = c.type_sub >> 24;
            e.info = (c.info & !0xff00) | (en.info_id & 0xff00);
            e.flags = flags::NOTIFICATION_PIPE | flags::FROM_KFUNC | en.outcome;
            if en.owner != 0 {
                e.owner_tid = en.owner;
                e.flags |= flags::MUTEX_HELD;
            }
            e.kstack = kstack;
            e.ustack = ustack;
        });
    }
    if c.overflow != 0 {
        // Watches past the walk: their landed posts were reported by the landing hook; what
        // became of the others is not known, and says so instead of vanishing.
        emit!(@ ectx(), EventKind::NotifyPosted, |e| {
            e.op = Op::Post as u8;
            e.duration_ns = e.ts_ns.wrapping_sub(c.start_ns);
            e.ntype = c.type_sub & 0x00ff_ffff;
            e.subtype = c.type_sub >> 24;
            e.info = c.info;
            e.flags = flags::NOTIFICATION_PIPE | flags::FROM_KFUNC | flags::UNATTRIBUTED;
            e.kstack = kstack;
            e.ustack = ustack;
        });
    }
}
