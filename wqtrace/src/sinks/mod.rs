//! Consumers of the event stream: each turns [`crate::model`] state or raw events into output.

pub mod export;
pub mod record;
pub mod replay;
pub mod report;
pub mod serve;
pub mod trace;
pub mod tui;
