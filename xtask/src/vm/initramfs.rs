//! The guest's initramfs (newc cpio, uncompressed), written by hand: no cpio/gzip needed.

use std::hash::{Hash as _, Hasher as _};
use std::path::PathBuf;

use anyhow::Context as _;

use crate::util;

const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "mount", "umount", "mkdir", "cat", "echo", "chroot", "poweroff", "sleep", "ls", "cut",
    "setsid", "dmesg", "sync", "stty",
];
/// Bump when the layout below changes.
const INITRAMFS_FORMAT: u32 = 1;

#[derive(Default)]
pub struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let namesize = name.len() + 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            if mode & 0o170000 == 0o040000 { 2 } else { 1 },
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            namesize as u32,
            0,
        ];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }
    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }
    pub fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, (0, 0), &[]);
    }
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100000 | perm, (0, 0), data);
    }
    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120777, (0, 0), target.as_bytes());
    }
    pub fn chardev(&mut self, name: &str, perm: u32, major: u32, minor: u32) {
        self.entry(name, 0o020000 | perm, (major, minor), &[]);
    }
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.buf
    }
}

pub fn initramfs() -> anyhow::Result<PathBuf> {
    let init_path = util::root().join("vm/init");
    let init =
        std::fs::read(&init_path).with_context(|| format!("reading {}", init_path.display()))?;
    let busybox = std::fs::read(BUSYBOX)
        .with_context(|| format!("reading {BUSYBOX} (run `cargo xtask setup`: busybox-static)"))?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (INITRAMFS_FORMAT, &init, &busybox, APPLETS).hash(&mut h);
    let stamp = format!("{:016x}", h.finish());
    let dir = util::vm_dir()?;
    let out = dir.join("initramfs.cpio");
    let stamp_path = dir.join("initramfs.stamp");
    if out.is_file() && std::fs::read_to_string(&stamp_path).ok().as_deref() == Some(&stamp) {
        return Ok(out);
    }
    let mut c = Cpio::default();
    for d in ["bin", "sbin", "proc", "sys", "dev", "host", "tmp", "run"] {
        c.dir(d);
    }
    c.chardev("dev/console", 0o600, 5, 1);
    c.file("bin/busybox", 0o755, &busybox);
    for a in APPLETS {
        c.symlink(&format!("bin/{a}"), "busybox");
    }
    c.file("init", 0o755, &init);
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, c.finish())?;
    std::fs::rename(&tmp, &out)?;
    std::fs::write(&stamp_path, stamp)?;
    eprintln!("vm: built {}", out.display());
    Ok(out)
}
