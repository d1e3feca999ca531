//! Things worth a kernel developer's attention: rejected splices and interleaved posts.

use std::collections::VecDeque;

use serde::Serialize;
use wqtrace_common::Op;

use super::Comm;

/// splice/tee/vmsplice refused a notification pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub ts_ns: u64,
    pub pipe: u64,
    pub ino: u64,
    #[serde(serialize_with = "ser_op")]
    pub op: Op,
    pub tid: u32,
    pub tgid: u32,
    pub comm: Comm,
    pub ret: i64,
    /// The syscall's fds as the event carried them (-1 when not known): splice/tee `fd_in` →
    /// `fd_out`, vmsplice's fd in `fd_in`.
    pub fd_in: i32,
    pub fd_out: i32,
    #[serde(skip)]
    pub stacks: StackRefs,
}

/// The call stacks an alert's event carried: references into the session's stack table
/// ([`crate::stacks::StackTable::get`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackRefs {
    pub kstack: u16,
    pub ustack: u16,
    /// The process the user stack belongs to.
    pub tgid: u32,
}

impl StackRefs {
    pub fn of(e: &wqtrace_common::Event) -> Self {
        Self {
            kstack: e.kstack,
            ustack: e.ustack,
            tgid: e.tgid,
        }
    }
}

/// A notification posted while the pipe mutex was held by a task that was in the middle of a
/// multi-slot operation on the same pipe: the post landed between the slots of that operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Interleave {
    /// When the post happened.
    pub post_ts_ns: u64,
    /// When the owner's operation returned.
    pub op_ts_ns: u64,
    pub pipe: u64,
    pub ino: u64,
    /// Ring index the notification went to.
    pub slot: u32,
    pub owner_tid: u32,
    pub owner: Comm,
    #[serde(serialize_with = "ser_op")]
    pub op: Op,
    /// Slots the owner's operation itself wrote.
    pub slots_moved: u32,
    /// The post's stacks (the poster's path, while the owner held the mutex).
    #[serde(skip)]
    pub stacks: StackRefs,
}

fn ser_op<S: serde::Serializer>(op: &Op, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(op.name())
}

/// A bounded log of alerts (newest kept), with totals that count every alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertLog<T> {
    cap: usize,
    items: VecDeque<T>,
    total: u64,
}

impl<T> AlertLog<T> {
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            items: VecDeque::new(),
            total: 0,
        }
    }

    pub fn push(&mut self, t: T) {
        if self.items.len() == self.cap {
            self.items.pop_front();
        }
        self.items.push_back(t);
        self.total += 1;
    }

    /// Kept alerts, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.items.iter()
    }

    /// Every alert ever pushed, including the ones dropped by the cap.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// A post seen with `MUTEX_HELD`, waiting for the owner's operation to return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PendingPost {
    pub ts_ns: u64,
    pub pipe: u64,
    pub ino: u64,
    pub slot: u32,
    /// The ring index (head before the post) it took: slots wrap, indices do not.
    pub index: u32,
    pub owner_tid: u32,
    pub owner: Comm,
    pub stacks: StackRefs,
}

/// Pending posts older than this are dropped (the owner's op never showed up).
pub(crate) const PENDING_TTL_NS: u64 = 1_000_000_000;
pub(crate) const PENDING_CAP: usize = 1024;
