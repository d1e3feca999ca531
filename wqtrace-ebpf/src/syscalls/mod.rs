//! The tracepoint path: tp_btf sys_enter/sys_exit. Works on every kernel with BTF, needs neither
//! kprobes nor fentry. At entry it resolves the syscall's fds to pipes and snapshots their rings;
//! at exit it reports what the syscall did to them.

use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use core::ffi::c_void;

use wqtrace_common::{CALIBRATE_FCNTL_CMD, Event, EventKind, Op, counts::hist, flags, stack_ref};

use crate::{
    counted::Writers,
    emit::emit,
    filters::{pipe_wanted, task_wanted},
    globals::filter,
    inflight,
    kread::{self, FdTable, PipeRef, fd_pipe, fill_notes, fill_ring},
    maps::{
        COUNTED_AT_ENTRY, HOOK_GET_PIPE_INFO, HOOK_PIPE_WAIT, Inflight, READ_SCAN, RT_PIPE_FOPS,
        RUNTIME, ReadScan, Side, TAIL_READ_SCAN, TAIL_SPLICE, TAILS, TOTALS_AT_EXIT, WAIT_DST,
        WAIT_DST_RD, WAIT_SRC, WAIT_SRC_RD, hooks,
    },
    stacks, words,
};

mod abi;
use abi::*;

/// Makes `f` a fresh in-flight record, with no syscall in it yet (`op` 0, set by sys_enter
/// once the syscall is known to be traced), and its owner word kept (`f` may be the
/// thread's own slot, see `inflight::entry_record`). Stores of words, not a struct literal
/// (that comes back as a BPF memset call, see `words`). It holds no start time: a ring op's
/// event carries no syscall duration (blocked time is its own event, `PipeWait`), which saves
/// a clock read per op (under `stress-ng --tee`, that read was 2 % of all CPU samples and
/// sys_enter took 113 ns/run with it, 85 without).
#[inline(always)]
fn blank(f: &mut Inflight) {
    words::zero_but_owner(f);
    f.src.fd = -1;
    f.dst.fd = -1;
}

/// `fd` and the pipe behind it; its ring is read by `snapshot`.
#[inline(always)]
fn side(fd: u64, p: Option<PipeRef>) -> Side {
    let Some(p) = p else {
        return Side {
            fd: fd as i32,
            ..Side::NONE
        };
    };
    Side {
        pipe: p.pipe,
        ino: p.ino,
        fd: fd as i32,
        head: 0,
        tail: 0,
        notif: p.notif as u32,
    }
}

/// The ring of `s`'s pipe as it is now, before the syscall.
#[inline(always)]
fn snapshot(s: &mut Side) {
    if s.pipe != 0 {
        let r = kread::ring(s.pipe);
        s.head = r.head;
        s.tail = r.tail;
    }
}

/// Whether the session only counts this op (`counted`): a ring op on ordinary pipes only,
/// counted here where its pipes are known. Then neither its rings before the op nor the clock
/// are read (a clock read costs as much as a probe read on a paravirtualised clock), and its
/// exit streams nothing. A read still blocked when the session stops has been counted.
#[inline(always)]
fn count_at_entry(f: &Inflight, op: Op) -> bool {
    let ring_op = matches!(
        op,
        Op::Read
            | Op::Readv
            | Op::Write
            | Op::Writev
            | Op::Vmsplice
            | Op::Splice
            | Op::Tee
            | Op::Sendfile
            | Op::CopyFileRange
    );
    if !ring_op || f.src.notif != 0 || f.dst.notif != 0 || !crate::counted::enabled() {
        return false;
    }
    // One op per pipe it moved data in or out of, as the exit would have streamed them.
    let n = (f.src.pipe != 0) as u64 + (f.dst.pipe != 0 && f.dst.pipe != f.src.pipe) as u64;
    crate::counted::events(EventKind::RingOp, n, Writers::OneSyscallProgram)
}

/// Whether the op's off-CPU time is measured (sched_switch) and reported with it: a plain
/// read or write sleeps in pipe_read/pipe_write, which no other hook sees. (splice and tee
/// sleep in pipe_wait_readable/_writable, which `waits` hooks where it can.)
#[inline(always)]
pub fn waits_measured(op: Op) -> bool {
    matches!(op, Op::Read | Op::Readv | Op::Write | Op::Writev)
}

