//! A batch of live events on its way from the drain thread to the naming thread, with what
//! the naming thread needs to know of it.
//!
//! The drain thread copies every event out of the kernel's ring; noting its stacks and cgroup
//! then costs a few compares on cache lines it has just read. The naming thread, on another CPU,
//! scanned every event of every batch for them instead: a cache miss per event, ~6 % of a CPU
//! under `stress-ng --tee` (4 M events/s), to find a few stacks and the same cgroups.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
    mpsc::{SyncSender, TrySendError},
};

use wqtrace_common::{Event, stack_ref};

use crate::{
    cgroup::SharedCgroups,
    stacks::{SharedStacks, StackKey},
};

/// Distinct cgroups a batch's notes list before they give up (the naming thread then scans
/// the batch itself).
const MAX_CGROUPS: usize = 32;
/// Distinct stacks likewise. Stacks are taken for the rare events only, at most
/// `stack_ref::PER_CPU_PER_SEC` a CPU per kind.
const MAX_STACKS: usize = 256;

pub struct Batch {
    pub events: Vec<Event>,
    pub notes: Notes,
}

/// What the events of a batch refer to that may need naming.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notes {
    /// The stacks the events name, each once, or None: more than MAX_STACKS of them.
    stacks: Option<Vec<StackKey>>,
    /// Some event took a user stack since [`Notes::take_user_stacks`] was last called.
    user_stacks: bool,
    /// The cgroup ids the events carry, each once, or None: more than MAX_CGROUPS of them.
    cgroups: Option<Vec<u64>>,
    /// The cgroup of the last event noted: runs of one task's events share one.
    last_cgroup: u64,
}

impl Default for Notes {
    fn default() -> Self {
        Self::new()
    }
}

impl Notes {
    pub fn new() -> Self {
        Self {
            stacks: Some(Vec::new()),
            user_stacks: false,
            cgroups: Some(Vec::new()),
            last_cgroup: 0,
        }
    }

    #[inline]
    pub fn note(&mut self, e: &Event) {
        if e.has_stacks() {
            self.note_stacks(e);
        }
        if e.cgroup != self.last_cgroup {
            self.last_cgroup = e.cgroup;
            note_once(&mut self.cgroups, e.cgroup, MAX_CGROUPS);
        }
    }

    #[cold]
    fn note_stacks(&mut self, e: &Event) {
        for k in StackKey::of_both(e) {
            note_once(&mut self.stacks, k, MAX_STACKS);
        }
        self.user_stacks |= stack_ref::id(e.ustack).is_some();
    }

    /// The stacks the batch's events name, or None when there were too many to list (look at
    /// the events).
    pub fn stacks(&self) -> Option<&[StackKey]> {
        self.stacks.as_deref()
    }

    /// The cgroup ids of the batch's events, or None when there were too many to list (look
    /// at the events).
    pub fn cgroups(&self) -> Option<&[u64]> {
        self.cgroups.as_deref()
    }

    /// Whether an event noted since the last call took a user stack (its process's memory map
    /// is to be read).
    pub fn take_user_stacks(&mut self) -> bool {
        std::mem::take(&mut self.user_stacks)
    }
}

/// Where the drain thread hands a batch: to the naming thread, or, when the batch names no
/// stack, cgroup or process map the tables lack and no batch is being named, straight to the
/// sink. The naming thread's wake-ups were most of its CPU once it scanned no event (one per
/// batch, ~1000 a second under `stress-ng --tee`). The sink still sees batches in order: one
/// goes around the naming thread only once that thread has handed on every batch it was given.
/// Both ways share one bound, `max_queued` batches not yet taken by the sink: a batch going
/// around must find the whole queue a burst had before, not the sink's part of it.
pub struct Handoff {
    pub naming: SyncSender<Batch>,
    pub sink: SyncSender<Vec<Event>>,
    /// Batches given to the naming thread and not yet handed on by it.
    pub in_naming: Arc<AtomicUsize>,
    /// Batches handed over (either way) and not yet taken by the sink: the sink takes one off
    /// as it receives a batch.
    pub queued: Arc<AtomicUsize>,
    pub max_queued: usize,
    /// The stack table, when stacks are named (None: `--stacks none`).
    pub stacks: Option<SharedStacks>,
    pub cgroups: SharedCgroups,
}

