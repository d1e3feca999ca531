//! Metric updates from hand-built events, checked on the encoded exposition.

use wqtrace_common::{Event, EventKind, Op, flags};

use super::metrics::{BuildInfo, Limits, Metrics, Options};
use prometheus_client::registry::Registry;

fn ev(kind: EventKind, ino: u64, comm: &str) -> Event {
    let mut e = Event::zeroed();
    e.kind = kind as u8;
    e.ino = ino;
    e.pipe = 0xffff_0000_0000 + ino * 0x100;
    e.tid = 100;
    e.tgid = 100;
    e.comm[..comm.len()].copy_from_slice(comm.as_bytes());
    e
}

fn notif(kind: EventKind, ino: u64, comm: &str) -> Event {
    let mut e = ev(kind, ino, comm);
    e.flags |= flags::NOTIFICATION_PIPE;
    e
}

fn created(ino: u64, comm: &str) -> Event {
    let mut e = notif(EventKind::PipeCreated, ino, comm);
    e.op = Op::Pipe2 as u8;
    e.ring_size = 16;
    e
}

fn post(ino: u64, ntype: u32, lost: bool, head: u32, tail: u32) -> Event {
    // Posts run in the poster's context (keyctl caller, key gc): not the owner.
    let mut e = notif(EventKind::NotifyPosted, ino, "poster");
    e.op = Op::Post as u8;
    e.ntype = ntype;
    e.ring_size = 16;
    e.head = head;
    e.tail = tail;
    if lost {
        e.flags |= flags::LOSS | flags::RING_FULL;
    }
    e
}

fn read(ino: u64, comm: &str, head: u32, tail: u32) -> Event {
    let mut e = notif(EventKind::RingOp, ino, comm);
    e.op = Op::Read as u8;
    e.ring_size = 16;
    e.head = head;
    e.tail = tail;
    e.ret = 16;
    e
}

fn released(ino: u64) -> Event {
    notif(EventKind::PipeReleased, ino, "")
}

fn new_metrics(opts: Options) -> (Metrics, Registry) {
    Metrics::new(
        opts,
        &BuildInfo {
            version: "9.9.9".into(),
            kernel_release: "6.12.0-test".into(),
            attach: vec![
                ("ring_ops".into(), "tp_btf".into()),
                (
                    "notification_post".into(),
                    "fentry post_one_notification".into(),
                ),
            ],
        },
    )
}

fn text(reg: &Registry) -> String {
    let mut s = String::new();
    prometheus_client::encoding::text::encode(&mut s, reg).unwrap();
    s
}

