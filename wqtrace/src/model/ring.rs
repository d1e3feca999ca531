//! A per-slot picture of one pipe ring, maintained from head/tail movements.
//!
//! The kernel indexes `pipe->bufs` with free-running u32 `head`/`tail` masked by
//! `ring_size - 1`; everything here uses wrapping arithmetic, so head/tail crossing `u32::MAX`
//! and the slot index wrapping around the ring are ordinary cases.

use serde::Serialize;

/// What one ring slot holds, as far as the events tell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum SlotKind {
    #[default]
    Empty,
    /// Bytes written by a syscall (write, splice, vmsplice, …).
    Data,
    /// A watch_queue notification.
    Notification { ntype: u32, subtype: u32 },
    /// Occupied, but the event that filled it was not seen (tracing started later, or events
    /// were lost).
    Unknown,
}

/// One slot: its content and whether the kernel flagged it with `PIPE_BUF_FLAG_LOSS`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Slot {
    pub kind: SlotKind,
    pub loss: bool,
}

impl Slot {
    /// One letter for the slot in a text picture of its ring (`replay --dump`): `.` empty,
    /// `d` data, `n` notification (capital: flagged with a loss), `?` not seen filled.
    pub fn letter(&self) -> char {
        match (self.kind, self.loss) {
            (SlotKind::Empty, _) => '.',
            (SlotKind::Data, false) => 'd',
            (SlotKind::Data, true) => 'D',
            (SlotKind::Notification { .. }, false) => 'n',
            (SlotKind::Notification { .. }, true) => 'N',
            (SlotKind::Unknown, _) => '?',
        }
    }
}

/// Rings larger than this are tracked by head/tail only (no per-slot picture).
pub const MAX_PICTURED_SLOTS: u32 = 4096;

/// The picture of one ring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ring {
    size: u32,
    head: u32,
    tail: u32,
    /// `size` entries when `size` is in 1..=MAX_PICTURED_SLOTS, else empty.
    slots: Vec<Slot>,
    /// Whether head/tail have been observed at least once.
    known: bool,
}

impl Ring {
    /// Slot count (`pipe->ring_size`); 0 until an event carried it.
    pub fn size(&self) -> u32 {
        self.size
    }

    pub fn head(&self) -> u32 {
        self.head
    }

    pub fn tail(&self) -> u32 {
        self.tail
    }

    /// Whether any event has told the ring's head/tail yet.
    pub fn is_known(&self) -> bool {
        self.known
    }

    /// Occupied slots (`head - tail`, wrapping).
    pub fn occupancy(&self) -> u32 {
        self.head.wrapping_sub(self.tail)
    }

    /// Slots in ring order (index = `counter & (size - 1)`); empty for huge rings.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The slots' letters in ring order ([`Slot::letter`]); empty for huge rings.
    pub fn letters(&self) -> String {
        self.slots.iter().map(Slot::letter).collect()
    }

    /// Ring index of a free-running head/tail counter.
    pub fn index(&self, counter: u32) -> Option<usize> {
        if self.slots.is_empty() {
            None
        } else {
            Some(self.wrap(counter))
        }
    }

    /// `counter % size`; the kernel's rings are powers of two, where that is a mask.
    fn wrap(&self, counter: u32) -> usize {
        if self.size.is_power_of_two() {
            (counter & (self.size - 1)) as usize
        } else {
            (counter % self.size) as usize
        }
    }

    fn slot_mut(&mut self, counter: u32) -> Option<&mut Slot> {
        let i = self.index(counter)?;
        self.slots.get_mut(i)
    }

    /// Sets the ring size. A change models `pipe_resize_ring()`: the occupied slots
    /// `[tail, head)` move, in order, to `[0, n)` and the ring restarts at tail 0 / head n.
    pub fn resize(&mut self, size: u32) {
        if size == self.size {
            return;
        }
        let occupied: Vec<Slot> = if self.slots.is_empty() {
            Vec::new()
        } else {
            let n = self.occupancy().min(self.size);
            (0..n)
                .map(|i| self.slots[self.wrap(self.tail.wrapping_add(i))])
                .collect()
        };
        let n = self.occupancy().min(size);
        self.size = size;
        self.slots = if (1..=MAX_PICTURED_SLOTS).contains(&size) {
            let mut v = vec![Slot::default(); size as usize];
            for (i, s) in occupied.into_iter().take(size as usize).enumerate() {
                v[i] = s;
            }
            v
        } else {
            Vec::new()
        };
        if self.known {
            self.tail = 0;
            self.head = n;
        }
    }

