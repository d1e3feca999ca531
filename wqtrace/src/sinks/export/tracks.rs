//! The timeline's tracks (one per pipe, its occupancy counter and post holds; one per task)
//! and the items each event puts on them, independent of the output format.

use std::collections::HashMap;

use wqtrace_common::{Event, EventKind, Op, PostOutcome};

/// Where a timeline item goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Track {
    /// Index into [`Tracks::pipes`].
    Pipe(usize),
    PipeOccupancy(usize),
    PipeHolds(usize),
    Thread(u32),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    U(u64),
    I(i64),
    S(String),
}

/// One thing drawn on the timeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Slice {
        track: Track,
        start_ns: u64,
        dur_ns: u64,
        name: String,
        args: Vec<(&'static str, Arg)>,
    },
    Instant {
        track: Track,
        ts_ns: u64,
        name: String,
        args: Vec<(&'static str, Arg)>,
    },
    Counter {
        track: Track,
        ts_ns: u64,
        value: i64,
    },
}

#[derive(Clone, Debug)]
pub struct PipeTrack {
    pub addr: u64,
    pub ino: u64,
    pub notification: bool,
}

impl PipeTrack {
    pub fn name(&self) -> String {
        let base = crate::model::pipe_label(self.addr, self.ino);
        if self.notification {
            base + " (notification)"
        } else {
            base
        }
    }
}

/// The tracks of a recording, in order of first appearance.
#[derive(Default, Debug)]
pub struct Tracks {
    pub pipes: Vec<PipeTrack>,
    pipe_index: HashMap<(u64, u64), usize>,
    /// tid → (tgid, comm), in order of first appearance.
    pub threads: Vec<(u32, u32, String)>,
    thread_index: HashMap<u32, usize>,
}

impl Tracks {
    pub fn discover(&mut self, e: &Event) {
        if e.pipe != 0 || e.ino != 0 {
            let n = self.pipes.len();
            let i = *self.pipe_index.entry((e.pipe, e.ino)).or_insert(n);
            if i == n {
                self.pipes.push(PipeTrack {
                    addr: e.pipe,
                    ino: e.ino,
                    notification: false,
                });
            }
            if e.is_notification_pipe()
                || matches!(
                    e.kind(),
                    Some(EventKind::WatchQueueSized | EventKind::WatchAdded)
                )
            {
                self.pipes[i].notification = true;
            }
        }
        if e.tid != 0 && !self.thread_index.contains_key(&e.tid) {
            self.thread_index.insert(e.tid, self.threads.len());
            self.threads
                .push((e.tid, e.tgid, crate::text::comm(&e.comm).into_owned()));
        }
    }

    fn pipe(&self, e: &Event) -> Option<usize> {
        self.pipe_index.get(&(e.pipe, e.ino)).copied()
    }

    /// The timeline items of one event.
    // Long on purpose: one arm per event kind (the long ones have builders below).
    pub fn items(&self, e: &Event) -> Vec<Item> {
        let mut v = Vec::new();
        let pipe = self.pipe(e);
        let thread =
            (e.tid != 0 && self.thread_index.contains_key(&e.tid)).then_some(Track::Thread(e.tid));
        let ts = e.ts_ns;
        let Some(kind) = e.kind() else { return v };
        match kind {
            EventKind::PipeCreated => {
                if let Some(p) = pipe {
                    v.push(Item::Instant {
                        track: Track::Pipe(p),
                        ts_ns: ts,
                        name: "created".into(),
                        args: vec![
                            ("by", who(e)),
                            ("fd_in", Arg::I(e.fd_in.into())),
                            ("fd_out", Arg::I(e.fd_out.into())),
                        ],
                    });
                }
            }
            EventKind::RingOp => {
                if let Some(t) = thread {
                    v.push(Item::Instant {
                        track: t,
                        ts_ns: ts,
                        name: e.op().name().into(),
                        args: vec![
                            ("ret", Arg::I(e.ret)),
                            ("ino", Arg::U(e.ino)),
                            ("slots", Arg::U(e.slots_moved().into())),
                        ],
                    });
                }
            }
            EventKind::NotifyPosted => {
                if let Some(p) = pipe {
                    post_items(&mut v, p, e);
                }
            }
            EventKind::SpliceRejected => {
                if let Some(p) = pipe {
                    v.push(Item::Instant {
                        track: Track::Pipe(p),
                        ts_ns: ts,
                        name: format!("{} rejected", e.op().name()),
                        args: vec![("by", who(e)), ("ret", Arg::I(e.ret))],
                    });
                }
            }
            EventKind::PipeWait => v.extend(thread.map(|t| wait_item(t, e))),
            EventKind::LockContended => v.extend(thread.map(|t| contention_item(t, e))),
            EventKind::WatchQueueSized | EventKind::WatchAdded | EventKind::PipeReleased => {
                if let Some(p) = pipe {
                    let name = match kind {
                        EventKind::WatchQueueSized => "watch queue sized".to_string(),
                        EventKind::WatchAdded => "watch added".to_string(),
                        _ if e.op() == Op::Close => "fd closed".to_string(),
                        _ => "released".to_string(),
                    };
                    v.push(Item::Instant {
                        track: Track::Pipe(p),
                        ts_ns: ts,
                        name,
                        args: vec![("by", who(e))],
                    });
                }
            }
        }
        if let Some(p) = pipe
            && e.has_ring()
            && matches!(
                kind,
                EventKind::RingOp
                    | EventKind::NotifyPosted
                    | EventKind::PipeCreated
                    | EventKind::WatchQueueSized
            )
        {
            v.push(Item::Counter {
                track: Track::PipeOccupancy(p),
                ts_ns: ts,
                value: e.occupancy().into(),
            });
        }
        v
    }
}