/// Whether sched_switch times the op's waits on its pipes' wait queues (`sched`): splice, tee,
/// vmsplice and sendfile sleep in pipe_wait_readable/_writable, which time them where they
/// are hooked.
#[inline(always)]
pub fn waits_queued(op: Op) -> bool {
    matches!(op, Op::Splice | Op::Tee | Op::Vmsplice | Op::Sendfile)
        && hooks() & HOOK_PIPE_WAIT == 0
}

/// Whether the session totals this op per pipe at its exit instead of streaming it: a ring
/// op on ordinary pipes only.
#[inline(always)]
fn totals_at_exit(f: &Inflight, op: Op) -> bool {
    crate::totals::enabled()
        && f.src.notif == 0
        && f.dst.notif == 0
        && wqtrace_common::totals::index(op).is_some()
}

// Long on purpose: every traced syscall passes here; one body is one BPF program, with no
// helper calls to split it (each would be a BPF-to-BPF call on the hot path).
#[btf_tracepoint(function = "sys_enter")]
#[inline(always)] // see sys_exit
pub fn sys_enter(ctx: BtfTracePointContext) -> i32 {
    crate::globals::empty_floor!();
    let regs: u64 = ctx.arg(0);
    let nr: u64 = ctx.arg(1);
    // Most syscalls on the machine are none of ours: decided before any helper call.
    let op = op_of(nr);
    if op == Op::None {
        if nr == NR_FCNTL && (bpf_get_current_pid_tgid() >> 32) as u32 == filter!(self_tgid) {
            calibrate(regs);
        }
        return 0;
    }
    // A key storm is a keyctl per notification: KEYCTL_UPDATEs end here.
    if !traced_kind(nr, regs) {
        return 0;
    }
    let (task, tid, tgid) = kread::current();
    // pipe2 is followed whoever calls it: the pipe must be known for the events of the tasks
    // that are wanted (a -c filter on the posters still needs the reader's pipe); its own
    // event obeys the filter at exit.
    if op != Op::Pipe2 && !task_wanted(tgid) {
        return 0;
    }
    // Read once for the fds the syscall names. pipe2 names none, but its exit reads the same
    // table for the fds it made.
    let Some(fds) = FdTable::of(task) else {
        return 0;
    };
    // Built where it is kept when the thread holds its slot: built on the stack and copied
    // there (zeroing and copying ~128 bytes), sys_enter took 4 % longer on the host.
    let Some((fp, in_place)) = inflight::entry_record(tid) else {
        return 0;
    };
    let f = unsafe { &mut *fp };
    blank(f);
    let a0 = sys_arg(regs, 0);
    f.arg0 = a0;
    match nr {
        NR_READ | NR_READV => {
            let Some(p) = fd_pipe(&fds, a0 as i64) else {
                return 0;
            };
            f.src = side(a0, Some(p));
            if p.notif && nr == NR_READ {
                // The user buffer: at exit, the records read are looked at for loss records.
                f.arg = sys_arg(regs, 1);
            }
        }
        NR_WRITE | NR_WRITEV | NR_VMSPLICE => {
            let Some(p) = fd_pipe(&fds, a0 as i64) else {
                return 0;
            };
            f.dst = side(a0, Some(p));
        }
        NR_SPLICE | NR_COPY_FILE_RANGE | NR_TEE | NR_SENDFILE => {
            // splice(in, off_in, out, ...), copy_file_range(in, off_in, out, ...),
            // tee(in, out, ...), sendfile(out, in, ...)
            let (fin, fout) = match nr {
                NR_TEE => (a0, sys_arg(regs, 1)),
                NR_SENDFILE => (sys_arg(regs, 1), a0),
                _ => (a0, sys_arg(regs, 2)),
            };
            let pi = fd_pipe(&fds, fin as i64);
            let po = fd_pipe(&fds, fout as i64);
            if pi.is_none() && po.is_none() {
                return 0;
            }
            f.src = side(fin, pi);
            f.dst = side(fout, po);
        }
        NR_PIPE | NR_PIPE2 => {
            f.arg = a0;
            f.flags = if nr == NR_PIPE2 {
                sys_arg(regs, 1) as u32
            } else {
                0
            };
        }
        NR_IOCTL => {
            let cmd = sys_arg(regs, 1);
            if cmd != IOC_WATCH_QUEUE_SET_SIZE {
                return 0;
            }
            let Some(p) = fd_pipe(&fds, a0 as i64) else {
                return 0;
            };
            f.src = side(a0, Some(p));
            f.arg = cmd;
        }
        NR_KEYCTL => {
            if a0 != KEYCTL_WATCH_KEY {
                return 0;
            }
            let fd = sys_arg(regs, 2);
            let Some(p) = fd_pipe(&fds, fd as i64) else {
                return 0;
            };
            f.src = side(fd, Some(p));
            f.arg = sys_arg(regs, 3);
        }
        NR_CLOSE => {
            let Some(p) = fd_pipe(&fds, a0 as i64) else {
                return 0;
            };
            emit!(in_task EventKind::PipeReleased, |e| {
                e.op = Op::Close as u8;
                e.pipe = p.pipe;
                e.ino = p.ino;
                e.fd_in = a0 as i32;
                if p.notif {
                    e.flags |= flags::NOTIFICATION_PIPE;
                }
                fill_ring(e, p.pipe);
            });
            return 0;
        }
        _ => return 0,
    }
    if count_at_entry(f, op) {
        if !waits_measured(op) && !waits_queued(op) {
            // Counted, with no wait of its own to time: its exit and a sleep inside it have
            // nothing to do, so its record stays without a syscall.
            return 0;
        }
        f.counted = COUNTED_AT_ENTRY;
    } else if totals_at_exit(f, op) {
        // Its exit adds it to its pipes' totals, with the ring it leaves: the ring before is
        // not needed.
        f.counted = TOTALS_AT_EXIT;
    } else {
        snapshot(&mut f.src);
        snapshot(&mut f.dst);
    }
    if in_place {
        // Last: until here the record said "no syscall" to the thread's other hooks.
        unsafe { core::ptr::write_volatile(&raw mut f.op, op as u8) };
        return 0;
    }
    f.op = op as u8;
    f.tid = tid as u64;
    if !inflight::put(f) {
        // Full: this syscall will not be reported. Counted, never silent.
        crate::emit::lost();
    }
    0
}

