//! The event ABI shared by the BPF programs (`wqtrace-ebpf`) and userspace (`wqtrace`).
//!
//! Everything here is `#[repr(C)]` and `Copy`: the programs write these bytes into one BPF ring
//! buffer, userspace reads them back with `read_unaligned`. Any change to a layout must bump
//! [`ABI_VERSION`], which recordings carry in their header.
#![no_std]

/// Bumped whenever [`Event`] or [`Offsets`] change layout.
pub const ABI_VERSION: u32 = 4;

/// Sentinel for an offset the running kernel does not have (field missing from its BTF).
pub const NO_OFFSET: u32 = u32::MAX;

/// Slots in the programs' table of syscalls in progress, one per thread id modulo this. Of the
/// live threads whose ids share a slot, the first to make a pipe syscall holds it; the others'
/// syscalls go to an overflow hash (wqtrace-ebpf `inflight`).
pub const INFLIGHT_SLOTS: u32 = 16384;

pub mod counts;
mod event;
mod globals;
mod maps;
pub mod totals;

pub use event::{Event, EventKind, ExecCtx, Op, PostOutcome, flags, stack_mode, stack_ref};
pub use globals::{
    DIRECT_CAST_MARKER, FREE_SITES, Filter, INFLIGHT_NO_SLOTS, Ksyms, MAX_RINGS, Offsets,
};
pub use maps::{CALIBRATE_FCNTL_CMD, known_pipes, runtime, stat};

#[cfg(feature = "user")]
mod pod {
    unsafe impl aya::Pod for super::Event {}
    unsafe impl aya::Pod for super::Offsets {}
    unsafe impl aya::Pod for super::Filter {}
    unsafe impl aya::Pod for super::Ksyms {}
    unsafe impl aya::Pod for super::counts::CountKey {}
    unsafe impl aya::Pod for super::counts::WaitRow {}
    unsafe impl aya::Pod for super::totals::PipeKey {}
    unsafe impl aya::Pod for super::totals::PipeTotals {}
    unsafe impl aya::Pod for super::totals::SlotOwner {}
    unsafe impl aya::Pod for super::totals::SlotTotals {}
}
