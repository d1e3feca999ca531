//! A recording made in the test VM while `workload mixed` runs reports the same counts as the
//! workload's own summary, and exports to a Perfetto trace. Runs inside the VM only.

mod common;

use std::process::Command;

use common::recording::{event_keys, export_jsonl, start_recording};
use common::{WQTRACE, run_ok as run, u};
use serde_json::Value;

#[test]
fn recording_of_mixed_reports_the_workloads_counts() {
    assert!(
        std::env::var_os("WQTRACE_IN_VM").is_some(),
        "needs a watch_queue kernel: run with `cargo xtask test` (VM stage)"
    );
    let dir = std::env::temp_dir();
    let rec = dir.join("mixed.wqt");
    let summary = dir.join("mixed.json");
    // A second session over the same run, filtered live: notification pipes only.
    let live_notif = dir.join("mixed-notif.wqt");
    let mut notif_session = start_recording(&live_notif, &["--notification-only"]);
    let main_session = Command::new(WQTRACE)
        .args([
            "record",
            "-q",
            // Scratch files: a rerun in the same boot replaces them.
            "--force",
            "-o",
            rec.to_str().unwrap(),
            "--",
            WQTRACE,
            "workload",
            "mixed",
            "--duration",
            "2",
            "--json-out",
            summary.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    let main_pid = main_session.id();
    let out = main_session.wait_with_output().unwrap();
    assert!(out.status.success());
    unsafe { libc::kill(notif_session.id() as i32, libc::SIGINT) };
    assert!(notif_session.wait().unwrap().success());
    let w: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(w["ok"], true, "{w}");
    // Filtered afterwards, the unfiltered recording holds exactly what the live filter kept.
    // (Less the recording process's own: its check for notification pipes makes one, which
    // the other session sees.)
    let main_pid = main_pid.to_string();
    let live: Vec<String> = event_keys(&export_jsonl(&live_notif, &[]))
        .into_iter()
        .filter(|k| k.split(' ').nth(3) != Some(main_pid.as_str()))
        .collect();
    let after = event_keys(&export_jsonl(&rec, &["--notification-only"]));
    assert!(live.len() > 50, "{} notification-pipe events", live.len());
    let by_kind = |keys: &[String]| {
        let mut m = std::collections::BTreeMap::<String, usize>::new();
        for k in keys {
            let kind = k.split(' ').take(2).collect::<Vec<_>>().join(" ");
            *m.entry(kind).or_default() += 1;
        }
        m
    };
    assert_eq!(
        by_kind(&after),
        by_kind(&live),
        "--notification-only afterwards (left) vs live (right), by kind and op"
    );
    assert_eq!(
        after.len(),
        live.len(),
        "--notification-only afterwards vs live"
    );
    let only_after: Vec<_> = after.iter().filter(|k| !live.contains(k)).take(5).collect();
    let only_live: Vec<_> = live.iter().filter(|k| !after.contains(k)).take(5).collect();
    assert!(
        after == live,
        "not the same events: only afterwards {only_after:?}, only live {only_live:?}"
    );
    let r: Value =
        serde_json::from_slice(&run(&["report", rec.to_str().unwrap(), "--json"]).stdout).unwrap();
    let t = &r["totals"];
    assert_eq!(u(&t["lost"]), 0, "the recording lost events");
    let pid = u(&w["pid"]);
    let pipes: Vec<&Value> = r["pipes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["owners"]
                .as_array()
                .is_some_and(|o| o.iter().any(|o| o["tgid"].as_u64() == Some(pid)))
        })
        .collect();
    assert!(!pipes.is_empty(), "no pipes of pid {pid} in the report");

    // Every notification the readers read was posted; every lost one was an overflow post.
    let posted: u64 = pipes.iter().map(|p| u(&p["notifications"]["posted"])).sum();
    let lost: u64 = pipes.iter().map(|p| u(&p["notifications"]["lost"])).sum();
    let read = u(&w["totals"]["notifications_read"]);
    assert_eq!(posted, read, "posted (report) vs read (workload)");
    let o = &w["overflow"];
    assert_eq!(
        lost,
        u(&o["posts_attempted"]) - u(&o["notifications_read"]),
        "lost (report) vs overflow posts that found the queue full"
    );

    // Rejections: each reject round's refused splice/tee/vmsplice calls (not write's EXDEV).
    let rj = &w["reject"];
    let per_round = rj["first"]
        .as_array()
        .unwrap_or_else(|| panic!("no first round in {rj}"))
        .iter()
        .filter(|a| {
            a["notification_pipe"] == true && a["syscall"] != "write" && u(&a["errno"]) != 0
        })
        .count() as u64;
    let rejected: u64 = pipes.iter().map(|p| u(&p["rejections"]["total"])).sum();
    assert_eq!(
        rejected,
        per_round * u(&rj["runs"]),
        "rejections (report) vs workload"
    );

    // The contended pipe: every byte the writers wrote went through it.
    let c = &w["contend"];
    let cp = pipes
        .iter()
        .find(|p| u(&p["ino"]) == u(&c["pipe_ino"]))
        .expect("contended pipe in the report");
    assert_eq!(
        u(&cp["ops"]["write"]["bytes"]),
        u(&c["total_bytes_written"])
    );

    // And the recording exports to a Perfetto trace that is not empty.
    let trace = dir.join("mixed.perfetto");
    run(&[
        "export",
        rec.to_str().unwrap(),
        "--format",
        "perfetto",
        "--force",
        "-o",
        trace.to_str().unwrap(),
    ]);
    assert!(std::fs::metadata(&trace).unwrap().len() > 1000);

    // Copied out through the workspace share, for tests/cross_machine.rs on the host.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/cross-machine");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(&rec, out.join(format!("{}.wqt", release.trim()))).unwrap();
    std::fs::copy(&summary, out.join(format!("{}.json", release.trim()))).unwrap();
}

/// Under `-c`, a pipe the session saw is reported freed when a child outside the filter frees
/// it, here at free_pipe_info (a kernel-function hook); see
/// `common::recording::frees_outside_the_filter`.
#[test]
fn frees_by_a_task_outside_the_filter_are_kept_for_the_sessions_pipes() {
    assert!(
        std::env::var_os("WQTRACE_IN_VM").is_some(),
        "needs the test VM: run with `cargo xtask test` (VM stage)"
    );
    common::recording::frees_outside_the_filter();
}
