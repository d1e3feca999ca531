//! Lock contention and waits: per lock kind, per pipe and per task.

use serde::Serialize;

use super::Comm;

/// Which pipe lock an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum LockKind {
    /// `pipe->mutex`.
    Mutex,
    /// `pipe->rd_wait.lock`, the spinlock notification posts take.
    RdWait,
}

impl LockKind {
    pub const ALL: [LockKind; 2] = [LockKind::Mutex, LockKind::RdWait];

    pub fn name(self) -> &'static str {
        match self {
            LockKind::Mutex => "mutex",
            LockKind::RdWait => "rd_wait",
        }
    }

    pub(crate) fn idx(self) -> usize {
        self as usize
    }
}

/// Contention on one lock kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Contention {
    pub count: u64,
    pub total_ns: u64,
    pub worst_ns: u64,
    /// Who waited longest, and who held the lock then (if known).
    pub worst_waiter_tid: u32,
    pub worst_waiter: Comm,
    pub worst_holder_tid: u32,
    pub worst_holder: Comm,
    /// When the worst wait ended (event clock).
    pub worst_ts_ns: u64,
}

impl Contention {
    /// A LockContended event: its wait, its task, the holder it names.
    pub fn add_event(&mut self, e: &wqtrace_common::Event) {
        self.add(
            e.ts_ns,
            e.duration_ns,
            e.tid,
            Comm(e.comm),
            e.owner_tid,
            Comm(e.owner_comm),
        );
    }

    pub fn add(&mut self, ts: u64, ns: u64, tid: u32, comm: Comm, holder_tid: u32, holder: Comm) {
        self.count += 1;
        self.total_ns = self.total_ns.saturating_add(ns);
        if ns >= self.worst_ns {
            self.worst_ns = ns;
            self.worst_waiter_tid = tid;
            self.worst_waiter = comm;
            self.worst_holder_tid = holder_tid;
            self.worst_holder = holder;
            self.worst_ts_ns = ts;
        }
    }
}

/// Sleeps waiting for a pipe (`PipeWait`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WaitStats {
    pub count: u64,
    pub total_ns: u64,
    pub max_ns: u64,
    /// Waits measured as off-CPU time (`flags::OFF_CPU`).
    pub off_cpu: u64,
}

impl WaitStats {
    /// Adds other waits (totalled in the kernel) to these.
    pub fn merge(&mut self, more: &WaitStats) {
        self.count += more.count;
        self.total_ns = self.total_ns.saturating_add(more.total_ns);
        self.max_ns = self.max_ns.max(more.max_ns);
        self.off_cpu += more.off_cpu;
    }

    pub fn add(&mut self, ns: u64, off_cpu: bool) {
        self.count += 1;
        self.total_ns = self.total_ns.saturating_add(ns);
        self.max_ns = self.max_ns.max(ns);
        self.off_cpu += u64::from(off_cpu);
    }
}

/// Who held the pipe mutex when a notification was posted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MutexOwnerSeen {
    pub ts_ns: u64,
    pub tid: u32,
    pub comm: Comm,
}

/// Per-pipe lock picture.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PipeLocks {
    /// Indexed by [`LockKind`] (`Mutex`, `RdWait`).
    pub contention: [Contention; 2],
    /// Posts that found the mutex held, and the last owner seen then.
    pub posts_under_mutex: u64,
    pub last_owner_at_post: Option<MutexOwnerSeen>,
    /// Lock addresses as seen (mutex, rd_wait), 0 when not seen yet.
    pub addr: [u64; 2],
    /// rd_wait hold time of posts (entry → return of the post).
    pub post_hold: WaitStats,
}

impl PipeLocks {
    pub fn contention(&self, k: LockKind) -> &Contention {
        &self.contention[k.idx()]
    }
}
