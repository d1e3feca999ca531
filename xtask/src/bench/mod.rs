//! `cargo xtask bench`: tracing overhead of wqtrace against no tracing, empty BPF programs on
//! the same hooks, and an equivalent bpftrace script (GitHub issue #8). See docs/benchmarks.md.
//!
//! The host part runs here; the VM part runs this same binary inside the test VM
//! (`xtask bench --inner vm`), whose JSON is merged with the host's into
//! `target/bench/results.json`. A full run (no `--quick`, host and VM) also writes
//! `docs/benchmarks.md` and `docs/benchmarks.json`.

mod idle;
mod measure;
mod pair;
mod pingpong;
mod process;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::{util, vm};
use measure::{CONFIGS, Cpus, Env, Workload};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One repetition, short runs, host only unless --vm-only (for `cargo xtask test`).
    #[arg(long)]
    pub quick: bool,
    /// Only the host part.
    #[arg(long, conflicts_with = "vm_only")]
    pub host_only: bool,
    /// Only the VM part (notification pipes, fentry hooks).
    #[arg(long)]
    pub vm_only: bool,
    /// Repetitions per (workload, configuration); default 5, 1 with --quick.
    #[arg(long)]
    pub reps: Option<usize>,
    /// Seconds per ping-pong run; default 3, 1 with --quick.
    #[arg(long)]
    pub secs: Option<f64>,
    /// The wqtrace binary; default: target/release/wqtrace (built), or target/debug with --quick.
    #[arg(long)]
    pub wqtrace: Option<PathBuf>,
    /// Kernel series of the VM part.
    #[arg(long, default_value = "6.12")]
    pub kernel: String,
    /// Instead of the benchmark: compare the BPF run time of this older wqtrace binary with
    /// --wqtrace (default: the current build), both attached at once to the same load.
    #[arg(long, value_name = "OLD_WQTRACE")]
    pub pair: Option<PathBuf>,
    /// The load for --pair (a command line).
    #[arg(long, default_value = "stress-ng --pipe 1 --timeout 3600")]
    pub pair_load: String,
    /// Internal: run this machine's part ("host" or "vm") and write its JSON to --out.
    #[arg(long, hide = true)]
    pub inner: Option<String>,
    #[arg(long, hide = true)]
    pub out: Option<PathBuf>,
    /// Internal: the ping-pong workload with this message size; prints JSON.
    #[arg(long, hide = true)]
    pub pingpong: Option<usize>,
    /// Internal: with --pingpong, both processes on one CPU.
    #[arg(long, hide = true, requires = "pingpong")]
    pub one_cpu: bool,
}

