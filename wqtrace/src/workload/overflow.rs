//! `overflow`: more notifications than the queue holds, posted with nobody reading.
//!
//! `watch_queue_set_size()` rounds `nr_notes` up to whole pages of 128-byte notes (32 per 4 KiB
//! page) and sizes the ring to the next power of two; `post_one_notification()` drops a note when
//! the ring is full or no note slot is free and sets PIPE_BUF_FLAG_LOSS on the newest buffer.
//! `pipe_read()` turns that flag into one WATCH_META_LOSS_NOTIFICATION record (8 bytes) after the
//! flagged buffer is consumed. So `count` KEYCTL_UPDATEs on a watched key, then reading
//! everything, yields min(count, nr_notes_effective) key records and one loss record if
//! count > nr_notes_effective.

use std::os::fd::AsRawFd as _;

use anyhow::Context as _;
use serde::Serialize;

use super::Common;
use super::notes::{self, Note};
use super::notify::unlink_from_process_keyring;
use super::sys;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Queue size given to IOC_WATCH_QUEUE_SET_SIZE (the kernel rounds it up to a page of notes).
    #[arg(long, default_value_t = 4)]
    pub nr_notes: u32,
    /// Notifications to post (KEYCTL_UPDATEs); default: twice what the queue holds.
    #[arg(long)]
    pub count: Option<u32>,
    /// Watch id of the key's watch.
    #[arg(long, default_value_t = 9)]
    pub watch_id: u8,
}

#[derive(Debug, Clone)]
pub struct Opts {
    pub nr_notes: u32,
    pub count: Option<u32>,
    pub watch_id: u8,
}

impl Args {
    pub fn opts(&self) -> Opts {
        Opts {
            nr_notes: self.nr_notes,
            count: self.count,
            watch_id: self.watch_id,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub scenario: &'static str,
    pub pid: u32,
    pub ok: bool,
    pub tid: u32,
    pub pipe_ino: u64,
    pub read_fd: i32,
    pub nr_notes: u32,
    pub nr_notes_effective: u32,
    pub ring_size: u32,
    pub pipe_size_bytes: u64,
    pub key_serial: i32,
    pub watch_id: u32,
    /// Key operations that each post one notification (KEYCTL_UPDATE), done before any read.
    pub posts_attempted: u32,
    /// How many of those the queue can hold.
    pub expected_notifications: u32,
    pub expected_loss_records: u32,
    pub notifications_read: u32,
    pub loss_records: u32,
    /// Records in read order.
    pub notifications: Vec<Note>,
    pub reads: u32,
    pub errors: Vec<String>,
}

/// Long on purpose: a scenario is a script of syscalls, read in order; its summary says what
/// each step did.
pub fn run(opts: &Opts) -> anyhow::Result<Summary> {
    let (rfd, wfd) = sys::notification_pipe()?;
    let pid = sys::getpid();
    sys::ioctl_set_size(&rfd, opts.nr_notes)
        .with_context(|| format!("IOC_WATCH_QUEUE_SET_SIZE({})", opts.nr_notes))?;
    let (_, effective, ring) = sys::watch_queue_geometry(opts.nr_notes, sys::page_size());
    let count = opts.count.unwrap_or(2 * effective);
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let key = sys::add_key(
        "user",
        &format!("wqtrace:overflow:{pid}:{seq}"),
        Some(b"v0"),
        sys::KEY_SPEC_PROCESS_KEYRING,
    )
    .context("add_key(user)")?;
    let mut s = Summary {
        scenario: "overflow",
        pid,
        ok: false,
        tid: sys::gettid(),
        pipe_ino: sys::fstat_ino(&rfd)?,
        read_fd: rfd.as_raw_fd(),
        nr_notes: opts.nr_notes,
        nr_notes_effective: effective,
        ring_size: ring,
        pipe_size_bytes: sys::pipe_size_bytes(&rfd).unwrap_or(0),
        key_serial: key,
        watch_id: u32::from(opts.watch_id),
        posts_attempted: 0,
        expected_notifications: count.min(effective),
        expected_loss_records: u32::from(count > effective),
        notifications_read: 0,
        loss_records: 0,
        notifications: vec![],
        reads: 0,
        errors: vec![],
    };
    if let Err(e) = sys::watch_key(key, &rfd, i32::from(opts.watch_id)) {
        unlink_from_process_keyring(&[key]);
        return Err(e).context("KEYCTL_WATCH_KEY");
    }
    for i in 0..count {
        s.posts_attempted += 1;
        if let Err(e) = sys::key_update(key, format!("v{}", i + 1).as_bytes()) {
            s.errors.push(format!("KEYCTL_UPDATE: {e}"));
        }
    }
    // Now drain: non-blocking reads until the pipe is empty.
    sys::set_nonblocking(&rfd, true)?;
    let mut buf = [0u8; 4096];
    loop {
        match sys::read(rfd.as_raw_fd(), &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                s.reads += 1;
                match notes::decode_notes(&buf[..n]) {
                    Ok(notes) => s.notifications.extend(notes),
                    Err(e) => {
                        s.errors.push(format!("decoding {n} bytes: {e:?}"));
                        break;
                    }
                }
            }
            Err(libc::EINTR) => {}
            // pipe_read() reports the loss flag of the last buffer on the read after the one
            // that consumed it, so EAGAIN comes only once the loss record is out too.
            Err(libc::EAGAIN) => break,
            Err(e) => {
                s.errors.push(format!("read: {}", sys::errno_name(e)));
                break;
            }
        }
    }
    s.loss_records = s.notifications.iter().filter(|n| n.is_loss()).count() as u32;
    s.notifications_read = s.notifications.len() as u32 - s.loss_records;
    // Close the pipe first: that drops the watch without posting anything, so the revoke below
    // (and the key's later destruction) post nothing beyond the `posts_attempted` counted above.
    drop(wfd);
    drop(rfd);
    let _ = sys::keyctl(sys::KEYCTL_REVOKE, key as libc::c_long, 0, 0);
    unlink_from_process_keyring(&[key]);
    s.ok = s.errors.is_empty()
        && s.notifications_read == s.expected_notifications
        && s.loss_records == s.expected_loss_records;
    Ok(s)
}
