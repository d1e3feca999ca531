//! Machine-wide counters and what the model knows of each task.

use serde::Serialize;
use wqtrace_common::EventKind;

use super::{Comm, Contention, WaitStats};

/// Event counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Events applied.
    pub events: u64,
    /// Indexed by the `EventKind` value (1..=9); index 0 counts unknown kinds.
    pub per_kind: [u64; 10],
    /// Events the source lost (ring buffer full, damaged recording), from [`Model::set_lost`].
    pub lost: u64,
    /// Sleeps of splice, tee or vmsplice the source could not time as pipe waits, from
    /// [`Model::set_sleeps_unattributed`].
    pub sleeps_unattributed: u64,
    /// The most pipes the source's programs knew at once, from [`Model::set_known_pipes`]:
    /// past their room, a pipe's free may go unseen and the pipe stay listed.
    pub known_pipes: Option<crate::session::KnownPipes>,
    /// Events that named no pipe the model could key on.
    pub no_pipe: u64,
    /// Pipes retired to stay within [`ModelConfig::max_pipes`].
    pub evicted_pipes: u64,
    /// Notification posts that made it / were lost, over all pipes.
    pub posted: u64,
    pub posts_lost: u64,
    /// Every post attempt by outcome (indexed like `PostOutcome::ALL`), including the
    /// unattributed ones that name no pipe.
    pub post_outcomes: [u64; 7],
    /// Ring ops the kernel totalled per pipe instead of streaming (in `events` and
    /// `per_kind` too): no task is known for them.
    pub totalled_ops: u64,
    /// Lock waits (contention) on ordinary pipes the kernel totalled likewise.
    pub totalled_lock_waits: u64,
    /// Off-CPU waits in reads and writes of ordinary pipes shorter than the stack threshold,
    /// totalled likewise.
    pub totalled_waits: u64,
}

impl Counters {
    pub fn kind(&self, k: EventKind) -> u64 {
        self.per_kind[k as usize]
    }
}

/// A task seen in events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TaskState {
    pub tid: u32,
    pub tgid: u32,
    pub comm: Comm,
    pub events: u64,
    pub first_ts_ns: u64,
    pub last_ts_ns: u64,
    /// PipeWait sleeps.
    pub waits: WaitStats,
    /// The last wait, as (start, end) on the event clock, and on which pipe.
    pub last_wait: Option<(u64, u64, u64)>,
    /// Lock contention suffered, per [`LockKind`].
    pub contention: [Contention; 2],
    pub rejections: u64,
}

impl TaskState {
    /// Whether the task's last known wait covers `ts_ns` (for "tasks in waits" views).
    pub fn waiting_at(&self, ts_ns: u64) -> bool {
        self.last_wait
            .is_some_and(|(s, e, _)| s <= ts_ns && ts_ns <= e)
    }
}
