//! `cargo xtask bench --pair OLD`: the BPF run time of two wqtrace builds, side by side. Both
//! attach at once (`doctor --measure`) to the same load, so both see the same syscalls on the
//! same busy machine; which one attaches first alternates per repetition (the first attached
//! runs first on every hook). Per program: median ns per run of each, and the median of the
//! per-repetition ratios (NEW / OLD). A program neither build changed shows the noise left
//! (a few percent).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;

const MEASURE_SECS: &str = "4";
const PROGRAMS: &[&str] = &[
    "sys_enter",
    "sys_exit",
    "sched_switch",
    "contention_begin",
    "contention_end",
];

/// Per program: ns per run in one measurement.
type Costs = BTreeMap<String, f64>;

pub fn run(old: &Path, new: &Path, reps: usize, load: &str) -> anyhow::Result<()> {
    let load_argv: Vec<&str> = load.split_whitespace().collect();
    let Some((prog, args)) = load_argv.split_first() else {
        bail!("--pair-load is empty");
    };
    let mut load = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| {
            format!("spawning the load `{prog}` (cargo xtask setup installs stress-ng)")
        })?;
    let result = measure(old, new, reps);
    let _ = load.kill();
    let _ = load.wait();
    let (olds, news) = result?;
    println!("BPF ns per run, {reps} paired measurements of {MEASURE_SECS} s (medians)");
    println!(
        "{:18} {:>10} {:>10} {:>10}",
        "program", "old", "new", "new/old"
    );
    for p in PROGRAMS {
        let get = |v: &[Costs]| {
            v.iter()
                .filter_map(|c| c.get(*p).copied())
                .collect::<Vec<_>>()
        };
        let (o, n) = (get(&olds), get(&news));
        let ratios: Vec<f64> = o.iter().zip(&n).map(|(o, n)| n / o).collect();
        if o.is_empty() || n.is_empty() {
            println!("{p:18} {:>10} {:>10} {:>10}", "–", "–", "–");
            continue;
        }
        println!(
            "{p:18} {:>10.0} {:>10.0} {:>10.3}",
            median(o),
            median(n),
            median(ratios)
        );
    }
    Ok(())
}

fn measure(old: &Path, new: &Path, reps: usize) -> anyhow::Result<(Vec<Costs>, Vec<Costs>)> {
    let (mut olds, mut news) = (vec![], vec![]);
    for rep in 0..reps {
        let old_first = rep % 2 == 0;
        let order = if old_first { [old, new] } else { [new, old] };
        let mut running: Vec<Child> = vec![];
        for wq in order {
            running.push(
                Command::new(wq)
                    .args(["doctor", "--measure", MEASURE_SECS, "--json"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .with_context(|| format!("spawning {}", wq.display()))?,
            );
            // Attached one after the other, so the attach order is the one chosen.
            std::thread::sleep(Duration::from_millis(300));
        }
        let mut got = vec![];
        for (wq, child) in order.iter().zip(running) {
            let out = child.wait_with_output()?;
            if !out.status.success() {
                bail!("{} doctor --measure failed ({})", wq.display(), out.status);
            }
            got.push(costs(&serde_json::from_slice(&out.stdout)?)?);
        }
        let (first, second) = (got.remove(0), got.remove(0));
        let (o, n) = if old_first {
            (first, second)
        } else {
            (second, first)
        };
        eprintln!("pair {}/{reps}: old {o:.0?} new {n:.0?}", rep + 1);
        olds.push(o);
        news.push(n);
    }
    Ok((olds, news))
}

/// ns per run of each program that ran, from `doctor --measure --json`.
fn costs(v: &Value) -> anyhow::Result<Costs> {
    let progs = v["measure"]["bpf"]["programs"]
        .as_array()
        .context("no BPF program statistics (kernel.bpf_stats_enabled unavailable?)")?;
    Ok(progs
        .iter()
        .filter_map(|p| {
            let runs = p["runs"].as_f64().filter(|&r| r > 0.0)?;
            let ns = p["run_time_ns"].as_f64()?;
            Some((p["name"].as_str()?.to_string(), ns / runs))
        })
        .collect())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_per_run_and_skip_programs_that_never_ran() {
        let v = serde_json::json!({"measure": {"bpf": {"programs": [
            {"name": "sys_enter", "runs": 4, "run_time_ns": 1000},
            {"name": "thread_exit", "runs": 0, "run_time_ns": 0},
        ]}}});
        let c = costs(&v).unwrap();
        assert_eq!(c.get("sys_enter"), Some(&250.0));
        assert!(!c.contains_key("thread_exit"));
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), 2.5);
    }
}
