//! Reading kernel structures through BTF-resolved offsets.

use aya_ebpf::helpers::{bpf_probe_read_kernel_buf, generated::bpf_get_current_task_btf};
use wqtrace_common::{Event, NO_OFFSET};

use crate::{
    globals::off,
    maps::{
        CachedPipe, KNOWN_COUNT, KNOWN_PIPES, KnownPipe, PIPE_CACHE, PIPE_CACHE_SLOTS,
        RT_PIPE_FOPS, RUNTIME,
    },
};

/// `*(T *)(base + off)`, or None when the field is missing on this kernel or `base` is null.
/// A fault reads as zeros, through a probe read (the helper zeroes what it could not read) as
/// through direct loads (`crate::direct`): callers test the value, not whether it was read.
/// A probe read that answered None on a fault doubled the paths the verifier walks at every
/// read: 6.1, which has no direct loads, walked 282k instructions for sys_enter instead of 71k.
#[inline(always)]
pub fn rd<T: Copy>(base: u64, off: u32) -> Option<T> {
    let (ok, v) = rd_or_zeros::<T>(base, off);
    ok.then_some(v)
}

/// [`rd`] as (read, value), the value zeros when not read or faulted. Every path defines the
/// value: LLVM may compute with the payload of a `None` where the result cannot depend on it
/// (`notif = is_some & (wq != 0)`, branch-free), and a path that never set it leaves that
/// register uninitialised, which the verifier refuses ("R1 !read_ok"). Which path did that
/// moved with unrelated edits elsewhere in the program.
#[inline(always)]
fn rd_or_zeros<T: Copy>(base: u64, off: u32) -> (bool, T) {
    let zeros = || unsafe { core::mem::MaybeUninit::<T>::zeroed().assume_init() };
    if off == NO_OFFSET || base == 0 {
        return (false, zeros());
    }
    let at = base + off as u64;
    if crate::direct::on() {
        if let Some(v) = crate::direct::load::<T>(at) {
            return (true, v);
        }
    }
    // On a fault the helper zeroes the destination. Read back from memory either way, for the
    // same reason as above: a value left undefined on one path compiles to no instruction.
    let mut v = core::mem::MaybeUninit::<T>::zeroed();
    unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            v.as_mut_ptr().cast(),
            core::mem::size_of::<T>() as u32,
            at as *const core::ffi::c_void,
        )
    };
    (true, unsafe { core::ptr::read_volatile(v.as_ptr()) })
}

/// `*(T *)(base + off)` where `base` is a BTF-typed kernel pointer (the verifier turns the
/// load into an exception-handled one: a fault reads as 0).
#[inline(always)]
pub fn btf_load<T: Copy>(base: u64, off: u32) -> T {
    unsafe { core::ptr::read_volatile((base + off as u64) as *const T) }
}

/// The current task (BTF-typed) with its thread and process ids, read from it: one helper
/// call at a syscall's entry where `bpf_get_current_pid_tgid` and then
/// `bpf_get_current_task_btf` for each fd took two or three.
#[inline(always)]
pub fn current() -> (u64, u32, u32) {
    let task = unsafe { bpf_get_current_task_btf() } as u64;
    let (po, to) = (off!(task_pid), off!(task_tgid));
    if po == NO_OFFSET || to == NO_OFFSET || task == 0 {
        let pid_tgid = aya_ebpf::helpers::bpf_get_current_pid_tgid();
        return (task, pid_tgid as u32, (pid_tgid >> 32) as u32);
    }
    (task, btf_load::<u32>(task, po), btf_load::<u32>(task, to))
}

/// The current task's open-file table: its `fd` array and `max_fds`, read once for every fd
/// a syscall names (splice, tee, sendfile and copy_file_range name two).
#[derive(Clone, Copy)]
pub struct FdTable {
    fds: u64,
    max: u32,
}

