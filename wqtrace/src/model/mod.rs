//! Pure model of what the events say: pipes, ring slots, locks, rejections. No kernel access.
//!
//! [`Model::apply`] is the one entry point: feed it every [`Event`] in order (live or from a
//! recording) and read the state back through the accessors. Memory is bounded: pipes, tasks,
//! histories and alert logs all have caps ([`ModelConfig`]); released and least recently active
//! pipes are evicted first.
//!
//! ```
//! use wqtrace::model::{Model, PipeOrder};
//! let mut m = Model::default();
//! for e in wqtrace::recording::fixtures::notification_session() {
//!     m.apply(&e);
//! }
//! let first = m.pipes_sorted(PipeOrder::Activity)[0];
//! assert!(first.notification);
//! assert_eq!(first.posts.lost, 1);
//! ```

pub mod alerts;
mod apply;
mod comm;
mod config;
pub mod history;
pub mod locks;
mod order;
pub mod pipes;
pub mod ring;
mod tasks;
mod totals;

use std::collections::VecDeque;

// Looked up several times per event: SipHash was a fifth of the TUI's CPU at 2M events/s.
use foldhash::HashMap;

use wqtrace_common::{Event, EventKind, Op, PostOutcome};

pub use alerts::{AlertLog, Interleave, Rejection, StackRefs};
pub use history::{OccHistory, OccSample, RateWindow};
pub use locks::{Contention, LockKind, MutexOwnerSeen, PipeLocks, WaitStats};
pub use pipes::{
    NoteLeaks, OpStats, Owner, PipeFds, PipeState, PostStats, RejectionCount, WatchSeen, pipe_label,
};
pub use ring::{Ring, Slot, SlotKind};

use alerts::{PENDING_CAP, PENDING_TTL_NS, PendingPost};
use apply::{apply_to_pipe, lock_kind};
pub use comm::Comm;
pub use config::ModelConfig;
pub use order::PipeOrder;
use order::sort_pipes;
pub use tasks::{Counters, TaskState};

/// The whole model. Cheap to clone for snapshots (replay seeking).
#[derive(Clone, Debug)]
pub struct Model {
    cfg: ModelConfig,
    pipes: HashMap<u64, PipeState>,
    /// Inode → pipe address, for events that carry only the inode.
    by_ino: HashMap<u64, u64>,
    retired: VecDeque<PipeState>,
    tasks: HashMap<u32, TaskState>,
    counters: Counters,
    contention: [Contention; 2],
    waits: WaitStats,
    rejections: AlertLog<Rejection>,
    interleaves: AlertLog<Interleave>,
    pending: VecDeque<PendingPost>,
    rate: RateWindow,
    first_ts: Option<u64>,
    last_ts: u64,
    /// Each pipe's kernel totals as last applied (`totals`), kept apart from the pipe so a
    /// pipe evicted and seen again is not counted twice.
    totals_seen: HashMap<(u64, u64), wqtrace_common::totals::PipeTotals>,
    /// Pipes freed since the last [`Model::final_totals`] (None before the first).
    freed: Option<foldhash::HashSet<(u64, u64)>>,
}

impl Default for Model {
    fn default() -> Self {
        Self::new(ModelConfig::default())
    }
}

