//! Event sources: where [`Event`]s come from. The live ring buffer and a recording file implement
//! the same trait, so every sink (trace, tui, record, report, export, serve) works on both.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wqtrace_common::Event;

pub mod live;
pub mod recording;
mod ringbuf;

/// What a session knows about the kernel it traced: carried in every recording's header.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SessionMeta {
    /// `uname -r` of the traced kernel.
    pub kernel_release: String,
    pub hostname: String,
    /// wqtrace_common::ABI_VERSION of the events.
    pub abi_version: u32,
    /// CLOCK_REALTIME minus CLOCK_BOOTTIME at session start, in ns: event `ts_ns` + this = wall time.
    pub realtime_offset_ns: i64,
    /// Hook name → attach method actually used ("fentry", "kprobe", "tp_btf", "unavailable").
    pub attach: Vec<(String, String)>,
    /// Whether pipe2(O_NOTIFICATION_PIPE) works on the traced kernel.
    pub notification_pipes: bool,
    /// The BTF-derived offsets handed to the programs, as "name=value" pairs (for debugging).
    pub offsets: Vec<(String, u32)>,
}

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

    fn meta(&self) -> &SessionMeta;
}
