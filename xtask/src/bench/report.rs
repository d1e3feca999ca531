//! The results as a text table and as docs/benchmarks.md.

use std::fmt::Write as _;

use serde_json::Value;

fn f(v: &Value, digits: usize) -> String {
    v.as_f64().map_or("–".into(), |x| format!("{x:.digits$}"))
}

fn big(v: &Value) -> String {
    v.as_f64().map_or("–".into(), |x| {
        if x >= 1e6 {
            format!("{:.2} M", x / 1e6)
        } else if x >= 1e4 {
            format!("{:.1} k", x / 1e3)
        } else {
            format!("{x:.0}")
        }
    })
}

fn part_title(name: &str) -> &'static str {
    if name == "vm" {
        "VM (QEMU TCG, 6.12 watch_queue kernel: fentry hooks, notification pipes)"
    } else {
        "Host (tracepoint path: tp_btf sys_enter/sys_exit, sched_switch, contention_begin/end, kfree)"
    }
}

/// Markdown table of one part.
fn part_table(p: &Value) -> String {
    let mut s = String::from(
        "| workload | configuration | ops/s (median) | slowdown vs none | events/s | lost (median / max) | tracer CPU % | tracer peak RSS | bytes/event on disk |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in p["results"].as_array().into_iter().flatten() {
        let m = &r["median"];
        let lost = if m["lost"].is_null() {
            "–".into()
        } else {
            format!("{} / {}", f(&m["lost"], 0), m["lost_max"])
        };
        let rss = m["peak_rss_kib"]
            .as_f64()
            .map_or("–".into(), |k| format!("{:.1} MiB", k / 1024.0));
        let _ = writeln!(
            s,
            "| {} | {} | {} {} | {}× | {} | {} | {} | {} | {} |",
            r["workload"].as_str().unwrap_or(""),
            r["config"].as_str().unwrap_or(""),
            big(&m["ops_per_sec"]),
            r["unit"].as_str().unwrap_or("").trim_end_matches("/s"),
            f(&m["slowdown"], 2),
            big(&m["events_per_sec"]),
            lost,
            f(&m["cpu_pct"], 1),
            rss,
            f(&m["bytes_per_event"], 1),
        );
    }
    s
}

/// Plain-text summary for the terminal.
pub fn table(v: &Value) -> String {
    let mut s = String::new();
    for (name, p) in v["parts"].as_object().into_iter().flatten() {
        let _ = writeln!(s, "\n{}\n", part_title(name));
        s.push_str(&part_table(p));
    }
    s
}

/// The result of (workload, configuration) in part `p`.
fn result<'a>(p: &'a Value, w: &str, c: &str) -> Option<&'a Value> {
    p["results"]
        .as_array()?
        .iter()
        .find(|r| r["workload"] == w && r["config"] == c)
}

fn get<'a>(p: &'a Value, w: &str, c: &str) -> Option<&'a Value> {
    result(p, w, c).map(|r| &r["median"])
}

