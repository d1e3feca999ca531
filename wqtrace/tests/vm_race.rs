//! Exact notification accounting with several CPUs posting into one queue at once: `wqtrace
//! record` around `wqtrace workload race`, then the recording (exported as JSON lines) against
//! what the workload's reader really got. Runs inside the test VM (6.12 and 6.1).

mod common;

use std::collections::BTreeMap;

use common::{WQTRACE, run_ok as run, u};
use serde_json::Value;

/// Record `wqtrace workload SCENARIO ARGS…` (`workload`); its summary and the recording's
/// events (as `export --format jsonl` writes them).
fn record_workload(tag: &str, tracer_args: &[&str], workload: &[&str]) -> (Value, Vec<Value>) {
    assert!(
        std::env::var_os("WQTRACE_IN_VM").is_some(),
        "needs a watch_queue kernel: run with `cargo xtask test` (VM stage)"
    );
    let dir = std::env::temp_dir();
    let rec = dir.join(format!("{tag}.wqt"));
    let summary = dir.join(format!("{tag}.json"));
    let jsonl = dir.join(format!("{tag}.jsonl"));
    // Scratch files: a rerun in the same boot replaces them.
    let mut args = vec!["record", "-q", "--force", "-o", rec.to_str().unwrap()];
    args.extend_from_slice(tracer_args);
    args.extend_from_slice(&["--", WQTRACE, "workload"]);
    args.extend_from_slice(workload);
    args.extend_from_slice(&["--json-out", summary.to_str().unwrap()]);
    run(&args);
    let w: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(w["ok"], true, "{w}");
    let r: Value =
        serde_json::from_slice(&run(&["report", rec.to_str().unwrap(), "--json"]).stdout).unwrap();
    assert_eq!(u(&r["totals"]["lost"]), 0, "the tracer dropped events");
    run(&[
        "export",
        rec.to_str().unwrap(),
        "--format",
        "jsonl",
        "--force",
        "-o",
        jsonl.to_str().unwrap(),
    ]);
    let events = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (w, events)
}

/// [`record_workload`] of the race scenario.
fn record_race(tag: &str, tracer_args: &[&str], race_args: &[&str]) -> (Value, Vec<Value>) {
    let mut args = vec!["race"];
    args.extend_from_slice(race_args);
    record_workload(&format!("race-{tag}"), tracer_args, &args)
}

/// Outcome counts of the posts into the race's pipe, and the landed posts.
struct Posts<'a> {
    by_outcome: BTreeMap<String, u64>,
    landed: Vec<&'a Value>,
}

fn posts<'a>(w: &Value, events: &'a [Value]) -> Posts<'a> {
    let ino = u(&w["pipe_ino"]);
    let mut by_outcome = BTreeMap::new();
    let mut landed = vec![];
    for e in events
        .iter()
        .filter(|e| e["kind"] == "notify_posted" && u(&e["ino"]) == ino)
    {
        let o = e["outcome"].as_str().expect("a post has an outcome");
        *by_outcome.entry(o.to_string()).or_insert(0) += 1;
        if o == "landed" {
            landed.push(e);
        }
    }
    Posts { by_outcome, landed }
}

/// What every race run must show, whatever the timing.
fn check_exact<'a>(w: &Value, events: &'a [Value]) -> Posts<'a> {
    let p = posts(w, events);
    let n = |o: &str| p.by_outcome.get(o).copied().unwrap_or(0);
    let attempts = u(&w["attempts"]);
    let total: u64 = p.by_outcome.values().sum();
    assert_eq!(
        total, attempts,
        "one outcome per attempt: {:?}",
        p.by_outcome
    );
    // The test kernels have no security module and one watch per key: every outcome is known.
    for o in ["unknown", "unattributed", "skipped_filter"] {
        assert_eq!(n(o), 0, "{o}: {:?}", p.by_outcome);
    }
    assert_eq!(
        n("landed"),
        u(&w["notes_read"]),
        "landed vs read: {:?} {w}",
        p.by_outcome
    );
    // No two landed posts share a ring index; every write into this ring is a post, so the
    // landed indices are contiguous.
    let mut heads: Vec<u64> = p.landed.iter().map(|e| u(&e["head_before"])).collect();
    heads.sort_unstable();
    for pair in heads.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "ring indices {} then {}",
            pair[0],
            pair[1]
        );
    }
    for e in &p.landed {
        let rs = u(&e["ring_size"]);
        assert_eq!(u(&e["slot"]), u(&e["head_before"]) & (rs - 1), "{e}");
        assert!(u(&e["note"]) < u(&e["nr_notes"]), "{e}");
        assert!(u(&e["notes_in_use"]) >= 1, "{e}");
    }
    // Per watch: what landed is what was read.
    let mut per_watch: BTreeMap<String, u64> = BTreeMap::new();
    for e in &p.landed {
        *per_watch.entry(u(&e["watch_id"]).to_string()).or_insert(0) += 1;
    }
    let read: BTreeMap<String, u64> = w["notes_read_per_watch_id"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), u(v)))
        .filter(|(_, v)| *v > 0)
        .collect();
    assert_eq!(per_watch, read, "landed vs read per watch id");
    // Loss records: the reads that returned them, counted as the reader counted them.
    let ino = u(&w["pipe_ino"]);
    let loss_records: u64 = events
        .iter()
        .filter(|e| e["kind"] == "ring_op" && u(&e["ino"]) == ino)
        .map(|e| u(&e["loss_records"]))
        .sum();
    assert_eq!(loss_records, u(&w["loss_records"]), "loss records read");
    let lost = n("lost_ring_full") + n("lost_notes_full") + n("lost_reason_unknown");
    if u(&w["loss_records"]) > 0 {
        assert!(lost >= 1, "the reader saw a loss record, no post lost");
    }
    assert_eq!(lost, u(&w["notes_missing"]), "lost vs never read: {w}");
    p
}

