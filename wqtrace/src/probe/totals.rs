//! Reading the per-pipe totals the programs keep for a live view (`ProbeOpts::pipe_totals`):
//! the totals array (`TOTALS_OWNERS`, `TOTALS_BY_SLOT`; see `wqtrace_common::totals::SlotOwner`)
//! and, for pipes whose slot another pipe held, the `PIPE_TOTALS` hash.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicU64, Ordering},
};

use anyhow::{Context, Result};
use aya::{
    Ebpf,
    maps::{MapError, PerCpuArray, PerCpuHashMap},
};

use super::mapped::Slots;
use wqtrace_common::totals::{
    PipeKey, PipeTotals, SLOT_BUSY, SLOT_FREE, SlotOwner, SlotTotals, slot_of,
};

/// Kernel memory the totals may take at most: the per-CPU hash is preallocated and the array
/// is an array, each entry holding a value per possible CPU.
const TOTALS_BYTES: usize = 16 << 20;

/// `SlotOwner`'s words: tag, claims, pipe, ino.
const OWNER_WORDS: usize = std::mem::size_of::<SlotOwner>() / 8;

/// Room for pipes' totals: `slots` in the array (a power of two) and `hash` entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Room {
    pub slots: u32,
    pub hash: u32,
}

impl Room {
    /// Room for `pipes` (at least 2): half of it, rounded down to a power of two, in the
    /// array, where a pipe's ops cost least; the rest in the hash, for the pipes whose slot
    /// another holds. Past both, a pipe's ops stream.
    pub fn for_pipes(pipes: u32) -> Room {
        let pipes = pipes.max(2);
        let slots = 1u32 << (pipes / 2).ilog2();
        Room {
            slots,
            hash: pipes - slots,
        }
    }

    /// As many pipes as fit in [`TOTALS_BYTES`] on `cpus`, from 256 to 4096.
    pub fn for_cpus(cpus: usize) -> Room {
        let per_pipe = std::mem::size_of::<SlotTotals>() * cpus.max(1);
        Room::for_pipes((TOTALS_BYTES / per_pipe).clamp(256, 4096) as u32)
    }

    /// The least the maps take when the session totals nothing.
    pub const NONE: Room = Room { slots: 1, hash: 1 };
}

/// `TOTALS_OWNERS`, mapped: the owners are read from memory, not a syscall per slot, and a
/// slot is freed by an atomic store the programs' compare-and-swap sees.
pub struct Owners(Slots);

impl Owners {
    pub fn map(ebpf: &Ebpf, slots: u32) -> Result<Owners> {
        Ok(Owners(Slots::map(
            ebpf,
            "TOTALS_OWNERS",
            slots,
            OWNER_WORDS,
        )?))
    }

    fn word(&self, slot: u32, i: usize) -> &AtomicU64 {
        self.0.word(slot, i)
    }

    /// Slot `slot`'s owner: its tag and pipe, when a pipe holds it and no claim is under way.
    fn owner(&self, slot: u32) -> Option<(u64, PipeKey)> {
        let tag = self.word(slot, 0).load(Ordering::Acquire);
        if tag == SLOT_FREE || tag == SLOT_BUSY {
            return None;
        }
        let key = PipeKey {
            pipe: self.word(slot, 2).load(Ordering::Acquire),
            ino: self.word(slot, 3).load(Ordering::Acquire),
        };
        // Unchanged: the key read was this claim's.
        (self.word(slot, 0).load(Ordering::Acquire) == tag).then_some((tag, key))
    }

    /// Frees `key`'s slot, if `key` holds it.
    fn free(&self, key: &PipeKey, mask: u32) {
        let slot = slot_of(key.pipe, mask);
        if let Some((tag, k)) = self.owner(slot)
            && k == *key
        {
            let _ = self.word(slot, 0).compare_exchange(
                tag,
                SLOT_FREE,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }
}

/// Every pipe's running totals, each pipe's CPUs (and its shares in the array and the hash)
/// merged.
pub fn read(ebpf: &Ebpf, owners: &Owners) -> Result<Vec<(PipeKey, PipeTotals)>> {
    let mut by_key: HashMap<PipeKey, PipeTotals> = HashMap::new();
    let arr = PerCpuArray::<_, SlotTotals>::try_from(
        ebpf.map("TOTALS_BY_SLOT")
            .context("no TOTALS_BY_SLOT map")?,
    )?;
    for slot in 0..owners.0.slots() {
        let Some((tag, key)) = owners.owner(slot) else {
            continue;
        };
        let per_cpu = arr.get(&slot, 0).context("reading TOTALS_BY_SLOT")?;
        let t = by_key.entry(key).or_insert(PipeTotals::ZERO);
        // A CPU with another tag has no op of this claim yet (what it holds is an earlier
        // owner's, already read).
        for cpu in per_cpu.iter().filter(|c| c.tag == tag && c.key == key) {
            t.merge(&cpu.t);
        }
    }
    let h = PerCpuHashMap::<_, PipeKey, PipeTotals>::try_from(
        ebpf.map("PIPE_TOTALS").context("no PIPE_TOTALS map")?,
    )?;
    // aya's iterator skips a key removed between listing and reading it.
    for kv in h.iter() {
        let (key, per_cpu) = kv.context("reading PIPE_TOTALS")?;
        let t = by_key.entry(key).or_insert(PipeTotals::ZERO);
        for cpu in per_cpu.iter() {
            t.merge(cpu);
        }
    }
    Ok(by_key.into_iter().collect())
}

/// Drops the totals of `keys`, pipes that are gone and whose totals were read after they went:
/// their slots are free for other pipes, their hash entries removed.
pub fn forget(ebpf: &mut Ebpf, owners: &Owners, mask: u32, keys: &[PipeKey]) -> Result<()> {
    for k in keys {
        owners.free(k, mask);
    }
    let mut h = PerCpuHashMap::<_, PipeKey, PipeTotals>::try_from(
        ebpf.map_mut("PIPE_TOTALS").context("no PIPE_TOTALS map")?,
    )?;
    for k in keys {
        match h.remove(k) {
            Ok(()) => {}
            // Its totals were all in its slot.
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e).context("removing from PIPE_TOTALS"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_splits_between_the_array_and_the_hash() {
        assert_eq!(Room::for_pipes(2), Room { slots: 1, hash: 1 });
        assert_eq!(Room::for_pipes(1), Room { slots: 1, hash: 1 });
        assert_eq!(Room::for_pipes(3), Room { slots: 1, hash: 2 });
        assert_eq!(
            Room::for_pipes(4096),
            Room {
                slots: 2048,
                hash: 2048
            }
        );
        assert_eq!(
            Room::for_pipes(3000),
            Room {
                slots: 1024,
                hash: 1976
            }
        );
    }

    #[test]
    fn room_for_the_machine_stays_within_bounds() {
        for cpus in [1, 2, 64, 1024] {
            let r = Room::for_cpus(cpus);
            assert!((256..=4096).contains(&(r.slots + r.hash)), "{cpus}: {r:?}");
            assert!(r.slots.is_power_of_two());
        }
    }
}
