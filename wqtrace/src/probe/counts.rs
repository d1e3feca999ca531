//! Reading the events the programs count per cgroup and kind for a counting session
//! (`ProbeOpts::count_ordinary`): the counts array (`COUNT_OWNERS`, `COUNTS_BY_SLOT`; see
//! `wqtrace_common::counts::COUNT_KINDS`) and, for cgroups whose slot another holds, the
//! `EVENT_COUNTS` hash.

use std::{collections::HashMap, sync::atomic::Ordering};

use anyhow::{Context, Result};
use aya::{
    Ebpf,
    maps::{PerCpuArray, PerCpuHashMap},
};
use wqtrace_common::counts::{COUNT_KINDS, CountKey};

use super::mapped::Slots;

/// Kernel memory the counts array may take at most (it holds a value per possible CPU).
const COUNTS_BYTES: usize = 4 << 20;

/// Slots of the counts array on `cpus`: a power of two from 16 to 1024.
pub fn slots_for_cpus(cpus: usize) -> u32 {
    let per_slot = COUNT_KINDS * 8 * cpus.max(1);
    let n = (COUNTS_BYTES / per_slot).clamp(16, 1024) as u32;
    1 << n.ilog2()
}

/// `COUNT_OWNERS`, mapped: the owners are read from memory, not a syscall per slot.
pub fn map_owners(ebpf: &Ebpf, slots: u32) -> Result<Slots> {
    Slots::map(ebpf, "COUNT_OWNERS", slots, 1)
}

/// Every (cgroup, kind)'s running count, summed over CPUs and over the array and the hash.
pub fn read(ebpf: &Ebpf, owners: &Slots) -> Result<Vec<(u64, u32, u64)>> {
    let mut counts: HashMap<(u64, u32), u64> = HashMap::new();
    let arr = PerCpuArray::<_, [u64; COUNT_KINDS]>::try_from(
        ebpf.map("COUNTS_BY_SLOT")
            .context("no COUNTS_BY_SLOT map")?,
    )?;
    for slot in 0..owners.slots() {
        // The cgroup id + 1; 0: free. A slot is claimed for good, so its counts are the
        // owner's on every CPU.
        let owner = owners.word(slot, 0).load(Ordering::Acquire);
        if owner == 0 {
            continue;
        }
        let per_cpu = arr.get(&slot, 0).context("reading COUNTS_BY_SLOT")?;
        for kind in 0..COUNT_KINDS {
            let n: u64 = per_cpu.iter().map(|c| c[kind]).sum();
            if n > 0 {
                *counts.entry((owner - 1, kind as u32)).or_default() += n;
            }
        }
    }
    let h = PerCpuHashMap::<_, CountKey, u64>::try_from(
        ebpf.map("EVENT_COUNTS").context("no EVENT_COUNTS map")?,
    )?;
    for kv in h.iter() {
        let (key, per_cpu) = kv.context("reading EVENT_COUNTS")?;
        *counts.entry((key.cgroup, key.kind)).or_default() += per_cpu.iter().sum::<u64>();
    }
    Ok(counts
        .into_iter()
        .map(|((cgroup, kind), n)| (cgroup, kind, n))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_a_power_of_two_within_bounds() {
        for cpus in [1, 2, 64, 1024, 100_000] {
            let n = slots_for_cpus(cpus);
            assert!(
                n.is_power_of_two() && (16..=1024).contains(&n),
                "{cpus}: {n}"
            );
        }
        assert_eq!(slots_for_cpus(2), 1024);
    }
}
