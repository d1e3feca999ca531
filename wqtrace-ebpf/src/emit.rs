//! Writing events into the ring buffer. A failed reservation is counted, never silent.

use aya_ebpf::helpers::generated::{
    bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_task_btf,
    bpf_get_smp_processor_id, bpf_ktime_get_boot_ns,
};
use wqtrace_common::{Event, EventKind, ExecCtx, stat};

use crate::maps::STATS;

#[inline(always)]
pub fn now() -> u64 {
    unsafe { bpf_ktime_get_boot_ns() }
}

/// Fill the header from the current task and zero the rest. Called on a reserved event: the
/// stamp is taken after the reservation, which the userspace merge of the rings relies on
/// (`source::merge`).
#[inline(always)]
pub fn init(e: &mut Event, kind: EventKind, ctx: u8) {
    crate::words::zero(e as *mut Event);
    header(e, kind, ctx);
    e.slot = u32::MAX;
    e.note = u32::MAX;
}

/// [`init`] of a short record: its first `Event::SHORT_BYTES`, all there is of it (the
/// verifier refuses any access past them).
#[inline(always)]
pub fn init_short(e: &mut Event, kind: EventKind, ctx: u8) {
    crate::words::zero_first(e as *mut Event, Event::SHORT_BYTES);
    header(e, kind, ctx);
}

/// The fields every event takes from the current task and the clock.
#[inline(always)]
fn header(e: &mut Event, kind: EventKind, ctx: u8) {
    // One helper call for the task, its ids, comm and cgroup, where each took its own.
    let (task, tid, tgid) = crate::kread::current();
    e.ts_ns = now();
    e.kind = kind as u8;
    e.cpu = unsafe { bpf_get_smp_processor_id() };
    e.tid = tid;
    e.tgid = tgid;
    e.fd_in = -1;
    e.fd_out = -1;
    e.ctx = ctx;
    comm_of(task, &mut e.comm);
    e.cgroup = cgroup_id_of(task);
}

/// The current task's cgroup v2 id: `task->cgroups->dfl_cgrp->kn->id`, four loads through the
/// BTF-typed task the verifier checks against the kernel's types, where the helper was a call
/// of ~30 ns on every counted op (issue #13). Under the RCU read lock programs run in, as the
/// helper reads it.
#[inline(always)]
pub fn current_cgroup_id() -> u64 {
    cgroup_id_of(unsafe { bpf_get_current_task_btf() } as u64)
}

/// [`current_cgroup_id`] of `task`, the current task (BTF-typed; the fallback helper reads
/// the current task's).
#[inline(always)]
fn cgroup_id_of(task: u64) -> u64 {
    use crate::{globals::off, kread::btf_load};
    let (t, c, k, i) = (
        off!(task_cgroups),
        off!(cset_dfl_cgrp),
        off!(cgroup_kn),
        off!(kn_id),
    );
    let n = wqtrace_common::NO_OFFSET;
    if t == n || c == n || k == n || i == n {
        return unsafe { bpf_get_current_cgroup_id() };
    }
    let cset = btf_load::<u64>(task, t);
    if cset == 0 {
        return 0;
    }
    let cgrp = btf_load::<u64>(cset, c);
    if cgrp == 0 {
        return 0;
    }
    let kn = btf_load::<u64>(cgrp, k);
    if kn == 0 {
        return 0;
    }
    btf_load::<u64>(kn, i)
}

/// The current task's comm: two loads through the BTF-typed task (as the helper would copy it,
/// without a helper call on every event).
#[inline(always)]
pub fn current_comm(dst: &mut [u8; 16]) {
    comm_of(unsafe { bpf_get_current_task_btf() } as u64, dst)
}

/// [`current_comm`] of `task`, the current task (BTF-typed; the fallback helper copies the
/// current task's).
#[inline(always)]
fn comm_of(task: u64, dst: &mut [u8; 16]) {
    let o = crate::globals::off!(task_comm);
    if o == wqtrace_common::NO_OFFSET {
        unsafe { bpf_get_current_comm(dst.as_mut_ptr().cast(), 16) };
        return;
    }
    let d = dst.as_mut_ptr().cast::<u64>();
    unsafe {
        let w0 = core::ptr::read_volatile((task + o as u64) as *const u64);
        let w1 = core::ptr::read_volatile((task + o as u64 + 8) as *const u64);
        core::ptr::write_unaligned(d, w0);
        core::ptr::write_unaligned(d.add(1), w1);
    }
}

