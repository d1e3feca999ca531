//! cgroup v2 paths for `--cgroup`: the id the kernel's BPF helpers return for a cgroup is the
//! inode number of its directory, and its level is its depth below the root.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// A cgroup as the in-kernel filter needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    pub id: u64,
    pub level: u32,
    /// Relative to the cgroup v2 root, starting with `/` (the root itself is `/`).
    pub path: String,
}

/// Where cgroup v2 is mounted (the first cgroup2 mount in /proc/self/mountinfo).
pub fn v2_root() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER
        let (pre, post) = l.split_once(" - ")?;
        if post.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        Some(PathBuf::from(
            pre.split_whitespace().nth(4)?.replace("\\040", " "),
        ))
    })
}

/// `arg` is a directory inside the cgroup v2 mount, or a path relative to its root
/// (`/system.slice/foo.service`, as /proc/PID/cgroup shows it).
pub fn resolve(arg: &Path) -> Result<Cgroup> {
    let Some(root) = v2_root() else {
        bail!(
            "--cgroup {}: cgroup v2 is not mounted here (no cgroup2 in /proc/self/mountinfo)",
            arg.display()
        );
    };
    let dir = if arg.starts_with(&root) {
        arg.to_path_buf()
    } else {
        root.join(arg.strip_prefix("/").unwrap_or(arg))
    };
    if !dir.join("cgroup.procs").is_file() {
        bail!(
            "--cgroup {}: not a cgroup v2 directory ({} has no cgroup.procs; cgroup v2 is mounted at {})",
            arg.display(),
            dir.display(),
            root.display()
        );
    }
    let dir = dir.canonicalize()?;
    let rel = dir.strip_prefix(root.canonicalize()?)?;
    Ok(Cgroup {
        id: std::fs::metadata(&dir)?.ino(),
        level: rel.components().count() as u32,
        path: format!("/{}", rel.display()),
    })
}

/// The cgroup paths the events' ids name, in the order they were met (a recording writes the
/// new ones before the events that carry them).
#[derive(Debug, Default)]
pub struct CgroupTable {
    entries: Vec<(u64, String)>,
    index: foldhash::HashMap<u64, usize>,
}

/// The table a source fills and its sinks read.
pub type SharedCgroups = std::sync::Arc<std::sync::RwLock<CgroupTable>>;

impl CgroupTable {
    pub fn insert(&mut self, id: u64, path: String) {
        if !self.index.contains_key(&id) {
            self.index.insert(id, self.entries.len());
            self.entries.push((id, path));
        }
    }

    /// Entries so far: it only grows, so an unchanged length means nothing was named since.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.index.contains_key(&id)
    }

    /// The path of cgroup `id`, relative to the cgroup v2 root (`/` is the root).
    pub fn path(&self, id: u64) -> Option<&str> {
        self.index.get(&id).map(|&i| self.entries[i].1.as_str())
    }

    /// Entries from the `n`th on (what a writer has not written yet).
    pub fn since(&self, n: usize) -> &[(u64, String)] {
        self.entries.get(n..).unwrap_or(&[])
    }

    /// Whether cgroup `id` is `want` or below it (`want` as `resolve` spells paths).
    pub fn within(&self, id: u64, want: &str) -> bool {
        self.path(id).is_some_and(|p| {
            want == "/" || p == want || p.strip_prefix(want).is_some_and(|r| r.starts_with('/'))
        })
    }
}

/// A recording's cgroups chunk: new entries, in order.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CgroupChunk {
    pub cgroups: Vec<(u64, String)>,
}

/// Names cgroup ids for a live session: the id is the inode of the cgroup's directory, so a
/// walk of the cgroup v2 mount maps them all; it is walked again when an id is new (a cgroup
/// made since), at most every WALK_EVERY.
pub struct Namer {
    root: Option<PathBuf>,
    found: std::collections::HashMap<u64, String>,
    walked_at: Option<std::time::Instant>,
}

impl Namer {
    const WALK_EVERY: std::time::Duration = std::time::Duration::from_millis(200);
    /// Bounds on one walk: deeper or more than this is not a cgroup tree anyone reads.
    const MAX_DEPTH: usize = 32;
    const MAX_DIRS: usize = 1 << 16;