impl Model {
    pub fn new(cfg: ModelConfig) -> Self {
        Self {
            rate: RateWindow::new(cfg.rate_bucket_ns, cfg.rate_buckets),
            rejections: AlertLog::new(cfg.max_alerts),
            interleaves: AlertLog::new(cfg.max_alerts),
            cfg,
            pipes: HashMap::default(),
            by_ino: HashMap::default(),
            retired: VecDeque::new(),
            tasks: HashMap::default(),
            counters: Counters::default(),
            contention: Default::default(),
            waits: WaitStats::default(),
            pending: VecDeque::new(),
            first_ts: None,
            last_ts: 0,
            totals_seen: HashMap::default(),
            freed: None,
        }
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Records the source's cumulative lost-event count.
    pub fn set_lost(&mut self, lost: u64) {
        self.counters.lost = lost;
    }

    /// The source's count of sleeps it could not time as pipe waits
    /// (`EventSource::sleeps_unattributed`).
    pub fn set_sleeps_unattributed(&mut self, n: u64) {
        self.counters.sleeps_unattributed = n;
    }

    /// The most pipes the source's programs knew at once (`EventSource::known_pipes`).
    pub fn set_known_pipes(&mut self, k: Option<crate::session::KnownPipes>) {
        self.counters.known_pipes = k;
    }

    /// Applies one event. Unknown kinds are counted and otherwise ignored.
    pub fn apply(&mut self, e: &Event) {
        let ts = e.ts_ns;
        self.counters.events += 1;
        let kind = e.kind();
        self.counters.per_kind[kind.map_or(0, |k| k as usize)] += 1;
        self.first_ts.get_or_insert(ts);
        self.last_ts = self.last_ts.max(ts);
        self.rate.record(ts);
        self.touch_task(e);
        let Some(kind) = kind else { return };
        self.apply_machine_wide(e, kind);
        let Some(key) = self.pipe_key(e, kind) else {
            self.counters.no_pipe += 1;
            return;
        };
        let p = self.pipes.get_mut(&key).expect("pipe_key inserts");
        let after = apply_to_pipe(p, e, kind, key);
        if let Some(f) = self.freed.as_mut()
            && kind == EventKind::PipeReleased
            && e.op() != Op::Close
        {
            f.insert((key, p.ino));
        }
        if let Some(post) = after.pending {
            if self.pending.len() == PENDING_CAP {
                self.pending.pop_front();
            }
            self.pending.push_back(post);
        }
        if let Some((op, from, to)) = after.interleave {
            self.check_interleave(e, key, op, from, to);
        }
        while self
            .pending
            .front()
            .is_some_and(|q| q.ts_ns.saturating_add(PENDING_TTL_NS) < ts)
        {
            self.pending.pop_front();
        }
    }

    /// The pipe-independent part of an event: machine-wide and per-task contention, waits,
    /// rejections and post outcomes.
    fn apply_machine_wide(&mut self, e: &Event, kind: EventKind) {
        let ts = e.ts_ns;
        let comm = Comm(e.comm);
        match kind {
            EventKind::LockContended => {
                let k = lock_kind(e).idx();
                // Machine-wide and for the waiting task.
                let add = |c: &mut Contention| c.add_event(e);
                add(&mut self.contention[k]);
                if let Some(t) = self.tasks.get_mut(&e.tid) {
                    add(&mut t.contention[k]);
                }
            }
            EventKind::PipeWait => {
                self.waits.add(e.duration_ns, e.off_cpu());
                if let Some(t) = self.tasks.get_mut(&e.tid) {
                    t.waits.add(e.duration_ns, e.off_cpu());
                    t.last_wait = Some((ts.saturating_sub(e.duration_ns), ts, e.pipe));
                }
            }
            EventKind::SpliceRejected => {
                self.rejections.push(Rejection {
                    ts_ns: ts,
                    pipe: e.pipe,
                    ino: e.ino,
                    op: e.op(),
                    tid: e.tid,
                    tgid: e.tgid,
                    comm,
                    ret: e.ret,
                    fd_in: e.fd_in,
                    fd_out: e.fd_out,
                    stacks: StackRefs::of(e),
                });
                if let Some(t) = self.tasks.get_mut(&e.tid) {
                    t.rejections += 1;
                }
            }
            EventKind::NotifyPosted => {
                let o = PostOutcome::from_flags(e.flags);
                self.counters.post_outcomes[o as usize] += 1;
                if o.is_lost() {
                    self.counters.posts_lost += 1;
                } else if o == PostOutcome::Landed {
                    self.counters.posted += 1;
                }
            }
            _ => {}
        }
    }

    /// A RingOp that wrote ring indices `from..to` of a pipe, by a task that held the mutex
    /// during earlier posts on it. Those posts took indices in that range too; an alert is
    /// raised for each one that landed strictly between the first and the last index the op
    /// itself wrote (a reader consuming while posts land never raises one: only ops that wrote
    /// into the pipe come here).
    fn check_interleave(&mut self, e: &Event, key: u64, op: Op, from: u32, to: u32) {
        let mut hit = Vec::new();
        self.pending.retain(|q| {
            if q.owner_tid == e.tid && q.pipe == key && q.ts_ns <= e.ts_ns {
                hit.push(*q);
                false
            } else {
                true
            }
        });
        let span = to.wrapping_sub(from);
        let in_op = |i: u32| i.wrapping_sub(from) < span;
        let posted = |i: u32| hit.iter().any(|q| q.index == i);
        // The op's own slots: its range minus the posts that landed in it.
        let own = (0..span)
            .map(|k| from.wrapping_add(k))
            .filter(|&i| !posted(i));
        let (Some(first), Some(last)) = (own.clone().next(), own.clone().next_back()) else {
            return;
        };
        let moved = own.count() as u32;
        for q in hit {
            let inside = in_op(q.index)
                && q.index.wrapping_sub(first) as i32 > 0
                && last.wrapping_sub(q.index) as i32 > 0;
            if !inside {
                continue;
            }
            self.interleaves.push(Interleave {
                post_ts_ns: q.ts_ns,
                op_ts_ns: e.ts_ns,
                pipe: key,
                ino: q.ino,
                slot: q.slot,
                owner_tid: q.owner_tid,
                owner: q.owner,
                op,
                slots_moved: moved,
                stacks: q.stacks,
            });
            if let Some(p) = self.pipes.get_mut(&key) {
                p.interleaves += 1;
            }
        }
    }

    fn touch_task(&mut self, e: &Event) {
        if e.tid == 0 {
            return;
        }
        if !self.tasks.contains_key(&e.tid) && self.tasks.len() >= self.cfg.max_tasks {
            // Drop the least recently seen eighth in one go (amortised O(1) per event).
            let mut v: Vec<(u64, u32)> =
                self.tasks.values().map(|t| (t.last_ts_ns, t.tid)).collect();
            v.sort_unstable();
            for (_, tid) in v.iter().take((self.cfg.max_tasks / 8).max(1)) {
                self.tasks.remove(tid);
            }
        }
        // Built only for a new task (a TaskState is ~250 bytes; this runs per event).
        let t = self.tasks.entry(e.tid).or_insert_with(|| TaskState {
            tid: e.tid,
            tgid: e.tgid,
            comm: Comm(e.comm),
            events: 0,
            first_ts_ns: e.ts_ns,
            last_ts_ns: e.ts_ns,
            waits: WaitStats::default(),
            last_wait: None,
            contention: Default::default(),
            rejections: 0,
        });
        t.events += 1;
        t.last_ts_ns = t.last_ts_ns.max(e.ts_ns);
        t.tgid = e.tgid;
        if e.comm[0] != 0 {
            t.comm = Comm(e.comm);
        }
    }

    /// Finds (or creates) the pipe an event is about; None when it names none.
    fn pipe_key(&mut self, e: &Event, kind: EventKind) -> Option<u64> {
        let key = if e.pipe != 0 {
            e.pipe
        } else if e.ino != 0 {
            // Only the inode is known: use it, or a synthetic key for it.
            *self.by_ino.get(&e.ino).unwrap_or(&e.ino)
        } else {
            return None;
        };
        if let Some(p) = self.pipes.get_mut(&key) {
            // The address was reused by a new pipe: retire the old one.
            let reused = kind == EventKind::PipeCreated
                && (p.is_released()
                    || p.created_ts_ns.is_some()
                    || (e.ino != 0 && p.ino != 0 && p.ino != e.ino));
            if !reused {
                // First seen by a post into a pipe no syscall had named yet: now it is.
                if p.ino == 0 && e.ino != 0 {
                    p.ino = e.ino;
                    self.by_ino.insert(e.ino, key);
                }
                return Some(key);
            }
            let old = self.pipes.remove(&key).expect("present");
            self.retire(old);
        }
        self.insert_pipe(key, e.ino, e.ts_ns);
        Some(key)
    }

    /// A new pipe under `key`, first seen at `ts`; room is made for it.
    fn insert_pipe(&mut self, key: u64, ino: u64, ts: u64) -> &mut PipeState {
        if self.pipes.len() >= self.cfg.max_pipes {
            self.evict_one();
        }
        let p = PipeState::new(
            key,
            ino,
            ts,
            OccHistory::new(self.cfg.history_bucket_ns, self.cfg.history_len),
            RateWindow::new(self.cfg.rate_bucket_ns, self.cfg.rate_buckets),
        );
        if ino != 0 {
            self.by_ino.insert(ino, key);
        }
        self.pipes.entry(key).insert_entry(p).into_mut()
    }

    fn evict_one(&mut self) {
        // Released pipes first (oldest release), else the least recently active.
        let victim = self
            .pipes
            .values()
            .min_by_key(|p| {
                (
                    !p.is_released(),
                    p.released_ts_ns.unwrap_or(p.last_ts_ns),
                    p.last_ts_ns,
                )
            })
            .map(|p| p.addr);
        if let Some(k) = victim {
            let p = self.pipes.remove(&k).expect("present");
            self.counters.evicted_pipes += 1;
            self.retire(p);
        }
    }

    fn retire(&mut self, p: PipeState) {
        if self.by_ino.get(&p.ino) == Some(&p.addr) {
            self.by_ino.remove(&p.ino);
        }
        if self.cfg.max_retired == 0 {
            return;
        }
        if self.retired.len() == self.cfg.max_retired {
            self.retired.pop_front();
        }
        self.retired.push_back(p);
    }

    // ---- accessors ----

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// First and last event timestamps (event clock, ns); None before any event.
    pub fn time_span(&self) -> Option<(u64, u64)> {
        self.first_ts.map(|f| (f, self.last_ts))
    }

    /// Timestamp of the newest event (0 before any).
    pub fn now_ns(&self) -> u64 {
        self.last_ts
    }

    /// Events per second over the last rate window (event clock).
    pub fn events_per_sec(&self) -> f64 {
        self.rate.per_sec(self.last_ts)
    }

    /// Events per second over the rate window ending at `now_ns` (event clock): unlike
    /// [`Model::events_per_sec`], falls to 0 when no event arrives (live views pass the current
    /// CLOCK_BOOTTIME).
    pub fn events_per_sec_at(&self, now_ns: u64) -> f64 {
        self.rate.per_sec(now_ns.max(self.last_ts))
    }

    /// A live pipe by kernel address.
    pub fn pipe(&self, addr: u64) -> Option<&PipeState> {
        self.pipes.get(&addr)
    }

    /// A live pipe by inode number.
    pub fn pipe_by_ino(&self, ino: u64) -> Option<&PipeState> {
        self.by_ino.get(&ino).and_then(|a| self.pipes.get(a))
    }

    /// Live (tracked) pipes, unordered.
    pub fn pipes(&self) -> impl Iterator<Item = &PipeState> {
        self.pipes.values()
    }

    /// Pipes retired (address reused or evicted), oldest first.
    pub fn retired_pipes(&self) -> impl Iterator<Item = &PipeState> {
        self.retired.iter()
    }

    /// Live pipes, notification pipes first, then in `order`.
    pub fn pipes_sorted(&self, order: PipeOrder) -> Vec<&PipeState> {
        let mut v: Vec<&PipeState> = self.pipes.values().collect();
        sort_pipes(&mut v, order);
        v
    }

    /// Live and retired pipes, notification pipes first, then in `order` (for reports).
    pub fn all_pipes_sorted(&self, order: PipeOrder) -> Vec<&PipeState> {
        let mut v: Vec<&PipeState> = self.pipes.values().chain(self.retired.iter()).collect();
        sort_pipes(&mut v, order);
        v
    }

    pub fn task(&self, tid: u32) -> Option<&TaskState> {
        self.tasks.get(&tid)
    }

    /// Tasks, most recently active first.
    pub fn tasks_sorted(&self) -> Vec<&TaskState> {
        let mut v: Vec<&TaskState> = self.tasks.values().collect();
        v.sort_by(|a, b| b.last_ts_ns.cmp(&a.last_ts_ns).then(a.tid.cmp(&b.tid)));
        v
    }

    /// Tasks whose last wait covers `ts_ns` (e.g. [`Model::now_ns`]).
    pub fn tasks_waiting_at(&self, ts_ns: u64) -> Vec<&TaskState> {
        let mut v: Vec<&TaskState> = self
            .tasks
            .values()
            .filter(|t| t.waiting_at(ts_ns))
            .collect();
        v.sort_by_key(|t| t.tid);
        v
    }

    /// Contention over all pipes for one lock kind.
    pub fn contention(&self, k: LockKind) -> &Contention {
        &self.contention[k.idx()]
    }

    /// PipeWait sleeps over all pipes.
    pub fn waits(&self) -> &WaitStats {
        &self.waits
    }

    /// Rejected splice/tee/vmsplice, newest last (bounded; `.total()` counts all).
    pub fn rejections(&self) -> &AlertLog<Rejection> {
        &self.rejections
    }

    /// Interleave alerts, newest last (bounded; `.total()` counts all).
    pub fn interleaves(&self) -> &AlertLog<Interleave> {
        &self.interleaves
    }
}

#[cfg(test)]
mod tests;