/// Task, softirq or irq, from this CPU's preempt_count (include/linux/preempt.h masks).
#[inline(always)]
pub fn exec_ctx() -> u8 {
    let pco = unsafe { core::ptr::read_volatile(&raw const crate::globals::KSYMS.per_cpu_offset) };
    let pc = unsafe { core::ptr::read_volatile(&raw const crate::globals::KSYMS.preempt_count) };
    if pco == 0 || pc == 0 {
        return ExecCtx::Unknown as u8;
    }
    let cpu = unsafe { bpf_get_smp_processor_id() } as u64 & 0xfff;
    let base: u64 = crate::kread::rd(pco + cpu * 8, 0).unwrap_or(0);
    if base == 0 {
        return ExecCtx::Unknown as u8;
    }
    // The variable's address may not fit an offset (where per-CPU symbols are not zero-based).
    let Some(count) = crate::kread::rd::<u32>(base.wrapping_add(pc), 0) else {
        return ExecCtx::Unknown as u8;
    };
    const SOFTIRQ_OFFSET: u32 = 1 << 8;
    const HARDIRQ_MASK: u32 = 0x000f_0000;
    const NMI_MASK: u32 = 0x00f0_0000;
    if count & (HARDIRQ_MASK | NMI_MASK) != 0 {
        ExecCtx::Irq as u8
    } else if count & SOFTIRQ_OFFSET != 0 {
        ExecCtx::Softirq as u8
    } else {
        ExecCtx::Task as u8
    }
}

/// How often (in events, per CPU) a program looks at how full its ring is.
const FILL_CHECK_EVERY: u64 = 256;

/// The ring this CPU writes to: its own where there are enough (`Filter::ring_mask`).
#[inline(always)]
pub fn ring_index() -> u32 {
    let cpu = unsafe { bpf_get_smp_processor_id() };
    cpu & crate::globals::filter!(ring_mask)
}

/// `with_ring!(i, |r| expr)`: `expr` with `r` bound to ring `i` (`maps::EVENTS0`…). One arm per
/// ring: a helper call needs its map as a constant, so it cannot be picked from a table.
macro_rules! with_ring {
    ($i:expr, |$r:ident| $body:expr) => {
        crate::emit::with_ring!(@ $i, $r, $body,
            0 EVENTS0, 1 EVENTS1, 2 EVENTS2, 3 EVENTS3, 4 EVENTS4, 5 EVENTS5, 6 EVENTS6; EVENTS7)
    };
    (@ $i:expr, $r:ident, $body:expr, $($n:literal $ring:ident),*; $last:ident) => {{
        match $i {
            $($n => {
                let $r = &crate::maps::$ring;
                $body
            })*
            _ => {
                let $r = &crate::maps::$last;
                $body
            }
        }
    }};
}
pub(crate) use with_ring;

/// Counts `n` events (one record) as submitted and picks its commit flags. The reader is not
/// woken per event: by default a commit that finds the reader caught up wakes it, and finding
/// that out reads the reader's position, a cache line the reader's CPU writes after every
/// drain (a miss on every event). The reader drains on a timer instead (`source::live`,
/// every 20 ms); every FILL_CHECK_EVERY events a CPU checks its ring (`ring`) and wakes the
/// reader once a quarter of it is in use, so a burst cannot fill it between two timer drains.
#[inline(always)]
pub fn counted_commit_flags(ring: u32, n: u64) -> u64 {
    use aya_ebpf::bindings::{
        BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE,
    };
    let Some(c) = STATS.get_ptr_mut(stat::SUBMITTED) else {
        return 0;
    };
    let (before, after) = unsafe {
        let b = *c;
        *c = b + n;
        (b, b + n)
    };
    if before / FILL_CHECK_EVERY != after / FILL_CHECK_EVERY {
        let full = with_ring!(ring, |r| r.query(BPF_RB_AVAIL_DATA as u64)
            > r.query(BPF_RB_RING_SIZE as u64) / 4);
        if full {
            return BPF_RB_FORCE_WAKEUP as u64;
        }
    }
    BPF_RB_NO_WAKEUP as u64
}