#[test]
fn concurrent_posters_fast_reader() {
    for round in 0..3 {
        let (w, events) = record_race(
            &format!("fast{round}"),
            &[],
            &["--posters", "4", "--keys", "4", "--updates", "300"],
        );
        check_exact(&w, &events);
    }
}

#[test]
fn concurrent_posters_slow_reader_lose_posts() {
    for round in 0..2 {
        let (w, events) = record_race(
            &format!("slow{round}"),
            &[],
            &[
                "--posters",
                "4",
                "--updates",
                "250",
                "--nr-notes",
                "32",
                "--reader-delay-us",
                "2000",
            ],
        );
        check_exact(&w, &events);
        assert!(
            u(&w["loss_records"]) >= 1,
            "a slow reader should see losses: {w}"
        );
    }
}

/// One poster fills a 32-note queue nobody reads: the notes count reaches 32, and every later
/// post is lost for an exact reason (nothing moved the ring meanwhile).
#[test]
fn full_queue_notes_and_reasons_are_exact() {
    let (w, events) = record_race(
        "full",
        &[],
        &[
            "--nr-notes",
            "1",
            "--posters",
            "1",
            "--keys",
            "1",
            "--updates",
            "64",
            "--read-after",
        ],
    );
    let p = check_exact(&w, &events);
    let nr = u(&w["nr_notes_effective"]);
    assert_eq!(nr, 32, "{w}");
    assert_eq!(p.landed.len() as u64, nr);
    let max_in_use = p.landed.iter().map(|e| u(&e["notes_in_use"])).max();
    assert_eq!(max_in_use, Some(nr), "notes_in_use must reach nr_notes");
    let reasons = p.by_outcome.get("lost_ring_full").copied().unwrap_or(0)
        + p.by_outcome.get("lost_notes_full").copied().unwrap_or(0);
    assert_eq!(reasons, 64 - nr, "{:?}", p.by_outcome);
    assert_eq!(u(&w["loss_records"]), 1, "{w}");
}

/// -c applies to posts like to every event: with the posters' comm, only their posts (and no
/// reader op); with the reader's, its reads and no post.
#[test]
fn comm_filter_applies_to_posts() {
    let race = ["--posters", "2", "--updates", "50"];
    let (w, events) = record_race("comm-posters", &["-c", "wq-poster"], &race);
    let ino = u(&w["pipe_ino"]);
    let on_pipe = |k: &str| {
        events
            .iter()
            .filter(|e| e["kind"] == k && u(&e["ino"]) == ino)
            .count() as u64
    };
    assert_eq!(on_pipe("notify_posted"), u(&w["attempts"]));
    assert_eq!(on_pipe("ring_op"), 0, "a reader op passed -c wq-poster");
    for e in events.iter().filter(|e| e["kind"] == "notify_posted") {
        assert!(e["comm"].as_str().unwrap().starts_with("wq-poster"), "{e}");
    }
    let (w, events) = record_race("comm-reader", &["-c", "wq-race-reader"], &race);
    let ino = u(&w["pipe_ino"]);
    assert!(
        !events.iter().any(|e| e["kind"] == "notify_posted"),
        "a post passed -c wq-race-reader"
    );
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "ring_op" && u(&e["ino"]) == ino),
        "no read by the reader"
    );
}

/// A queue filter (key UPDATED and REVOKED only): the posts it skips are counted as skipped by
/// the filter, not lost, and everything else landed as read.
#[test]
fn queue_filter_skips_are_counted_as_filtered() {
    let (w, events) = record_workload("filter", &[], &["notify", "--filter", "--count", "4"]);
    let p = posts(&w, &events);
    let n = |o: &str| p.by_outcome.get(o).copied().unwrap_or(0);
    // SETATTR on the key, LINKED and UNLINKED on the keyring: not UPDATED or REVOKED.
    assert_eq!(n("skipped_filter"), 3, "{:?}", p.by_outcome);
    assert_eq!(
        n("landed"),
        u(&w["notifications_read"]),
        "{:?} {w}",
        p.by_outcome
    );
    for o in [
        "lost_ring_full",
        "lost_notes_full",
        "lost_reason_unknown",
        "unknown",
    ] {
        assert_eq!(n(o), 0, "{o}: {:?}", p.by_outcome);
    }
}
