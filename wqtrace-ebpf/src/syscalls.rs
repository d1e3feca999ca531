//! The tracepoint path: tp_btf sys_enter/sys_exit. Works on every kernel with BTF, needs neither
//! kprobes nor fentry. At entry it resolves the syscall's fds to pipes and snapshots their rings;
//! at exit it reports what the syscall did to them.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel, bpf_probe_read_user},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use wqtrace_common::{CALIBRATE_FCNTL_CMD, Event, EventKind, Op, flags};

use crate::{
    emit::{emit, now},
    globals::filter,
    kread::{self, PipeRef, fd_pipe},
    maps::{HOOK_GET_PIPE_INFO, INFLIGHT, Inflight, RT_HOOKS, RT_PIPE_FOPS, RUNTIME},
};

// x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).
const NR_READ: u64 = 0;
const NR_WRITE: u64 = 1;
const NR_CLOSE: u64 = 3;
const NR_IOCTL: u64 = 16;
const NR_READV: u64 = 19;
const NR_WRITEV: u64 = 20;
const NR_PIPE: u64 = 22;
const NR_SENDFILE: u64 = 40;
const NR_FCNTL: u64 = 72;
const NR_KEYCTL: u64 = 250;
const NR_SPLICE: u64 = 275;
const NR_TEE: u64 = 276;
const NR_VMSPLICE: u64 = 278;
const NR_PIPE2: u64 = 293;
const NR_COPY_FILE_RANGE: u64 = 326;

const KEYCTL_WATCH_KEY: u64 = 32;
/// _IO('W', 0x60), include/uapi/linux/watch_queue.h
const IOC_WATCH_QUEUE_SET_SIZE: u64 = 0x5760;
/// O_NOTIFICATION_PIPE == O_EXCL on x86_64.
const O_NOTIFICATION_PIPE: u64 = 0o200;
const EINVAL: i64 = 22;
const EBADF: i64 = 9;
const EXDEV: i64 = 18;

/// Syscall argument `n` from the `struct pt_regs` the syscall tracepoints pass. The layout is
/// x86_64 UAPI (arch/x86/include/uapi/asm/ptrace.h), not a kernel-internal struct.
#[inline(always)]
fn sys_arg(regs: u64, n: u32) -> u64 {
    // di, si, dx, r10, r8, r9
    let off = match n {
        0 => 112,
        1 => 104,
        2 => 96,
        3 => 56,
        4 => 72,
        _ => 64,
    };
    unsafe { bpf_probe_read_kernel((regs + off) as *const u64) }.unwrap_or(0)
}

/// Whether the current task passes the task filters (and is not wqtrace itself).
#[inline(always)]
pub fn task_wanted(tgid: u32) -> bool {
    if tgid == filter!(self_tgid) {
        return false;
    }
    let want = filter!(tgid);
    if want != 0 && want != tgid {
        return false;
    }
    let pat: [u8; 16] = unsafe { core::ptr::read_volatile(&raw const crate::globals::FILTER.comm) };
    if pat[0] == 0 {
        return true;
    }
    let comm = aya_ebpf::helpers::bpf_get_current_comm().unwrap_or([0; 16]);
    for i in 0..16 {
        if pat[i] == 0 {
            return true;
        }
        if pat[i] != comm[i] {
            return false;
        }
    }
    true
}

fn op_of(nr: u64) -> Op {
    match nr {
        NR_READ => Op::Read,
        NR_WRITE => Op::Write,
        NR_READV => Op::Readv,
        NR_WRITEV => Op::Writev,
        NR_SPLICE => Op::Splice,
        NR_TEE => Op::Tee,
        NR_VMSPLICE => Op::Vmsplice,
        NR_SENDFILE => Op::Sendfile,
        NR_COPY_FILE_RANGE => Op::CopyFileRange,
        NR_PIPE | NR_PIPE2 => Op::Pipe2,
        NR_CLOSE => Op::Close,
        NR_IOCTL => Op::Ioctl,
        NR_KEYCTL => Op::Keyctl,
        _ => Op::None,
    }
}

#[inline(always)]
fn blank(op: Op) -> Inflight {
    Inflight {
        start_ns: now(),
        off_since: 0,
        off_cpu_ns: 0,
        pipe_in: 0,
        ino_in: 0,
        pipe_out: 0,
        ino_out: 0,
        arg: 0,
        rejected_pipe: 0,
        head_in: 0,
        tail_in: 0,
        head_out: 0,
        tail_out: 0,
        fd_in: -1,
        fd_out: -1,
        op: op as u8,
        notif_in: 0,
        notif_out: 0,
        loss_seen: 0,
        _pad: 0,
    }
}

#[inline(always)]
fn set_in(f: &mut Inflight, fd: u64, p: PipeRef) {
    let r = kread::ring(p.pipe);
    f.fd_in = fd as i32;
    f.pipe_in = p.pipe;
    f.ino_in = p.ino;
    f.notif_in = p.notif as u8;
    f.head_in = r.head;
    f.tail_in = r.tail;
}

