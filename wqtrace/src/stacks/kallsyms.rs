//! Kernel symbol names for kernel stacks, from /proc/kallsyms.
//!
//! The file is opened while wqtrace still has its privileges and kept: the kernel decides at
//! open time (from the opener's credentials and kptr_restrict) whether it shows addresses, so
//! the descriptor keeps working after privileges are dropped. The first kernel stack builds a
//! compact index of its text symbols (two passes, so every array has its exact size: about
//! 4 MB for a distro kernel's ~120k symbols). Re-reading the file for each round of new
//! stacks instead stalled the naming thread for seconds on a busy emulated guest.

use std::{
    fs::File,
    io::{BufRead, BufReader, Read, Seek},
};

use super::Frame;

pub struct Kallsyms {
    file: Option<File>,
    index: Option<Index>,
    /// Why kernel frames are shown as addresses, if they are.
    note: Option<String>,
}

/// Text symbols in file order, and their order by address.
#[derive(Default)]
struct Index {
    addrs: Vec<u64>,
    /// Where each symbol's text starts in `names` (one more entry than symbols).
    starts: Vec<u32>,
    /// `name` or `name\tmodule`, concatenated.
    names: String,
    /// Symbol indices sorted by address (modules follow the core kernel in the file).
    by_addr: Vec<u32>,
}

/// A text symbol line: (address, name, module).
fn text_symbol(line: &str) -> Option<(u64, &str, Option<&str>)> {
    let mut it = line.split_whitespace();
    let (a, t, name) = (it.next()?, it.next()?, it.next()?);
    if !matches!(t, "t" | "T" | "w" | "W") {
        return None;
    }
    let a = u64::from_str_radix(a, 16).ok()?;
    let module = it
        .next()
        .map(|m| m.trim_start_matches('[').trim_end_matches(']'));
    Some((a, name, module))
}

impl Index {
    /// `read` yields the file from its start; it is called twice (count, then fill).
    fn build<R: BufRead>(mut read: impl FnMut() -> Option<R>) -> Option<Self> {
        let (mut n, mut bytes) = (0usize, 0usize);
        for line in read()?.lines() {
            let Ok(line) = line else { break };
            if let Some((_, name, module)) = text_symbol(&line) {
                n += 1;
                bytes += name.len() + module.map_or(0, |m| m.len() + 1);
            }
        }
        let mut ix = Index {
            addrs: Vec::with_capacity(n),
            starts: Vec::with_capacity(n + 1),
            names: String::with_capacity(bytes),
            by_addr: Vec::new(),
        };
        for line in read()?.lines() {
            let Ok(line) = line else { break };
            // (The file may have changed between the passes: a module loaded.)
            if ix.addrs.len() == n || ix.names.len() >= u32::MAX as usize - 4096 {
                break;
            }
            if let Some((a, name, module)) = text_symbol(&line) {
                ix.addrs.push(a);
                ix.starts.push(ix.names.len() as u32);
                ix.names.push_str(name);
                if let Some(m) = module {
                    ix.names.push('\t');
                    ix.names.push_str(m);
                }
            }
        }
        ix.starts.push(ix.names.len() as u32);
        let mut by_addr: Vec<u32> = (0..ix.addrs.len() as u32).collect();
        by_addr.sort_unstable_by_key(|&i| ix.addrs[i as usize]);
        ix.by_addr = by_addr;
        Some(ix)
    }

    /// The text symbol at or below `addr`: (start, name, module).
    fn lookup(&self, addr: u64) -> Option<(u64, &str, Option<&str>)> {
        let k = self
            .by_addr
            .partition_point(|&i| self.addrs[i as usize] <= addr);
        let i = *self.by_addr.get(k.checked_sub(1)?)? as usize;
        let text = &self.names[self.starts[i] as usize..self.starts[i + 1] as usize];
        let (name, module) = match text.split_once('\t') {
            Some((n, m)) => (n, Some(m)),
            None => (text, None),
        };
        Some((self.addrs[i], name, module))
    }
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
                } else {
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
            let f = self.file.take()?;
            let mut f = &f;
            self.index = Index::build(|| f.rewind().ok().map(|_| BufReader::new(f)));
        }
        self.index.as_ref()
    }

    /// `addr` as a frame: the text symbol it falls in, and its module.
    pub fn frame(&mut self, addr: u64) -> Frame {
        let mut fr = Frame {
            addr,
            name: None,
            offset: 0,
            module: None,
        };
        if let Some((start, name, module)) = self.index().and_then(|ix| ix.lookup(addr)) {
            fr.name = Some(name.to_string());
            fr.offset = addr - start;
            fr.module = module.map(str::to_string);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_fall_in_the_text_symbol_before_them() {
        let text = "ffffffffc0000000 t nfs_open\t[nfs]\nffffffff81000000 T _stext\n\
                    ffffffff81000100 t pipe_read\nffffffff81000080 D some_data\n";
        let ix = Index::build(|| Some(text.as_bytes())).unwrap();
        assert_eq!(ix.lookup(0x10), None);
        // Data symbols are not frames: 0x90 is still in _stext.
        assert_eq!(
            ix.lookup(0xffff_ffff_8100_0090),
            Some((0xffff_ffff_8100_0000, "_stext", None))
        );
        assert_eq!(
            ix.lookup(0xffff_ffff_8100_0104),
            Some((0xffff_ffff_8100_0100, "pipe_read", None))
        );
        assert_eq!(
            ix.lookup(0xffff_ffff_c000_0010),
            Some((0xffff_ffff_c000_0000, "nfs_open", Some("nfs")))
        );
        assert_eq!(ix.names.len(), ix.names.capacity(), "sized exactly");
    }
}
