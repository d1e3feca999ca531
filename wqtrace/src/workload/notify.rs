//! `notify`: key notifications through a notification pipe.
//!
//! A fresh user key K and keyring R (both in the process keyring) are watched through one
//! notification pipe (K with `watch_id`, R with `watch_id + 1`). Then, with a reader thread blocked
//! in read() on the pipe: `count` × KEYCTL_UPDATE on K (NOTIFY_KEY_UPDATED on K), KEYCTL_SETPERM
//! on K (NOTIFY_KEY_SETATTR), KEYCTL_LINK K into R (NOTIFY_KEY_LINKED on R, aux = K),
//! KEYCTL_UNLINK K from R (NOTIFY_KEY_UNLINKED on R), KEYCTL_REVOKE K (NOTIFY_KEY_REVOKED), and
//! finally the watch on R is removed (a WATCH_META_REMOVAL_NOTIFICATION record, 16 bytes, id = R).
//! With `--filter`, the queue only accepts key UPDATED and REVOKED notifications (meta records are
//! posted around the filter), so SETATTR/LINKED/UNLINKED are filtered out in the kernel.

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

use super::Common;
use super::notes::{self, Note};
use super::sys;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Number of KEYCTL_UPDATE operations.
    #[arg(long, default_value_t = 8)]
    pub count: u32,
    /// Queue size given to IOC_WATCH_QUEUE_SET_SIZE (1..=512).
    #[arg(long, default_value_t = 256)]
    pub nr_notes: u32,
    /// Install a filter: only key UPDATED and REVOKED notifications pass.
    #[arg(long)]
    pub filter: bool,
    /// Watch id of the key's watch (the keyring's is this + 1).
    #[arg(long, default_value_t = 7)]
    pub watch_id: u8,
    /// How long to wait for the reader to see every expected notification.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Also watch the key from N more notification pipes (never read), created after the main
    /// watch: the kernel puts them ahead of it on the key's watch list.
    #[arg(long, default_value_t = 0)]
    pub extra_watchers: u32,
}

#[derive(Debug, Clone)]
pub struct Opts {
    pub count: u32,
    pub nr_notes: u32,
    pub filter: bool,
    pub watch_id: u8,
    pub timeout: Duration,
    pub extra_watchers: u32,
}

