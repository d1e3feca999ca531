//! The event record: what happened, in one `#[repr(C)]` layout for every kind.

/// What happened. One [`Event`] layout serves every kind; unused fields stay zero.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// pipe2() returned: `fd_in`/`fd_out` are the read/write fds, `ret` holds pipe2's flags,
    /// `flags` has [`flags::NOTIFICATION_PIPE`] when O_NOTIFICATION_PIPE was asked for.
    PipeCreated = 1,
    /// A syscall moved data through a pipe (or tried to): ring state after it in `head`/`tail`,
    /// state before it in `head_before`/`tail_before`, bytes moved or -errno in `ret`.
    RingOp = 2,
    /// The kernel posted (or failed to post) one notification into a notification pipe.
    NotifyPosted = 3,
    /// splice/tee/vmsplice refused a notification pipe (get_pipe_info returned NULL).
    SpliceRejected = 4,
    /// A task slept waiting for a pipe: `duration_ns` long, `op` says which wait.
    PipeWait = 5,
    /// A task waited for the pipe mutex or the rd_wait spinlock: `duration_ns`, `lock`.
    LockContended = 6,
    /// IOC_WATCH_QUEUE_SET_SIZE succeeded: `nr_notes`.
    WatchQueueSized = 7,
    /// keyctl(KEYCTL_WATCH_KEY) added (or removed) a watch: `watch_id`, `ret`.
    WatchAdded = 8,
    /// `op` = Close: the task closed one of the pipe's fds (`fd_in`), the pipe may live on.
    /// `op` = None: the kernel freed the pipe (free_pipe_info); its address may be reused.
    PipeReleased = 9,
}

impl EventKind {
    /// Every kind, in ABI order.
    pub const ALL: [Self; 9] = [
        Self::PipeCreated,
        Self::RingOp,
        Self::NotifyPosted,
        Self::SpliceRejected,
        Self::PipeWait,
        Self::LockContended,
        Self::WatchQueueSized,
        Self::WatchAdded,
        Self::PipeReleased,
    ];

    /// The kind's name in every output (JSON, reports, metric labels).
    pub const fn name(self) -> &'static str {
        match self {
            Self::PipeCreated => "pipe_created",
            Self::RingOp => "ring_op",
            Self::NotifyPosted => "notify_posted",
            Self::SpliceRejected => "splice_rejected",
            Self::PipeWait => "pipe_wait",
            Self::LockContended => "lock_contended",
            Self::WatchQueueSized => "watch_queue_sized",
            Self::WatchAdded => "watch_added",
            Self::PipeReleased => "pipe_released",
        }
    }

    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::PipeCreated,
            2 => Self::RingOp,
            3 => Self::NotifyPosted,
            4 => Self::SpliceRejected,
            5 => Self::PipeWait,
            6 => Self::LockContended,
            7 => Self::WatchQueueSized,
            8 => Self::WatchAdded,
            9 => Self::PipeReleased,
            _ => return None,
        })
    }
}

/// Which operation (usually the syscall) an event belongs to.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    None = 0,
    Read = 1,
    Write = 2,
    Readv = 3,
    Writev = 4,
    Splice = 5,
    Tee = 6,
    Vmsplice = 7,
    Pipe2 = 8,
    Close = 9,
    Ioctl = 10,
    Sendfile = 11,
    CopyFileRange = 12,
    Keyctl = 13,
    /// Kernel-internal: a notification post (no syscall of the pipe's owner).
    Post = 14,
    /// pipe_wait_readable() (splice paths, >= 5.10).
    WaitReadable = 15,
    /// pipe_wait_writable() (splice paths, >= 5.10).
    WaitWritable = 16,
    /// pipe_wait() (<= 5.9).
    Wait = 17,
}

impl Op {
    pub const fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Read,
            2 => Self::Write,
            3 => Self::Readv,
            4 => Self::Writev,
            5 => Self::Splice,
            6 => Self::Tee,
            7 => Self::Vmsplice,
            8 => Self::Pipe2,
            9 => Self::Close,
            10 => Self::Ioctl,
            11 => Self::Sendfile,
            12 => Self::CopyFileRange,
            13 => Self::Keyctl,
            14 => Self::Post,
            15 => Self::WaitReadable,
            16 => Self::WaitWritable,
            17 => Self::Wait,
            _ => Self::None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "-",
            Self::Read => "read",
            Self::Write => "write",
            Self::Readv => "readv",
            Self::Writev => "writev",
            Self::Splice => "splice",
            Self::Tee => "tee",
            Self::Vmsplice => "vmsplice",
            Self::Pipe2 => "pipe2",
            Self::Close => "close",
            Self::Ioctl => "ioctl",
            Self::Sendfile => "sendfile",
            Self::CopyFileRange => "copy_file_range",
            Self::Keyctl => "keyctl",
            Self::Post => "post",
            Self::WaitReadable => "pipe_wait_readable",
            Self::WaitWritable => "pipe_wait_writable",
            Self::Wait => "pipe_wait",
        }
    }
}

