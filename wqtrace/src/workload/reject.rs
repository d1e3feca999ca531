//! `reject`: the same eight calls on a notification pipe (the kernel refuses them) and on an
//! ordinary pipe (they succeed). The errno recorded is the one the kernel returned.
//!
//! Per pipe X, in this order (all splice/tee/vmsplice with SPLICE_F_NONBLOCK, 4096 bytes):
//! write(X), vmsplice(→X), tee(X→Q), splice(X→Q), splice(X→/dev/null), splice(file→X),
//! splice(Q→X), tee(Q→X); Q is a helper ordinary pipe, the file a 4 KiB file in /tmp.
//! Before the notification-pipe attempts Q is filled (setup), so "into X" calls have input.

use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};

use anyhow::Context as _;
use serde::Serialize;

use super::Common;
use super::sys::{self, SysResult};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Only the ordinary-pipe half (works on kernels without notification pipes).
    #[arg(long)]
    pub ordinary_only: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// "splice" | "tee" | "vmsplice" | "write"
    pub syscall: &'static str,
    /// e.g. "notification pipe -> /dev/null"
    pub what: String,
    pub fd_in: Option<i32>,
    pub fd_out: Option<i32>,
    /// The pipe under test is the notification pipe.
    pub notification_pipe: bool,
    /// 0 on success.
    pub errno: i32,
    /// "OK", "EINVAL", …
    pub error: &'static str,
    /// Bytes moved on success.
    pub bytes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub scenario: &'static str,
    pub pid: u32,
    pub ok: bool,
    pub tid: u32,
    pub notification_pipe_ino: Option<u64>,
    pub ordinary_pipe_ino: u64,
    /// Helper ordinary pipe Q.
    pub helper_pipe_ino: u64,
    pub ordinary_only: bool,
    pub attempts: Vec<Attempt>,
    /// Notification-pipe attempts that failed (all should).
    pub rejected: u32,
    /// Ordinary-pipe attempts that succeeded (all should).
    pub succeeded: u32,
}

const CHUNK: usize = 4096;

struct Pipe {
    rd: OwnedFd,
    wr: OwnedFd,
}

fn record(
    out: &mut Vec<Attempt>,
    syscall: &'static str,
    what: String,
    fds: (Option<RawFd>, Option<RawFd>),
    notification_pipe: bool,
    r: SysResult,
) {
    let (errno, bytes) = match r {
        Ok(n) => (0, n),
        Err(e) => (e, 0),
    };
    out.push(Attempt {
        syscall,
        what,
        fd_in: fds.0,
        fd_out: fds.1,
        notification_pipe,
        errno,
        error: sys::errno_name(errno),
        bytes,
    });
}

/// The helper pipe, the regular file, /dev/null and the bytes to write.
struct Aux<'a> {
    q: &'a Pipe,
    file: &'a File,
    devnull: &'a File,
    data: &'a [u8],
}

/// Long on purpose: one attempt per syscall of the splice family, in a fixed order the tests
/// compare against.
fn attempts_on(x: &Pipe, name: &str, notif: bool, aux: &Aux<'_>, out: &mut Vec<Attempt>) {
    let Aux {
        q,
        file,
        devnull,
        data,
    } = *aux;
    let nb = libc::SPLICE_F_NONBLOCK;
    let (xr, xw, qr, qw) = (
        x.rd.as_raw_fd(),
        x.wr.as_raw_fd(),
        q.rd.as_raw_fd(),
        q.wr.as_raw_fd(),
    );
    let (f, null) = (file.as_raw_fd(), devnull.as_raw_fd());
    record(
        out,
        "write",
        format!("write -> {name}"),
        (None, Some(xw)),
        notif,
        sys::write(xw, data),
    );
    record(
        out,
        "vmsplice",
        format!("user memory -> {name}"),
        (None, Some(xw)),
        notif,
        sys::vmsplice(xw, data, nb),
    );
    record(
        out,
        "tee",
        format!("{name} -> ordinary pipe"),
        (Some(xr), Some(qw)),
        notif,
        sys::tee(xr, qw, CHUNK, nb),
    );
    record(
        out,
        "splice",
        format!("{name} -> ordinary pipe"),
        (Some(xr), Some(qw)),
        notif,
        sys::splice(xr, None, qw, CHUNK, nb),
    );
    record(
        out,
        "splice",
        format!("{name} -> /dev/null"),
        (Some(xr), Some(null)),
        notif,
        sys::splice(xr, None, null, CHUNK, nb),
    );
    let mut off = 0i64;
    record(
        out,
        "splice",
        format!("regular file -> {name}"),
        (Some(f), Some(xw)),
        notif,
        sys::splice(f, Some(&mut off), xw, CHUNK, nb),
    );
    record(
        out,
        "splice",
        format!("ordinary pipe -> {name}"),
        (Some(qr), Some(xw)),
        notif,
        sys::splice(qr, None, xw, CHUNK, nb),
    );
    record(
        out,
        "tee",
        format!("ordinary pipe -> {name}"),
        (Some(qr), Some(xw)),
        notif,
        sys::tee(qr, xw, CHUNK, nb),
    );
}

