//! Slots of the maps both sides index, and the calibration handshake.

/// Index of the per-CPU counters in the `STATS` map.
pub mod stat {
    /// Ring buffer reservations that failed: events lost.
    pub const LOST: u32 = 0;
    /// Events submitted.
    pub const SUBMITTED: u32 = 1;
    /// Sleeps of splice, tee or vmsplice that sched_switch (timing them where
    /// pipe_wait_readable/_writable cannot be hooked) could not place on a wait queue: woken
    /// as they left the CPU, their entry already taken off. Not timed as pipe waits.
    pub const SLEEPS_UNATTRIBUTED: u32 = 2;
    pub const COUNT: u32 = 3;
}

/// `KNOWN_PIPES`, the pipes the programs know by address, and the `KNOWN_COUNT` array that
/// counts its entries. An LRU map drops its least recent entry, silently, once it is short of
/// free ones; a pipe dropped and freed is a free the programs do not see. No entry is dropped
/// while at most [`ROOM`](known_pipes::ROOM) are held: the loader sizes the map that much
/// larger than this as the kernel's per-CPU free lists can hold back
/// (`known_pipes::map_entries`).
pub mod known_pipes {
    /// Entries held with none dropped.
    pub const ROOM: u32 = 16384;
    /// Free entries one CPU's list may hold (the kernel's `LOCAL_FREE_TARGET`): the kernel
    /// starts dropping entries when the shared free list has fewer than this.
    pub const PER_CPU_FREE: u32 = 128;
    /// `KNOWN_COUNT` slots: entries added less those the programs removed (never less than
    /// the entries held: drops are not seen), and the most that ever was.
    pub const HELD: u32 = 0;
    pub const PEAK: u32 = 1;
    pub const COUNT: u32 = 2;

    /// The map's size for `cpus` possible CPUs: ROOM held with none dropped.
    pub const fn map_entries(cpus: u32) -> u32 {
        ROOM + PER_CPU_FREE * (cpus + 1)
    }
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
    /// pipe_wait_readable/_writable are hooked, so they (not sched_switch) time the waits of
    /// splice, tee and vmsplice.
    pub const HOOK_PIPE_WAIT: u64 = 8;
}

/// fcntl(fd, F_GETPIPE_SZ) issued by wqtrace itself on this magic pipe teaches the programs
/// the address of the kernel's pipe `file_operations` (kallsyms may not name it).
pub const CALIBRATE_FCNTL_CMD: u32 = 1032; // F_GETPIPE_SZ