/// A post on its pipe's track (with its outcome and slot), and how long it held rd_wait.
fn post_items(v: &mut Vec<Item>, p: usize, e: &Event) {
    let ts = e.ts_ns;
    let outcome = PostOutcome::from_flags(e.flags);
    let mut args = vec![
        ("type", Arg::U(e.ntype.into())),
        ("subtype", Arg::U(e.subtype.into())),
        ("watch_id", Arg::U(e.watch_id().into())),
        ("by", who(e)),
    ];
    if let Some(slot) = e.slot() {
        args.push(("slot", Arg::U(slot.into())));
    }
    if e.mutex_held() {
        args.push(("mutex_owner", owner(e)));
    }
    args.push(("outcome", Arg::S(outcome.name().into())));
    let name = match outcome {
        PostOutcome::Landed => "post",
        o if o.is_lost() => "post lost",
        PostOutcome::SkippedFilter => "post filtered",
        _ => "post unknown",
    };
    v.push(Item::Instant {
        track: Track::Pipe(p),
        ts_ns: ts,
        name: name.into(),
        args,
    });
    if e.duration_ns > 0 {
        v.push(Item::Slice {
            track: Track::PipeHolds(p),
            start_ns: ts.saturating_sub(e.duration_ns),
            dur_ns: e.duration_ns,
            name: "rd_wait held (post)".into(),
            args: vec![("by", who(e))],
        });
    }
}

/// A wait, as a slice on the waiting thread.
fn wait_item(t: Track, e: &Event) -> Item {
    let ts = e.ts_ns;
    let what = match e.op() {
        Op::WaitReadable | Op::WaitWritable | Op::Wait => e.op().name().to_string(),
        op => format!("wait ({})", op.name()),
    };
    Item::Slice {
        track: t,
        start_ns: ts.saturating_sub(e.duration_ns),
        dur_ns: e.duration_ns,
        name: what,
        args: vec![("ino", Arg::U(e.ino))],
    }
}

/// Lock contention, as a slice on the waiting thread (with the holder when known).
fn contention_item(t: Track, e: &Event) -> Item {
    let ts = e.ts_ns;
    let lock = if e.on_mutex() { "mutex" } else { "rd_wait" };
    let mut args = vec![("ino", Arg::U(e.ino))];
    if e.owner_tid != 0 {
        args.push(("holder", owner(e)));
    }
    Item::Slice {
        track: t,
        start_ns: ts.saturating_sub(e.duration_ns),
        dur_ns: e.duration_ns,
        name: format!("{lock} contended"),
        args,
    }
}

/// `comm[tid]` of the event's task.
fn who(e: &Event) -> Arg {
    Arg::S(format!("{}[{}]", crate::text::comm(&e.comm), e.tid))
}

/// `comm[tid]` of the lock's owner the event names.
fn owner(e: &Event) -> Arg {
    Arg::S(format!(
        "{}[{}]",
        crate::text::comm(&e.owner_comm),
        e.owner_tid
    ))
}