#[inline(always)]
pub fn lost() {
    lost_n(1);
}

#[inline(always)]
pub fn lost_n(n: u64) {
    stat_add(stat::LOST, n);
}

/// Adds `n` to this CPU's counter `idx` (`wqtrace_common::maps::stat`).
#[inline(always)]
pub fn stat_add(idx: u32, n: u64) {
    if let Some(c) = STATS.get_ptr_mut(idx) {
        unsafe { *c += n };
    }
}

/// `emit!(kind, |e| { ... })`: reserve an event, fill the header, run the body on it, submit.
/// A macro, not a function taking a closure: an out-of-line closure can leave a stack pointer
/// in r0 at its exit, which the verifier rejects. A failed reservation is counted as lost.
///
/// `emit!(in_task kind, …)` from hooks that only ever run in process context (the syscall
/// tracepoints): the context is known without reading preempt_count.
macro_rules! emit {
    (@ $ctx:expr, $kind:expr, |$e:ident| $body:block) => {
        crate::emit::emit!(@ $ctx, $kind, 1, |$e| $body)
    };
    (@ $ctx:expr, $kind:expr, $lost:expr, |$e:ident| $body:block) => {{
        let ring = crate::emit::ring_index();
        match crate::emit::with_ring!(ring, |r| r.reserve::<wqtrace_common::Event>(0)) {
            Some(mut entry) => {
                let $e = unsafe { &mut *entry.as_mut_ptr() };
                crate::emit::init($e, $kind, $ctx);
                $body
                entry.submit(crate::emit::counted_commit_flags(ring, 1));
            }
            None => crate::emit::lost_n($lost),
        }
    }};
    // Two events of one syscall in one record (a splice or tee between two pipes): one
    // reservation, clock read and header for both, which userspace reads as two events. The
    // second starts as a copy of the first's header (same task, same instant).
    (in_task pair $kind:expr, |$a:ident, $b:ident| $body:block) => {{
        let ring = crate::emit::ring_index();
        match crate::emit::with_ring!(ring, |r| r.reserve::<[wqtrace_common::Event; 2]>(0)) {
            Some(mut entry) => {
                let p = entry.as_mut_ptr().cast::<wqtrace_common::Event>();
                let ($a, $b) = unsafe { (&mut *p, &mut *p.add(1)) };
                crate::emit::init($a, $kind, wqtrace_common::ExecCtx::Task as u8);
                crate::words::copy($b as *mut wqtrace_common::Event, $a);
                $body
                entry.submit(crate::emit::counted_commit_flags(ring, 2));
            }
            None => crate::emit::lost_n(2),
        }
    }};
    // A short record (`Event::SHORT_BYTES`): the body writes no field past them.
    (in_task short $kind:expr, |$e:ident| $body:block) => {{
        const WORDS: usize = wqtrace_common::Event::SHORT_BYTES / 8;
        let ring = crate::emit::ring_index();
        match crate::emit::with_ring!(ring, |r| r.reserve::<[u64; WORDS]>(0)) {
            Some(mut entry) => {
                let $e = unsafe { &mut *entry.as_mut_ptr().cast::<wqtrace_common::Event>() };
                crate::emit::init_short($e, $kind, wqtrace_common::ExecCtx::Task as u8);
                $body
                entry.submit(crate::emit::counted_commit_flags(ring, 1));
            }
            None => crate::emit::lost(),
        }
    }};
    (in_task $kind:expr, |$e:ident| $body:block) => {
        crate::emit::emit!(@ wqtrace_common::ExecCtx::Task as u8, $kind, 1, |$e| $body)
    };
    // An event that stands for `$lost` events (a ring op carrying its wait): that many lost.
    (in_task $kind:expr, lost = $lost:expr, |$e:ident| $body:block) => {
        crate::emit::emit!(@ wqtrace_common::ExecCtx::Task as u8, $kind, $lost, |$e| $body)
    };
    ($kind:expr, |$e:ident| $body:block) => {
        crate::emit::emit!(@ crate::emit::exec_ctx(), $kind, |$e| $body)
    };
}
pub(crate) use emit;
