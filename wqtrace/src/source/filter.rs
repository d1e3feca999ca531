//! Filters applied to a recording after the fact (`replay`, `report`, `export`): `-p`, `-c`,
//! `--pipe` and `--notification-only` mean exactly what they mean live, where the kernel
//! applies them (wqtrace-ebpf/src/filters.rs: the current task's tgid and comm prefix, and the
//! event's pipe), so a filter applied later keeps the events the same live filter would have
//! kept; so does `--cgroup` (the kernel compares the task's cgroup or its ancestor, the
//! recording names each event's cgroup by path). `--since` / `--until` cut a time window.

use std::collections::HashSet;

use anyhow::{Result, bail};
use wqtrace_common::{Event, EventKind, Op, flags};

use super::SessionMeta;
use crate::cgroup::CgroupTable;

/// `--cgroup` as a path relative to the cgroup v2 root: this machine's mount point stripped
/// (a recording may come from elsewhere, so the path need not exist here).
fn cgroup_path(p: &std::path::Path) -> String {
    let rel = crate::cgroup::v2_root()
        .and_then(|root| p.strip_prefix(root).ok().map(|r| r.to_path_buf()))
        .unwrap_or_else(|| p.to_path_buf());
    let s = rel.to_string_lossy();
    let s = s.trim_end_matches('/');
    if s.starts_with('/') {
        s.to_string()
    } else {
        format!("/{s}")
    }
}

/// The filters, as `replay`, `report` and `export` take them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Only events of this process (tgid).
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pub pid: Option<u32>,
    /// Only tasks whose name starts with COMM (at most 15 bytes, as the kernel keeps it).
    #[arg(short = 'c', long = "comm", value_name = "COMM")]
    pub comm: Option<String>,
    /// Only this pipe (its inode number, as in /proc/PID/fd: pipe:[INODE]).
    #[arg(long = "pipe", value_name = "INODE")]
    pub pipe: Option<u64>,
    /// Only notification pipes.
    #[arg(long)]
    pub notification_only: bool,
    /// From WHEN on: seconds after the recording's first event (12.5), or a UTC time
    /// (2026-12-01T13:50:00Z, fractions allowed).
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    pub since: Option<When>,
    /// Up to WHEN (same forms as --since).
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    pub until: Option<When>,
    /// Only tasks in this cgroup (v2) or below it: a path as /proc/PID/cgroup shows it
    /// (/system.slice/foo.service), or a directory in this machine's cgroup2 mount.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<std::path::PathBuf>,
}

/// A point in a recording's time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum When {
    /// Nanoseconds after the first event.
    FromStart(u64),
    /// Wall-clock time, nanoseconds since the Unix epoch.
    Unix(i128),
}

/// `12.5` (seconds from the start) or `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
pub fn parse_when(s: &str) -> Result<When, String> {
    if let Ok(secs) = crate::argvalue::secs(s) {
        return Ok(When::FromStart((secs * 1e9).round() as u64));
    }
    parse_rfc3339(s).map(When::Unix).ok_or_else(|| {
        format!("{s:?}: give seconds from the recording's start (12.5) or a time like 2026-12-01T13:50:00Z")
    })
}

fn parse_rfc3339(s: &str) -> Option<i128> {
    let (date, time) = s.split_once(['T', ' '])?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let (clock, offset_s) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0i64)
    } else {
        let i = time.rfind(['+', '-'])?;
        let (c, off) = time.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        (
            c,
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60),
        )
    };
    let mut t = clock.splitn(3, ':');
    let (h, mi) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&mo)
        || !(1..=31).contains(&da)
        || !(0..24).contains(&h)
        || !(0..60).contains(&mi)
        || !(0.0..61.0).contains(&sec)
    {
        return None;
    }
    let days = days_from_civil(y, mo, da);
    let whole = days * 86400 + h * 3600 + mi * 60 - offset_s;
    Some(whole as i128 * 1_000_000_000 + (sec * 1e9).round() as i128)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The pipes a task-filtered session's events named, so that a pipe's free by a task outside