impl FdTable {
    /// `task->files->fdt->{fd, max_fds}` of `task`, the current task (BTF-typed): plain loads
    /// the verifier checks against the kernel's types (a fault reads as 0), not helper calls.
    /// The offsets are .rodata constants it knows.
    #[inline(always)]
    pub fn of(task: u64) -> Option<FdTable> {
        let (fo, to, mo, ao) = (
            off!(task_files),
            off!(files_fdt),
            off!(fdt_max_fds),
            off!(fdt_fd),
        );
        if fo == NO_OFFSET || to == NO_OFFSET || mo == NO_OFFSET || ao == NO_OFFSET {
            return None;
        }
        let files = btf_load::<u64>(task, fo);
        if files == 0 {
            return None;
        }
        let fdt = btf_load::<u64>(files, to);
        if fdt == 0 {
            return None;
        }
        Some(FdTable {
            max: btf_load::<u32>(fdt, mo),
            fds: btf_load::<u64>(fdt, ao),
        })
    }

    /// The `struct file *` behind `fd`.
    #[inline(always)]
    pub fn file(&self, fd: i64) -> Option<u64> {
        if fd < 0 || fd as u64 >= self.max as u64 {
            return None;
        }
        let file: u64 = rd(self.fds, (fd as u32) * 8)?;
        if file == 0 { None } else { Some(file) }
    }
}

/// The `struct file *` behind `fd` in the current task's fd table.
#[inline(always)]
pub fn fd_file(fd: i64) -> Option<u64> {
    FdTable::of(unsafe { bpf_get_current_task_btf() } as u64)?.file(fd)
}

/// Argument `n` of an fentry program's function as a plain number to the verifier. Read from
/// the context, a pointer argument is BTF-typed, and the verifier refuses PIPE_CACHE's hash on
/// it (shifts and multiplications; a partial read of the pointer spilled to the stack too).
/// `bpf_get_func_arg` writes a scalar, and the verifier inlines it into a few loads (5.17+),
/// where a probe read of a copy was a helper call: ~100 ns of the landing hook's ~2 µs per
/// post in the TCG guest.
#[inline(always)]
pub fn fentry_arg(ctx: *mut core::ffi::c_void, n: u32) -> u64 {
    let mut v = 0u64;
    if unsafe { aya_ebpf::helpers::generated::bpf_get_func_arg(ctx, n, &mut v) } != 0 {
        return 0;
    }
    v
}

/// A pipe as the hooks see it.
#[derive(Clone, Copy)]
pub struct PipeRef {
    pub pipe: u64,
    pub ino: u64,
    pub notif: bool,
    /// `file->f_inode` (0 when the pipe was named by address, not through a file).
    pub inode: u64,
}

#[inline(always)]
pub fn pipe_fops() -> u64 {
    match RUNTIME.get(RT_PIPE_FOPS) {
        Some(v) => *v,
        None => 0,
    }
}

/// `file->private_data` and `->f_inode` when `file->f_op` is `fops`. Since 6.12 the three
/// sit within 32 bytes of each other (one probe read, not three: every traced syscall
/// resolves its fds); direct loads read f_op first, and the rest only for a pipe.
#[inline(always)]
fn file_fields(file: u64, fops: u64) -> Option<(u64, u64)> {
    let (fo, po, io) = (off!(file_f_op), off!(file_private_data), off!(file_f_inode));
    if !crate::direct::on() && fo != NO_OFFSET && po != NO_OFFSET && io != NO_OFFSET {
        let lo = fo.min(po).min(io);
        let hi = fo.max(po).max(io);
        if hi - lo <= 24 && (fo | po | io) & 7 == 0 {
            let b: [u64; 4] = rd(file, lo)?;
            let at = |o: u32| b[(((o - lo) >> 3) & 3) as usize];
            return (at(fo) == fops).then(|| (at(po), at(io)));
        }
    }
    if rd::<u64>(file, fo)? != fops {
        return None;
    }
    Some((rd(file, po)?, rd(file, io)?))
}

