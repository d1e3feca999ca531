//! Two sessions over one run: start a `record`, export what it holds, and compare events as
//! both sessions see them.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
};

use serde_json::Value;

use super::WQTRACE;

/// Starts `wqtrace record --force -o PATH ARGS` and returns once it records.
pub fn start_recording(path: &Path, args: &[&str]) -> Child {
    use std::io::BufRead;
    let mut c = Command::new(WQTRACE)
        .args(["record", "--force", "-o"])
        .arg(path)
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(c.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("recording to"), "{line}");
    std::thread::spawn(move || for _ in err.lines() {});
    c
}

/// `wqtrace export FILE -f jsonl FILTER…`, asserting it succeeded.
pub fn export_jsonl(file: &Path, filter: &[&str]) -> Vec<u8> {
    let o = Command::new(WQTRACE)
        .arg("export")
        .arg(file)
        .args(["-f", "jsonl"])
        .args(filter)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

/// `wqtrace report --json FILE ARGS…`, asserting it succeeded.
pub fn report_json(file: &Path, args: &[&str]) -> Value {
    let o = Command::new(WQTRACE)
        .args(["report", "--json"])
        .arg(file)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `wqtrace report FILE` (text), asserting it succeeded.
pub fn report_text(file: &Path) -> String {
    let o = Command::new(WQTRACE)
        .arg("report")
        .arg(file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What two sessions both see of one event, sorted. Timestamps, CPUs and durations are each
/// session's own, and so are ring snapshots taken outside the pipe's locks: a post on another
/// CPU can land between the two sessions' programs at one syscall exit.
pub fn event_keys(jsonl: &[u8]) -> Vec<String> {
    let mut keys: Vec<String> = String::from_utf8_lossy(jsonl)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            [
                "kind", "op", "tid", "tgid", "ino", "ret", "slot", "type", "comm",
            ]
            .iter()
            .map(|k| v[*k].to_string())
            .collect::<Vec<_>>()
            .join(" ")
        })
        .collect();
    keys.sort();
    keys
}

/// The `ts_ns` of every event of an export.
pub fn timestamps(jsonl: &[u8]) -> Vec<u64> {
    String::from_utf8_lossy(jsonl)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["ts_ns"]
                .as_u64()
                .unwrap()
        })
        .collect()
}
