//! `wqtrace serve` on a watch_queue kernel, inside the test VM: scrape `/metrics` while
//! `wqtrace workload mixed` runs, and hold the counters against the workload's own account.
//!
//! Declared `test = false`: build with `cargo test -p wqtrace --test vm_serve --no-run` and run
//! the executable in the guest with `WQTRACE_IN_VM=1 … --test-threads=1` (`cargo xtask test`).

mod common;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::WQTRACE;
use common::serve::{Server, parse, samples, sum, sum_or_zero};
use serde_json::Value;

fn in_vm() {
    assert!(
        std::env::var_os("WQTRACE_IN_VM").is_some(),
        "this test needs a watch_queue kernel: run it with `cargo xtask test` (VM stage)"
    );
}

/// The guest's init leaves `lo` down: bring it up (SIOCSIFFLAGS |= IFF_UP), as `ip link set lo
/// up` would, so serve can bind 127.0.0.1.
fn loopback_up() {
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *d = *s as libc::c_char;
        }
        assert_eq!(libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr), 0);
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        let r = libc::ioctl(fd, libc::SIOCSIFFLAGS, &mut ifr);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        assert_eq!(r, 0, "SIOCSIFFLAGS lo up: {err}");
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not an unsigned number: {v}"))
}

/// Scrapes until the event counters stop moving (serve has caught up with the workload).
fn settled(s: &Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut prev = f64::NAN;
    loop {
        std::thread::sleep(Duration::from_millis(700));
        let text = s.metrics();
        let n = sum_or_zero(&parse(&text, false), "wqtrace_events_processed_total", &[]);
        if n == prev || Instant::now() > deadline {
            return text;
        }
        prev = n;
    }
}