/// The pipe behind `file`, if it is one (its f_op is the pipe fops wqtrace calibrated), and
/// whether KNOWN_PIPES already holds it (`cached`: look there first). A known pipe's inode
/// number and notification flag come from the map: they never change while the pipe lives.
/// A freed pipe's address is reused, and an anonymous pipe's `pipe_inode_info` and inode are
/// freed together and handed out again together (LIFO) by the next pipe2(): the inode pointer
/// stored with the entry does not tell those apart, so pipe()/pipe2() (followed for every
/// task, and the only way an anonymous pipe comes to be) rewrite the entry from the kernel.
/// The inode pointer still tells a FIFO (a filesystem inode) from an anonymous pipe.
#[inline(always)]
fn file_pipe_cached(file: u64, cached: bool) -> Option<(PipeRef, bool)> {
    let fops = pipe_fops();
    if fops == 0 {
        return None;
    }
    let (pipe, inode) = file_fields(file, fops)?;
    if pipe == 0 {
        return None;
    }
    if let Some(k) = cached.then(|| known_pipe(pipe)).flatten() {
        if k.inode == inode {
            return Some((k, true));
        }
    }
    let ino: u64 = rd(inode, off!(inode_i_ino)).unwrap_or(0);
    let wq: u64 = rd(pipe, off!(pipe_watch_queue)).unwrap_or(0);
    Some((
        PipeRef {
            pipe,
            ino,
            notif: wq != 0,
            inode,
        },
        false,
    ))
}

/// The pipe behind `file`, if it is one, read from the kernel (not KNOWN_PIPES).
#[inline(always)]
pub fn file_pipe(file: u64) -> Option<PipeRef> {
    file_pipe_cached(file, false).map(|(p, _)| p)
}

/// The pipe behind `fd` in `table`, if it passes the pipe filters; remembered in KNOWN_PIPES.
#[inline(always)]
pub fn fd_pipe(table: &FdTable, fd: i64) -> Option<PipeRef> {
    let (p, known) = file_pipe_cached(table.file(fd)?, true)?;
    if !crate::filters::pipe_wanted(p.ino, p.notif) {
        return None;
    }
    if !known {
        remember(&p);
    }
    Some(p)
}

#[inline(always)]
pub fn remember(p: &PipeRef) {
    let v = KnownPipe {
        ino: p.ino,
        inode: p.inode,
        notif: p.notif as u64,
    };
    let (same, new) = match unsafe { KNOWN_PIPES.get(p.pipe) } {
        Some(k) => (
            k.ino == v.ino && k.inode == v.inode && k.notif == v.notif,
            false,
        ),
        None => (false, true),
    };
    if !same && KNOWN_PIPES.insert(p.pipe, v, 0).is_ok() && new {
        count_known(1);
    }
    cache_put(p);
}

/// Adds `n` (wrapping: u64::MAX takes one away) to the entries KNOWN_PIPES holds, and keeps
/// the peak. Once per pipe, not per op: atomic, since every CPU adds to the one count.
#[inline(always)]
fn count_known(n: u64) {
    use core::intrinsics::{AtomicOrdering, atomic_xadd};
    use wqtrace_common::known_pipes::{HELD, PEAK};
    let Some(held) = KNOWN_COUNT.get_ptr_mut(HELD) else {
        return;
    };
    // The add's old value cannot be used (no BPF_FETCH at the "generic" CPU level): the
    // count is read back, a value it held at some instant.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(held, n) };
    let now = unsafe { core::ptr::read_volatile(held) };
    if let Some(peak) = KNOWN_COUNT.get_ptr_mut(PEAK) {
        // Racing CPUs may each store theirs: the peak may read a few short, never more than
        // were held.
        if (now as i64) > unsafe { core::ptr::read_volatile(peak) } as i64 {
            unsafe { core::ptr::write_volatile(peak, now) };
        }
    }
}

/// The pipe is gone: neither KNOWN_PIPES nor PIPE_CACHE names its address any more.
#[inline(always)]
pub fn forget(pipe: u64) {
    if KNOWN_PIPES.remove(pipe).is_ok() {
        count_known(u64::MAX);
    }
    if let Some(c) = PIPE_CACHE.get_ptr_mut(cache_slot(pipe)) {
        if unsafe { core::ptr::read_volatile(&raw const (*c).pipe) } == pipe {
            unsafe { core::ptr::write_volatile(&raw mut (*c).tag, 0) };
        }
    }
}

