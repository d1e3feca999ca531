//! Raw syscalls (libc) and the watch_queue uapi, for the workload scenarios.
//!
//! Constants from include/uapi/linux/watch_queue.h and include/uapi/linux/keyctl.h.

use std::io;
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};

/// `pipe2()` flag selecting a notification pipe (== O_EXCL, 0o200 on x86_64).
pub const O_NOTIFICATION_PIPE: libc::c_int = libc::O_EXCL;
/// `_IO('W', 0x60)`: set the queue size (in notes).
pub const IOC_WATCH_QUEUE_SET_SIZE: libc::c_ulong = 0x5760;
/// `_IO('W', 0x61)`: set the filter.
pub const IOC_WATCH_QUEUE_SET_FILTER: libc::c_ulong = 0x5761;

pub const WATCH_INFO_LENGTH: u32 = 0x0000_007f;
pub const WATCH_INFO_ID: u32 = 0x0000_ff00;
pub const WATCH_INFO_ID_SHIFT: u32 = 8;

pub const WATCH_TYPE_META: u32 = 0;
pub const WATCH_TYPE_KEY_NOTIFY: u32 = 1;
pub const WATCH_META_REMOVAL_NOTIFICATION: u32 = 0;
pub const WATCH_META_LOSS_NOTIFICATION: u32 = 1;

pub const NOTIFY_KEY_INSTANTIATED: u32 = 0;
pub const NOTIFY_KEY_UPDATED: u32 = 1;
pub const NOTIFY_KEY_LINKED: u32 = 2;
pub const NOTIFY_KEY_UNLINKED: u32 = 3;
pub const NOTIFY_KEY_CLEARED: u32 = 4;
pub const NOTIFY_KEY_REVOKED: u32 = 5;
pub const NOTIFY_KEY_INVALIDATED: u32 = 6;
pub const NOTIFY_KEY_SETATTR: u32 = 7;

/// Kernel: WATCH_QUEUE_NOTE_SIZE (each note slot in the preallocated pages).
pub const WATCH_QUEUE_NOTE_SIZE: u32 = 128;

pub const KEY_SPEC_PROCESS_KEYRING: i32 = -2;
pub const KEYCTL_UPDATE: libc::c_long = 2;
pub const KEYCTL_REVOKE: libc::c_long = 3;
pub const KEYCTL_SETPERM: libc::c_long = 5;
pub const KEYCTL_LINK: libc::c_long = 8;
pub const KEYCTL_UNLINK: libc::c_long = 9;
pub const KEYCTL_WATCH_KEY: libc::c_long = 32;
/// KEY_POS_ALL | KEY_USR_ALL
pub const KEY_PERM_POS_USR_ALL: u32 = 0x3f3f_0000;

pub fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

pub fn errno_name(e: i32) -> &'static str {
    if e == 0 {
        return "OK";
    }
    crate::text::errno_name(e).unwrap_or("E?")
}

pub fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

pub fn getpid() -> u32 {
    std::process::id()
}

fn cvt(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `(read end, write end)`.
pub fn pipe2(flags: libc::c_int) -> io::Result<(OwnedFd, OwnedFd)> {
    crate::kernel::pipe2(flags)
}

/// The message for a kernel that cannot make notification pipes (callers print it as one line).
pub fn unavailable_message(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOPKG) => "notification pipes unavailable: kernel built without \
             CONFIG_WATCH_QUEUE (pipe2(O_NOTIFICATION_PIPE) failed with ENOPKG)"
            .to_string(),
        Some(n) => format!(
            "notification pipes unavailable: pipe2(O_NOTIFICATION_PIPE) failed with {} ({e})",
            errno_name(n)
        ),
        None => format!("notification pipes unavailable: {e}"),
    }
}

/// A notification pipe (blocking), or the one-line "unavailable" error.
pub fn notification_pipe() -> anyhow::Result<(OwnedFd, OwnedFd)> {
    pipe2(O_NOTIFICATION_PIPE | libc::O_CLOEXEC)
        .map_err(|e| anyhow::anyhow!(unavailable_message(&e)))
}

