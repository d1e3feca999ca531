//! An array map's values mapped into this process (BPF_F_MMAPABLE): the programs' owner words
//! for the slot arrays (`probe::totals`, `probe::counts`), read from memory instead of a
//! bpf() lookup per slot, and written with atomics the programs' compare-and-swap sees.

use std::{
    os::fd::{AsFd, AsRawFd},
    sync::atomic::AtomicU64,
};

use anyhow::{Context, Result, anyhow};
use aya::{Ebpf, maps::Map};

/// The values of array map `name`, `words` u64 words in all, mapped shared.
pub struct Words {
    base: *mut u64,
    words: usize,
    len: usize,
}

// The mapping is owned by this value alone; its words are only touched through atomics.
unsafe impl Send for Words {}

impl Words {
    pub fn map(ebpf: &Ebpf, name: &str, words: usize) -> Result<Words> {
        let Some(Map::Array(data)) = ebpf.map(name) else {
            return Err(anyhow!("no {name} array"));
        };
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let len = (words * 8).div_ceil(page) * page;
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
        Ok(Words {
            base: p.cast(),
            words,
            len,
        })
    }

    /// Word `i` (values are laid out back to back, each a whole number of words).
    pub fn word(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.words);
        // In the mapping, which lives as long as self.
        unsafe { AtomicU64::from_ptr(self.base.add(i)) }
    }
}

impl Drop for Words {
    fn drop(&mut self) {
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}
