//! Zeroing and copying the programs' structs as 8-byte word stores, and the owner word of a
//! slot that contexts claim.
//!
//! Left to itself, the compiler turns a struct literal or assignment into a call of a
//! byte-wise BPF `memset` or `memcpy` subprogram: 4.5 % of a traced pipe workload's CPU (issue
//! #13). Volatile stores are not merged back into such a call.

/// `*dst = 0`, every byte.
#[inline(always)]
pub fn zero<T: Copy>(dst: *mut T) {
    let _ = const { assert!(size_of::<T>() % 8 == 0) };
    zero_first(dst, size_of::<T>());
}

/// The first `bytes` (a multiple of 8) of `*dst` = 0: a short record, all there is of it.
#[inline(always)]
pub fn zero_first<T: Copy>(dst: *mut T, bytes: usize) {
    let d = dst.cast::<u64>();
    let mut i = 0;
    while i < bytes / 8 {
        unsafe { core::ptr::write_volatile(d.add(i), 0) };
        i += 1;
    }
}

/// `*f = 0` but its last word, the owner of the slot it may be (`Inflight::tid`).
#[inline(always)]
pub fn zero_but_owner(f: &mut crate::maps::Inflight) {
    use crate::maps::Inflight;
    let _ = const {
        assert!(core::mem::offset_of!(Inflight, tid) == size_of::<Inflight>() - 8);
        assert!(size_of::<Inflight>() % 8 == 0);
    };
    zero_first(f as *mut Inflight, size_of::<Inflight>() - 8);
}

/// `*dst = *src`.
#[inline(always)]
pub fn copy<T: Copy>(dst: *mut T, src: &T) {
    let _ = const { assert!(size_of::<T>() % 8 == 0) };
    let (d, s) = (dst.cast::<u64>(), (src as *const T).cast::<u64>());
    let mut i = 0;
    while i < size_of::<T>() / 8 {
        unsafe { core::ptr::write_volatile(d.add(i), core::ptr::read_volatile(s.add(i))) };
        i += 1;
    }
}

/// Whether the owner word at `w` is `me`: held already, or free (0) and taken now by a
/// compare-and-swap. A slot is written only by its holder, so it needs no lock.
#[inline(always)]
pub fn claim(w: *mut u64, me: u64) -> bool {
    let o = unsafe { core::ptr::read_volatile(w) };
    o == me
        || (o == 0
            && unsafe {
                core::intrinsics::atomic_cxchg::<
                    u64,
                    { core::intrinsics::AtomicOrdering::Relaxed },
                    { core::intrinsics::AtomicOrdering::Relaxed },
                >(w, 0, me)
            }
            .1)
}