    /// Fills `[from, to)` with `kind` (a write that advanced head from `from` to `to`).
    fn fill(&mut self, from: u32, to: u32, kind: SlotKind) {
        let n = to.wrapping_sub(from).min(self.size);
        for i in 0..n {
            if let Some(s) = self.slot_mut(from.wrapping_add(i)) {
                *s = Slot { kind, loss: false };
            }
        }
    }

    /// Frees `[from, to)` (a read that advanced tail from `from` to `to`).
    fn free(&mut self, from: u32, to: u32) {
        let n = to.wrapping_sub(from).min(self.size);
        for i in 0..n {
            if let Some(s) = self.slot_mut(from.wrapping_add(i)) {
                *s = Slot::default();
            }
        }
    }

    /// Whether ring index `slot` lies in `[tail, head)`.
    fn occupied_index(&self, slot: u32) -> bool {
        let Some(t) = self.index(self.tail) else {
            return false;
        };
        let from_tail = (slot as usize + self.slots.len() - t) % self.slots.len();
        (slot as usize) < self.slots.len() && (from_tail as u32) < self.occupancy()
    }

    /// Writes one notification into ring index `slot`, which must be occupied: a slot outside
    /// `[tail, head)` would show a buffer the ring no longer (or not yet) holds.
    pub fn post(&mut self, slot: u32, ntype: u32, subtype: u32) {
        if !self.occupied_index(slot) {
            return;
        }
        self.slots[slot as usize] = Slot {
            kind: SlotKind::Notification { ntype, subtype },
            loss: false,
        };
    }

    /// A post was lost: the kernel sets `PIPE_BUF_FLAG_LOSS` on the last written buffer
    /// (`head - 1`). Returns false when there is none (empty ring).
    pub fn mark_loss(&mut self) -> bool {
        if self.occupancy() == 0 {
            return false;
        }
        let h = self.head.wrapping_sub(1);
        match self.slot_mut(h) {
            Some(s) => {
                s.loss = true;
                true
            }
            None => false,
        }
    }

    /// Moves to the observed `head`/`tail`, reconciling the picture with what was missed:
    /// slots outside `[tail, head)` become empty, empty slots inside become [`SlotKind::Unknown`].
    ///
    /// Every change keeps the picture in that shape (empty outside `[tail, head)`, never empty
    /// inside), so only the slots that enter or leave the range need a look: a reader
    /// overtaken by posts would otherwise cost a pass over the whole ring per event.
    pub fn sync(&mut self, head: u32, tail: u32) {
        let (old_head, old_tail, was_known) = (self.head, self.tail, self.known);
        self.head = head;
        self.tail = tail;
        self.known = true;
        if was_known && head == old_head && tail == old_tail || self.slots.is_empty() {
            return;
        }
        if !(was_known && self.sync_changed(old_head, old_tail)) {
            self.sync_all();
        }
    }

    fn sync_all(&mut self) {
        let occ = self.occupancy();
        for i in 0..self.size {
            let c = self.tail.wrapping_add(i);
            let w = self.wrap(c);
            let s = &mut self.slots[w];
            if i < occ {
                if s.kind == SlotKind::Empty {
                    s.kind = SlotKind::Unknown;
                }
            } else {
                *s = Slot::default();
            }
        }
    }

    /// [`Ring::sync`] from `[old_tail, old_head)` to the current range, touching only the
    /// counters in one range and not the other. False (nothing done) when that is not cheaper
    /// than a whole pass, or a range does not fit in the ring (events were missed).
    fn sync_changed(&mut self, old_head: u32, old_tail: u32) -> bool {
        let size = i64::from(self.size);
        let old_len = i64::from(old_head.wrapping_sub(old_tail));
        let new_len = i64::from(self.occupancy());
        if old_len > size || new_len > size {
            return false;
        }
        // Counters relative to old_tail, on a line: old is [0, old_len), new [b0, b1).
        let b0 = i64::from(self.tail.wrapping_sub(old_tail) as i32);
        let b1 = b0 + new_len;
        let left = [(0, old_len.min(b0)), (b1.max(0), old_len)];
        let entered = [(b0, b1.min(0)), (b0.max(old_len), b1)];
        let len = |r: &[(i64, i64); 2]| r.iter().map(|&(a, b)| (b - a).max(0)).sum::<i64>();
        if len(&left) + len(&entered) > size {
            return false;
        }
        // Cleared first: a counter that entered may share its index with one that left (a
        // later lap of the ring), and its buffer was not seen.
        for (a, b) in left {
            for x in a..b {
                let w = self.wrap(old_tail.wrapping_add(x as u32));
                self.slots[w] = Slot::default();
            }
        }
        for (a, b) in entered {
            for x in a..b {
                let w = self.wrap(old_tail.wrapping_add(x as i32 as u32));
                if self.slots[w].kind == SlotKind::Empty {
                    self.slots[w].kind = SlotKind::Unknown;
                }
            }
        }
        true
    }

