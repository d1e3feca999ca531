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
}
