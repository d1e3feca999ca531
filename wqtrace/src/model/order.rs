//! The orders pipe lists come in.

use super::PipeState;

/// How [`Model::pipes_sorted`] orders pipes (always notification pipes first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PipeOrder {
    /// Most recently active first.
    #[default]
    Activity,
    /// Most events first.
    Events,
    /// Fullest ring (occupancy / size) first.
    Occupancy,
    /// Lowest inode first (stable; for reports).
    Ino,
}

pub(super) fn sort_pipes(v: &mut [&PipeState], order: PipeOrder) {
    v.sort_by(|a, b| {
        b.notification
            .cmp(&a.notification)
            // Pipes still alive before the ones already released.
            .then_with(|| a.is_released().cmp(&b.is_released()))
            .then_with(|| match order {
                PipeOrder::Activity => b.last_ts_ns.cmp(&a.last_ts_ns),
                PipeOrder::Events => b.events.cmp(&a.events),
                PipeOrder::Occupancy => {
                    let f = |p: &PipeState| {
                        u64::from(p.occupancy()) * 1_000_000 / u64::from(p.ring.size().max(1))
                    };
                    f(b).cmp(&f(a))
                }
                PipeOrder::Ino => a.ino.cmp(&b.ino),
            })
            .then(a.ino.cmp(&b.ino))
            .then(a.addr.cmp(&b.addr))
    });
}
