//! The pipe ping-pong workload: two processes, two pipes, fixed-size messages bounced back and
//! forth; one round trip = one write + one read on each side. Run as its own process
//! (`xtask bench --pingpong SIZE --secs S`) so its comm and pids are its own.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

fn pipe() -> anyhow::Result<[i32; 2]> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid 2-int buffer.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe");
    }
    Ok(fds)
}

/// Writes all of buf; false on error.
fn write_all(fd: i32, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n <= 0 {
            return false;
        }
        buf = &buf[n as usize..];
    }
    true
}

/// Fills buf; false on EOF or error.
fn read_exact(fd: i32, buf: &mut [u8]) -> bool {
    let mut off = 0;
    while off < buf.len() {
        // SAFETY: the tail of buf is valid for writing.
        let n = unsafe { libc::read(fd, buf[off..].as_mut_ptr().cast(), buf.len() - off) };
        if n <= 0 {
            return false;
        }
        off += n as usize;
    }
    true
}

/// Keeps this process (and the child it forks) on the first CPU it may run on.
fn pin_to_one_cpu() -> anyhow::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read and write `set`.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(0, size, &mut set) != 0 {
            return Err(std::io::Error::last_os_error()).context("sched_getaffinity");
        }
        let cpu = (0..libc::CPU_SETSIZE as usize)
            .find(|&c| libc::CPU_ISSET(c, &set))
            .context("no CPU in this process's affinity mask")?;
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size, &set) != 0 {
            return Err(std::io::Error::last_os_error()).context("sched_setaffinity");
        }
    }
    Ok(())
}

/// Runs the ping-pong for `secs` seconds, both processes on one CPU with `one_cpu`; returns
/// (round trips, elapsed seconds).
pub fn run(size: usize, secs: f64, one_cpu: bool) -> anyhow::Result<(u64, f64)> {
    if size == 0 {
        bail!("message size must be > 0");
    }
    if one_cpu {
        pin_to_one_cpu()?;
    }
    let ab = pipe()?;
    let ba = pipe()?;
    // SAFETY: this process is single-threaded (spawned for this alone).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context("fork");
    }
    if pid == 0 {
        // Child: echo every message back until EOF.
        unsafe {
            libc::close(ab[1]);
            libc::close(ba[0]);
        }
        let mut buf = vec![0u8; size];
        while read_exact(ab[0], &mut buf) && write_all(ba[1], &buf) {}
        unsafe { libc::_exit(0) };
    }
    unsafe {
        libc::close(ab[0]);
        libc::close(ba[1]);
    }
    let msg = vec![0x5au8; size];
    let mut buf = vec![0u8; size];
    let limit = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut trips = 0u64;
    let ok = loop {
        if !write_all(ab[1], &msg) || !read_exact(ba[0], &mut buf) {
            break false;
        }
        trips += 1;
        if trips.is_multiple_of(64) && start.elapsed() >= limit {
            break true;
        }
    };
    let elapsed = start.elapsed().as_secs_f64();
    unsafe {
        libc::close(ab[1]);
        libc::close(ba[0]);
        let mut st = 0;
        libc::waitpid(pid, &mut st, 0);
    }
    if !ok {
        bail!("ping-pong: the echo process went away after {trips} round trips");
    }
    Ok((trips, elapsed))
}