/// the filters (a child left holding its last fd) is kept where the pipe is the session's, and
/// dropped where it is not: live, the kernel reports such frees of every pipe it knows
/// (`flags::OUTSIDE_FILTER`), and only the session knows which it saw; afterwards, a recording
/// filtered by task keeps the same ones.
#[derive(Debug, Clone, Default)]
pub struct PipesSeen {
    seen: HashSet<(u64, u64)>,
    /// The last pipe inserted: most events name the pipe the one before named.
    last: (u64, u64),
    /// Live: a freed pipe is forgotten (a long session frees many). A recording's filter keeps
    /// them all: replay seeks back over frees, and the key (address, inode) names one pipe.
    forget_freed: bool,
}

impl PipesSeen {
    pub fn live() -> Self {
        Self {
            forget_freed: true,
            ..Self::default()
        }
    }

    /// An event the session keeps: its pipe is the session's.
    pub fn saw(&mut self, e: &Event) {
        if e.pipe == 0 {
            return;
        }
        let key = (e.pipe, e.ino);
        if self.forget_freed && is_free(e) {
            self.forget(key);
        } else if key != self.last {
            self.seen.insert(key);
            self.last = key;
        }
    }

    /// Whether a free of `e`'s pipe by a task outside the filters is kept.
    pub fn freed_outside(&mut self, e: &Event) -> bool {
        let key = (e.pipe, e.ino);
        if !is_free(e) || !self.seen.contains(&key) {
            return false;
        }
        if self.forget_freed {
            self.forget(key);
        }
        true
    }

    fn forget(&mut self, key: (u64, u64)) {
        self.seen.remove(&key);
        if self.last == key {
            self.last = (0, 0);
        }
    }

    /// Live: drops the frees by tasks outside the filters of pipes this session never saw.
    pub fn keep_live(&mut self, events: &mut Vec<Event>) {
        events.retain(|e| {
            if e.flags & flags::OUTSIDE_FILTER != 0 {
                self.freed_outside(e)
            } else {
                self.saw(e);
                true
            }
        });
    }
}

/// The kernel freed the pipe (not one of its fds closed).
fn is_free(e: &Event) -> bool {
    e.kind == EventKind::PipeReleased as u8 && e.op() != Op::Close
}

/// A time bound in the recording's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Bound {
    /// Nanoseconds after the first event.
    FromStart(u64),
    /// CLOCK_BOOTTIME nanoseconds (a wall-clock time converted; may be before boot).
    Boot(i128),
}

/// The filters, ready to test events: wall-clock times are turned into the recording's clock
/// (CLOCK_BOOTTIME) with its realtime offset; times from the start wait for the first event
/// ([`EventFilter::anchor`]).
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    tgid: Option<u32>,
    comm: Option<Vec<u8>>,
    ino: Option<u64>,
    notification_only: bool,
    /// A cgroup path relative to the v2 root (`/` the root), without a trailing `/`.
    cgroup: Option<String>,
    since: Option<Bound>,
    until: Option<Bound>,
    /// [since, until] in event time, once anchored.
    window: Option<(u64, u64)>,
    /// With a task filter: the pipes of the events kept so far ([`EventFilter::admits`]).
    seen: PipesSeen,
}

impl EventFilter {
    pub fn new(a: &FilterArgs, meta: &SessionMeta) -> Result<Self> {
        let comm = match &a.comm {
            Some(c) if c.len() > 15 => bail!("--comm {c:?}: a task comm is at most 15 bytes"),
            Some(c) => Some(c.as_bytes().to_vec()),
            None => None,
        };
        // Wall-clock times into the recording's clock: event ts + realtime offset = Unix time.
        let boot = |w: Option<When>| {
            w.map(|w| match w {
                When::FromStart(ns) => Bound::FromStart(ns),
                When::Unix(ns) => Bound::Boot(ns - meta.realtime_offset_ns as i128),
            })
        };
        Ok(Self {
            tgid: a.pid,
            comm,
            ino: a.pipe,
            notification_only: a.notification_only,
            cgroup: a.cgroup.as_deref().map(cgroup_path),
            since: boot(a.since),
            until: boot(a.until),
            window: None,
            seen: PipesSeen::default(),
        })
    }