/// Execution context of the task that produced the event.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExecCtx {
    Unknown = 0,
    Task = 1,
    Softirq = 2,
    Irq = 3,
}

impl ExecCtx {
    pub const fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Task,
            2 => Self::Softirq,
            3 => Self::Irq,
            _ => Self::Unknown,
        }
    }
}

/// Bits of [`Event::flags`].
pub mod flags {
    /// The pipe has a watch_queue (O_NOTIFICATION_PIPE).
    pub const NOTIFICATION_PIPE: u16 = 1 << 0;
    /// NotifyPosted: the post was lost (ring full or no free note). Alone (without RING_FULL
    /// or NOTES_FULL) it means lost for a reason concurrent posters and readers hid.
    pub const LOSS: u16 = 1 << 1;
    /// NotifyPosted (with LOSS): the ring was full when the poster held the ring lock.
    pub const RING_FULL: u16 = 1 << 2;
    /// NotifyPosted (with LOSS): the ring had room but no note was free.
    pub const NOTES_FULL: u16 = 1 << 3;
    /// NotifyPosted: the queue's filter skipped this pipe.
    pub const FILTERED: u16 = 1 << 4;
    /// The pipe mutex was held by a task (`owner_pid`) while the event happened.
    pub const MUTEX_HELD: u16 = 1 << 5;
    /// LockContended: the lock is the pipe mutex (else the rd_wait spinlock).
    pub const LOCK_MUTEX: u16 = 1 << 6;
    /// RingOp: the read returned at least one loss record (WATCH_META_LOSS_NOTIFICATION);
    /// `info` holds how many.
    pub const LOSS_SEEN: u16 = 1 << 7;
    /// PipeWait: measured as off-CPU time inside a syscall (sched_switch), not a wait function.
    /// RingOp, as the programs write it: the op carries its syscall's off-CPU wait
    /// (`duration_ns`, and the wait's stacks), one event where two cost twice; the sources
    /// split it into that PipeWait and the op ([`crate::Event::split_wait`]) before anything
    /// else sees it, and a recording stores it whole (format 6).
    pub const OFF_CPU: u16 = 1 << 8;
    /// The attach method that produced this event was a kprobe/fentry (else a tracepoint).
    pub const FROM_KFUNC: u16 = 1 << 9;
    /// NotifyPosted: it did not land, and wqtrace cannot know why (no hook sees posts land on
    /// this kernel, a security module may have refused it, or the queue was being torn down).
    pub const OUTCOME_UNKNOWN: u16 = 1 << 10;
    /// NotifyPosted: the object had more watches than the bounded walk follows; what happened
    /// to the posts past the walk that did not land is not attributed to a pipe (`pipe` = 0).
    pub const UNATTRIBUTED: u16 = 1 << 11;
    /// LockContended: the waiter spun (a spinlock, or a mutex's optimistic spin).
    pub const LOCK_SPIN: u16 = 1 << 12;
    /// LockContended: the waiter slept (a mutex's sleep phase).
    pub const LOCK_SLEEP: u16 = 1 << 13;
    /// RingOp: the pipe was the op's destination (the op wrote into it).
    pub const RING_DST: u16 = 1 << 14;
    /// PipeReleased: freed by a task outside the session's task filters (-p, -c, --cgroup),
    /// say a child left holding the pipe's last fd. The sources keep it only for a pipe the
    /// session's other events named (`source::filter::PipesSeen`), as a filter applied to a
    /// recording afterwards does.
    pub const OUTSIDE_FILTER: u16 = 1 << 15;
}

/// What became of one notification post into one queue. Exactly one per NotifyPosted event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PostOutcome {
    /// Written into the ring: `slot` and `note` say where.
    Landed,
    LostRingFull,
    LostNotesFull,
    /// Lost, but whether the ring or the notes were full is not known (concurrent posters and
    /// readers moved the ring while the post ran).
    LostReasonUnknown,
    SkippedFilter,
    /// Did not land, cause unknown (see [`flags::OUTCOME_UNKNOWN`]).
    Unknown,
    /// Past the bounded watch walk and not landed (see [`flags::UNATTRIBUTED`]).
    Unattributed,
}

