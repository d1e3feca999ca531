//! `race`: poster threads on different CPUs post key notifications into ONE queue at once.
//!
//! `--keys` user keys are each watched once through one notification pipe (watch ids 1..=keys),
//! so every successful KEYCTL_UPDATE is exactly one NOTIFY_KEY_UPDATED post attempt. `--posters`
//! threads, each pinned to its own allowed CPU (round-robin), pass a barrier together and update
//! the keys round-robin while one reader thread (SCHED_FIFO when allowed) drains the pipe. Posts
//! that find the queue full are dropped and show up as loss records (one per episode, not per
//! post), so the summary gives attempts and what was read per watch id, and the tracer's
//! landed/lost counts must match them.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, mpsc};
use std::thread;
use std::time::{Duration, Instant};

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
    /// Poster threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub posters: u32,
    /// User keys, each watched once (watch ids 1..=keys).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub keys: u32,
    /// KEYCTL_UPDATE calls per poster thread.
    #[arg(long, default_value_t = 1000)]
    pub updates: u32,
    /// Queue size given to IOC_WATCH_QUEUE_SET_SIZE.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=512))]
    pub nr_notes: u32,
    /// The reader sleeps this long after each read while the posters run.
    #[arg(long, default_value_t = 0)]
    pub reader_delay_us: u64,
    /// Do not read until every poster has finished, then drain.
    #[arg(long)]
    pub read_after: bool,
    /// read() buffer size in bytes.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
    pub read_size: u32,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct KeyWatch {
    pub serial: i32,
    pub watch_id: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub scenario: &'static str,
    pub pid: u32,
    pub ok: bool,
    pub pipe_ino: u64,
    pub read_fd: i32,
    pub write_fd: i32,
    /// Requested queue size.
    pub nr_notes: u32,
    /// Whole pages of 128-byte notes.
    pub nr_notes_effective: u32,
    pub ring_size: u32,
    pub posters: u32,
    pub poster_tids: Vec<u32>,
    /// The CPU each poster was pinned to (null if pinning failed).
    pub poster_cpus: Vec<Option<u32>>,
    pub updates_per_poster: u32,
    pub read_after: bool,
    pub reader_delay_us: u64,
    pub read_size: u32,
    pub keys: Vec<KeyWatch>,
    /// Successful KEYCTL_UPDATEs: one post attempt each.
    pub attempts: u32,
    pub attempts_per_watch_id: BTreeMap<u32, u32>,
    /// Records read, excluding loss records.
    pub notes_read: u32,
    pub notes_read_per_watch_id: BTreeMap<u32, u32>,
    /// attempts - notes_read: the posts the queue dropped (if the reader drained it all).
    pub notes_missing: u32,
    pub loss_records: u32,
    pub reader_tid: u32,
    /// The reader ran as SCHED_FIFO while reading (see `reader`).
    pub reader_sched_fifo: bool,
    /// read() calls that returned data.
    pub reader_reads: u32,
    pub update_errors: u32,
    pub errors: Vec<String>,
    pub elapsed_ms: u64,
}

/// What the reader got.
#[derive(Debug, Default)]
struct Tally {
    per_watch_id: BTreeMap<u32, u32>,
    notes: u32,
    losses: u32,
    /// Records other than NOTIFY_KEY_UPDATED on the key of their watch id.
    unexpected: u32,
    first_unexpected: Option<String>,
}

impl Tally {
    fn add(&mut self, notes: &[Note], keys: &[KeyWatch]) {
        for n in notes {
            if n.is_loss() {
                self.losses += 1;
                continue;
            }
            self.notes += 1;
            *self.per_watch_id.entry(n.watch_id).or_default() += 1;
            let key = keys.iter().find(|k| k.watch_id == n.watch_id);
            let expected = n.r#type == sys::WATCH_TYPE_KEY_NOTIFY
                && n.subtype == sys::NOTIFY_KEY_UPDATED
                && key.is_some_and(|k| n.key_id == Some(k.serial as u32));
            if !expected {
                self.unexpected += 1;
                self.first_unexpected
                    .get_or_insert_with(|| format!("unexpected record {n:?}"));
            }
        }
    }
}