impl Handoff {
    /// `maps_sent`: a process's memory map went to the naming thread for this batch (it takes
    /// it when it names the batch, so the batch must pass there).
    pub fn try_send(&self, b: Batch, maps_sent: bool) -> Result<(), TrySendError<Batch>> {
        // Only this thread adds: a count under the bound stays under it until the send.
        if self.queued.load(Ordering::Acquire) >= self.max_queued {
            return Err(TrySendError::Full(b));
        }
        let sent = self.send_either_way(b, maps_sent);
        if sent.is_ok() {
            self.queued.fetch_add(1, Ordering::AcqRel);
        }
        sent
    }

    /// The last batch of the session: through the naming thread, waiting for room.
    pub fn send_last(&self, b: Batch) {
        self.in_naming.fetch_add(1, Ordering::AcqRel);
        self.queued.fetch_add(1, Ordering::AcqRel);
        let _ = self.naming.send(b);
    }

    fn send_either_way(&self, b: Batch, maps_sent: bool) -> Result<(), TrySendError<Batch>> {
        if !maps_sent && self.in_naming.load(Ordering::Acquire) == 0 && self.named(&b.notes) {
            let Batch { events, notes } = b;
            return self.sink.try_send(events).map_err(|e| match e {
                TrySendError::Full(events) => TrySendError::Full(Batch { events, notes }),
                TrySendError::Disconnected(events) => {
                    TrySendError::Disconnected(Batch { events, notes })
                }
            });
        }
        self.in_naming.fetch_add(1, Ordering::AcqRel);
        self.naming.try_send(b).inspect_err(|_| {
            self.in_naming.fetch_sub(1, Ordering::AcqRel);
        })
    }

    /// Whether the tables hold everything `n` names.
    fn named(&self, n: &Notes) -> bool {
        let stacks = match (&self.stacks, n.stacks()) {
            (None, _) | (_, Some([])) => true,
            (Some(_), None) => false,
            (Some(t), Some(keys)) => {
                let t = t.read().unwrap_or_else(|p| p.into_inner());
                keys.iter().all(|k| t.contains(k))
            }
        };
        stacks
            && n.cgroups().is_some_and(|ids| {
                let t = self.cgroups.read().unwrap_or_else(|p| p.into_inner());
                ids.iter().all(|&id| id == 0 || t.contains(id))
            })
    }
}

