//! `wqtrace serve` against the host kernel (root; tp_btf ring ops): health, a scrape the official
//! parsers accept, bounded series and memory under pipe churn, the loopback-only default, and a
//! prompt clean exit on SIGTERM. Serve sessions share the kernel, so they run one at a time.

mod common;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use common::serve::{Server, parse, samples, sum};
use common::{WQTRACE, kernel_lock};

/// `n` pipes, each created, written (one byte), read and closed by this process.
fn churn(n: usize) {
    for _ in 0..n {
        let mut fds = [0i32; 2];
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let b = [7u8];
        let mut r = [0u8];
        unsafe {
            assert_eq!(libc::write(fds[1], b.as_ptr().cast(), 1), 1);
            assert_eq!(libc::read(fds[0], r.as_mut_ptr().cast(), 1), 1);
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}

/// Waits until serve has processed at least `want` pipe_created events.
fn wait_created(s: &Server, want: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let fams = parse(&s.metrics(), false);
        let n = sum(
            &fams,
            "wqtrace_events_processed_total",
            &[("kind", "pipe_created")],
        );
        if n >= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn healthz_and_a_scrape_that_parses() {
    let _g = kernel_lock();
    let s = Server::start(&[]);
    let (code, _, body) = s.get("/healthz", None);
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    assert_eq!(s.get("/nope", None).0, 404);
    churn(20);
    wait_created(&s, 20.0);

    // Prometheus text format 0.0.4 by default, OpenMetrics when asked: both parse.
    let (code, ct, text) = s.get("/metrics", None);
    assert_eq!(code, 200);
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let fams = parse(&text, false);
    let (code, ct, om) = s.get(
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    );
    assert_eq!(code, 200);
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(om.ends_with("# EOF\n"));
    let omf = parse(&om, true);

    // Families with no series yet (no notification pipes on this host) are left out.
    for (name, typ) in [
        ("wqtrace_notifications_posted", "counter"),
        ("wqtrace_notifications_lost", "counter"),
        ("wqtrace_splice_rejections", "counter"),
    ] {
        if let Some((t, _)) = fams.get(name) {
            assert_eq!(t, typ, "{name}");
        }
    }
    for (name, typ) in [
        ("wqtrace_build_info", "gauge"),
        ("wqtrace_pipe_wait_seconds", "histogram"),
        ("wqtrace_lock_contention_seconds", "histogram"),
        ("wqtrace_pipe_ring_occupancy_slots", "gauge"),
        ("wqtrace_events_processed", "counter"),
        ("wqtrace_events_lost", "counter"),
    ] {
        let (t, _) = fams
            .get(name)
            .unwrap_or_else(|| panic!("no family {name}: {:?}", fams.keys()));
        assert_eq!(t, typ, "{name}");
    }
    assert_eq!(omf["wqtrace_build"].0, "info");
    assert_eq!(omf["wqtrace_events_processed"].0, "counter");

    // The info metric: version, this kernel, one label per hook.
    let info = samples(&fams, "wqtrace_build_info");
    assert_eq!(info.len(), 1);
    let l = &info[0].labels;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(l["kernel_release"], release.trim());
    assert_eq!(l["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(l["ring_ops"], "tp_btf");
    assert!(l.contains_key("notification_post") && l.contains_key("pipe_release"));

    // Our churn is in the counters; the histograms are well-formed.
    assert!(
        sum(
            &fams,
            "wqtrace_events_processed_total",
            &[("kind", "ring_op")]
        ) >= 40.0
    );
    assert_eq!(sum(&fams, "wqtrace_events_lost_total", &[]), 0.0);
    for lock in ["mutex", "rd_wait"] {
        let inf = sum(
            &fams,
            "wqtrace_lock_contention_seconds_bucket",
            &[("lock", lock), ("le", "+Inf")],
        );
        let count = sum(
            &fams,
            "wqtrace_lock_contention_seconds_count",
            &[("lock", lock)],
        );
        assert_eq!(inf, count, "{lock}");
    }
    let (st, took) = s.terminate();
    assert!(st.success(), "{st}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// 19,000 short-lived pipes: the gauge stays under its cap, released pipes leave it, and the
/// serve process's RSS after 19,000 pipes is what it was after 10,000 (within a tolerance).
#[test]
fn pipe_churn_stays_bounded() {
    let _g = kernel_lock();
    // --all-pipes: the host has no notification pipes, so let ordinary pipes feed the gauge.
    let pid = std::process::id().to_string();
    let s = Server::start(&["--all-pipes", "--pid", &pid]);
    // `n` more pipes, until serve has seen `total` in all: a scrape, its time, serve's RSS.
    let churn_to = |n: usize, total: f64| {
        churn(n);
        let seen = wait_created(&s, total);
        assert!(seen >= total, "{seen}");
        let t = Instant::now();
        let m = s.metrics();
        (m, t.elapsed(), s.rss_kib())
    };
    let (m1, scrape1, _) = churn_to(1_000, 1_000.0);
    // The first burst of 9,000 sets the allocator's high-water mark for a burst that size
    // (batches of events in flight); a second one shows whether memory grows with the
    // number of pipes seen.
    let (_, _, rss1) = churn_to(9_000, 10_000.0);
    let (m2, scrape2, rss2) = churn_to(9_000, 19_000.0);

    let fams = parse(&m2, false);
    let gauge = samples(&fams, "wqtrace_pipe_ring_occupancy_slots");
    let series = fams.values().map(|(_, s)| s.len()).sum::<usize>();
    eprintln!(
        "serve churn: {series} series ({} occupancy), RSS {rss1} KiB after 10k pipes, {rss2} KiB after 19k; scrape {scrape1:?} / {scrape2:?}, {} / {} bytes",
        gauge.len(),
        m1.len(),
        m2.len()
    );
    // Every pipe was closed: `other` and a few of the harness's own pipes remain.
    assert!(gauge.len() <= 5, "{} occupancy series", gauge.len());
    assert!(
        sum(&fams, "wqtrace_tracked_pipes", &[]) <= 64.0,
        "closed pipes still tracked"
    );
    assert!(series < 400, "{series} series in total");
    // Memory does not grow with the number of pipes seen.
    let growth = rss2.saturating_sub(rss1);
    assert!(
        growth <= 4 * 1024 && growth * 10 <= rss1,
        "RSS grew from {rss1} KiB to {rss2} KiB"
    );
    assert!(scrape2 < Duration::from_secs(1), "{scrape2:?}");

    // 200 pipes alive at once, one byte in each: 64 get a series, the rest sum under `other`.
    let held: Vec<[i32; 2]> = (0..200)
        .map(|_| {
            let mut fds = [0i32; 2];
            assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
            assert_eq!(unsafe { libc::write(fds[1], [1u8].as_ptr().cast(), 1) }, 1);
            fds
        })
        .collect();
    wait_created(&s, 10_200.0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let fams = loop {
        let f = parse(&s.metrics(), false);
        if sum(&f, "wqtrace_pipe_ring_occupancy_slots", &[]) >= 200.0 || Instant::now() > deadline {
            break f;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let gauge = samples(&fams, "wqtrace_pipe_ring_occupancy_slots");
    assert_eq!(gauge.len(), 65, "64 pipes + other");
    // (The test's own pipes to python and to serve's stderr may add a few slots.)
    let total = sum(&fams, "wqtrace_pipe_ring_occupancy_slots", &[]);
    assert!((200.0..210.0).contains(&total), "{total}");
    assert!(
        sum(
            &fams,
            "wqtrace_pipe_ring_occupancy_slots",
            &[("pipe", "other")]
        ) >= 136.0
    );
    for fds in held {
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
    // Pipes with a series of their own are released first (they were created first), so the
    // series count drops while `other` still sums pipes whose close serve has not yet read:
    // wait for both.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let f = parse(&s.metrics(), false);
        let n = samples(&f, "wqtrace_pipe_ring_occupancy_slots").len();
        let total = sum(&f, "wqtrace_pipe_ring_occupancy_slots", &[]);
        if n <= 5 && total < 10.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} series summing {total} slots 30 s after closing every pipe"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (st, _) = s.terminate();
    assert!(st.success());
}

/// Only loopback unless asked: one clear line, a failure exit, and nothing loaded.
#[test]
fn non_loopback_needs_allow_remote() {
    let out = Command::new(WQTRACE)
        .args(["serve", "--listen", "0.0.0.0:9435"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("wqtrace: ") && err.contains("--allow-remote"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

/// SIGTERM: exit 0 promptly, the probes detached (the process is gone) and the port closed.
#[test]
fn sigterm_exits_cleanly() {
    let _g = kernel_lock();
    let s = Server::start(&[]);
    let addr = s.addr.clone();
    assert_eq!(s.get("/healthz", None).0, 200);
    let (st, took) = s.terminate();
    assert_eq!(st.code(), Some(0), "{st}");
    assert!(took < Duration::from_secs(3), "exit took {took:?}");
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "{addr} still accepts connections"
    );
}

/// `serve --user nobody`: the socket is bound as root, then the process runs as nobody with no
/// capabilities and keeps counting and serving; SIGTERM still detaches and exits 0.
#[test]
fn serve_drops_root_after_binding_and_attaching() {
    let _g = kernel_lock();
    let s = Server::start(&["--user", "nobody"]);
    common::assert_dropped_to(s.pid(), 65534);
    let before = wait_created(&s, 0.0);
    churn(20);
    let after = wait_created(&s, before + 20.0);
    assert!(
        after >= before + 20.0,
        "pipes counted after the drop: {before} → {after}"
    );
    let (st, _) = s.terminate();
    assert_eq!(st.code(), Some(0), "{st}");
}
