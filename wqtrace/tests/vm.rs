//! Tests that need the test VM: a kernel with CONFIG_WATCH_QUEUE, kprobes, BPF and BTF.
//!
//! Declared `test = false` in Cargo.toml, so plain `cargo test` skips this file. `cargo xtask test`
//! builds it (`cargo test -p wqtrace --test vm --no-run`) and runs the executable inside the guest on
//! the 6.12 and the 6.1 kernel with `--test-threads=1` and `WQTRACE_IN_VM=1`.

use std::process::Command;

use serde_json::Value;

fn wqtrace() -> Command {
    assert!(
        std::env::var_os("WQTRACE_IN_VM").is_some(),
        "these tests need the test VM: run them with `cargo xtask test --vm-only`"
    );
    Command::new(env!("CARGO_BIN_EXE_wqtrace"))
}

/// Runs `wqtrace workload ARGS`, asserts exit 0 and returns its one JSON object.
fn workload(args: &[&str]) -> Value {
    let out = wqtrace()
        .arg("workload")
        .args(args)
        .output()
        .expect("running wqtrace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "wqtrace workload {args:?}: {}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    assert_eq!(
        stdout.lines().count(),
        1,
        "one JSON object expected, got: {stdout}"
    );
    serde_json::from_str(&stdout).expect("JSON summary")
}

#[test]
fn workload_notify_reads_key_notifications() {
    let v = workload(&["notify", "--count", "5"]);
    assert_eq!(v["scenario"], "notify");
    assert_eq!(v["ok"], true, "{v}");
    let read = v["notifications_read"].as_u64().unwrap();
    assert!(read > 0, "no notification read: {v}");
    // 5 updates + setattr + linked + unlinked + revoked + watch removal
    assert_eq!(read, 10, "{v}");
    assert_eq!(v["loss_records"], 0);
    assert!(v["pipe_ino"].as_u64().unwrap() > 0);
    let names: Vec<&str> = v["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.iter().filter(|n| **n == "key_updated").count(), 5);
    assert_eq!(names.last(), Some(&"meta_removal"));
    assert!(names.contains(&"key_revoked"));
    assert_ne!(v["reader_tid"], v["tid"]);
}

#[test]
fn workload_storm_reads_every_post_of_its_bursts() {
    // 4 notes round up to a page of 32: bursts of 30 fit.
    let v = workload(&[
        "storm",
        "--duration",
        "0.3",
        "--count",
        "30",
        "--nr-notes",
        "4",
    ]);
    assert_eq!(v["scenario"], "storm");
    assert_eq!(v["ok"], true, "{v}");
    let bursts = v["bursts"].as_u64().unwrap();
    assert!(bursts >= 1, "{v}");
    assert_eq!(v["nr_notes_effective"], 32, "{v}");
    let posts = v["posts"].as_u64().unwrap();
    assert_eq!(posts, bursts * 30, "{v}");
    assert_eq!(v["notifications_read"], posts, "{v}");
    assert_eq!(v["loss_records"], 0, "{v}");
    assert_eq!(v["other_records"], 0, "{v}");
    let secs = v["elapsed_secs"].as_f64().unwrap();
    assert!(secs >= 0.3, "{v}");
    let rate = v["notifications_per_sec"].as_f64().unwrap();
    assert!((rate - posts as f64 / secs).abs() < 1.0, "{v}");
}

#[test]
fn workload_storm_refuses_bursts_the_queue_cannot_hold() {
    let o = wqtrace()
        .args(["workload", "storm", "--count", "100", "--nr-notes", "32"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--count 100 is more than the queue's 32 notes"),
        "{err}"
    );
}

#[test]
fn workload_overflow_reports_one_loss_record() {
    let v = workload(&["overflow", "--nr-notes", "4", "--count", "50"]);
    assert_eq!(v["ok"], true, "{v}");
    // 4 notes round up to one page of 32.
    assert_eq!(v["nr_notes_effective"], 32);
    assert_eq!(v["posts_attempted"], 50);
    assert_eq!(v["notifications_read"], 32);
    assert_eq!(v["loss_records"], 1);
    let last = v["notifications"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["name"], "meta_loss");
}

#[test]
fn workload_reject_notification_pipe_refuses_splice_family() {
    let v = workload(&["reject"]);
    assert_eq!(v["ok"], true, "{v}");
    for a in v["attempts"].as_array().unwrap() {
        if a["notification_pipe"] == true {
            assert_ne!(a["errno"], 0, "{a}");
            if a["syscall"] == "write" {
                assert_eq!(a["error"], "EXDEV", "{a}");
            }
        } else {
            assert_eq!(a["errno"], 0, "{a}");
        }
    }
}
