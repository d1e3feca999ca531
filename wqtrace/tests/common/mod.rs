//! Shared by the kernel-facing integration tests: run `wqtrace trace --json` around a
//! `wqtrace workload` and hand back both sides, so tests compare what the kernel did (the
//! workload's own account) with what the tracer saw.
#![allow(dead_code)]

pub mod recording;
pub mod serve;
pub mod splice_waits;
pub mod tmux;

use std::{
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

pub const WQTRACE: &str = env!("CARGO_BIN_EXE_wqtrace");

/// A test's scratch directory, `wqtrace-NAME-PID` under the temp dir, made empty and removed
/// when the guard goes: a failed assert unwinds through it, so no failing run leaves one.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("wqtrace-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Python lines, each indented by `indent`, that hand the pipes of `fds` (a Python expression)
/// to a task outside a comm filter: fork, exec `sleep` holding them, wait until the child is
/// `sleep`; and the lines that kill and reap it, which frees the pipes once the script has
/// closed its own fds. fork and exec, not subprocess: subprocess's pipe for exec errors would
/// be one more pipe.
pub fn python_sleep_child(fds: &str, indent: &str) -> (String, String) {
    let lines = |ls: &[&str]| {
        ls.iter()
            .map(|l| format!("{indent}{l}\n"))
            .collect::<String>()
    };
    let spawn = lines(&[
        &format!("for fd in {fds}:"),
        "    os.set_inheritable(fd, True)",
        "child = os.fork()",
        "if child == 0:",
        "    os.execvp('sleep', ['sleep', '600'])",
        "while open(f'/proc/{child}/comm').read() != 'sleep\\n':",
        "    time.sleep(0.01)",
    ]);
    (spawn, lines(&["os.kill(child, 9)", "os.waitpid(child, 0)"]))
}

/// One JSON value per non-empty line (trace --json, export -f jsonl).
pub fn json_lines(out: &[u8]) -> Vec<Value> {
    out.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

/// `wqtrace ARGS`, which must succeed (its stderr in the failure message).
pub fn run_ok(args: &[&str]) -> std::process::Output {
    let out = Command::new(WQTRACE).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "wqtrace {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Tests of one binary that load probes take turns: their sessions share the kernel.
pub fn kernel_lock() -> std::sync::MutexGuard<'static, ()> {
    static KERNEL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    KERNEL.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Tracer {
    child: Child,
    stdout: std::thread::JoinHandle<String>,
    stderr_lines: Vec<String>,
    rest: std::sync::mpsc::Receiver<String>,
}

impl Tracer {
    /// Start `wqtrace trace --json ARGS` and wait until it says the probes are attached.
    pub fn start(args: &[&str]) -> Tracer {
        let mut child = Command::new(WQTRACE)
            .arg("trace")
            .arg("--json")
            .arg("--show-plan")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wqtrace trace");
        // Read stdout as it comes: a tracer blocked on a full pipe would lose events.
        let mut so = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            so.read_to_string(&mut s).unwrap();
            s
        });
        let stderr = child.stderr.take().unwrap();
        let mut reader = BufReader::new(stderr);
        let lines = wait_tracing(&mut reader);
        // Keep draining stderr so the tracer never blocks on it.
        let (tx, rest) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for l in reader.lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Tracer {
            child,
            stdout,
            stderr_lines: lines,
            rest,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The BPF link ids this tracer holds (from its fdinfo): each attached hook is one link.
    pub fn link_ids(&self) -> Vec<u32> {
        link_ids_of(self.pid())
    }

    /// The plan lines (`wqtrace: <hook> <method> <target>`) printed at start.
    pub fn plan(&self) -> Vec<(String, String)> {
        self.stderr_lines
            .iter()
            .filter_map(|l| {
                let rest = l.strip_prefix("wqtrace: ")?;
                let mut it = rest.split_whitespace();
                let hook = it.next()?.to_string();
                let method = it.next()?.to_string();
                (!hook.ends_with(';')).then_some((hook, method))
            })
            .collect()
    }

    pub fn method(&self, hook: &str) -> String {
        self.plan()
            .into_iter()
            .find(|(h, _)| h == hook)
            .map(|(_, m)| m)
            .unwrap_or_default()
    }

    /// SIGINT the tracer (as Ctrl-C would) and collect every event it printed.
    pub fn stop(self) -> Vec<Value> {
        let (events, lost) = self.stop_counting_lost();
        assert_eq!(
            lost, 0,
            "the tracer lost events: comparisons would be meaningless"
        );
        events
    }

    /// Like [`stop`](Self::stop), also returning the lost count the tracer reported.
    pub fn stop_counting_lost(self) -> (Vec<Value>, u64) {
        let (events, lost, _) = self.stop_counting();
        (events, lost)
    }

    /// [`Tracer::stop_counting_lost`], with the sleeps of splice, tee or vmsplice the tracer
    /// said it could not time as pipe waits (its line before the last; 0 without one).
    pub fn stop_counting(mut self) -> (Vec<Value>, u64, u64) {
        // Let the last events of the workload reach the ring buffer.
        std::thread::sleep(Duration::from_millis(300));
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "wqtrace trace failed: {status}");
        let out = self.stdout.join().unwrap();
        let events: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}")))
            .collect();
        // The stderr reader ends with the tracer's stderr: every line is in the channel then.
        let mut rest = vec![];
        while let Ok(l) = self.rest.recv_timeout(Duration::from_secs(5)) {
            rest.push(l);
        }
        // Last stderr line: "wqtrace: N events, M lost".
        let summary = rest
            .iter()
            .find(|l| l.contains(" lost"))
            .unwrap_or_else(|| panic!("no totals line from the tracer: {rest:?}"));
        let nums: Vec<u64> = summary
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|t| t.parse().ok())
            .collect();
        assert_eq!(nums.len(), 2, "{summary}");
        assert_eq!(
            nums[0],
            events.len() as u64,
            "printed vs counted: {summary}"
        );
        (events, nums[1], unattributed_sleeps(&rest.join("\n")))
    }
}

