//! `wqtrace record -o FILE [-d SECS] [filters] [-- CMD…]`: events to a recording file.
//!
//! The file is written chunk by chunk (see [`crate::recording`]): SIGKILL or a full disk loses
//! at most the last 100 ms / 64 KiB, and the file is fsynced every [`SYNC_EVERY`], so a crash
//! of the machine loses at most that much more. SIGINT/SIGTERM, `-d` and the end of `CMD` stop
//! cleanly, write the trailer and fsync the file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use wqtrace_common::ABI_VERSION;

mod progress;
mod recorder;

pub use progress::{Progress, human_bytes};
use recorder::write_error;
pub use recorder::{Durable, SYNC_EVERY, StopReason, record_loop};

use crate::probe::opts::ProbeOpts;
use crate::recording::{Header, Writer};
use crate::source::{EventSource, SessionMeta, live::LiveSource, synthetic::Synthetic};
use crate::{child, kernel, stop};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub probe: ProbeOpts,
    /// Write the recording here (`-`: standard output). Created 0600, handed to the sudo user
    /// (or --user); an existing file is kept unless --force.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,
    /// Replace FILE if it exists (a symlink there is replaced, never followed).
    #[arg(long)]
    pub force: bool,
    /// Stop after SECS seconds.
    #[arg(short = 'd', long, value_name = "SECS", value_parser = crate::argvalue::secs)]
    pub duration: Option<f64>,
    /// No progress line on stderr (the final summary is still printed).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Testing aid: record N synthetic events instead of loading the probes.
    #[arg(long, hide = true, value_name = "N")]
    pub synthetic: Option<usize>,
    /// Testing aid: pace --synthetic events at this many per second.
    #[arg(long, hide = true, value_name = "PER_SEC", value_parser = crate::argvalue::positive)]
    pub synthetic_rate: Option<f64>,
    /// Run this command once the probes are attached, and stop when it exits.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Fills what a source did not say about the session.
fn complete_meta(mut m: SessionMeta) -> SessionMeta {
    if m.kernel_release.is_empty() {
        m.kernel_release = kernel::release();
    }
    if m.hostname.is_empty() {
        m.hostname = kernel::hostname();
    }
    if m.abi_version == 0 {
        m.abi_version = ABI_VERSION;
    }
    if m.realtime_offset_ns == 0 {
        m.realtime_offset_ns = kernel::realtime_offset_ns();
    }
    m
}

pub fn run(args: Args) -> Result<ExitCode> {
    stop::install();
    // Before the probes load: a refused FILE costs nothing.
    let owner = crate::privileges::session_user(&args.probe.privileges)?;
    let path = &args.output;
    if path == std::path::Path::new("-") && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        anyhow::bail!("a recording is binary: give -o FILE, or redirect standard output");
    }
    let file = crate::output::create(path, args.force, owner.as_ref())?;
    let mut src: Box<dyn EventSource> = match args.synthetic {
        Some(n) => Box::new(Synthetic::new(n, args.synthetic_rate)),
        None => Box::new(LiveSource::open(&ProbeOpts {
            waits_whole: true,
            ..args.probe.clone()
        })?),
    };
    let header = Header {
        meta: complete_meta(src.meta().clone()),
        wqtrace_version: crate::cli::VERSION.clone(),
        created_unix_ns: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64),
        command: args.command.clone(),
        filters: args.probe.describe(),
        stacks: src
            .stacks()
            .map(|_| args.probe.stacks_mode().name().to_string()),
    };
    let mut w = Writer::new(file, &header).map_err(|e| write_error(path, 0, e))?;
    w.set_stacks(src.stacks());
    w.set_cgroups(src.cgroups());
    let mut traced = child::start(&args.command, false)?;
    eprintln!(
        "wqtrace: recording to {}; Ctrl-C to stop",
        crate::text::path(path)
    );
    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d.max(0.0)));
    let mut progress = Progress::new(args.quiet);
    let started = Instant::now();
    let res = record_loop(
        src.as_mut(),
        &mut w,
        path,
        traced.as_mut(),
        deadline,
        &mut progress,
    );
    if let Some(c) = traced.as_mut() {
        // We stop before the command did (signal, -d or an error): take it down with us.
        child::stop(c, Duration::from_secs(5));
    }
    let reason = res?;
    // Read once: what is printed is what the trailer keeps.
    let unattributed = src.sleeps_unattributed();
    w.set_sleeps_unattributed(unattributed);
    let known_pipes = src.known_pipes();
    w.set_known_pipes(known_pipes);
    let (mut file, trailer) = w
        .finish(reason.name())
        .map_err(|e| write_error(path, 0, e))?;
    // A stopped recording is evidence someone will fetch later: on disk before we say "recorded".
    file.make_durable()
        .map_err(|e| write_error(path, trailer.events, e))?;
    // The descriptor, not the name: the name may be out of this (unprivileged) process's reach.
    // A pipe or a device has no size to tell.
    let size = match file.metadata() {
        Ok(m) if m.is_file() => {
            let per_event = if trailer.events > 0 {
                format!(", {:.1} B/event", m.len() as f64 / trailer.events as f64)
            } else {
                String::new()
            };
            format!(": {}{per_event}", human_bytes(m.len()))
        }
        _ => String::new(),
    };
    eprintln!(
        "wqtrace: recorded {} events ({} lost) to {} in {:.1} s{size}; stopped by {}",
        trailer.events,
        trailer.lost,
        crate::text::path(path),
        started.elapsed().as_secs_f64(),
        match reason {
            StopReason::Command(Some(c)) => format!("command exit (status {c})"),
            StopReason::Command(None) => "command exit".into(),
            r => r.name().into(),
        }
    );
    crate::sinks::print_unattributed_sleeps(unattributed);
    if let Some(why) = known_pipes.and_then(|k| k.missed_frees()) {
        eprintln!("wqtrace: frees of pipes may have been missed: {why}");
    }
    Ok(ExitCode::SUCCESS)
}
