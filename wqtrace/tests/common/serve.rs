//! Shared by the `serve` tests (host and VM): start `wqtrace serve`, scrape it, parse the
//! exposition with the official Python parser (PyPI `prometheus-client`).

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    sync::mpsc::Receiver,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::WQTRACE;

pub struct Server {
    pub child: Child,
    pub addr: String,
    /// stderr lines after the readiness line.
    pub rest: Receiver<String>,
}

impl Server {
    /// `wqtrace serve --listen 127.0.0.1:0 ARGS`, once it says where it serves.
    pub fn start(args: &[&str]) -> Server {
        let mut cmd = Command::new(WQTRACE);
        cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(args);
        Self::spawn(cmd)
    }

    /// Runs `cmd` (a `wqtrace serve` command line, possibly under a wrapper), once it says
    /// where it serves.
    pub fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wqtrace serve");
        let mut reader = BufReader::new(child.stderr.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut seen = String::new();
        let addr = loop {
            let mut l = String::new();
            if reader.read_line(&mut l).unwrap_or(0) == 0 {
                let st = child.wait().unwrap();
                panic!("wqtrace serve exited early ({st}): {seen}");
            }
            seen.push_str(&l);
            if let Some(rest) = l.split("serving http://").nth(1) {
                break rest.split('/').next().unwrap().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "serve never became ready: {seen}"
            );
        };
        let (tx, rest) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in reader.lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Server { child, addr, rest }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// GET `path`: (status, content type, body).
    pub fn get(&self, path: &str, accept: Option<&str>) -> (u16, String, String) {
        get(&self.addr, path, accept)
    }

    pub fn metrics(&self) -> String {
        let (code, _, body) = self.get("/metrics", None);
        assert_eq!(code, 200, "{body}");
        body
    }

    /// SIGTERM; returns the exit status and how long the exit took.
    pub fn terminate(mut self) -> (std::process::ExitStatus, Duration) {
        self.stop()
    }

    /// SIGTERM; the exit status and what serve printed on stderr after its readiness line.
    #[allow(dead_code)] // not every test binary that shares this module uses it
    pub fn terminate_with_output(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let (st, _) = self.stop();
        // The reader thread ends at EOF: serve has exited, so that is near.
        let mut lines = Vec::new();
        while let Ok(l) = self.rest.recv_timeout(Duration::from_secs(10)) {
            lines.push(l);
        }
        (st, lines)
    }

    fn stop(&mut self) -> (std::process::ExitStatus, Duration) {
        let t = Instant::now();
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = t + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st, t.elapsed());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("serve ignored SIGTERM for 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// VmRSS of the serve process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let _ = self.child.wait();
        }
    }
}

pub fn get(addr: &str, path: &str, accept: Option<&str>) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").expect("response head");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let ct = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    let len: Option<usize> = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    });
    assert_eq!(len, Some(body.len()), "Content-Length vs body");
    (code, ct, body.to_string())
}

const PARSE: &str = r#"
import json, sys
fmt = sys.argv[1]
text = sys.stdin.read()
if fmt == 'openmetrics':
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(text):
    fam = out.setdefault(f.name, {'type': f.type, 'samples': []})
    for s in f.samples:
        fam['samples'].append({'name': s.name, 'labels': s.labels, 'value': s.value})
print(json.dumps(out))
"#;

fn has_parser(py: &str) -> bool {
    Command::new(py)
        .args([
            "-c",
            "import prometheus_client.parser, prometheus_client.openmetrics.parser",
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A Python that has the parsers: `python3` on PATH first, then other interpreters on this root
/// (the test VM runs with a bare PATH over the host's read-only root, where pip cannot install).
fn find_python() -> Option<String> {
    let mut cands = vec!["python3".to_string(), "/usr/bin/python3".to_string()];
    if let Ok(d) = std::fs::read_dir("/root/.pyenv/versions") {
        let mut v: Vec<String> = d
            .flatten()
            .map(|e| e.path().join("bin/python3").display().to_string())
            .collect();
        v.sort();
        cands.extend(v.into_iter().rev());
    }
    cands.into_iter().find(|p| has_parser(p))
}

static PYTHON: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The Python `prometheus_client` parsers (`cargo xtask setup` installs them); fails with
/// what to do when they are missing. Returns the interpreter to run them with.
pub fn ensure_parser() -> &'static str {
    PYTHON.get_or_init(|| {
        find_python().unwrap_or_else(|| {
            panic!(
                "no python3 with the PyPI `prometheus-client` parsers: run `cargo xtask setup` (tests do not install packages)"
            )
        })
    })
}

/// One parsed sample.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Family name → (type, samples), as the official parser reads `text` (`openmetrics`: the strict
/// OpenMetrics parser, else the Prometheus text-format parser). Panics when it does not parse.
pub fn parse(text: &str, openmetrics: bool) -> BTreeMap<String, (String, Vec<Sample>)> {
    let py = ensure_parser();
    let mut child = Command::new(py)
        .args([
            "-c",
            PARSE,
            if openmetrics { "openmetrics" } else { "text" },
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the exposition does not parse ({}): {}\n{text}",
        if openmetrics { "openmetrics" } else { "text" },
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_object()
        .unwrap()
        .iter()
        .map(|(name, f)| {
            let samples = f["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| Sample {
                    name: s["name"].as_str().unwrap().to_string(),
                    labels: s["labels"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                        .collect(),
                    value: s["value"].as_f64().unwrap(),
                })
                .collect();
            (
                name.clone(),
                (f["type"].as_str().unwrap().to_string(), samples),
            )
        })
        .collect()
}

/// Sum of the samples named `sample` whose labels include every `want` pair. Panics when none
/// does: a misspelt name or label must not read as 0. For a series that may rightly be absent
/// (nothing lost yet), use [`sum_or_zero`].
pub fn sum(
    fams: &BTreeMap<String, (String, Vec<Sample>)>,
    sample: &str,
    want: &[(&str, &str)],
) -> f64 {
    let matching = matching(fams, sample, want);
    assert!(
        !matching.is_empty(),
        "no sample {sample} with {want:?} in the scrape (families: {:?}); if it may rightly be absent, use sum_or_zero",
        fams.keys().collect::<Vec<_>>()
    );
    matching.iter().sum()
}

/// Like [`sum`], 0 when no sample matches (a series not created yet).
pub fn sum_or_zero(
    fams: &BTreeMap<String, (String, Vec<Sample>)>,
    sample: &str,
    want: &[(&str, &str)],
) -> f64 {
    matching(fams, sample, want).iter().sum()
}

fn matching(
    fams: &BTreeMap<String, (String, Vec<Sample>)>,
    sample: &str,
    want: &[(&str, &str)],
) -> Vec<f64> {
    fams.values()
        .flat_map(|(_, s)| s)
        .filter(|s| {
            s.name == sample
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .collect()
}

/// The samples named `sample`.
pub fn samples<'a>(
    fams: &'a BTreeMap<String, (String, Vec<Sample>)>,
    sample: &str,
) -> Vec<&'a Sample> {
    fams.values()
        .flat_map(|(_, s)| s)
        .filter(|s| s.name == sample)
        .collect()
}
