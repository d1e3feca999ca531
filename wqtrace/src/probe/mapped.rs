//! An array map's values mapped into this process (BPF_F_MMAPABLE): the programs' owner words
//! for the slot arrays (`probe::totals`, `probe::counts`), read from memory instead of a
//! bpf() lookup per slot, and written with atomics the programs' compare-and-swap sees.

use std::{
    os::fd::{AsFd, AsRawFd},
    sync::atomic::AtomicU64,
};

use anyhow::{Context, Result, anyhow};
use aya::{Ebpf, maps::Map};

/// The values of array map `name`, `slots` of `per_slot` u64 words each, mapped shared.
pub struct Slots {
    base: *mut u64,
    slots: u32,
    per_slot: usize,
    len: usize,
}

// The mapping is owned by this value alone; its words are only touched through atomics.
unsafe impl Send for Slots {}

impl Slots {
    pub fn map(ebpf: &Ebpf, name: &str, slots: u32, per_slot: usize) -> Result<Slots> {
        let Some(Map::Array(data)) = ebpf.map(name) else {
            return Err(anyhow!("no {name} array"));
        };
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let len = (slots as usize * per_slot * 8).div_ceil(page) * page;
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                data.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("mapping {name}"));
        }
        Ok(Slots {
            base: p.cast(),
            slots,
            per_slot,
            len,
        })
    }

    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Word `i` of slot `slot`.
    pub fn word(&self, slot: u32, i: usize) -> &AtomicU64 {
        assert!(slot < self.slots && i < self.per_slot);
        // In the mapping, which lives as long as self.
        unsafe { AtomicU64::from_ptr(self.base.add(slot as usize * self.per_slot + i)) }
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}