#[inline(always)]
fn cache_slot(pipe: u64) -> u32 {
    // Fibonacci hashing: pipe_inode_info addresses are slab objects of one size apart.
    let bits = PIPE_CACHE_SLOTS.trailing_zeros();
    ((pipe >> 6).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits)) as u32
}

#[inline(always)]
fn cache_tag(pipe: u64, inode: u64, ino: u64, notif: bool) -> u64 {
    let h =
        (pipe ^ inode.rotate_left(21) ^ ino.rotate_left(42)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    (h & !3) | 2 | notif as u64
}

#[inline(always)]
fn cache_put(p: &PipeRef) {
    let Some(c) = PIPE_CACHE.get_ptr_mut(cache_slot(p.pipe)) else {
        return;
    };
    // x86 keeps stores in order, and so does the JIT with volatile ones: a reader sees the
    // tag cleared, or the old entry whole, or words that do not hash to the tag it reads.
    unsafe {
        core::ptr::write_volatile(&raw mut (*c).tag, 0);
        core::ptr::write_volatile(&raw mut (*c).pipe, p.pipe);
        core::ptr::write_volatile(&raw mut (*c).inode, p.inode);
        core::ptr::write_volatile(&raw mut (*c).ino, p.ino);
        core::ptr::write_volatile(
            &raw mut (*c).tag,
            cache_tag(p.pipe, p.inode, p.ino, p.notif),
        );
    }
}

/// `pipe` as PIPE_CACHE holds it, if it does.
#[inline(always)]
fn cached_pipe(pipe: u64) -> Option<PipeRef> {
    let c: *const CachedPipe = PIPE_CACHE.get_ptr(cache_slot(pipe))?;
    let (p, inode, ino, tag) = unsafe {
        (
            core::ptr::read_volatile(&raw const (*c).pipe),
            core::ptr::read_volatile(&raw const (*c).inode),
            core::ptr::read_volatile(&raw const (*c).ino),
            core::ptr::read_volatile(&raw const (*c).tag),
        )
    };
    let notif = tag & 1 != 0;
    if p != pipe || tag == 0 || tag != cache_tag(p, inode, ino, notif) {
        return None;
    }
    Some(PipeRef {
        pipe,
        ino,
        notif,
        inode,
    })
}

/// A known notification pipe by its kernel address. An entry that says "ordinary pipe" for
/// an address a watch queue points at is stale (a notification pipe is one from pipe2() on),
/// so it counts as unknown: its inode would be another pipe's.
#[inline(always)]
pub fn known_notify_pipe(pipe: u64) -> Option<PipeRef> {
    known_pipe(pipe).filter(|p| p.notif)
}

/// A known pipe by its kernel address.
#[inline(always)]
pub fn known_pipe(pipe: u64) -> Option<PipeRef> {
    if let Some(c) = cached_pipe(pipe) {
        return Some(c);
    }
    let k = unsafe { KNOWN_PIPES.get(pipe) }?;
    Some(PipeRef {
        pipe,
        ino: k.ino,
        notif: k.notif != 0,
        inode: k.inode,
    })
}

/// head/tail/ring_size/max_usage of a pipe.
#[derive(Clone, Copy, Default)]
pub struct Ring {
    pub head: u32,
    pub tail: u32,
    pub ring_size: u32,
    pub max_usage: u32,
}

#[inline(always)]
fn rd_index(pipe: u64, off: u32) -> u32 {
    // pipe_index_t is unsigned short on some 32-bit configurations (6.15+).
    if off!(pipe_index_size) == 2 {
        rd::<u16>(pipe, off).unwrap_or(0) as u32
    } else {
        rd::<u32>(pipe, off).unwrap_or(0)
    }
}

/// The offsets of head, tail, ring_size and max_usage when all four are u32s on this kernel,
/// so that one read can take them. They have always been four consecutive u32s (head/tail a
/// union since 6.15).
#[inline(always)]
fn ring_u32s() -> Option<(u32, u32, u32, u32)> {
    let (h, t, rs, mu) = (
        off!(pipe_head),
        off!(pipe_tail),
        off!(pipe_ring_size),
        off!(pipe_max_usage),
    );
    let present = h != NO_OFFSET && t != NO_OFFSET && rs != NO_OFFSET && mu != NO_OFFSET;
    (off!(pipe_index_size) == 4 && present && (h | t | rs | mu) & 3 == 0).then_some((h, t, rs, mu))
}

/// The ring from a block of `N` u32s read at pipe offset `lo`.
#[inline(always)]
fn ring_in<const N: usize>(b: &[u32; N], lo: u32, (h, t, rs, mu): (u32, u32, u32, u32)) -> Ring {
    let at = |o: u32| b[((o - lo) >> 2) as usize % N];
    Ring {
        head: at(h),
        tail: at(t),
        ring_size: at(rs),
        max_usage: at(mu),
    }
}

#[inline(always)]
pub fn ring(pipe: u64) -> Ring {
    // Every syscall reads its pipe's ring twice: one read, not four.
    if let Some(o @ (h, t, rs, mu)) = ring_u32s().filter(|_| pipe != 0) {
        let lo = h.min(t).min(rs).min(mu);
        if h.max(t).max(rs).max(mu) - lo <= 12 {
            let b: [u32; 4] = rd(pipe, lo).unwrap_or([0; 4]);
            return ring_in(&b, lo, o);
        }
    }
    let (h, t, rs, mu) = (
        off!(pipe_head),
        off!(pipe_tail),
        off!(pipe_ring_size),
        off!(pipe_max_usage),
    );
    Ring {
        head: rd_index(pipe, h),
        tail: rd_index(pipe, t),
        ring_size: rd(pipe, rs).unwrap_or(0),
        max_usage: rd(pipe, mu).unwrap_or(0),
    }
}

/// The task holding the pipe mutex: (tid, task pointer), (0, 0) when unlocked.
#[inline(always)]
pub fn mutex_owner(pipe: u64) -> (u32, u64) {
    let owner = owner_task(pipe);
    if owner == 0 {
        return (0, 0);
    }
    (task_tid(owner), owner)
}

/// The task pointer in the pipe mutex's owner word, 0 when unlocked.
#[inline(always)]
fn owner_task(pipe: u64) -> u64 {
    let o = off!(pipe_mutex);
    let mo = off!(mutex_owner);
    if o == NO_OFFSET || mo == NO_OFFSET {
        return 0;
    }
    // mutex.owner is a task pointer with MUTEX_FLAGS (0x07) in its low bits.
    rd::<u64>(pipe, o + mo).unwrap_or(0) & !0x07
}

/// The ring (as [`ring`]) and the mutex owner's task pointer (as [`mutex_owner`], 0 when
/// unlocked), in one read where the kernel lays them out within 96 bytes of each other (the
/// mutex, the two wait queues, then head/tail/max_usage/ring_size, since 5.5): every ring op
/// reports both at sys_exit.
#[inline(always)]
pub fn ring_and_owner(pipe: u64) -> (Ring, u64) {
    const WORDS: usize = 24;
    let (mo, oo) = (off!(pipe_mutex), off!(mutex_owner));
    // Direct loads read the five words alone.
    let owned = !crate::direct::on() && mo != NO_OFFSET && oo != NO_OFFSET && (mo + oo) & 7 == 0;
    if let Some(o @ (h, t, rs, mu)) = ring_u32s().filter(|_| pipe != 0 && owned) {
        let own = mo + oo;
        let lo = own.min(h).min(t).min(rs).min(mu);
        if own.max(h).max(t).max(rs).max(mu) + 4 - lo <= WORDS as u32 * 4 {
            let b: [u32; WORDS] = rd(pipe, lo).unwrap_or([0; WORDS]);
            let at = |o: u32| b[((o - lo) >> 2) as usize % WORDS] as u64;
            return (ring_in(&b, lo, o), (at(own) | at(own + 4) << 32) & !0x07);
        }
    }
    (ring(pipe), owner_task(pipe))
}

/// A task's thread id (`task->pid`).
#[inline(always)]
pub fn task_tid(task: u64) -> u32 {
    rd(task, off!(task_pid)).unwrap_or(0)
}

/// Copy a task's comm into `dst`.
#[inline(always)]
pub fn task_comm(task: u64, dst: &mut [u8; 16]) {
    if task == 0 {
        return;
    }
    let o = off!(task_comm);
    if o == NO_OFFSET {
        return;
    }
    if crate::direct::on() {
        if let Some(c) = rd::<[u8; 16]>(task, o) {
            *dst = c;
        }
        return;
    }
    // Straight into dst: a helper returning the array by value would leave a stack pointer
    // in r0, which the verifier refuses at a subprogram's exit.
    let _ = unsafe { bpf_probe_read_kernel_buf((task + o as u64) as *const u8, dst) };
}

/// Notes (`nr_notes`) and notes in use of a watch_queue (notes_bitmap: set bit = free).
#[inline(always)]
pub fn notes_state(wq: u64) -> (u32, u32) {
    let nr: u32 = rd(wq, off!(wq_nr_notes)).unwrap_or(0);
    let bitmap: u64 = match rd(wq, off!(wq_notes_bitmap)) {
        Some(b) if b != 0 => b,
        _ => return (nr, 0),
    };
    let mut free = 0u32;
    // watch_queue_set_size caps nr_notes at 512 (8 words). bitmap_fill sets whole words, so
    // the bits past nr_notes in the last word read as free: mask them off. Branch-light, and
    // a failed read leaves an unknown word rather than a constant: older verifiers (6.1)
    // give up on this loop when its paths fork per word.
    for w in 0..8u32 {
        if w * 64 >= nr {
            break;
        }
        // A failed read is a zero word, not a branch: see above.
        let mut v = rd_or_zeros::<u64>(bitmap, w * 8).1;
        let left = nr - w * 64;
        if left < 64 {
            v &= (1u64 << (left & 63)) - 1;
        }
        free += v.count_ones();
    }
    (nr, nr - free.min(nr))
}

/// The note a notification slot holds: its notes page's first note (`page->index`, set by
/// watch_queue_set_size) plus the 128-byte note's place in the page (`buf->offset`).
#[inline(always)]
pub fn buf_note(pipe: u64, slot: u32, ring_size: u32) -> u32 {
    const WATCH_QUEUE_NOTE_SIZE: u32 = 128;
    let size = off!(buf_size);
    if ring_size == 0 || size == NO_OFFSET {
        return u32::MAX;
    }
    let Some(bufs) = rd::<u64>(pipe, off!(pipe_bufs)) else {
        return u32::MAX;
    };
    let buf = bufs + (slot & (ring_size - 1)) as u64 * size as u64;
    let (Some(page), Some(offset)) = (
        rd::<u64>(buf, off!(buf_page)),
        rd::<u32>(buf, off!(buf_offset)),
    ) else {
        return u32::MAX;
    };
    match rd::<u64>(page, off!(page_index)) {
        Some(index) => index as u32 + offset / WATCH_QUEUE_NOTE_SIZE,
        None => u32::MAX,
    }
}

/// The ring state after an event: head, tail, size, max_usage.
#[inline(always)]
pub fn fill_ring(e: &mut Event, pipe: u64) {
    put_ring(e, ring(pipe));
}

/// A ring state read already, into the event.
#[inline(always)]
pub fn put_ring(e: &mut Event, r: Ring) {
    e.head = r.head;
    e.tail = r.tail;
    e.ring_size = r.ring_size;
    e.max_usage = r.max_usage;
}

/// A notification pipe's notes: how many, how many in use.
#[inline(always)]
pub fn fill_notes(e: &mut Event, pipe: u64) {
    let wq: u64 = rd(pipe, off!(pipe_watch_queue)).unwrap_or(0);
    if wq != 0 {
        let (nr, used) = notes_state(wq);
        e.nr_notes = nr;
        e.notes_in_use = used;
    }
}
