//! Which tasks and pipes are traced: the filters userspace set (`FILTER`), applied by every hook
//! before it reads anything more.

use crate::{
    globals::filter,
    kread::{self, known_pipe},
};

/// Whether the current task passes the task filters (and is not wqtrace itself).
#[inline(always)]
pub fn task_wanted(tgid: u32) -> bool {
    if tgid == filter!(self_tgid) {
        return false;
    }
    let want = filter!(tgid);
    if want != 0 && want != tgid {
        return false;
    }
    let cg = filter!(cgroup_id);
    // The task's cgroup, or its ancestor at the wanted cgroup's depth, is the wanted one.
    if cg != 0 {
        let level = filter!(cgroup_level) as i32;
        if unsafe { aya_ebpf::helpers::bpf_get_current_ancestor_cgroup_id(level) } != cg {
            return false;
        }
    }
    let pat: [u8; 16] = unsafe { core::ptr::read_volatile(&raw const crate::globals::FILTER.comm) };
    if pat[0] == 0 {
        return true;
    }
    let comm = aya_ebpf::helpers::bpf_get_current_comm().unwrap_or([0; 16]);
    for i in 0..16 {
        if pat[i] == 0 {
            return true;
        }
        if pat[i] != comm[i] {
            return false;
        }
    }
    true
}

/// Whether the session filters tasks (`-p`, `-c`, `--cgroup`; .rodata: the verifier drops the
/// code behind a false one).
#[inline(always)]
pub fn task_filter_set() -> bool {
    let comm0 = unsafe { core::ptr::read_volatile(&raw const crate::globals::FILTER.comm[0]) };
    filter!(tgid) != 0 || filter!(cgroup_id) != 0 || comm0 != 0
}

/// The pipe filters: `--pipe INODE`, `--notification-only`.
#[inline(always)]
pub fn pipe_wanted(ino: u64, notif: bool) -> bool {
    let want_ino = filter!(ino);
    if want_ino != 0 && want_ino as u64 != ino {
        return false;
    }
    !(filter!(notification_only) != 0 && !notif)
}

/// Whether a known pipe is traced (used by the other kernel-function hooks).
#[inline(always)]
pub fn traced_pipe(pipe: u64) -> Option<kread::PipeRef> {
    let p = known_pipe(pipe)?;
    if pipe_wanted(p.ino, p.notif) {
        Some(p)
    } else {
        None
    }
}
