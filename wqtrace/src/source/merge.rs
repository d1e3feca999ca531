//! The per-CPU event rings, put back into one stream in timestamp order.
//!
//! The programs write each event to their CPU's ring (wqtrace-ebpf `emit::with_ring`) and take
//! its timestamp after reserving its place there. So an event stamped at or before `now` is
//! already in its ring, committed or still being written, once `now` has been read: a ring
//! drained to its end after reading `now` holds nothing more up to `now`. An event is handed
//! on once every ring is known complete up to its timestamp; a ring that stopped early (a
//! record still being written, or the batch limit) is complete only up to the last event taken
//! from it, and holds the others back, as the single ring did at a record being written.

use std::collections::VecDeque;

/// Events held back, over all rings, past which the oldest are handed on regardless (a CPU
/// that keeps a record half-written that long is stalled): about 11 MiB.
const MAX_STAGED: usize = 1 << 16;

/// Events of the rings by timestamp; `T` says where one is (its place in its ring).
pub struct Merge<T> {
    rings: Vec<Staged<T>>,
    /// Events handed on after an event of another ring stamped later (see [`Merge::late`]).
    late: u64,
}

/// One ring's events seen and not yet handed on: (timestamp, where).
struct Staged<T> {
    events: VecDeque<(u64, T)>,
    /// Every event of the ring stamped up to this (ns) has been staged.
    complete_to: u64,
    /// The latest timestamp handed on from it.
    handed_to: u64,
}

impl<T> Staged<T> {
    fn front(&self) -> Option<u64> {
        self.events.front().map(|e| e.0)
    }
}

/// How a drain of one ring ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drained {
    /// At the ring's end, after `now` was read: complete up to `now`.
    CaughtUp { now: u64 },
    /// At a record still being written, or at the limit.
    Early,
}

impl<T: Copy> Merge<T> {
    pub fn new(rings: usize) -> Self {
        Self {
            rings: (0..rings)
                .map(|_| Staged {
                    events: VecDeque::new(),
                    complete_to: 0,
                    handed_to: 0,
                })
                .collect(),
            late: 0,
        }
    }

    /// An event of ring `ring` stamped `ts`, at `at` there, in ring order.
    #[inline]
    pub fn stage(&mut self, ring: usize, ts: u64, at: T) {
        self.rings[ring].events.push_back((ts, at));
    }

    /// Ring `ring` was drained (after its events were staged) and ended `how`.
    pub fn drained(&mut self, ring: usize, how: Drained) {
        let r = &mut self.rings[ring];
        let to = match how {
            Drained::CaughtUp { now } => now,
            Drained::Early => r.events.back().map_or(0, |e| e.0),
        };
        r.complete_to = r.complete_to.max(to);
    }

    /// Hands `out` (ring, where), oldest first, records that no ring can still precede, until
    /// `out` has said it made `limit` events of them (it returns how many each record held).
    pub fn release(&mut self, limit: usize, mut out: impl FnMut(usize, T) -> usize) {
        let upto = self.rings.iter().map(|r| r.complete_to).min().unwrap_or(0);
        let n = self.hand_on(limit, upto, &mut out);
        // A stalled ring must not hold the others' events without bound.
        let over = self.staged().saturating_sub(MAX_STAGED);
        self.hand_on(over.min(limit.saturating_sub(n)), u64::MAX, &mut out);
    }

    /// Hands on everything staged (at the end of the session), oldest first.
    pub fn release_all(&mut self, mut out: impl FnMut(usize, T) -> usize) {
        self.hand_on(usize::MAX, u64::MAX, &mut out);
    }

    /// Events that reached `out` after an event of another ring stamped later than them had:
    /// a ring stalled past MAX_STAGED, an interrupt's event nested in a reservation and stamped
    /// before it, or CPUs whose clocks disagree.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Events seen and not handed on yet, over all rings.
    pub fn staged(&self) -> usize {
        self.rings.iter().map(|r| r.events.len()).sum()
    }

    /// Events of ring `ring` taken and not handed on yet.
    pub fn staged_from(&self, ring: usize) -> usize {
        self.rings[ring].events.len()
    }

