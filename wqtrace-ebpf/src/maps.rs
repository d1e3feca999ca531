//! Maps shared by the programs.

use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, PerCpuHashMap, ProgramArray, RingBuf},
};
use wqtrace_common::{
    counts::{COUNT_KINDS, CountKey, WaitRow, hist},
    known_pipes, runtime, stat,
    totals::{PipeKey, PipeTotals, SlotOwner, SlotTotals},
};

// The event ring buffers, one per CPU up to MAX_RINGS (`emit::with_ring`; sizes set by
// userspace before load). One ring shared by every CPU made each reservation take its lock and
// cache lines from the CPU that reserved last: on two CPUs that was most of the cost of an
// event. Userspace merges them by timestamp (`source::merge`).
#[map]
pub static EVENTS0: RingBuf = RingBuf::with_byte_size(4096, 0);
#[map]
pub static EVENTS1: RingBuf = RingBuf::with_byte_size(4096, 0);
#[map]
pub static EVENTS2: RingBuf = RingBuf::with_byte_size(4096, 0);
#[map]
pub static EVENTS3: RingBuf = RingBuf::with_byte_size(4096, 0);
#[map]
pub static EVENTS4: RingBuf = RingBuf::with_byte_size(4096, 0);
#[map]
pub static EVENTS5: RingBuf = RingBuf::with_byte_size(4096, 0);
#[map]
pub static EVENTS6: RingBuf = RingBuf::with_byte_size(4096, 0);
#[map]
pub static EVENTS7: RingBuf = RingBuf::with_byte_size(4096, 0);
const _: () = assert!(wqtrace_common::MAX_RINGS == 8);

/// Events on ordinary pipes counted instead of streamed (`Filter::count_ordinary`), per cgroup
/// id and kind. Per CPU: no cache line bounces between the CPUs of a busy pipe. Entries are
/// never removed (userspace reads running totals); a (cgroup, kind) past the last entry has its
/// events streamed.
#[map]
pub static EVENT_COUNTS: PerCpuHashMap<CountKey, u64> = PerCpuHashMap::with_max_entries(4096, 0);

/// The counts array in front of [`EVENT_COUNTS`] (see `wqtrace_common::counts::COUNT_KINDS`):
/// each slot's owner (cgroup id + 1; 0: free), mapped into userspace, and each CPU's counters
/// per kind. `FILTER.count_slot_mask + 1` slots, sized by userspace.
#[map]
pub static COUNT_OWNERS: Array<u64> = Array::with_max_entries(1, BPF_F_MMAPABLE);
#[map]
pub static COUNTS_BY_SLOT: PerCpuArray<[u64; COUNT_KINDS]> = PerCpuArray::with_max_entries(1, 0);

/// Ring ops, contention and short waits on ordinary pipes added up per pipe instead of
/// streamed (`Filter::pipe_totals`). Per CPU, like [`EVENT_COUNTS`]; sized by userspace to the
/// CPUs (`probe::totals::Room`), for pipes whose totals-array slot another holds. Userspace
/// removes a pipe's entry once it has read it after the pipe was freed; a pipe past the last
/// entry has its ops streamed.
#[map]
pub static PIPE_TOTALS: PerCpuHashMap<PipeKey, PipeTotals> =
    PerCpuHashMap::with_max_entries(4096, 0);

/// The totals array in front of [`PIPE_TOTALS`] (`wqtrace_common::totals::SlotOwner`): who
/// holds each slot, and each CPU's totals in it. Sized by userspace
/// (`probe::totals::Room`), `FILTER.totals_slot_mask + 1` slots; the owners are mapped
/// into userspace, which reads them there and frees a gone pipe's slot.
#[map]
pub static TOTALS_OWNERS: Array<SlotOwner> = Array::with_max_entries(1, BPF_F_MMAPABLE);
#[map]
pub static TOTALS_BY_SLOT: PerCpuArray<SlotTotals> = PerCpuArray::with_max_entries(1, 0);

/// The durations of the counted waits and contention, per `counts::hist` row.
#[map]
pub static WAIT_HISTOGRAMS: PerCpuArray<WaitRow> = PerCpuArray::with_max_entries(hist::ROWS, 0);