impl PostOutcome {
    pub const ALL: [PostOutcome; 7] = [
        Self::Landed,
        Self::LostRingFull,
        Self::LostNotesFull,
        Self::LostReasonUnknown,
        Self::SkippedFilter,
        Self::Unknown,
        Self::Unattributed,
    ];

    /// Decided from the event flags, once, for every consumer.
    pub const fn from_flags(f: u16) -> Self {
        if f & flags::UNATTRIBUTED != 0 {
            Self::Unattributed
        } else if f & flags::OUTCOME_UNKNOWN != 0 {
            Self::Unknown
        } else if f & flags::FILTERED != 0 {
            Self::SkippedFilter
        } else if f & flags::RING_FULL != 0 {
            Self::LostRingFull
        } else if f & flags::NOTES_FULL != 0 {
            Self::LostNotesFull
        } else if f & flags::LOSS != 0 {
            Self::LostReasonUnknown
        } else {
            Self::Landed
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Landed => "landed",
            Self::LostRingFull => "lost_ring_full",
            Self::LostNotesFull => "lost_notes_full",
            Self::LostReasonUnknown => "lost_reason_unknown",
            Self::SkippedFilter => "skipped_filter",
            Self::Unknown => "unknown",
            Self::Unattributed => "unattributed",
        }
    }

    pub const fn is_lost(self) -> bool {
        matches!(
            self,
            Self::LostRingFull | Self::LostNotesFull | Self::LostReasonUnknown
        )
    }
}

/// [`Event::kstack`] / [`Event::ustack`]: a reference into the programs' stack map.
pub mod stack_ref {
    /// No stack was taken (not asked for, not a kind that carries one, or no user side).
    pub const NONE: u16 = 0;
    /// A stack was asked for but the kernel could not take or store it (no frames to walk, the
    /// stack map out of room): shown as unknown.
    pub const FAILED: u16 = u16::MAX;
    /// Not taken: this CPU had taken its [`PER_CPU_PER_SEC`] stacks of this kind (ring ops,
    /// lock contention, waits, the other rare events) this second already.
    pub const SKIPPED: u16 = u16::MAX - 1;
    /// Taken but not stored: the stack map's bucket for its hash holds another stack
    /// (bpf_get_stackid's EEXIST; it refuses rather than overwrite an id events still name).
    /// Shown as unknown, with that reason.
    pub const COLLIDED: u16 = u16::MAX - 2;
    /// Stack pairs each CPU takes per second of each kind at most (their cost stays bounded).
    pub const PER_CPU_PER_SEC: u32 = 1000;
    /// Stack map entries: ids are `0..MAX_ENTRIES`, stored as id + 1 (below COLLIDED).
    pub const MAX_ENTRIES: u32 = 16384;
    /// Frames per stack (the kernel's PERF_MAX_STACK_DEPTH).
    pub const MAX_DEPTH: usize = 127;

    /// The stack map id a reference names, if any.
    pub const fn id(r: u16) -> Option<u32> {
        if r == NONE || r >= COLLIDED {
            None
        } else {
            Some(r as u32 - 1)
        }
    }
}

/// What the programs take stacks for ([`crate::Filter::stacks`]).
pub mod stack_mode {
    pub const NONE: u32 = 0;
    /// Rejections, lost and skipped posts, lock contention and waits past the threshold.
    pub const RARE: u32 = 1;
    /// Every event.
    pub const ALL: u32 = 2;
}

