//! Ring ops the kernel totalled per pipe instead of streaming (`wqtrace_common::totals`): what
//! they grew by since the last read goes into the same per-op counts a streamed op feeds, and
//! the ring moves to where the newest of them left it. Lock contention and short waits
//! likewise: they have no task.

use wqtrace_common::EventKind;
use wqtrace_common::totals::{LockTotals, PipeKey, PipeTotals, RING_OPS};

use super::{Comm, Contention, Model, SlotKind, WaitStats};

/// What `now`'s contention grew by since `prev` into `c`; the worst wait, when it is a new
/// one, is dated `ts` (the read: when it ended is not known closer).
fn add_contention(c: &mut Contention, now: &LockTotals, prev: &LockTotals, ts: u64) {
    c.count += now.count.saturating_sub(prev.count);
    c.total_ns = c
        .total_ns
        .saturating_add(now.total_ns.saturating_sub(prev.total_ns));
    if now.worst_ns > prev.worst_ns && now.worst_ns >= c.worst_ns {
        c.worst_ns = now.worst_ns;
        c.worst_waiter_tid = now.worst_waiter_tid;
        c.worst_waiter = Comm(now.worst_waiter);
        c.worst_holder_tid = now.worst_holder_tid;
        c.worst_holder = Comm(now.worst_holder);
        c.worst_ts_ns = ts;
    }
}

impl Model {
    /// Applies one pipe's running totals, read from the kernel at `now_ns` (the event clock:
    /// the ops it grew by are dated to that read).
    pub fn apply_totals(&mut self, key: PipeKey, t: &PipeTotals, now_ns: u64) {
        let prev = self
            .totals_seen
            .insert((key.pipe, key.ino), *t)
            .unwrap_or(PipeTotals::ZERO);
        let grown = t.since(&prev);
        let n: u64 = grown.iter().map(|o| o.calls).sum();
        let lock_waits: u64 = (0..2)
            .map(|k| t.locks[k].count.saturating_sub(prev.locks[k].count))
            .sum();
        // Every totalled wait is off-CPU time.
        let off_cpu = t.waits.count.saturating_sub(prev.waits.count);
        let waits = WaitStats {
            count: off_cpu,
            total_ns: t.waits.total_ns.saturating_sub(prev.waits.total_ns),
            max_ns: t.waits.max_ns,
            off_cpu,
        };
        let events = n + lock_waits + waits.count;
        if events == 0 && t.tick == prev.tick && t.head_tail == prev.head_tail {
            return;
        }
        let ts = now_ns;
        self.counters.events += events;
        self.counters.per_kind[EventKind::RingOp as usize] += n;
        self.counters.per_kind[EventKind::LockContended as usize] += lock_waits;
        self.counters.per_kind[EventKind::PipeWait as usize] += waits.count;
        self.counters.totalled_ops += n;
        self.counters.totalled_lock_waits += lock_waits;
        self.counters.totalled_waits += waits.count;
        self.first_ts.get_or_insert(ts);
        self.last_ts = self.last_ts.max(ts);
        self.rate.record_n(ts, events);
        for k in 0..2 {
            add_contention(&mut self.contention[k], &t.locks[k], &prev.locks[k], ts);
        }
        self.waits.merge(&waits);

        match self.pipes.get(&key.pipe) {
            Some(p) if p.ino == key.ino => {}
            Some(p) if p.ino == 0 => {
                self.by_ino.insert(key.ino, key.pipe);
            }
            other => {
                // A pipe whose pipe2() was not seen, or a new pipe at a freed one's address.
                if other.is_some() {
                    let old = self.pipes.remove(&key.pipe).expect("present");
                    self.retire(old);
                }
                self.insert_pipe(key.pipe, key.ino, ts);
            }
        }
        let p = self.pipes.get_mut(&key.pipe).expect("inserted");
        p.ino = key.ino;
        p.events += events;
        p.totalled_ops += n;
        p.last_ts_ns = p.last_ts_ns.max(ts);
        p.first_ts_ns = p.first_ts_ns.min(ts);
        p.rate.record_n(ts, events);
        p.waits.merge(&waits);
        for k in 0..2 {
            add_contention(&mut p.locks.contention[k], &t.locks[k], &prev.locks[k], ts);
        }
        for (i, d) in grown.iter().enumerate() {
            let s = &mut p.ops[RING_OPS[i] as usize];
            s.calls += d.calls;
            s.bytes += d.bytes;
            s.errors += d.errors;
            let now = &t.ops[i];
            if now.last_error_tick != prev.ops[i].last_error_tick {
                s.last_error = now.last_error;
            }
        }
        p.max_occupancy = p.max_occupancy.max(t.max_occupancy);
        // The ring as the newest op left it, unless the pipe is gone (an op that ended as it
        // was freed read freed memory).
        if t.ring_size == 0 || p.is_released() {
            return;
        }
        p.max_usage = t.max_usage;
        p.ring.resize(t.ring_size);
        if p.ring.is_known() {
            // Every slot an ordinary pipe holds was written by an op.
            p.ring.advance(t.head(), t.tail(), SlotKind::Data);
        } else {
            p.ring.sync(t.head(), t.tail());
        }
        let occ = p.ring.occupancy();
        p.max_occupancy = p.max_occupancy.max(occ);
        p.history.record(ts, occ, p.ring.size());
    }

    /// Of the totals just read and applied (`read`), those that are final: their pipe was freed
    /// before the read (a freed pipe has no more ops). The source may forget them; the model
    /// does. Freed pipes are remembered from the first call on, until the next call.
    pub fn final_totals<'a>(
        &mut self,
        read: impl IntoIterator<Item = &'a PipeKey>,
    ) -> Vec<PipeKey> {
        let freed = std::mem::take(&mut self.freed);
        let mut done = Vec::new();
        if let Some(freed) = &freed {
            for k in read {
                if freed.contains(&(k.pipe, k.ino)) {
                    self.totals_seen.remove(&(k.pipe, k.ino));
                    done.push(*k);
                }
            }
        }
        self.freed = Some(Default::default());
        done
    }
}
