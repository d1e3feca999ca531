//! `wqtrace report FILE [--json]`: totals, then one section per pipe (notification pipes first).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use wqtrace_common::EventKind;

use crate::model::{Comm, Contention, LockKind, Model, ModelConfig, PipeOrder};
use crate::probe::plan::{Hook, Method};
use crate::recording::{Header, Trailer};
use crate::source::EventSource;
use crate::source::file::FileSource;
use crate::source::filter::FilterArgs;

mod cgroups;
mod json;
mod stacks;
mod text;

pub use json::to_json;
pub use text::to_text;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A recording made by `wqtrace record`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// Say so (one line on stderr) when the recording has no stacks to show.
    #[arg(long)]
    pub stacks: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// The method the recording's session attached `hook` with, as its attach plan stores it
/// ("fentry free_pipe_info", "tp_btf kfree", "unavailable", …), if the plan names the hook.
fn attach_method(meta: &crate::session::SessionMeta, hook: Hook) -> Option<&str> {
    let name = hook.name();
    meta.attach
        .iter()
        .find(|(h, _)| h == name)
        .map(|(_, m)| m.as_str())
}

/// Why a pipe the recording did not see freed may have been freed all the same (None: the
/// session saw every free of the pipes it knew). Then the report says "unknown", not "not
/// released".
fn frees_unseen(a: &Analysis) -> Option<String> {
    // The attach plan has no free hook (neither free_pipe_info nor its kfree stand-in).
    let traced = attach_method(&a.header.meta, Hook::PipeRelease)
        .is_some_and(|m| !Method::says_unavailable(m));
    if !traced {
        return Some("not traced".to_string());
    }
    let dropped = match &a.known_pipes {
        Err(why) => Some(why.clone()),
        Ok(k) => k.as_ref().and_then(|k| k.missed_frees()),
    };
    // Or a free is among the events lost.
    let lost = [
        (a.tracer_lost, "lost by the tracer"),
        (a.damaged_events, "lost to file damage"),
    ]
    .into_iter()
    .find(|(n, _)| *n > 0)
    .map(|(n, how)| match n {
        1 => format!("1 event was {how}"),
        n => format!("{n} events were {how}"),
    });
    Some(format!("may have been missed: {}", dropped.or(lost)?))
}

/// A recording read through the model: what `report` (and tests) look at.
pub struct Analysis {
    pub path: PathBuf,
    pub header: Header,
    pub trailer: Option<Trailer>,
    /// The most pipes the programs knew at once, from the trailer or (cut short) the chunks
    /// that noted it; Err: the file cannot say.
    pub known_pipes: Result<Option<crate::session::KnownPipes>, String>,
    pub model: Model,
    pub tracer_lost: u64,
    pub damaged_events: u64,
    pub warnings: Vec<String>,
    /// Filters applied now, on top of those the recording was made with (`header.filters`).
    pub filters_applied: Vec<String>,
    /// The most frequent call paths per pipe and kind of rare event.
    pub stacks: Vec<stacks::StackGroup>,
    /// Why the recording has no stacks, if it has none.
    pub no_stacks: Option<String>,
    /// Per pipe inode, the cgroups of the tasks whose events touched it.
    pub cgroups: std::collections::HashMap<u64, Vec<cgroups::PipeCgroup>>,
}

/// Reads the whole recording into a [`Model`] (report-sized caps).
pub fn analyze(path: &Path, filter: &FilterArgs) -> Result<Analysis> {
    let mut src = FileSource::open_filtered(path, filter)?;
    let mut model = Model::new(ModelConfig::for_report());
    let mut batch = Vec::new();
    let mut warnings = Vec::new();
    let mut counts = stacks::StackCounts::default();
    let mut by_cgroup = cgroups::CgroupCounts::default();
    loop {
        batch.clear();
        let more = src.next_batch(&mut batch, std::time::Duration::ZERO)?;
        for e in &batch {
            model.apply(e);
            counts.add(e);
            by_cgroup.add(e);
        }
        warnings.extend(src.take_warnings());
        if !more {
            break;
        }
    }
    model.set_lost(src.lost());
    Ok(Analysis {
        path: path.to_path_buf(),
        header: src.header().clone(),
        trailer: src.trailer().cloned(),
        known_pipes: src.known_pipes_said(),
        tracer_lost: src.tracer_lost(),
        damaged_events: src.damaged_events(),
        warnings,
        filters_applied: src.filters_applied(),
        stacks: counts.top(
            &src.stacks()
                .unwrap_or_default()
                .read()
                .unwrap_or_else(|p| p.into_inner()),
        ),
        no_stacks: src.no_stacks_reason(),
        cgroups: by_cgroup.by_pipe(
            &src.cgroups()
                .unwrap_or_default()
                .read()
                .unwrap_or_else(|p| p.into_inner()),
        ),
        model,
    })
}

pub fn run(args: Args) -> Result<ExitCode> {
    let a = analyze(&args.file, &args.filter)?;
    for w in &a.warnings {
        eprintln!("wqtrace: warning: {w}");
    }
    if args.stacks
        && let Some(why) = &a.no_stacks
    {
        eprintln!(
            "wqtrace: warning: {} has no stacks: {why}",
            crate::text::path(&args.file)
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&a))?);
    } else {
        print!("{}", to_text(&a));
    }
    Ok(ExitCode::SUCCESS)
}

fn who(comm: &Comm, id: u32) -> String {
    if comm.is_empty() {
        format!("?[{id}]")
    } else {
        format!("{comm}[{id}]")
    }
}

fn duration_ns(a: &Analysis) -> u64 {
    a.model.time_span().map_or(0, |(f, l)| l - f)
}

fn rel(a: &Analysis, ts: u64) -> String {
    let t0 = a.model.time_span().map_or(ts, |(f, _)| f);
    format!("+{:.6}s", ts.saturating_sub(t0) as f64 / 1e9)
}

fn contention_text(c: &Contention) -> String {
    if c.count == 0 {
        return "0".into();
    }
    let mut s = format!(
        "{} (total {}, worst {}: {} waited",
        c.count,
        crate::text::duration(c.total_ns),
        crate::text::duration(c.worst_ns),
        who(&c.worst_waiter, c.worst_waiter_tid)
    );
    if c.worst_holder_tid != 0 {
        s += &format!(" for {}", who(&c.worst_holder, c.worst_holder_tid));
    }
    s + ")"
}
