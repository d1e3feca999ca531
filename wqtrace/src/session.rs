//! What a session knew about the kernel it traced. Live sources produce it, recordings carry it
//! in their header, sinks show it: it sits below all three.

use serde::{Deserialize, Serialize};

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

/// The most pipes a session's programs knew at once, against the room they keep for them
/// without dropping one (`wqtrace_common::known_pipes`). Past it, a pipe may have been
/// dropped from their memory, and its free then went unseen.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KnownPipes {
    pub peak: u64,
    pub room: u64,
}

impl KnownPipes {
    /// Whether the programs knew more pipes at once than they keep: frees may have been missed.
    pub fn past_room(&self) -> bool {
        self.peak > self.room
    }

    /// Why frees may have been missed, where they may have been.
    pub fn missed_frees(&self) -> Option<String> {
        self.past_room().then(|| {
            format!(
                "the programs knew up to {} pipes at once, past the {} they keep without \
                 dropping one",
                self.peak, self.room
            )
        })
    }
}
