//! Running wqtrace as a service, on this host's kernel: a real Prometheus (Debian's package,
//! installed by `cargo xtask setup`) scraping `wqtrace serve`, promtool on a scrape and on the
//! shipped rules, the shipped systemd unit (parsed by systemd-analyze, and its capability set
//! tried for real), and what tracing costs (`doctor --measure`, the BPF statistics switch).

mod common;

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{
    WQTRACE, kernel_lock, pipe_ping,
    serve::{Server, get},
};
use serde_json::Value;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");

fn tool(name: &str) -> &'static str {
    let path = ["/usr/bin", "/usr/local/bin", "/usr/sbin", "/bin"]
        .iter()
        .map(|d| format!("{d}/{name}"))
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!("{name} is missing: run `cargo xtask setup` (tests do not install packages)")
        });
    Box::leak(path.into_boxed_str())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every BPF program loaded on the machine, as `bpftool prog show --json` lists them.
fn bpf_programs() -> Vec<Value> {
    let out = Command::new(tool("bpftool"))
        .args(["prog", "show", "--json"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

fn read_sysctl(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
        .unwrap()
        .trim()
        .to_string()
}

/// Percent-encodes a PromQL query for a URL.
fn enc(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Prometheus {
    child: Child,
    addr: String,
}

impl Prometheus {
    /// Prometheus scraping `target` every `interval` as job "wqtrace", with a TSDB of its own.
    fn start(dir: &Path, target: &str, interval: &str) -> Prometheus {
        let cfg = dir.join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: wqtrace\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus { child, addr };
        p.wait_ready();
        p
    }

    fn api(&self, path: &str) -> Value {
        let (code, _, body) = get(&self.addr, path, None);
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Until it says it is ready (it listens before its storage is: 503 until then).
    fn wait_ready(&self) {
        let t0 = Instant::now();
        loop {
            if std::net::TcpStream::connect(&self.addr).is_ok()
                && get(&self.addr, "/-/ready", None).0 == 200
            {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "prometheus never became ready on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// An instant query's result vector.
    fn query(&self, q: &str) -> Vec<Value> {
        let v = self.api(&format!("/api/v1/query?query={}", enc(q)));
        assert_eq!(v["status"], "success", "{q}: {v}");
        v["data"]["result"].as_array().unwrap().clone()
    }

    /// The single value of `q` once `ok` accepts it (waits up to 60 s).
    fn wait_value(&self, q: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let t0 = Instant::now();
        loop {
            let v = self
                .query(q)
                .first()
                .map(|r| r["value"][1].as_str().unwrap().parse::<f64>().unwrap());
            if let Some(v) = v
                && ok(v)
            {
                return v;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "{q} never got there: last {v:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_up(&self) {
        let t0 = Instant::now();
        loop {
            if self.api("/api/v1/targets")["data"]["activeTargets"]
                .as_array()
                .is_some_and(|ts| ts.iter().any(|t| t["health"] == "up"))
            {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "prometheus never scraped serve: {}",
                self.api("/api/v1/targets")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prometheus scrapes serve five times a second (faster than anyone should): the series carry
/// the expected labels, the counters grow with the traffic, and the last sample holds exactly
/// the events the workload made: fast scrapes lose no counts.
#[test]
fn prometheus_scrapes_serve_and_counts_every_event() {
    let _g = kernel_lock();
    let dir = common::Scratch::new("ops-prom");
    let s = Server::start(&["-c", "wqops", "--cost"]);
    let p = Prometheus::start(&dir, &s.addr, "200ms");
    p.wait_up();

    let info = p.query("wqtrace_build_info");
    assert_eq!(info.len(), 1, "{info:?}");
    let m = &info[0]["metric"];
    assert_eq!(m["job"], "wqtrace");
    assert_eq!(m["instance"], s.addr.as_str());
    assert_eq!(m["ring_ops"], "tp_btf", "{m}");
    assert_eq!(m["kernel_release"], read_sysctl("osrelease").as_str());

    let ring_ops = r#"sum(wqtrace_events_processed_total{job="wqtrace",kind="ring_op"})"#;
    assert_eq!(p.wait_value(ring_ops, |_| true), 0.0);
    pipe_ping("wqops", 50);
    let first = p.wait_value(ring_ops, |v| v >= 100.0);
    assert_eq!(first, 100.0, "50 writes and 50 reads");
    pipe_ping("wqops", 150);
    let total = p.wait_value(ring_ops, |v| v > first);
    // The counter may be seen between the two; let it settle.
    let total = if total < 400.0 {
        p.wait_value(ring_ops, |v| v >= 400.0)
    } else {
        total
    };
    assert_eq!(total, 400.0, "every write and read of both runs");
    // Counted in the kernel per cgroup (serve without --all-pipes streams no ordinary ring
    // op): the per-cgroup series add up to the same.
    assert_eq!(
        p.wait_value(
            r#"sum(wqtrace_cgroup_events_total{job="wqtrace",kind="ring_op"})"#,
            |v| v >= 400.0
        ),
        400.0
    );
    // Pipe creations are streamed, not counted in the kernel: they reach serve by another path
    // than the ring-op counts above, and may be a scrape behind them.
    let created = p.wait_value(
        r#"sum(wqtrace_events_processed_total{job="wqtrace",kind="pipe_created"})"#,
        |v| v >= 2.0,
    );
    assert_eq!(created, 2.0);
    // The same figure serve itself shows.
    let own = s.metrics();
    assert!(
        own.lines()
            .any(|l| l == "wqtrace_events_processed_total{kind=\"ring_op\"} 400"),
        "{own}"
    );
    assert_eq!(
        p.wait_value("sum(wqtrace_events_lost_total)", |_| true),
        0.0
    );

    // Its own cost: every program's runs and run time, and the process metrics.
    let runs = p.query(r#"wqtrace_bpf_runs_total{program="sys_enter"}"#);
    assert_eq!(runs.len(), 1, "{runs:?}");
    p.wait_value(
        r#"sum(rate(wqtrace_bpf_run_seconds_total{job="wqtrace"}[5s]))"#,
        |v| v > 0.0,
    );
    assert_eq!(p.wait_value("wqtrace_bpf_stats_enabled", |_| true), 1.0);
    p.wait_value(r#"process_resident_memory_bytes{job="wqtrace"}"#, |v| {
        v > 1e6
    });
    p.wait_value(
        r#"rate(process_cpu_seconds_total{job="wqtrace"}[5s])"#,
        |v| v > 0.0,
    );
    // Prometheus checked every scrape at five a second and found nothing wrong.
    let targets = p.api("/api/v1/targets");
    assert_eq!(
        targets["data"]["activeTargets"][0]["lastError"], "",
        "{targets}"
    );

    let (st, out) = s.terminate_with_output();
    assert_eq!(st.code(), Some(0), "{out:?}");
    assert!(
        out.iter()
            .any(|l| l.contains(" counted in the kernel (ring_op 400") && l.ends_with(", 0 lost")),
        "the ring ops were counted in the kernel, not streamed: {out:?}"
    );
}

/// `promtool check metrics` accepts a real scrape, in both formats serve speaks.
#[test]
fn promtool_accepts_a_scrape() {
    let _g = kernel_lock();
    let s = Server::start(&["--all-pipes"]);
    pipe_ping("wqlint", 10);
    for accept in [None, Some("application/openmetrics-text; version=1.0.0")] {
        let (code, _, body) = s.get("/metrics", accept);
        assert_eq!(code, 200);
        if accept.is_some() {
            // promtool reads the text format; the OpenMetrics form differs only in the
            // trailer and unit lines, which promtool rejects by design.
            assert!(body.ends_with("# EOF\n"), "{body}");
            continue;
        }
        let mut c = Command::new(tool("promtool"))
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        c.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "promtool check metrics: {}{}\n{body}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    s.terminate();
}

/// The shipped alert rules: valid, and each alert fires on the series it is meant for
/// (deploy/prometheus/wqtrace-rules.test.yml); the scrape snippet is a valid configuration.
#[test]
fn shipped_rules_and_scrape_config_pass_promtool() {
    let rules = format!("{DEPLOY}/prometheus/wqtrace-rules.yml");
    let out = promtool(&["check", "rules", &rules], None);
    assert!(out.contains("SUCCESS: 8 rules found"), "{out}");
    promtool(
        &["test", "rules", "wqtrace-rules.test.yml"],
        Some(&format!("{DEPLOY}/prometheus")),
    );
    // The snippet points at /etc/prometheus; check it with the rules beside it.
    let dir = common::Scratch::new("ops-cfg");
    let cfg = std::fs::read_to_string(format!("{DEPLOY}/prometheus/scrape.yml"))
        .unwrap()
        .replace("/etc/prometheus/wqtrace-rules.yml", &rules);
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, cfg).unwrap();
    promtool(&["check", "config", path.to_str().unwrap()], None);
}

/// Runs promtool, asserting it succeeded; its standard output.
fn promtool(args: &[&str], cwd: Option<&str>) -> String {
    let mut c = Command::new(tool("promtool"));
    c.args(args);
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "promtool {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn unit_file() -> String {
    std::fs::read_to_string(format!("{DEPLOY}/systemd/wqtrace-serve.service")).unwrap()
}

/// systemd parses the unit without a single complaint (unknown keys are only warnings to
/// systemd, so any output fails the test). ExecStart points at this build's binary.
#[test]
fn systemd_unit_parses() {
    let dir = common::Scratch::new("ops-unit");
    let unit = unit_file().replace("/usr/local/bin/wqtrace", WQTRACE);
    assert!(unit.contains(&format!("ExecStart={WQTRACE} serve")));
    let path = dir.join("wqtrace-serve.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(tool("systemd-analyze"))
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The words of the unit's `KEY=` line.
fn unit_setting(key: &str) -> Vec<String> {
    let unit = unit_file();
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{key} in the unit"));
    line.split_whitespace().map(str::to_string).collect()
}

/// The unit's AmbientCapabilities, as setpriv spells them (`+bpf,+perfmon,…`).
fn unit_caps() -> Vec<String> {
    unit_setting("AmbientCapabilities")
        .iter()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect()
}

/// The options the unit gives serve besides where to listen.
fn unit_serve_flags() -> Vec<String> {
    let words = unit_setting("ExecStart");
    let mut args = words
        .iter()
        .map(String::as_str)
        .skip_while(|&a| a != "serve")
        .skip(1);
    let mut flags = vec![];
    while let Some(a) = args.next() {
        if a == "--listen" {
            args.next();
        } else {
            flags.push(a.to_string());
        }
    }
    flags
}

/// serve as the unit runs it: an unprivileged user holding only the unit's capabilities, with
/// `flags`.
fn serve_with_caps(caps: &[String], flags: &[String]) -> Server {
    let caps = caps.join(",");
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        &format!("--inh-caps={caps}"),
        &format!("--ambient-caps={caps}"),
        WQTRACE,
        "serve",
        "--listen",
        "127.0.0.1:0",
        "-c",
        "wqunit",
    ]);
    cmd.args(flags);
    Server::spawn(cmd)
}

fn status_of(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|t| std::fs::read_to_string(t.unwrap().path().join("status")).unwrap())
        .collect()
}

/// The unit's capability set is enough: serve attaches, counts, knows its BPF cost, and then
/// holds no capability at all (every thread) with no_new_privs set. Without CAP_SYS_ADMIN
/// everything still works except the cost, which is then unknown (no series), not 0.
#[test]
fn the_units_capabilities_suffice_and_are_given_up() {
    let _g = kernel_lock();
    // The binary must be reachable by uid 65534 (test binaries live under root's checkout).
    let caps = unit_caps();
    assert_eq!(
        caps,
        ["+bpf", "+perfmon", "+sys_admin", "+syslog"],
        "the unit's capabilities changed: update docs and this test"
    );
    let flags = unit_serve_flags();
    assert_eq!(
        flags,
        ["--cost"],
        "the unit's options changed: update docs and this test"
    );
    let s = serve_with_caps(&caps, &flags);
    for st in status_of(s.pid()) {
        for k in ["CapEff:", "CapPrm:", "CapAmb:", "CapInh:"] {
            let v = st.lines().find_map(|l| l.strip_prefix(k)).unwrap().trim();
            assert_eq!(v, "0000000000000000", "{k} in\n{st}");
        }
        assert!(st.contains("NoNewPrivs:\t1"), "{st}");
        assert!(st.contains("Uid:\t65534\t65534\t65534\t65534"), "{st}");
    }
    pipe_ping("wqunit", 20);
    let m = scrape_once_counted(&s, 40);
    assert!(m.lines().any(|l| l == "wqtrace_bpf_stats_enabled 1"), "{m}");
    assert!(
        m.contains("wqtrace_bpf_run_seconds_total{program=\"sys_enter\"}"),
        "{m}"
    );
    assert_eq!(s.terminate().0.code(), Some(0));

    let without: Vec<String> = caps.into_iter().filter(|c| c != "+sys_admin").collect();
    let s = serve_with_caps(&without, &flags);
    pipe_ping("wqunit", 5);
    let m = scrape_once_counted(&s, 10);
    assert!(m.lines().any(|l| l == "wqtrace_bpf_stats_enabled 0"), "{m}");
    assert!(!m.contains("wqtrace_bpf_run_seconds_total{"), "{m}");
    assert_eq!(s.terminate().0.code(), Some(0));
}

/// serve without `--cost` leaves the kernel's run counting off (it would add two clock reads
/// to every run of every BPF program on the machine): its programs run uncounted, and its
/// cost metrics say unknown, not 0.
#[test]
fn serve_counts_program_runs_only_with_cost() {
    let _g = kernel_lock();
    assert_eq!(
        read_sysctl("bpf_stats_enabled"),
        "0",
        "statistics already on"
    );
    let s = serve_with_caps(&unit_caps(), &[]);
    pipe_ping("wqunit", 20);
    let m = scrape_once_counted(&s, 40);
    assert!(m.lines().any(|l| l == "wqtrace_bpf_stats_enabled 0"), "{m}");
    assert!(!m.contains("wqtrace_bpf_run_seconds_total{"), "{m}");
    assert!(m.contains("process_cpu_seconds_total"), "{m}");
    let progs = bpf_programs();
    let ours: Vec<&Value> = progs.iter().filter(|p| p["uid"] == 65534).collect();
    assert!(ours.len() >= 5, "serve's programs: {progs:?}");
    for p in ours {
        assert_eq!(p["run_cnt"].as_u64().unwrap_or(0), 0, "counted: {p}");
    }
    assert_eq!(s.terminate().0.code(), Some(0));
}

/// Scrapes until serve has counted `ring_ops` ring operations (20 s at most); the scrape.
fn scrape_once_counted(s: &Server, ring_ops: u32) -> String {
    let want = format!("wqtrace_events_processed_total{{kind=\"ring_op\"}} {ring_ops}");
    let t0 = Instant::now();
    loop {
        let m = s.metrics();
        if m.lines().any(|l| l == want) {
            return m;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no {want}:\n{m}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A busy port (another program's, or a second serve on the default one) is one clear line
/// and exit 1, before any probe is loaded; the first serve keeps serving.
#[test]
fn a_busy_port_is_one_line_and_the_first_serve_keeps_serving() {
    let _g = kernel_lock();
    let first = Server::start(&[]);
    let out = Command::new(WQTRACE)
        .args(["serve", "--listen", &first.addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end(),
        format!(
            "wqtrace: cannot listen on {}: Address already in use (os error 98)",
            first.addr
        ),
        "one line"
    );
    assert_eq!(first.get("/healthz", None).0, 200);
    assert_eq!(first.terminate().0.code(), Some(0));
}

/// Scrapes keep coming while serve stops: each gets a whole answer (200, or 503 "detaching"
/// from /healthz) or a refused connection once the listener is gone; serve exits 0, and no
/// counter it served goes down or is missing in a later scrape.
#[test]
fn scrapes_while_the_probes_detach() {
    let _g = kernel_lock();
    let s = Server::start(&["-c", "wqdetach"]);
    pipe_ping("wqdetach", 30);
    let addr = s.addr.clone();
    let scraper = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            let Ok(mut c) = std::net::TcpStream::connect(&addr) else {
                break;
            };
            use std::io::{Read, Write};
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let path = if seen.len() % 2 == 0 {
                "/healthz"
            } else {
                "/metrics"
            };
            let mut resp = String::new();
            if write!(
                c,
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .is_ok()
            {
                let _ = c.read_to_string(&mut resp);
            }
            let code = resp
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0u16);
            seen.push((code, resp));
        }
        seen
    });
    std::thread::sleep(Duration::from_millis(500));
    let (st, _) = s.terminate();
    assert_eq!(st.code(), Some(0));
    let seen = scraper.join().unwrap();
    assert!(!seen.is_empty());
    let mut last_ops = 0.0;
    for (code, resp) in &seen {
        match code {
            200 if resp.contains("wqtrace_build_info") => {
                let ops = resp
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("wqtrace_events_processed_total{kind=\"ring_op\"} ")
                    })
                    .map(|v| v.parse::<f64>().unwrap())
                    .unwrap_or_else(|| panic!("ring_op series missing:\n{resp}"));
                assert!(ops >= last_ops, "a counter went down: {last_ops} → {ops}");
                last_ops = ops;
            }
            200 => assert!(resp.ends_with("ok\n"), "{resp}"),
            503 => assert!(resp.contains("detaching"), "{resp}"),
            // The listener closed between connect and request.
            0 => assert!(resp.is_empty(), "{resp}"),
            _ => panic!("unexpected answer while stopping: {resp}"),
        }
    }
    assert_eq!(last_ops, 60.0, "30 writes and 30 reads");
}

/// `doctor --measure`: attach, measure this machine's pipe traffic, detach. The kernel counts
/// program runs while it measures, and stops once it exits (bpftop's rule): a session that
/// cannot turn the statistics on (no CAP_SYS_ADMIN) then finds its programs' counters at 0.
/// (The `kernel.bpf_stats_enabled` sysctl shows only its own setting, not BPF_ENABLE_STATS.)
#[test]
fn doctor_measures_the_cost_of_tracing() {
    let _g = kernel_lock();
    assert_eq!(
        read_sysctl("bpf_stats_enabled"),
        "0",
        "statistics already on"
    );
    let mut c = Command::new(WQTRACE)
        .args(["doctor", "--json", "--measure", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Traffic until it is done (the doctor part before the measurement takes a second).
    while c.try_wait().unwrap().is_none() {
        pipe_ping("wqmeasure", 500);
    }
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = &v["measure"];
    assert!(m["seconds"].as_f64().unwrap() >= 2.9, "{m}");
    assert!(m["events"].as_u64().unwrap() >= 1000, "{m}");
    assert_eq!(m["lost"], 0, "{m}");
    let bpf = &m["bpf"];
    let runs = bpf["runs"].as_u64().unwrap();
    let ns = bpf["run_time_ns"].as_u64().unwrap();
    assert!(runs >= m["events"].as_u64().unwrap(), "{m}");
    assert!(ns > 0, "{m}");
    let per_event = bpf["ns_per_event"].as_f64().unwrap();
    assert!((per_event - ns as f64 / m["events"].as_f64().unwrap()).abs() < 1.0);
    let progs = bpf["programs"].as_array().unwrap();
    let sum: u64 = progs.iter().map(|p| p["runs"].as_u64().unwrap()).sum();
    assert_eq!(sum, runs, "{m}");
    assert!(
        progs
            .iter()
            .any(|p| p["name"] == "sys_enter" && p["runs"].as_u64().unwrap() > 0)
    );
    assert!(m["rss_bytes"].as_u64().unwrap() > 1 << 20);
    assert!(m["self_cpu_ns"].as_u64().unwrap() > 0);

    // Off again: a session without CAP_SYS_ADMIN sees its programs run uncounted.
    let without: Vec<String> = unit_caps()
        .into_iter()
        .filter(|c| c != "+sys_admin")
        .collect();
    let s = serve_with_caps(&without, &["--cost".to_string()]);
    pipe_ping("wqunit", 200);
    std::thread::sleep(Duration::from_millis(300));
    let progs = bpf_programs();
    let ours: Vec<&Value> = progs
        .iter()
        // Loaded by uid 65534: this serve's (bpftool here does not list holders' pids).
        .filter(|p| p["uid"] == 65534)
        .collect();
    assert!(ours.len() >= 5, "serve's programs: {progs:?}");
    for p in ours {
        assert_eq!(p["run_cnt"].as_u64().unwrap_or(0), 0, "counted: {p}");
    }
    assert_eq!(s.terminate().0.code(), Some(0));
}

/// `record` shows no cost, so it leaves the kernel's run counting off: counting would add two
/// clock reads to every run of every BPF program on the machine. Its programs run (the file
/// holds the traffic) uncounted.
#[test]
fn record_leaves_the_bpf_statistics_off() {
    let _g = kernel_lock();
    assert_eq!(
        read_sysctl("bpf_stats_enabled"),
        "0",
        "statistics already on"
    );
    let dir = common::Scratch::new("ops-record-stats");
    let file = dir.join("r.wqt");
    let mut rec = common::recording::start_recording(&file, &["-c", "wqnostats"]);
    pipe_ping("wqnostats", 200);
    std::thread::sleep(Duration::from_millis(300));
    let progs = bpf_programs();
    let ours: Vec<&Value> = progs
        .iter()
        .filter(|p| p["name"] == "sys_enter" || p["name"] == "sys_exit")
        .collect();
    assert!(ours.len() >= 2, "record's programs: {progs:?}");
    for p in ours {
        assert_eq!(p["run_cnt"].as_u64().unwrap_or(0), 0, "counted: {p}");
    }
    unsafe { libc::kill(rec.id() as i32, libc::SIGINT) };
    assert!(rec.wait().unwrap().success());
    let jsonl = common::recording::export_jsonl(&file, &[]);
    let ops = common::json_lines(&jsonl)
        .iter()
        .filter(|e| e["kind"] == "ring_op")
        .count();
    assert_eq!(ops, 400, "200 writes and 200 reads recorded");
}