/// Per-CPU counters, indexed by `wqtrace_common::stat`.
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

/// Values userspace and the programs exchange at run time; slots in
/// [`wqtrace_common::runtime`] (shared with the loader).
#[map]
pub static RUNTIME: Array<u64> = Array::with_max_entries(runtime::COUNT, 0);
pub use wqtrace_common::runtime::{
    HOOK_GET_PIPE_INFO, HOOK_PIPE_WAIT, HOOK_POST_LANDED, HOOK_SECURITY_MAY_SKIP,
    HOOKS as RT_HOOKS, PIPE_FOPS as RT_PIPE_FOPS,
};

/// The `HOOK_*` bits of the functions the loader attached (`RUNTIME[RT_HOOKS]`); a slot not
/// yet written reads as none hooked.
#[inline(always)]
pub fn hooks() -> u64 {
    RUNTIME.get(RT_HOOKS).copied().unwrap_or(0)
}

/// Pipes seen so far, by `pipe_inode_info` address. Lets the lock and notification hooks
/// (which only see kernel pointers) name the pipe and apply filters, and spares the syscall
/// hooks two reads per fd for a pipe they already know.
/// Sized by the loader (`wqtrace_common::known_pipes`).
#[map]
pub static KNOWN_PIPES: LruHashMap<u64, KnownPipe> =
    LruHashMap::with_max_entries(known_pipes::ROOM, 0);

/// How many entries [`KNOWN_PIPES`] holds, and the most it held (slots in
/// `wqtrace_common::known_pipes`): past its room, it may have dropped a pipe whose free then
/// goes unseen, and the recording says so.
#[map]
pub static KNOWN_COUNT: Array<u64> = Array::with_max_entries(known_pipes::COUNT, 0);

#[repr(C)]
#[derive(Clone, Copy)]
pub struct KnownPipe {
    pub ino: u64,
    /// The pipe's inode address: a pipe address reused by a pipe of another inode misses.
    pub inode: u64,
    /// 1: a notification pipe.
    pub notif: u64,
}

/// A direct-mapped copy of [`KNOWN_PIPES`], looked up first (`kread::cached_pipe`): an array
/// lookup is inlined, a hash lookup is a call that hashes the key. Under the TUI on stress-ng
/// --pipe, the hash lookup was 40-45 of sys_enter's 225 ns per run (issue #13). Written only
/// where KNOWN_PIPES is (`kread::remember`, the free hooks), never filled from a KNOWN_PIPES
/// hit: such a fill racing pipe2's rewrite of a reused address could leave the old pipe's
/// values behind for good.
#[map]
pub static PIPE_CACHE: Array<CachedPipe> = Array::with_max_entries(PIPE_CACHE_SLOTS, 0);
/// A power of two: the slot is the top bits of a multiplicative hash of the address.
pub const PIPE_CACHE_SLOTS: u32 = 4096;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct CachedPipe {
    pub pipe: u64,
    pub inode: u64,
    pub ino: u64,
    /// A hash of the three words above, with bit 1 set and the notification flag in bit 0;
    /// 0 = empty. Cleared first and written last: a reader racing a writer sees a tag that
    /// does not match the words it read, which reads as a miss.
    pub tag: u64,
}

/// One pipe end of a syscall in progress: the fd, the pipe behind it and its ring at entry.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Side {
    pub pipe: u64,
    pub ino: u64,
    pub fd: i32,
    pub head: u32,
    pub tail: u32,
    pub notif: u32,
}

impl Side {
    pub const NONE: Side = Side {
        pipe: 0,
        ino: 0,
        fd: -1,
        head: 0,
        tail: 0,
        notif: 0,
    };
}