fn ordinary() -> anyhow::Result<Pipe> {
    let (rd, wr) = sys::pipe2(libc::O_CLOEXEC).context("pipe2")?;
    Ok(Pipe { rd, wr })
}

/// Long on purpose: a scenario is a script of syscalls, read in order; its summary says what
/// each step did.
pub fn run(ordinary_only: bool) -> anyhow::Result<Summary> {
    // Create the notification pipe first: on a kernel without it, fail before doing anything.
    let notif = if ordinary_only {
        None
    } else {
        let (rd, wr) = sys::notification_pipe()?;
        Some(Pipe { rd, wr })
    };
    let p = ordinary()?;
    let q = ordinary()?;
    let data = vec![0x5au8; CHUNK];
    let path = std::env::temp_dir().join(format!(
        "wqtrace-reject-{}-{}",
        sys::getpid(),
        sys::gettid()
    ));
    // A fresh file of our own (never a name someone planted in /tmp), read back through the
    // same descriptor.
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?
    };
    let _ = std::fs::remove_file(&path);
    file.write_all(&data)?;
    std::io::Seek::rewind(&mut file)?;
    let devnull = std::fs::OpenOptions::new().write(true).open("/dev/null")?;

    let mut s = Summary {
        scenario: "reject",
        pid: sys::getpid(),
        ok: false,
        tid: sys::gettid(),
        notification_pipe_ino: match &notif {
            Some(n) => Some(sys::fstat_ino(&n.rd)?),
            None => None,
        },
        ordinary_pipe_ino: sys::fstat_ino(&p.rd)?,
        helper_pipe_ino: sys::fstat_ino(&q.rd)?,
        ordinary_only,
        attempts: vec![],
        rejected: 0,
        succeeded: 0,
    };
    let aux = Aux {
        q: &q,
        file: &file,
        devnull: &devnull,
        data: &data,
    };
    if let Some(n) = &notif {
        // Setup: input for the "ordinary pipe -> notification pipe" calls.
        for _ in 0..2 {
            sys::write(q.wr.as_raw_fd(), &data)
                .map_err(|e| anyhow::anyhow!("filling the helper pipe: {}", sys::errno_name(e)))?;
        }
        attempts_on(n, "notification pipe", true, &aux, &mut s.attempts);
        // Empty Q again so the ordinary half starts from the same state.
        let mut buf = vec![0u8; CHUNK];
        sys::set_nonblocking(&q.rd, true)?;
        while matches!(sys::read(q.rd.as_raw_fd(), &mut buf), Ok(n) if n > 0) {}
        sys::set_nonblocking(&q.rd, false)?;
    }
    attempts_on(&p, "ordinary pipe", false, &aux, &mut s.attempts);
    s.rejected = s
        .attempts
        .iter()
        .filter(|a| a.notification_pipe && a.errno != 0)
        .count() as u32;
    s.succeeded = s
        .attempts
        .iter()
        .filter(|a| !a.notification_pipe && a.errno == 0 && a.bytes > 0)
        .count() as u32;
    let n_notif = s.attempts.iter().filter(|a| a.notification_pipe).count() as u32;
    let n_ord = s.attempts.len() as u32 - n_notif;
    s.ok = s.rejected == n_notif && s.succeeded == n_ord;
    Ok(s)
}
