//! The read-only globals userspace sets before loading the programs.

use crate::NO_OFFSET;

/// Field offsets resolved from the running kernel's BTF by userspace and handed to the programs
/// as one global. [`NO_OFFSET`] marks a field this kernel lacks; the programs then skip the
/// feature that needs it instead of failing to load.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offsets {
    pub task_pid: u32,
    /// `task_struct.__state` (`state` before 5.14): whether a task leaving the CPU to sleep
    /// was woken meanwhile.
    pub task_state: u32,
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
    /// `rd_wait.head` and `wr_wait.head`, the lists a task sleeping for the pipe is on, and
    /// `wait_queue_entry.{private, entry}`: whether a task asleep in splice/tee/vmsplice
    /// waits for this pipe (`sched_switch`, where pipe_wait_readable/_writable cannot be hooked).
    pub pipe_rd_wait_head: u32,
    pub pipe_wr_wait_head: u32,
    pub wqe_private: u32,
    pub wqe_entry: u32,
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
    /// `task_struct.cgroups` → `css_set.dfl_cgrp` → `cgroup.kn` → `kernfs_node.id` (u64): the
    /// task's cgroup v2 id, as `bpf_get_current_cgroup_id` finds it, by four loads.
    pub task_cgroups: u32,
    pub cset_dfl_cgrp: u32,
    pub cgroup_kn: u32,
    pub kn_id: u32,
    /// Not offsets: the BTF ids of the structs `atomic64_t` and `atomic_t` name (one s64 /
    /// s32 at offset 0), which `bpf_rdonly_cast` casts kernel addresses to so the programs
    /// load kernel words directly instead of calling `bpf_probe_read_kernel`. 0: probe reads
    /// only (a kernel before 6.2, or `WQTRACE_PROBE_READS=1`).
    pub direct_s64_btf_id: u32,
    pub direct_s32_btf_id: u32,
}

/// The helper number the programs call where they mean the kfunc `bpf_rdonly_cast`: aya
/// cannot relocate kfunc calls, so userspace rewrites every `call DIRECT_CAST_MARKER` in the
/// object before loading it (`probe::direct`). No helper has this number.
pub const DIRECT_CAST_MARKER: i32 = 0x0bad_ca57;

impl Offsets {
    pub const fn missing() -> Self {
        Self {
            task_pid: NO_OFFSET,
            task_state: NO_OFFSET,
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
            pipe_rd_wait_head: NO_OFFSET,
            pipe_wr_wait_head: NO_OFFSET,
            wqe_private: NO_OFFSET,
            wqe_entry: NO_OFFSET,
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
            task_cgroups: NO_OFFSET,
            cset_dfl_cgrp: NO_OFFSET,
            cgroup_kn: NO_OFFSET,
            kn_id: NO_OFFSET,
            direct_s64_btf_id: 0,
            direct_s32_btf_id: 0,
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
    /// Only tasks in this cgroup v2 (its id, the directory's inode) or below it; 0 = all.
    pub cgroup_id: u64,
    /// That cgroup's depth below the root (the root is 0).
    pub cgroup_level: u32,
    /// Which events take call stacks ([`crate::stack_mode`]).
    pub stacks: u32,
    /// A wait takes stacks from this long (ns) in [`crate::stack_mode::RARE`].
    pub stack_wait_ns: u64,
    /// 1 = events on ordinary (not notification) pipes that a sink only counts (serve without
    /// --all-pipes) are counted in the kernel instead of streamed ([`crate::counts`]): ring ops
    /// (at sys_enter), off-CPU waits in read/write, lock contention. One that finds
    /// `EVENT_COUNTS` full is streamed.
    pub count_ordinary: u32,
    /// Events go to ring `cpu & ring_mask` (ring_mask + 1 rings, at most [`MAX_RINGS`]): one
    /// ring per CPU where there are enough, so CPUs do not contend for one ring's lock.
    pub ring_mask: u32,
    /// 1 = ring ops, lock contention and waits shorter than `stack_wait_ns` on ordinary pipes,
    /// which a live view only totals (tui without --all-pipes), are added up per pipe in the
    /// kernel instead of streamed ([`crate::totals`]). One that finds `PIPE_TOTALS` full is
    /// streamed.
    pub pipe_totals: u32,
    /// The totals array has `totals_slot_mask + 1` slots ([`crate::totals::SlotOwner`]).
    pub totals_slot_mask: u32,
    /// The counts array has `count_slot_mask + 1` slots ([`crate::counts::COUNT_KINDS`]).
    pub count_slot_mask: u32,
    /// Threads' records go to slot `tid & inflight_slot_mask` of the in-flight table (at most
    /// [`crate::INFLIGHT_SLOTS`]), or, with [`INFLIGHT_NO_SLOTS`], all to its overflow hashes.
    pub inflight_slot_mask: u32,
}

/// `Filter::inflight_slot_mask`: no thread holds a slot (tests of the overflow hashes).
pub const INFLIGHT_NO_SLOTS: u32 = u32::MAX;

/// Ring buffers in the object (`EVENTS0`…); the programs write to the first `ring_mask + 1`.
pub const MAX_RINGS: usize = 8;

impl Filter {
    pub const fn none() -> Self {
        Self {
            tgid: 0,
            ino: 0,
            comm: [0; 16],
            notification_only: 0,
            self_tgid: 0,
            empty: 0,
            cgroup_id: 0,
            cgroup_level: 0,
            stacks: 0,
            stack_wait_ns: 0,
            count_ordinary: 0,
            ring_mask: 0,
            pipe_totals: 0,
            totals_slot_mask: 0,
            count_slot_mask: 0,
            inflight_slot_mask: crate::INFLIGHT_SLOTS - 1,
        }
    }
}

/// How many functions' code [`Ksyms::free_sites`] can name.
pub const FREE_SITES: usize = 6;

/// Kernel symbol addresses from /proc/kallsyms (0 = unknown), one global. They let the
/// programs read the current CPU's preempt_count and tell task, softirq and irq context apart,
/// and see pipes freed where free_pipe_info cannot be hooked.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Ksyms {
    /// `__per_cpu_offset` (array of each CPU's per-cpu base).
    pub per_cpu_offset: u64,
    /// Per-cpu address of the preempt count: `&pcpu_hot.preempt_count` (6.2–6.14) or
    /// `&__preempt_count`.
    pub preempt_count: u64,
    /// `[start, end)` of the functions a `kfree(pipe)` of free_pipe_info's is called from:
    /// free_pipe_info's own code, or its callers' where the compiler made that kfree a tail
    /// call (the call site the kfree tracepoint reports is then the caller's). Unused: [0, 0).
    pub free_sites: [[u64; 2]; FREE_SITES],
}

impl Ksyms {
    pub const fn none() -> Self {
        Self {
            per_cpu_offset: 0,
            preempt_count: 0,
            free_sites: [[0; 2]; FREE_SITES],
        }
    }
}
