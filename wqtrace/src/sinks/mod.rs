//! Consumers of the event stream: each turns [`crate::model`] state or raw events into output.

pub mod export;
pub mod record;
pub mod replay;
pub mod report;
pub mod serve;
pub mod trace;
pub mod tui;

/// What `n` sleeps of splice, tee or vmsplice that could not be placed on a wait queue are
/// (`EventSource::sleeps_unattributed`): the pipe waits reported may miss them, and a session
/// attached at the same time may have timed them.
pub fn unattributed_sleeps(n: u64) -> String {
    format!(
        "{n} sleeps in splice, tee or vmsplice not timed as pipe waits: woken as they left the \
         CPU, on a wait queue that could no longer be told"
    )
}

/// The line a live session prints at its end about its `n` unplaced sleeps; none for 0.
pub fn print_unattributed_sleeps(n: u64) {
    if n > 0 {
        eprintln!("wqtrace: {}", unattributed_sleeps(n));
    }
}
