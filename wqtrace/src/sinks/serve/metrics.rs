//! The metrics `wqtrace serve` exposes, updated from each event.
//!
//! Counters and histograms are cumulative over every event seen since start. Label sets are
//! bounded whatever the traced system does: at most [`Limits::comms`] distinct comms get a label
//! of their own (the rest count under `other`), notification types map to a fixed set of names,
//! and the ring-occupancy gauge has at most [`Limits::pipe_series`] per-pipe series (the rest are
//! summed under `pipe="other"`). Released pipes drop out of the gauge. The per-pipe state behind
//! the gauge is capped at [`Limits::tracked_pipes`] entries (least recently active evicted).
//!
//! Events are tallied in plain fields and published into the shared metric handles once per
//! batch ([`Metrics::apply_batch`]): every handle update is an atomic read-modify-write (a
//! counter's increment, a gauge's swap, a handle's reference count), and with several per
//! event they were most of serve's time on a notification storm. A scrape sees the values
//! as of the last batch.
//!
//! Pure: no kernel access, so the unit tests feed it hand-built events.

use foldhash::HashMap;
use std::sync::Arc;

use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge, info::Info},
    registry::{Registry, Unit},
};
use wqtrace_common::{
    Event, EventKind, Op, PostOutcome,
    counts::{WaitRow, hist},
};

use super::histogram::WaitHistogram;
pub use super::labels::note_type_name;
use super::labels::{
    CgroupLabels, Cgroups, Comms, KindLabels, LockLabels, NoteLabels, OutcomeLabels, PipeLabels,
    RejectLabels,
};
use crate::model::NoteLeaks;
use crate::probe::loader::CountedTotals;

/// Label value for everything past a cap.
pub const OTHER: &str = "other";
/// Label value when the pipe's owner was never seen (e.g. created before `serve` started).
pub const UNKNOWN: &str = "unknown";

/// Caps on label sets and state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Distinct comm label values (per process lifetime: counters never forget a label).
    pub comms: usize,
    /// Distinct cgroup label values, likewise.
    pub cgroups: usize,
    /// Per-pipe series in the occupancy gauge at once.
    pub pipe_series: usize,
    /// Pipes whose owner and occupancy are remembered at once.
    pub tracked_pipes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            comms: 64,
            cgroups: 64,
            pipe_series: 64,
            tracked_pipes: 4096,
        }
    }
}

/// What the metrics cover beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub limits: Limits,
    /// Occupancy gauge for ordinary pipes too (default: notification pipes only).
    pub all_pipes: bool,
    /// The kernel's free_pipe_info() is not hooked (tracepoint fallback): treat a pipe as gone
    /// once both of its fds were closed.
    pub release_on_close: bool,
    /// The source's cgroup names, for the `cgroup` label.
    pub cgroups: Option<crate::cgroup::SharedCgroups>,
}

/// The constant facts of the session: `wqtrace_build_info`.
#[derive(Clone, Debug, Default)]
pub struct BuildInfo {
    pub version: String,
    pub kernel_release: String,
    /// Hook name → attach method ("fentry", "kprobe", "tp_btf", "tracepoint", "unavailable").
    pub attach: Vec<(String, String)>,
}

#[derive(Debug)]
struct Tracked {
    ino: u64,
    /// Comm label of the reading process (or the creator until a reader shows up).
    owner: Option<Arc<str>>,
    /// The comm `owner` was made from: a reader that reads again needs no label lookup.
    owner_comm: [u8; 16],
    owner_is_reader: bool,
    occupancy: u32,
    /// Its own gauge series, or None when it counts under `other`.
    series: Option<(PipeLabels, Gauge)>,
    /// Its occupancy changed since the last publish (it is in `Metrics::dirty`).
    dirty: bool,
    closes: u8,
    last_seen: u64,
    /// Notes its queue leaked (`model::NoteLeaks`), in `Metrics::notes_leaked`.
    notes_leaked: NoteLeaks,
    /// Time and process of the last event on it (for [`Metrics::sweep`]).
    last_ts_ns: u64,
    last_tgid: u32,
}

