//! One measurement: start a tracer configuration, run a workload, read the tracer's numbers.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::process::{
    BPF_STATS, alive, bpf_deltas, bpf_prog_names, bpf_progs, bpf_totals, clk_tck, cpu_ticks, kill,
    vm_hwm_kib, wait_timeout,
};
use crate::util;

pub use super::process::BpfStats;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Config {
    /// No tracing.
    None,
    /// `wqtrace record --empty-programs`: the same programs on the same hooks, each returning at
    /// once (the floor of the attach mechanism).
    Empty,
    /// `wqtrace record -o /tmp/…` (stacks on the rare events: the default).
    Record,
    /// The same with `--stacks none`: side by side with `Record`, what the stacks cost.
    RecordNoStacks,
    /// `wqtrace tui` in a 120x40 tmux session.
    Tui,
    /// `wqtrace serve` on a loopback port (no scrapes: what the probes and its loop cost).
    Serve,
    /// The equivalent bpftrace script printing the same fields.
    Bpftrace,
}

pub const CONFIGS: [Config; 7] = [
    Config::None,
    Config::Empty,
    Config::Record,
    Config::RecordNoStacks,
    Config::Tui,
    Config::Serve,
    Config::Bpftrace,
];

impl Config {
    pub fn name(self) -> &'static str {
        match self {
            Config::None => "none",
            Config::Empty => "empty-bpf",
            Config::Record => "wqtrace-record",
            Config::RecordNoStacks => "wqtrace-record-nostacks",
            Config::Tui => "wqtrace-tui",
            Config::Serve => "wqtrace-serve",
            Config::Bpftrace => "bpftrace",
        }
    }
}

/// Where the ping-pong's two processes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cpus {
    /// Wherever the scheduler puts them.
    Any,
    /// Both on one CPU: every message is a context switch on that CPU. Across two vCPUs the
    /// round trip also depends on where the hypervisor runs those vCPUs, which moves from run
    /// to run; on one that drops out (see the page's "What is measured").
    One,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Messages of this many bytes bounced between two processes.
    PingPong(usize, Cpus),
    /// `stress-ng --STRESSOR 1` (pipe, splice, tee): its bogo ops.
    StressNg(&'static str),
    /// Bursts of N key updates into a notification pipe with a reader (`wqtrace workload notify`).
    Notify(u32),
}

impl Workload {
    pub fn name(self) -> String {
        match self {
            Workload::PingPong(n, cpus) => {
                let size = match n {
                    4096 => "4KiB".into(),
                    n => format!("{n}B"),
                };
                let one = if cpus == Cpus::One { "-1cpu" } else { "" };
                format!("pingpong-{size}{one}")
            }
            Workload::StressNg(s) => format!("stress-ng-{s}"),
            Workload::Notify(_) => "notify-storm".into(),
        }
    }
    pub fn unit(self) -> &'static str {
        match self {
            Workload::PingPong(..) => "round trips/s",
            Workload::StressNg(_) => "bogo ops/s",
            Workload::Notify(_) => "notifications/s",
        }
    }
}

pub struct Env {
    pub wqtrace: PathBuf,
    pub xtask: PathBuf,
    pub secs: f64,
    pub in_vm: bool,
    pub scratch: PathBuf,
    /// Where the recording of a failed run is kept (the guest's scratch is a tmpfs).
    pub keep: PathBuf,
}

fn tmux(args: &[&str]) -> anyhow::Result<String> {
    let o = Command::new("tmux")
        .args(args)
        .output()
        .context("running tmux")?;
    if !o.status.success() {
        bail!(
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

const TMUX_SESSION: &str = "wqtrace-bench";

/// "282k", "1.2M", "365" as the TUI's header abbreviates counts.
fn parse_count(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mul) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1e3),
        'M' => (&s[..s.len() - 1], 1e6),
        'G' => (&s[..s.len() - 1], 1e9),
        _ => (s, 1.0),
    };
    num.trim()
        .parse::<f64>()
        .ok()
        .map(|x| (x * mul).round() as u64)
}

