//! Writing events into the ring buffer. A failed reservation is counted, never silent.

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid,
    generated::{bpf_get_current_comm, bpf_get_smp_processor_id, bpf_ktime_get_boot_ns},
};
use wqtrace_common::{Event, EventKind, stat};

use crate::maps::STATS;

#[inline(always)]
pub fn now() -> u64 {
    unsafe { bpf_ktime_get_boot_ns() }
}

#[inline(always)]
fn bump(idx: u32) {
    if let Some(c) = STATS.get_ptr_mut(idx) {
        unsafe { *c += 1 };
    }
}

/// Fill the header from the current task and zero the rest. Every field is assigned
/// explicitly: no large memset/memcpy for the BPF backend to choke on.
#[inline(always)]
pub fn init(e: &mut Event, kind: EventKind) {
    let pid_tgid = bpf_get_current_pid_tgid();
    e.ts_ns = now();
    e.pipe = 0;
    e.ino = 0;
    e.duration_ns = 0;
    e.ret = 0;
    e.lock = 0;
    e.kind = kind as u8;
    e.op = 0;
    e.flags = 0;
    e.cpu = unsafe { bpf_get_smp_processor_id() };
    e.tid = pid_tgid as u32;
    e.tgid = (pid_tgid >> 32) as u32;
    e.head_before = 0;
    e.tail_before = 0;
    e.head = 0;
    e.tail = 0;
    e.ring_size = 0;
    e.max_usage = 0;
    e.fd_in = -1;
    e.fd_out = -1;
    e.nr_notes = 0;
    e.notes_in_use = 0;
    e.slot = u32::MAX;
    e.note = u32::MAX;
    e.ntype = 0;
    e.subtype = 0;
    e.info = 0;
    e.owner_tid = 0;
    e.ctx = 0;
    e._pad = [0; 7];
    e.owner_comm = [0; 16];
    unsafe { bpf_get_current_comm(e.comm.as_mut_ptr().cast(), 16) };
}

#[inline(always)]
pub fn submitted() {
    bump(stat::SUBMITTED);
}

#[inline(always)]
pub fn lost() {
    bump(stat::LOST);
}

/// `emit!(kind, |e| { ... })`: reserve an event, fill the header, run the body on it, submit.
/// A macro, not a function taking a closure: an out-of-line closure can leave a stack pointer
/// in r0 at its exit, which the verifier rejects. A failed reservation is counted as lost.
macro_rules! emit {
    ($kind:expr, |$e:ident| $body:block) => {{
        match crate::maps::EVENTS.reserve::<wqtrace_common::Event>(0) {
            Some(mut entry) => {
                let $e = unsafe { &mut *entry.as_mut_ptr() };
                crate::emit::init($e, $kind);
                $body
                entry.submit(0);
                crate::emit::submitted();
            }
            None => crate::emit::lost(),
        }
    }};
}
pub(crate) use emit;
