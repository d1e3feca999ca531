//! `wqtrace trace`: one line (or JSON object) per event, like `perf trace`.

use std::{
    io::Write,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Result;
use wqtrace_common::Event;

use crate::{
    probe::opts::ProbeOpts,
    source::{EventSource, live::LiveSource},
    stacks::SharedStacks,
    stop,
};

mod format;

pub use format::{
    EventJson, cgroup_suffix, format_line, kind_name, to_json, write_json, write_stacks,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub probe: ProbeOpts,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many seconds.
    #[arg(short = 'd', long, value_name = "SECS", value_parser = crate::argvalue::secs)]
    pub duration: Option<f64>,
    /// Print the attach plan to stderr before tracing.
    #[arg(long)]
    pub show_plan: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    stop::install();
    let mut src = LiveSource::open(&args.probe)?;
    if args.show_plan {
        for h in &src.plan().hooks {
            eprintln!(
                "wqtrace: {:<18} {:<11} {}",
                h.hook.name(),
                h.method.name(),
                h.target
            );
        }
    }
    // Tell whoever started us (tests, scripts) that the probes are attached.
    eprintln!("wqtrace: tracing; Ctrl-C to stop");
    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut batch = Vec::with_capacity(4096);
    let mut n = 0u64;
    let realtime = src.meta().realtime_offset_ns;
    let names = Names {
        stacks: src.stacks().unwrap_or_default(),
        cgroups: src.cgroups().unwrap_or_default(),
    };
    loop {
        if stop::requested() || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        batch.clear();
        src.next_batch(&mut batch, Duration::from_millis(100))?;
        n += batch.len() as u64;
        if let Err(e) = write_batch(&mut out, &batch, args.json, realtime, &names) {
            return reader_gone_or(e);
        }
    }
    // What the kernel produced before the stop belongs to the output.
    batch.clear();
    src.finish(&mut batch)?;
    n += batch.len() as u64;
    if let Err(e) = write_batch(&mut out, &batch, args.json, realtime, &names) {
        return reader_gone_or(e);
    }
    let lost = src.lost();
    super::print_unattributed_sleeps(src.sleeps_unattributed());
    eprintln!("wqtrace: {n} events, {lost} lost");
    Ok(ExitCode::SUCCESS)
}

/// A reader that went away (`| head`: EPIPE) ends the trace quietly, like perf; any other
/// write error (a full disk, /dev/full) is the user's to see.
fn reader_gone_or(e: std::io::Error) -> Result<ExitCode> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return Ok(ExitCode::SUCCESS);
    }
    Err(anyhow::Error::new(e).context("writing the trace to standard output"))
}

fn write_batch(
    w: &mut impl Write,
    batch: &[Event],
    json: bool,
    realtime: i64,
    names: &Names,
) -> std::io::Result<()> {
    let t = names.stacks.read().unwrap_or_else(|p| p.into_inner());
    let cg = names.cgroups.read().unwrap_or_else(|p| p.into_inner());
    for e in batch {
        if json {
            write_json(w, e, realtime, Some(&t), Some(&cg))?;
        } else {
            writeln!(w, "{}{}", format_line(e), cgroup_suffix(e, &cg))?;
            write_stacks(w, e, &t)?;
        }
    }
    w.flush()
}

/// What the events' references name: their stacks and cgroups.
struct Names {
    stacks: SharedStacks,
    cgroups: crate::cgroup::SharedCgroups,
}