/// Header numbers of the TUI: (total events, lost). Counts above 9999 are abbreviated ("282k"),
/// so they have ~3 significant digits.
fn tui_counts() -> Option<(u64, u64)> {
    let screen = tmux(&["capture-pane", "-p", "-t", TMUX_SESSION]).ok()?;
    let head = screen.lines().next()?;
    let mut events = None;
    let mut lost = None;
    for part in head.split('│') {
        let p = part.trim();
        if let Some(v) = p.strip_prefix("lost ") {
            lost = parse_count(v);
        } else if let Some(v) = p.strip_suffix(" events") {
            events = parse_count(v);
        }
    }
    Some((events?, lost.unwrap_or(0)))
}

/// A running tracer.
struct Tracer {
    child: Option<Child>,
    pid: i32,
    log: PathBuf,
    rec: Option<PathBuf>,
}

fn bt_script(env: &Env, cfg: Config) -> anyhow::Result<PathBuf> {
    let dir = util::root().join("bench");
    let mut s =
        std::fs::read_to_string(dir.join("wqtrace-host.bt")).context("reading bench/*.bt")?;
    if env.in_vm {
        s.push('\n');
        s.push_str(&std::fs::read_to_string(dir.join("wqtrace-vm.bt"))?);
    }
    let p = env.scratch.join(format!("{}.bt", cfg.name()));
    std::fs::write(&p, s)?;
    Ok(p)
}

fn wait_for(
    what: &str,
    t: Duration,
    mut f: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let end = Instant::now() + t;
    while Instant::now() < end {
        if f()? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what}: not ready after {t:?}")
}

