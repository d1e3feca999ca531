//! `storm`: key notifications as fast as one poster and one blocked reader move them, for a
//! while: the notification path's throughput, for benchmarks.
//!
//! One user key is watched through one notification pipe; a reader thread stays blocked in
//! read() on it. The main thread posts bursts of `count` KEYCTL_UPDATEs (each one
//! NOTIFY_KEY_UPDATED), and waits for the reader to have read every record of a burst before the
//! next, so the queue (`nr_notes`) never overflows. The time measured is the bursts' alone: the
//! process start-up, the set-up and the tear-down are outside it (in the test VM, starting a
//! 12 MB binary from the 9p workspace took longer than a burst of 250).

use std::os::fd::AsRawFd as _;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use super::notify::unlink_from_process_keyring;
use super::{Common, notes, sys};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Seconds to post for (at least one burst is posted).
    #[arg(long, default_value_t = 3.0, value_parser = crate::argvalue::secs)]
    pub duration: f64,
    /// KEYCTL_UPDATEs per burst (at most the queue's notes: no post may be lost).
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u32).range(1..=512))]
    pub count: u32,
    /// Queue size given to IOC_WATCH_QUEUE_SET_SIZE.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=512))]
    pub nr_notes: u32,
    /// How long to wait for the reader to read one burst.
    #[arg(long, default_value_t = 10000)]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub scenario: &'static str,
    pub pid: u32,
    pub ok: bool,
    /// Thread that posted (KEYCTL_UPDATE).
    pub tid: u32,
    pub reader_tid: u32,
    pub pipe_ino: u64,
    pub key_serial: i32,
    pub nr_notes_effective: u32,
    pub bursts: u32,
    /// KEYCTL_UPDATEs that succeeded: one post each.
    pub posts: u64,
    /// key_updated records read.
    pub notifications_read: u64,
    /// Other records read (none expected).
    pub other_records: u64,
    pub loss_records: u64,
    pub reads: u64,
    /// From the first post to the last burst read.
    pub elapsed_secs: f64,
    pub notifications_per_sec: f64,
    pub errors: Vec<String>,
}

/// What the reader has read so far, sent after every read().
#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    updated: u64,
    other: u64,
    loss: u64,
    reads: u64,
}

fn reader(fd: i32, tid_tx: mpsc::Sender<u32>, tx: mpsc::Sender<Progress>) -> Vec<String> {
    let _ = tid_tx.send(sys::gettid());
    let mut p = Progress::default();
    let mut buf = [0u8; 4096];
    loop {
        match sys::read(fd, &mut buf) {
            // The write end was closed: the storm is over.
            Ok(0) => return vec![],
            Ok(n) => {
                p.reads += 1;
                match notes::decode_notes(&buf[..n]) {
                    Ok(notes) => {
                        for n in notes {
                            if n.is_loss() {
                                p.loss += 1;
                            } else if n.name == "key_updated" {
                                p.updated += 1;
                            } else {
                                p.other += 1;
                            }
                        }
                    }
                    Err(e) => return vec![format!("decoding {n} bytes: {e:?}")],
                }
                if tx.send(p).is_err() {
                    return vec![];
                }
            }
            Err(libc::EINTR) => {}
            Err(e) => return vec![format!("read: {}", sys::errno_name(e))],
        }
    }
}

/// Long on purpose: a scenario is a script of syscalls, read in order.
pub fn run(a: &Args) -> anyhow::Result<Summary> {
    let (rfd, wfd) = sys::notification_pipe()?;
    sys::ioctl_set_size(&rfd, a.nr_notes)
        .with_context(|| format!("IOC_WATCH_QUEUE_SET_SIZE({})", a.nr_notes))?;
    let (_, effective, _) = sys::watch_queue_geometry(a.nr_notes, sys::page_size());
    if a.count > effective {
        anyhow::bail!(
            "--count {} is more than the queue's {effective} notes: posts would be lost",
            a.count
        );
    }
    let pid = sys::getpid();
    let key = sys::add_key(
        "user",
        &format!("wqtrace:storm:{pid}"),
        Some(b"v0"),
        sys::KEY_SPEC_PROCESS_KEYRING,
    )
    .context("add_key(user)")?;
    if let Err(e) = sys::watch_key(key, &rfd, 1) {
        unlink_from_process_keyring(&[key]);
        return Err(e).context("KEYCTL_WATCH_KEY");
    }
    let mut s = Summary {
        scenario: "storm",
        pid,
        ok: false,
        tid: sys::gettid(),
        reader_tid: 0,
        pipe_ino: sys::fstat_ino(&rfd)?,
        key_serial: key,
        nr_notes_effective: effective,
        bursts: 0,
        posts: 0,
        notifications_read: 0,
        other_records: 0,
        loss_records: 0,
        reads: 0,
        elapsed_secs: 0.0,
        notifications_per_sec: 0.0,
        errors: vec![],
    };
    let (tid_tx, tid_rx) = mpsc::channel();
    let (tx, rx) = mpsc::channel();
    let raw = rfd.as_raw_fd();
    let handle = std::thread::Builder::new()
        .name("wq-reader".into())
        .spawn(move || reader(raw, tid_tx, tx))?;
    s.reader_tid = tid_rx.recv().unwrap_or(0);

    let timeout = Duration::from_millis(a.timeout_ms);
    let mut seen = Progress::default();
    let t0 = Instant::now();
    'storm: loop {
        for i in 0..a.count {
            match sys::key_update(key, format!("v{i}").as_bytes()) {
                Ok(()) => s.posts += 1,
                Err(e) => {
                    s.errors.push(format!("KEYCTL_UPDATE: {e}"));
                    break 'storm;
                }
            }
        }
        s.bursts += 1;
        while seen.updated + seen.other + seen.loss < s.posts {
            match rx.recv_timeout(timeout) {
                Ok(p) => seen = p,
                Err(_) => {
                    s.errors.push(format!(
                        "the reader read {} of {} records in {timeout:?}",
                        seen.updated + seen.other + seen.loss,
                        s.posts
                    ));
                    break 'storm;
                }
            }
        }
        if t0.elapsed().as_secs_f64() >= a.duration {
            break;
        }
    }
    s.elapsed_secs = t0.elapsed().as_secs_f64();
    // With no writer left, read() on the empty pipe returns 0 and the reader ends.
    drop(wfd);
    let errors = handle
        .join()
        .map_err(|_| anyhow::anyhow!("reader thread panicked"))?;
    s.errors.extend(errors);
    while let Ok(p) = rx.try_recv() {
        seen = p;
    }
    s.notifications_read = seen.updated;
    s.other_records = seen.other;
    s.loss_records = seen.loss;
    s.reads = seen.reads;
    s.notifications_per_sec = s.notifications_read as f64 / s.elapsed_secs.max(1e-9);
    // The pipe first: the key's revocation then posts nothing nobody reads.
    drop(rfd);
    let _ = sys::keyctl(sys::KEYCTL_REVOKE, key as libc::c_long, 0, 0);
    unlink_from_process_keyring(&[key]);
    s.ok = s.errors.is_empty()
        && s.posts > 0
        && s.notifications_read == s.posts
        && s.other_records == 0
        && s.loss_records == 0;
    Ok(s)
}
