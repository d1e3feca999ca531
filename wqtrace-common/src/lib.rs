//! The event ABI shared by the BPF programs (`wqtrace-ebpf`) and userspace (`wqtrace`).
//!
//! Everything here is `#[repr(C)]` and `Copy`: the programs write these bytes into one BPF ring
//! buffer, userspace reads them back with `read_unaligned`. Any change to a layout must bump
//! [`ABI_VERSION`], which recordings carry in their header.
#![no_std]

/// Bumped whenever [`Event`] or [`Offsets`] change layout.
pub const ABI_VERSION: u32 = 2;

/// Sentinel for an offset the running kernel does not have (field missing from its BTF).
pub const NO_OFFSET: u32 = u32::MAX;

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

/// One event, as the programs write it into the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_BOOTTIME nanoseconds (bpf_ktime_get_boot_ns).
    pub ts_ns: u64,
    /// Kernel address of the `pipe_inode_info` (0 when none): the pipe's identity while it lives.
    pub pipe: u64,
    /// Inode number of the pipe: the identity users see (/proc/PID/fd → pipe:[INO]).
    pub ino: u64,
    /// Waits, lock contention, post duration (entry → return, i.e. the rd_wait hold).
    pub duration_ns: u64,
    /// Syscall return value: bytes moved or -errno.
    pub ret: i64,
    /// Lock address for LockContended.
    pub lock: u64,
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
    pub ctx: u8,
    pub _pad: [u8; 7],
    pub comm: [u8; 16],
    pub owner_comm: [u8; 16],
}

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
            _pad: [0; 7],
            comm: [0; 16],
            owner_comm: [0; 16],
        }
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

    /// Ring occupancy after the event.
    pub const fn occupancy(&self) -> u32 {
        self.head.wrapping_sub(self.tail)
    }

    pub fn comm_str(&self) -> &str {
        cstr(&self.comm)
    }

    pub fn owner_comm_str(&self) -> &str {
        cstr(&self.owner_comm)
    }
}

fn cstr(b: &[u8]) -> &str {
    let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    core::str::from_utf8(&b[..n]).unwrap_or("?")
}

/// Field offsets resolved from the running kernel's BTF by userspace and handed to the programs
/// as one global. [`NO_OFFSET`] marks a field this kernel lacks; the programs then skip the
/// feature that needs it instead of failing to load.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_comm: u32,
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdt_max_fds: u32,
    pub fdt_fd: u32,
    pub file_f_op: u32,
    pub file_private_data: u32,
    pub file_f_inode: u32,
    pub inode_i_ino: u32,
    pub pipe_head: u32,
    pub pipe_tail: u32,
    /// Size in bytes of head/tail (pipe_index_t is u16 on some 32-bit builds).
    pub pipe_index_size: u32,
    pub pipe_max_usage: u32,
    pub pipe_ring_size: u32,
    pub pipe_bufs: u32,
    pub pipe_mutex: u32,
    /// Offset of `rd_wait.lock` (the spinlock the notification poster takes).
    pub pipe_rd_wait: u32,
    pub pipe_watch_queue: u32,
    pub pipe_note_loss: u32,
    pub mutex_owner: u32,
    pub buf_size: u32,
    pub buf_offset: u32,
    pub buf_len: u32,
    pub buf_flags: u32,
    pub wq_pipe: u32,
    pub wq_notes_bitmap: u32,
    pub wq_nr_notes: u32,
    pub watch_info_id: u32,
    pub wlist_watchers: u32,
    pub watch_list_node: u32,
    pub watch_queue: u32,
    pub watch_id: u32,
    /// `pipe_buffer.page` and `page.index` (a notes page's first note): which note a slot holds.
    pub buf_page: u32,
    pub page_index: u32,
    pub wq_defunct: u32,
    /// `watch_queue.filter` → `struct watch_filter` → `struct watch_type_filter[]`.
    pub wq_filter: u32,
    pub wf_type_filter: u32,
    pub wf_nr_filters: u32,
    pub wf_filters: u32,
    pub wtf_size: u32,
    pub wtf_type: u32,
    pub wtf_subtype_filter: u32,
    pub wtf_info_filter: u32,
    pub wtf_info_mask: u32,
    pub _reserved: u32,
    pub _pad: u32,
}