/// Spawns a tracer whose output goes to `log` and waits until `ready(log)` (or fails with the
/// log when it exits first).
fn spawn_ready(
    what: &str,
    mut cmd: Command,
    log: PathBuf,
    rec: Option<PathBuf>,
    timeout: Duration,
    ready: impl Fn(&str) -> bool,
) -> anyhow::Result<Tracer> {
    let mut child = cmd.spawn().with_context(|| format!("spawning {what}"))?;
    let pid = child.id() as i32;
    let r = wait_for(what, timeout, || {
        if let Some(st) = child.try_wait()? {
            bail!(
                "{what} exited ({st}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Ok(ready(&std::fs::read_to_string(&log)?))
    });
    let t = Tracer {
        child: Some(child),
        pid,
        log,
        rec,
    };
    match r {
        Ok(()) => Ok(t),
        Err(e) => {
            stop_kill(t);
            Err(e)
        }
    }
}

fn start(env: &Env, cfg: Config) -> anyhow::Result<Option<Tracer>> {
    let ready_timeout = Duration::from_secs(if env.in_vm { 180 } else { 60 });
    let log = env.scratch.join(format!("{}.log", cfg.name()));
    match cfg {
        Config::None => Ok(None),
        Config::Bpftrace => {
            let script = bt_script(env, cfg)?;
            let out = std::fs::File::create(&log)?;
            let mut cmd = Command::new("bpftrace");
            cmd.arg(&script)
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out);
            let ready = |log: &str| log.lines().any(|l| l == "READY");
            spawn_ready("bpftrace", cmd, log, None, ready_timeout, ready).map(Some)
        }
        Config::Record | Config::RecordNoStacks | Config::Empty => {
            let rec = env.scratch.join("x.wqt");
            let out = std::fs::File::create(&log)?;
            let mut cmd = Command::new(&env.wqtrace);
            cmd.args(["record", "-q", "--force", "-o"])
                .arg(&rec)
                .args((cfg == Config::Empty).then_some("--empty-programs"))
                .args(
                    (cfg == Config::RecordNoStacks)
                        .then_some(["--stacks", "none"])
                        .into_iter()
                        .flatten(),
                )
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(out);
            let ready = |log: &str| log.contains("recording to");
            spawn_ready("wqtrace record", cmd, log, Some(rec), ready_timeout, ready).map(Some)
        }
        Config::Serve => {
            let out = std::fs::File::create(&log)?;
            let mut cmd = Command::new(&env.wqtrace);
            cmd.args(["serve", "--listen", "127.0.0.1:0"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(out);
            let ready = |log: &str| log.contains("serving http://");
            spawn_ready("wqtrace serve", cmd, log, None, ready_timeout, ready).map(Some)
        }
        Config::Tui => {
            let _ = tmux(&["kill-session", "-t", TMUX_SESSION]);
            let cmd = format!(
                "exec {} tui 2>{}",
                util::shell_quote(&env.wqtrace.to_string_lossy()),
                util::shell_quote(&log.to_string_lossy())
            );
            tmux(&[
                "new-session",
                "-d",
                "-s",
                TMUX_SESSION,
                "-x",
                "120",
                "-y",
                "40",
                &cmd,
            ])?;
            let pid: i32 = tmux(&["list-panes", "-t", TMUX_SESSION, "-F", "#{pane_pid}"])?
                .trim()
                .parse()
                .context("tmux pane pid")?;
            let r = wait_for("wqtrace tui", ready_timeout, || {
                if !alive(pid) {
                    bail!(
                        "wqtrace tui exited: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                Ok(tui_counts().is_some())
            });
            let t = Tracer {
                child: None,
                pid,
                log,
                rec: None,
            };
            if let Err(e) = r {
                stop_kill(t);
                return Err(e);
            }
            Ok(Some(t))
        }
    }
}

/// Stops a spawned tracer the way a user does (SIGINT), so a recording is finished.
fn interrupt(cfg: Config, pid: i32, c: &mut Child) {
    kill(pid, libc::SIGINT);
    if !wait_timeout(c, Duration::from_secs(60)) {
        // Seen once with bpftrace's kfunc probes under TCG: detaching hangs. The workload's
        // numbers are in; take the tracer down and go on.
        eprint!("({} did not stop on SIGINT in 60 s: killed) ", cfg.name());
        kill(pid, libc::SIGKILL);
        let _ = c.wait();
    }
}

/// A workload that failed under `record`: the recording is finished and kept for `wqtrace
/// report`, since it alone can say what the kernel did (a storm that lost posts: `report` names
/// the notes the queue leaked; gone with the guest's tmpfs otherwise). Other tracers are just
/// taken down.
fn keep_failed(
    env: &Env,
    cfg: Config,
    w: Workload,
    tracer: Option<Tracer>,
    e: anyhow::Error,
) -> anyhow::Error {
    let Some(mut t) = tracer else { return e };
    let (Some(rec), Some(c)) = (t.rec.take(), t.child.as_mut()) else {
        stop_kill(t);
        return e;
    };
    interrupt(cfg, t.pid, c);
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let kept = env
        .keep
        .join(format!("failed-{}-{}-{stamp}.wqt", w.name(), cfg.name()));
    let copied = std::fs::create_dir_all(&env.keep).and_then(|()| std::fs::copy(&rec, &kept));
    let _ = std::fs::remove_file(&rec);
    match copied {
        Ok(_) => e.context(format!("recording kept: wqtrace report {}", kept.display())),
        Err(ce) => e.context(format!(
            "the recording could not be kept at {}: {ce}",
            kept.display()
        )),
    }
}

fn stop_kill(t: Tracer) {
    if let Some(mut c) = t.child {
        kill(t.pid, libc::SIGKILL);
        let _ = c.wait();
    } else {
        let _ = tmux(&["kill-session", "-t", TMUX_SESSION]);
    }
}

/// (bogo ops, real seconds) from stress-ng's `--metrics-brief` line
/// `stress-ng: metrc: [PID] STRESSOR BOGO-OPS REAL-TIME USR SYS OPS/S OPS/S`.
fn stress_ng_ops(out: &str, stressor: &str) -> Option<(u64, f64)> {
    out.lines().find_map(|l| {
        let rest = l.split_once("] ")?.1;
        let mut it = rest.split_whitespace();
        if it.next()? != stressor {
            return None;
        }
        let ops = it.next()?.parse().ok()?;
        let secs = it.next()?.parse().ok()?;
        Some((ops, secs))
    })
}

/// A storm that ran but lost posts in the kernel (see `mod.rs`: run again, and said so).
#[derive(Debug)]
pub struct StormNotOk(String);

impl std::fmt::Display for StormNotOk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StormNotOk {}

/// Runs the workload; returns (operations, seconds).
fn workload(env: &Env, w: Workload) -> anyhow::Result<(u64, f64)> {
    match w {
        Workload::PingPong(size, cpus) => {
            let o = Command::new(&env.xtask)
                .args(["bench", "--pingpong", &size.to_string(), "--secs"])
                .arg(env.secs.to_string())
                .args((cpus == Cpus::One).then_some("--one-cpu"))
                .stderr(Stdio::inherit())
                .output()
                .context("spawning the ping-pong")?;
            if !o.status.success() {
                bail!("ping-pong failed ({})", o.status);
            }
            let v: Value = serde_json::from_slice(&o.stdout).context("ping-pong output")?;
            Ok((
                v["round_trips"].as_u64().unwrap_or(0),
                v["secs"].as_f64().unwrap_or(0.0),
            ))
        }
        Workload::StressNg(stressor) => {
            let o = Command::new("stress-ng")
                .arg(format!("--{stressor}"))
                .args(["1", "--metrics-brief", "--timeout"])
                .arg(format!("{}s", env.secs.ceil().max(1.0)))
                .output()
                .context("spawning stress-ng (cargo xtask setup installs it)")?;
            if !o.status.success() {
                bail!("stress-ng --{stressor} failed ({})", o.status);
            }
            stress_ng_ops(&String::from_utf8_lossy(&o.stdout), stressor)
                .or_else(|| stress_ng_ops(&String::from_utf8_lossy(&o.stderr), stressor))
                .with_context(|| format!("no metrics line for {stressor} from stress-ng"))
        }
        Workload::Notify(count) => {
            // One process posting bursts of `count` (≤ the 256-note queue, so none is dropped)
            // for `secs` seconds, timed by itself: process start-up is not the storm.
            let o = Command::new(&env.wqtrace)
                .args(["workload", "storm", "--count"])
                .arg(count.to_string())
                .arg("--duration")
                .arg(env.secs.to_string())
                .stderr(Stdio::inherit())
                .output()
                .context("spawning wqtrace workload storm")?;
            let v: Value = serde_json::from_slice(&o.stdout).context("workload storm output")?;
            if v["ok"] != true {
                return Err(StormNotOk(format!(
                    "workload storm: not ok: posts {}, read {}, loss records {}, errors {}",
                    v["posts"], v["notifications_read"], v["loss_records"], v["errors"]
                ))
                .into());
            }
            let read = v["notifications_read"].as_u64().unwrap_or(0);
            let secs = v["elapsed_secs"].as_f64().unwrap_or(0.0);
            if read == 0 || secs <= 0.0 {
                bail!("workload storm: nothing read: {v}");
            }
            Ok((read, secs))
        }
    }
}

/// Events (streamed, plus those counted in the kernel) and lost ones, from serve's last line:
/// "wqtrace: stopped; N events[ streamed and M counted in the kernel (KIND K, …)], L lost".
fn serve_summary(log: &str) -> Option<(u64, u64)> {
    let line = log
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("wqtrace: stopped; "))?;
    let first = |s: &str| -> Option<u64> {
        s.split(|c: char| !c.is_ascii_digit())
            .find(|w| !w.is_empty())?
            .parse()
            .ok()
    };
    let (head, lost) = line.rsplit_once(", ")?;
    let streamed = first(head)?;
    let counted = match head.split_once(" and ") {
        Some((_, rest)) => first(rest)?,
        None => 0,
    };
    Some((streamed + counted, first(lost)?))
}

/// One run of `w` under `cfg`: the numbers, as JSON.
// Long on purpose: one measurement is a script: start the tracer, run the load, collect every figure.
pub fn measure(env: &Env, cfg: Config, w: Workload) -> anyhow::Result<Value> {
    let tracer = start(env, cfg)?;
    let tui0 = if cfg == Config::Tui {
        tui_counts()
    } else {
        None
    };
    let pid = tracer.as_ref().map(|t| t.pid);
    let cpu0 = pid.and_then(cpu_ticks);
    let counting = std::fs::read_to_string(BPF_STATS).is_ok_and(|v| v.trim() == "1");
    let bpf0 = pid.filter(|_| counting).and_then(bpf_progs);
    let t0 = Instant::now();
    let res = workload(env, w);
    let wall = t0.elapsed().as_secs_f64();
    let cpu1 = pid.and_then(cpu_ticks);
    let bpf1 = pid.filter(|_| counting).and_then(bpf_progs);
    // Program run time charged to the traced tasks (meaningful with BpfStats on), in all and
    // per program.
    let per_prog = match (bpf0, bpf1) {
        (Some(a), Some(b)) => Some(bpf_deltas(&a, &b)),
        _ => None,
    };
    let (bpf_ns, bpf_runs) = per_prog.as_deref().map(bpf_totals).unzip();
    let bpf_programs = per_prog.map(|ps| programs_json(&ps, wall));
    let hwm = pid.and_then(vm_hwm_kib);
    let tui1 = if cfg == Config::Tui {
        tui_counts()
    } else {
        None
    };
    let (ops, secs) = match res {
        Ok(r) => r,
        Err(e) => return Err(keep_failed(env, cfg, w, tracer, e)),
    };
    let cpu_pct = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some((b - a) as f64 / clk_tck() / wall * 100.0),
        _ => None,
    };
    let mut events: Option<u64> = None;
    let mut lost: Option<u64> = None;
    let mut bytes_per_event: Option<f64> = None;
    if let Some(t) = tracer {
        match cfg {
            Config::Tui => {
                let _ = tmux(&["send-keys", "-t", TMUX_SESSION, "q"]);
                let end = Instant::now() + Duration::from_secs(30);
                while alive(t.pid) && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if alive(t.pid) {
                    kill(t.pid, libc::SIGKILL);
                }
                let _ = tmux(&["kill-session", "-t", TMUX_SESSION]);
                if let (Some((e0, _)), Some((e1, l1))) = (tui0, tui1) {
                    events = Some(e1.saturating_sub(e0));
                    lost = Some(l1);
                }
            }
            _ => {
                let mut c = t.child.expect("spawned tracer");
                interrupt(cfg, t.pid, &mut c);
                let log = std::fs::read_to_string(&t.log).unwrap_or_default();
                if matches!(cfg, Config::Record | Config::RecordNoStacks | Config::Empty) {
                    // "wqtrace: recorded N events (L lost) to …"
                    let line = log
                        .lines()
                        .find(|l| l.starts_with("wqtrace: recorded "))
                        .with_context(|| format!("no summary from wqtrace record: {log}"))?;
                    let mut it = line["wqtrace: recorded ".len()..].split_whitespace();
                    let n: u64 = it.next().unwrap_or("").parse().context("summary events")?;
                    let l: u64 = it
                        .nth(1)
                        .unwrap_or("")
                        .trim_start_matches('(')
                        .parse()
                        .context("summary lost")?;
                    events = Some(n);
                    lost = Some(l);
                    if let Some(rec) = &t.rec {
                        let size = std::fs::metadata(rec).map_or(0, |m| m.len());
                        if n > 0 {
                            bytes_per_event = Some(size as f64 / n as f64);
                        }
                        let _ = std::fs::remove_file(rec);
                    }
                } else if cfg == Config::Serve {
                    let (n, l) = serve_summary(&log)
                        .with_context(|| format!("no summary from wqtrace serve: {log}"))?;
                    events = Some(n);
                    lost = Some(l);
                } else if cfg == Config::Bpftrace {
                    let mut n = 0u64;
                    let mut l = 0u64;
                    for line in log.lines() {
                        if line.starts_with(|c: char| c.is_ascii_digit()) {
                            n += 1;
                        } else if let Some(r) = line.strip_prefix("Lost ") {
                            l += r
                                .split_whitespace()
                                .next()
                                .and_then(|x| x.parse::<u64>().ok())
                                .unwrap_or(0);
                        }
                    }
                    events = Some(n);
                    lost = Some(l);
                }
                let _ = std::fs::remove_file(&t.log);
            }
        }
    }
    Ok(json!({
        "config": cfg.name(),
        "workload": w.name(),
        "ops": ops,
        "secs": secs,
        "ops_per_sec": if secs > 0.0 { ops as f64 / secs } else { 0.0 },
        "events": events,
        "events_per_sec": events.map(|e| e as f64 / wall),
        "lost": lost,
        "cpu_pct": cpu_pct,
        "peak_rss_kib": hwm,
        "bytes_per_event": bytes_per_event,
        "bpf_runs_per_sec": bpf_runs.map(|r| r as f64 / wall),
        "bpf_ns_per_run": match (bpf_ns, bpf_runs) {
            (Some(n), Some(r)) if r > 0 => Some(n as f64 / r as f64),
            _ => None,
        },
        "bpf_cpu_pct": bpf_ns.map(|n| n as f64 / 1e9 / wall * 100.0),
        "bpf_programs": bpf_programs,
    }))
}

/// Each program that ran, by name (its id where bpftool does not name it), dearest first.
fn programs_json(ps: &[super::process::ProgCounters], wall: f64) -> Value {
    let names = bpf_prog_names(&ps.iter().map(|p| p.id).collect::<Vec<_>>());
    let mut ps: Vec<_> = ps.iter().filter(|p| p.runs > 0).collect();
    ps.sort_by_key(|p| std::cmp::Reverse(p.run_ns));
    ps.iter()
        .map(|p| {
            json!({
                "name": names.get(&p.id).cloned().unwrap_or_else(|| format!("id {}", p.id)),
                "runs_per_sec": p.runs as f64 / wall,
                "ns_per_run": p.run_ns as f64 / p.runs as f64,
                "cpu_pct": p.run_ns as f64 / 1e9 / wall * 100.0,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn stress_ng_metrics_line() {
        let out = "stress-ng: metrc: [9505] stressor       bogo ops real time  usr time  sys time   bogo ops/s     bogo ops/s\n\
                   stress-ng: metrc: [9505] splice           120274      1.00      0.06      0.65    120265.60      167781.73\n";
        assert_eq!(super::stress_ng_ops(out, "splice"), Some((120274, 1.0)));
        assert_eq!(super::stress_ng_ops(out, "tee"), None);
    }

    #[test]
    fn serve_summary_counts_streamed_and_counted_events() {
        let log = "wqtrace: serving http://127.0.0.1:4242/metrics; Ctrl-C to stop\n\
                   wqtrace: stopped; 12 events streamed and 3408 counted in the kernel (ring_op 3400, pipe_wait 8), 1 lost\n";
        assert_eq!(super::serve_summary(log), Some((3420, 1)));
        assert_eq!(
            super::serve_summary("wqtrace: stopped; 7 events, 2 lost\n"),
            Some((7, 2))
        );
        assert_eq!(super::serve_summary("wqtrace: serving http://x\n"), None);
    }

    /// Results are keyed by workload name: each ping-pong must have its own, the one the
    /// page's "What is measured" describes.
    #[test]
    fn each_ping_pong_has_its_own_name() {
        use super::{Cpus, Workload};
        let names: Vec<String> = [
            Workload::PingPong(64, Cpus::Any),
            Workload::PingPong(64, Cpus::One),
            Workload::PingPong(4096, Cpus::Any),
            Workload::PingPong(512, Cpus::One),
        ]
        .iter()
        .map(|w| w.name())
        .collect();
        assert_eq!(
            names,
            [
                "pingpong-64B",
                "pingpong-64B-1cpu",
                "pingpong-4KiB",
                "pingpong-512B-1cpu"
            ]
        );
    }

    #[test]
    fn tui_counts() {
        assert_eq!(super::parse_count("365"), Some(365));
        assert_eq!(super::parse_count("282k"), Some(282_000));
        assert_eq!(super::parse_count("1.25M"), Some(1_250_000));
        assert_eq!(super::parse_count("x"), None);
    }
}
