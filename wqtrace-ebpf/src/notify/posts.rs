//! Where a post's context lives from the poster's entry to its return: the [`POST_SLOTS`] slot
//! its key picks, or, when another poster holds that slot, the [`POSTS`] hash.
//!
//! The LRU hash alone cost an insert (a ~300-byte copy and an LRU pop), two lookups and a
//! delete per post, more than the poster's own programs did besides (issue #13). A slot is
//! claimed with a compare-and-swap on its owner and written only by the context that holds
//! it (the landing hook runs inside its poster's call, in the same context), so it needs no
//! lock; a slot whose return was never seen (a missed kretprobe) stays with its key, which
//! takes it again, while other keys use the hash.

use aya_ebpf::{
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray},
};
use core::intrinsics::{AtomicOrdering, atomic_xadd};

use super::PostCtx;

const SLOTS: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct PostSlot {
    /// The poster's key + 1 (0: free).
    owner: u64,
    c: PostCtx,
}

#[map]
static POST_SLOTS: Array<PostSlot> = Array::with_max_entries(SLOTS, 0);

/// Contexts whose slot another poster held.
#[map]
static POSTS: LruHashMap<u64, PostCtx> = LruHashMap::with_max_entries(1024, 0);

/// How many contexts [`POSTS`] holds: while none, a lookup that misses the slot is not made.
#[map]
static POSTS_SPILLED: Array<u64> = Array::with_max_entries(1, 0);

/// Built here when the slot is taken (too large for the 512-byte stack), then copied to POSTS.
#[map]
static POST_SCRATCH: PerCpuArray<PostCtx> = PerCpuArray::with_max_entries(1, 0);

/// The return's copy of a context with posts to report (see [`for_return`]). Its own: a post
/// entry nested in an interrupt may be using [`POST_SCRATCH`].
#[map]
static RETURN_SCRATCH: PerCpuArray<PostCtx> = PerCpuArray::with_max_entries(1, 0);

/// Where a context being built lives.
pub enum Place {
    Slot(*mut PostSlot),
    Scratch,
}

#[inline(always)]
fn slot_of(key: u64) -> Option<*mut PostSlot> {
    // Fibonacci hashing: tids of one process are consecutive, the context sits in bit 48.
    let i = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u32 & (SLOTS - 1);
    POST_SLOTS.get_ptr_mut(i)
}

/// `key`'s slot, if it holds it.
#[inline(always)]
fn held(key: u64) -> Option<*mut PostSlot> {
    let s = slot_of(key)?;
    let owner = unsafe { core::ptr::read_volatile(&raw const (*s).owner) };
    (owner == key.wrapping_add(1)).then_some(s)
}

/// Whether the hash holds any context: while not, a lookup that missed the slot is not made.
#[inline(always)]
fn spilled() -> bool {
    POSTS_SPILLED
        .get(0)
        .is_some_and(|c| unsafe { core::ptr::read_volatile(c) } != 0)
}

fn spilled_add(n: u64) {
    if let Some(c) = POSTS_SPILLED.get_ptr_mut(0) {
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(c, n) };
    }
}

/// Somewhere to build `key`'s context: its slot, held already or claimed now, else the
/// per-CPU scratch (then [`finish`] copies it into the hash).
#[inline(always)]
pub fn start(key: u64) -> Option<(Place, &'static mut PostCtx)> {
    if let Some(s) = slot_of(key)
        && crate::words::claim(unsafe { &raw mut (*s).owner }, key.wrapping_add(1))
    {
        return Some((Place::Slot(s), unsafe { &mut (*s).c }));
    }
    let c = POST_SCRATCH.get_ptr_mut(0)?;
    Some((Place::Scratch, unsafe { &mut *c }))
}

/// Keeps the context built at `place` for the landing hook and the return (`keep`), or lets
/// its slot go (a post to no traced pipe).
#[inline(always)]
pub fn finish(key: u64, place: Place, c: &PostCtx, keep: bool) {
    match place {
        Place::Slot(s) => {
            if !keep {
                unsafe { core::ptr::write_volatile(&raw mut (*s).owner, 0) };
            }
        }
        Place::Scratch => {
            if keep && POSTS.insert(key, c, 0).is_ok() {
                spilled_add(1);
            }
        }
    }
}

/// `key`'s context, if its poster kept one.
#[inline(always)]
pub fn find(key: u64) -> Option<&'static mut PostCtx> {
    if let Some(s) = held(key) {
        return Some(unsafe { &mut (*s).c });
    }
    if !spilled() {
        return None;
    }
    POSTS.get_ptr_mut(key).map(|c| unsafe { &mut *c })
}

/// Copies a post's context into RETURN_SCRATCH when `rare` says the return has something to
/// report; whether it did.
#[inline(always)]
fn keep_if(c: &PostCtx, rare: &impl Fn(&PostCtx) -> bool) -> bool {
    if rare(c)
        && let Some(r) = RETURN_SCRATCH.get_ptr_mut(0)
    {
        crate::words::copy(r, c);
        return true;
    }
    false
}

/// What the return works on: `key`'s context, given up (its slot freed, or its hash entry
/// removed) and, when one of its walked posts did not land (`rare`), copied into the return's
/// scratch. None when there is nothing to report. A context in a slot and one in the hash are
/// two kinds of pointer to the verifier, and the filter walk after, explored once for each,
/// was more than 6.1's verifier takes (E2BIG): each place ends in its own branch, and the
/// return goes on from the scratch.
#[inline(always)]
pub fn for_return(key: u64, rare: impl Fn(&PostCtx) -> bool) -> Option<&'static mut PostCtx> {
    let copied;
    if let Some(s) = held(key) {
        copied = keep_if(unsafe { &(*s).c }, &rare);
        unsafe { core::ptr::write_volatile(&raw mut (*s).owner, 0) };
    } else {
        if !spilled() {
            return None;
        }
        let h = POSTS.get_ptr_mut(key)?;
        copied = keep_if(unsafe { &*h }, &rare);
        if POSTS.remove(key).is_ok() {
            spilled_add(u64::MAX);
        }
    }
    if !copied {
        return None;
    }
    RETURN_SCRATCH.get_ptr_mut(0).map(|r| unsafe { &mut *r })
}