/// The value of the sample line `name{labels}` (labels exactly as encoded), if present.
fn sample(t: &str, series: &str) -> Option<f64> {
    t.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Ring ops counted under cgroup label `cg`.
fn cgroup_ring_ops(t: &str, cg: &str) -> Option<f64> {
    sample(
        t,
        &format!("wqtrace_cgroup_events_total{{cgroup=\"{cg}\",kind=\"ring_op\"}}"),
    )
}

fn series_of(t: &str, name: &str) -> Vec<String> {
    t.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .map(str::to_string)
        .collect()
}

#[test]
fn posted_and_lost_by_type_and_owner() {
    let (mut m, reg) = new_metrics(Options::default());
    m.apply(&created(10, "watcher"));
    for i in 0..3 {
        m.apply(&post(10, 1, false, i + 1, 0));
    }
    m.apply(&post(10, 0, false, 4, 0));
    m.apply(&post(10, 1, true, 4, 0));
    m.apply(&post(10, 1, true, 4, 0));
    let mut filtered = post(10, 1, false, 4, 0);
    filtered.flags |= flags::FILTERED;
    m.apply(&filtered);
    // A post to a pipe created before serve started: owner unknown.
    m.apply(&post(11, 1, false, 1, 0));
    let t = text(&reg);
    let v = |s: &str| sample(&t, s).unwrap_or_else(|| panic!("no {s} in\n{t}"));
    assert_eq!(
        v("wqtrace_notifications_posted_total{type=\"key_notify\",comm=\"watcher\"}"),
        3.0
    );
    assert_eq!(
        v("wqtrace_notifications_posted_total{type=\"meta\",comm=\"watcher\"}"),
        1.0
    );
    assert_eq!(
        v("wqtrace_notifications_lost_total{type=\"key_notify\",comm=\"watcher\"}"),
        2.0
    );
    assert_eq!(
        v("wqtrace_notifications_posted_total{type=\"key_notify\",comm=\"unknown\"}"),
        1.0
    );
    // The poster never becomes the owner.
    assert!(!t.contains("comm=\"poster\""), "{t}");
    assert_eq!(
        v("wqtrace_events_processed_total{kind=\"notify_posted\"}"),
        8.0
    );
    assert_eq!(
        v("wqtrace_events_processed_total{kind=\"pipe_created\"}"),
        1.0
    );
}

#[test]
fn the_reader_owns_the_pipe() {
    let (mut m, reg) = new_metrics(Options::default());
    m.apply(&created(10, "parent"));
    m.apply(&post(10, 1, false, 1, 0));
    m.apply(&read(10, "child", 1, 1));
    m.apply(&post(10, 1, false, 2, 1));
    // Another process writing (e.g. a helper) does not take over.
    let mut w = notif(EventKind::RingOp, 10, "helper");
    w.op = Op::Ioctl as u8;
    m.apply(&w);
    m.apply(&post(10, 1, false, 3, 1));
    let t = text(&reg);
    assert_eq!(
        sample(
            &t,
            "wqtrace_notifications_posted_total{type=\"key_notify\",comm=\"parent\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &t,
            "wqtrace_notifications_posted_total{type=\"key_notify\",comm=\"child\"}"
        ),
        Some(2.0)
    );
    // The gauge follows the owner: one series, under the reader's name.
    let g = series_of(&t, "wqtrace_pipe_ring_occupancy_slots");
    assert!(
        g.contains(&"wqtrace_pipe_ring_occupancy_slots{pipe=\"10\",comm=\"child\"} 2".to_string()),
        "{g:?}"
    );
    assert_eq!(g.len(), 2, "{g:?}"); // + other

    // Readers taking turns: each read names the owner again (the same reader reading on
    // keeps it without a new label).
    for (reader, n) in [("chef", 1), ("child", 1), ("child", 1), ("chef", 2)] {
        m.apply(&read(10, reader, 3, 3));
        for _ in 0..n {
            m.apply(&post(10, 1, false, 4, 3));
        }
    }
    let t = text(&reg);
    let posted = |comm: &str| {
        sample(
            &t,
            &format!("wqtrace_notifications_posted_total{{type=\"key_notify\",comm=\"{comm}\"}}"),
        )
    };
    assert_eq!(
        (posted("parent"), posted("child"), posted("chef")),
        (Some(1.0), Some(4.0), Some(3.0))
    );
    let g = series_of(&t, "wqtrace_pipe_ring_occupancy_slots");
    assert!(
        g.contains(&"wqtrace_pipe_ring_occupancy_slots{pipe=\"10\",comm=\"chef\"} 1".to_string()),
        "{g:?}"
    );
    assert_eq!(g.len(), 2, "{g:?}");
}

#[test]
fn rejections_by_syscall_and_comm() {
    let (mut m, reg) = new_metrics(Options::default());
    for (op, n) in [(Op::Splice, 3), (Op::Tee, 2), (Op::Vmsplice, 1)] {
        for _ in 0..n {
            let mut e = notif(EventKind::SpliceRejected, 10, "splicer");
            e.op = op as u8;
            e.ret = -(libc::EINVAL as i64);
            m.apply(&e);
        }
    }
    let t = text(&reg);
    for (s, n) in [("splice", 3.0), ("tee", 2.0), ("vmsplice", 1.0)] {
        let series = format!("wqtrace_splice_rejections_total{{syscall=\"{s}\",comm=\"splicer\"}}");
        assert_eq!(sample(&t, &series), Some(n), "{series}\n{t}");
    }
}

#[test]
fn wait_and_contention_histograms() {
    let (mut m, reg) = new_metrics(Options::default());
    for ns in [500, 3_000, 2_000_000] {
        let mut e = ev(EventKind::PipeWait, 5, "w");
        e.op = Op::WaitReadable as u8;
        e.duration_ns = ns;
        m.apply(&e);
    }
    let mut mx = ev(EventKind::LockContended, 5, "c");
    mx.flags = flags::LOCK_MUTEX;
    mx.duration_ns = 10_000;
    m.apply(&mx);
    let mut rd = ev(EventKind::LockContended, 5, "c");
    rd.duration_ns = 200;
    m.apply(&rd);
    m.apply(&rd);
    let t = text(&reg);
    let v = |s: &str| sample(&t, s).unwrap_or_else(|| panic!("no {s} in\n{t}"));
    assert_eq!(v("wqtrace_pipe_wait_seconds_count"), 3.0);
    assert!((v("wqtrace_pipe_wait_seconds_sum") - 0.0020035).abs() < 1e-9);
    assert_eq!(v("wqtrace_pipe_wait_seconds_bucket{le=\"0.000001\"}"), 1.0);
    assert_eq!(v("wqtrace_pipe_wait_seconds_bucket{le=\"0.000004\"}"), 2.0);
    assert_eq!(v("wqtrace_pipe_wait_seconds_bucket{le=\"+Inf\"}"), 3.0);
    assert_eq!(
        v("wqtrace_lock_contention_seconds_count{lock=\"mutex\"}"),
        1.0
    );
    assert_eq!(
        v("wqtrace_lock_contention_seconds_count{lock=\"rd_wait\"}"),
        2.0
    );
    // Ordinary pipes are not in the gauge by default.
    assert_eq!(m.tracked(), (0, 0));
}

#[test]
fn info_and_lost_events() {
    let (mut m, reg) = new_metrics(Options::default());
    m.set_lost(5);
    m.set_lost(5);
    m.set_lost(7);
    let t = text(&reg);
    assert_eq!(sample(&t, "wqtrace_events_lost_total"), Some(7.0));
    assert_eq!(sample(&t, "wqtrace_sleeps_unattributed_total"), Some(0.0));
    m.set_unattributed(2);
    m.set_unattributed(1);
    assert_eq!(
        sample(&text(&reg), "wqtrace_sleeps_unattributed_total"),
        Some(2.0)
    );
    let info = t
        .lines()
        .find(|l| l.starts_with("wqtrace_build_info{"))
        .unwrap();
    for want in [
        "version=\"9.9.9\"",
        "kernel_release=\"6.12.0-test\"",
        "ring_ops=\"tp_btf\"",
        "notification_post=\"fentry\"",
    ] {
        assert!(info.contains(want), "{info}");
    }
    assert!(t.contains("# TYPE wqtrace_build info"), "{t}");
    assert!(t.ends_with("# EOF\n"));
}

/// The programs' count of pipes they know, against their room: 0 and 0 until a source with
/// programs says.
#[test]
fn known_pipes_gauges() {
    use crate::session::KnownPipes;
    let (mut m, reg) = new_metrics(Options::default());
    let t = text(&reg);
    assert_eq!(sample(&t, "wqtrace_known_pipes_peak"), Some(0.0), "{t}");
    assert_eq!(sample(&t, "wqtrace_known_pipes_room"), Some(0.0));
    m.set_known_pipes(Some(KnownPipes {
        peak: 16390,
        room: 16384,
    }));
    let t = text(&reg);
    assert_eq!(sample(&t, "wqtrace_known_pipes_peak"), Some(16390.0));
    assert_eq!(sample(&t, "wqtrace_known_pipes_room"), Some(16384.0));
    assert!(t.contains("# TYPE wqtrace_known_pipes_peak gauge"), "{t}");
}

#[test]
fn occupancy_gauge_cap_other_and_release() {
    let opts = Options {
        limits: Limits {
            comms: 4,
            pipe_series: 3,
            tracked_pipes: 64,
            ..Limits::default()
        },
        ..Options::default()
    };
    let (mut m, reg) = new_metrics(opts);
    // Six pipes, six owners: three get series, three are summed under other.
    for i in 0..6u64 {
        m.apply(&created(100 + i, &format!("own{i}")));
        m.apply(&post(100 + i, 1, false, (i + 1) as u32, 0));
    }
    let t = text(&reg);
    let g = series_of(&t, "wqtrace_pipe_ring_occupancy_slots");
    assert_eq!(g.len(), 4, "{g:?}");
    assert!(g.contains(&"wqtrace_pipe_ring_occupancy_slots{pipe=\"100\",comm=\"own0\"} 1".into()));
    assert!(g.contains(&"wqtrace_pipe_ring_occupancy_slots{pipe=\"102\",comm=\"own2\"} 3".into()));
    // 4 + 5 + 6 slots under other; comms past the cap (own4, own5) are `other` too.
    assert!(
        g.contains(&"wqtrace_pipe_ring_occupancy_slots{pipe=\"other\",comm=\"other\"} 15".into()),
        "{g:?}"
    );
    assert!(t.contains("comm=\"own3\""));
    assert!(!t.contains("own4") && !t.contains("own5"), "{t}");
    assert!(
        t.contains("wqtrace_notifications_posted_total{type=\"key_notify\",comm=\"other\"} 2"),
        "{t}"
    );
    assert_eq!(m.tracked(), (6, 3));

    // A labelled pipe released: its series goes; the next active `other` pipe takes the slot.
    m.apply(&released(101));
    let t = text(&reg);
    assert!(!t.contains("pipe=\"101\""), "{t}");
    assert_eq!(m.tracked(), (5, 2));
    m.apply(&read(104, "own4", 5, 2));
    let t = text(&reg);
    let g = series_of(&t, "wqtrace_pipe_ring_occupancy_slots");
    // 104 moved out of other with its new occupancy (3); other keeps 103 (4) + 105 (6).
    assert!(
        g.contains(&"wqtrace_pipe_ring_occupancy_slots{pipe=\"104\",comm=\"other\"} 3".into()),
        "{g:?}"
    );
    assert!(
        g.contains(&"wqtrace_pipe_ring_occupancy_slots{pipe=\"other\",comm=\"other\"} 10".into()),
        "{g:?}"
    );
    // Released `other` pipes leave the sum; everything released leaves only `other` at 0.
    for i in 0..6 {
        m.apply(&released(100 + i));
    }
    let t = text(&reg);
    assert_eq!(
        series_of(&t, "wqtrace_pipe_ring_occupancy_slots"),
        vec!["wqtrace_pipe_ring_occupancy_slots{pipe=\"other\",comm=\"other\"} 0".to_string()]
    );
    assert_eq!(m.tracked(), (0, 0));
    assert_eq!(sample(&t, "wqtrace_tracked_pipes"), Some(0.0));
}

/// Thousands of pipes come and go (released, or just abandoned): series and state stay capped.
#[test]
fn churn_stays_bounded() {
    let opts = Options {
        all_pipes: true,
        ..Options::default()
    };
    let lim = opts.limits.clone();
    let (mut m, reg) = new_metrics(opts);
    for i in 0..20_000u64 {
        let comm = format!("c{}", i % 500);
        let mut c = ev(EventKind::PipeCreated, 1000 + i, &comm);
        c.ring_size = 16;
        m.apply(&c);
        let mut w = ev(EventKind::RingOp, 1000 + i, &comm);
        w.op = Op::Write as u8;
        w.ring_size = 16;
        w.head = 1;
        m.apply(&w);
        let mut r = ev(EventKind::RingOp, 1000 + i, &comm);
        r.op = Op::Read as u8;
        r.ring_size = 16;
        r.head = 1;
        r.tail = 1;
        m.apply(&r);
        // Every other pipe is released; the rest are abandoned (their release never seen).
        if i % 2 == 0 {
            m.apply(&ev(EventKind::PipeReleased, 1000 + i, &comm));
        }
        let (tracked, labelled) = m.tracked();
        assert!(tracked <= lim.tracked_pipes && labelled <= lim.pipe_series);
    }
    let t = text(&reg);
    let g = series_of(&t, "wqtrace_pipe_ring_occupancy_slots");
    assert!(g.len() <= lim.pipe_series + 1, "{}", g.len());
    let comms: std::collections::HashSet<&str> = t
        .lines()
        .filter_map(|l| l.split("comm=\"").nth(1)?.split('"').next())
        .collect();
    assert!(comms.len() <= lim.comms + 2, "{}", comms.len());
}

/// With the tracepoint fallback for free_pipe_info, two closes retire a pipe.
#[test]
fn release_on_close_fallback() {
    let (mut m, _reg) = new_metrics(Options {
        release_on_close: true,
        ..Options::default()
    });
    m.apply(&created(7, "x"));
    let mut c = notif(EventKind::PipeReleased, 7, "x");
    c.op = Op::Close as u8;
    m.apply(&c);
    assert_eq!(m.tracked(), (1, 1));
    m.apply(&c);
    assert_eq!(m.tracked(), (0, 0));
    // Without the fallback a close is only activity.
    let (mut m, _reg) = new_metrics(Options::default());
    m.apply(&created(7, "x"));
    m.apply(&c);
    m.apply(&c);
    assert_eq!(m.tracked(), (1, 1));
}

#[test]
fn odd_comms_are_sanitized() {
    let (mut m, reg) = new_metrics(Options::default());
    let mut e = notif(EventKind::SpliceRejected, 1, "a\"b\\c\nd");
    e.op = Op::Tee as u8;
    m.apply(&e);
    let t = text(&reg);
    assert!(
        t.contains("wqtrace_splice_rejections_total{syscall=\"tee\",comm=\"a_b_c_d\"} 1"),
        "{t}"
    );
}

#[test]
fn listen_address_policy() {
    use super::check_listen;
    assert!(check_listen("127.0.0.1:9435".parse().unwrap(), false).is_ok());
    assert!(check_listen("[::1]:9435".parse().unwrap(), false).is_ok());
    let e = check_listen("0.0.0.0:9435".parse().unwrap(), false).unwrap_err();
    assert!(e.to_string().contains("--allow-remote"), "{e}");
    assert!(!e.to_string().contains('\n'));
    assert!(check_listen("0.0.0.0:9435".parse().unwrap(), true).is_ok());
}

/// /healthz: ok while the loop turns and events reach it (or none wait); otherwise why not.
#[test]
fn health_says_why_not() {
    use super::http::{STALL_AFTER, Shared, Unhealthy};
    let (_, reg) = new_metrics(Options::default());
    let s = Shared::new(reg);
    s.progress(10, 10);
    assert_eq!(s.health(), Ok(()));
    // Submitted but not received, only just now: still ok (a batch is on its way).
    s.progress(50, 10);
    assert_eq!(s.health(), Ok(()));
    s.detaching();
    assert_eq!(s.health(), Err(Unhealthy::Detaching));
    assert_eq!(
        Unhealthy::NotFlowing {
            backlog: 40,
            for_: STALL_AFTER
        }
        .to_string(),
        "events not flowing: 40 submitted by the probes but not received for 5.0s"
    );
}

#[test]
fn sweep_forgets_pipes_their_last_user_no_longer_holds() {
    let (mut m, reg) = new_metrics(Options {
        release_on_close: true,
        ..Options::default()
    });
    for (ino, tgid, ts) in [(1u64, 10u32, 100u64), (2, 20, 100), (3, 30, 900)] {
        let mut c = created(ino, "p");
        c.tgid = tgid;
        c.ts_ns = ts;
        m.apply(&c);
    }
    // 1 is still held, 2 is not, 3 is too recent to check.
    let mut asked = vec![];
    let n = m.sweep(500, |tgid, ino| {
        asked.push((tgid, ino));
        ino == 1
    });
    asked.sort();
    assert_eq!(asked, vec![(10, 1), (20, 2)]);
    assert_eq!(n, 1);
    assert_eq!(m.tracked(), (2, 2));
    assert!(!text(&reg).contains("pipe=\"2\""));
}

/// Events count under their task's cgroup path: past the cap under `other`, an id the source
/// could not name under `unknown`; the label set stays bounded.
#[test]
fn cgroup_label_is_the_path_and_bounded() {
    let names = crate::cgroup::SharedCgroups::default();
    {
        let mut t = names.write().unwrap();
        t.insert(11, "/system.slice/a.service".into());
        t.insert(12, "/system.slice/b.service".into());
        t.insert(13, "/user.slice".into());
    }
    let (mut m, reg) = new_metrics(Options {
        limits: Limits {
            cgroups: 2,
            ..Limits::default()
        },
        cgroups: Some(names),
        ..Options::default()
    });
    for id in [11, 11, 12, 13, 99, 0] {
        let mut e = read(5, "r", 1, 0);
        e.cgroup = id;
        m.apply(&e);
    }
    let t = text(&reg);
    let n = |cg: &str| cgroup_ring_ops(&t, cg);
    assert_eq!(n("/system.slice/a.service"), Some(2.0), "{t}");
    assert_eq!(n("/system.slice/b.service"), Some(1.0));
    assert_eq!(n("other"), Some(1.0), "the third cgroup is past the cap");
    assert_eq!(n("unknown"), Some(1.0), "an id without a path");
    assert_eq!(series_of(&t, "wqtrace_cgroup_events_total").len(), 4);
}

/// An id the source names only later counts under `unknown` until then, and under its path
/// from the next event on.
#[test]
fn cgroup_named_later_leaves_unknown() {
    let names = crate::cgroup::SharedCgroups::default();
    let (mut m, reg) = new_metrics(Options {
        cgroups: Some(names.clone()),
        ..Options::default()
    });
    let mut e = read(5, "r", 1, 0);
    e.cgroup = 42;
    m.apply(&e);
    m.apply(&e);
    names.write().unwrap().insert(42, "/late.slice".into());
    m.apply(&e);
    let t = text(&reg);
    let n = |cg: &str| cgroup_ring_ops(&t, cg);
    assert_eq!(n("unknown"), Some(2.0), "{t}");
    assert_eq!(n("/late.slice"), Some(1.0), "{t}");
}

/// Events counted in the kernel land in the counters and histograms a streamed event feeds, by
/// what the running totals grew: the same figures as streaming them, whichever way they arrive.
#[test]
fn counted_events_add_what_the_totals_grew_by() {
    use crate::probe::loader::CountedTotals;
    use wqtrace_common::counts::{WaitRow, bucket, hist};
    let names = crate::cgroup::SharedCgroups::default();
    names
        .write()
        .unwrap()
        .insert(11, "/system.slice/a.service".into());
    let (mut m, reg) = new_metrics(Options {
        cgroups: Some(names),
        ..Options::default()
    });
    let mut streamed = ev(EventKind::RingOp, 5, "w");
    streamed.op = Op::Write as u8;
    streamed.cgroup = 11;
    m.apply(&streamed);
    let mut waited = ev(EventKind::PipeWait, 5, "w");
    waited.duration_ns = 3_000;
    m.apply(&waited);
    let ring = EventKind::RingOp as u32;
    let wait = EventKind::PipeWait as u32;
    let lock = EventKind::LockContended as u32;
    let mut k = CountedTotals {
        events: vec![(11, ring, 3), (0, ring, 2)],
        ..CountedTotals::default()
    };
    m.add_counted(&k);
    // Totals that did not move add nothing; growth adds its difference.
    m.add_counted(&k);
    k.events = vec![
        (11, ring, 10),
        (0, ring, 2),
        (12, ring, 1),
        (11, wait, 2),
        (11, lock, 1),
    ];
    let row = |waits: &[u64]| {
        let mut r = WaitRow::default();
        for &ns in waits {
            r.counts[bucket(ns)] += 1;
            r.sum_ns += ns;
        }
        r
    };
    k.waits[hist::PIPE_WAIT as usize] = row(&[2_000, 5_000_000]);
    k.waits[hist::LOCK_MUTEX as usize] = row(&[500]);
    m.add_counted(&k);
    m.add_counted(&k);
    assert_eq!(
        m.counted_by_kind(),
        [
            (EventKind::RingOp, 13),
            (EventKind::PipeWait, 2),
            (EventKind::LockContended, 1)
        ]
    );
    let t = text(&reg);
    assert_eq!(
        sample(&t, "wqtrace_events_processed_total{kind=\"ring_op\"}"),
        Some(14.0),
        "{t}"
    );
    let cg = |c: &str, kind: &str| {
        sample(
            &t,
            &format!("wqtrace_cgroup_events_total{{cgroup=\"{c}\",kind=\"{kind}\"}}"),
        )
    };
    assert_eq!(cg("/system.slice/a.service", "ring_op"), Some(11.0), "{t}");
    assert_eq!(cg("unknown", "ring_op"), Some(1.0), "cgroup 12 has no path");
    assert_eq!(cg("/system.slice/a.service", "pipe_wait"), Some(2.0), "{t}");
    assert_eq!(cg("/system.slice/a.service", "lock_contended"), Some(1.0));
    // Cgroup 0 (no cgroup v2) counts in the total only, like a streamed event.
    assert_eq!(series_of(&t, "wqtrace_cgroup_events_total").len(), 4, "{t}");
    // The streamed wait (3 µs) and the two counted ones (2 µs, 5 ms), in one histogram.
    let h = |s: &str| sample(&t, s);
    assert_eq!(h("wqtrace_pipe_wait_seconds_count"), Some(3.0), "{t}");
    assert_eq!(
        h("wqtrace_pipe_wait_seconds_bucket{le=\"0.000001\"}"),
        Some(0.0)
    );
    assert_eq!(
        h("wqtrace_pipe_wait_seconds_bucket{le=\"0.000004\"}"),
        Some(2.0)
    );
    assert_eq!(
        h("wqtrace_pipe_wait_seconds_bucket{le=\"0.004096\"}"),
        Some(2.0)
    );
    assert_eq!(
        h("wqtrace_pipe_wait_seconds_bucket{le=\"0.016384\"}"),
        Some(3.0)
    );
    assert_eq!(h("wqtrace_pipe_wait_seconds_sum"), Some(0.005005));
    let mutex = "wqtrace_lock_contention_seconds_bucket{le=\"0.000001\",lock=\"mutex\"}";
    assert_eq!(h(mutex), Some(1.0), "{t}");
    assert_eq!(
        h("wqtrace_lock_contention_seconds_count{lock=\"rd_wait\"}"),
        Some(0.0)
    );
}

/// A landed post into a 256-slot, 256-note queue: the ring after it and the notes in use.
fn landed(ino: u64, ts: u64, head: u32, tail: u32, notes_in_use: u32) -> Event {
    let mut e = notif(EventKind::NotifyPosted, ino, "poster");
    e.op = Op::Post as u8;
    e.ts_ns = ts;
    e.ring_size = 256;
    (e.head_before, e.head, e.tail_before, e.tail) = (head - 1, head, tail, tail);
    e.nr_notes = 256;
    e.notes_in_use = notes_in_use;
    e
}

#[test]
fn leaked_notes_are_summed_while_their_pipes_live() {
    let (mut m, reg) = new_metrics(Options::default());
    let leaked = |reg: &Registry| sample(&text(reg), "wqtrace_notification_notes_leaked");
    m.apply(&created(10, "watcher"));
    m.apply(&created(11, "watcher"));
    assert_eq!(leaked(&reg), Some(0.0));
    // Pipe 10: one note in use beyond the ring at two landings in a row, then two.
    for (ts, head, tail, used) in [
        (1, 1, 0, 1),
        (2, 2, 1, 2),
        (3, 3, 1, 3),
        (4, 4, 2, 4),
        (5, 5, 2, 5),
    ] {
        m.apply(&landed(10, ts, head, tail, used));
    }
    assert_eq!(leaked(&reg), Some(2.0));
    // Pipe 11: one odd bitmap read is not a leak; a lasting one is.
    m.apply(&landed(11, 5, 1, 0, 65));
    m.apply(&landed(11, 6, 2, 1, 1));
    assert_eq!(leaked(&reg), Some(2.0));
    m.apply(&landed(11, 7, 3, 2, 2));
    m.apply(&landed(11, 8, 4, 3, 2));
    assert_eq!(leaked(&reg), Some(3.0));
    // A freed pipe takes its notes with it.
    m.apply(&released(10));
    assert_eq!(leaked(&reg), Some(1.0));
}

/// Tallied per batch and published at its end, the metrics read exactly what they read when
/// published after every event: over a long stream with more pipes than series and than
/// tracked pipes (eviction, the `other` series), releases, and several cgroups.
#[test]
fn batches_publish_what_single_events_do() {
    let mut events = crate::recording::fixtures::notification_session();
    events.extend(crate::recording::fixtures::leaked_note_session());
    events.extend(crate::recording::fixtures::busy_stream(20_000, 80, 7));
    for (i, e) in events.iter_mut().enumerate() {
        e.cgroup = 1 + (i % 3) as u64;
    }
    let opts = || Options {
        limits: Limits {
            pipe_series: 8,
            tracked_pipes: 40,
            ..Limits::default()
        },
        ..Options::default()
    };
    let sorted = |reg: &Registry| {
        let mut l: Vec<String> = text(reg).lines().map(str::to_string).collect();
        l.sort();
        l
    };
    let (mut one, one_reg) = new_metrics(opts());
    for e in &events {
        one.apply(e);
    }
    let (mut batched, batched_reg) = new_metrics(opts());
    for b in events.chunks(1000) {
        batched.apply_batch(b);
    }
    let (a, b) = (sorted(&one_reg), sorted(&batched_reg));
    assert!(
        a.iter()
            .any(|l| l.starts_with("wqtrace_notifications_posted_total{")),
        "the stream posts: {a:?}"
    );
    assert!(
        a.iter()
            .any(|l| l.starts_with("wqtrace_pipe_ring_occupancy_slots{pipe=\"other\""))
    );
    assert_eq!(a, b);
}