/// Watch ids that got more records than were posted to them.
fn overcounted(attempts: &BTreeMap<u32, u32>, read: &BTreeMap<u32, u32>) -> Vec<String> {
    read.iter()
        .filter_map(|(w, &n)| {
            let posted = attempts.get(w).copied().unwrap_or(0);
            (n > posted).then(|| format!("watch id {w}: {n} records read, {posted} posted"))
        })
        .collect()
}

/// The pipe and the keys watched through it. Dropping closes the pipe first, which removes the
/// watches, so unlinking the keys afterwards posts nothing into the queue.
struct Queue {
    pipe: Option<(OwnedFd, OwnedFd)>,
    keys: Vec<KeyWatch>,
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.pipe = None;
        let serials: Vec<i32> = self.keys.iter().map(|k| k.serial).collect();
        unlink_from_process_keyring(&serials);
    }
}

struct PosterResult {
    tid: u32,
    cpu: Option<u32>,
    per_key: Vec<u32>,
    failed: u32,
    first_error: Option<String>,
}

fn poster(t: usize, updates: u32, keys: &[KeyWatch], barrier: &Barrier) -> PosterResult {
    let mut r = PosterResult {
        tid: sys::gettid(),
        cpu: sys::pin_to_nth_allowed_cpu(t).ok(),
        per_key: vec![0; keys.len()],
        failed: 0,
        first_error: None,
    };
    barrier.wait();
    for i in 0..updates as usize {
        let k = (t + i) % keys.len();
        match sys::key_update(keys[k].serial, &i.to_ne_bytes()) {
            Ok(()) => r.per_key[k] += 1,
            Err(e) => {
                r.failed += 1;
                r.first_error
                    .get_or_insert_with(|| format!("KEYCTL_UPDATE (poster {t}): {e}"));
            }
        }
    }
    r
}

struct ReaderResult {
    tid: u32,
    fifo: bool,
    reads: u32,
    tally: Tally,
    errors: Vec<String>,
}

/// Says `ready` just before its first poll, reads while the posters run, then, once `done`,
/// drains without blocking until EAGAIN.
fn reader(
    fd: &OwnedFd,
    a: &Args,
    keys: &[KeyWatch],
    done: &AtomicBool,
    ready: Option<mpsc::Sender<()>>,
) -> ReaderResult {
    let tid = sys::gettid();
    let mut errors = vec![];
    // Woken by a post onto a poster's CPU, an ordinary reader waits out the poster's time slice,
    // in which (under TCG) the posters fill 256 notes several times over. As SCHED_FIFO it runs at
    // once. Best effort: without CAP_SYS_NICE the reader is just slower.
    let fifo = sys::set_sched_fifo(true).is_ok();
    let mut buf = vec![0u8; a.read_size as usize];
    // What each read returned, decoded only at the end: decoding as it goes makes a debug build
    // under emulation slower than the posters, and the queue would overflow for that reason alone.
    let mut data = Vec::new();
    let mut lens = Vec::new();
    let delay = Duration::from_micros(a.reader_delay_us);
    let mut draining = false;
    if let Some(tx) = ready {
        let _ = tx.send(());
    }
    loop {
        if !draining && done.load(Ordering::Acquire) {
            if let Err(e) = sys::set_nonblocking(fd, true) {
                errors.push(format!("O_NONBLOCK: {e}"));
                break;
            }
            draining = true;
        }
        // A timed poll instead of a blocking read: the reader must notice that posting ended.
        // (It also misses a loss record pending on an empty ring, which the drain picks up.)
        if !draining && !sys::readable_within(fd.as_raw_fd(), 50) {
            continue;
        }
        match sys::read(fd.as_raw_fd(), &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                data.extend_from_slice(&buf[..n]);
                lens.push(n);
                if !draining && !delay.is_zero() {
                    thread::sleep(delay);
                }
            }
            Err(libc::EINTR) => {}
            Err(libc::EAGAIN) if draining => break,
            Err(libc::EAGAIN) => {}
            Err(e) => {
                errors.push(format!("read: {}", sys::errno_name(e)));
                break;
            }
        }
    }
    if fifo {
        let _ = sys::set_sched_fifo(false);
    }
    let mut tally = Tally::default();
    let mut rest = &data[..];
    for &n in &lens {
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        match notes::decode_notes(chunk) {
            Ok(notes) => tally.add(&notes, keys),
            Err(e) => errors.push(format!("decoding {n} bytes: {e:?}")),
        }
    }
    ReaderResult {
        tid,
        fifo,
        reads: lens.len() as u32,
        tally,
        errors,
    }
}

