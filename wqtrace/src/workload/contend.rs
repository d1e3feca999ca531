//! `contend`: one ordinary pipe, several threads fighting over its mutex.
//!
//! Roles cycle writer, reader, splicer (thread 0 writes, 1 reads, 2 splices, 3 writes, …).
//! Writers write 64..=4096 bytes at a time, readers read up to 4096, the splicer moves data from
//! the pipe into a private pipe (splice pipe→pipe) and on to /dev/null. All I/O blocks, so readers
//! wait on an empty pipe and writers on a full one. After `duration` the writers stop; once they are
//! joined the write end is closed and readers/splicer drain the pipe and see EOF, so every byte
//! written is accounted as read.

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;

use super::Common;
use super::sys;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Number of threads (at least 2).
    #[arg(long, default_value_t = 4)]
    pub threads: u32,
    /// Seconds the writers keep writing.
    #[arg(long, default_value_t = 2.0, value_parser = crate::argvalue::secs)]
    pub duration: f64,
    /// Each writer stops after this many writes, even before DURATION: a volume of events
    /// that does not grow with the machine's speed.
    #[arg(long)]
    pub writes: Option<u64>,
    /// Pin thread i to the i-th CPU this process may run on (modulo their number), so that
    /// several CPUs emit at once whatever the scheduler would have done.
    #[arg(long)]
    pub spread: bool,
}

#[derive(Debug, Clone)]
pub struct Opts {
    pub threads: u32,
    pub duration: Duration,
    pub writes: Option<u64>,
    pub spread: bool,
}

