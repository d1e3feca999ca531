//! Kernel loads without a helper call. `bpf_probe_read_kernel` costs a helper call and a
//! `copy_from_kernel_nofault` per read, some 30-40 ns each here, and a traced pipe syscall
//! made several (issue #13). The kfunc `bpf_rdonly_cast` (6.2+, inlined by the verifier)
//! turns an address into an untrusted BTF pointer, which the verifier lets the program load
//! from directly: the JIT emits the load with an exception-table entry, and a fault reads 0.
//!
//! The address is cast to `atomic64_t`'s (or `atomic_t`'s) struct, whose only member is an
//! integer at offset 0, so the word loaded is a plain number the programs may hash and
//! compare (a pointer member would come back as a typed pointer).

use core::mem::{MaybeUninit, size_of};

use wqtrace_common::DIRECT_CAST_MARKER;

use crate::globals::off;

/// Whether this kernel takes direct loads (the ids are .rodata constants: the verifier drops
/// the side not taken, and with it, on older kernels, the call it could not resolve).
#[inline(always)]
pub fn on() -> bool {
    off!(direct_s64_btf_id) != 0 && off!(direct_s32_btf_id) != 0
}

/// `bpf_rdonly_cast(addr, btf_id)`, through the marker userspace rewrites into the kfunc
/// call. `btf_id` must be a constant the verifier knows.
#[inline(always)]
fn cast(addr: u64, btf_id: u32) -> *const u8 {
    let f: unsafe extern "C" fn(u64, u32) -> *const u8 =
        unsafe { core::mem::transmute(DIRECT_CAST_MARKER as usize) };
    unsafe { f(addr, btf_id) }
}

#[inline(always)]
fn load_u64(addr: u64) -> u64 {
    let p = cast(addr, off!(direct_s64_btf_id));
    unsafe { core::ptr::read_volatile(p.cast::<u64>()) }
}

#[inline(always)]
fn load_u32(addr: u64) -> u32 {
    let p = cast(addr, off!(direct_s32_btf_id));
    unsafe { core::ptr::read_volatile(p.cast::<u32>()) }
}

/// `*(T *)addr` by direct loads when `T` is 4 bytes or up to 12 words, else None (the caller
/// probe-reads). Only called when [`on`].
#[inline(always)]
pub fn load<T: Copy>(addr: u64) -> Option<T> {
    let n = size_of::<T>();
    let mut v = MaybeUninit::<T>::uninit();
    let p = v.as_mut_ptr().cast::<u8>();
    if n == 4 {
        unsafe { p.cast::<u32>().write_unaligned(load_u32(addr)) };
    } else if n % 8 == 0 && n <= 96 {
        for i in 0..n / 8 {
            let w = load_u64(addr + i as u64 * 8);
            unsafe { p.add(i * 8).cast::<u64>().write_unaligned(w) };
        }
    } else {
        return None;
    }
    Some(unsafe { v.assume_init() })
}