/// Long on purpose: a scenario is a script of syscalls, read in order; its summary says what
/// each step did.
pub fn run(a: &Args) -> anyhow::Result<Summary> {
    let pid = sys::getpid();
    let mut q = Queue {
        pipe: Some(sys::notification_pipe()?),
        keys: vec![],
    };
    let (rfd, wfd) = q.pipe.as_ref().expect("just set");
    sys::ioctl_set_size(rfd, a.nr_notes)
        .with_context(|| format!("IOC_WATCH_QUEUE_SET_SIZE({})", a.nr_notes))?;
    let (_, effective, ring) = sys::watch_queue_geometry(a.nr_notes, sys::page_size());
    for watch_id in 1..=a.keys {
        let serial = sys::add_key(
            "user",
            &format!("wqtrace:race:{pid}:{watch_id}"),
            Some(b"v0"),
            sys::KEY_SPEC_PROCESS_KEYRING,
        )
        .context("add_key(user)")?;
        q.keys.push(KeyWatch { serial, watch_id });
        sys::watch_key(serial, rfd, watch_id as i32).context("KEYCTL_WATCH_KEY")?;
    }
    let keys = &q.keys;

    let start = Instant::now();
    let done = AtomicBool::new(false);
    let barrier = Barrier::new(a.posters as usize);
    let spawn_failed = "spawning a workload thread";
    let (posters, rr) = thread::scope(|s| {
        let (done, barrier) = (&done, &barrier);
        let spawn_reader = move |ready| {
            thread::Builder::new()
                .name("wq-race-reader".into())
                .spawn_scoped(s, move || reader(rfd, a, keys, done, ready))
                .expect(spawn_failed)
        };
        let early_reader = (!a.read_after).then(|| {
            let (tx, rx) = mpsc::channel();
            let h = spawn_reader(Some(tx));
            let _ = rx.recv();
            // Let it get into poll(): a thread's first steps can take longer, under emulation,
            // than all the posting.
            thread::sleep(Duration::from_millis(20));
            h
        });
        let handles: Vec<_> = (0..a.posters as usize)
            .map(|t| {
                thread::Builder::new()
                    .name(format!("wq-poster-{t}"))
                    .spawn_scoped(s, move || poster(t, a.updates, keys, barrier))
                    .expect(spawn_failed)
            })
            .collect();
        let posters: Vec<PosterResult> = handles
            .into_iter()
            .map(|h| h.join().expect("poster thread panicked"))
            .collect();
        done.store(true, Ordering::Release);
        let rr = early_reader
            .unwrap_or_else(|| spawn_reader(None))
            .join()
            .expect("reader thread panicked");
        (posters, rr)
    });
    let elapsed_ms = start.elapsed().as_millis() as u64;

    let mut attempts_per_watch_id = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        let n = posters.iter().map(|p| p.per_key[i]).sum::<u32>();
        attempts_per_watch_id.insert(k.watch_id, n);
    }
    let attempts = attempts_per_watch_id.values().sum::<u32>();
    let mut errors: Vec<String> = posters
        .iter()
        .filter_map(|p| p.first_error.clone())
        .collect();
    errors.extend(rr.errors);
    if rr.tally.unexpected > 0 {
        errors.push(format!(
            "{} unexpected records, first: {}",
            rr.tally.unexpected,
            rr.tally.first_unexpected.unwrap_or_default()
        ));
    }
    errors.extend(overcounted(&attempts_per_watch_id, &rr.tally.per_watch_id));
    let s = Summary {
        scenario: "race",
        pid,
        ok: errors.is_empty() && rr.tally.notes <= attempts,
        pipe_ino: sys::fstat_ino(rfd)?,
        read_fd: rfd.as_raw_fd(),
        write_fd: wfd.as_raw_fd(),
        nr_notes: a.nr_notes,
        nr_notes_effective: effective,
        ring_size: ring,
        posters: a.posters,
        poster_tids: posters.iter().map(|p| p.tid).collect(),
        poster_cpus: posters.iter().map(|p| p.cpu).collect(),
        updates_per_poster: a.updates,
        read_after: a.read_after,
        reader_delay_us: a.reader_delay_us,
        read_size: a.read_size,
        keys: keys.clone(),
        attempts,
        attempts_per_watch_id,
        notes_read: rr.tally.notes,
        notes_read_per_watch_id: rr.tally.per_watch_id,
        notes_missing: attempts.saturating_sub(rr.tally.notes),
        loss_records: rr.tally.losses,
        reader_tid: rr.tid,
        reader_sched_fifo: rr.fifo,
        reader_reads: rr.reads,
        update_errors: posters.iter().map(|p| p.failed).sum(),
        errors,
        elapsed_ms,
    };
    drop(q);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(ty: u32, subtype: u32, watch_id: u32, key_id: Option<u32>) -> Note {
        Note {
            r#type: ty,
            subtype,
            watch_id,
            len: if key_id.is_some() { 16 } else { 8 },
            name: notes::note_name(ty, subtype),
            key_id,
            aux: key_id.map(|_| 0),
            removal_id: None,
        }
    }

    fn updated(watch_id: u32, key: u32) -> Note {
        note(
            sys::WATCH_TYPE_KEY_NOTIFY,
            sys::NOTIFY_KEY_UPDATED,
            watch_id,
            Some(key),
        )
    }

    #[test]
    fn tally_counts_per_watch_id_and_flags_strangers() {
        let keys = [
            KeyWatch {
                serial: 100,
                watch_id: 1,
            },
            KeyWatch {
                serial: 200,
                watch_id: 2,
            },
        ];
        let loss = note(
            sys::WATCH_TYPE_META,
            sys::WATCH_META_LOSS_NOTIFICATION,
            0,
            None,
        );
        let mut t = Tally::default();
        t.add(&[updated(1, 100), updated(2, 200), loss.clone()], &keys);
        t.add(&[updated(1, 100), loss], &keys);
        assert_eq!((t.notes, t.losses, t.unexpected), (3, 2, 0));
        assert_eq!(t.per_watch_id, BTreeMap::from([(1, 2), (2, 1)]));

        // Wrong key for the watch id, unknown watch id, not an update.
        let revoked = note(
            sys::WATCH_TYPE_KEY_NOTIFY,
            sys::NOTIFY_KEY_REVOKED,
            1,
            Some(100),
        );
        t.add(&[updated(1, 200), updated(3, 100), revoked], &keys);
        assert_eq!((t.notes, t.unexpected), (6, 3));
        assert!(t.first_unexpected.unwrap().contains("key_id: Some(200)"));
    }

    #[test]
    fn overcounted_names_watch_ids_with_more_reads_than_posts() {
        let attempts = BTreeMap::from([(1, 5), (2, 3)]);
        assert!(overcounted(&attempts, &BTreeMap::from([(1, 5), (2, 0)])).is_empty());
        assert_eq!(
            overcounted(&attempts, &BTreeMap::from([(2, 4), (9, 1)])),
            [
                "watch id 2: 4 records read, 3 posted",
                "watch id 9: 1 records read, 0 posted"
            ]
        );
    }
}
