//! `wqtrace workload` on the host kernel: the ordinary-pipe scenarios, and the one-line error of
//! the notification scenarios when the kernel has no CONFIG_WATCH_QUEUE.

mod common;

use std::process::{Command, Output};

use serde_json::Value;

const UNAVAILABLE: &str = "wqtrace: notification pipes unavailable: kernel built without \
                           CONFIG_WATCH_QUEUE (pipe2(O_NOTIFICATION_PIPE) failed with ENOPKG)";

fn workload(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wqtrace"))
        .arg("workload")
        .args(args)
        .output()
        .expect("running wqtrace")
}

fn json(out: &Output) -> Value {
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(s.lines().count(), 1, "one JSON object expected, got: {s}");
    serde_json::from_str(&s).expect("JSON summary")
}

/// Whether this kernel can make notification pipes (decides which behaviour to expect); any
/// answer but yes or ENOPKG fails the test.
fn watch_queue_here() -> bool {
    has_watch_queue().expect("pipe2(O_NOTIFICATION_PIPE) failed with neither success nor ENOPKG")
}

fn has_watch_queue() -> Option<bool> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_EXCL | libc::O_CLOEXEC) };
    if r == 0 {
        // SAFETY: closing the descriptors we just got.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        return Some(true);
    }
    (std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOPKG)).then_some(false)
}

#[test]
fn contend_moves_every_byte_written_and_names_each_thread() {
    let out = workload(&["contend", "--threads", "4", "--duration", "0.3"]);
    assert!(out.status.success(), "{out:?}");
    let v = json(&out);
    assert_eq!(v["scenario"], "contend");
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["pid"].as_u64().unwrap() > 0);
    assert!(v["pipe_ino"].as_u64().unwrap() > 0);
    let written = v["total_bytes_written"].as_u64().unwrap();
    assert!(written > 0);
    assert_eq!(written, v["total_bytes_read"].as_u64().unwrap());
    let threads = v["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 4);
    let mut roles: Vec<&str> = threads
        .iter()
        .map(|t| t["role"].as_str().unwrap())
        .collect();
    roles.sort();
    assert_eq!(roles, ["reader", "splicer", "writer", "writer"]);
    let mut tids: Vec<u64> = threads.iter().map(|t| t["tid"].as_u64().unwrap()).collect();
    tids.sort();
    tids.dedup();
    assert_eq!(tids.len(), 4, "distinct tids");
    for t in threads {
        assert!(t["ops"].as_u64().unwrap() > 0, "idle thread: {t}");
    }
}

/// `--writes N` bounds each writer however fast the machine is, and ends the run early.
#[test]
fn contend_writes_bounds_each_writer() {
    let out = workload(&[
        "contend",
        "--threads",
        "3",
        "--duration",
        "60",
        "--writes",
        "500",
    ]);
    assert!(out.status.success(), "{out:?}");
    let v = json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["duration_s"].as_f64().unwrap() < 30.0, "{v}");
    let threads = v["threads"].as_array().unwrap();
    let writers: Vec<&Value> = threads.iter().filter(|t| t["role"] == "writer").collect();
    assert_eq!(writers.len(), 1, "{v}");
    assert_eq!(writers[0]["ops"], 500, "{v}");
}

/// `--spread` pins thread i to the i-th allowed CPU and says so; without it no thread is pinned.
#[test]
fn contend_spread_pins_threads_to_different_cpus() {
    let cpus_of = |extra: &[&str]| {
        let mut args = vec!["contend", "--threads", "3", "--writes", "200"];
        args.extend_from_slice(extra);
        let out = workload(&args);
        assert!(out.status.success(), "{out:?}");
        let v = json(&out);
        assert_eq!(v["ok"], true, "{v}");
        (v["threads"].as_array().unwrap().iter())
            .map(|t| t["cpu"].as_u64())
            .collect::<Vec<_>>()
    };
    assert!(cpus_of(&[]).iter().all(Option::is_none));
    let pinned: std::collections::BTreeSet<u64> = cpus_of(&["--spread"])
        .into_iter()
        .map(Option::unwrap)
        .collect();
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(pinned.len(), n.min(3), "pinned to {pinned:?} on {n} CPUs");
}

#[test]
fn reject_ordinary_half_succeeds() {
    let out = workload(&["reject", "--ordinary-only"]);
    assert!(out.status.success(), "{out:?}");
    let v = json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["notification_pipe_ino"], Value::Null);
    let attempts = v["attempts"].as_array().unwrap();
    let calls: Vec<&str> = attempts
        .iter()
        .map(|a| a["syscall"].as_str().unwrap())
        .collect();
    assert_eq!(
        calls,
        [
            "write", "vmsplice", "tee", "splice", "splice", "splice", "splice", "tee"
        ]
    );
    for a in attempts {
        assert_eq!(a["notification_pipe"], false);
        assert_eq!(a["errno"], 0, "{a}");
        assert_eq!(a["bytes"], 4096, "{a}");
    }
    assert_eq!(v["succeeded"], 8);
}

/// Without watch_queue: one clear line each. With it (a kernel that has notification pipes),
/// each scenario runs and says it did.
#[test]
fn notification_scenarios_fail_with_one_clear_line_without_watch_queue() {
    if watch_queue_here() {
        for scenario in ["notify", "overflow", "reject"] {
            let out = workload(&[scenario]);
            assert!(out.status.success(), "{scenario}: {out:?}");
            assert_eq!(json(&out)["ok"], true, "{scenario}");
        }
        return;
    }
    for scenario in ["notify", "overflow", "reject"] {
        let out = workload(&[scenario]);
        assert!(!out.status.success(), "{scenario} should fail: {out:?}");
        assert!(out.stdout.is_empty(), "{scenario}: no JSON expected");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end(), UNAVAILABLE, "{scenario}");
        assert_eq!(stderr.lines().count(), 1);
    }
}

#[test]
fn mixed_runs_the_ordinary_parts_without_watch_queue() {
    let wq = watch_queue_here();
    let dir = common::Scratch::new("mixed");
    let file = dir.join("summary.json");
    let out = workload(&[
        "mixed",
        "--duration",
        "0.5",
        "--json-out",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let v = json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["reject"]["runs"].as_u64().unwrap() >= 1);
    assert!(v["contend"]["total_bytes_written"].as_u64().unwrap() > 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if wq {
        // The notification parts ran too.
        assert_ne!(v["notifications"], "unavailable", "{v}");
        assert!(v["notify"]["runs"].as_u64().unwrap() >= 1, "{v}");
    } else {
        assert_eq!(v["notifications"], "unavailable");
        assert_eq!(v["notify"]["runs"], 0);
        assert!(
            stderr.starts_with("wqtrace: notification pipes unavailable"),
            "{stderr}"
        );
    }
    // --json-out holds the same object
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved, v);
}
