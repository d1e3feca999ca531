//! `wqtrace export FILE --format perfetto|chrome-json|jsonl [-o OUT]`: a recording as a timeline.
//!
//! Tracks: one per pipe (instants: created, posts, lost posts, rejections, released), a child
//! counter track with the pipe's occupancy, a child track with the rd_wait hold of each post
//! (slice), and one per task (slices: waits and lock contention; instants: ring operations).
//! Slices end at the event's `ts_ns` and last `duration_ns`. Perfetto output is the protobuf
//! `Trace` format (hand-encoded TrackDescriptor + TrackEvent packets, boot-time clock), which
//! ui.perfetto.dev opens directly. The recording is read twice (tracks, then events), so memory
//! does not grow with its length.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use wqtrace_common::Event;

use crate::source::EventSource;
use crate::source::file::FileSource;
use crate::source::filter::FilterArgs;
use crate::stacks::SharedStacks;

mod chrome;
mod perfetto;
mod tracks;

use chrome::ChromeWriter;
use perfetto::PerfettoWriter;
pub use tracks::{Arg, Item, PipeTrack, Track, Tracks};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Perfetto protobuf trace (open in ui.perfetto.dev).
    Perfetto,
    /// Chrome trace-event JSON (chrome://tracing, ui.perfetto.dev).
    ChromeJson,
    /// One JSON object per event (same fields as `wqtrace trace --json`).
    Jsonl,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A recording made by `wqtrace record`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[arg(short = 'f', long, value_enum)]
    pub format: Format,
    /// Output file (default: standard output). Created 0600 and handed to the sudo user; an
    /// existing file is kept unless --force.
    #[arg(short = 'o', long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Replace OUT if it exists (a symlink there is replaced, never followed).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let stdout = std::io::stdout();
    if args.output.is_none() && args.format == Format::Perfetto && stdout.is_terminal() {
        bail!("the perfetto format is binary: give -o OUT or redirect standard output");
    }
    let out: Box<dyn Write> = match &args.output {
        Some(p) => {
            let owner = crate::privileges::session_user(&Default::default())?;
            Box::new(crate::output::create(p, args.force, owner.as_ref())?)
        }
        None => Box::new(stdout.lock()),
    };
    let mut out = BufWriter::new(out);
    let res = export(&args.file, args.format, &args.filter, &mut out).and_then(|n| {
        out.flush().context("writing the export")?;
        Ok(n)
    });
    let n = match res {
        Ok(n) => n,
        // The reader went away (`| head`): stop quietly.
        Err(e) if is_broken_pipe(&e) => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e),
    };
    if let Some(p) = &args.output {
        eprintln!("wqtrace: exported {n} events to {}", crate::text::path(p));
    }
    Ok(ExitCode::SUCCESS)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .and_then(|j| j.io_error_kind())
                .is_some_and(|k| k == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes the export of `path` to `out`; returns the number of events.
pub fn export(
    path: &Path,
    format: Format,
    filter: &FilterArgs,
    out: &mut dyn Write,
) -> Result<u64> {
    let mut src = FileSource::open_filtered(path, filter)?;
    let n = match format {
        Format::Jsonl => {
            let rt = src.meta().realtime_offset_ns;
            let stacks = src.stacks().unwrap_or_default();
            let cgroups = src.cgroups().unwrap_or_default();
            let mut n = 0;
            for_each(&mut src, |e| {
                n += 1;
                // The chunk holding `e` came after the stacks and cgroups it refers to.
                let t = stacks.read().unwrap_or_else(|p| p.into_inner());
                let cg = cgroups.read().unwrap_or_else(|p| p.into_inner());
                serde_json::to_writer(
                    &mut *out,
                    &crate::sinks::trace::EventJson {
                        event: e,
                        realtime_offset_ns: rt,
                        stacks: Some(&t),
                        cgroups: Some(&cg),
                    },
                )?;
                out.write_all(b"\n")?;
                Ok(())
            })?;
            n
        }
        Format::Perfetto | Format::ChromeJson => {
            // Pass 1: the tracks.
            let mut tracks = Tracks::default();
            for_each(&mut src, |e| {
                tracks.discover(e);
                Ok(())
            })?;
            // Pass 2: the events.
            let mut src = FileSource::open_filtered(path, filter)?;
            let stacks = src.stacks().unwrap_or_default();
            let mut n = 0;
            if format == Format::Perfetto {
                let mut w = PerfettoWriter::new(out);
                w.descriptors(&tracks)?;
                for_each(&mut src, |e| {
                    n += 1;
                    for it in with_stacks(tracks.items(e), e, &stacks) {
                        w.item(&it)?;
                    }
                    Ok(())
                })?;
            } else {
                let mut w = ChromeWriter::new(out);
                w.begin(&tracks)?;
                for_each(&mut src, |e| {
                    n += 1;
                    for it in with_stacks(tracks.items(e), e, &stacks) {
                        w.item(&tracks, &it)?;
                    }
                    Ok(())
                })?;
                w.end()?;
            }
            src.print_warnings();
            n
        }
    };
    src.print_warnings();
    Ok(n)
}

/// The event's stacks as arguments of its slices and instants (one frame per line, innermost
/// first): what the timeline shows when the item is selected.
fn with_stacks(mut items: Vec<Item>, e: &Event, stacks: &SharedStacks) -> Vec<Item> {
    if !e.has_stacks() {
        return items;
    }
    let t = stacks.read().unwrap_or_else(|p| p.into_inner());
    let mut extra = Vec::new();
    for (user, key) in [(false, "kernel_stack"), (true, "user_stack")] {
        if let Some(s) = t.of(e, user) {
            extra.push((key, Arg::S(s.lines().join("\n"))));
        }
    }
    for it in &mut items {
        if let Item::Slice { args, .. } | Item::Instant { args, .. } = it {
            args.extend(extra.iter().cloned());
        }
    }
    items
}

fn for_each(src: &mut FileSource, mut f: impl FnMut(&Event) -> Result<()>) -> Result<()> {
    let mut batch = Vec::new();
    loop {
        batch.clear();
        let more = src.next_batch(&mut batch, Duration::ZERO)?;
        for e in &batch {
            f(e)?;
        }
        if !more {
            return Ok(());
        }
    }
}
