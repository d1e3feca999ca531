//! The report's cgroups: per pipe, the cgroups of the tasks whose events touched it.

use std::collections::HashMap;

use wqtrace_common::Event;

use crate::cgroup::CgroupTable;

/// One cgroup's events on one pipe.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PipeCgroup {
    pub id: u64,
    /// Its path, if the recording named it.
    pub path: Option<String>,
    pub events: u64,
}

impl PipeCgroup {
    /// The path, or the id when the recording could not name it.
    pub fn label(&self) -> String {
        self.path
            .clone()
            .unwrap_or_else(|| format!("cgroup id {} (no path recorded)", self.id))
    }
}

/// Counts events by (pipe inode, cgroup id) while a recording is read.
#[derive(Default)]
pub struct CgroupCounts {
    counts: HashMap<(u64, u64), u64>,
}

impl CgroupCounts {
    pub fn add(&mut self, e: &Event) {
        if e.cgroup != 0 && e.ino != 0 {
            *self.counts.entry((e.ino, e.cgroup)).or_default() += 1;
        }
    }

    /// Per pipe inode, its cgroups by events (most first).
    pub fn by_pipe(self, t: &CgroupTable) -> HashMap<u64, Vec<PipeCgroup>> {
        let mut m: HashMap<u64, Vec<PipeCgroup>> = HashMap::new();
        for ((ino, id), events) in self.counts {
            m.entry(ino).or_default().push(PipeCgroup {
                id,
                path: t.path(id).map(str::to_string),
                events,
            });
        }
        for v in m.values_mut() {
            v.sort_by(|a, b| b.events.cmp(&a.events).then(a.id.cmp(&b.id)));
        }
        m
    }
}
