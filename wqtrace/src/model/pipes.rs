//! Per-pipe state, keyed by the kernel address of the `pipe_inode_info`.

use serde::Serialize;
use wqtrace_common::{Op, PostOutcome};

use super::Comm;
use super::history::{OccHistory, RateWindow};
use super::locks::{PipeLocks, WaitStats};
use super::ring::Ring;

/// A process seen using the pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub tgid: u32,
    pub comm: Comm,
    pub first_ts_ns: u64,
    pub last_ts_ns: u64,
    pub events: u64,
    /// The cgroup (v2 id) of its last event on the pipe; 0 = not known.
    pub cgroup: u64,
}

/// The fds pipe2() returned to a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PipeFds {
    pub tgid: u32,
    pub read_fd: i32,
    pub write_fd: i32,
}

/// Notification posts into one pipe: every attempt ends in exactly one outcome
/// (`PostOutcome`), so `attempts` is the sum of the outcome counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PostStats {
    /// Every NotifyPosted event.
    pub attempts: u64,
    /// Posts that landed in the ring (slot and note known).
    pub posted: u64,
    /// Posts lost, whatever the reason (= ring_full + notes_full + lost_reason_unknown).
    pub lost: u64,
    pub ring_full: u64,
    pub notes_full: u64,
    pub lost_reason_unknown: u64,
    /// Skipped by the queue's filter.
    pub filtered: u64,
    /// Did not land, cause unknown (no landing hook, a security module, a queue torn down).
    pub unknown: u64,
    /// Reads that returned a loss record (`flags::LOSS_SEEN`), and how many records.
    pub loss_seen_by_reader: u64,
    pub loss_records_read: u64,
}

impl PostStats {
    pub fn add(&mut self, o: PostOutcome) {
        self.attempts += 1;
        match o {
            PostOutcome::Landed => self.posted += 1,
            PostOutcome::LostRingFull => self.ring_full += 1,
            PostOutcome::LostNotesFull => self.notes_full += 1,
            PostOutcome::LostReasonUnknown => self.lost_reason_unknown += 1,
            PostOutcome::SkippedFilter => self.filtered += 1,
            PostOutcome::Unknown | PostOutcome::Unattributed => self.unknown += 1,
        }
        if o.is_lost() {
            self.lost += 1;
        }
    }
}

/// Notes a notification pipe's queue holds in use with no ring slot holding them: lost to the
/// queue until the pipe is freed.
///
/// The landing hook runs with the ring lock held, where no other post takes a note and no
/// reader moves the tail. A post publishes its slot before it takes its note, and a reader
/// frees a slot's note before it gives the slot back (kernel/watch_queue.c, fs/pipe.c), so
/// every note in use sits in a slot and notes in use never exceed the occupancy; only the
/// buffer in a slot frees a note. A note in use beyond the occupancy has no buffer left to
/// free it: the kernel will not hand it out again. (One way in: a reader consumes and frees
/// a slot between the poster's publishing it and taking its note, which the post's clear then
/// undoes.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NoteLeaks {
    /// Notes lost so far: the excess of notes in use over the occupancy that two landings in a
    /// row both showed (a lower bound; one odd bitmap read cannot raise it).
    pub count: u32,
    /// When the first one was seen.
    pub first_ts_ns: Option<u64>,
    /// When the count last rose.
    pub last_ts_ns: Option<u64>,
    #[serde(skip)]
    last_excess: u32,
}

impl NoteLeaks {
    /// A post landed: `in_use` notes in use and `occupancy` slots filled, read under the lock.
    pub fn landed(&mut self, ts: u64, in_use: u32, occupancy: u32) {
        let excess = in_use.saturating_sub(occupancy);
        let seen = excess.min(self.last_excess);
        self.last_excess = excess;
        if seen > self.count {
            self.count = seen;
            self.first_ts_ns.get_or_insert(ts);
            self.last_ts_ns = Some(ts);
        }
    }
}

/// Counts for one operation (syscall) on a pipe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OpStats {
    pub calls: u64,
    /// Bytes moved (sum of positive returns).
    pub bytes: u64,
    /// Calls that returned -errno.
    pub errors: u64,
    /// Last -errno seen.
    pub last_error: i64,
}

/// Rejected splices for one (operation, process).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RejectionCount {
    #[serde(serialize_with = "ser_op")]
    pub op: Op,
    pub tgid: u32,
    pub comm: Comm,
    pub count: u64,
    pub last_ret: i64,
}

/// A keyctl(KEYCTL_WATCH_KEY) seen for the pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct WatchSeen {
    pub ts_ns: u64,
    pub watch_id: u32,
    pub ret: i64,
    pub tgid: u32,
    pub comm: Comm,
}

fn ser_op<S: serde::Serializer>(op: &Op, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(op.name())
}

pub(crate) const MAX_OWNERS: usize = 16;
pub(crate) const MAX_FDS: usize = 16;
pub(crate) const MAX_REJECTION_KEYS: usize = 64;
pub(crate) const MAX_WATCHES: usize = 32;
pub(crate) const OPS: usize = 18;