    fn hand_on(
        &mut self,
        limit: usize,
        upto: u64,
        out: &mut impl FnMut(usize, T) -> usize,
    ) -> usize {
        let mut n = 0;
        while n < limit {
            // The ring whose next event is oldest (`best`) and the oldest next event of the
            // others (`second`): the best ring's events up to that go in one run. Within a
            // ring, ring order stands (an event of an interrupt nested in another's
            // reservation may be stamped first).
            let mut best: Option<(usize, u64)> = None;
            let mut second = u64::MAX;
            for (i, r) in self.rings.iter().enumerate() {
                let Some(ts) = r.front() else { continue };
                match best {
                    Some((_, b)) if ts >= b => second = second.min(ts),
                    Some((_, b)) => {
                        second = second.min(b);
                        best = Some((i, ts));
                    }
                    None => best = Some((i, ts)),
                }
            }
            let Some((ring, ts)) = best else { return n };
            if ts > upto {
                return n;
            }
            let end = second.min(upto);
            let others = (self.rings.iter().enumerate())
                .filter(|&(i, _)| i != ring)
                .map(|(_, r)| r.handed_to)
                .max()
                .unwrap_or(0);
            let r = &mut self.rings[ring];
            while n < limit {
                let Some(&(ts, at)) = r.events.front() else {
                    break;
                };
                if ts > end {
                    break;
                }
                r.handed_to = r.handed_to.max(ts);
                let k = out(ring, at);
                if ts < others {
                    self.late += k as u64;
                }
                n += k;
                r.events.pop_front();
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stages `stamps` from `ring`, each event named by its timestamp.
    fn stage(m: &mut Merge<u64>, ring: usize, stamps: &[u64]) {
        for &ts in stamps {
            m.stage(ring, ts, ts);
        }
    }

    fn release(m: &mut Merge<u64>, limit: usize) -> Vec<u64> {
        let mut out = Vec::new();
        m.release(limit, |_, ts| {
            out.push(ts);
            1
        });
        out
    }

    #[test]
    fn rings_caught_up_are_merged_by_timestamp() {
        let mut m = Merge::new(2);
        stage(&mut m, 0, &[10, 30, 50]);
        stage(&mut m, 1, &[20, 40]);
        m.drained(0, Drained::CaughtUp { now: 60 });
        m.drained(1, Drained::CaughtUp { now: 60 });
        assert_eq!(release(&mut m, usize::MAX), [10, 20, 30, 40, 50]);
        assert_eq!((m.staged(), m.late()), (0, 0));
    }

    #[test]
    fn a_ring_that_stopped_early_holds_back_later_events_of_the_others() {
        let mut m = Merge::new(2);
        stage(&mut m, 0, &[10, 40]);
        // Ring 1 stopped at a record still being written after its event at 20: its next
        // event may be stamped anywhere after 20.
        stage(&mut m, 1, &[20]);
        m.drained(0, Drained::CaughtUp { now: 50 });
        m.drained(1, Drained::Early);
        assert_eq!(release(&mut m, usize::MAX), [10, 20]);
        // The record was committed stamped 30: it goes before 40.
        stage(&mut m, 1, &[30]);
        m.drained(0, Drained::CaughtUp { now: 60 });
        m.drained(1, Drained::CaughtUp { now: 60 });
        assert_eq!(release(&mut m, usize::MAX), [30, 40]);
        assert_eq!(m.late(), 0);
    }

    #[test]
    fn an_event_stamped_after_the_drain_began_waits_for_the_next() {
        let mut m = Merge::new(2);
        // Stamped at 70, after `now` (60) was read, yet found in the ring: another event
        // stamped 65 may still come from ring 1.
        stage(&mut m, 0, &[50, 70]);
        m.drained(0, Drained::CaughtUp { now: 60 });
        m.drained(1, Drained::CaughtUp { now: 60 });
        assert_eq!(release(&mut m, usize::MAX), [50]);
        stage(&mut m, 1, &[65]);
        m.drained(0, Drained::CaughtUp { now: 80 });
        m.drained(1, Drained::CaughtUp { now: 80 });
        assert_eq!(release(&mut m, usize::MAX), [65, 70]);
    }

    #[test]
    fn nothing_is_handed_on_before_every_ring_was_drained_once() {
        let mut m = Merge::new(2);
        stage(&mut m, 0, &[10]);
        m.drained(0, Drained::CaughtUp { now: 20 });
        assert!(release(&mut m, usize::MAX).is_empty());
        m.drained(1, Drained::CaughtUp { now: 20 });
        assert_eq!(release(&mut m, usize::MAX), [10]);
    }

    #[test]
    fn the_limit_and_the_end_of_the_session() {
        let mut m = Merge::new(2);
        stage(&mut m, 0, &[1, 3, 5]);
        stage(&mut m, 1, &[2]);
        m.drained(0, Drained::CaughtUp { now: 9 });
        m.drained(1, Drained::Early);
        assert_eq!(release(&mut m, 1), [1]);
        assert_eq!(release(&mut m, usize::MAX), [2]);
        let mut rest = Vec::new();
        m.release_all(|ring, ts| {
            rest.push((ring, ts));
            1
        });
        assert_eq!(rest, [(0, 3), (0, 5)]);
    }

    /// The limit counts the events `out` says each record made (two for a splice's pair), so
    /// a batch filled to it never grows past it.
    #[test]
    fn the_limit_counts_events_not_records() {
        let mut m = Merge::new(1);
        stage(&mut m, 0, &[1, 2, 3, 4]);
        m.drained(0, Drained::CaughtUp { now: 9 });
        let mut out = Vec::new();
        m.release(3, |_, ts| {
            out.push(ts);
            2
        });
        assert_eq!(out, [1, 2]);
        assert_eq!(m.staged(), 2);
    }

    #[test]
    fn a_stalled_ring_does_not_hold_the_others_without_bound_and_is_counted_late() {
        let mut m = Merge::new(2);
        m.drained(1, Drained::Early);
        let stamps: Vec<u64> = (1..=MAX_STAGED as u64 + 10).map(|i| i * 10).collect();
        stage(&mut m, 0, &stamps);
        m.drained(0, Drained::CaughtUp { now: u64::MAX });
        assert_eq!(release(&mut m, usize::MAX).len(), 10);
        assert_eq!(m.staged(), MAX_STAGED);
        // The stalled ring's event, stamped before what was handed on: late, still handed on.
        stage(&mut m, 1, &[5]);
        m.drained(1, Drained::CaughtUp { now: u64::MAX });
        let rest = release(&mut m, usize::MAX);
        assert_eq!((rest.len(), rest[0]), (MAX_STAGED + 1, 5));
        assert_eq!(m.late(), 1);
    }
}
