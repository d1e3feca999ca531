//! `wqtrace doctor --measure SECS`: attach as a live session would, let this machine's own pipe
//! traffic run through the probes for SECS, and say what tracing it cost: BPF run time per
//! event and per second (time the traced tasks lose), and wqtrace's own CPU and memory.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};

use crate::{
    cost::{BpfStats, ProgramStat},
    probe::opts::ProbeOpts,
    source::{EventSource, live::LiveSource},
    stop,
};

pub struct Measurement {
    pub secs: f64,
    /// Events the programs submitted during the window, and events lost.
    pub events: u64,
    pub lost: u64,
    /// Per program over the window (None: the kernel does not count runs; `why`).
    pub programs: Option<Vec<ProgramStat>>,
    pub why_unknown: Option<String>,
    pub self_cpu_ns: u64,
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
}

/// Attaches, measures for `secs` (or until Ctrl-C), detaches.
pub fn run(opts: &ProbeOpts, secs: f64) -> Result<Measurement> {
    stop::install();
    let mut src = LiveSource::open(&ProbeOpts {
        count_runs: true,
        ..opts.clone()
    })?;
    let why_unknown = match src.bpf_stats() {
        BpfStats::Unavailable(why) => Some(why.clone()),
        _ => None,
    };
    let (sub0, lost0) = (src.submitted(), src.lost());
    let before = src.cost().expect("a live source knows its cost");
    let deadline = before.at + Duration::from_secs_f64(secs);
    let mut batch = Vec::with_capacity(4096);
    while !stop::requested() && Instant::now() < deadline {
        batch.clear();
        let left = deadline.saturating_duration_since(Instant::now());
        src.next_batch(&mut batch, left.min(Duration::from_millis(100)))?;
    }
    let after = src.cost().expect("a live source knows its cost");
    let (events, lost) = (
        src.submitted().saturating_sub(sub0),
        src.lost().saturating_sub(lost0),
    );
    batch.clear();
    src.finish(&mut batch)?;
    drop(src);
    Ok(Measurement {
        secs: after.at.duration_since(before.at).as_secs_f64(),
        events,
        lost,
        programs: (before.programs.as_deref()).and_then(|b| after.programs_since(b)),
        why_unknown,
        self_cpu_ns: after.process.cpu_ns.saturating_sub(before.process.cpu_ns),
        rss_bytes: after.process.rss_bytes,
        peak_rss_bytes: after.process.peak_rss_bytes,
    })
}

impl Measurement {
    fn bpf_totals(&self) -> Option<(u64, u64)> {
        self.programs.as_deref().map(crate::cost::totals)
    }

    fn per(&self, v: f64, n: u64) -> Option<f64> {
        (n > 0).then(|| v / n as f64)
    }

    pub fn print_text(&self) {
        let secs = self.secs.max(1e-9);
        println!();
        println!(
            "measured           {:.1} s of this machine's pipe traffic",
            self.secs
        );
        println!(
            "  events           {} ({:.0}/s), {} lost",
            self.events,
            self.events as f64 / secs,
            self.lost
        );
        match self.bpf_totals() {
            Some((runs, ns)) => {
                let per_run = self
                    .per(ns as f64, runs)
                    .map_or("-".into(), |v| format!("{v:.0} ns"));
                let per_event = self
                    .per(ns as f64, self.events)
                    .map_or("-".into(), |v| format!("{v:.0} ns"));
                println!(
                    "  BPF programs     {runs} runs ({:.0}/s), {:.3} ms run time: {:.3} % of one CPU; {per_run} per run, {per_event} per event",
                    runs as f64 / secs,
                    ns as f64 / 1e6,
                    ns as f64 / 1e9 / secs * 100.0,
                );
            }
            None => println!(
                "  BPF programs     cost unknown: {}",
                self.why_unknown.as_deref().unwrap_or("no statistics")
            ),
        }
        println!(
            "  wqtrace          {:.3} ms CPU: {:.3} % of one CPU; RSS {:.1} MiB (peak {:.1} MiB)",
            self.self_cpu_ns as f64 / 1e6,
            self.self_cpu_ns as f64 / 1e9 / secs * 100.0,
            mib(self.rss_bytes),
            mib(self.peak_rss_bytes)
        );
        if let Some(ps) = &self.programs {
            println!(
                "  {:<36} {:>12} {:>9} {:>12}",
                "program", "runs", "ns/run", "run time ms"
            );
            for p in ps.iter().filter(|p| p.runs > 0) {
                println!(
                    "  {:<36} {:>12} {:>9.0} {:>12.3}",
                    p.name,
                    p.runs,
                    p.run_ns as f64 / p.runs as f64,
                    p.run_ns as f64 / 1e6
                );
            }
        }
    }

    pub fn json(&self) -> Value {
        let secs = self.secs.max(1e-9);
        let bpf = self.bpf_totals().map(|(runs, ns)| {
            json!({
                "runs": runs,
                "run_time_ns": ns,
                "cpu_fraction": ns as f64 / 1e9 / secs,
                "ns_per_run": self.per(ns as f64, runs),
                "ns_per_event": self.per(ns as f64, self.events),
                "programs": self.programs.as_ref().map(|ps| ps.iter().map(|p| json!({
                    "name": p.name, "runs": p.runs, "run_time_ns": p.run_ns,
                })).collect::<Vec<_>>()),
            })
        });
        json!({
            "seconds": self.secs,
            "events": self.events,
            "events_per_second": self.events as f64 / secs,
            "lost": self.lost,
            "bpf": bpf,
            "bpf_unknown_why": self.why_unknown,
            "self_cpu_ns": self.self_cpu_ns,
            "self_cpu_fraction": self.self_cpu_ns as f64 / 1e9 / secs,
            "rss_bytes": self.rss_bytes,
            "peak_rss_bytes": self.peak_rss_bytes,
        })
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}
