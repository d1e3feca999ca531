//! Zeroing and copying the programs' structs as 8-byte word stores. Left to itself, the
//! compiler turns a struct literal or assignment into a call of a byte-wise BPF `memset` or
//! `memcpy` subprogram: 4.5 % of a traced pipe workload's CPU (issue #13). Volatile stores
//! are not merged back into such a call.

/// `*dst = 0`, every byte.
#[inline(always)]
pub fn zero<T: Copy>(dst: *mut T) {
    let _ = const { assert!(size_of::<T>() % 8 == 0) };
    let d = dst.cast::<u64>();
    let mut i = 0;
    while i < size_of::<T>() / 8 {
        unsafe { core::ptr::write_volatile(d.add(i), 0) };
        i += 1;
    }
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