/// The thread is gone: so is its in-flight slot.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn thread_exit(_ctx: BtfTracePointContext) -> i32 {
    crate::globals::empty_floor!();
    let tid = bpf_get_current_pid_tgid() as u32;
    inflight::forget(tid);
    0
}

/// wqtrace's own fcntl(F_GETPIPE_SZ) on its own pipe: remember the pipe `file_operations`.
#[inline(always)]
fn calibrate(regs: u64) {
    if sys_arg(regs, 1) != CALIBRATE_FCNTL_CMD as u64 {
        return;
    }
    let Some(file) = kread::fd_file(sys_arg(regs, 0) as i64) else {
        return;
    };
    // A fault reads as 0 (`kread::rd`), which names no file operations.
    let fop = kread::rd::<u64>(file, crate::globals::off!(file_f_op)).unwrap_or(0);
    if fop != 0 {
        let _ = RUNTIME.set(RT_PIPE_FOPS, fop, 0);
    }
}

/// The syscall, its fds and result, on one of its pipes.
#[inline(always)]
fn op_fields(e: &mut Event, f: &Inflight, s: &Side, ret: i64) {
    e.op = f.op;
    e.pipe = s.pipe;
    e.ino = s.ino;
    e.ret = ret;
    e.fd_in = f.src.fd;
    e.fd_out = f.dst.fd;
}

