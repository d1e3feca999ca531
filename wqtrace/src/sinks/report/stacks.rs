//! The report's top stacks: per pipe and kind of rare event, the call paths that led there,
//! with how often each did.

use std::{collections::HashMap, sync::Arc};

use wqtrace_common::{Event, EventKind};

use crate::stacks::{Stack, StackTable};

/// Stacks kept per pipe and kind.
pub const TOP: usize = 5;
/// Frames shown per stack in the text report (JSON has them all).
pub const FRAMES_SHOWN: usize = 16;

/// One call path and how many events of one kind on one pipe took it.
pub struct StackGroup {
    pub ino: u64,
    pub kind: &'static str,
    pub count: u64,
    pub kstack: Option<Arc<Stack>>,
    pub ustack: Option<Arc<Stack>>,
}

/// Counts events by (pipe, kind, stacks) while a recording is read.
#[derive(Default)]
pub struct StackCounts {
    /// Keyed by (inode, kind, kstack, ustack, tgid when there is a user stack), with the first
    /// event as the one the table resolves.
    counts: HashMap<GroupKey, (u64, Event)>,
}

/// (inode, kind, kstack, ustack, tgid when there is a user stack).
type GroupKey = (u64, &'static str, u16, u16, u32);

/// What the report calls the event's kind when grouping its stacks.
fn kind_of(e: &Event) -> &'static str {
    match e.kind() {
        Some(EventKind::SpliceRejected) => "rejection",
        Some(EventKind::NotifyPosted) => match e.post_outcome() {
            Some(wqtrace_common::PostOutcome::Landed) => "interleaved post",
            _ => "post not landed",
        },
        Some(EventKind::LockContended) => "contention",
        Some(EventKind::PipeWait) => "wait",
        _ => "ring op",
    }
}

impl StackCounts {
    pub fn add(&mut self, e: &Event) {
        if !e.has_stacks() {
            return;
        }
        let tgid = if e.ustack != 0 { e.tgid } else { 0 };
        let key = (e.ino, kind_of(e), e.kstack, e.ustack, tgid);
        self.counts.entry(key).or_insert((0, *e)).0 += 1;
    }

    /// The top [`TOP`] per pipe and kind, by inode, kind, then count.
    pub fn top(self, t: &StackTable) -> Vec<StackGroup> {
        let mut all: Vec<StackGroup> = self
            .counts
            .into_iter()
            .map(|((ino, kind, ..), (count, e))| StackGroup {
                ino,
                kind,
                count,
                kstack: t.of(&e, false),
                ustack: t.of(&e, true),
            })
            .collect();
        all.sort_by(|a, b| {
            (a.ino, a.kind, std::cmp::Reverse(a.count)).cmp(&(
                b.ino,
                b.kind,
                std::cmp::Reverse(b.count),
            ))
        });
        let mut out = Vec::new();
        let mut last = None;
        let mut n = 0;
        for g in all {
            if last != Some((g.ino, g.kind)) {
                last = Some((g.ino, g.kind));
                n = 0;
            }
            n += 1;
            if n <= TOP {
                out.push(g);
            }
        }
        out
    }
}