#[inline(always)]
fn set_out(f: &mut Inflight, fd: u64, p: PipeRef) {
    let r = kread::ring(p.pipe);
    f.fd_out = fd as i32;
    f.pipe_out = p.pipe;
    f.ino_out = p.ino;
    f.notif_out = p.notif as u8;
    f.head_out = r.head;
    f.tail_out = r.tail;
}

#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter(ctx: BtfTracePointContext) -> i32 {
    let regs: u64 = ctx.arg(0);
    let nr: u64 = ctx.arg(1);
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    let tgid = (pid_tgid >> 32) as u32;

    if nr == NR_FCNTL && tgid == filter!(self_tgid) {
        calibrate(regs);
        return 0;
    }
    let op = op_of(nr);
    if op == Op::None || !task_wanted(tgid) {
        return 0;
    }
    let mut f = blank(op);
    let a0 = sys_arg(regs, 0);
    match nr {
        NR_READ | NR_READV => {
            let Some(p) = fd_pipe(a0 as i64) else {
                return 0;
            };
            set_in(&mut f, a0, p);
            if p.notif {
                let r = kread::ring(p.pipe);
                if r.head != r.tail
                    && kread::buf_flags(p.pipe, r.tail, r.ring_size) & kread::PIPE_BUF_FLAG_LOSS
                        != 0
                {
                    f.loss_seen = 1;
                }
            }
        }
        NR_WRITE | NR_WRITEV | NR_VMSPLICE => {
            let Some(p) = fd_pipe(a0 as i64) else {
                return 0;
            };
            set_out(&mut f, a0, p);
        }
        NR_SPLICE | NR_COPY_FILE_RANGE | NR_TEE | NR_SENDFILE => {
            // splice(in, off_in, out, ...), copy_file_range(in, off_in, out, ...),
            // tee(in, out, ...), sendfile(out, in, ...)
            let (fin, fout) = match nr {
                NR_TEE => (a0, sys_arg(regs, 1)),
                NR_SENDFILE => (sys_arg(regs, 1), a0),
                _ => (a0, sys_arg(regs, 2)),
            };
            let pi = fd_pipe(fin as i64);
            let po = fd_pipe(fout as i64);
            if pi.is_none() && po.is_none() {
                return 0;
            }
            f.fd_in = fin as i32;
            f.fd_out = fout as i32;
            if let Some(p) = pi {
                set_in(&mut f, fin, p);
            }
            if let Some(p) = po {
                set_out(&mut f, fout, p);
            }
        }
        NR_PIPE | NR_PIPE2 => {
            f.arg = a0;
            f.head_in = if nr == NR_PIPE2 {
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
            let Some(p) = fd_pipe(a0 as i64) else {
                return 0;
            };
            set_in(&mut f, a0, p);
            f.arg = cmd;
        }
        NR_KEYCTL => {
            if a0 != KEYCTL_WATCH_KEY {
                return 0;
            }
            let fd = sys_arg(regs, 2);
            let Some(p) = fd_pipe(fd as i64) else {
                return 0;
            };
            set_in(&mut f, fd, p);
            f.arg = sys_arg(regs, 3);
        }
        NR_CLOSE => {
            let Some(p) = fd_pipe(a0 as i64) else {
                return 0;
            };
            emit!(EventKind::PipeReleased, |e| {
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
    let _ = INFLIGHT.insert(tid, f, 0);
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
    if let Some(fop) = kread::rd::<u64>(file, crate::globals::off!(file_f_op)) {
        let _ = RUNTIME.set(RT_PIPE_FOPS, fop, 0);
    }
}

#[inline(always)]
pub fn fill_ring(e: &mut Event, pipe: u64) {
    let r = kread::ring(pipe);
    e.head = r.head;
    e.tail = r.tail;
    e.ring_size = r.ring_size;
    e.max_usage = r.max_usage;
}

#[inline(always)]
fn ring_op(f: &Inflight, ret: i64, out_side: bool) {
    let (pipe, ino, notif, hb, tb) = if out_side {
        (f.pipe_out, f.ino_out, f.notif_out, f.head_out, f.tail_out)
    } else {
        (f.pipe_in, f.ino_in, f.notif_in, f.head_in, f.tail_in)
    };
    emit!(EventKind::RingOp, |e| {
        e.op = f.op;
        e.pipe = pipe;
        e.ino = ino;
        e.ret = ret;
        e.fd_in = f.fd_in;
        e.fd_out = f.fd_out;
        e.head_before = hb;
        e.tail_before = tb;
        e.duration_ns = e.ts_ns.wrapping_sub(f.start_ns);
        if notif != 0 {
            e.flags |= flags::NOTIFICATION_PIPE;
        }
        if f.loss_seen != 0 && !out_side {
            e.flags |= flags::LOSS_SEEN;
        }
        fill_ring(e, pipe);
        let (owner, task) = kread::mutex_owner(pipe);
        if owner != 0 {
            e.owner_tid = owner;
            kread::task_comm(task, &mut e.owner_comm);
        }
    });
}

#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit(ctx: BtfTracePointContext) -> i32 {
    let ret: i64 = ctx.arg(1);
    let tid = bpf_get_current_pid_tgid() as u32;
    let Some(fp) = INFLIGHT.get_ptr(tid) else {
        return 0;
    };
    let f: Inflight = unsafe { *fp };
    let _ = INFLIGHT.remove(tid);
    let op = Op::from_u8(f.op);

    if f.off_cpu_ns > 0 && matches!(op, Op::Read | Op::Readv | Op::Write | Op::Writev) {
        let (pipe, ino, notif) = if matches!(op, Op::Read | Op::Readv) {
            (f.pipe_in, f.ino_in, f.notif_in)
        } else {
            (f.pipe_out, f.ino_out, f.notif_out)
        };
        emit!(EventKind::PipeWait, |e| {
            e.op = f.op;
            e.pipe = pipe;
            e.ino = ino;
            e.ret = ret;
            e.duration_ns = f.off_cpu_ns;
            e.flags = flags::OFF_CPU;
            if notif != 0 {
                e.flags |= flags::NOTIFICATION_PIPE;
            }
            fill_ring(e, pipe);
        });
    }

    match op {
        Op::Read | Op::Readv => ring_op(&f, ret, false),
        Op::Write | Op::Writev => ring_op(&f, ret, true),
        Op::Splice | Op::Tee | Op::Vmsplice | Op::Sendfile | Op::CopyFileRange => {
            splice_exit(&f, ret)
        }
        Op::Pipe2 => pipe2_exit(&f, ret),
        Op::Ioctl => {
            if ret == 0 {
                emit!(EventKind::WatchQueueSized, |e| {
                    e.op = f.op;
                    e.pipe = f.pipe_in;
                    e.ino = f.ino_in;
                    e.fd_in = f.fd_in;
                    e.flags = flags::NOTIFICATION_PIPE;
                    fill_ring(e, f.pipe_in);
                    fill_notes(e, f.pipe_in);
                });
            }
        }
        Op::Keyctl => emit!(EventKind::WatchAdded, |e| {
            e.op = f.op;
            e.pipe = f.pipe_in;
            e.ino = f.ino_in;
            e.fd_in = f.fd_in;
            e.ret = ret;
            e.info = ((f.arg as u32) & 0xff) << 8;
            if f.notif_in != 0 {
                e.flags = flags::NOTIFICATION_PIPE;
            }
            fill_ring(e, f.pipe_in);
        }),
        _ => {}
    }
    0
}

#[inline(always)]
pub fn fill_notes(e: &mut Event, pipe: u64) {
    let wq: u64 = kread::rd(pipe, crate::globals::off!(pipe_watch_queue)).unwrap_or(0);
    if wq != 0 {
        let (nr, used, _) = kread::notes_state(wq);
        e.nr_notes = nr;
        e.notes_in_use = used;
    }
}

#[inline(always)]
fn splice_exit(f: &Inflight, ret: i64) {
    let kfunc = RUNTIME
        .get(RT_HOOKS)
        .map(|h| *h & HOOK_GET_PIPE_INFO != 0)
        .unwrap_or(false);
    // With get_pipe_info hooked, its NULL return decides; otherwise infer from the errno the
    // rejection paths return (EINVAL from splice/tee, EBADF from vmsplice, EXDEV when a
    // splice into the notification pipe falls back to its write()).
    let rejected = if kfunc {
        f.rejected_pipe != 0 && ret < 0
    } else {
        (f.notif_in != 0 || f.notif_out != 0)
            && (ret == -EINVAL || ret == -EBADF || (ret == -EXDEV && f.notif_out != 0))
    };
    if rejected {
        let (pipe, ino) = if f.rejected_pipe != 0 {
            if f.rejected_pipe == f.pipe_out {
                (f.pipe_out, f.ino_out)
            } else {
                (f.rejected_pipe, f.ino_in)
            }
        } else if f.notif_in != 0 {
            (f.pipe_in, f.ino_in)
        } else {
            (f.pipe_out, f.ino_out)
        };
        emit!(EventKind::SpliceRejected, |e| {
            e.op = f.op;
            e.pipe = pipe;
            e.ino = ino;
            e.ret = ret;
            e.fd_in = f.fd_in;
            e.fd_out = f.fd_out;
            e.flags = flags::NOTIFICATION_PIPE | if kfunc { flags::FROM_KFUNC } else { 0 };
            fill_ring(e, pipe);
        });
        return;
    }
    if f.pipe_in != 0 {
        ring_op(f, ret, false);
    }
    if f.pipe_out != 0 && f.pipe_out != f.pipe_in {
        ring_op(f, ret, true);
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
    let notif = p.notif || (f.head_in as u64 & O_NOTIFICATION_PIPE) != 0;
    if !kread::pipe_wanted(p.ino, notif) {
        return;
    }
    kread::remember(&PipeRef { notif, ..p });
    emit!(EventKind::PipeCreated, |e| {
        e.op = f.op;
        e.pipe = p.pipe;
        e.ino = p.ino;
        e.fd_in = fds[0];
        e.fd_out = fds[1];
        e.ret = f.head_in as i64; // pipe2 flags
        if notif {
            e.flags = flags::NOTIFICATION_PIPE;
        }
        fill_ring(e, p.pipe);
    });
}