/// How many loss records (WATCH_META_LOSS_NOTIFICATION) the `len` bytes a read() of a
/// notification pipe returned hold: the kernel puts one in wherever `pipe->note_loss` was set
/// (a consumed buffer carried PIPE_BUF_FLAG_LOSS), so the records are walked by their lengths
/// as the reader will, counting into `count` (map memory: a count kept in a register would
/// make the verifier explore every combination of iterations). At most MAX_RECORDS records
/// (a 4 KiB read of 8-byte records) are looked at.
#[inline(always)]
fn loss_records(buf: u64, len: i64, count: &mut u32) {
    const MAX_RECORDS: u32 = 512;
    const WATCH_INFO_LENGTH: u32 = 0x7f;
    let mut at: i64 = 0;
    *count = 0;
    for _ in 0..MAX_RECORDS {
        if at + 8 > len {
            break;
        }
        // A fault reads as length 0 and ends the walk like a malformed record.
        let h: [u32; 2] =
            unsafe { bpf_probe_read_user((buf + at as u64) as *const [u32; 2]) }.unwrap_or([0; 2]);
        // type:24 | subtype:8; WATCH_TYPE_META = 0, WATCH_META_LOSS_NOTIFICATION = 1.
        if h[0] == 1 << 24 {
            *count += 1;
        }
        let rec = h[1] & WATCH_INFO_LENGTH;
        if rec < 8 {
            break;
        }
        at += rec as i64;
    }
}

/// Whether the op on `s`'s pipe was counted or totalled in the kernel instead of streamed
/// (it is totalled here, at the exit).
#[inline(always)]
fn absorbed(f: &Inflight, s: &Side, ret: i64) -> bool {
    // Each mark is tested behind its session's (.rodata) switch, though only that session
    // sets it: the verifier then drops the other sessions' paths, which it walked for every
    // inlined copy of this function (sys_exit: 267k instructions verified, 0.36 s of a 1.1 s
    // host attach, 8-15 s in the 6.1 test guest).
    (crate::counted::enabled() && f.counted == COUNTED_AT_ENTRY)
        || (crate::totals::enabled()
            && f.counted == TOTALS_AT_EXIT
            && crate::totals::add(f.op, s, ret))
}

/// What the syscall did to one of its pipes (`s`): the ring before and after, bytes or errno.
/// `dst`: the op wrote into this pipe. `losses`: loss records a read returned. `wait`: its
/// off-CPU wait (`f.off_cpu_ns`) is to be streamed; a streamed op carries it (one event
/// reserved, stamped and read by userspace where two were, see `flags::OFF_CPU`).
#[inline(always)]
fn ring_op(ctx: *mut c_void, f: &Inflight, s: &Side, ret: i64, dst: bool, losses: u32, wait: bool) {
    if absorbed(f, s, ret) {
        if wait {
            pipe_wait(ctx, f, s, ret);
        }
        return;
    }
    stream_op(ctx, f, s, ret, dst, losses, wait);
}

/// [`ring_op`] where the op is streamed (not absorbed).
#[inline(always)]
fn stream_op(
    ctx: *mut c_void,
    f: &Inflight,
    s: &Side,
    ret: i64,
    dst: bool,
    losses: u32,
    wait: bool,
) {
    // With `--stacks all` the op takes stacks of its own: the wait keeps its event.
    let carry = wait && !stacks::all();
    if wait && !carry {
        pipe_wait(ctx, f, s, ret);
    }
    let seen = kread::ring_and_owner(s.pipe);
    if !carry && losses == 0 && seen.1 == 0 {
        // Nothing past the short layout to say (no wait, loss records or owner).
        emit!(in_task short EventKind::RingOp, |e| {
            short_ring_fields(e, f, s, ret, dst, seen.0);
            (e.kstack, e.ustack) = stacks::pair(ctx, stacks::Budget::Op, false, e.ctx, e.ts_ns);
        });
        return;
    }
    emit!(in_task EventKind::RingOp, lost = 1 + carry as u64, |e| {
        ring_fields(e, f, s, ret, dst, losses, seen);
        if carry {
            e.flags |= flags::OFF_CPU;
            e.duration_ns = f.off_cpu_ns;
            (e.kstack, e.ustack) =
                stacks::of_wait(ctx, f.off_cpu_ns, f.wait_kstack, e.ctx, e.ts_ns);
        } else {
            // Ring ops are the hot path: stacks only with `--stacks all`.
            (e.kstack, e.ustack) = stacks::pair(ctx, stacks::Budget::Op, false, e.ctx, e.ts_ns);
        }
    });
}