pub fn ioctl_set_size(fd: &OwnedFd, nr_notes: u32) -> io::Result<()> {
    // SAFETY: IOC_WATCH_QUEUE_SET_SIZE takes an integer argument.
    cvt(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            IOC_WATCH_QUEUE_SET_SIZE,
            nr_notes as libc::c_ulong,
        )
    } as libc::c_long)
    .map(drop)
}

/// `struct watch_notification_filter` with one `watch_notification_type_filter`.
#[repr(C)]
struct Filter1 {
    nr_filters: u32,
    reserved: u32,
    r#type: u32,
    info_filter: u32,
    info_mask: u32,
    subtype_filter: [u32; 8],
}

/// Accept only notifications of `ty` whose subtype is in `subtypes` (meta records such as watch
/// removal are posted around the filter).
pub fn ioctl_set_filter(fd: &OwnedFd, ty: u32, subtypes: &[u32]) -> io::Result<()> {
    let mut f = Filter1 {
        nr_filters: 1,
        reserved: 0,
        r#type: ty,
        info_filter: 0,
        info_mask: 0,
        subtype_filter: [0; 8],
    };
    for s in subtypes {
        f.subtype_filter[(s / 32) as usize] |= 1 << (s % 32);
    }
    // SAFETY: the filter struct outlives the call and has the uapi layout.
    cvt(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            IOC_WATCH_QUEUE_SET_FILTER,
            &f as *const Filter1,
        )
    } as libc::c_long)
    .map(drop)
}

pub fn add_key(ty: &str, desc: &str, payload: Option<&[u8]>, keyring: i32) -> io::Result<i32> {
    let ty = std::ffi::CString::new(ty).expect("no NUL");
    let desc = std::ffi::CString::new(desc).expect("no NUL");
    let (p, n) = payload.map_or((std::ptr::null(), 0), |p| (p.as_ptr(), p.len()));
    // SAFETY: valid C strings and payload buffer for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            ty.as_ptr(),
            desc.as_ptr(),
            p,
            n,
            keyring as libc::c_long,
        )
    };
    cvt(r).map(|s| s as i32)
}

/// `keyctl(op, a2, a3, a4, a5)`.
pub fn keyctl(
    op: libc::c_long,
    a2: libc::c_long,
    a3: libc::c_long,
    a4: libc::c_long,
) -> io::Result<libc::c_long> {
    // SAFETY: the ops used here take integer arguments, or a pointer the caller keeps alive.
    cvt(unsafe { libc::syscall(libc::SYS_keyctl, op, a2, a3, a4, 0 as libc::c_long) })
}

pub fn key_update(key: i32, payload: &[u8]) -> io::Result<()> {
    keyctl(
        KEYCTL_UPDATE,
        key as libc::c_long,
        payload.as_ptr() as libc::c_long,
        payload.len() as libc::c_long,
    )
    .map(drop)
}

/// `keyctl(KEYCTL_WATCH_KEY, key, fd, watch_id)`; watch_id -1 removes the watch.
pub fn watch_key(key: i32, fd: &OwnedFd, watch_id: i32) -> io::Result<()> {
    keyctl(
        KEYCTL_WATCH_KEY,
        key as libc::c_long,
        fd.as_raw_fd() as libc::c_long,
        watch_id as libc::c_long,
    )
    .map(drop)
}

pub fn fstat_ino(fd: &OwnedFd) -> io::Result<u64> {
    // SAFETY: st is written by fstat.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        cvt(libc::fstat(fd.as_raw_fd(), &mut st) as libc::c_long)?;
        Ok(st.st_ino)
    }
}

pub fn pipe_size_bytes(fd: &OwnedFd) -> io::Result<u64> {
    // SAFETY: F_GETPIPE_SZ takes no argument.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ) } as libc::c_long)
        .map(|n| n as u64)
}

