//! The panels. Each renders from the model ([`super::view::View`]) plus view state, nothing else,
//! so tests draw them on ratatui's `TestBackend` without a kernel.

pub mod alerts;
pub mod header;
pub mod locks;
pub mod pipes;
pub mod ring;

use ratatui::style::{Color, Modifier, Style};

use super::view::View;

pub const DIM: Style = Style::new().fg(Color::DarkGray);
pub const KEY: Style = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
pub const NOTIF: Style = Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD);
pub const BAD: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
pub const WARN: Style = Style::new().fg(Color::Yellow);
pub const TITLE: Style = Style::new().add_modifier(Modifier::BOLD);

/// Marks notification pipes in the table and titles.
pub const NOTIF_MARK: &str = "◆";

pub use crate::text::duration_compact as dur;

/// A count, short: `999`, `1.2k`, `35k`, `1.2M`.
pub fn count(n: f64) -> String {
    if n < 1_000.0 {
        format!("{n:.0}")
    } else if n < 10_000.0 {
        format!("{:.1}k", n / 1e3)
    } else if n < 1e6 {
        format!("{:.0}k", n / 1e3)
    } else {
        format!("{:.1}M", n / 1e6)
    }
}

/// An event timestamp for humans: wall-clock `HH:MM:SS.mmm` when the session knows the
/// realtime offset, else `+S.mmm` since the first event.
pub fn when(v: &View, ts_ns: u64) -> String {
    let off = v.meta.realtime_offset_ns;
    if off != 0 {
        let wall = ts_ns as i64 + off;
        let secs = wall.div_euclid(1_000_000_000) as libc::time_t;
        let ms = wall.rem_euclid(1_000_000_000) / 1_000_000;
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        if !unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
            return format!(
                "{:02}:{:02}:{:02}.{ms:03}",
                tm.tm_hour, tm.tm_min, tm.tm_sec
            );
        }
    }
    let start = v.model.time_span().map_or(0, |(s, _)| s);
    format!("+{:.3}", ts_ns.saturating_sub(start) as f64 / 1e9)
}

/// How long ago `ts_ns` was, relative to the view's clock.
pub fn ago(v: &View, ts_ns: u64) -> String {
    format!("{} ago", dur(v.now_ns.saturating_sub(ts_ns)))
}

/// Cuts `s` to at most `w` chars (ending in `…` when cut).
pub fn fit(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        s.to_string()
    } else if w == 0 {
        String::new()
    } else {
        s.chars().take(w - 1).chain(['…']).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(dur(850), "850ns");
        assert_eq!(dur(15_000), "15µs");
        assert_eq!(dur(1_500), "1.5µs");
        assert_eq!(dur(1_990_000), "1.99ms");
        assert_eq!(dur(18_598), "18.6µs");
        assert_eq!(dur(250_400), "250µs");
        assert_eq!(dur(2_500_000_000), "2.50s");
        assert_eq!(count(12.0), "12");
        assert_eq!(count(1234.0), "1.2k");
        assert_eq!(count(2_500_000.0), "2.5M");
        assert_eq!(crate::text::ret_name(-22), "EINVAL");
        assert_eq!(crate::text::ret_name(-99), "-99");
        assert_eq!(crate::text::ret_name(4096), "4096");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
    }
}