/// A splice or tee between two pipes, both streamed: the ring op on each, in one record
/// (`emit!(in_task pair ..)`), source first as two `ring_op`s would stream them. One call
/// path, one instant: with `--stacks all` both carry the same stacks.
#[inline(always)]
fn ring_op_pair(ctx: *mut c_void, f: &Inflight, ret: i64) {
    let (seen_src, seen_dst) = (
        kread::ring_and_owner(f.src.pipe),
        kread::ring_and_owner(f.dst.pipe),
    );
    emit!(in_task pair EventKind::RingOp, |a, b| {
        ring_fields(a, f, &f.src, ret, false, 0, seen_src);
        ring_fields(b, f, &f.dst, ret, true, 0, seen_dst);
        (a.kstack, a.ustack) = stacks::pair(ctx, stacks::Budget::Op, false, a.ctx, a.ts_ns);
        (b.kstack, b.ustack) = (a.kstack, a.ustack);
    });
}

/// A ring op's fields but its wait and stacks (see [`ring_op`]). `seen`: its pipe's ring and
/// mutex owner at the exit (`kread::ring_and_owner`), read before the event is reserved.
#[inline(always)]
fn ring_fields(
    e: &mut Event,
    f: &Inflight,
    s: &Side,
    ret: i64,
    dst: bool,
    losses: u32,
    seen: (kread::Ring, u64),
) {
    short_ring_fields(e, f, s, ret, dst, seen.0);
    if losses != 0 {
        e.flags |= flags::LOSS_SEEN;
        e.info = losses;
    }
    let task = seen.1;
    if task != 0 {
        e.owner_tid = kread::task_tid(task);
        kread::task_comm(task, &mut e.owner_comm);
    }
}

/// The fields of a ring op that sit in a short record (`Event::SHORT_BYTES`): all of them
/// for an op with no loss records read, no mutex owner at its exit and no wait carried.
#[inline(always)]
fn short_ring_fields(e: &mut Event, f: &Inflight, s: &Side, ret: i64, dst: bool, r: kread::Ring) {
    op_fields(e, f, s, ret);
    e.head_before = s.head;
    e.tail_before = s.tail;
    if s.notif != 0 {
        e.flags |= flags::NOTIFICATION_PIPE;
    }
    if dst {
        e.flags |= flags::RING_DST;
    }
    kread::put_ring(e, r);
    if crate::totals::enabled() && f.counted == TOTALS_AT_EXIT {
        // Meant for the totals, which had no room: the ring before was not read, so the
        // event shows no movement (the model marks what it missed as unknown slots).
        e.head_before = r.head;
        e.tail_before = r.tail;
    }
}

// Long on purpose, like sys_enter: one program on every syscall exit.
// inline(always): the macro's wrapper ignores this function's result, so a separately
// compiled body may end with a stack pointer in r0, which the verifier refuses.
#[btf_tracepoint(function = "sys_exit")]
#[inline(always)]
pub fn sys_exit(ctx: BtfTracePointContext) -> i32 {
    crate::globals::empty_floor!();
    let regs: u64 = ctx.arg(0);
    // Most syscalls on the machine are none of ours: no map lookup for them.
    let nr = sys_nr(regs);
    let nr_op = op_of(nr);
    if nr_op == Op::None || !traced_kind(nr, regs) {
        return 0;
    }
    let ret: i64 = ctx.arg(1);
    let tid = bpf_get_current_pid_tgid() as u32;
    let Some(fp) = inflight::of(tid) else {
        return 0;
    };
    let op = unsafe { core::ptr::read_volatile(&(*fp).op) };
    if op == Op::None as u8 {
        return 0;
    }
    // The record is read where it lies, not copied out (~140 bytes, at every traced exit): only
    // this thread writes it while it is in a syscall (sched_switch does only when it sleeps,
    // get_pipe_info only within the syscall), and it is released after its last use.
    if op == nr_op as u8 && unsafe { (*fp).arg0 } == sys_arg(regs, 0) {
        exit_of(&ctx, unsafe { &*fp }, ret);
    }
    // Else it was left by a syscall whose exit went unseen: this exit is not its own.
    release(fp);
    0
}