/// The sleeps a session's stderr says it could not time as pipe waits (its line "N sleeps in
/// splice, tee or vmsplice not timed ..."), 0 without that line.
pub fn unattributed_sleeps(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| {
            let (n, _) = l
                .strip_prefix("wqtrace: ")?
                .split_once(" sleeps in splice, tee or vmsplice not timed")?;
            n.parse().ok()
        })
        .unwrap_or(0)
}

/// Reads a tracer's stderr until its readiness line (`wqtrace: tracing; ...`), panicking if it
/// ends first; returns the lines read (the attach plan among them).
pub fn wait_tracing(stderr: &mut impl BufRead) -> Vec<String> {
    let mut lines = vec![];
    loop {
        let mut l = String::new();
        let n = stderr.read_line(&mut l).unwrap_or(0);
        assert!(
            n > 0,
            "the tracer exited before attaching: {}",
            lines.join("")
        );
        lines.push(l.clone());
        if l.contains("tracing;") {
            return lines;
        }
    }
}

/// A process named `comm` (set before it makes anything a tracer would see) that makes one pipe
/// and writes and reads one byte through it `n` times, pausing `pause_ms` after each round. It
/// does nothing else: under a comm filter, its events are the pipe's creation and exactly 2n
/// ring ops.
pub fn pipe_ping_command(comm: &str, n: u32, pause_ms: u32) -> Command {
    let pause = if pause_ms > 0 {
        format!("    time.sleep({})\n", f64::from(pause_ms) / 1000.0)
    } else {
        String::new()
    };
    let script = format!(
        "import ctypes, os, time\nctypes.CDLL(None).prctl(15, b'{comm}', 0, 0, 0)\nr, w = os.pipe()\nfor _ in range({n}):\n    os.write(w, b'x')\n    os.read(r, 1)\n{pause}"
    );
    let mut c = Command::new("python3");
    c.args(["-c", &script]);
    c
}

/// [`pipe_ping_command`] without pauses, run to its end.
pub fn pipe_ping(comm: &str, n: u32) {
    let st = pipe_ping_command(comm, n, 0).status().unwrap();
    assert!(st.success(), "pipe ping {comm}: {st}");
}

/// `wqtrace workload contend` with `threads` threads, each writer stopping after `writes`
/// writes (a bounded volume, however fast the machine; 10 s at most).
pub fn contend(threads: u32, writes: u32) -> Value {
    contend_with(threads, writes, &[])
}

/// Runs a test that needs mutex contention may take: two workload threads contend only while
/// both run at once, which a shared 2-CPU machine under load (the other tests' tracers, a VM)
/// sometimes does not grant for a whole run (seen: 2 runs in 30 without any under such load).
pub const CONTENTION_TRIES: u32 = 5;

/// `contend` with more workload arguments (e.g. `--spread`).
pub fn contend_with(threads: u32, writes: u32, more: &[&str]) -> Value {
    let (t, w) = (threads.to_string(), writes.to_string());
    let mut args = vec![
        "contend",
        "--threads",
        &t,
        "--duration",
        "10",
        "--writes",
        &w,
    ];
    args.extend_from_slice(more);
    workload(&args)
}