// Long on purpose: the benchmark plan (parts, reps, interleaving) read in order.
pub fn run(a: Args) -> anyhow::Result<i32> {
    if let Some(size) = a.pingpong {
        let (trips, secs) = pingpong::run(size, a.secs.unwrap_or(3.0), a.one_cpu)?;
        println!("{}", json!({"round_trips": trips, "secs": secs}));
        return Ok(0);
    }
    let reps = a.reps.unwrap_or(if a.quick { 1 } else { 5 }).max(1);
    let secs = a.secs.unwrap_or(if a.quick { 1.0 } else { 3.0 });
    if let Some(part) = &a.inner {
        let out = a.out.clone().context("--inner needs --out")?;
        let wq = a.wqtrace.clone().context("--inner needs --wqtrace")?;
        let v = run_part(part == "vm", &wq, reps, secs, !a.quick)?;
        std::fs::write(&out, serde_json::to_string_pretty(&v)? + "\n")?;
        return Ok(0);
    }
    if !util::is_root() {
        bail!("xtask bench loads BPF programs: run it as root");
    }
    let release = !a.quick;
    let wq = match &a.wqtrace {
        Some(p) => p.clone(),
        None => {
            let mut c = util::cargo();
            c.args(["build", "-p", "wqtrace"]);
            if release {
                c.arg("--release");
            }
            util::run(&mut c)?;
            util::target_dir()
                .join(if release { "release" } else { "debug" })
                .join("wqtrace")
        }
    };
    let wq = std::fs::canonicalize(&wq).with_context(|| wq.display().to_string())?;
    if let Some(old) = &a.pair {
        pair::run(old, &wq, reps, &a.pair_load)?;
        return Ok(0);
    }
    let dir = util::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let started = now_utc();
    // The code measured: HEAD, and whether the tree had changes on top of it.
    let commit = {
        let head = sh("git -C \"$(git rev-parse --show-toplevel)\" rev-parse --short=12 HEAD");
        let dirty = !sh("git status --porcelain --untracked-files=no").is_empty();
        format!(
            "{head}{}",
            if dirty { " + uncommitted changes" } else { "" }
        )
    };
    let mut parts = serde_json::Map::new();
    let mut sinks = None;
    if !a.vm_only {
        sinks = Some(sinks_cost(a.quick)?);
        eprintln!("bench: host part ({reps} reps, {secs} s runs)");
        parts.insert("host".into(), run_part(false, &wq, reps, secs, !a.quick)?);
    }
    // --quick alone is host only (for `cargo xtask test`); --quick --vm-only runs the VM part.
    let vm_part = a.vm_only || (!a.host_only && !a.quick);
    let mut vm_boots = None;
    if vm_part {
        eprintln!("bench: VM part ({} kernel)", a.kernel);
        let out = dir.join("vm.json");
        let _ = std::fs::remove_file(&out);
        let me = std::env::current_exe()?;
        let mut cmd = vec![
            me.to_string_lossy().into_owned(),
            "bench".into(),
            "--inner".into(),
            "vm".into(),
            "--out".into(),
            out.to_string_lossy().into_owned(),
            "--wqtrace".into(),
            wq.to_string_lossy().into_owned(),
            "--reps".into(),
            reps.to_string(),
            "--secs".into(),
            secs.to_string(),
        ];
        if a.quick {
            cmd.push("--quick".into());
        }
        let opts = vm::RunOpts {
            series: a.kernel.clone(),
            timeout: Some(Duration::from_secs(3600)),
            cmd,
            env: vec![],
            // The guest idles by polling: see `idle::Shallow` (TCG makes a halted vCPU's
            // wake-up slow and erratic, which the ping-pong would measure instead of tracing).
            kernel_args: vec!["idle=poll".into()],
        };
        // A guest that died in the kernel's own text patching (once as bpftrace attached)
        // takes the whole VM part again rather than the host part with it; the results say so.
        let (rc, boots) = vm::run_once_more_after_patching_oops(&opts, "bench")?;
        vm_boots = Some(boots);
        if rc != 0 {
            bail!("the VM part failed (exit {rc}); see target/vm/last-boot.log");
        }
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(&out)?).context("the VM part's JSON")?;
        parts.insert("vm".into(), v);
    }
    let full = !a.quick && parts.len() == 2;
    let results = json!({
        "issue": 8,
        "started_utc": started,
        "finished_utc": now_utc(),
        "quick": a.quick,
        "reps": reps,
        "pingpong_secs": secs,
        "wqtrace_binary": wq.strip_prefix(util::root()).unwrap_or(&wq).to_string_lossy(),
        "command": std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        "commit": commit,
        "parts": parts,
        "sinks": sinks,
        "vm_boots": vm_boots,
    });
    check_complete(&results)?;
    let text = serde_json::to_string_pretty(&results)? + "\n";
    std::fs::write(dir.join("results.json"), &text)?;
    let md = report::markdown(&results);
    std::fs::write(dir.join("benchmarks.md"), &md)?;
    eprintln!("bench: wrote {}", dir.join("results.json").display());
    print!("{}", report::table(&results));
    if full {
        let docs = util::root().join("docs");
        std::fs::write(docs.join("benchmarks.json"), &text)?;
        std::fs::write(docs.join("benchmarks.md"), &md)?;
        eprintln!("bench: wrote docs/benchmarks.md and docs/benchmarks.json");
    }
    Ok(0)
}

