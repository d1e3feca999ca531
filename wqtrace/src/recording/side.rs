//! Tables of names the events refer to by id (stacks, cgroups). A recording carries what a
//! session added to each, as chunks written ahead of the events that use them, so the names
//! travel with the file.

use std::sync::{Arc, RwLock};

use serde::{Serialize, de::DeserializeOwned};

use crate::{
    cgroup::{CgroupChunk, CgroupTable},
    stacks::table::{StackChunk, StackTable},
};

pub trait SideTable: Send + Sync {
    type Chunk: Serialize + DeserializeOwned;
    /// Its chunk type in a recording, plain and zstd-compressed.
    const CHUNK: u8;
    const CHUNK_ZSTD: u8;
    /// What a reader warns of when a chunk is unreadable: what it is, and what that costs.
    const WHAT: &'static str;
    const IF_LOST: &'static str;
    /// How many entries it has.
    fn count(&self) -> usize;
    /// The entries from the `n`th on.
    fn chunk_since(&self, n: usize) -> Self::Chunk;
    fn merge(&mut self, c: Self::Chunk);
}

impl SideTable for StackTable {
    type Chunk = StackChunk;
    const CHUNK: u8 = super::CHUNK_STACKS;
    const CHUNK_ZSTD: u8 = super::CHUNK_STACKS_ZSTD;
    const WHAT: &'static str = "stacks";
    const IF_LOST: &'static str = "their events show them as unknown";
    fn count(&self) -> usize {
        self.len()
    }
    fn chunk_since(&self, n: usize) -> StackChunk {
        StackChunk {
            stacks: self
                .since(n)
                .iter()
                .map(|(k, s)| (*k, (**s).clone()))
                .collect(),
        }
    }
    fn merge(&mut self, c: StackChunk) {
        for (k, s) in c.stacks {
            self.insert(k, s);
        }
    }
}

impl SideTable for CgroupTable {
    type Chunk = CgroupChunk;
    const CHUNK: u8 = super::CHUNK_CGROUPS;
    const CHUNK_ZSTD: u8 = super::CHUNK_CGROUPS_ZSTD;
    const WHAT: &'static str = "cgroup names";
    const IF_LOST: &'static str = "their events show the ids";
    fn count(&self) -> usize {
        self.since(0).len()
    }
    fn chunk_since(&self, n: usize) -> CgroupChunk {
        CgroupChunk {
            cgroups: self.since(n).to_vec(),
        }
    }
    fn merge(&mut self, c: CgroupChunk) {
        for (id, p) in c.cgroups {
            self.insert(id, p);
        }
    }
}

/// A writer's view of a session's table: how much of it is in the file.
pub struct Written<T> {
    table: Option<Arc<RwLock<T>>>,
    written: usize,
}

impl<T> Default for Written<T> {
    fn default() -> Self {
        Self {
            table: None,
            written: 0,
        }
    }
}

impl<T: SideTable> Written<T> {
    pub fn new(table: Option<Arc<RwLock<T>>>) -> Self {
        Self { table, written: 0 }
    }

    /// The entries added since the last call, as one chunk (None: nothing new).
    pub fn take_new(&mut self) -> Option<T::Chunk> {
        let t = self
            .table
            .as_ref()?
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let n = t.count();
        if n <= self.written {
            return None;
        }
        let c = t.chunk_since(self.written);
        self.written = n;
        Some(c)
    }
}

/// Adds a chunk read from a file to `t` (`zstd`: its JSON compressed); Err: the warning for
/// the reader to keep.
pub fn merge<T: SideTable>(
    t: &RwLock<T>,
    payload: &[u8],
    zstd: bool,
    at: u64,
) -> Result<(), String> {
    let warn = |e: &dyn std::fmt::Display| {
        format!("{} at byte {at} ignored ({}): {e}", T::WHAT, T::IF_LOST)
    };
    let unpacked;
    let json = if zstd {
        unpacked = super::unzstd(payload).ok_or_else(|| warn(&"it does not decompress"))?;
        &unpacked[..]
    } else {
        payload
    };
    let c = serde_json::from_slice::<T::Chunk>(json).map_err(|e| warn(&e))?;
    t.write().unwrap_or_else(|p| p.into_inner()).merge(c);
    Ok(())
}
