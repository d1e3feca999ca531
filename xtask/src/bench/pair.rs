//! `cargo xtask bench --pair OLD`: the BPF run time of two wqtrace builds, side by side. Both
//! attach at once (`doctor --measure`) to the same load, so both see the same syscalls on the
//! same busy machine; which one attaches first alternates per repetition (the first attached
//! runs first on every hook).
//!
//! The order matters: the program that runs second on a hook finds the task's and the pipe's
//! cache lines warm: 12–20 % cheaper than the first on the host (sys_exit, 2026-12-07).
//! A median of the per-repetition ratios over both orders therefore lands in whichever order
//! had more repetitions: with 7, an unchanged program came out 0.88 or 1.13. So the repetitions
//! are made even, each order gets its own median ratio (NEW / OLD), and the estimate is their
//! geometric mean, in which the order's effect cancels. A program neither build changed shows
//! the noise left (a few percent).

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
    let reps = reps.max(2).next_multiple_of(2);
    let result = measure(old, new, reps);
    let _ = load.kill();
    let _ = load.wait();
    let pairs = result?;
    println!(
        "BPF ns per run, {reps} paired measurements of {MEASURE_SECS} s, each build attached \
         first in half of them (medians)"
    );
    println!(
        "{:18} {:>8} {:>8} {:>8} {:>12} {:>12}",
        "program", "old", "new", "new/old", "(old first)", "(new first)"
    );
    for p in PROGRAMS {
        match compare(&pairs, p) {
            Some(c) => println!(
                "{p:18} {:>8.0} {:>8.0} {:>8.3} {:>12.3} {:>12.3}",
                c.old, c.new, c.ratio, c.old_first, c.new_first
            ),
            None => println!("{p:18} {:>8} {:>8} {:>8}", "–", "–", "–"),
        }
    }
    Ok(())
}

/// One repetition: each build's cost per program, and which attached first.
struct Pair {
    old: Costs,
    new: Costs,
    old_first: bool,
}

/// One program's comparison over the repetitions.
#[derive(Debug)]
struct Compared {
    /// Median ns per run of each build.
    old: f64,
    new: f64,
    /// NEW / OLD with the attach order's effect cancelled: the geometric mean of the two
    /// orders' median ratios.
    ratio: f64,
    old_first: f64,
    new_first: f64,
}

/// `program` compared over `pairs`; None unless it ran in both builds with each attach order.
fn compare(pairs: &[Pair], program: &str) -> Option<Compared> {
    let mut all = (vec![], vec![]);
    let mut ratios = (vec![], vec![]);
    for p in pairs {
        let (Some(&o), Some(&n)) = (p.old.get(program), p.new.get(program)) else {
            continue;
        };
        all.0.push(o);
        all.1.push(n);
        if p.old_first {
            ratios.0.push(n / o);
        } else {
            ratios.1.push(n / o);
        }
    }
    if ratios.0.is_empty() || ratios.1.is_empty() {
        return None;
    }
    let (old_first, new_first) = (median(ratios.0), median(ratios.1));
    Some(Compared {
        old: median(all.0),
        new: median(all.1),
        ratio: (old_first * new_first).sqrt(),
        old_first,
        new_first,
    })
}

fn measure(old: &Path, new: &Path, reps: usize) -> anyhow::Result<Vec<Pair>> {
    let mut pairs = vec![];
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
        pairs.push(Pair {
            old: o,
            new: n,
            old_first,
        });
    }
    Ok(pairs)
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

    /// Two identical builds where the second attached runs 12 % cheaper: the ratio comes out
    /// 1, though one order has more repetitions (a median over both orders said 0.89).
    #[test]
    fn the_attach_orders_effect_cancels() {
        let pair = |old_first: bool| {
            let (first, second) = (112.0, 100.0);
            let (o, n) = if old_first {
                (first, second)
            } else {
                (second, first)
            };
            Pair {
                old: [("sys_exit".to_string(), o)].into(),
                new: [("sys_exit".to_string(), n)].into(),
                old_first,
            }
        };
        let pairs: Vec<Pair> = [true, false, true, false, true].map(pair).into();
        let c = compare(&pairs, "sys_exit").unwrap();
        assert!((c.ratio - 1.0).abs() < 1e-9, "{c:?}");
        assert!((c.old_first - 100.0 / 112.0).abs() < 1e-9, "{c:?}");
        assert!(compare(&pairs[..1], "sys_exit").is_none());
        assert!(compare(&pairs, "sched_switch").is_none());
    }
}