/// Run `wqtrace workload ARGS`, asserting success, and return its JSON summary.
pub fn workload(args: &[&str]) -> Value {
    let out = Command::new(WQTRACE)
        .arg("workload")
        .args(args)
        .output()
        .expect("spawn workload");
    assert!(
        out.status.success(),
        "workload {args:?} failed ({}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("workload JSON {s:?}: {e}"))
}

pub fn kind<'a>(events: &'a [Value], kind: &str, tgid: u64) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["kind"] == kind && e["tgid"].as_u64() == Some(tgid))
        .collect()
}

pub fn has_flag(e: &Value, f: &str) -> bool {
    e["flags"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == f))
}

pub fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not an unsigned number: {v}"))
}

/// BPF link ids held by process `pid`.
pub fn link_ids_of(pid: u32) -> Vec<u32> {
    let mut ids = vec![];
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return ids;
    };
    for e in dir.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        for l in text.lines() {
            if let Some(v) = l.strip_prefix("link_id:") {
                ids.extend(v.trim().parse::<u32>().ok());
            }
        }
    }
    ids.sort();
    ids.dedup();
    ids
}

/// Whether a BPF link with this id still exists in the kernel (waits for deferred release).
pub fn link_alive(id: u32) -> bool {
    for _ in 0..50 {
        let gone = Command::new("bpftool")
            .args(["link", "show", "id", &id.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| !s.success())
            .unwrap_or(false);
        if gone {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// `wqtrace doctor --json`, asserting it succeeded.
pub fn doctor_json() -> Value {
    let out = Command::new(WQTRACE)
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What `doctor --json` must say of kernel reads on the running kernel: direct loads from 6.2
/// on (the kfunc bpf_rdonly_cast), probe reads before.
pub fn kernel_reads_expected() -> &'static str {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut v = r
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (v.next().unwrap_or(0), v.next().unwrap_or(0));
    if (major, minor) >= (6, 2) {
        "direct"
    } else {
        "probe_read"
    }
}

/// The method `doctor --json` names for `hook` in its `plan` (or `kprobe_fallback`) list.
pub fn plan_method(d: &Value, plan: &str, hook: &str) -> String {
    d[plan]
        .as_array()
        .unwrap_or_else(|| panic!("no {plan} in {d}"))
        .iter()
        .find(|h| h["hook"] == hook)
        .map(|h| h["method"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The tids of a `workload contend` summary: its threads and its main thread (tid == pid), which
/// takes the pipe mutex too when it closes the write end (pipe_release).
pub fn contend_tids(w: &Value) -> Vec<u64> {
    w["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| u(&t["tid"]))
        .chain([u(&w["pid"])])
        .collect()
}

/// Every thread of `pid` runs as `uid` with no capabilities (its /proc status says so).
pub fn assert_dropped_to(pid: u32, uid: u32) {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    let mut n = 0;
    for t in tasks {
        let status = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap();
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap_or_else(|| panic!("{k} in {status}"))
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(field("Uid:"), vec![uid.to_string(); 4], "{status}");
        for cap in ["CapEff:", "CapPrm:", "CapAmb:"] {
            assert_eq!(field(cap), ["0000000000000000"], "{cap} {status}");
        }
        n += 1;
    }
    assert!(n >= 2, "the drain thread too: {n} threads");
}

/// How a task is scheduled, from its `/proc/…/stat` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sched {
    pub comm: String,
    pub ppid: u32,
    /// 0 SCHED_OTHER, 1 SCHED_FIFO.
    pub policy: u32,
    pub nice: i32,
}

pub fn sched_of(stat: &str) -> Sched {
    let (head, rest) = stat.rsplit_once(") ").expect("a stat line");
    let comm = head.split_once(" (").expect("a stat line").1.to_string();
    // Field N of stat(5) is rest[N - 3].
    let f: Vec<&str> = rest.split_whitespace().collect();
    Sched {
        comm,
        ppid: f[4 - 3].parse().unwrap(),
        policy: f[41 - 3].parse().unwrap(),
        nice: f[19 - 3].parse().unwrap(),
    }
}

/// `sched_of` for each thread of process `pid`.
pub fn threads_sched(pid: u32) -> Vec<Sched> {
    let mut v = vec![];
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        if let Ok(s) = std::fs::read_to_string(t.path().join("stat")) {
            v.push(sched_of(&s));
        }
    }
    v
}