/// What a traced syscall did, from its in-flight record `f`, at its exit.
#[inline(always)]
fn exit_of(ctx: &BtfTracePointContext, f: &Inflight, ret: i64) {
    let op = Op::from_u8(f.op);

    // Whether the op's off-CPU wait is streamed (by its ring op, see `ring_op`).
    let mut wait = false;
    if f.off_cpu_ns > 0 && waits_measured(op) {
        let s = if matches!(op, Op::Read | Op::Readv) {
            &f.src
        } else {
            &f.dst
        };
        wait = wait_streamed(s, f.off_cpu_ns);
    }

    match op {
        Op::Read | Op::Readv => {
            if f.src.notif != 0 && f.arg != 0 && ret >= 8 {
                if let Some(s) = READ_SCAN.get_ptr_mut(0) {
                    unsafe {
                        *s = ReadScan {
                            f: *f,
                            ret,
                            losses: 0,
                            wait: wait as u32,
                        }
                    };
                    // A tail call that succeeds does not come back here: the scan releases
                    // the record.
                    unsafe { TAILS.tail_call(ctx, TAIL_READ_SCAN) };
                }
                // Only reached when the tail call failed: the read, its loss records uncounted.
            }
            ring_op(ctx.as_ptr(), f, &f.src, ret, false, 0, wait)
        }
        Op::Write | Op::Writev => ring_op(ctx.as_ptr(), f, &f.dst, ret, true, 0, wait),
        Op::Splice | Op::Tee | Op::Vmsplice | Op::Sendfile | Op::CopyFileRange => {
            splice_waits(ctx.as_ptr(), f, ret);
            if crate::direct::on() {
                // Here, where the verifier walks it cheaply: the tail call below cost every
                // splice ~6 % more of sys_exit's run time (stress-ng --splice).
                splice_exit(ctx.as_ptr(), f, ret);
            } else {
                // Without direct loads (6.1), in a program of its own (see `TAIL_SPLICE`), on
                // the same in-flight record. A tail call that succeeds does not come back
                // here: that program releases the record.
                let _ = unsafe { TAILS.tail_call(ctx, TAIL_SPLICE) };
                // Only reached when the tail call failed; not done here, where the verifier
                // would walk it after every path of the waits: what it would have streamed
                // is lost.
                crate::emit::lost_n(splice_events(f, ret));
            }
        }
        Op::Pipe2 => pipe2_exit(f, ret),
        Op::Ioctl => {
            if ret == 0 {
                emit!(in_task EventKind::WatchQueueSized, |e| {
                    e.op = f.op;
                    e.pipe = f.src.pipe;
                    e.ino = f.src.ino;
                    e.fd_in = f.src.fd;
                    e.flags = flags::NOTIFICATION_PIPE;
                    fill_ring(e, f.src.pipe);
                    fill_notes(e, f.src.pipe);
                });
            }
        }
        Op::Keyctl => emit!(in_task EventKind::WatchAdded, |e| {
            e.op = f.op;
            e.pipe = f.src.pipe;
            e.ino = f.src.ino;
            e.fd_in = f.src.fd;
            e.ret = ret;
            e.info = ((f.arg as u32) & 0xff) << 8;
            if f.src.notif != 0 {
                e.flags = flags::NOTIFICATION_PIPE;
            }
            fill_ring(e, f.src.pipe);
        }),
        _ => {}
    }
}

/// Frees this thread's in-flight record `fp` for its next syscall.
#[inline(always)]
fn release(fp: *mut Inflight) {
    unsafe { core::ptr::write_volatile(&raw mut (*fp).op, Op::None as u8) };
}

/// Whether an off-CPU wait of `ns` for `s`'s pipe is streamed: a wait long enough for stacks
/// streams with them; a shorter one a live view counts or totals.
#[inline(always)]
fn wait_streamed(s: &Side, ns: u64) -> bool {
    !(s.notif == 0
        && (crate::counted::wait(
            EventKind::PipeWait,
            hist::PIPE_WAIT,
            ns,
            Writers::OneSyscallProgram,
        ) || (crate::totals::enabled()
            && !stacks::wait_is_rare(ns)
            && crate::totals::wait(s, ns))))
}