#[test]
fn metrics_agree_with_workload_mixed() {
    in_vm();
    loopback_up();
    let s = Server::start(&["--cost"]);
    assert_eq!(s.get("/healthz", None).0, 200);
    let w = Command::new(WQTRACE)
        .args(["workload", "mixed", "--duration", "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // During the workload: the exposition parses with both official parsers.
    std::thread::sleep(Duration::from_secs(2));
    let during = s.metrics();
    parse(&during, false);
    let (_, ct, om) = s.get("/metrics", Some("application/openmetrics-text"));
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    parse(&om, true);

    let out = w.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "workload failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let w: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(w["notifications"], "available", "{w}");

    let text = settled(&s);
    let fams = parse(&text, false);
    parse(
        &s.get("/metrics", Some("application/openmetrics-text")).2,
        true,
    );
    eprintln!(
        "{}",
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.contains("_bucket"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        sum(&fams, "wqtrace_events_lost_total", &[]),
        0.0,
        "serve lost events: comparisons would be meaningless"
    );

    // The info metric names this kernel and the kernel-function hooks in use.
    let info = samples(&fams, "wqtrace_build_info");
    assert_eq!(info.len(), 1);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(info[0].labels["kernel_release"], release.trim());
    assert!(
        ["fentry", "kprobe"].contains(&info[0].labels["notification_post"].as_str()),
        "{:?}",
        info[0].labels
    );

    // Notifications: every one the workload read was posted; loss when the overflow lost.
    let read = u(&w["notify"]["notifications_read"]) + u(&w["overflow"]["notifications_read"]);
    let key = sum(
        &fams,
        "wqtrace_notifications_posted_total",
        &[("type", "key_notify")],
    );
    let all = sum(&fams, "wqtrace_notifications_posted_total", &[]);
    assert!(read > 0, "{w}");
    assert!(all >= read as f64, "posted {all} < read {read}");
    assert!(
        key >= u(&w["overflow"]["notifications_read"]) as f64,
        "key_notify posted {key}"
    );
    // The notification pipes are the workload's: their owner (the reading thread, or the
    // process that created them) is known from pipe2/read, so posts are not `unknown`.
    let unknown = sum_or_zero(
        &fams,
        "wqtrace_notifications_posted_total",
        &[("comm", "unknown")],
    );
    let other = sum_or_zero(
        &fams,
        "wqtrace_notifications_posted_total",
        &[("comm", "other")],
    );
    assert!(
        all - unknown - other >= read as f64,
        "{all} posted, {unknown} to unknown owners"
    );
    let overflow_lost = u(&w["overflow"]["posts_attempted"])
        > u(&w["overflow"]["notifications_read"])
        || u(&w["overflow"]["loss_records"]) > 0;
    let lost = sum_or_zero(&fams, "wqtrace_notifications_lost_total", &[]);
    if overflow_lost {
        assert!(
            lost >= 1.0,
            "overflow lost notifications, metrics say {lost}"
        );
    }

    // Rejections: per syscall, exactly the workload's refused splice/tee/vmsplice calls on the
    // notification pipe (write()'s EXDEV is not a splice rejection).
    let runs = u(&w["reject"]["runs"]);
    assert_eq!(runs, u(&w["reject"]["ok_runs"]), "{w}");
    let first = w["reject"]["first"].as_array().expect("reject.first");
    for syscall in ["splice", "tee", "vmsplice"] {
        let per_run = first
            .iter()
            .filter(|a| {
                a["notification_pipe"] == true && a["syscall"] == syscall && u(&a["errno"]) != 0
            })
            .count() as u64;
        let got = sum(
            &fams,
            "wqtrace_splice_rejections_total",
            &[("syscall", syscall)],
        );
        assert_eq!(
            got,
            (per_run * runs) as f64,
            "{syscall}: {per_run} × {runs} runs"
        );
    }
    assert_eq!(
        sum_or_zero(
            &fams,
            "wqtrace_splice_rejections_total",
            &[("syscall", "write")]
        ),
        0.0
    );

    // The workload closed its notification pipes: free_pipe_info took them out of the gauge.
    let inos: Vec<String> = ["notify", "overflow"]
        .iter()
        .flat_map(|k| w[k]["pipe_inos"].as_array().unwrap().iter())
        .map(|i| u(i).to_string())
        .collect();
    let left: Vec<_> = samples(&fams, "wqtrace_pipe_ring_occupancy_slots")
        .into_iter()
        .filter(|s| inos.contains(&s.labels["pipe"]))
        .collect();
    assert!(
        left.is_empty(),
        "released pipes still in the gauge: {left:?}"
    );
    assert!(
        sum(
            &fams,
            "wqtrace_events_processed_total",
            &[("kind", "pipe_released")]
        ) >= inos.len() as f64
    );

    // What it costs, counted by the kernel: the kernel-function programs too.
    let runs = |prog| sum_or_zero(&fams, "wqtrace_bpf_runs_total", &[("program", prog)]);
    assert!(runs("sys_enter") > 0.0, "{text}");
    assert!(runs("post_fentry") + runs("post_kprobe") > 0.0, "{text}");
    assert!(sum(&fams, "wqtrace_bpf_run_seconds_total", &[]) > 0.0);
    assert!(sum(&fams, "process_resident_memory_bytes", &[]) > 1e6);

    // Every metric the shipped dashboard and alert rules use is one serve exports.
    let names: std::collections::BTreeSet<String> = fams
        .values()
        .flat_map(|(_, ss)| ss.iter().map(|s| s.name.clone()))
        .collect();
    for file in [
        "grafana/wqtrace-dashboard.json",
        "prometheus/wqtrace-rules.yml",
    ] {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/").to_string() + file;
        let text = std::fs::read_to_string(&path).unwrap();
        let used: std::collections::BTreeSet<&str> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .filter(|w| w.starts_with("wqtrace_") || w.starts_with("process_"))
            .collect();
        assert!(used.len() >= 5, "{file}: {used:?}");
        let unknown: Vec<_> = used.iter().filter(|n| !names.contains(**n)).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics serve does not export: {unknown:?}\nexported: {names:?}"
        );
    }

    let (st, took) = s.terminate();
    assert_eq!(st.code(), Some(0), "{st}");
    assert!(took < Duration::from_secs(10), "exit took {took:?}");
}
