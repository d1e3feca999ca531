//! Event sources: where [`Event`]s come from. The live ring buffer and a recording file implement
//! the same trait, so every sink (trace, tui, record, report, export, serve) works on both.

use std::time::Duration;

use wqtrace_common::Event;
use wqtrace_common::totals::{PipeKey, PipeTotals};

pub use crate::session::SessionMeta;

mod batch;
pub mod file;
pub mod filter;
pub mod live;
mod merge;
pub mod replay;
mod ringbuf;
pub mod synthetic;

/// A stream of events.
pub trait EventSource {
    /// Appends the next events to `out`, waiting at most `timeout` for the first one.
    /// Returns `Ok(false)` once the source is exhausted (end of a recording; never for live).
    fn next_batch(&mut self, out: &mut Vec<Event>, timeout: Duration) -> anyhow::Result<bool>;

    /// Stop producing and append everything already produced (the kernel ring and any queue in
    /// between): what happened before the user said stop belongs to the output.
    fn finish(&mut self, out: &mut Vec<Event>) -> anyhow::Result<()> {
        self.next_batch(out, Duration::ZERO).map(|_| ())
    }

    /// Events the source knows it lost (ring buffer reservations that failed, damaged chunks).
    fn lost(&self) -> u64;

    /// Sleeps of splice, tee or vmsplice the programs could not place on a wait queue, so did
    /// not time as pipe waits (see `wqtrace_common::stat::SLEEPS_UNATTRIBUTED`; live sources
    /// only).
    fn sleeps_unattributed(&self) -> u64 {
        0
    }

    /// The most pipes the programs knew at once, and their room (live sources, and
    /// recordings that kept it).
    fn known_pipes(&self) -> Option<crate::session::KnownPipes> {
        None
    }

    fn meta(&self) -> &SessionMeta;

    /// What tracing has cost so far (live sources only).
    fn cost(&self) -> Option<crate::cost::Sample> {
        None
    }

    /// The call stacks the events refer to (`Event::kstack`/`ustack`), as far as the source
    /// has met them: a recording's table grows as its chunks are read.
    fn stacks(&self) -> Option<crate::stacks::SharedStacks> {
        None
    }

    /// The cgroup paths the events' ids name (`Event::cgroup`), as far as the source has met
    /// them.
    fn cgroups(&self) -> Option<crate::cgroup::SharedCgroups> {
        None
    }

    /// Ring ops on ordinary pipes the programs totalled per pipe instead of streaming
    /// (`ProbeOpts::pipe_totals`; live sources only): running totals.
    fn pipe_totals(&mut self) -> anyhow::Result<Vec<(PipeKey, PipeTotals)>> {
        Ok(Vec::new())
    }

    /// Drops the totals of pipes that are gone, read for the last time.
    fn forget_pipe_totals(&mut self, _keys: &[PipeKey]) -> anyhow::Result<()> {
        Ok(())
    }
}