    /// Whether it keeps everything (nothing to do).
    pub fn is_empty(&self) -> bool {
        self.tgid.is_none()
            && self.comm.is_none()
            && self.ino.is_none()
            && !self.notification_only
            && self.cgroup.is_none()
            && self.since.is_none()
            && self.until.is_none()
    }

    /// Resolves times given from the start: `first_ts` is the recording's first event.
    pub fn anchor(&mut self, first_ts: u64) {
        let at = |b: Option<Bound>, open: u64| match b {
            None => open,
            Some(Bound::FromStart(ns)) => first_ts.saturating_add(ns),
            Some(Bound::Boot(ns)) => ns.clamp(0, u64::MAX as i128) as u64,
        };
        self.window = Some((at(self.since, 0), at(self.until, u64::MAX)));
    }

    pub fn is_anchored(&self) -> bool {
        self.window.is_some() || (self.since.is_none() && self.until.is_none())
    }

    /// Whether it filters by cgroup (the source must hand [`EventFilter::keeps_in`] its
    /// cgroup names).
    pub fn by_cgroup(&self) -> bool {
        self.cgroup.is_some()
    }

    /// Whether it keeps only some tasks (-p, -c, --cgroup), as `ProbeOpts::tasks_filtered`
    /// says of a live session: then frees by other tasks matter (`EventFilter::admits`).
    pub fn by_task(&self) -> bool {
        self.tgid.is_some() || self.comm.is_some() || self.cgroup.is_some()
    }

    /// Whether `e` passes, its cgroup named by `cgroups` (an event whose cgroup has no name
    /// there does not pass a cgroup filter).
    pub fn keeps_in(&self, e: &Event, cgroups: Option<&CgroupTable>) -> bool {
        self.keeps_task(e, cgroups) && self.keeps_pipe_time(e)
    }

    /// Whether `e` passes (anchor first when a time window is set; without cgroup names).
    pub fn keeps(&self, e: &Event) -> bool {
        self.keeps_in(e, None)
    }

    /// [`EventFilter::keeps_in`] for events in recording order, which also keeps a pipe's
    /// free by a task outside the task filters if the events kept before named the pipe, as
    /// a live session with the same filters keeps it (`PipesSeen`).
    pub fn admits(&mut self, e: &Event, cgroups: Option<&CgroupTable>) -> bool {
        let by_task = self.by_task();
        if !self.keeps_pipe_time(e) {
            return false;
        }
        if self.keeps_task(e, cgroups) {
            if by_task {
                self.seen.saw(e);
            }
            return true;
        }
        by_task && self.seen.freed_outside(e)
    }

    fn keeps_task(&self, e: &Event, cgroups: Option<&CgroupTable>) -> bool {
        if let Some(want) = &self.cgroup
            && !cgroups.is_some_and(|t| t.within(e.cgroup, want))
        {
            return false;
        }
        if self.tgid.is_some_and(|t| t != e.tgid) {
            return false;
        }
        if let Some(c) = &self.comm
            && !e.comm.starts_with(c)
        {
            return false;
        }
        true
    }

    fn keeps_pipe_time(&self, e: &Event) -> bool {
        if self.ino.is_some_and(|i| i != e.ino) {
            return false;
        }
        if self.notification_only && !e.is_notification_pipe() {
            return false;
        }
        match self.window {
            Some((since, until)) => (since..=until).contains(&e.ts_ns),
            None => true,
        }
    }

