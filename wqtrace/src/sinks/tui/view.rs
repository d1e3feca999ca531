//! What a frame is drawn from: the model, the session's metadata and where the events come
//! from. The layout ([`super::ui`]) and every widget read it; it imports none of them.

use crate::model::Model;
use crate::source::SessionMeta;

/// Where the events come from, for the header.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Live,
    Replay {
        start_ns: u64,
        pos_ns: u64,
        end_ns: u64,
        speed: f64,
        at_end: bool,
    },
}

/// Everything a frame is drawn from.
pub struct View<'a> {
    pub model: &'a Model,
    pub meta: &'a SessionMeta,
    pub mode: Mode,
    /// The clock rates and "ago" are measured against (live: CLOCK_BOOTTIME now; replay: the
    /// playback position).
    pub now_ns: u64,
    /// Live and paused: events applied since the display froze.
    pub behind: u64,
    /// Live: what tracing costs (BPF run time, wqtrace's CPU and memory) over the last second.
    pub cost: Option<crate::cost::Rates>,
    /// The call stacks the alerts refer to (None: the source has none).
    pub stacks: Option<crate::stacks::SharedStacks>,
    /// The paths of the owners' cgroups.
    pub cgroups: Option<crate::cgroup::SharedCgroups>,
}
