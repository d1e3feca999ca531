//! Kernel symbol names for kernel stacks, from /proc/kallsyms.
//!
//! The file is opened while wqtrace still has its privileges and kept: the kernel decides at
//! open time (from the opener's credentials and kptr_restrict) whether it shows addresses, so
//! the descriptor keeps working after privileges are dropped. It is parsed the first time a
//! kernel stack needs names: a session without stacks never pays for the ~120k symbols.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
};

use super::Frame;

pub struct Kallsyms {
    file: Option<File>,
    index: Option<Index>,
    /// Why kernel frames are shown as addresses, if they are.
    note: Option<String>,
}

/// Text symbols sorted by address; names in one string (a few MB for a distro kernel).
#[derive(Default)]
struct Index {
    addrs: Vec<u64>,
    /// (name start, name length, module index + 1 or 0) per address.
    meta: Vec<(u32, u16, u16)>,
    names: String,
    modules: Vec<String>,
}

impl Kallsyms {
    /// Opens /proc/kallsyms now (privileged); says why names will be missing, if they will.
    pub fn open() -> Self {
        let mut k = Self {
            file: None,
            index: None,
            note: None,
        };
        match File::open("/proc/kallsyms") {
            Err(e) => k.note = Some(format!("/proc/kallsyms cannot be read: {e}")),
            Ok(mut f) => {
                // The first text symbol tells: per-cpu symbols at 0 come first on x86_64.
                let mut head = vec![0u8; 64 << 10];
                let n = read_up_to(&mut f, &mut head);
                let text = String::from_utf8_lossy(&head[..n]);
                let first_text = text.lines().find_map(|l| {
                    let mut it = l.split_whitespace();
                    let (a, t) = (it.next()?, it.next()?);
                    matches!(t, "t" | "T").then(|| u64::from_str_radix(a, 16).unwrap_or(0))
                });
                if first_text.unwrap_or(0) == 0 {
                    k.note = Some(format!(
                        "/proc/kallsyms hides kernel addresses (kernel.kptr_restrict = {})",
                        std::fs::read_to_string("/proc/sys/kernel/kptr_restrict")
                            .map_or_else(|_| "?".into(), |s| s.trim().to_string())
                    ));
                } else if f.seek(SeekFrom::Start(0)).is_ok() {
                    k.file = Some(f);
                }
            }
        }
        k
    }

    /// Why kernel frames will have no names (None: they will).
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    fn index(&mut self) -> Option<&Index> {
        if self.index.is_none() {
            let mut f = self.file.take()?;
            let mut text = String::new();
            if let Err(e) = f.read_to_string(&mut text) {
                self.note = Some(format!("reading /proc/kallsyms: {e}"));
                return None;
            }
            self.index = Some(Index::parse(&text));
        }
        self.index.as_ref()
    }

    /// `addr` as a frame: the text symbol it falls in, and the module.
    pub fn frame(&mut self, addr: u64) -> Frame {
        let mut fr = Frame {
            addr,
            name: None,
            offset: 0,
            module: None,
        };
        if let Some(ix) = self.index() {
            let i = ix.addrs.partition_point(|&a| a <= addr);
            if i > 0 {
                let (start, len, module) = ix.meta[i - 1];
                let s = start as usize;
                fr.name = Some(ix.names[s..s + len as usize].to_string());
                fr.offset = addr - ix.addrs[i - 1];
                if module > 0 {
                    fr.module = Some(ix.modules[module as usize - 1].clone());
                }
            }
        }
        fr
    }
}

/// Reads until `buf` is full or the file ends (/proc files return a page or so per read).
fn read_up_to(f: &mut File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}

impl Index {
    fn parse(text: &str) -> Self {
        let mut rows: Vec<(u64, &str, Option<&str>)> = Vec::new();
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let (Some(a), Some(t), Some(name)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            if !matches!(t, "t" | "T" | "w" | "W") {
                continue;
            }
            let Ok(a) = u64::from_str_radix(a, 16) else {
                continue;
            };
            let module = it
                .next()
                .map(|m| m.trim_start_matches('[').trim_end_matches(']'));
            rows.push((a, name, module));
        }
        rows.sort_by_key(|r| r.0);
        let mut ix = Index::default();
        for (a, name, module) in rows {
            let m = match module {
                None => 0,
                Some(m) => match ix.modules.iter().position(|x| x == m) {
                    Some(i) => i + 1,
                    None => {
                        ix.modules.push(m.to_string());
                        ix.modules.len()
                    }
                },
            };
            let len = name.len().min(u16::MAX as usize);
            ix.meta.push((
                ix.names.len() as u32,
                len as u16,
                m.min(u16::MAX as usize) as u16,
            ));
            ix.names.push_str(&name[..len]);
            ix.addrs.push(a);
        }
        ix
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_fall_in_the_symbol_before_them() {
        let ix = Index::parse(
            "ffffffff81000000 T _stext\nffffffff81000100 t pipe_read\n\
             ffffffff81000080 D some_data\nffffffffc0000000 t nfs_open\t[nfs]\n",
        );
        let mut k = Kallsyms {
            file: None,
            index: Some(ix),
            note: None,
        };
        let f = k.frame(0xffff_ffff_8100_0104);
        assert_eq!(f.to_string(), "pipe_read+0x4");
        // Data symbols are not frames: 0x90 is still in _stext.
        assert_eq!(k.frame(0xffff_ffff_8100_0090).to_string(), "_stext+0x90");
        assert_eq!(
            k.frame(0xffff_ffff_c000_0010).to_string(),
            "nfs_open+0x10 [nfs]"
        );
        assert_eq!(k.frame(0x10).to_string(), "0x10");
    }
}