/// Everything the model knows about one pipe.
#[derive(Clone, Debug, PartialEq)]
pub struct PipeState {
    /// Kernel address of the pipe_inode_info (the key while the pipe lives).
    pub addr: u64,
    /// Inode number (`pipe:[INO]`); 0 when not seen.
    pub ino: u64,
    /// O_NOTIFICATION_PIPE (watch_queue attached).
    pub notification: bool,
    /// When pipe2() created it, if that was traced.
    pub created_ts_ns: Option<u64>,
    /// When the kernel freed it (`PipeReleased` with `op` None), if that was traced.
    pub released_ts_ns: Option<u64>,
    /// fds closed (`PipeReleased` with `op` Close).
    pub fd_closes: u64,
    pub first_ts_ns: u64,
    pub last_ts_ns: u64,
    /// Events about this pipe.
    pub events: u64,
    /// Processes seen using it (bounded), in order of first use.
    pub owners: Vec<Owner>,
    /// fds handed out by pipe2() (bounded).
    pub fds: Vec<PipeFds>,
    /// Ring size, head/tail and the per-slot picture.
    pub ring: Ring,
    /// `pipe->max_usage`.
    pub max_usage: u32,
    /// Highest occupancy seen.
    pub max_occupancy: u32,
    /// watch_queue notes: total, in use now, highest in use.
    pub nr_notes: u32,
    pub notes_in_use: u32,
    pub max_notes_in_use: u32,
    pub notes_leaked: NoteLeaks,
    pub posts: PostStats,
    /// Per operation, indexed by `Op as usize` (see [`PipeState::op_stats`]).
    pub ops: [OpStats; OPS],
    /// Rejected splice/tee/vmsplice, by operation and process (bounded).
    pub rejections: Vec<RejectionCount>,
    /// PipeWait sleeps on this pipe.
    pub waits: WaitStats,
    pub locks: PipeLocks,
    pub watches: Vec<WatchSeen>,
    /// Interleave alerts raised for this pipe.
    pub interleaves: u64,
    /// Its ring ops the kernel totalled instead of streaming (in `ops` and `events` too):
    /// their tasks are not among `owners`.
    pub totalled_ops: u64,
    pub history: OccHistory,
    pub rate: RateWindow,
}

impl PipeState {
    pub(crate) fn new(addr: u64, ino: u64, ts: u64, history: OccHistory, rate: RateWindow) -> Self {
        Self {
            addr,
            ino,
            notification: false,
            created_ts_ns: None,
            released_ts_ns: None,
            fd_closes: 0,
            first_ts_ns: ts,
            last_ts_ns: ts,
            events: 0,
            owners: Vec::new(),
            fds: Vec::new(),
            ring: Ring::default(),
            max_usage: 0,
            max_occupancy: 0,
            nr_notes: 0,
            notes_in_use: 0,
            max_notes_in_use: 0,
            notes_leaked: NoteLeaks::default(),
            posts: PostStats::default(),
            ops: [OpStats::default(); OPS],
            rejections: Vec::new(),
            waits: WaitStats::default(),
            locks: PipeLocks::default(),
            watches: Vec::new(),
            interleaves: 0,
            totalled_ops: 0,
            history,
            rate,
        }
    }

    /// Whether the pipe has been released.
    pub fn is_released(&self) -> bool {
        self.released_ts_ns.is_some()
    }

    /// A short label: see [`pipe_label`].
    pub fn label(&self) -> String {
        pipe_label(self.addr, self.ino)
    }

    /// Current occupancy (head - tail).
    pub fn occupancy(&self) -> u32 {
        self.ring.occupancy()
    }

    pub fn op_stats(&self, op: Op) -> &OpStats {
        &self.ops[op as usize]
    }

    /// Operations with at least one call, as (op, stats).
    pub fn ops_used(&self) -> impl Iterator<Item = (Op, &OpStats)> {
        self.ops
            .iter()
            .enumerate()
            .filter(|(_, s)| s.calls > 0)
            .map(|(i, s)| (Op::from_u8(i as u8), s))
    }

    /// Total rejected splices.
    pub fn rejected(&self) -> u64 {
        self.rejections.iter().map(|r| r.count).sum()
    }

    pub(crate) fn touch_owner(&mut self, tgid: u32, comm: Comm, cgroup: u64, ts: u64) {
        if tgid == 0 {
            return;
        }
        if let Some(o) = self
            .owners
            .iter_mut()
            .find(|o| o.tgid == tgid && o.comm == comm)
        {
            o.last_ts_ns = o.last_ts_ns.max(ts);
            o.events += 1;
            if cgroup != 0 {
                o.cgroup = cgroup;
            }
        } else if self.owners.len() < MAX_OWNERS {
            self.owners.push(Owner {
                tgid,
                comm,
                first_ts_ns: ts,
                last_ts_ns: ts,
                events: 1,
                cgroup,
            });
        }
    }

    pub(crate) fn add_fds(&mut self, tgid: u32, read_fd: i32, write_fd: i32) {
        if read_fd < 0 && write_fd < 0 {
            return;
        }
        let f = PipeFds {
            tgid,
            read_fd,
            write_fd,
        };
        if !self.fds.contains(&f) && self.fds.len() < MAX_FDS {
            self.fds.push(f);
        }
    }

    pub(crate) fn add_rejection(&mut self, op: Op, tgid: u32, comm: Comm, ret: i64) {
        if let Some(r) = self
            .rejections
            .iter_mut()
            .find(|r| r.op == op && r.tgid == tgid && r.comm == comm)
        {
            r.count += 1;
            r.last_ret = ret;
        } else if self.rejections.len() < MAX_REJECTION_KEYS {
            self.rejections.push(RejectionCount {
                op,
                tgid,
                comm,
                count: 1,
                last_ret: ret,
            });
        }
    }
}

/// A pipe as users name it: `pipe:[INO]` as in /proc/PID/fd, else (an event that did not know
/// the inode) the kernel address of its `pipe_inode_info`, else `pipe:[?]`.
pub fn pipe_label(addr: u64, ino: u64) -> String {
    if ino != 0 {
        format!("pipe:[{ino}]")
    } else if addr != 0 {
        format!("pipe@{addr:#x}")
    } else {
        "pipe:[?]".to_string()
    }
}