/// Each sink's own cost per event (`wqtrace/benches/sinks.rs`), as it prints it. `quick`: a
/// test run of it (a short stream, one repetition), not a measurement.
fn sinks_cost(quick: bool) -> anyhow::Result<Value> {
    eprintln!("bench: sinks, per event in wqtrace's own process");
    let mut c = util::cargo();
    c.args(["bench", "-p", "wqtrace", "--bench", "sinks"]);
    if quick {
        // The target then runs its short stream.
        c.args(["--", "--quick"]);
    }
    let o = c.output().context("running cargo bench --bench sinks")?;
    if !o.status.success() {
        bail!(
            "cargo bench --bench sinks failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("no JSON line from the sinks benchmark: {out}"))?;
    serde_json::from_str(line).context("the sinks benchmark's JSON")
}

/// Every (workload, configuration) of every part produced ops/s > 0, and every tracing
/// configuration produced a CPU figure; wqtrace ones also events.
fn check_complete(v: &Value) -> anyhow::Result<()> {
    let mut missing = vec![];
    for (part, p) in v["parts"].as_object().into_iter().flatten() {
        for r in p["results"].as_array().into_iter().flatten() {
            let m = &r["median"];
            let name = format!("{part}/{}/{}", r["workload"], r["config"]);
            if m["ops_per_sec"].as_f64().is_none_or(|x| x <= 0.0) {
                missing.push(format!("{name}: ops/s"));
            }
            if r["config"] != "none" && m["cpu_pct"].is_null() {
                missing.push(format!("{name}: cpu %"));
            }
            if ["wqtrace-record", "wqtrace-tui", "wqtrace-serve"]
                .contains(&r["config"].as_str().unwrap_or(""))
                && m["events"].is_null()
            {
                missing.push(format!("{name}: events"));
            }
        }
    }
    if !missing.is_empty() {
        bail!("bench: missing numbers: {}", missing.join(", "));
    }
    Ok(())
}

/// A number of a result for the progress lines ("-" when there is none).
fn num(v: &Value, digits: usize) -> String {
    v.as_f64().map_or("-".into(), |x| format!("{x:.digits$}"))
}

fn now_utc() -> String {
    util::output_ok(std::process::Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn sh(cmd: &str) -> String {
    util::output_ok(std::process::Command::new("sh").args(["-c", cmd]))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn machine(in_vm: bool) -> Value {
    json!({
        "where": if in_vm { "QEMU TCG guest (-smp 2 -m 3G), our watch_queue kernel" } else { "host" },
        "kernel": sh("uname -r"),
        "cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"),
        "cpus": sh("nproc"),
        "mem": sh("grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2-"),
        "bpftrace": sh("bpftrace --version"),
        "tmux": sh("tmux -V"),
        "loadavg_start": sh("cut -d' ' -f1-3 /proc/loadavg"),
    })
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

/// Storm runs that lost posts, tried again per measurement before the bench gives up.
const STORM_TRIES: usize = 3;

/// One measurement; a storm that lost posts (`measure::StormNotOk`: the queue leaked notes,
/// a kernel race `wqtrace report` shows as `notes leaked`, docs/architecture.md) is run again,
/// and the failure is kept for the page rather than taking the whole part down with it.
fn measure_again_if_storm_lost(
    env: &measure::Env,
    cfg: measure::Config,
    w: Workload,
    failures: &mut Vec<Value>,
) -> anyhow::Result<Value> {
    let mut tries = 0;
    loop {
        match measure::measure(env, cfg, w) {
            Err(e) if e.downcast_ref::<measure::StormNotOk>().is_some() => {
                tries += 1;
                eprint!("(not ok: run again) ");
                failures.push(json!({
                    "workload": w.name(),
                    "config": cfg.name(),
                    "error": format!("{e:#}"),
                }));
                if tries == STORM_TRIES {
                    return Err(e);
                }
            }
            r => return r,
        }
    }
}

/// A part's scratch directory (its recordings, tracer logs and bpftrace script), removed when
/// the part ends however it ends: every run used to leave it behind in /tmp, CI's included. A
/// failed run's files are kept under `Env::keep` instead.
struct Scratch(PathBuf);

impl Scratch {
    fn make(path: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(path)?;
        Ok(Self(PathBuf::from(path)))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// All (workload, configuration) pairs of one machine, interleaved, `reps` times; then, with
/// `stats_pass`, one more run of each tracing configuration with BPF run-time counting on.
// Long on purpose: one part's configurations interleaved rep by rep, then its summary.
fn run_part(
    in_vm: bool,
    wq: &std::path::Path,
    reps: usize,
    secs: f64,
    stats_pass: bool,
) -> anyhow::Result<Value> {
    let scratch = Scratch::make("/tmp/wqtrace-bench")?;
    let env = Env {
        wqtrace: wq.to_path_buf(),
        xtask: std::env::current_exe()?,
        secs,
        in_vm,
        scratch: scratch.0.clone(),
        keep: util::target_dir().join("bench"),
    };
    let mut m = machine(in_vm);
    let shallow = idle::Shallow::hold();
    m["idle"] = shallow.how.clone().into();
    let workloads: Vec<Workload> = if in_vm {
        vec![
            Workload::PingPong(64, Cpus::Any),
            Workload::PingPong(64, Cpus::One),
            Workload::Notify(250),
        ]
    } else {
        vec![
            Workload::PingPong(64, Cpus::Any),
            Workload::PingPong(64, Cpus::One),
            Workload::PingPong(4096, Cpus::Any),
            Workload::StressNg("pipe"),
            Workload::StressNg("splice"),
            Workload::StressNg("tee"),
        ]
    };
    let mut runs: Vec<Vec<Vec<Value>>> = vec![vec![vec![]; CONFIGS.len()]; workloads.len()];
    let mut storm_failures: Vec<Value> = vec![];
    for rep in 0..reps {
        for (wi, w) in workloads.iter().enumerate() {
            // Rotate the configuration order per repetition, so no configuration always runs
            // first (or right after another one's teardown).
            for k in 0..CONFIGS.len() {
                let ci = (k + rep) % CONFIGS.len();
                let cfg = CONFIGS[ci];
                eprint!(
                    "bench: [{}] rep {}/{reps} {} / {} … ",
                    if in_vm { "vm" } else { "host" },
                    rep + 1,
                    w.name(),
                    cfg.name()
                );
                let r = measure_again_if_storm_lost(&env, cfg, *w, &mut storm_failures)
                    .with_context(|| format!("{} under {}", w.name(), cfg.name()))?;
                eprintln!(
                    "{:.0} {}, events/s {}, lost {}, cpu {}%",
                    r["ops_per_sec"].as_f64().unwrap_or(0.0),
                    w.unit(),
                    num(&r["events_per_sec"], 0),
                    r["lost"],
                    num(&r["cpu_pct"], 1),
                );
                runs[wi][ci].push(r);
            }
        }
    }
    let mut stats: Vec<Vec<Option<Value>>> = vec![vec![None; CONFIGS.len()]; workloads.len()];
    if stats_pass {
        let _on = measure::BpfStats::enable()?;
        for (wi, w) in workloads.iter().enumerate() {
            for (ci, &cfg) in CONFIGS.iter().enumerate().skip(1) {
                eprint!(
                    "bench: [{}] BPF run time: {} / {} … ",
                    if in_vm { "vm" } else { "host" },
                    w.name(),
                    cfg.name()
                );
                let r = measure_again_if_storm_lost(&env, cfg, *w, &mut storm_failures)
                    .with_context(|| format!("{} under {} (BPF stats)", w.name(), cfg.name()))?;
                eprintln!(
                    "{} runs/s, {} ns/run",
                    num(&r["bpf_runs_per_sec"], 0),
                    num(&r["bpf_ns_per_run"], 0),
                );
                stats[wi][ci] = Some(r);
            }
        }
    }
    let mut results = vec![];
    for (wi, w) in workloads.iter().enumerate() {
        let base = median(
            runs[wi][0]
                .iter()
                .filter_map(|r| r["ops_per_sec"].as_f64())
                .collect(),
        );
        for (ci, cfg) in CONFIGS.iter().enumerate() {
            let rs = &runs[wi][ci];
            let med = |k: &str| median(rs.iter().filter_map(|r| r[k].as_f64()).collect());
            let ops = med("ops_per_sec");
            let slowdown = match (base, ops) {
                (Some(b), Some(o)) if o > 0.0 => Some(b / o),
                _ => None,
            };
            results.push(json!({
                "workload": w.name(),
                "unit": w.unit(),
                "config": cfg.name(),
                "median": {
                    "ops_per_sec": ops,
                    "slowdown": slowdown,
                    "events": med("events"),
                    "events_per_sec": med("events_per_sec"),
                    "lost": med("lost"),
                    "lost_max": rs.iter().filter_map(|r| r["lost"].as_u64()).max(),
                    "cpu_pct": med("cpu_pct"),
                    "peak_rss_kib": med("peak_rss_kib"),
                    "bytes_per_event": med("bytes_per_event"),
                },
                "runs": rs,
                "bpf_stats_run": stats[wi][ci],
            }));
        }
    }
    m["loadavg_end"] = sh("cut -d' ' -f1-3 /proc/loadavg").into();
    m["storm_failures"] = storm_failures.into();
    Ok(json!({ "machine": m, "results": results }))
}