/// The workloads of part `p`, in the order its results list them.
fn workloads(p: &Value) -> Vec<&str> {
    p["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["workload"].as_str())
        .fold(vec![], |mut a, w| {
            if !a.contains(&w) {
                a.push(w);
            }
            a
        })
}

/// BPF program run time per configuration, from the separate counting run.
fn bpf_table(p: &Value) -> Option<String> {
    let mut s = String::from(
        "| workload | configuration | ops/s in this run | BPF program runs/s | ns per run | BPF CPU % (of one CPU) |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    let mut any = false;
    for r in p["results"].as_array().into_iter().flatten() {
        let b = &r["bpf_stats_run"];
        if b.is_null() {
            continue;
        }
        any = true;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            r["workload"].as_str().unwrap_or(""),
            r["config"].as_str().unwrap_or(""),
            big(&b["ops_per_sec"]),
            big(&b["bpf_runs_per_sec"]),
            f(&b["bpf_ns_per_run"], 0),
            f(&b["bpf_cpu_pct"], 1),
        );
    }
    any.then_some(s)
}

/// The per-program figures of a counting run (none in results made before they existed).
fn programs(run: &Value) -> &[Value] {
    run["bpf_programs"].as_array().map_or(&[], Vec::as_slice)
}

/// The configurations whose programs are ours, in the per-program table.
const OUR_PROGRAMS: [&str; 4] = [
    "empty-bpf",
    "wqtrace-record",
    "wqtrace-tui",
    "wqtrace-serve",
];

/// Each program's share of the cost, from the same counting run: per workload, a row per
/// program (those with at least 1 % of some configuration's BPF time), and per configuration
/// its ns per run × runs per workload op, whose product is what the program costs each op.
fn bpf_programs_table(p: &Value) -> Option<String> {
    let mut s = format!(
        "| workload | program | {} |\n|---|---|{}\n",
        OUR_PROGRAMS.join(" | "),
        "---:|".repeat(OUR_PROGRAMS.len())
    );
    let mut any = false;
    for w in workloads(p) {
        let runs: Vec<Option<&Value>> = OUR_PROGRAMS
            .iter()
            .map(|c| result(p, w, c).map(|r| &r["bpf_stats_run"]))
            .collect();
        let mut names: Vec<&str> = vec![];
        for b in runs.iter().flatten() {
            let total = b["bpf_cpu_pct"].as_f64().unwrap_or(0.0);
            for x in programs(b) {
                let (Some(n), Some(c)) = (x["name"].as_str(), x["cpu_pct"].as_f64()) else {
                    continue;
                };
                if c >= total / 100.0 && !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        for n in names {
            any = true;
            let cells: Vec<String> = runs
                .iter()
                .map(|b| {
                    let Some(b) = b else { return "–".into() };
                    let ops = b["ops_per_sec"].as_f64().filter(|&o| o > 0.0);
                    let x = programs(b).iter().find(|x| x["name"] == n);
                    match (x, ops) {
                        (Some(x), Some(ops)) => format!(
                            "{} ns × {:.2}",
                            f(&x["ns_per_run"], 0),
                            x["runs_per_sec"].as_f64().unwrap_or(0.0) / ops
                        ),
                        _ => "–".into(),
                    }
                })
                .collect();
            let _ = writeln!(s, "| {w} | {n} | {} |", cells.join(" | "));
        }
    }
    any.then_some(s)
}

/// Why a workload gets no verdict at all: the empty programs made it faster, so there is no
/// floor to compare with (seen when idle vCPUs halted, and when the notify storm timed its
/// process start-up).
fn no_floor(p: &Value, w: &str) -> Option<String> {
    let empty = get(p, w, "empty-bpf")?["slowdown"].as_f64()?;
    (empty < 0.9).then(|| format!("the empty programs made it {:.2}× faster", 1.0 / empty))
}

/// ops/s of every run of (workload, configuration).
fn run_ops(p: &Value, w: &str, c: &str) -> Vec<f64> {
    p["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["workload"] == w && r["config"] == c)
        .flat_map(|r| r["runs"].as_array().into_iter().flatten())
        .filter_map(|x| x["ops_per_sec"].as_f64())
        .filter(|&x| x > 0.0)
        .collect()
}

/// Runs per configuration below which no interval is given.
const MIN_RUNS: usize = 3;

/// 90 % percentile-bootstrap interval of median(floor) ÷ median(traced): how many times the
/// floor's slowdown the traced configuration's is. The runs of one configuration spread by tens
/// of percent on this shared machine, minute to minute and run to run, so a ratio of two medians
/// alone says too little; resampling each configuration's runs shows how far the ratio moves
/// with them. Deterministic (fixed seed), so the same results give the same page.
fn floor_ratio_interval(floor: &[f64], traced: &[f64]) -> Option<(f64, f64)> {
    if floor.len() < MIN_RUNS || traced.len() < MIN_RUNS {
        return None;
    }
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: usize| {
        // xorshift64*: enough to pick resampling indices.
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    };
    let mut resample = |xs: &[f64]| {
        let r: Vec<f64> = (0..xs.len()).map(|_| xs[next(xs.len())]).collect();
        super::median(r).unwrap_or(f64::NAN)
    };
    let mut ratios: Vec<f64> = (0..2000)
        .map(|_| resample(floor) / resample(traced))
        .collect();
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    Some((at(0.05), at(0.95)))
}

/// The verdict on "at most `goal` × the floor", from the interval of the ratio.
fn floor_verdict(interval: Option<(f64, f64)>, goal: f64) -> String {
    match interval {
        None => format!("no verdict: fewer than {MIN_RUNS} runs per configuration"),
        Some((lo, hi)) if hi <= goal => format!("met (90 % interval {lo:.2}–{hi:.2}×)"),
        Some((lo, hi)) if lo > goal => format!("missed (90 % interval {lo:.2}–{hi:.2}×)"),
        Some((lo, hi)) => format!(
            "no verdict: the runs' spread puts it anywhere in {lo:.2}–{hi:.2}× (90 % interval)"
        ),
    }
}

/// The issue's targets against the numbers, one bullet each.
fn targets(v: &Value) -> String {
    let mut s = String::new();
    for (name, p) in v["parts"].as_object().into_iter().flatten() {
        for w in workloads(p) {
            let verdict = |ok: bool| if ok { "met" } else { "missed" };
            let sd = |c| get(p, w, c).and_then(|m| m["slowdown"].as_f64());
            let empty = sd("empty-bpf");
            let noise = no_floor(p, w);
            let floor_runs = run_ops(p, w, "empty-bpf");
            for (c, goal) in [
                ("wqtrace-record", 1.5),
                ("wqtrace-tui", 1.15),
                ("wqtrace-serve", 1.15),
            ] {
                if let (Some(x), Some(e)) = (sd(c), empty) {
                    let _ = writeln!(
                        s,
                        "- {name} {w}: {c} slowdown {x:.2}× = {:.2}× the empty-program floor's {e:.2}× (goal ≤ {goal}×) → **{}**",
                        x / e,
                        match &noise {
                            Some(why) => format!("no verdict: {why}"),
                            None => floor_verdict(
                                floor_ratio_interval(&floor_runs, &run_ops(p, w, c)),
                                goal
                            ),
                        }
                    );
                }
            }
            if let (Some(r), Some(n)) = (sd("wqtrace-record"), sd("wqtrace-record-nostacks")) {
                let _ = writeln!(
                    s,
                    "- {name} {w}: stacks on the rare events: record {r:.2}× with, {n:.2}× without ({:+.0} %)",
                    (r / n - 1.0) * 100.0,
                );
            }
            if let (Some(r), Some(b)) = (sd("wqtrace-record"), sd("bpftrace")) {
                let _ = writeln!(
                    s,
                    "- {name} {w}: for comparison, record overhead {:.0} %, bpftrace's {:.0} %",
                    (r - 1.0) * 100.0,
                    (b - 1.0) * 100.0,
                );
            }
            for c in ["wqtrace-record", "wqtrace-tui", "wqtrace-serve"] {
                if let Some(m) = get(p, w, c) {
                    if let Some(l) = m["lost_max"].as_u64() {
                        let _ = writeln!(
                            s,
                            "- {name} {w}: {c} lost events (max over runs) {l} → **{}**",
                            verdict(l == 0)
                        );
                    }
                    if let Some(k) = m["peak_rss_kib"].as_f64() {
                        let mib = k / 1024.0;
                        let _ = writeln!(
                            s,
                            "- {name} {w}: {c} peak RSS {mib:.1} MiB (goal ≤ 64 MiB) → **{}**",
                            verdict(mib <= 64.0)
                        );
                    }
                }
            }
            if let Some(b) = get(p, w, "wqtrace-record").and_then(|m| m["bytes_per_event"].as_f64())
            {
                let _ = writeln!(
                    s,
                    "- {name} {w}: {b:.1} bytes/event on disk (goal ≤ 12) → **{}**",
                    verdict(b <= 12.0)
                );
            }
        }
    }
    s
}

/// Each sink's cost per event in wqtrace's own process, on the host (`wqtrace/benches/sinks.rs`).
fn sinks_table(v: &Value) -> Option<String> {
    let ns = v.get("ns_per_event")?;
    let mut s = format!(
        "## Per event in wqtrace's own process (host)\n\n\
         Each sink's work on one event, apart from the kernel and the rings, over {} synthetic\n\
         notification-pipe events (`recording::fixtures::busy_stream`: posts, reads, losses, waits\n\
         and contention on 4 pipes), median of {} runs (`cargo bench -p wqtrace --bench sinks`).\n\
         For the events a sink streams (all of them for `record`; for `tui` and `serve`, those\n\
         not counted in the kernel, such as everything on notification pipes), the tracer's CPU\n\
         above is about this per event plus draining the rings. Under TCG the guest runs the same\n\
         code several times slower.\n\n\
         | sink | what runs per event | ns per event |\n|---|---|---:|\n",
        big(&v["events"]),
        v["reps"],
    );
    for (key, name, what) in [
        ("serve", "serve", "`Metrics::apply_batch` (batches of 4096)"),
        (
            "tui_model",
            "tui",
            "`Model::apply` (the frames drawn are not included)",
        ),
        ("record", "record", "`Writer::push` and zstd, into memory"),
    ] {
        let _ = writeln!(s, "| {name} | {what} | {} |", f(&ns[key], 1));
    }
    let _ = writeln!(
        s,
        "\n`record` wrote {} bytes per event of this stream (random, so less compressible than a\n\
         real one).\n",
        f(&v["record_bytes_per_event"], 1)
    );
    Some(s)
}

pub fn markdown(v: &Value) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Benchmarks\n\n\
         <!-- Generated by `cargo xtask bench` (xtask/src/bench/); do not edit by hand. -->\n\n\
         What tracing costs the traced programs, and what it costs in CPU and memory itself\n\
         (GitHub issues #8 and #13). Raw numbers, every run: [`benchmarks.json`](benchmarks.json).\n\n\
         - Run: {} → {} (UTC){}\n\
         - Command: `cargo xtask {}`; wqtrace binary `{}` built from commit {}\n\
         - {} repetitions per (workload, configuration), interleaved (the configuration order\n  \
           rotates per repetition); medians shown. Ping-pong runs last {} s each.\n",
        v["started_utc"].as_str().unwrap_or(""),
        v["finished_utc"].as_str().unwrap_or(""),
        if v["quick"] == true {
            " — **quick run** (1 repetition, short runs): not for comparison"
        } else {
            ""
        },
        v["command"].as_str().unwrap_or(""),
        v["wqtrace_binary"].as_str().unwrap_or(""),
        v["commit"].as_str().unwrap_or("(not recorded)"),
        v["reps"],
        v["pingpong_secs"],
    );
    for (name, p) in v["parts"].as_object().into_iter().flatten() {
        let m = &p["machine"];
        let _ = writeln!(
            s,
            "## {}\n\n\
             Machine: {} — kernel {}, {} CPUs ({}), {} memory; {}, {}. Load average \
             (1/5/15 min) at the start {}, at the end {} (other engineers compile on the same\n\
             2-core machine: numbers move with that). Idle: {}.{}\n\n{}",
            part_title(name),
            m["where"].as_str().unwrap_or(""),
            m["kernel"].as_str().unwrap_or(""),
            m["cpus"].as_str().unwrap_or(""),
            m["cpu"].as_str().unwrap_or("").trim(),
            m["mem"].as_str().unwrap_or(""),
            m["bpftrace"].as_str().unwrap_or(""),
            m["tmux"].as_str().unwrap_or(""),
            m["loadavg_start"].as_str().unwrap_or(""),
            m["loadavg_end"].as_str().unwrap_or(""),
            m["idle"].as_str().unwrap_or("not recorded"),
            if name == "vm" && v["vm_boots"].as_u64().is_some_and(|n| n > 1) {
                " The first guest oopsed while kernel text was patched (vm/README.md): these \
                 results are all from a second boot."
            } else {
                ""
            },
            part_table(p),
        );
        if let Some(f) = m["storm_failures"].as_array().filter(|f| !f.is_empty()) {
            let _ = writeln!(
                s,
                "{} notify-storm run(s) came out not ok (posts lost as `notes full` in a queue \
                 never more than 250 of 256 full: the kernel leaked notes, a race between the \
                 poster and the reader, see docs/architecture.md) and were run again; the tables \
                 hold the runs that came out ok:\n",
                f.len()
            );
            for x in f {
                let _ = writeln!(
                    s,
                    "- under {}: {}",
                    x["config"].as_str().unwrap_or("?"),
                    x["error"].as_str().unwrap_or("?")
                );
            }
            s.push('\n');
        }
        if let Some(t) = bpf_table(p) {
            let _ = writeln!(
                s,
                "BPF program run time, charged to the traced tasks (one more run per configuration\n\
                 with `kernel.bpf_stats_enabled = 1`, restored after; counting itself adds two clock\n\
                 reads per program run, so these runs are not used for the slowdown above; they are\n\
                 what `tui --cost` and `serve --cost` cost):\n\n{t}"
            );
        }
        if let Some(t) = bpf_programs_table(p) {
            let _ = writeln!(
                s,
                "Per program, in the same runs: ns per run × runs per op of the workload (round\n\
                 trip, bogo op, notification), whose product is what the program costs each op\n\
                 (programs under 1 % of every configuration's BPF time left out):\n\n{t}"
            );
        }
    }
    if let Some(t) = sinks_table(&v["sinks"]) {
        s.push_str(&t);
    }
    let _ = writeln!(
        s,
        "## Against the targets\n\n\
         Goals of issue #13 (reported, not asserted): `wqtrace record` slowdown at most 1.5× the\n\
         empty-program floor's, `wqtrace tui` and `wqtrace serve` at most 1.15×; zero lost events; at most 12 bytes\n\
         per event on disk; peak RSS at most 64 MiB. Runs of one configuration spread by tens of\n\
         percent here, so each slowdown goal gets a 90 % bootstrap interval of (floor's median ops/s\n\
         ÷ this configuration's), resampling the runs of both: **met** when the whole interval is\n\
         within the goal, **missed** when the whole interval is above it, otherwise no verdict.\n\n{}",
        targets(v)
    );
    s.push_str(METHOD);
    s
}

const METHOD: &str = r#"
## What is measured

- **Workloads.** `pingpong-64B` / `pingpong-4KiB`: two processes and two pipes, a message of
  that size written by one, read and written back by the other; ops/s are round trips/s (each
  round trip is 2 writes + 2 reads, so 4 ring operations and ~4 ring-op events). The ping-pong is
  built into xtask (`xtask bench --pingpong SIZE --secs S`). `pingpong-64B-1cpu`: the same with
  both processes on one CPU (`--one-cpu`: the first CPU of xtask's affinity mask; the tracer
  runs wherever the scheduler puts it). Across the two CPUs a round trip is two cross-CPU
  wake-ups, whose cost depends on where the hypervisor runs the two vCPUs at the time: the
  untraced round trips/s move from run to run by more than tracing costs, and the free
  ping-pong's intervals seldom reach a verdict. On one CPU every message is a context switch
  there instead: its runs still move with the rest of the machine's load, but several times
  less (every run is in the JSON), and what is left is the cost of the programs on each
  syscall and switch. `notify-storm` (VM only):
  `wqtrace workload storm --count 250 --duration S`: one process posts bursts of 250
  KEYCTL_UPDATEs on a watched key into a notification pipe of 256 notes, a reader thread blocked
  in read() drains it, and each burst waits until the reader has read the last; ops/s are
  notifications read ÷ the storm's own time (process start-up excluded). Bursts, because a storm
  that does not wait overflows the queue under TCG (the writer outruns the reader). Until
  2026-12-04 this workload started one process per burst of 250 and timed the lot: exec'ing the
  12 MB binary from the guest's 9p workspace (cache=none) took longer than the burst, and
  faster still while a tracer process of the same binary kept its pages cached, so the
  "tracing" configurations came out 3× faster than `none`. A storm that comes out not ok
  (posts lost) is run again, up to 3 tries, and listed under its part's table; under `record`
  its recording is kept as `target/bench/failed-notify-storm-CONFIG-TIME.wqt` (the list names
  it), for `wqtrace report` to say which limit the kernel hit.
- **Idle CPUs poll, they do not halt** (the "Idle:" line of each machine). Both machines are
  virtual: a halted CPU wakes up late, by an amount that depends on the rest of the host, and
  the ping-pong blocks on every message. With halting idle it measured wake-ups (several
  times fewer round trips, host and guest alike), and a busy tracer could make it *faster* by
  keeping a CPU awake. The host part holds `/dev/cpu_dma_latency = 0` (PM QoS: cpuidle keeps
  to its POLL state), the guest boots with `idle=poll` (it has no cpuidle driver). The traced
  programs never run like this in production; the point is to compare configurations, not to
  predict a workload's absolute speed.
- **Configurations**, all in the same boot:
  - `none`: no tracing.
  - `empty-bpf`: the floor of the attach mechanism — `wqtrace record --empty-programs`: the
    same programs attached to the same hooks by the same plan (tp_btf on the host, fentry/fexit
    in the VM), each returning before its first statement (a `.rodata` flag the verifier folds:
    5 instructions per program), so no event is produced.
  - `wqtrace-record`: `wqtrace record -q -o /tmp/wqtrace-bench/x.wqt` (tmpfs), stopped with SIGINT;
    events and lost from its summary line, bytes/event = file size / events. Stacks on the rare
    events, as by default.
  - `wqtrace-record-nostacks`: the same with `--stacks none`; against `wqtrace-record`, what
    taking stacks costs (a user stack walk at the end of each wait of at least 1 ms inside a
    traced read/write, `--stack-wait`; a kernel and a user walk on each contention, rejection
    and lost post).
  - `wqtrace-tui`: `tmux new-session -d -x 120 -y 40 'exec wqtrace tui'`, quit with
    `tmux send-keys q`; events and lost read from the TUI's header (total events at the
    workload's start and end).
  - `wqtrace-serve`: `wqtrace serve --listen 127.0.0.1:0`, nobody scraping, stopped with
    SIGINT; events and lost from its last line (events streamed + those counted in the kernel:
    ring ops, waits and contention on ordinary pipes, which serve counts instead of streaming).
  - `bpftrace`: [`bench/wqtrace-host.bt`](../bench/wqtrace-host.bt) (+
    [`bench/wqtrace-vm.bt`](../bench/wqtrace-vm.bt) in the VM): the same hooks with the same
    filters, printing pid, tid, comm, fd, ret and off-CPU time of each
    read/write/close/splice/tee/vmsplice on a pipe (a pipe fd found through `curtask->files`,
    either side for splice), contention on a lock inside that syscall's pipe, and in the VM the
    same kernel functions wqtrace hooks there: each `__post_watch_notification` (entry and
    return: type, subtype, info, the rd_wait hold and whether `__wake_up_locked_sync_key` saw it
    land), `remove_watch_from_object`, `get_pipe_info` refusing a pipe for splice (a line per
    refusing call; wqtrace keeps one per syscall), `pipe_wait_readable/_writable` and
    `free_pipe_info`. Output to a file on tmpfs; events = lines printed.
- **Per configuration**: ops/s (median) and slowdown = ops/s without tracing ÷ ops/s with it;
  events/s = events delivered during the run ÷ the workload's wall time (events from other
  processes on the machine count too: wqtrace records every pipe); lost events; the tracer's CPU %
  of one core from `/proc/PID/stat` utime+stime over the workload; peak RSS (`VmHWM`) at the
  end of the workload (the 16 MiB BPF ring buffer included, mapped once; the kernel's double
  mapping of it, which wqtrace no longer uses, counted it twice). Then one more run of each
  tracing configuration with `kernel.bpf_stats_enabled = 1` (restored after): program runs/s,
  ns per run and their CPU time, summed from the fdinfo of every BPF program the tracer holds
  (wqtrace and bpftrace alike); not used for the slowdown, since counting adds two clock reads
  per program run.
- Debian 12's bpftrace (0.17): on the host only tracepoints work (no kprobes in the kernel,
  `kfunc:` refused), so the host comparison is tracepoint against tracepoint; in the VM bpftrace
  also uses `kfunc:`/`kretfunc:`.

## Reproduce

```sh
cargo xtask setup                 # qemu, bpftrace, tmux, … (once)
cargo xtask bench                 # full: host + VM, 5 repetitions (~30 min on 2 cores);
                                  # writes target/bench/results.json, docs/benchmarks.{md,json}
cargo xtask bench --host-only     # or --vm-only; --reps N, --secs S, --wqtrace PATH
cargo xtask bench --quick         # 1 repetition, 1 s runs, host only (a smoke test, < 1 min)
cargo xtask bench --pair OLD      # BPF ns/run of an older wqtrace binary against this build,
                                  # both attached at once to `stress-ng --pipe 1` (--pair-load),
                                  # --reps pairs (even: each build attaches first in half);
                                  # new/old, the attach order's effect cancelled, is what to quote
```

Run it as root on a quiet machine (`uptime`): the harness pins nothing but the `-1cpu`
ping-pong, and with two cores the tracer, the workload and anything else compete for them.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_gives_a_verdict_only_when_the_runs_allow_one() {
        let floor = [100.0, 104.0, 98.0, 101.0, 99.0];
        // Clearly within 1.5×: 1.2× the floor, steady.
        let cheap = [83.0, 84.0, 82.0, 83.5, 82.5];
        let (lo, hi) = floor_ratio_interval(&floor, &cheap).unwrap();
        assert!(lo > 1.1 && hi < 1.3, "{lo} {hi}");
        assert!(floor_verdict(Some((lo, hi)), 1.5).starts_with("met"));
        // Clearly above: 2×.
        let dear = [50.0, 51.0, 49.0, 50.5, 49.5];
        let i = floor_ratio_interval(&floor, &dear);
        assert!(floor_verdict(i, 1.5).starts_with("missed"), "{i:?}");
        // Median 1.4× but runs spread from 0.7× to 2×: no verdict either way.
        let noisy = [140.0, 50.0, 71.0, 75.0, 68.0];
        let i = floor_ratio_interval(&floor, &noisy);
        assert!(floor_verdict(i, 1.5).starts_with("no verdict"), "{i:?}");
        assert!(floor_ratio_interval(&floor, &cheap[..2]).is_none());
    }

    #[test]
    fn each_programs_cost_per_op_is_tabled() {
        let stats = |cfg: &str, progs: Value| {
            serde_json::json!({
                "workload": "pingpong-64B", "config": cfg,
                "bpf_stats_run": {
                    "ops_per_sec": 100000.0, "bpf_cpu_pct": 20.0, "bpf_programs": progs,
                },
            })
        };
        let prog = |name: &str, ns: f64, runs: f64| {
            serde_json::json!({
                "name": name, "ns_per_run": ns, "runs_per_sec": runs,
                "cpu_pct": ns * runs / 1e9 * 100.0,
            })
        };
        let p = serde_json::json!({ "results": [
            stats("wqtrace-record", serde_json::json!([
                prog("sys_exit", 1100.0, 200000.0),
                prog("sys_enter", 600.0, 200000.0),
                // 0.01 % of the record run's 20 %: left out.
                prog("thread_exit", 1000.0, 20.0),
            ])),
            stats("wqtrace-serve", serde_json::json!([prog("sys_enter", 500.0, 200000.0)])),
            // No per-program figures (an older result): dashes.
            serde_json::json!({ "workload": "pingpong-64B", "config": "wqtrace-tui",
                                "bpf_stats_run": { "ops_per_sec": 1.0 } }),
        ] });
        let t = bpf_programs_table(&p).unwrap();
        assert!(
            t.contains("| pingpong-64B | sys_exit | – | 1100 ns × 2.00 | – | – |"),
            "{t}"
        );
        assert!(
            t.contains("| pingpong-64B | sys_enter | – | 600 ns × 2.00 | – | 500 ns × 2.00 |"),
            "{t}"
        );
        assert!(!t.contains("thread_exit"), "{t}");
        assert!(bpf_programs_table(&serde_json::json!({ "results": [] })).is_none());
    }

    #[test]
    fn the_page_names_every_storm_run_again() {
        let part = |failures: Value| {
            serde_json::json!({ "parts": { "vm": {
                "machine": { "where": "guest", "storm_failures": failures },
                "results": [],
            } } })
        };
        let page = markdown(&part(serde_json::json!([{
            "workload": "notify-storm",
            "config": "wqtrace-tui",
            "error": "workload storm: not ok: posts 155750, read 155747, loss records 2",
        }])));
        assert!(
            page.contains("1 notify-storm run(s) came out not ok"),
            "{page}"
        );
        assert!(
            page.contains("- under wqtrace-tui: workload storm: not ok: posts 155750"),
            "{page}"
        );
        assert!(!markdown(&part(serde_json::json!([]))).contains("came out not ok"));
    }
}