/// One event, as the programs write it into the ring buffer: a record holds one, or two of one
/// syscall back to back (the ring ops of a splice or tee between two pipes, source first), or
/// only the first [`Event::SHORT_BYTES`] of one (a ring op that needs none of the fields after
/// them, see [`Event::from_short`]): the fields every ring op sets come first.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_BOOTTIME nanoseconds (bpf_ktime_get_boot_ns).
    pub ts_ns: u64,
    /// Kernel address of the `pipe_inode_info` (0 when none): the pipe's identity while it lives.
    pub pipe: u64,
    /// Inode number of the pipe: the identity users see (/proc/PID/fd → pipe:[INO]).
    pub ino: u64,
    /// Syscall return value: bytes moved or -errno.
    pub ret: i64,
    pub kind: u8,
    pub op: u8,
    pub flags: u16,
    pub cpu: u32,
    /// Thread id and process id of the current task.
    pub tid: u32,
    pub tgid: u32,
    pub head_before: u32,
    pub tail_before: u32,
    pub head: u32,
    pub tail: u32,
    pub ring_size: u32,
    pub max_usage: u32,
    pub fd_in: i32,
    pub fd_out: i32,
    pub ctx: u8,
    pub _pad: [u8; 3],
    /// Kernel and user call stacks of the task when it happened: see [`stack_ref`].
    pub kstack: u16,
    pub ustack: u16,
    pub comm: [u8; 16],
    /// cgroup v2 id of the current task (its cgroup directory's inode), like `tid` and `comm`
    /// the interrupted task's in softirq/irq context; 0 = not known (older recordings).
    pub cgroup: u64,
    // A short record ends here (`SHORT_BYTES`).
    /// Waits, lock contention, post duration (entry → return, i.e. the rd_wait hold). Not
    /// taken for ring ops (0): it cost a clock read per op, and their blocked time is a
    /// `PipeWait` of its own.
    pub duration_ns: u64,
    /// Lock address for LockContended.
    pub lock: u64,
    pub nr_notes: u32,
    pub notes_in_use: u32,
    /// NotifyPosted: ring slot written (head_before & (ring_size-1)), or u32::MAX when lost.
    pub slot: u32,
    /// NotifyPosted: note index taken from notes_bitmap, or u32::MAX.
    pub note: u32,
    /// NotifyPosted: watch_notification.type (24 bits) and .subtype (8 bits).
    pub ntype: u32,
    pub subtype: u32,
    /// NotifyPosted: watch_notification.info (length | watch id | flags).
    pub info: u32,
    /// The pipe mutex owner when the event happened (tid; 0 = unlocked or unknown).
    pub owner_tid: u32,
    pub owner_comm: [u8; 16],
}

const _: () = {
    assert!(
        Event::SHORT_BYTES.is_multiple_of(8) && Event::SHORT_BYTES < core::mem::size_of::<Event>()
    );
    assert!(core::mem::size_of::<Event>().is_multiple_of(8));
};

impl Event {
    pub const fn zeroed() -> Self {
        Self {
            ts_ns: 0,
            pipe: 0,
            ino: 0,
            duration_ns: 0,
            ret: 0,
            lock: 0,
            kind: 0,
            op: 0,
            flags: 0,
            cpu: 0,
            tid: 0,
            tgid: 0,
            head_before: 0,
            tail_before: 0,
            head: 0,
            tail: 0,
            ring_size: 0,
            max_usage: 0,
            fd_in: -1,
            fd_out: -1,
            nr_notes: 0,
            notes_in_use: 0,
            slot: u32::MAX,
            note: u32::MAX,
            ntype: 0,
            subtype: 0,
            info: 0,
            owner_tid: 0,
            ctx: 0,
            _pad: [0; 3],
            kstack: stack_ref::NONE,
            ustack: stack_ref::NONE,
            comm: [0; 16],
            owner_comm: [0; 16],
            cgroup: 0,
        }
    }

    /// Bytes of a short record: the fields before `duration_ns`. A ring op whose later fields
    /// all hold their [`Event::zeroed`] values (no mutex owner at its exit, no loss records,
    /// no wait carried) is written as one: a third less to zero, write and carry through the
    /// ring (sys_exit 6 % cheaper under `record`-like streaming, host, paired runs).
    pub const SHORT_BYTES: usize = core::mem::offset_of!(Event, duration_ns);

