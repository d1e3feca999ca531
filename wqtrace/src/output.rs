//! Files wqtrace writes (recordings, exports), opened the way a root tool must open them.
//!
//! wqtrace usually runs as root and writes where it is told, often /tmp, where any user can
//! plant a symlink or a file first. So: the last path component is never followed when it is
//! a symlink (O_NOFOLLOW), an existing file is never replaced silently (refused unless
//! `--force`), a new file is created 0600 (a recording names every process on the machine),
//! and a file made for a `sudo` user is handed to that user. `-` is standard output; a FIFO
//! or character device that is already there (`/dev/null`, `mkfifo`) is written into, and so
//! are `/dev/fd/N` (a shell's `>(...)`) and `/dev/stdout`, this process's own descriptors.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{Context as _, Result, bail};

use crate::privileges::User;
use crate::text;

/// Opens `path` for writing a new output file (see the module docs for the rules). `owner`:
/// who gets a newly created file (the session's user under sudo).
pub fn create(path: &Path, force: bool, owner: Option<&User>) -> Result<File> {
    if path == Path::new("-") {
        let fd = unsafe { libc::dup(libc::STDOUT_FILENO) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("standard output");
        }
        return Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    }
    let shown = text::path(path);
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| shown.to_string()),
        Ok(m) => {
            let t = m.file_type();
            if t.is_symlink() {
                if own_descriptor(path) {
                    return open_existing(path, false).with_context(|| shown.to_string());
                }
                if !force {
                    bail!(
                        "{shown} is a symbolic link: not followed when writing as root (name its target, - for standard output, or --force to replace the link)"
                    );
                }
                // --force: the link goes, its target stays untouched.
            } else if t.is_fifo() || t.is_char_device() || t.is_socket() {
                if m.uid() != 0 && owner.is_none_or(|o| o.uid != m.uid()) {
                    bail!(
                        "{shown} is a {} owned by uid {}, not by root or the session's user: not written into",
                        if t.is_fifo() { "FIFO" } else { "device" },
                        m.uid()
                    );
                }
                return open_existing(path, true).with_context(|| shown.to_string());
            } else if t.is_dir() {
                bail!("{shown} is a directory");
            } else if !t.is_file() {
                bail!("{shown} is not a regular file");
            } else if !force {
                bail!("{shown} exists: pass --force to replace it");
            }
            // Removing the name (a symlink put there since is removed, not followed) and
            // creating it exclusively below: whatever appears in between makes us fail.
            std::fs::remove_file(path).with_context(|| format!("replacing {shown}"))?;
        }
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| shown.to_string())?;
    if let Some(u) = owner {
        std::os::unix::fs::fchown(&file, Some(u.uid), Some(u.gid))
            .with_context(|| format!("handing {shown} to {}", u.describe()))?;
    }
    Ok(file)
}

fn open_existing(path: &Path, nofollow: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).custom_flags(if nofollow {
        libc::O_NOFOLLOW | libc::O_CLOEXEC
    } else {
        libc::O_CLOEXEC
    });
    o.open(path)
}

/// `/dev/fd/N`, `/proc/self/fd/N`, `/dev/stdout`: a descriptor this process already holds (a
/// shell's process substitution), not a link anyone else planted.
fn own_descriptor(path: &Path) -> bool {
    let s = path.to_string_lossy();
    if s == "/dev/stdout" || s == "/dev/stderr" {
        return true;
    }
    ["/dev/fd/", "/proc/self/fd/"].iter().any(|pre| {
        s.strip_prefix(pre)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    /// A fresh directory of this test's own, removed at the end.
    struct Dir(std::path::PathBuf);
    impl Dir {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn dir() -> Dir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("wqtrace-output-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).unwrap();
        Dir(p)
    }

    #[test]
    fn new_files_are_private() {
        let d = dir();
        let p = d.path().join("a.wqt");
        create(&p, false, None).unwrap().write_all(b"x").unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn symlinks_are_not_followed_even_with_force() {
        let d = dir();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let link = d.path().join("sym.wqt");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let err = format!("{:#}", create(&link, false, None).unwrap_err());
        assert!(err.contains("is a symbolic link"), "{err}");
        // --force replaces the link itself, never the file it points to.
        create(&link, true, None)
            .unwrap()
            .write_all(b"new")
            .unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(
            !std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&link).unwrap(), b"new");
    }

    #[test]
    fn existing_files_need_force() {
        let d = dir();
        let p = d.path().join("old.wqt");
        std::fs::write(&p, b"old").unwrap();
        let err = format!("{:#}", create(&p, false, None).unwrap_err());
        assert!(err.ends_with("exists: pass --force to replace it"), "{err}");
        assert_eq!(
            std::fs::read(&p).unwrap(),
            b"old",
            "refused means untouched"
        );
        create(&p, true, None).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn devices_and_own_descriptors_are_written_into() {
        create(Path::new("/dev/null"), false, None)
            .unwrap()
            .write_all(b"x")
            .unwrap();
        assert!(own_descriptor(Path::new("/dev/fd/63")));
        assert!(!own_descriptor(Path::new("/dev/fd/../../tmp/x")));
        let err = format!("{:#}", create(Path::new("/tmp"), true, None).unwrap_err());
        assert!(err.ends_with("is a directory"), "{err}");
    }
}