impl Args {
    pub fn opts(&self) -> Opts {
        Opts {
            count: self.count,
            nr_notes: self.nr_notes,
            filter: self.filter,
            watch_id: self.watch_id,
            timeout: Duration::from_millis(self.timeout_ms),
            extra_watchers: self.extra_watchers,
        }
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Ops {
    pub update: u32,
    pub setperm: u32,
    pub link: u32,
    pub unlink: u32,
    pub revoke: u32,
    /// Watch removals (KEYCTL_WATCH_KEY with watch_id -1).
    pub unwatch: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct FilterSpec {
    pub r#type: u32,
    pub subtypes: Vec<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub scenario: &'static str,
    pub pid: u32,
    pub ok: bool,
    /// Thread that created the pipe and did the key operations.
    pub tid: u32,
    pub pipe_ino: u64,
    pub read_fd: i32,
    pub write_fd: i32,
    /// Requested queue size.
    pub nr_notes: u32,
    /// What the kernel made of it: whole pages of 128-byte notes.
    pub nr_notes_effective: u32,
    /// Ring slots (next power of two of nr_notes_effective).
    pub ring_size: u32,
    /// F_GETPIPE_SZ (pages charged × page size).
    pub pipe_size_bytes: u64,
    pub key_serial: i32,
    pub keyring_serial: i32,
    pub watch_id: u32,
    pub keyring_watch_id: u32,
    pub filter: Option<FilterSpec>,
    pub ops: Ops,
    /// Records the reader should see (excluding loss records).
    pub expected_notifications: u32,
    /// In read order.
    pub notifications: Vec<Note>,
    /// Records read, excluding loss records.
    pub notifications_read: u32,
    pub loss_records: u32,
    pub reader_tid: u32,
    pub reader_reads: u32,
    /// Reads that found the pipe empty and had to wait (poll said not readable just before).
    pub reader_blocked_reads: u32,
    /// The reader gave up waiting (the write end was closed to wake it).
    pub timed_out: bool,
    pub errors: Vec<String>,
    /// Inodes of the --extra-watchers pipes.
    pub extra_watcher_inos: Vec<u64>,
}

struct ReaderResult {
    tid: u32,
    notes: Vec<Note>,
    reads: u32,
    blocked_reads: u32,
    errors: Vec<String>,
}

/// Reads records until `expected` non-loss records arrived, or EOF.
fn reader(fd: i32, expected: u32, tid_tx: mpsc::Sender<u32>) -> ReaderResult {
    let mut r = ReaderResult {
        tid: sys::gettid(),
        notes: Vec::new(),
        reads: 0,
        blocked_reads: 0,
        errors: Vec::new(),
    };
    let _ = tid_tx.send(r.tid);
    let mut buf = [0u8; 4096];
    let mut got = 0u32;
    while got < expected {
        if sys::would_block(fd) {
            r.blocked_reads += 1;
        }
        match sys::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                r.reads += 1;
                match notes::decode_notes(&buf[..n]) {
                    Ok(notes) => {
                        got += notes.iter().filter(|n| !n.is_loss()).count() as u32;
                        r.notes.extend(notes);
                    }
                    Err(e) => {
                        r.errors.push(format!("decoding {n} bytes: {e:?}"));
                        break;
                    }
                }
            }
            Err(libc::EINTR) => {}
            Err(e) => {
                r.errors.push(format!("read: {}", sys::errno_name(e)));
                break;
            }
        }
    }
    r
}

fn expected(opts: &Opts) -> u32 {
    if opts.filter {
        // UPDATED × count, REVOKED, and the (unfilterable) removal record.
        opts.count + 2
    } else {
        // UPDATED × count, SETATTR, LINKED, UNLINKED, REVOKED, removal.
        opts.count + 5
    }
}

/// Sequence number so that concurrent/repeated runs in one process use distinct key names.
static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

pub fn run(opts: &Opts) -> anyhow::Result<Summary> {
    let (rfd, wfd) = sys::notification_pipe()?;
    run_on(opts, rfd, wfd)
}

/// Long on purpose: a scenario is a script of syscalls, read in order; its summary says what
/// each step did.
fn run_on(opts: &Opts, rfd: OwnedFd, wfd: OwnedFd) -> anyhow::Result<Summary> {
    let pid = sys::getpid();
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    sys::ioctl_set_size(&rfd, opts.nr_notes)
        .with_context(|| format!("IOC_WATCH_QUEUE_SET_SIZE({})", opts.nr_notes))?;
    let filter = if opts.filter {
        let subtypes = vec![sys::NOTIFY_KEY_UPDATED, sys::NOTIFY_KEY_REVOKED];
        sys::ioctl_set_filter(&rfd, sys::WATCH_TYPE_KEY_NOTIFY, &subtypes)
            .context("IOC_WATCH_QUEUE_SET_FILTER")?;
        Some(FilterSpec {
            r#type: sys::WATCH_TYPE_KEY_NOTIFY,
            subtypes,
        })
    } else {
        None
    };
    let (_, effective, ring) = sys::watch_queue_geometry(opts.nr_notes, sys::page_size());
    let key = sys::add_key(
        "user",
        &format!("wqtrace:notify:{pid}:{seq}"),
        Some(b"v0"),
        sys::KEY_SPEC_PROCESS_KEYRING,
    )
    .context("add_key(user)")?;
    let keyring = sys::add_key(
        "keyring",
        &format!("wqtrace:notify-ring:{pid}:{seq}"),
        None,
        sys::KEY_SPEC_PROCESS_KEYRING,
    )
    .context("add_key(keyring)")?;
    let watch_id = u32::from(opts.watch_id);
    let ring_watch_id = (watch_id + 1) & 0xff;
    let mut s = Summary {
        scenario: "notify",
        pid,
        ok: false,
        tid: sys::gettid(),
        pipe_ino: sys::fstat_ino(&rfd)?,
        read_fd: rfd.as_raw_fd(),
        write_fd: wfd.as_raw_fd(),
        nr_notes: opts.nr_notes,
        nr_notes_effective: effective,
        ring_size: ring,
        pipe_size_bytes: sys::pipe_size_bytes(&rfd).unwrap_or(0),
        key_serial: key,
        keyring_serial: keyring,
        watch_id,
        keyring_watch_id: ring_watch_id,
        filter,
        ops: Ops::default(),
        expected_notifications: expected(opts),
        notifications: vec![],
        notifications_read: 0,
        loss_records: 0,
        reader_tid: 0,
        reader_reads: 0,
        reader_blocked_reads: 0,
        timed_out: false,
        errors: vec![],
        extra_watcher_inos: vec![],
    };
    if let Err(e) = sys::watch_key(key, &rfd, watch_id as i32)
        .and_then(|()| sys::watch_key(keyring, &rfd, ring_watch_id as i32))
    {
        unlink_from_process_keyring(&[key, keyring]);
        return Err(e).context("KEYCTL_WATCH_KEY");
    }
    let mut extra = Vec::new();
    for _ in 0..opts.extra_watchers {
        let watcher = sys::notification_pipe().and_then(|(r, w)| {
            sys::ioctl_set_size(&r, opts.nr_notes)?;
            sys::watch_key(key, &r, watch_id as i32)?;
            s.extra_watcher_inos.push(sys::fstat_ino(&r)?);
            Ok((r, w))
        });
        match watcher {
            Ok(p) => extra.push(p),
            Err(e) => {
                unlink_from_process_keyring(&[key, keyring]);
                return Err(e).context("extra watcher");
            }
        }
    }

    let (tid_tx, tid_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let raw = rfd.as_raw_fd();
    let want = s.expected_notifications;
    let handle = std::thread::Builder::new()
        .name("wq-reader".into())
        .spawn(move || {
            let r = reader(raw, want, tid_tx);
            let _ = done_tx.send(());
            r
        })?;
    s.reader_tid = tid_rx.recv().unwrap_or(0);
    // Give the reader a moment to block in read() before the first notification.
    std::thread::sleep(Duration::from_millis(20));

    let mut err = |what: &str, e: std::io::Error| s.errors.push(format!("{what}: {e}"));
    let mut ops = Ops::default();
    for i in 0..opts.count {
        match sys::key_update(key, format!("v{}", i + 1).as_bytes()) {
            Ok(()) => ops.update += 1,
            Err(e) => err("KEYCTL_UPDATE", e),
        }
    }
    let kc = |op, a2: i32, a3: i64| sys::keyctl(op, a2 as libc::c_long, a3 as libc::c_long, 0);
    match kc(
        sys::KEYCTL_SETPERM,
        key,
        i64::from(sys::KEY_PERM_POS_USR_ALL),
    ) {
        Ok(_) => ops.setperm += 1,
        Err(e) => err("KEYCTL_SETPERM", e),
    }
    match kc(sys::KEYCTL_LINK, key, i64::from(keyring)) {
        Ok(_) => ops.link += 1,
        Err(e) => err("KEYCTL_LINK", e),
    }
    match kc(sys::KEYCTL_UNLINK, key, i64::from(keyring)) {
        Ok(_) => ops.unlink += 1,
        Err(e) => err("KEYCTL_UNLINK", e),
    }
    match kc(sys::KEYCTL_REVOKE, key, 0) {
        Ok(_) => ops.revoke += 1,
        Err(e) => err("KEYCTL_REVOKE", e),
    }
    match sys::watch_key(keyring, &rfd, -1) {
        Ok(()) => ops.unwatch += 1,
        Err(e) => err("KEYCTL_WATCH_KEY(-1)", e),
    }
    s.ops = ops;

    if done_rx.recv_timeout(opts.timeout).is_err() {
        // Wake the reader: with no writer left, read() on the empty pipe returns 0.
        s.timed_out = true;
    }
    drop(wfd);
    let r = handle
        .join()
        .map_err(|_| anyhow::anyhow!("reader thread panicked"))?;
    s.reader_reads = r.reads;
    s.reader_blocked_reads = r.blocked_reads;
    s.errors.extend(r.errors);
    s.loss_records = r.notes.iter().filter(|n| n.is_loss()).count() as u32;
    s.notifications_read = r.notes.len() as u32 - s.loss_records;
    s.notifications = r.notes;
    // Close the pipe before dropping the keys: their destruction (key GC) would otherwise post
    // watch-removal records that nobody reads.
    drop(rfd);
    drop(extra);
    unlink_from_process_keyring(&[key, keyring]);
    s.ok = s.errors.is_empty()
        && !s.timed_out
        && s.notifications_read == s.expected_notifications
        && s.loss_records == 0;
    Ok(s)
}

/// Drops our keys from the process keyring, so repeated runs (mixed) do not pile them up.
pub fn unlink_from_process_keyring(keys: &[i32]) {
    for &k in keys {
        let _ = sys::keyctl(
            sys::KEYCTL_UNLINK,
            k as libc::c_long,
            sys::KEY_SPEC_PROCESS_KEYRING as libc::c_long,
            0,
        );
    }
}