/// A notification counter's series: posted or lost, the type's name, and the owner label by
/// address: [`Comms`] hands out one `Arc` per label value and keeps it for the process's life.
type NoteKey = (bool, &'static str, usize);

/// Every metric and the state behind the bounded ones. Feed it events with [`Metrics::apply`];
/// the [`Registry`] returned by [`Metrics::new`] encodes the current values at any time (the
/// metric handles are shared, thread-safe atomics).
pub struct Metrics {
    opts: Options,
    comms: Comms,
    posted: Family<NoteLabels, Counter>,
    lost: Family<NoteLabels, Counter>,
    /// Their series by (type, owner label) at hand, with the posts not yet published: the
    /// family's lookup hashes and compares the label strings, per post.
    notes_at: HashMap<NoteKey, (Counter, u64)>,
    /// Every post attempt by outcome (`PostOutcome::ALL` order): exactly one each.
    outcomes: Vec<Counter>,
    outcomes_pending: Vec<u64>,
    rejected: Family<RejectLabels, Counter>,
    pipe_wait: WaitHistogram,
    /// Mutex, rd_wait.
    lock_wait: [WaitHistogram; 2],
    events: Vec<Counter>,
    /// Events by kind not yet published, with the unknown kinds last.
    events_pending: Vec<u64>,
    events_unknown: Counter,
    by_cgroup: Family<CgroupLabels, Counter>,
    cgroups: Cgroups,
    events_lost: Counter,
    lost_seen: u64,
    sleeps_unattributed: Counter,
    unattributed_seen: u64,
    /// The most pipes the programs knew at once, and how many they keep without dropping one.
    known_pipes: [Gauge; 2],
    occupancy: Family<PipeLabels, Gauge>,
    other_series: Gauge,
    other_sum: i64,
    tracked_gauge: Gauge,
    /// Notes leaked by the queues of the tracked pipes, summed (published from `leaked_sum`).
    notes_leaked: Gauge,
    leaked_sum: i64,
    pipes: HashMap<u64, Tracked>,
    /// Tracked pipes whose occupancy series is behind.
    dirty: Vec<u64>,
    labelled: usize,
    seq: u64,
    /// Running totals of the events counted in the kernel, per (cgroup id, kind), and of its
    /// wait histograms, as last added.
    counted: HashMap<(u64, u32), u64>,
    counted_waits: [WaitRow; hist::ROWS as usize],
}

/// Moves `counter` on by what a source's cumulative count grew to `now` since `seen`.
fn grow_to(counter: &Counter, seen: &mut u64, now: u64) {
    if now > *seen {
        counter.inc_by(now - *seen);
        *seen = now;
    }
}

impl Metrics {
    // Long on purpose: it registers every family, one after the other: the list of what serve exports.
    pub fn new(opts: Options, info: &BuildInfo) -> (Self, Registry) {
        // Unprefixed at the root: the standard process_* metrics (see super::cost) live there.
        let mut root = Registry::default();
        let reg = root.sub_registry_with_prefix("wqtrace");
        let mut labels = vec![
            ("version".to_string(), info.version.clone()),
            ("kernel_release".to_string(), info.kernel_release.clone()),
        ];
        labels.extend(info.attach.iter().map(|(h, m)| {
            // "fentry free_pipe_info" → "fentry": the method, not the target.
            let method = m.split_whitespace().next().unwrap_or("").to_string();
            (h.clone(), method)
        }));
        reg.register(
            "build",
            "wqtrace version, kernel release and the attach method of each hook",
            Info::new(labels),
        );

        let posted = Family::<NoteLabels, Counter>::default();
        reg.register(
            "notifications_posted",
            "Notifications the kernel wrote into a notification pipe, by notification type and the pipe owner's comm",
            posted.clone(),
        );
        let lost = Family::<NoteLabels, Counter>::default();
        reg.register(
            "notifications_lost",
            "Notification posts lost (ring or notes full), by notification type and the pipe owner's comm",
            lost.clone(),
        );
        let outcome_family = Family::<OutcomeLabels, Counter>::default();
        reg.register(
            "notification_posts",
            "Notification post attempts by outcome: landed, lost_ring_full, lost_notes_full, lost_reason_unknown, skipped_filter, unknown, unattributed",
            outcome_family.clone(),
        );
        let outcomes = PostOutcome::ALL
            .iter()
            .map(|o| outcome_family.get_or_create_owned(&OutcomeLabels { outcome: o.name() }))
            .collect();
        let rejected = Family::<RejectLabels, Counter>::default();
        reg.register(
            "splice_rejections",
            "splice/tee/vmsplice calls refused on a notification pipe, by syscall and caller comm",
            rejected.clone(),
        );
        let pipe_wait = WaitHistogram::default();
        reg.register_with_unit(
            "pipe_wait",
            "Time tasks slept waiting for a pipe (splice paths' wait functions, or off-CPU time inside read/write)",
            Unit::Seconds,
            pipe_wait.clone(),
        );
        let lock_fam =
            Family::<LockLabels, WaitHistogram, fn() -> WaitHistogram>::new_with_constructor(
                WaitHistogram::default as fn() -> WaitHistogram,
            );
        reg.register_with_unit(
            "lock_contention",
            "Time tasks waited for a contended pipe lock (the pipe mutex, or the rd_wait spinlock notification posts take)",
            Unit::Seconds,
            lock_fam.clone(),
        );
        // One statement each: a `get_or_create` guard held across the next would deadlock.
        let mutex = lock_fam.get_or_create_owned(&LockLabels { lock: "mutex" });
        let rd_wait = lock_fam.get_or_create_owned(&LockLabels { lock: "rd_wait" });
        let lock_wait = [mutex, rd_wait];
        let occupancy = Family::<PipeLabels, Gauge>::default();
        reg.register(
            "pipe_ring_occupancy_slots",
            "Ring slots in use per notification pipe (every pipe with --all-pipes), by pipe inode and owner comm; pipes past the cap are summed under pipe=\"other\"",
            occupancy.clone(),
        );
        let other: Arc<str> = OTHER.into();
        let other_series = occupancy
            .get_or_create(&PipeLabels {
                pipe: other.clone(),
                comm: other,
            })
            .clone();
        let tracked_gauge = Gauge::default();
        reg.register(
            "tracked_pipes",
            "Pipes whose ring occupancy serve currently tracks (bounded)",
            tracked_gauge.clone(),
        );
        let notes_leaked = Gauge::default();
        reg.register(
            "notification_notes_leaked",
            "Notes the notification queues of the tracked pipes leaked: in use with no ring slot holding them at two landed posts in a row, never handed out again while the pipe lives",
            notes_leaked.clone(),
        );
        let kinds = Family::<KindLabels, Counter>::default();
        reg.register(
            "events_processed",
            "Events from the probes, by kind (without --all-pipes, ring ops, waits and contention on ordinary pipes are counted in the kernel, not streamed: the same counts)",
            kinds.clone(),
        );
        let events: Vec<Counter> = EventKind::ALL
            .iter()
            .map(|k| kinds.get_or_create_owned(&KindLabels { kind: k.name() }))
            .collect();
        let events_unknown = kinds.get_or_create_owned(&KindLabels { kind: "unknown" });
        let by_cgroup = Family::<CgroupLabels, Counter>::default();
        reg.register(
            "cgroup_events",
            "Events by the cgroup (v2) of the task and by kind; cgroups past the cap count under cgroup=\"other\", ids without a path under \"unknown\"",
            by_cgroup.clone(),
        );
        let cgroups = Cgroups {
            cap: opts.limits.cgroups,
            names: opts.cgroups.clone(),
            labels: HashMap::default(),
            counters: HashMap::default(),
            unnamed: HashMap::default(),
            unnamed_at: 0,
            pending: HashMap::default(),
            run: Default::default(),
        };
        let events_lost = Counter::default();
        reg.register(
            "events_lost",
            "Events wqtrace itself dropped: the probes found its ring buffer full",
            events_lost.clone(),
        );
        let sleeps_unattributed = Counter::default();
        reg.register(
            "sleeps_unattributed",
            "Sleeps in splice, tee or vmsplice not timed as pipe waits: woken as they left the \
             CPU, on a wait queue that could no longer be told (only where \
             pipe_wait_readable/_writable cannot be hooked)",
            sleeps_unattributed.clone(),
        );
        let known_pipes = [Gauge::default(), Gauge::default()];
        reg.register(
            "known_pipes_peak",
            "The most pipes wqtrace's programs knew at once; past wqtrace_known_pipes_room one \
             may have been dropped from their memory, and its free gone unseen",
            known_pipes[0].clone(),
        );
        reg.register(
            "known_pipes_room",
            "How many pipes wqtrace's programs keep in mind without dropping one",
            known_pipes[1].clone(),
        );
        let comms = Comms::new(opts.limits.comms);
        let m = Self {
            opts,
            comms,
            posted,
            lost,
            notes_at: HashMap::default(),
            outcomes_pending: vec![0; PostOutcome::ALL.len()],
            outcomes,
            rejected,
            pipe_wait,
            lock_wait,
            events_pending: vec![0; events.len() + 1],
            events,
            events_unknown,
            by_cgroup,
            cgroups,
            events_lost,
            lost_seen: 0,
            sleeps_unattributed,
            unattributed_seen: 0,
            known_pipes,
            occupancy,
            other_series,
            other_sum: 0,
            tracked_gauge,
            notes_leaked,
            leaked_sum: 0,
            pipes: HashMap::default(),
            dirty: Vec::new(),
            labelled: 0,
            seq: 0,
            counted: HashMap::default(),
            counted_waits: Default::default(),
        };
        (m, root)
    }

    /// Records the source's cumulative lost-event count.
    pub fn set_lost(&mut self, lost: u64) {
        grow_to(&self.events_lost, &mut self.lost_seen, lost);
    }

    /// Records the source's cumulative count of sleeps it could not time as pipe waits
    /// (`EventSource::sleeps_unattributed`).
    pub fn set_unattributed(&mut self, n: u64) {
        grow_to(&self.sleeps_unattributed, &mut self.unattributed_seen, n);
    }

    /// The most pipes the source's programs knew at once (`EventSource::known_pipes`); none
    /// (a source without programs) leaves both gauges at 0.
    pub fn set_known_pipes(&mut self, k: Option<crate::session::KnownPipes>) {
        let k = k.unwrap_or_default();
        self.known_pipes[0].set(k.peak as i64);
        self.known_pipes[1].set(k.room as i64);
    }

    /// Events on ordinary pipes the probes counted instead of streaming (running totals).
    /// What they grew by since the last call goes to the same counters and histograms
    /// streamed events feed.
    pub fn add_counted(&mut self, totals: &CountedTotals) {
        for &(cgroup, kind, total) in &totals.events {
            let before = self.counted.insert((cgroup, kind), total).unwrap_or(0);
            let n = total.saturating_sub(before);
            let kind = u8::try_from(kind).ok().and_then(EventKind::from_u8);
            let Some(kind) = kind.filter(|_| n > 0) else {
                continue;
            };
            self.events[kind as usize - 1].inc_by(n);
            if cgroup != 0 {
                self.cgroups
                    .counter(&self.by_cgroup, cgroup, kind)
                    .inc_by(n);
            }
        }
        // In `counts::hist` row order.
        let hists = [&self.pipe_wait, &self.lock_wait[0], &self.lock_wait[1]];
        for ((h, seen), now) in hists
            .into_iter()
            .zip(&mut self.counted_waits)
            .zip(&totals.waits)
        {
            h.add(&now.since(seen));
            *seen = *now;
        }
    }

    /// Events counted in the kernel and added so far, by kind (in `EventKind::ALL` order,
    /// kinds with none left out).
    pub fn counted_by_kind(&self) -> Vec<(EventKind, u64)> {
        EventKind::ALL
            .iter()
            .map(|&k| {
                let n = self
                    .counted
                    .iter()
                    .filter(|((_, kind), _)| *kind == k as u32)
                    .map(|(_, n)| n)
                    .sum();
                (k, n)
            })
            .filter(|&(_, n)| n > 0)
            .collect()
    }

    /// Pipes currently tracked, and how many of them have a series of their own.
    pub fn tracked(&self) -> (usize, usize) {
        (self.pipes.len(), self.labelled)
    }

    /// Applies one event and publishes it.
    pub fn apply(&mut self, e: &Event) {
        self.apply_batch(std::slice::from_ref(e));
    }

    /// Applies a batch of events, then publishes what they changed.
    pub fn apply_batch(&mut self, events: &[Event]) {
        for e in events {
            self.apply_one(e);
        }
        self.publish();
    }

    /// Moves what the events applied since the last call tallied into the shared handles.
    fn publish(&mut self) {
        let (unknown, by_kind) = self.events_pending.split_last_mut().expect("never empty");
        for (c, n) in self.events.iter().zip(by_kind) {
            if *n != 0 {
                c.inc_by(std::mem::take(n));
            }
        }
        if *unknown != 0 {
            self.events_unknown.inc_by(std::mem::take(unknown));
        }
        for (c, n) in self.outcomes.iter().zip(&mut self.outcomes_pending) {
            if *n != 0 {
                c.inc_by(std::mem::take(n));
            }
        }
        for (c, n) in self.notes_at.values_mut() {
            if *n != 0 {
                c.inc_by(std::mem::take(n));
            }
        }
        self.cgroups.publish(&self.by_cgroup);
        let mut dirty = std::mem::take(&mut self.dirty);
        for key in dirty.drain(..) {
            if let Some(p) = self.pipes.get_mut(&key) {
                p.dirty = false;
                if let Some((_, g)) = &p.series {
                    g.set(i64::from(p.occupancy));
                }
            }
        }
        self.dirty = dirty;
        self.other_series.set(self.other_sum);
        self.tracked_gauge.set(self.pipes.len() as i64);
        self.notes_leaked.set(self.leaked_sum);
    }

    fn apply_one(&mut self, e: &Event) {
        self.seq += 1;
        let Some(kind) = e.kind() else {
            *self.events_pending.last_mut().expect("never empty") += 1;
            return;
        };
        self.events_pending[kind as usize - 1] += 1;
        if e.cgroup != 0 {
            self.cgroups.count(e.cgroup, kind);
        }
        match kind {
            EventKind::PipeWait => {
                self.pipe_wait.observe_ns(e.duration_ns);
            }
            EventKind::LockContended => {
                let i = usize::from(!e.on_mutex());
                self.lock_wait[i].observe_ns(e.duration_ns);
            }
            EventKind::SpliceRejected => {
                let comm = self.comms.label(&e.comm);
                self.rejected
                    .get_or_create(&RejectLabels {
                        syscall: e.op().name(),
                        comm,
                    })
                    .inc();
            }
            _ => {}
        }
        self.track(e, kind);
    }

    /// Owner/occupancy bookkeeping, and the notification counters (labelled by the owner).
    fn track(&mut self, e: &Event, kind: EventKind) {
        let notif_kind = matches!(
            kind,
            EventKind::NotifyPosted | EventKind::WatchQueueSized | EventKind::WatchAdded
        );
        let eligible = self.opts.all_pipes || notif_kind || e.is_notification_pipe();
        // Pipes are known by inode number: unique among live pipes, and what users see.
        let key = e.ino;
        if kind == EventKind::NotifyPosted {
            // Borrowed: a clone is two atomic reference-count updates per post.
            let owner = self
                .pipes
                .get(&key)
                .and_then(|p| p.owner.as_ref())
                .unwrap_or(&self.comms.unknown);
            let o = PostOutcome::from_flags(e.flags);
            self.outcomes_pending[o as usize] += 1;
            if o.is_lost() || o == PostOutcome::Landed {
                let r#type = note_type_name(e.ntype);
                let key = (
                    o.is_lost(),
                    r#type,
                    Arc::as_ptr(owner).cast::<u8>() as usize,
                );
                let fam = if o.is_lost() {
                    &self.lost
                } else {
                    &self.posted
                };
                self.notes_at
                    .entry(key)
                    .or_insert_with(|| {
                        let labels = NoteLabels {
                            r#type,
                            comm: owner.clone(),
                        };
                        (fam.get_or_create_owned(&labels), 0)
                    })
                    .1 += 1;
            }
        }
        if key == 0 || !eligible {
            return;
        }
        if kind == EventKind::PipeReleased {
            let gone = if e.op() == Op::Close {
                if !self.opts.release_on_close {
                    // free_pipe_info() will tell: this fd may not be the last reference.
                    self.touch(key, e, kind);
                    return;
                }
                let Some(p) = self.pipes.get_mut(&key) else {
                    return;
                };
                p.closes = p.closes.saturating_add(1);
                p.closes >= 2
            } else {
                true
            };
            if gone {
                self.forget(key);
            }
            return;
        }
        self.touch(key, e, kind);
    }

    // Long on purpose: one pass over a pipe's gauge state per event (identity, owner, occupancy, release).
    fn touch(&mut self, key: u64, e: &Event, kind: EventKind) {
        if self.pipes.len() >= self.opts.limits.tracked_pipes && !self.pipes.contains_key(&key) {
            self.evict();
        }
        // One lookup per event where there were three: hashbrown's probing was most of
        // serve's time on an event in a perf profile of the sinks benchmark.
        let seq = self.seq;
        let p = self.pipes.entry(key).or_insert_with(|| Tracked {
            ino: e.ino,
            owner: None,
            owner_comm: [0; 16],
            owner_is_reader: false,
            occupancy: 0,
            series: None,
            dirty: false,
            closes: 0,
            last_seen: seq,
            last_ts_ns: e.ts_ns,
            last_tgid: e.tgid,
            notes_leaked: NoteLeaks::default(),
        });
        // The owner: the reader once one reads, else whoever created or used the pipe.
        // Posts run in the poster's context, and lock waits in a contender's: neither owns it.
        let reader = kind == EventKind::RingOp && matches!(e.op(), Op::Read | Op::Readv);
        let owner_event = matches!(
            kind,
            EventKind::PipeCreated
                | EventKind::RingOp
                | EventKind::WatchQueueSized
                | EventKind::WatchAdded
        );
        let replace = owner_event
            && e.comm[0] != 0
            && (p.owner.is_none()
                || reader
                || (kind == EventKind::PipeCreated && !p.owner_is_reader));
        p.last_seen = seq;
        p.last_ts_ns = p.last_ts_ns.max(e.ts_ns);
        if e.tgid != 0 && kind != EventKind::NotifyPosted {
            p.last_tgid = e.tgid;
        }
        let mut relabel = false;
        if replace {
            p.owner_is_reader |= reader;
            if p.owner.is_none() || p.owner_comm != e.comm {
                let o = self.comms.label(&e.comm);
                p.owner_comm = e.comm;
                if p.owner.as_deref() != Some(&*o) {
                    p.owner = Some(o);
                    relabel = p.series.is_some();
                }
            }
        }
        if kind == EventKind::NotifyPosted
            && e.nr_notes != 0
            && e.has_ring()
            && PostOutcome::from_flags(e.flags) == PostOutcome::Landed
        {
            let before = p.notes_leaked.count;
            p.notes_leaked
                .landed(e.ts_ns, e.notes_in_use, e.head.wrapping_sub(e.tail));
            self.leaked_sum += i64::from(p.notes_leaked.count - before);
        }
        if e.has_ring() {
            let occ = e.head.wrapping_sub(e.tail).min(e.ring_size);
            let old = std::mem::replace(&mut p.occupancy, occ);
            if p.series.is_some() {
                if !p.dirty && occ != old {
                    p.dirty = true;
                    self.dirty.push(key);
                }
            } else {
                self.other_sum += i64::from(occ) - i64::from(old);
            }
        }
        if relabel {
            // The owner changed: move the series to the new label set.
            let (labels, _) = p.series.take().expect("relabel only with a series");
            self.occupancy.remove(&labels);
            self.labelled -= 1;
            self.give_series(key);
        } else if p.series.is_none() && self.labelled < self.opts.limits.pipe_series {
            // Was counted under `other` until now (or is new): give it its own series.
            let occ = p.occupancy;
            self.other_sum -= i64::from(occ);
            self.give_series(key);
        }
    }

    /// A series of its own for a tracked pipe whose occupancy is not in `other_sum`.
    fn give_series(&mut self, key: u64) {
        let p = self.pipes.get_mut(&key).expect("tracked");
        debug_assert!(p.series.is_none());
        let labels = PipeLabels {
            pipe: p.ino.to_string().into(),
            comm: p
                .owner
                .clone()
                .unwrap_or_else(|| self.comms.unknown.clone()),
        };
        let g = self.occupancy.get_or_create_owned(&labels);
        g.set(i64::from(p.occupancy));
        self.labelled += 1;
        p.series = Some((labels, g));
    }

    fn forget(&mut self, key: u64) {
        let Some(p) = self.pipes.remove(&key) else {
            return;
        };
        self.leaked_sum -= i64::from(p.notes_leaked.count);
        match p.series {
            Some((labels, _)) => {
                self.occupancy.remove(&labels);
                self.labelled -= 1;
            }
            None => {
                self.other_sum -= i64::from(p.occupancy);
            }
        }
    }

    /// For kernels where free_pipe_info() is not hooked: a process that exits closes its fds
    /// without close(2), so no event says its pipes are gone. Pipes idle since before
    /// `idle_before_ns` whose last user no longer `holds(tgid, ino)` them are forgotten (they
    /// come back with their next event). Returns how many were dropped.
    pub fn sweep(&mut self, idle_before_ns: u64, mut holds: impl FnMut(u32, u64) -> bool) -> usize {
        let gone: Vec<u64> = self
            .pipes
            .iter()
            .filter(|(_, p)| p.last_ts_ns < idle_before_ns && !holds(p.last_tgid, p.ino))
            .map(|(k, _)| *k)
            .collect();
        for k in &gone {
            self.forget(*k);
        }
        self.publish();
        gone.len()
    }

    /// Drops the least recently active eighth of the tracked pipes (amortised O(1) per pipe).
    fn evict(&mut self) {
        let mut v: Vec<(u64, u64)> = self.pipes.iter().map(|(k, p)| (p.last_seen, *k)).collect();
        v.sort_unstable();
        let n = (self.opts.limits.tracked_pipes / 8).max(1);
        for (_, k) in v.into_iter().take(n) {
            self.forget(k);
        }
    }
}