/// A wait for a pipe streamed on its own: `f.off_cpu_ns` of off-CPU time inside a read or
/// write of `s`, whose ring op is not streamed or takes stacks of its own.
#[inline(always)]
fn pipe_wait(ctx: *mut c_void, f: &Inflight, s: &Side, ret: i64) {
    side_wait(ctx, s, ret, f.op, f.off_cpu_ns, f.wait_kstack);
}

/// `ns` of off-CPU time for `s`'s pipe in the current syscall, as `op` (the syscall, or
/// pipe_wait_readable/_writable), with `kstack` where it slept.
#[inline(always)]
fn side_wait(ctx: *mut c_void, s: &Side, ret: i64, op: u8, ns: u64, kstack: u16) {
    emit!(in_task EventKind::PipeWait, |e| {
        e.op = op;
        e.pipe = s.pipe;
        e.ino = s.ino;
        e.ret = ret;
        e.duration_ns = ns;
        e.flags = flags::OFF_CPU;
        if s.notif != 0 {
            e.flags |= flags::NOTIFICATION_PIPE;
        }
        fill_ring(e, s.pipe);
        (e.kstack, e.ustack) = stacks::of_wait(ctx, ns, kstack, e.ctx, e.ts_ns);
    });
}

/// The time a splice, tee, vmsplice or sendfile slept on its pipes' wait queues, where
/// sched_switch timed it (`sched`): a wait per pipe, named pipe_wait_readable or _writable as
/// the hooked functions' would be (the one a pipe's wait queue tells).
#[inline(always)]
fn splice_waits(ctx: *mut c_void, f: &Inflight, ret: i64) {
    if f.wait_on == 0 {
        return;
    }
    let sides = [
        (&f.src, f.off_cpu_ns, f.wait_kstack, WAIT_SRC_RD, WAIT_SRC),
        (&f.dst, f.arg, f.wait_kstack_dst, WAIT_DST_RD, WAIT_DST),
    ];
    for (s, ns, kstack, rd, side) in sides {
        if f.wait_on & side == 0 || ns == 0 || !wait_streamed(s, ns) {
            continue;
        }
        let op = if f.wait_on & rd != 0 {
            Op::WaitReadable
        } else {
            Op::WaitWritable
        };
        side_wait(ctx, s, ret, op as u8, ns, kstack);
    }
}

/// sys_exit of a read() of a notification pipe that returned records (tail-called).
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_read_scan(ctx: BtfTracePointContext) -> i32 {
    let Some(s) = READ_SCAN.get_ptr_mut(0) else {
        return 0;
    };
    let s = unsafe { &mut *s };
    // sys_exit, which tail-called this, does not get to release the record.
    if let Some(fp) = inflight::of(bpf_get_current_pid_tgid() as u32) {
        release(fp);
    }
    loss_records(s.f.arg, s.ret, &mut s.losses);
    let losses = unsafe { core::ptr::read_volatile(&s.losses) };
    ring_op(
        ctx.as_ptr(),
        &s.f,
        &s.f.src,
        s.ret,
        false,
        losses,
        s.wait != 0,
    );
    0
}

/// sys_exit of a splice, tee, vmsplice, sendfile or copy_file_range, after its waits
/// (tail-called).
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_splice(ctx: BtfTracePointContext) -> i32 {
    // The record sys_exit found, and checked is this syscall's.
    let Some(fp) = inflight::of(bpf_get_current_pid_tgid() as u32) else {
        return 0;
    };
    splice_exit(ctx.as_ptr(), unsafe { &*fp }, ctx.arg(1));
    // sys_exit, which tail-called this, does not get to release it.
    release(fp);
    0
}

