//! Kernel symbol names for kernel stacks, from /proc/kallsyms.
//!
//! The file is opened while wqtrace still has its privileges and kept: the kernel decides at
//! open time (from the opener's credentials and kptr_restrict) whether it shows addresses, so
//! the descriptor keeps working after privileges are dropped. It is not held in memory (an
//! index of its ~120k symbols was a quarter of wqtrace's peak RSS): each round of new stacks
//! reads it once and keeps only the frames it named.

use std::{
    collections::HashMap,
    fs::File,
    io::{BufRead, BufReader, Read, Seek},
};

use super::Frame;

pub struct Kallsyms {
    file: Option<File>,
    /// Return addresses named so far.
    named: HashMap<u64, Frame>,
    /// Why kernel frames are shown as addresses, if they are.
    note: Option<String>,
}

impl Kallsyms {
    /// Opens /proc/kallsyms now (privileged); says why names will be missing, if they will.
    pub fn open() -> Self {
        let mut k = Self {
            file: None,
            named: HashMap::new(),
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

    /// Names every address in `addrs` not named yet, in one pass over the file.
    pub fn prepare(&mut self, addrs: &[u64]) {
        let mut want: Vec<u64> = addrs
            .iter()
            .copied()
            .filter(|a| !self.named.contains_key(a))
            .collect();
        if want.is_empty() {
            return;
        }
        want.sort_unstable();
        want.dedup();
        let mut found = vec![None; want.len()];
        if let Some(f) = self.file.as_mut()
            && f.rewind().is_ok()
        {
            found = best_symbols(BufReader::new(f), &want);
        }
        for (addr, best) in want.into_iter().zip(found) {
            let mut fr = Frame {
                addr,
                name: None,
                offset: 0,
                module: None,
            };
            if let Some((start, name, module)) = best {
                fr.name = Some(name);
                fr.offset = addr - start;
                fr.module = module;
            }
            self.named.insert(addr, fr);
        }
    }

    /// `addr` as a frame (after [`Kallsyms::prepare`]): the text symbol it falls in.
    pub fn frame(&mut self, addr: u64) -> Frame {
        self.prepare(&[addr]);
        self.named[&addr].clone()
    }
}

/// For each of the sorted `want` addresses, the text symbol with the highest address at or
/// below it: (start, name, module). One pass; the file need not be in address order (modules
/// follow the core kernel).
fn best_symbols(r: impl BufRead, want: &[u64]) -> Vec<Option<(u64, String, Option<String>)>> {
    let mut best: Vec<Option<(u64, String, Option<String>)>> = vec![None; want.len()];
    for line in r.lines() {
        let Ok(line) = line else { break };
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
        // The wanted addresses this symbol may cover: those at or above it, until one already
        // has a closer symbol (those above it have one at least as close).
        let mut i = want.partition_point(|&w| w < a);
        while i < want.len() {
            if best[i].as_ref().is_some_and(|b| b.0 >= a) {
                break;
            }
            let module = it
                .clone()
                .next()
                .map(|m| m.trim_start_matches('[').trim_end_matches(']').to_string());
            best[i] = Some((a, name.to_string(), module));
            i += 1;
        }
    }
    best
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
        let want = [
            0x10,
            0xffff_ffff_8100_0090,
            0xffff_ffff_8100_0104,
            0xffff_ffff_c000_0010,
        ];
        let b = best_symbols(text.as_bytes(), &want);
        assert_eq!(b[0], None);
        // Data symbols are not frames: 0x90 is still in _stext.
        assert_eq!(b[1], Some((0xffff_ffff_8100_0000, "_stext".into(), None)));
        assert_eq!(
            b[2],
            Some((0xffff_ffff_8100_0100, "pipe_read".into(), None))
        );
        assert_eq!(
            b[3],
            Some((0xffff_ffff_c000_0000, "nfs_open".into(), Some("nfs".into())))
        );
    }
}