    /// Moves a known ring on to `head`/`tail` over many ops seen only as totals: the slots
    /// head passed hold `kind`, those tail passed (even ones head passed too) are free.
    pub fn advance(&mut self, head: u32, tail: u32, kind: SlotKind) {
        let (hb, tb) = (self.head, self.tail);
        self.move_to(hb, head, tb, tail, kind);
    }

    /// Applies a ring movement: `[head_before, head)` filled with `kind`, `[tail_before, tail)`
    /// freed, then the picture synced to `head`/`tail`.
    pub fn apply_move(&mut self, hb: u32, head: u32, tb: u32, tail: u32, kind: SlotKind) {
        let (h0, t0) = (self.head, self.tail);
        let within = |now: u32, before: u32, after: u32| {
            now.wrapping_sub(before) <= after.wrapping_sub(before)
        };
        if self.known && within(h0, hb, head) && within(t0, tb, tail) {
            // Events in between already moved the ring part of the way (posts, which do not
            // wait for the pipe mutex, land during ops that hold it): what they wrote stays,
            // and only the slots they left unknown take this op's kind.
            let from = if t0.wrapping_sub(hb) as i32 > 0 {
                t0
            } else {
                hb
            };
            for i in 0..h0.wrapping_sub(from).min(self.size) {
                if let Some(s) = self.slot_mut(from.wrapping_add(i))
                    && s.kind == SlotKind::Unknown
                {
                    s.kind = kind;
                }
            }
            self.move_to(h0, head, t0, tail, kind);
            return;
        }
        // Something moved the ring between our events (or nothing told it yet): take the
        // kernel's word for it.
        self.sync(hb, tb);
        self.move_to(hb, head, tb, tail, kind);
    }