/// A pipe syscall in progress, per thread.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Inflight {
    /// When the task went to sleep inside the syscall (0 = running).
    pub off_since: u64,
    /// Time asleep inside the syscall; for splice, tee and vmsplice, asleep on the wait queues
    /// of `src`'s pipe only (see `wait_on`).
    pub off_cpu_ns: u64,
    /// pipe2: user pointer to int[2]; ioctl: cmd; keyctl: watch id; read of a notification
    /// pipe: the user buffer; splice, tee and vmsplice: time asleep on `dst`'s pipe's queues
    /// (none of them has another use for it).
    pub arg: u64,
    /// pipe2: its flags.
    pub flags: u32,
    /// splice, tee and vmsplice: the wait queues the task slept on ([`WAIT_SRC_RD`]…), and
    /// the side of the current sleep (`WAIT_SRC_*` / `WAIT_DST_*` bits, 0: not on a pipe's).
    pub wait_on: u8,
    pub wait_now: u8,
    /// The kernel stack where the task first slept on `dst`'s pipe's queues (splice, tee,
    /// vmsplice; `wait_kstack` is `src`'s there).
    pub wait_kstack_dst: u16,
    /// Set by the get_pipe_info hook when it refused a notification pipe during this syscall.
    pub rejected_pipe: u64,
    /// The syscall's first argument: with `op`, tells this syscall's exit from a later one's
    /// when an exit went unseen (a tracer rewrote the syscall number).
    pub arg0: u64,
    /// The side data comes from (read, splice/tee input) and goes to (write, output).
    pub src: Side,
    pub dst: Side,
    /// The syscall (`Op`); 0 when the thread is in none that wqtrace follows.
    pub op: u8,
    /// [`COUNTED_AT_ENTRY`], [`TOTALS_AT_EXIT`] or 0 (streamed).
    pub counted: u8,
    /// Stacks taken where get_pipe_info refused (reported at sys_exit with the rejection).
    pub rej_kstack: u16,
    pub rej_ustack: u16,
    /// The kernel stack where the syscall first went to sleep (reported with its wait; for
    /// splice, tee and vmsplice, on `src`'s pipe's queues).
    pub wait_kstack: u16,
    /// The thread whose record this is: the owner of an [`INFLIGHT_BY_TID`] slot (0: free).
    /// 64 bits: BPF has a compare-and-swap of 64-bit words only (without alu32).
    pub tid: u64,
}

/// `Inflight::wait_on` bits: asleep on `src`'s pipe's `rd_wait` / `wr_wait`, on `dst`'s.
pub const WAIT_SRC_RD: u8 = 1;
pub const WAIT_SRC_WR: u8 = 2;
pub const WAIT_DST_RD: u8 = 4;
pub const WAIT_DST_WR: u8 = 8;
pub const WAIT_SRC: u8 = WAIT_SRC_RD | WAIT_SRC_WR;
pub const WAIT_DST: u8 = WAIT_DST_RD | WAIT_DST_WR;

/// `Inflight::counted`: the op was counted at entry (`syscalls::count_at_entry`); its exit
/// streams no ring op, and its ring was not snapshotted.
pub const COUNTED_AT_ENTRY: u8 = 1;
/// `Inflight::counted`: its exit adds the op to its pipes' totals (`crate::totals`), or, when
/// they have no room, streams it; its ring before was not snapshotted.
pub const TOTALS_AT_EXIT: u8 = 2;

/// The pipe syscall in progress of each thread that made one, in the slot its thread id
/// picks (`crate::inflight`): an array lookup is an address computation the verifier inlines,
/// where a hash lookup hashes and compares keys, and a traced op looked up its thread 3-4
/// times (sys_enter, sys_exit, sched_switch). A slot stays with the thread that claimed it
/// (`op` = 0 between syscalls) until `thread_exit`.
///
/// Slots are whole cache lines (mmapable: the array's values then start on a page): the threads
/// at the two ends of a pipe often have neighbouring ids, and records sharing a line made both
/// CPUs' writes bounce it.
///
/// Past the slots, one spare entry per possible CPU (the loader sizes the map): where
/// sys_enter builds the record of a thread that holds no slot (`inflight::entry_record`).
#[map]
pub static INFLIGHT_BY_TID: Array<InflightSlot> =
    Array::with_max_entries(INFLIGHT_SLOTS + 1, aya_ebpf::bindings::BPF_F_MMAPABLE);
pub use wqtrace_common::INFLIGHT_SLOTS;