pub fn set_nonblocking(fd: &OwnedFd, on: bool) -> io::Result<()> {
    // SAFETY: plain fcntl flag manipulation on a descriptor we own.
    unsafe {
        let fl = cvt(libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) as libc::c_long)? as libc::c_int;
        let fl = if on {
            fl | libc::O_NONBLOCK
        } else {
            fl & !libc::O_NONBLOCK
        };
        cvt(libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl) as libc::c_long).map(drop)
    }
}

pub fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as u32 } else { 4096 }
}

/// What `watch_queue_set_size()` makes of `nr_notes`: (pages, usable notes, ring slots).
/// It allocates whole pages of 128-byte notes, then sizes the ring to the next power of two.
pub fn watch_queue_geometry(nr_notes: u32, page_size: u32) -> (u32, u32, u32) {
    let per_page = page_size / WATCH_QUEUE_NOTE_SIZE;
    let pages = nr_notes.div_ceil(per_page);
    let notes = pages * per_page;
    (pages, notes, notes.next_power_of_two())
}

/// `Ok(bytes)` or `Err(errno)`.
pub type SysResult = Result<usize, i32>;

fn sres(r: libc::ssize_t) -> SysResult {
    if r < 0 { Err(errno()) } else { Ok(r as usize) }
}

pub fn read(fd: RawFd, buf: &mut [u8]) -> SysResult {
    // SAFETY: buf is valid for writes of its length.
    sres(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

pub fn write(fd: RawFd, buf: &[u8]) -> SysResult {
    // SAFETY: buf is valid for reads of its length.
    sres(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })
}

pub fn splice(
    fd_in: RawFd,
    off_in: Option<&mut i64>,
    fd_out: RawFd,
    len: usize,
    flags: u32,
) -> SysResult {
    let off = off_in.map_or(std::ptr::null_mut(), |o| o as *mut i64);
    // SAFETY: off is null or points to a live i64.
    sres(unsafe { libc::splice(fd_in, off, fd_out, std::ptr::null_mut(), len, flags) })
}

pub fn tee(fd_in: RawFd, fd_out: RawFd, len: usize, flags: u32) -> SysResult {
    // SAFETY: plain descriptors.
    sres(unsafe { libc::tee(fd_in, fd_out, len, flags) })
}

pub fn vmsplice(fd: RawFd, buf: &[u8], flags: u32) -> SysResult {
    let iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: one iovec over a live buffer. Without SPLICE_F_GIFT the pages are copied or
    // referenced; callers keep `buf` alive and unchanged until the data has been consumed.
    sres(unsafe { libc::vmsplice(fd, &iov, 1, flags) })
}

/// True if a read on `fd` would block right now.
pub fn would_block(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, zero timeout.
    unsafe { libc::poll(&mut p, 1, 0) == 0 }
}

/// True if `fd` becomes readable (or hung up) within `timeout_ms`.
pub fn readable_within(fd: RawFd, timeout_ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd.
    unsafe { libc::poll(&mut p, 1, timeout_ms) > 0 }
}

/// Pins the calling thread to the `n`-th (modulo their number) of the CPUs it may run on, so that
/// threads 0, 1, … land on different CPUs; returns the CPU.
pub fn pin_to_nth_allowed_cpu(n: usize) -> io::Result<u32> {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: cpu_set_t is plain data, written by sched_getaffinity and read with CPU_ISSET.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        cvt(libc::sched_getaffinity(0, size, &mut set) as libc::c_long)?;
        let allowed: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect();
        let Some(&cpu) = allowed.get(n % allowed.len().max(1)) else {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        };
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        cvt(libc::sched_setaffinity(0, size, &one) as libc::c_long)?;
        Ok(cpu as u32)
    }
}

/// Switches the calling thread to SCHED_FIFO (lowest priority) or back to SCHED_OTHER.
pub fn set_sched_fifo(on: bool) -> io::Result<()> {
    let (policy, prio) = if on {
        (libc::SCHED_FIFO, 1)
    } else {
        (libc::SCHED_OTHER, 0)
    };
    let p = libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: pid 0 is the calling thread; p outlives the call.
    cvt(unsafe { libc::sched_setscheduler(0, policy, &p) } as libc::c_long).map(drop)
}