    /// From `[tb, hb)` (the current range) to `[tail, head)`: slots tail passed are freed,
    /// those head passed and tail did not hold `kind`.
    fn move_to(&mut self, hb: u32, head: u32, tb: u32, tail: u32, kind: SlotKind) {
        let size = self.size;
        if head.wrapping_sub(hb) > size || tail.wrapping_sub(tb) > size {
            // Not a movement the kernel makes: only the snapshot is worth keeping.
            self.sync(head, tail);
            return;
        }
        self.free(tb, tail);
        // A reader that overtook hb consumed part of what was written.
        let from = if tail.wrapping_sub(hb) as i32 > 0 {
            tail
        } else {
            hb
        };
        if head.wrapping_sub(from) as i32 > 0 {
            self.fill(from, head, kind);
        }
        self.head = head;
        self.tail = tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kinds(r: &Ring) -> String {
        r.letters()
    }

    #[test]
    fn write_read_wraps_ring_index() {
        let mut r = Ring::default();
        r.resize(4);
        r.apply_move(0, 3, 0, 0, SlotKind::Data);
        assert_eq!(kinds(&r), "ddd.");
        r.apply_move(3, 3, 0, 2, SlotKind::Data);
        assert_eq!(kinds(&r), "..d.");
        // Write 3 more: slots 3, 0, 1 (index wraps).
        r.apply_move(3, 6, 2, 2, SlotKind::Data);
        assert_eq!(kinds(&r), "dddd");
        assert_eq!(r.occupancy(), 4);
    }

    #[test]
    fn counters_cross_u32_max() {
        let mut r = Ring::default();
        r.resize(8);
        let hb = u32::MAX - 1;
        r.sync(hb, hb);
        r.apply_move(hb, hb.wrapping_add(4), hb, hb, SlotKind::Data);
        assert_eq!(r.occupancy(), 4);
        assert_eq!(r.head(), 2);
        // u32::MAX - 1 = 0xfffffffe → index 6; then 7, 0, 1.
        assert_eq!(kinds(&r), "dd....dd");
        r.apply_move(2, 2, hb, 1, SlotKind::Data);
        assert_eq!(kinds(&r), ".d......");
        assert_eq!(r.occupancy(), 1);
    }

    #[test]
    fn loss_marks_last_written_slot() {
        let mut r = Ring::default();
        r.resize(4);
        for i in 0..4 {
            r.apply_move(i, i + 1, 0, 0, SlotKind::Data);
            r.post(i, 1, 2);
        }
        assert!(r.mark_loss());
        assert_eq!(kinds(&r), "nnnN");
        let mut empty = Ring::default();
        empty.resize(4);
        assert!(!empty.mark_loss());
    }

    #[test]
    fn resize_compacts_like_pipe_resize_ring() {
        let mut r = Ring::default();
        r.resize(4);
        r.sync(2, 2);
        r.apply_move(2, 5, 2, 2, SlotKind::Data); // slots 2, 3, 0
        r.post(0, 1, 1);
        assert_eq!(kinds(&r), "n.dd");
        r.resize(8);
        assert_eq!((r.tail(), r.head()), (0, 3));
        assert_eq!(kinds(&r), "ddn.....");
        // Shrinking below occupancy is refused by the kernel (-EBUSY); we truncate.
        r.resize(2);
        assert_eq!(kinds(&r), "dd");
    }

    #[test]
    fn missed_events_become_unknown() {
        let mut r = Ring::default();
        r.resize(4);
        r.sync(10, 8);
        assert_eq!(kinds(&r), "??..");
        r.apply_move(12, 13, 8, 8, SlotKind::Data);
        // Head jumped from 10 to 12 unseen: slots 10, 11 unknown, 12 data.
        assert_eq!(kinds(&r), "d???");
        assert_eq!(r.occupancy(), 5); // impossible for the kernel, tolerated here
    }

    /// The kernel's side of a ring: what each counter's buffer holds.
    struct Truth {
        head: u32,
        tail: u32,
        bufs: std::collections::HashMap<u32, SlotKind>,
    }

    /// After any sequence of writes, reads and posts (some overlapping a read, some never seen):
    /// the picture is empty exactly outside `[tail, head)`, and while every event was seen it
    /// is the kernel's ring slot for slot.
    fn check(r: &Ring, t: &Truth, all_seen: bool) -> Result<(), TestCaseError> {
        prop_assert_eq!((r.head(), r.tail()), (t.head, t.tail));
        for c in 0..r.size() {
            let counter = t.tail.wrapping_add(c);
            let s = r.slots()[r.index(counter).unwrap()];
            if c < r.occupancy() {
                prop_assert_ne!(s.kind, SlotKind::Empty, "occupied counter {}", counter);
                if all_seen {
                    prop_assert_eq!(s.kind, t.bufs[&counter], "counter {}", counter);
                }
            } else {
                prop_assert_eq!(s.kind, SlotKind::Empty, "free counter {}", counter);
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn picture_follows_any_movement(
            order in 0u32..5,
            start in any::<u32>(),
            steps in proptest::collection::vec((0u8..4, 0u32..20, 0u32..20, any::<bool>()), 1..80),
        ) {
            let size = 1u32 << order;
            let mut r = Ring::default();
            r.resize(size);
            let mut t = Truth { head: start, tail: start, bufs: Default::default() };
            r.sync(start, start);
            let mut all_seen = true;
            let note = SlotKind::Notification { ntype: 1, subtype: 2 };
            for (op, a, b, seen) in steps {
                let (hb, tb) = (t.head, t.tail);
                match op {
                    // write(): a slots of data under the mutex.
                    0 => {
                        let n = a.min(size - hb.wrapping_sub(tb));
                        for i in 0..n {
                            t.bufs.insert(hb.wrapping_add(i), SlotKind::Data);
                        }
                        t.head = hb.wrapping_add(n);
                        if seen {
                            r.apply_move(hb, t.head, tb, tb, SlotKind::Data);
                        }
                    }
                    // read(): a slots consumed.
                    1 => {
                        t.tail = tb.wrapping_add(a.min(hb.wrapping_sub(tb)));
                        if seen {
                            r.apply_move(hb, hb, tb, t.tail, SlotKind::Data);
                        }
                    }
                    // A read that b posts overtake before it consumes a slots: the posts'
                    // events come first, the read's (entry snapshot, exit snapshot) after.
                    _ => {
                        let posts = if op == 2 { 0 } else { b };
                        for _ in 0..posts {
                            let h = t.head;
                            if h.wrapping_sub(tb) == size {
                                break;
                            }
                            t.bufs.insert(h, note);
                            t.head = h.wrapping_add(1);
                            if seen {
                                r.apply_move(h, t.head, tb, tb, note);
                                r.post(r.index(h).unwrap() as u32, 1, 2);
                            }
                        }
                        t.tail = tb.wrapping_add(a.min(t.head.wrapping_sub(tb)));
                        r.apply_move(hb, t.head, tb, t.tail, SlotKind::Unknown);
                    }
                }
                if !seen {
                    all_seen = false;
                    // A later event's snapshot tells the ring as it is.
                    r.sync(t.head, t.tail);
                }
                check(&r, &t, all_seen)?;
            }
        }
    }

    #[test]
    fn huge_rings_have_no_picture() {
        let mut r = Ring::default();
        r.resize(MAX_PICTURED_SLOTS * 2);
        r.apply_move(0, 100, 0, 0, SlotKind::Data);
        assert!(r.slots().is_empty());
        assert_eq!(r.occupancy(), 100);
        assert!(!r.mark_loss());
    }
}
