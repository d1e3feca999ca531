//! Strings other processes control (task names, lock owners' names, a recording's host name),
//! made safe to show to a person.
//!
//! wqtrace runs as root and any process can name itself `"\x1b]0;..."` with PR_SET_NAME: written
//! raw, that retitles or reprograms root's terminal. Human-readable output therefore shows every
//! control character, invalid UTF-8 byte and bidirectional-override character as `\xNN` (and a
//! backslash as `\\`, so the escaped text is unambiguous), as systemd's `cescape` does. JSON and
//! recordings keep the exact bytes instead.

use std::{borrow::Cow, fmt};

/// Text as shown to a person: `Escaped(b"\x1b[31m")` displays as `\x1b[31m`.
#[derive(Clone, Copy)]
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            let valid = chunk.valid();
            let mut plain = 0;
            for (i, c) in valid.char_indices() {
                if !needs_escape(c) {
                    continue;
                }
                f.write_str(&valid[plain..i])?;
                if c == '\\' {
                    f.write_str("\\\\")?;
                } else {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        write!(f, "\\x{b:02x}")?;
                    }
                }
                plain = i + c.len_utf8();
            }
            f.write_str(&valid[plain..])?;
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// Control characters (C0, DEL, C1), the backslash, and the characters that reorder or hide
/// text on a terminal (bidirectional overrides and isolates, zero-width marks).
fn needs_escape(c: char) -> bool {
    c == '\\'
        || c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// The escaped form of `bytes`, borrowed when nothing needed escaping.
pub fn escape(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(needs_escape) => Cow::Borrowed(s),
        _ => Cow::Owned(Escaped(bytes).to_string()),
    }
}

/// `EINVAL` for 22: the errnos pipes, splice and keyctl return (None for others).
pub fn errno_name(e: i32) -> Option<&'static str> {
    Some(match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ESPIPE => "ESPIPE",
        libc::EPIPE => "EPIPE",
        libc::ENOSYS => "ENOSYS",
        libc::ENOPKG => "ENOPKG",
        libc::ENOBUFS => "ENOBUFS",
        libc::EDQUOT => "EDQUOT",
        libc::EKEYREVOKED => "EKEYREVOKED",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => return None,
    })
}

/// A syscall's return for people: `-22` → `EINVAL`, an unnamed errno or a count as the number.
pub fn ret_name(ret: i64) -> String {
    i32::try_from(-ret)
        .ok()
        .filter(|_| ret < 0)
        .and_then(errno_name)
        .map_or_else(|| ret.to_string(), str::to_string)
}

/// A duration in prose (reports): `850 ns`, `15.0 µs`, `1.99 ms`, `2.500 s`.
pub fn duration(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.3} s", ns as f64 / 1e9),
    }
}

/// A duration in a table cell (the TUI, where width is short): `850ns`, `15µs`, `1.99ms`,
/// `2.50s`.
pub fn duration_compact(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        10_000..100_000 => format!("{:.1}µs", ns as f64 / 1e3).replace(".0µs", "µs"),
        100_000..1_000_000 => format!("{}µs", ns / 1_000),
        1_000..10_000 => {
            format!("{:.2}", ns as f64 / 1e3)
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string()
                + "µs"
        }
        1_000_000..1_000_000_000 => format!("{:.2}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

/// A NUL-padded kernel name (`comm`): the bytes before the first NUL.
pub fn until_nul(b: &[u8]) -> &[u8] {
    let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..n]
}

/// A task name as shown to a person.
pub fn comm(b: &[u8]) -> Cow<'_, str> {
    escape(until_nul(b))
}

/// A path as shown to a person (in error messages): the path's bytes escaped.
pub fn path(p: &std::path::Path) -> Cow<'_, str> {
    use std::os::unix::ffi::OsStrExt;
    escape(p.as_os_str().as_bytes())
}

/// A task name in JSON: its text when it is UTF-8 (JSON escapes control characters by its own
/// rules); otherwise the text with U+FFFD for the bad bytes, and the exact bytes beside it
/// (`comm_bytes`) so nothing is lost.
pub fn json_comm(b: &[u8]) -> (Cow<'_, str>, Option<&[u8]>) {
    let b = until_nul(b);
    match std::str::from_utf8(b) {
        Ok(s) => (Cow::Borrowed(s), None),
        Err(_) => (String::from_utf8_lossy(b), Some(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_sequences_are_shown_not_sent() {
        let hostile = b"\x1b[31mEVIL\x1b]0;x\x07";
        let shown = escape(hostile);
        assert_eq!(shown, r"\x1b[31mEVIL\x1b]0;x\x07");
        assert!(!shown.bytes().any(|b| b < 0x20 || b == 0x7f));
    }

    #[test]
    fn invalid_utf8_and_c1_and_bidi_are_escaped() {
        assert_eq!(escape(b"a\xffb\xfe"), r"a\xffb\xfe");
        assert_eq!(escape("x\u{9b}y".as_bytes()), r"x\xc2\x9by");
        assert_eq!(escape("ab\u{202e}cd".as_bytes()), r"ab\xe2\x80\xaecd");
        assert_eq!(
            escape(b"a\\x1b"),
            r"a\\x1b",
            "a literal backslash stays distinguishable"
        );
    }

    #[test]
    fn ordinary_names_are_borrowed_unchanged() {
        assert!(matches!(
            escape(b"kworker/0:1"),
            Cow::Borrowed("kworker/0:1")
        ));
        assert_eq!(escape("größe-α".as_bytes()), "größe-α");
        assert_eq!(comm(b"cat\0\0\0garbage"), "cat");
    }

    #[test]
    fn json_names_keep_the_bytes() {
        assert_eq!(json_comm(b"cat\0\0"), (Cow::Borrowed("cat"), None));
        let (text, bytes) = json_comm(b"a\xffb\0");
        assert_eq!(text, "a\u{fffd}b");
        assert_eq!(bytes, Some(&b"a\xffb"[..]));
    }
}