    pub fn new() -> Self {
        Self {
            root: v2_root(),
            found: std::collections::HashMap::new(),
            walked_at: None,
        }
    }

    /// Adds the cgroups `events` carry that `t` lacks, as far as they can be named now.
    pub fn add_new(&mut self, events: &[wqtrace_common::Event], t: &SharedCgroups) {
        // Runs of one task's events share it: one lookup per run.
        let mut last = 0;
        self.add_ids(
            events.iter().map(|e| e.cgroup).filter(|&id| {
                let run = id == last;
                last = id;
                !run
            }),
            t,
        );
    }

    /// Adds the cgroup ids that `t` lacks, as far as they can be named now.
    pub fn add_ids(&mut self, ids: impl IntoIterator<Item = u64>, t: &SharedCgroups) {
        let mut new: Vec<u64> = Vec::new();
        {
            let t = t.read().unwrap_or_else(|p| p.into_inner());
            for id in ids {
                if id != 0 && !t.contains(id) && !new.contains(&id) {
                    new.push(id);
                }
            }
        }
        if new.is_empty() {
            return;
        }
        let named: Vec<(u64, String)> = new
            .into_iter()
            .filter_map(|id| Some((id, self.name(id)?)))
            .collect();
        let mut t = t.write().unwrap_or_else(|p| p.into_inner());
        for (id, p) in named {
            t.insert(id, p);
        }
    }

    fn name(&mut self, id: u64) -> Option<String> {
        if !self.found.contains_key(&id)
            && self
                .walked_at
                .is_none_or(|t| t.elapsed() >= Self::WALK_EVERY)
        {
            self.walk();
        }
        self.found.get(&id).cloned()
    }

    fn walk(&mut self) {
        self.walked_at = Some(std::time::Instant::now());
        let Some(root) = self.root.clone() else {
            return;
        };
        let mut stack = vec![(root.clone(), 0usize)];
        let mut dirs = 0;
        while let Some((dir, depth)) = stack.pop() {
            dirs += 1;
            if dirs > Self::MAX_DIRS {
                break;
            }
            if let Ok(md) = std::fs::metadata(&dir) {
                let rel = dir.strip_prefix(&root).unwrap_or(Path::new(""));
                self.found.insert(md.ino(), format!("/{}", rel.display()));
            }
            if depth >= Self::MAX_DEPTH {
                continue;
            }
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for ent in rd.flatten() {
                if ent.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push((ent.path(), depth + 1));
                }
            }
        }
    }
}

impl Default for Namer {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process's own cgroup (as /proc/self/cgroup names it) resolves, by either form,
    /// to its directory; a made-up one is one clear line.
    #[test]
    fn paths_resolve_to_id_and_level() {
        let Some(root) = v2_root() else {
            // Every machine the tests run on mounts cgroup v2 (the host's hybrid layout too).
            panic!("no cgroup v2 mount");
        };
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let rel = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .expect("a cgroup v2 line in /proc/self/cgroup");
        let a = resolve(Path::new(rel)).unwrap();
        let b = resolve(&root.join(rel.trim_start_matches('/'))).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.path,
            if rel == "/" {
                "/".to_string()
            } else {
                rel.to_string()
            }
        );
        assert_eq!(a.level as usize, Path::new(rel).components().count() - 1);
        let top = resolve(Path::new("/")).unwrap();
        assert_eq!(top.level, 0);
        let err = resolve(Path::new("/no/such/cgroup"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a cgroup v2 directory"), "{err}");
    }

    /// The walk names this process's own cgroup by the id the kernel gives it; paths match
    /// themselves and their descendants only.
    #[test]
    fn ids_are_named_by_walking_the_mount() {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let rel = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        let cg = resolve(Path::new(rel)).unwrap();
        let mut n = Namer::new();
        assert_eq!(n.name(cg.id).as_deref(), Some(cg.path.as_str()));
        let mut t = CgroupTable::default();
        t.insert(1, "/system.slice/a.service".into());
        t.insert(2, "/system.slice/ab.service".into());
        assert!(t.within(1, "/system.slice"));
        assert!(t.within(1, "/system.slice/a.service"));
        assert!(
            !t.within(2, "/system.slice/a"),
            "a prefix of a name is not a parent"
        );
        assert!(t.within(2, "/"));
        assert!(!t.within(3, "/"), "an unnamed id is within nothing");
    }
}
