//! The x86_64 syscall ABI the tracepoints see: syscall numbers, the uapi constants the hooks
//! test arguments against, and where `struct pt_regs` keeps the arguments.

use wqtrace_common::Op;

// x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).
pub(super) const NR_READ: u64 = 0;
pub(super) const NR_WRITE: u64 = 1;
pub(super) const NR_CLOSE: u64 = 3;
pub(super) const NR_IOCTL: u64 = 16;
pub(super) const NR_READV: u64 = 19;
pub(super) const NR_WRITEV: u64 = 20;
pub(super) const NR_PIPE: u64 = 22;
pub(super) const NR_SENDFILE: u64 = 40;
pub(super) const NR_FCNTL: u64 = 72;
pub(super) const NR_KEYCTL: u64 = 250;
pub(super) const NR_SPLICE: u64 = 275;
pub(super) const NR_TEE: u64 = 276;
pub(super) const NR_VMSPLICE: u64 = 278;
pub(super) const NR_PIPE2: u64 = 293;
pub(super) const NR_COPY_FILE_RANGE: u64 = 326;

pub(super) const KEYCTL_WATCH_KEY: u64 = 32;
/// _IO('W', 0x60), include/uapi/linux/watch_queue.h
pub(super) const IOC_WATCH_QUEUE_SET_SIZE: u64 = 0x5760;
/// O_NOTIFICATION_PIPE == O_EXCL on x86_64.
pub(super) const O_NOTIFICATION_PIPE: u32 = 0o200;
pub(super) const EINVAL: i64 = 22;
pub(super) const EBADF: i64 = 9;
pub(super) const EXDEV: i64 = 18;

/// Syscall argument `n` from the `struct pt_regs` the syscall tracepoints pass. The layout is
/// x86_64 UAPI (arch/x86/include/uapi/asm/ptrace.h), not a kernel-internal struct. tp_btf
/// hands the programs a BTF-typed pointer, so these are plain loads the verifier checks
/// against `struct pt_regs`, not probe-read helper calls.
#[inline(always)]
pub(super) fn sys_arg(regs: u64, n: u32) -> u64 {
    // di, si, dx, r10, r8, r9
    let off = match n {
        0 => 112,
        1 => 104,
        2 => 96,
        3 => 56,
        4 => 72,
        _ => 64,
    };
    unsafe { core::ptr::read_volatile((regs + off) as *const u64) }
}

/// `orig_ax`: the syscall number, at exit too.
#[inline(always)]
pub(super) fn sys_nr(regs: u64) -> u64 {
    unsafe { core::ptr::read_volatile((regs + 120) as *const u64) }
}

/// Whether a keyctl or ioctl is the one kind traced (KEYCTL_WATCH_KEY,
/// IOC_WATCH_QUEUE_SET_SIZE), from its registers at entry or exit; every other syscall of
/// `op_of` is.
#[inline(always)]
pub(super) fn traced_kind(nr: u64, regs: u64) -> bool {
    match nr {
        NR_KEYCTL => sys_arg(regs, 0) == KEYCTL_WATCH_KEY,
        NR_IOCTL => sys_arg(regs, 1) == IOC_WATCH_QUEUE_SET_SIZE,
        _ => true,
    }
}

pub(super) fn op_of(nr: u64) -> Op {
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