/// The events [`splice_exit`] streams for `f`: a rejection, or a ring op per pipe. The
/// rejection is told from the result alone: sharing `splice_exit`'s decision (get_pipe_info's
/// refusal, the errnos) took 6.1's verifier from 68k to 115k-158k instructions in
/// sys_exit_splice, for a count only a failed tail call needs.
#[inline(always)]
fn splice_events(f: &Inflight, ret: i64) -> u64 {
    if ret < 0 && (f.src.notif != 0 || f.dst.notif != 0) {
        return 1;
    }
    (f.src.pipe != 0) as u64 + (f.dst.pipe != 0 && f.dst.pipe != f.src.pipe) as u64
}

#[inline(always)]
fn splice_exit(ctx: *mut c_void, f: &Inflight, ret: i64) {
    let kfunc = hooks() & HOOK_GET_PIPE_INFO != 0;
    // With get_pipe_info hooked, its NULL return decides; otherwise infer from the errno the
    // rejection paths return (EINVAL from splice/tee, EBADF from vmsplice, EXDEV when a
    // splice into the notification pipe falls back to its write()).
    let rejected = if kfunc {
        f.rejected_pipe != 0 && ret < 0
    } else {
        (f.src.notif != 0 || f.dst.notif != 0)
            && (ret == -EINVAL || ret == -EBADF || (ret == -EXDEV && f.dst.notif != 0))
    };
    if rejected {
        // The refused pipe: the one get_pipe_info named, else the notification side.
        let dst = if f.rejected_pipe != 0 {
            f.rejected_pipe == f.dst.pipe
        } else {
            f.src.notif == 0
        };
        let s = if dst { &f.dst } else { &f.src };
        emit!(in_task EventKind::SpliceRejected, |e| {
            op_fields(e, f, s, ret);
            e.flags = flags::NOTIFICATION_PIPE | if kfunc { flags::FROM_KFUNC } else { 0 };
            fill_ring(e, s.pipe);
            // Taken where get_pipe_info refused, else (the tracepoint path) here.
            (e.kstack, e.ustack) = if f.rej_kstack != 0 {
                // A kretprobe cannot walk the user stack on some kernels (6.1): the same
                // syscall's, from here.
                let u = if f.rej_ustack == stack_ref::FAILED {
                    stacks::user(ctx, e.ctx)
                } else {
                    f.rej_ustack
                };
                (f.rej_kstack, u)
            } else {
                stacks::pair(ctx, stacks::Budget::Other, true, e.ctx, e.ts_ns)
            };
        });
        return;
    }
    let src = f.src.pipe != 0 && !absorbed(f, &f.src, ret);
    let dst = f.dst.pipe != 0 && f.dst.pipe != f.src.pipe && !absorbed(f, &f.dst, ret);
    if src && dst {
        ring_op_pair(ctx, f, ret);
    } else if src {
        stream_op(ctx, f, &f.src, ret, false, 0, false);
    } else if dst {
        stream_op(ctx, f, &f.dst, ret, true, 0, false);
    }
}

#[inline(always)]
fn pipe2_exit(f: &Inflight, ret: i64) {
    if ret != 0 {
        return;
    }
    let Ok(fds) = (unsafe { bpf_probe_read_user(f.arg as *const [i32; 2]) }) else {
        return;
    };
    let Some(file) = kread::fd_file(fds[0] as i64) else {
        return;
    };
    let Some(p) = kread::file_pipe(file) else {
        return;
    };
    let notif = p.notif || (f.flags & O_NOTIFICATION_PIPE) != 0;
    // Remembered whether or not it is wanted: its address may still name a freed pipe in
    // KNOWN_PIPES (see `kread::file_pipe_cached`).
    kread::remember(&PipeRef { notif, ..p });
    if !pipe_wanted(p.ino, notif) {
        return;
    }
    if !task_wanted((bpf_get_current_pid_tgid() >> 32) as u32) {
        return;
    }
    emit!(in_task EventKind::PipeCreated, |e| {
        e.op = f.op;
        e.pipe = p.pipe;
        e.ino = p.ino;
        e.fd_in = fds[0];
        e.fd_out = fds[1];
        e.ret = f.flags as i64; // pipe2 flags
        if notif {
            e.flags = flags::NOTIFICATION_PIPE;
        }
        fill_ring(e, p.pipe);
    });
}