impl Offsets {
    pub const fn missing() -> Self {
        Self {
            task_pid: NO_OFFSET,
            task_tgid: NO_OFFSET,
            task_comm: NO_OFFSET,
            task_files: NO_OFFSET,
            files_fdt: NO_OFFSET,
            fdt_max_fds: NO_OFFSET,
            fdt_fd: NO_OFFSET,
            file_f_op: NO_OFFSET,
            file_private_data: NO_OFFSET,
            file_f_inode: NO_OFFSET,
            inode_i_ino: NO_OFFSET,
            pipe_head: NO_OFFSET,
            pipe_tail: NO_OFFSET,
            pipe_index_size: 4,
            pipe_max_usage: NO_OFFSET,
            pipe_ring_size: NO_OFFSET,
            pipe_bufs: NO_OFFSET,
            pipe_mutex: NO_OFFSET,
            pipe_rd_wait: NO_OFFSET,
            pipe_watch_queue: NO_OFFSET,
            pipe_note_loss: NO_OFFSET,
            mutex_owner: NO_OFFSET,
            buf_size: NO_OFFSET,
            buf_offset: NO_OFFSET,
            buf_len: NO_OFFSET,
            buf_flags: NO_OFFSET,
            wq_pipe: NO_OFFSET,
            wq_notes_bitmap: NO_OFFSET,
            wq_nr_notes: NO_OFFSET,
            watch_info_id: NO_OFFSET,
            wlist_watchers: NO_OFFSET,
            watch_list_node: NO_OFFSET,
            watch_queue: NO_OFFSET,
            watch_id: NO_OFFSET,
            buf_page: NO_OFFSET,
            page_index: NO_OFFSET,
            wq_defunct: NO_OFFSET,
            wq_filter: NO_OFFSET,
            wf_type_filter: NO_OFFSET,
            wf_nr_filters: NO_OFFSET,
            wf_filters: NO_OFFSET,
            wtf_size: NO_OFFSET,
            wtf_type: NO_OFFSET,
            wtf_subtype_filter: NO_OFFSET,
            wtf_info_filter: NO_OFFSET,
            wtf_info_mask: NO_OFFSET,
            _reserved: NO_OFFSET,
            _pad: 0,
        }
    }
}

/// In-kernel filters, one global. Zero / empty means "no filter".
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Filter {
    /// Only this process (tgid); 0 = all.
    pub tgid: u32,
    /// Only this pipe inode; 0 = all.
    pub ino: u32,
    /// Only tasks whose comm starts with this (NUL-padded); empty = all.
    pub comm: [u8; 16],
    /// 1 = only notification pipes.
    pub notification_only: u32,
    /// wqtrace's own tgid: its own pipes and syscalls are never traced.
    pub self_tgid: u32,
    /// 1 = every program returns at once: the benchmark's floor of the attach mechanism.
    pub empty: u32,
}

impl Filter {
    pub const fn none() -> Self {
        Self {
            tgid: 0,
            ino: 0,
            comm: [0; 16],
            notification_only: 0,
            self_tgid: 0,
            empty: 0,
        }
    }
}

/// Kernel symbol addresses from /proc/kallsyms (0 = unknown), one global. They let the
/// programs read the current CPU's preempt_count and tell task, softirq and irq context apart.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Ksyms {
    /// `__per_cpu_offset` (array of each CPU's per-cpu base).
    pub per_cpu_offset: u64,
    /// Per-cpu address of the preempt count: `&pcpu_hot.preempt_count` (6.2–6.14) or
    /// `&__preempt_count`.
    pub preempt_count: u64,
}

impl Ksyms {
    pub const fn none() -> Self {
        Self {
            per_cpu_offset: 0,
            preempt_count: 0,
        }
    }
}

/// Index of the per-CPU counters in the `STATS` map.
pub mod stat {
    /// Ring buffer reservations that failed: events lost.
    pub const LOST: u32 = 0;
    /// Events submitted.
    pub const SUBMITTED: u32 = 1;
    pub const COUNT: u32 = 2;
}

/// Slots of the RUNTIME array map, shared by the programs and the loader.
pub mod runtime {
    /// Address of the kernel's pipe `file_operations`, learned from wqtrace's own pipe
    /// (calibration).
    pub const PIPE_FOPS: u32 = 0;
    /// Hook flags set by userspace after attaching (the `HOOK_*` bits).
    pub const HOOKS: u32 = 1;
    pub const COUNT: u32 = 4;
    /// get_pipe_info is hooked, so it (not the errno) decides rejections.
    pub const HOOK_GET_PIPE_INFO: u64 = 1;
    /// The landing hook (`__wake_up_locked_sync_key`) is attached, so a walked post it did not
    /// see land really did not land.
    pub const HOOK_POST_LANDED: u64 = 2;
    /// This kernel has `security_post_notification()`, which may refuse a post without a
    /// trace wqtrace can see.
    pub const HOOK_SECURITY_MAY_SKIP: u64 = 4;
}

/// fcntl(fd, F_GETPIPE_SZ) issued by wqtrace itself on this magic pipe teaches the programs
/// the address of the kernel's pipe `file_operations` (kallsyms may not name it).
pub const CALIBRATE_FCNTL_CMD: u32 = 1032; // F_GETPIPE_SZ

#[cfg(feature = "user")]
mod pod {
    unsafe impl aya::Pod for super::Event {}
    unsafe impl aya::Pod for super::Offsets {}
    unsafe impl aya::Pod for super::Filter {}
    unsafe impl aya::Pod for super::Ksyms {}
}
