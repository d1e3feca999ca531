//! Read-only globals that userspace fills in before load (`EbpfLoader::set_global`). Being in
//! .rodata, the verifier sees their values and prunes the code of features this kernel lacks.

use wqtrace_common::{Filter, Ksyms, Offsets};

#[unsafe(no_mangle)]
pub static OFFSETS: Offsets = Offsets::missing();

#[unsafe(no_mangle)]
pub static FILTER: Filter = Filter::none();

#[unsafe(no_mangle)]
pub static KSYMS: Ksyms = Ksyms::none();

/// One field of [`OFFSETS`], read so the compiler cannot constant-fold the default.
macro_rules! off {
    ($f:ident) => {
        unsafe { core::ptr::read_volatile(&raw const crate::globals::OFFSETS.$f) }
    };
}
pub(crate) use off;

macro_rules! filter {
    ($f:ident) => {
        unsafe { core::ptr::read_volatile(&raw const crate::globals::FILTER.$f) }
    };
}
pub(crate) use filter;

/// First statement of every program: with `FILTER.empty` set (the benchmark floor) the program
/// does nothing else. A .rodata constant, so the verifier drops whichever side is dead.
macro_rules! empty_floor {
    () => {
        if crate::globals::filter!(empty) != 0 {
            return 0;
        }
    };
}
pub(crate) use empty_floor;
