//! wqtrace's BPF programs. Every hook reads kernel structures through offsets that userspace
//! resolved from the running kernel's BTF (`OFFSETS`), because aya has no CO-RE on the Rust side.
//!
//! Shared: [`filters`] (which tasks and pipes are traced), [`kread`] (kernel structs through the
//! BTF offsets), [`emit`] (events into the ring buffer), [`stacks`] (call stacks of the rare
//! events).
//!
//! Hooks, by subsystem:
//! - [`syscalls`]: tp_btf sys_enter/sys_exit: pipe creation, ring operations, rejected splices
//!   (the tracepoint path, which works on every kernel with BTF);
//! - [`sched`]: sched_switch: off-CPU time inside pipe syscalls (blocked read()/write());
//! - [`locks`]: contention_begin/end matched to known pipes' mutex and rd_wait spinlock;
//! - [`notify`]: `__post_watch_notification` entry/return (fentry/fexit or kprobe/kretprobe);
//! - [`splice_reject`]: `get_pipe_info` returning NULL for a notification pipe;
//! - [`waits`]: `pipe_wait_readable`/`pipe_wait_writable` (splice paths);
//! - [`release`]: `free_pipe_info` (or, where it cannot be hooked, its `kfree`).
#![no_std]
#![no_main]
// atomic_xadd (counted.rs): BPF has atomic adds but no compare-and-swap, so core's atomics
// offer no fetch_add there.
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod counted;
mod direct;
mod emit;
mod filters;
mod globals;
mod inflight;
mod kread;
mod locks;
mod maps;
mod notify;
mod release;
mod sched;
mod splice_reject;
mod stacks;
mod syscalls;
mod totals;
mod waits;
mod words;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
