//! Consumers of the event stream: each turns [`crate::model`] state or raw events into output.

pub mod export;
pub mod record;
pub mod replay;
pub mod report;
pub mod serve;
pub mod trace;
pub mod tui;

/// The line a live session prints at its end when some sleeps of splice, tee or vmsplice could
/// not be placed on a wait queue (`EventSource::sleeps_unattributed`): the pipe waits it
/// reported may miss them, and a session attached at the same time may have timed them.
pub fn unattributed_sleeps(src: &dyn crate::source::EventSource) -> Option<String> {
    let n = src.sleeps_unattributed();
    (n > 0).then(|| {
        format!(
            "wqtrace: {n} sleeps in splice, tee or vmsplice not timed as pipe waits: woken as \
             they left the CPU, on a wait queue that could no longer be told"
        )
    })
}