    /// The event a short record's bytes (`SHORT_BYTES` of them) stand for: the fields after
    /// them as [`Event::zeroed`] has them. None for any other length.
    pub fn from_short(bytes: &[u8]) -> Option<Event> {
        if bytes.len() != Self::SHORT_BYTES {
            return None;
        }
        let mut e = Event::zeroed();
        // Any bytes are a valid Event (integers only); the destination is this Event's first
        // SHORT_BYTES bytes.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                (&raw mut e).cast::<u8>(),
                Self::SHORT_BYTES,
            )
        };
        Some(e)
    }

    pub fn kind(&self) -> Option<EventKind> {
        EventKind::from_u8(self.kind)
    }

    pub fn op(&self) -> Op {
        Op::from_u8(self.op)
    }

    /// NotifyPosted: what became of the post (None for other kinds).
    pub fn post_outcome(&self) -> Option<PostOutcome> {
        (self.kind == EventKind::NotifyPosted as u8).then(|| PostOutcome::from_flags(self.flags))
    }

    /// RingOp: loss records the read returned (recordings made before the count existed
    /// carry only the flag: at least one).
    pub fn loss_records(&self) -> u32 {
        if self.flags & flags::LOSS_SEEN != 0 {
            self.info.max(1)
        } else {
            0
        }
    }

    /// NotifyPosted: the ring slot a landed post took.
    pub const fn slot(&self) -> Option<u32> {
        if self.slot == u32::MAX {
            None
        } else {
            Some(self.slot)
        }
    }

    /// NotifyPosted: the note a landed post took.
    pub const fn note(&self) -> Option<u32> {
        if self.note == u32::MAX {
            None
        } else {
            Some(self.note)
        }
    }

    /// Watch id from `info` (WATCH_INFO_ID, bits 8..16).
    pub const fn watch_id(&self) -> u32 {
        (self.info >> 8) & 0xff
    }

    /// Record length in bytes from `info` (WATCH_INFO_LENGTH, bits 0..7).
    pub const fn note_len(&self) -> u32 {
        self.info & 0x7f
    }

    /// On a notification pipe (O_NOTIFICATION_PIPE).
    pub const fn is_notification_pipe(&self) -> bool {
        self.flags & flags::NOTIFICATION_PIPE != 0
    }

    /// PipeWait: measured as off-CPU time inside read()/write() (sched_switch), not a
    /// pipe_wait_* call.
    pub const fn off_cpu(&self) -> bool {
        self.flags & flags::OFF_CPU != 0
    }

    /// A RingOp that carries its syscall's off-CPU wait (see [`flags::OFF_CPU`]): it stands
    /// for two events.
    pub const fn carries_wait(&self) -> bool {
        self.kind == EventKind::RingOp as u8 && self.flags & flags::OFF_CPU != 0
    }

    /// The PipeWait and the RingOp a [`Event::carries_wait`] event stands for, as the
    /// programs streamed them before they were one: the wait has the op's header, pipe, result
    /// and ring after it, its own duration and stacks, and none of the op's fields; the op has
    /// no duration and no stacks (ring ops take stacks only with `--stacks all`, and then the
    /// programs send the wait on its own).
    pub fn split_wait(&self) -> (Event, Event) {
        let mut op = *self;
        op.flags &= !flags::OFF_CPU;
        op.duration_ns = 0;
        op.kstack = stack_ref::NONE;
        op.ustack = stack_ref::NONE;
        let mut wait = Event::zeroed();
        wait.ts_ns = self.ts_ns;
        wait.kind = EventKind::PipeWait as u8;
        wait.op = self.op;
        wait.cpu = self.cpu;
        wait.tid = self.tid;
        wait.tgid = self.tgid;
        wait.comm = self.comm;
        wait.cgroup = self.cgroup;
        wait.ctx = self.ctx;
        wait.pipe = self.pipe;
        wait.ino = self.ino;
        wait.ret = self.ret;
        wait.duration_ns = self.duration_ns;
        wait.flags = flags::OFF_CPU | (self.flags & flags::NOTIFICATION_PIPE);
        wait.head = self.head;
        wait.tail = self.tail;
        wait.ring_size = self.ring_size;
        wait.max_usage = self.max_usage;
        wait.kstack = self.kstack;
        wait.ustack = self.ustack;
        (wait, op)
    }

    /// RingOp: a read that returned a loss record.
    pub const fn loss_seen(&self) -> bool {
        self.flags & flags::LOSS_SEEN != 0
    }

    /// LockContended: the lock was the pipe mutex (else the rd_wait spinlock).
    pub const fn on_mutex(&self) -> bool {
        self.flags & flags::LOCK_MUTEX != 0
    }

    /// NotifyPosted: another task held the pipe mutex while the kernel posted.
    pub const fn mutex_held(&self) -> bool {
        self.flags & flags::MUTEX_HELD != 0
    }

    /// RingOp: the op wrote into this pipe's ring (it was the destination).
    pub const fn ring_is_dst(&self) -> bool {
        self.flags & flags::RING_DST != 0
    }

    /// The event carries a snapshot of its pipe's ring (`head`, `tail`, `ring_size`).
    pub const fn has_ring(&self) -> bool {
        self.ring_size != 0
    }

    /// RingOp: how many slots the op moved (written or consumed, whichever is larger).
    pub const fn slots_moved(&self) -> u32 {
        let written = self.head.wrapping_sub(self.head_before);
        let read = self.tail.wrapping_sub(self.tail_before);
        if written > read { written } else { read }
    }

    /// The event asked for a kernel or user stack (taken or not).
    pub const fn has_stacks(&self) -> bool {
        self.kstack != stack_ref::NONE || self.ustack != stack_ref::NONE
    }

    /// Ring occupancy after the event.
    pub const fn occupancy(&self) -> u32 {
        self.head.wrapping_sub(self.tail)
    }
}
