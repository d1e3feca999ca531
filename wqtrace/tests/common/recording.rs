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

/// Under `-c`, a pipe the session saw is reported freed when a child outside the filter
/// (`sleep`, left holding its last fds) frees it, flagged `outside_filter`; the frees of
/// another process's pipes are not reported. The unfiltered recording filtered afterwards with
/// the same `-c` keeps exactly the same events.
pub fn frees_outside_the_filter() {
    let dir = super::Scratch::new("outside");
    let (all, one) = (dir.join("all.wqt"), dir.join("one.wqt"));
    let mut rec_all = start_recording(&all, &[]);
    let mut rec_one = start_recording(&one, &["-c", "wqoutA"]);
    // The child is `sleep` from its first event on.
    let (spawn, reap) = super::python_sleep_child("a", "");
    let script = |comm: &str| {
        format!(
            "import ctypes, os, time\nctypes.CDLL(None).prctl(15, b'{comm}', 0, 0, 0)\n\
             a = os.pipe()\n\
             for _ in range(50):\n    os.write(a[1], b'x')\n    os.read(a[0], 1)\n\
             {spawn}for fd in a:\n    os.close(fd)\n{reap}"
        )
    };
    for comm in ["wqoutA", "wqoutB"] {
        let st = Command::new("python3")
            .args(["-c", &script(comm)])
            .status()
            .unwrap();
        assert!(st.success(), "{comm}: {st}");
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    for r in [&mut rec_one, &mut rec_all] {
        unsafe { libc::kill(r.id() as i32, libc::SIGINT) };
        assert!(r.wait().unwrap().success());
    }

    let events: Vec<Value> = String::from_utf8_lossy(&export_jsonl(&one, &[]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let created: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "pipe_created")
        .collect();
    assert_eq!(created.len(), 1, "wqoutA's one pipe: {created:?}");
    let ino = created[0]["ino"].clone();
    let freed: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "pipe_released" && e["op"] != "close")
        .collect();
    assert_eq!(freed.len(), 1, "one free: {freed:?}");
    assert_eq!(freed[0]["ino"], ino);
    assert_eq!(freed[0]["comm"], "sleep");
    assert!(super::has_flag(freed[0], "outside_filter"), "{}", freed[0]);
    // Nothing else of a task outside the filter (wqoutB's pipe and its free included).
    for e in &events {
        assert!(
            e["comm"] == "wqoutA" || std::ptr::eq(e, freed[0]),
            "outside the filter: {e}"
        );
    }
    let r = report_json(&one, &[]);
    assert_eq!(r["pipes"].as_array().unwrap().len(), 1, "{}", r["pipes"]);
    assert_eq!(r["pipes"][0]["released"], true, "{}", r["pipes"][0]);

    // The same events from the unfiltered recording, filtered afterwards.
    let live = event_keys(&export_jsonl(&one, &[]));
    assert!(live.len() >= 100, "{} events", live.len());
    assert_eq!(event_keys(&export_jsonl(&all, &["-c", "wqoutA"])), live);
}
