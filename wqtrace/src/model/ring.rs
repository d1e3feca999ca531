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

    /// Ring index of a free-running head/tail counter.
    pub fn index(&self, counter: u32) -> Option<usize> {
        if self.slots.is_empty() {
            None
        } else {
            Some((counter % self.size) as usize)
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
                .map(|i| self.slots[(self.tail.wrapping_add(i) % self.size) as usize])
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
    pub fn fill(&mut self, from: u32, to: u32, kind: SlotKind) {
        let n = to.wrapping_sub(from).min(self.size);
        for i in 0..n {
            if let Some(s) = self.slot_mut(from.wrapping_add(i)) {
                *s = Slot { kind, loss: false };
            }
        }
    }

    /// Frees `[from, to)` (a read that advanced tail from `from` to `to`).
    pub fn free(&mut self, from: u32, to: u32) {
        let n = to.wrapping_sub(from).min(self.size);
        for i in 0..n {
            if let Some(s) = self.slot_mut(from.wrapping_add(i)) {
                *s = Slot::default();
            }
        }
    }

    /// Writes one notification into ring index `slot`.
    pub fn post(&mut self, slot: u32, ntype: u32, subtype: u32) {
        if let Some(s) = self.slots.get_mut(slot as usize) {
            *s = Slot {
                kind: SlotKind::Notification { ntype, subtype },
                loss: false,
            };
        }
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
    pub fn sync(&mut self, head: u32, tail: u32) {
        let consistent = self.known && head == self.head && tail == self.tail;
        self.head = head;
        self.tail = tail;
        self.known = true;
        if consistent || self.slots.is_empty() {
            return;
        }
        let occ = self.occupancy();
        for i in 0..self.size {
            let c = tail.wrapping_add(i);
            let s = &mut self.slots[(c % self.size) as usize];
            if i < occ {
                if s.kind == SlotKind::Empty {
                    s.kind = SlotKind::Unknown;
                }
            } else {
                *s = Slot::default();
            }
        }
    }

    /// Moves a known ring on to `head`/`tail` over many ops seen only as totals: the slots
    /// head passed hold `kind`, those tail passed (even ones head passed too) are free.
    pub fn advance(&mut self, head: u32, tail: u32, kind: SlotKind) {
        let (hb, tb) = (self.head, self.tail);
        self.fill(hb, head, kind);
        self.free(tb, tail);
        self.sync(head, tail);
    }

    /// Applies a ring movement: `[head_before, head)` filled with `kind`, `[tail_before, tail)`
    /// freed, then the picture synced to `head`/`tail`.
    pub fn apply_move(&mut self, hb: u32, head: u32, tb: u32, tail: u32, kind: SlotKind) {
        if !self.known {
            self.sync(hb, tb);
        } else if hb != self.head || tb != self.tail {
            // Something moved the ring between our events: take the kernel's word for it.
            self.sync(hb, tb);
        }
        self.free(tb, tail);
        self.fill(hb, head, kind);
        self.head = head;
        self.tail = tail;
        self.sync(head, tail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(r: &Ring) -> String {
        r.slots()
            .iter()
            .map(|s| match (s.kind, s.loss) {
                (SlotKind::Empty, _) => '.',
                (SlotKind::Data, false) => 'd',
                (SlotKind::Notification { .. }, false) => 'n',
                (SlotKind::Notification { .. }, true) => 'N',
                (SlotKind::Data, true) => 'D',
                (SlotKind::Unknown, _) => '?',
            })
            .collect()
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