/// Adds `v` to `list` unless it is there; a list that would grow past `max` becomes None.
fn note_once<T: PartialEq>(list: &mut Option<Vec<T>>, v: T, max: usize) {
    if let Some(l) = list
        && !l.contains(&v)
    {
        if l.len() < max {
            l.push(v);
        } else {
            *list = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(cgroup: u64, kstack: u16, ustack: u16) -> Event {
        Event {
            cgroup,
            kstack,
            ustack,
            ..Event::zeroed()
        }
    }

    #[test]
    fn no_stacks_and_each_cgroup_once() {
        let mut n = Notes::new();
        for cg in [7, 7, 9, 7, 0, 9] {
            n.note(&ev(cg, stack_ref::NONE, stack_ref::NONE));
        }
        assert_eq!(n.stacks(), Some(&[][..]));
        assert!(!n.take_user_stacks());
        assert_eq!(n.cgroups(), Some(&[7, 9, 0][..]));
    }

    #[test]
    fn stacks_named_once_and_user_stacks_until_taken() {
        let mut n = Notes::new();
        // Asked but skipped (past the budget): nothing to name.
        n.note(&Event {
            tgid: 40,
            ..ev(1, stack_ref::SKIPPED, stack_ref::SKIPPED)
        });
        assert_eq!(n.stacks(), Some(&[][..]));
        assert!(!n.take_user_stacks(), "no user stack was taken");
        for _ in 0..3 {
            n.note(&Event {
                tgid: 40,
                ..ev(1, 5, 6)
            });
        }
        let k = |user, tgid, id| StackKey { user, tgid, id };
        assert_eq!(n.stacks(), Some(&[k(false, 0, 4), k(true, 40, 5)][..]));
        assert!(n.take_user_stacks());
        assert!(!n.take_user_stacks(), "reported once");
        // Same user stack id, another process: another stack.
        n.note(&Event {
            tgid: 41,
            ..ev(1, stack_ref::NONE, 6)
        });
        assert_eq!(n.stacks().map(<[StackKey]>::len), Some(3));
        assert!(n.take_user_stacks());
    }

    #[test]
    fn too_many_stacks_leaves_the_scan_to_the_naming_thread() {
        let mut n = Notes::new();
        for id in 1..=MAX_STACKS as u16 {
            n.note(&ev(1, id, stack_ref::NONE));
        }
        assert_eq!(n.stacks().map(<[StackKey]>::len), Some(MAX_STACKS));
        n.note(&ev(1, 1000, stack_ref::NONE));
        assert_eq!(n.stacks(), None);
    }

    #[test]
    fn too_many_cgroups_leaves_the_scan_to_the_naming_thread() {
        let mut n = Notes::new();
        for cg in 1..=MAX_CGROUPS as u64 {
            n.note(&ev(cg, stack_ref::NONE, stack_ref::NONE));
        }
        assert_eq!(n.cgroups().map(<[u64]>::len), Some(MAX_CGROUPS));
        n.note(&ev(1000, stack_ref::NONE, stack_ref::NONE));
        assert_eq!(n.cgroups(), None);
        n.note(&ev(1001, stack_ref::NONE, stack_ref::NONE));
        assert_eq!(n.cgroups(), None);
    }

    /// A handoff with room for `n` batches each way, the receivers of the naming thread and
    /// of the sink, and cgroup 7 and kernel stack 3 already named.
    fn handoff(
        n: usize,
    ) -> (
        Handoff,
        std::sync::mpsc::Receiver<Batch>,
        std::sync::mpsc::Receiver<Vec<Event>>,
    ) {
        let (naming, to_naming) = std::sync::mpsc::sync_channel(n);
        let (sink, to_sink) = std::sync::mpsc::sync_channel(n);
        let stacks = crate::stacks::shared();
        let k = StackKey::of(&ev(0, 3, stack_ref::NONE), false).unwrap();
        stacks
            .write()
            .unwrap()
            .insert(k, crate::stacks::Stack::unknown("test"));
        let cgroups = SharedCgroups::default();
        cgroups.write().unwrap().insert(7, "/a".into());
        let h = Handoff {
            naming,
            sink,
            in_naming: Arc::default(),
            queued: Arc::default(),
            max_queued: 2 * n,
            stacks: Some(stacks),
            cgroups,
        };
        (h, to_naming, to_sink)
    }

    fn batch_of(events: &[Event]) -> Batch {
        let mut notes = Notes::new();
        events.iter().for_each(|e| notes.note(e));
        Batch {
            events: events.to_vec(),
            notes,
        }
    }

    /// Where each batch went, in order: 'n' naming thread, 's' sink.
    fn route(h: &Handoff, batches: Vec<(Batch, bool)>) -> String {
        batches
            .into_iter()
            .map(|(b, maps)| {
                let before = h.in_naming.load(Ordering::Acquire);
                h.try_send(b, maps).unwrap();
                if h.in_naming.load(Ordering::Acquire) > before {
                    'n'
                } else {
                    's'
                }
            })
            .collect()
    }

    #[test]
    fn only_a_batch_with_nothing_new_goes_around_the_naming_thread() {
        let (h, _naming, _sink) = handoff(8);
        let known = ev(7, 3, stack_ref::NONE);
        let new_cgroup = ev(8, stack_ref::NONE, stack_ref::NONE);
        let new_stack = ev(7, 4, stack_ref::NONE);
        assert_eq!(route(&h, vec![(batch_of(&[known]), false)]), "s");
        assert_eq!(
            route(&h, vec![(batch_of(&[known]), true)]),
            "n",
            "a map went"
        );
        h.in_naming.store(0, Ordering::Release);
        assert_eq!(
            route(&h, vec![(batch_of(&[known, new_cgroup]), false)]),
            "n"
        );
        h.in_naming.store(0, Ordering::Release);
        assert_eq!(route(&h, vec![(batch_of(&[new_stack]), false)]), "n");
    }

    #[test]
    fn a_batch_behind_one_being_named_waits_its_turn() {
        let (h, naming, sink) = handoff(8);
        let known = ev(7, stack_ref::NONE, stack_ref::NONE);
        let new = ev(9, stack_ref::NONE, stack_ref::NONE);
        assert_eq!(
            route(
                &h,
                vec![
                    (batch_of(&[new]), false),
                    (batch_of(&[known]), false),
                    (batch_of(&[known]), false)
                ]
            ),
            "nnn"
        );
        // The naming thread hands them on, in order; then the next one goes around it.
        while let Ok(b) = naming.try_recv() {
            h.sink.send(b.events).unwrap();
            h.in_naming.fetch_sub(1, Ordering::AcqRel);
        }
        assert_eq!(route(&h, vec![(batch_of(&[known]), false)]), "s");
        let cgroups: Vec<u64> = sink.try_iter().map(|b| b[0].cgroup).collect();
        assert_eq!(cgroups, [9, 7, 7, 7]);
    }

    #[test]
    fn without_stack_names_stacks_need_no_naming() {
        let (mut h, _naming, _sink) = handoff(8);
        h.stacks = None;
        assert_eq!(route(&h, vec![(batch_of(&[ev(7, 4, 5)]), false)]), "s");
    }

    #[test]
    fn a_full_queue_gives_the_batch_back_with_its_notes() {
        let (h, _naming, _sink) = handoff(1);
        h.try_send(batch_of(&[ev(7, stack_ref::NONE, stack_ref::NONE)]), false)
            .unwrap();
        let b = batch_of(&[ev(7, stack_ref::NONE, stack_ref::NONE)]);
        let notes = b.notes.clone();
        match h.try_send(b, false) {
            Err(TrySendError::Full(back)) => {
                assert_eq!((back.events.len(), back.notes), (1, notes))
            }
            other => panic!("{:?}", other.map_err(|e| e.to_string())),
        }
        let b = batch_of(&[ev(9, stack_ref::NONE, stack_ref::NONE)]);
        h.try_send(b, false).unwrap();
        match h.try_send(batch_of(&[ev(9, 0, 0)]), false) {
            Err(TrySendError::Full(_)) => {}
            other => panic!("{:?}", other.map_err(|e| e.to_string())),
        }
        assert_eq!(
            h.in_naming.load(Ordering::Acquire),
            1,
            "the refused one is not counted"
        );
        assert_eq!(h.queued.load(Ordering::Acquire), 2);
    }

    #[test]
    fn one_bound_over_both_ways() {
        // Room for 4 each way, 5 in all: the fifth goes around, the sixth waits.
        let (mut h, _naming, sink) = handoff(4);
        h.max_queued = 5;
        let known = || batch_of(&[ev(7, stack_ref::NONE, stack_ref::NONE)]);
        let new = || batch_of(&[ev(9, stack_ref::NONE, stack_ref::NONE)]);
        for _ in 0..4 {
            h.try_send(new(), false).unwrap();
        }
        h.in_naming.store(0, Ordering::Release);
        h.try_send(known(), false).unwrap();
        assert!(matches!(
            h.try_send(known(), false),
            Err(TrySendError::Full(_))
        ));
        // The sink takes one: room again.
        sink.recv().unwrap();
        h.queued.fetch_sub(1, Ordering::AcqRel);
        h.try_send(known(), false).unwrap();
        assert_eq!(h.queued.load(Ordering::Acquire), 5);
    }
}
