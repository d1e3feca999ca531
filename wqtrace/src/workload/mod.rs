//! `wqtrace workload <scenario>`: exercise pipes and notification pipes, then print ONE JSON
//! object on stdout saying exactly what was done, so tests can compare it with what the tracer saw.
//!
//! Scenarios: `notify` (key notifications into a watch queue, read by a blocked reader thread),
//! `reject` (splice/tee/vmsplice/write on a notification pipe vs an ordinary pipe), `overflow`
//! (more notifications than the queue holds → a loss record), `contend` (threads fighting over
//! one ordinary pipe), `mixed` (all of them for a while), `race` (poster threads on several CPUs
//! posting into one notification queue while a reader drains it), `storm` (bursts of key
//! notifications, each read by a blocked reader before the next: the notification path's
//! throughput, for benchmarks).
//!
//! On a kernel without CONFIG_WATCH_QUEUE, `notify`, `overflow`, `race`, `storm` and `reject`
//! exit non-zero with one line on stderr (`wqtrace: notification pipes unavailable: …`);
//! `reject --ordinary-only` and `contend` work anywhere; `mixed` runs the ordinary-pipe parts,
//! reports `"notifications": "unavailable"`, notes it on stderr and exits 0 if those parts went
//! right.

pub mod contend;
pub mod mixed;
pub mod notes;
pub mod notify;
pub mod overflow;
pub mod race;
pub mod reject;
pub mod storm;
pub mod sys;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// Key notifications through a notification pipe, read by a reader thread blocked in read().
    Notify(notify::Args),
    /// splice/tee/vmsplice/write on a notification pipe (rejected) and on an ordinary pipe.
    Reject(reject::Args),
    /// Post more notifications than the queue holds without reading, then read: a loss record.
    Overflow(overflow::Args),
    /// Writer, reader and splicer threads contending for one ordinary pipe.
    Contend(contend::Args),
    /// All of the above, concurrently and in a loop.
    Mixed(mixed::Args),
    /// Poster threads on several CPUs posting key notifications into one queue while a reader
    /// drains it: post attempts vs records read per watch id, and loss records.
    Race(race::Args),
    /// Bursts of key notifications into one queue, each read by a blocked reader before the
    /// next, for a while: notifications per second.
    Storm(storm::Args),
}

/// Options every scenario has.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Common {
    /// Wait this long before doing anything (lets a tracer attach).
    #[arg(long, default_value_t = 0)]
    pub start_delay_ms: u64,
    /// Also write the JSON summary to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Name this process NAME first (PR_SET_NAME, at most 15 bytes): a name with terminal
    /// escapes shows how wqtrace displays names other processes choose.
    #[arg(long)]
    pub name: Option<std::ffi::OsString>,
}

impl Common {
    fn delay(&self) {
        if let Some(name) = &self.name {
            use std::os::unix::ffi::OsStrExt;
            let mut c = [0u8; 16];
            let b = name.as_bytes();
            let n = b.len().min(15);
            c[..n].copy_from_slice(&b[..n]);
            // Threads started later inherit it.
            unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr()) };
        }
        if self.start_delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(self.start_delay_ms));
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (common, value) = match args.scenario {
        Scenario::Notify(a) => {
            a.common.delay();
            (
                a.common.clone(),
                serde_json::to_value(notify::run(&a.opts())?)?,
            )
        }
        Scenario::Reject(a) => {
            a.common.delay();
            (
                a.common.clone(),
                serde_json::to_value(reject::run(a.ordinary_only)?)?,
            )
        }
        Scenario::Overflow(a) => {
            a.common.delay();
            (
                a.common.clone(),
                serde_json::to_value(overflow::run(&a.opts())?)?,
            )
        }
        Scenario::Contend(a) => {
            a.common.delay();
            (
                a.common.clone(),
                serde_json::to_value(contend::run(&a.opts())?)?,
            )
        }
        Scenario::Mixed(a) => {
            a.common.delay();
            (a.common.clone(), serde_json::to_value(mixed::run(&a)?)?)
        }
        Scenario::Race(a) => {
            a.common.delay();
            (a.common.clone(), serde_json::to_value(race::run(&a)?)?)
        }
        Scenario::Storm(a) => {
            a.common.delay();
            (a.common.clone(), serde_json::to_value(storm::run(&a)?)?)
        }
    };
    emit(&common, &value)?;
    Ok(if value["ok"] == true {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn emit(common: &Common, value: &serde_json::Value) -> anyhow::Result<()> {
    let line = serde_json::to_string(value)?;
    println!("{line}");
    if let Some(p) = &common.json_out {
        use std::io::Write as _;
        crate::output::create(p, true, None)?
            .write_all(format!("{line}\n").as_bytes())
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
