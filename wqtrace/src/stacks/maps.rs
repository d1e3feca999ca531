//! A process's executable mappings (/proc/PID/maps), read as soon as the drain thread sees a
//! user stack of it: a process that made one splice and exited is gone before its stack can be
//! named, but its binaries are still on disk, and a snapshot says where they were mapped.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// File offset of `start`.
    pub offset: u64,
    pub path: PathBuf,
}

/// The executable, file-backed mappings of one process at one moment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Maps {
    entries: Vec<Mapping>,
}

impl Maps {
    pub fn read(pid: u32) -> std::io::Result<Self> {
        Ok(Self::parse(&std::fs::read_to_string(format!(
            "/proc/{pid}/maps"
        ))?))
    }

    /// `start-end perms offset dev inode path`; only executable mappings of files.
    pub fn parse(text: &str) -> Self {
        let mut entries = Vec::new();
        for line in text.lines() {
            let mut it = line.split_ascii_whitespace();
            let (Some(range), Some(perms), Some(off)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            let path = it.nth(2).unwrap_or("");
            if !perms.contains('x') || !path.starts_with('/') {
                continue;
            }
            let Some((s, e)) = range.split_once('-') else {
                continue;
            };
            let (Ok(start), Ok(end), Ok(offset)) = (
                u64::from_str_radix(s, 16),
                u64::from_str_radix(e, 16),
                u64::from_str_radix(off, 16),
            ) else {
                continue;
            };
            entries.push(Mapping {
                start,
                end,
                offset,
                path: PathBuf::from(path),
            });
        }
        Self { entries }
    }

    /// The file `addr` lies in and its offset in that file.
    pub fn find(&self, addr: u64) -> Option<(&Path, u64)> {
        self.entries
            .iter()
            .find(|m| (m.start..m.end).contains(&addr))
            .map(|m| (m.path.as_path(), addr - m.start + m.offset))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executable_file_mappings_translate_to_file_offsets() {
        let m = Maps::parse(
            "55d000000000-55d000001000 r--p 00000000 fe:00 1 /usr/bin/app\n\
             55d000001000-55d000005000 r-xp 00001000 fe:00 1 /usr/bin/app\n\
             7f0000000000-7f0000100000 r-xp 00026000 fe:00 2 /usr/lib/libc.so.6\n\
             7fff00000000-7fff00001000 r-xp 00000000 00:00 0 [vdso]\n",
        );
        assert_eq!(
            m.find(0x55d0_0000_1010),
            Some((Path::new("/usr/bin/app"), 0x1010))
        );
        assert_eq!(
            m.find(0x7f00_0000_0010),
            Some((Path::new("/usr/lib/libc.so.6"), 0x26010))
        );
        assert_eq!(m.find(0x55d0_0000_0010), None, "not executable");
        assert_eq!(m.find(0x7fff_0000_0010), None, "not a file");
    }
}