#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub struct InflightSlot {
    pub f: Inflight,
    /// The thread's wait for a pipe lock (`crate::locks`), kept here for the same reason: two
    /// hash lookups per contention were ~40 % of contention_begin/end's run time.
    pub w: LockWait,
}

/// The records of threads whose slot in [`INFLIGHT_BY_TID`] another live thread holds (thread
/// ids equal modulo its size). An entry stays with its thread (`op` = 0 between syscalls) and is
/// rewritten in place, so a traced syscall costs two lookups, not an insert and a delete (those
/// were 7 % of a traced pipe workload's CPU, issue #13); `thread_exit` frees it. A plain hash,
/// not an LRU: eviction could drop a blocked reader's entry unseen, while a full map fails the
/// insert, which is counted as a lost event.
#[map]
pub static INFLIGHT: HashMap<u32, Inflight> = HashMap::with_max_entries(32768, 0);

/// How many records [`INFLIGHT`] ([`SPILLED_INFLIGHT`]) and [`LOCK_WAITS`]
/// ([`SPILLED_LOCK_WAITS`]) hold: while none, a thread that owns no slot has no record there,
/// and the hash is not searched (every read or write on the machine, traced or not, reaches
/// sys_exit, every context switch sched_switch, and every contended lock contention_begin).
#[map]
pub static INFLIGHT_SPILLED: Array<u64> = Array::with_max_entries(2, 0);
pub const SPILLED_INFLIGHT: u32 = 0;
pub const SPILLED_LOCK_WAITS: u32 = 1;

/// A task waiting for a known pipe's lock (contention_begin → contention_end).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LockWait {
    pub start_ns: u64,
    pub lock: u64,
    pub pipe: u64,
    pub ino: u64,
    pub owner_tid: u32,
    pub is_mutex: u32,
    /// `flags::LOCK_SPIN` / `flags::LOCK_SLEEP` phases seen so far.
    pub phases: u32,
    /// 1: a notification pipe's lock.
    pub notif: u32,
    pub owner_comm: [u8; 16],
}

/// Per thread that waited for a pipe lock while another live thread held the
/// [`INFLIGHT_BY_TID`] slot its id picks, kept and rewritten in place like [`INFLIGHT`]
/// (`lock` = 0: not waiting). A full map is counted as a lost event.
#[map]
pub static LOCK_WAITS: HashMap<u32, LockWait> = HashMap::with_max_entries(32768, 0);

/// A task inside pipe_wait_readable/_writable (entry → return) or get_pipe_info (kprobe entry).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FnEntry {
    pub start_ns: u64,
    pub arg0: u64,
    pub arg1: u64,
}

#[map]
pub static FN_ENTRY: LruHashMap<u64, FnEntry> = LruHashMap::with_max_entries(4096, 0);

/// A read of a notification pipe handed from sys_exit to `sys_exit_read_scan` (a tail call:
/// walking the records it returned is a loop the verifier would otherwise walk inside every
/// path of sys_exit).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ReadScan {
    pub f: Inflight,
    pub ret: i64,
    pub losses: u32,
    /// The read's off-CPU wait is to be streamed (see `syscalls::ring_op`).
    pub wait: u32,
}

#[map]
pub static READ_SCAN: PerCpuArray<ReadScan> = PerCpuArray::with_max_entries(1, 0);

/// The programs sys_exit tail-calls, set by userspace after loading them:
/// [TAIL_READ_SCAN] `sys_exit_read_scan`, [TAIL_SPLICE] `sys_exit_splice`.
#[map]
pub static TAILS: ProgramArray = ProgramArray::with_max_entries(2, 0);
/// A read of a notification pipe that returned records: walking them is a loop.
pub const TAIL_READ_SCAN: u32 = 0;
/// A splice, tee, vmsplice, sendfile or copy_file_range without direct loads (6.1): its ring
/// ops or rejection, after sys_exit streamed its waits. In one program, 6.1's verifier walked
/// the paths of the two multiplied: sys_exit verified 243k instructions there, against 114k +
/// 68k split. With direct loads sys_exit verifies ~26k and keeps them (no tail call per op).
pub const TAIL_SPLICE: u32 = 1;