    /// `pid=42 comm=wq since=+1.5s` (for a report's header).
    pub fn describe(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(p) = self.tgid {
            v.push(format!("pid={p}"));
        }
        if let Some(c) = &self.comm {
            v.push(format!("comm={}", crate::text::escape(c)));
        }
        if let Some(i) = self.ino {
            v.push(format!("pipe={i}"));
        }
        if self.notification_only {
            v.push("notification-only".into());
        }
        if let Some(c) = &self.cgroup {
            v.push(format!("cgroup={}", crate::text::escape(c.as_bytes())));
        }
        for (name, w) in [("since", self.since), ("until", self.until)] {
            match w {
                Some(Bound::FromStart(ns)) => v.push(format!("{name}=+{}s", ns as f64 / 1e9)),
                Some(Bound::Boot(ns)) => v.push(format!("{name}=boottime {}s", ns as f64 / 1e9)),
                None => {}
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts: u64, tgid: u32, comm: &str, ino: u64, notif: bool) -> Event {
        let mut e = Event::zeroed();
        e.ts_ns = ts;
        e.tgid = tgid;
        e.tid = tgid;
        e.ino = ino;
        e.kind = EventKind::RingOp as u8;
        e.comm[..comm.len()].copy_from_slice(comm.as_bytes());
        if notif {
            e.flags |= wqtrace_common::flags::NOTIFICATION_PIPE;
        }
        e
    }

    fn filter(a: FilterArgs, first: u64) -> EventFilter {
        let mut f = EventFilter::new(
            &a,
            &SessionMeta {
                realtime_offset_ns: 1_000_000_000_000,
                ..Default::default()
            },
        )
        .unwrap();
        f.anchor(first);
        f
    }

    #[test]
    fn each_filter_means_what_it_means_live() {
        let a = ev(10, 42, "wq-reader", 7, true);
        let b = ev(20, 43, "wq-writer", 8, false);
        let c = ev(30, 42, "wq", 8, false);
        let keep = |f: &EventFilter| [&a, &b, &c].iter().map(|e| f.keeps(e)).collect::<Vec<_>>();
        let f = filter(FilterArgs::default(), 10);
        assert!(f.is_empty());
        assert_eq!(keep(&f), [true, true, true]);
        let pid = |p| FilterArgs {
            pid: Some(p),
            ..Default::default()
        };
        assert_eq!(keep(&filter(pid(42), 10)), [true, false, true]);
        // A comm prefix, as the kernel compares it.
        let comm = |c: &str| FilterArgs {
            comm: Some(c.into()),
            ..Default::default()
        };
        assert_eq!(keep(&filter(comm("wq-"), 10)), [true, true, false]);
        assert_eq!(keep(&filter(comm("wq-r"), 10)), [true, false, false]);
        let pipe = FilterArgs {
            pipe: Some(8),
            ..Default::default()
        };
        assert_eq!(keep(&filter(pipe, 10)), [false, true, true]);
        let notif = FilterArgs {
            notification_only: true,
            ..Default::default()
        };
        assert_eq!(keep(&filter(notif, 10)), [true, false, false]);
        assert!(EventFilter::new(&comm("sixteen-bytes-xx"), &SessionMeta::default()).is_err());
        // A cgroup and those below it, by the names the recording gives the ids.
        let mut t = CgroupTable::default();
        t.insert(11, "/system.slice".into());
        t.insert(12, "/system.slice/a.service".into());
        t.insert(13, "/user.slice".into());
        let cg = filter(
            FilterArgs {
                cgroup: Some("/system.slice/".into()),
                ..Default::default()
            },
            10,
        );
        let kept: Vec<u64> = [11, 12, 13, 14]
            .into_iter()
            .filter(|&id| {
                let mut e = ev(10, 1, "x", 7, false);
                e.cgroup = id;
                cg.keeps_in(&e, Some(&t))
            })
            .collect();
        assert_eq!(kept, [11, 12]);
        assert!(!cg.keeps(&ev(10, 1, "x", 7, false)), "no names: not kept");
        assert_eq!(cg.describe(), ["cgroup=/system.slice"]);
    }

    /// A pipe's free by a task outside the task filter: kept for a pipe the kept events named,
    /// live and afterwards; a close by such a task is not a free.
    #[test]
    fn frees_outside_the_task_filter_are_kept_for_pipes_seen() {
        let on = |tgid, comm, ino, pipe, kind: EventKind, op: Op| {
            let mut e = ev(0, tgid, comm, ino, false);
            e.pipe = pipe;
            e.kind = kind as u8;
            e.op = op as u8;
            e
        };
        use EventKind::{PipeReleased, RingOp};
        // 7 is the session's pipe, 8 is not; a child (`sleep`) frees both, then the address of
        // 7 names a new pipe (9) that a child frees as well.
        let stream = [
            on(42, "wq", 7, 0x700, RingOp, Op::Read),
            on(43, "sleep", 7, 0x700, PipeReleased, Op::Close),
            on(43, "sleep", 7, 0x700, PipeReleased, Op::None),
            on(43, "sleep", 8, 0x800, PipeReleased, Op::None),
            on(43, "sleep", 9, 0x700, PipeReleased, Op::None),
        ];
        let kept = [true, false, true, false, false];
        // Afterwards: the filter decides.
        let mut f = filter(
            FilterArgs {
                comm: Some("wq".into()),
                ..Default::default()
            },
            0,
        );
        let got: Vec<bool> = stream.iter().map(|e| f.admits(e, None)).collect();
        assert_eq!(got, kept);
        // Live: the kernel filtered and flagged the events outside the filter.
        let mut live: Vec<Event> = stream
            .iter()
            .filter(|e| e.comm.starts_with(b"wq") || e.op() != Op::Close)
            .map(|e| {
                let mut e = *e;
                if !e.comm.starts_with(b"wq") {
                    e.flags |= flags::OUTSIDE_FILTER;
                }
                e
            })
            .collect();
        let mut seen = PipesSeen::live();
        seen.keep_live(&mut live);
        let inos: Vec<u64> = live.iter().map(|e| e.ino).collect();
        assert_eq!(inos, [7, 7]);
        // Forgotten once freed, live: the same pipe cannot be freed twice.
        assert!(!seen.freed_outside(&stream[2]));
        // Without a task filter, nothing needs remembering and everything passes.
        let mut none = filter(FilterArgs::default(), 0);
        assert!(stream.iter().all(|e| none.admits(e, None)));
    }

    #[test]
    fn time_windows_from_the_start_or_the_wall_clock() {
        let evs: Vec<Event> = (0..10)
            .map(|i| ev(5_000 + i * 1_000, 1, "x", 1, false))
            .collect();
        let kept = |a: FilterArgs| {
            let f = filter(a, 5_000);
            evs.iter()
                .filter(|e| f.keeps(e))
                .map(|e| e.ts_ns)
                .collect::<Vec<_>>()
        };
        let a = FilterArgs {
            since: Some(When::FromStart(2_000)),
            until: Some(When::FromStart(4_000)),
            ..Default::default()
        };
        assert_eq!(kept(a), [7_000, 8_000, 9_000]);
        // Wall clock: event time + realtime offset (1000 s) = Unix time.
        let a = FilterArgs {
            since: Some(When::Unix(1_000_000_000_000 + 12_000)),
            ..Default::default()
        };
        assert_eq!(kept(a), [12_000, 13_000, 14_000]);
    }

    #[test]
    fn when_parses_seconds_and_utc_times() {
        assert_eq!(parse_when("1.5"), Ok(When::FromStart(1_500_000_000)));
        assert_eq!(
            parse_when("1970-01-02T00:00:01Z"),
            Ok(When::Unix(86_401_000_000_000))
        );
        assert_eq!(
            parse_when("2026-12-01T13:50:00.25+01:00"),
            Ok(When::Unix(1_796_129_400_250_000_000))
        );
        for bad in [
            "",
            "-1",
            "nan",
            "2026-13-01T00:00:00Z",
            "yesterday",
            "12:00",
        ] {
            assert!(parse_when(bad).is_err(), "{bad}");
        }
    }
}