impl Args {
    pub fn opts(&self) -> Opts {
        Opts {
            threads: self.threads,
            duration: Duration::from_secs_f64(self.duration.max(0.0)),
            writes: self.writes,
            spread: self.spread,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Writer,
    Reader,
    Splicer,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThreadSummary {
    pub tid: u32,
    pub role: Role,
    /// The CPU the thread was pinned to (`--spread`).
    pub cpu: Option<u32>,
    /// Successful syscalls (write/read/splice) on the pipe.
    pub ops: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub scenario: &'static str,
    pub pid: u32,
    pub ok: bool,
    pub pipe_ino: u64,
    /// The splicer's private pipe (if there is a splicer).
    pub splice_pipe_ino: Option<u64>,
    pub duration_s: f64,
    pub threads: Vec<ThreadSummary>,
    pub total_bytes_written: u64,
    pub total_bytes_read: u64,
    pub errors: Vec<String>,
}

pub fn role_of(i: u32, threads: u32) -> Role {
    if threads == 2 {
        return if i == 0 { Role::Writer } else { Role::Reader };
    }
    match i % 3 {
        0 => Role::Writer,
        1 => Role::Reader,
        _ => Role::Splicer,
    }
}

fn writer(fd: i32, stop: &AtomicBool, seed: u32, writes: u64) -> (ThreadSummary, Vec<String>) {
    let mut t = ThreadSummary {
        tid: sys::gettid(),
        role: Role::Writer,
        cpu: None,
        ops: 0,
        bytes: 0,
    };
    let buf = vec![0xa5u8; 4096];
    let mut x = seed | 1;
    let mut errors = vec![];
    while !stop.load(Ordering::Relaxed) && t.ops < writes {
        // xorshift32 for sizes 64..=4096
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let len = 64 + (x % (4096 - 64 + 1)) as usize;
        match sys::write(fd, &buf[..len]) {
            Ok(n) => {
                t.ops += 1;
                t.bytes += n as u64;
            }
            Err(libc::EINTR) => {}
            Err(e) => {
                errors.push(format!("write: {}", sys::errno_name(e)));
                break;
            }
        }
    }
    (t, errors)
}

fn reader(fd: i32) -> (ThreadSummary, Vec<String>) {
    let mut t = ThreadSummary {
        tid: sys::gettid(),
        role: Role::Reader,
        cpu: None,
        ops: 0,
        bytes: 0,
    };
    let mut buf = vec![0u8; 4096];
    let mut errors = vec![];
    loop {
        match sys::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                t.ops += 1;
                t.bytes += n as u64;
            }
            Err(libc::EINTR) => {}
            Err(e) => {
                errors.push(format!("read: {}", sys::errno_name(e)));
                break;
            }
        }
    }
    (t, errors)
}

fn splicer(
    fd: i32,
    mid: (OwnedFd, OwnedFd),
    devnull: std::fs::File,
) -> (ThreadSummary, Vec<String>) {
    let mut t = ThreadSummary {
        tid: sys::gettid(),
        role: Role::Splicer,
        cpu: None,
        ops: 0,
        bytes: 0,
    };
    let (mr, mw) = (mid.0.as_raw_fd(), mid.1.as_raw_fd());
    let null = devnull.as_raw_fd();
    let mut errors = vec![];
    loop {
        match sys::splice(fd, None, mw, 65536, 0) {
            Ok(0) => break,
            Ok(n) => {
                t.ops += 1;
                t.bytes += n as u64;
                let mut left = n;
                while left > 0 {
                    match sys::splice(mr, None, null, left, 0) {
                        Ok(m) if m > 0 => left -= m,
                        Err(libc::EINTR) => {}
                        r => {
                            errors.push(format!("splice to /dev/null: {r:?}"));
                            return (t, errors);
                        }
                    }
                }
            }
            Err(libc::EINTR) => {}
            Err(e) => {
                errors.push(format!("splice: {}", sys::errno_name(e)));
                break;
            }
        }
    }
    (t, errors)
}

/// Runs `work` on the `nth` allowed CPU if given. A thread that cannot be pinned still does its
/// work (a reader that quit would leave its writer blocked) and reports why it is not pinned.
fn pinned(
    nth: Option<usize>,
    work: impl FnOnce() -> (ThreadSummary, Vec<String>),
) -> (ThreadSummary, Vec<String>) {
    let cpu = nth.map(sys::pin_to_nth_allowed_cpu);
    let (mut t, mut errors) = work();
    match cpu {
        Some(Ok(c)) => t.cpu = Some(c),
        Some(Err(e)) => errors.push(format!("pin to a CPU: {e}")),
        None => {}
    }
    (t, errors)
}

pub fn run(opts: &Opts) -> anyhow::Result<Summary> {
    if opts.threads < 2 {
        bail!("contend needs at least 2 threads (a writer and a reader)");
    }
    let (rfd, wfd) = sys::pipe2(libc::O_CLOEXEC).context("pipe2")?;
    let pipe_ino = sys::fstat_ino(&rfd)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (rraw, wraw) = (rfd.as_raw_fd(), wfd.as_raw_fd());
    let mut writers = vec![];
    let mut others = vec![];
    let mut splice_pipe_ino = None;
    let t0 = Instant::now();
    for i in 0..opts.threads {
        let role = role_of(i, opts.threads);
        let name = format!("wq-{role:?}-{i}").to_lowercase();
        let b = std::thread::Builder::new().name(name);
        let spread = opts.spread.then_some(i as usize);
        match role {
            Role::Writer => {
                let stop = stop.clone();
                let (seed, writes) = (0x9e37_79b9 ^ (i + 1), opts.writes.unwrap_or(u64::MAX));
                writers
                    .push(b.spawn(move || pinned(spread, || writer(wraw, &stop, seed, writes)))?);
            }
            Role::Reader => others.push(b.spawn(move || pinned(spread, || reader(rraw)))?),
            Role::Splicer => {
                let mid = sys::pipe2(libc::O_CLOEXEC).context("pipe2")?;
                splice_pipe_ino.get_or_insert(sys::fstat_ino(&mid.0)?);
                let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
                others.push(b.spawn(move || pinned(spread, || splicer(rraw, mid, null)))?);
            }
        }
    }
    // Until the duration is up or every writer has done its writes.
    let deadline = t0 + opts.duration;
    while Instant::now() < deadline && !writers.iter().all(|w| w.is_finished()) {
        std::thread::sleep(
            deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(10)),
        );
    }
    stop.store(true, Ordering::Relaxed);
    let mut threads = vec![];
    let mut errors = vec![];
    for h in writers {
        let (t, e) = h.join().map_err(|_| anyhow::anyhow!("writer panicked"))?;
        threads.push(t);
        errors.extend(e);
    }
    // No writer left: readers and the splicer drain the pipe, then read() returns 0.
    drop(wfd);
    for h in others {
        let (t, e) = h.join().map_err(|_| anyhow::anyhow!("reader panicked"))?;
        threads.push(t);
        errors.extend(e);
    }
    drop(rfd);
    let duration_s = t0.elapsed().as_secs_f64();
    let written = threads
        .iter()
        .filter(|t| t.role == Role::Writer)
        .map(|t| t.bytes)
        .sum();
    let read = threads
        .iter()
        .filter(|t| t.role != Role::Writer)
        .map(|t| t.bytes)
        .sum();
    Ok(Summary {
        scenario: "contend",
        pid: sys::getpid(),
        ok: errors.is_empty() && written == read && written > 0,
        pipe_ino,
        splice_pipe_ino,
        duration_s,
        threads,
        total_bytes_written: written,
        total_bytes_read: read,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_cycle_and_two_threads_get_a_reader() {
        assert_eq!(role_of(0, 2), Role::Writer);
        assert_eq!(role_of(1, 2), Role::Reader);
        let r: Vec<Role> = (0..4).map(|i| role_of(i, 4)).collect();
        assert_eq!(r, [Role::Writer, Role::Reader, Role::Splicer, Role::Writer]);
    }
}
