//! Reading the programs' BPF ring buffer in batches.
//!
//! aya's `RingBuf` publishes the consumer position after every record. The programs' reserve
//! and commit read that position too, so every event moved its cache line between the CPU
//! producing and the CPU consuming: `__bpf_ringbuf_reserve` was the largest single cost of a
//! traced pipe workload (issue #13). This reader walks the same shared pages (layout from
//! kernel/bpf/ringbuf.c) and publishes the position once per batch. It looks at records before
//! taking them (`peek`), so that the rings of several CPUs can be merged by timestamp
//! (`source::merge`) with each event copied once, from its ring into the batch.
//!
//! The kernel offers the data pages mapped twice in a row, so that a record running past the
//! end reads as one piece; it maps them populated, so the second copy is 16 MiB more resident
//! set for the same pages. This reader maps them once and copies the rare wrapped record.

use std::{
    os::fd::{AsFd, AsRawFd, RawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicUsize, Ordering},
};

use anyhow::{Context, Result, bail};
use aya::maps::MapData;

const HDR_SZ: usize = 8;
const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;

struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(fd: RawFd, len: usize, prot: i32, offset: usize) -> Result<Self> {
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd,
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error()).context("mmap of the BPF ring buffer");
        }
        Ok(Self {
            ptr: NonNull::new(p.cast()).context("mmap returned NULL")?,
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Where [`BatchRing::peek`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peeked {
    /// At the ring's end.
    End,
    /// At a record still being written.
    Busy,
    /// At the limit, with more committed.
    Limit,
}

pub struct BatchRing {
    /// Keeps the map (and its fd) alive. Not aya's `RingBuf`: it maps the data pages twice, and
    /// the kernel maps them populated.
    map: MapData,
    consumer: Mapping,
    /// The producer page, then the data pages (once).
    producer: Mapping,
    page: usize,
    mask: usize,
    /// A record that runs past the end of the data pages, in one piece.
    wrapped: Vec<u8>,
    /// Consumed so far; published to the kernel at the end of a batch.
    pos: usize,
    /// Shown by `peek` so far (at or past `pos`).
    seen: usize,
}

// The mappings are only touched through `&mut self`.
unsafe impl Send for BatchRing {}

impl BatchRing {
    pub fn new(map: MapData, byte_size: usize) -> Result<Self> {
        if !byte_size.is_power_of_two() {
            bail!("ring buffer size {byte_size} is not a power of two");
        }
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let fd = map.fd().as_fd().as_raw_fd();
        let consumer = Mapping::new(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        let producer = Mapping::new(fd, page + byte_size, libc::PROT_READ, page)?;
        let mut r = Self {
            map,
            consumer,
            producer,
            page,
            mask: byte_size - 1,
            wrapped: Vec::new(),
            pos: 0,
            seen: 0,
        };
        r.pos = r.consumer_pos().load(Ordering::Acquire);
        r.seen = r.pos;
        Ok(r)
    }

    pub fn fd(&self) -> RawFd {
        self.map.fd().as_fd().as_raw_fd()
    }

    fn consumer_pos(&self) -> &AtomicUsize {
        unsafe { &*self.consumer.ptr.as_ptr().cast::<AtomicUsize>() }
    }

    fn producer_pos(&self) -> usize {
        unsafe { &*self.producer.ptr.as_ptr().cast::<AtomicUsize>() }.load(Ordering::Acquire)
    }

    fn publish(&self) {
        self.consumer_pos().store(self.pos, Ordering::Release);
    }

    /// The data pages. Not a borrow of `self`, so that a record is read while `wrapped` is
    /// written: used within one call only, while the mapping lives.
    fn pages<'a>(&self) -> &'a [u8] {
        unsafe {
            std::slice::from_raw_parts(self.producer.ptr.as_ptr().add(self.page), self.mask + 1)
        }
    }

    /// The header of the record at position `at`: busy and discard bits, length.
    fn header(&self, at: usize) -> u32 {
        // The kernel commits a record with an xchg on its header (8-byte aligned: never split
        // by the end of the pages): Acquire pairs with it.
        unsafe {
            &*self
                .pages()
                .as_ptr()
                .add(at & self.mask)
                .cast::<AtomicU32>()
        }
        .load(Ordering::Acquire)
    }

    /// Shows `f` the committed records past those it was shown already (their position and
    /// bytes), until the ring's end, a record still being written, or `limit` of them. They
    /// stay in the ring, read in place by [`BatchRing::read`], until [`BatchRing::consume_through`]
    /// gives their space back. Returns where it stopped.
    pub fn peek(&mut self, limit: usize, mut f: impl FnMut(usize, &[u8])) -> Peeked {
        let mut n = 0;
        let mut prod = self.producer_pos();
        let data = self.pages();
        loop {
            while self.seen != prod && n < limit {
                let at = self.seen;
                let hdr = self.header(at);
                if hdr & BUSY_BIT != 0 {
                    return Peeked::Busy;
                }
                let len = (hdr & !(BUSY_BIT | DISCARD_BIT)) as usize;
                if len > self.mask + 1 {
                    // Not a record the kernel could have written: stop rather than read past.
                    return Peeked::Busy;
                }
                self.seen += (HDR_SZ + len).next_multiple_of(8);
                if hdr & DISCARD_BIT != 0 {
                    if self.pos == at {
                        // Nothing shown waits before it: give it back now.
                        self.pos = self.seen;
                    }
                    continue;
                }
                f(at, record(data, at + HDR_SZ, len, &mut self.wrapped));
                n += 1;
            }
            if n >= limit {
                return if self.seen == prod && self.producer_pos() == prod {
                    Peeked::End
                } else {
                    Peeked::Limit
                };
            }
            let again = self.producer_pos();
            if again == prod {
                return Peeked::End;
            }
            prod = again;
        }
    }

    /// The bytes of the record shown at position `at`, still in the ring.
    pub fn read(&mut self, at: usize) -> &[u8] {
        let len = ((self.header(at) & !(BUSY_BIT | DISCARD_BIT)) as usize).min(self.mask + 1);
        record(self.pages(), at + HDR_SZ, len, &mut self.wrapped)
    }

    /// Gives the space of every record up to and including the one at `at` back to the
    /// programs.
    pub fn consume_through(&mut self, at: usize) {
        let len = (self.header(at) & !(BUSY_BIT | DISCARD_BIT)) as usize;
        self.pos = at + (HDR_SZ + len).next_multiple_of(8);
        self.publish();
    }
}

/// The `len` bytes at offset `at` of the ring's data pages `data` (a power of two long, `len` at
/// most that): one slice of the mapping, or, for a record that runs past the end and goes on at
/// the start, both pieces copied into `wrapped`.
fn record<'a>(data: &'a [u8], at: usize, len: usize, wrapped: &'a mut Vec<u8>) -> &'a [u8] {
    let at = at & (data.len() - 1);
    if at + len <= data.len() {
        return &data[at..at + len];
    }
    let first = data.len() - at;
    wrapped.clear();
    wrapped.extend_from_slice(&data[at..]);
    wrapped.extend_from_slice(&data[..len - first]);
    wrapped
}

#[cfg(test)]
mod tests {
    use super::record;

    #[test]
    fn a_record_past_the_end_of_the_pages_is_read_in_one_piece() {
        let data: Vec<u8> = (0..64).collect();
        let mut wrapped = Vec::new();
        // Wholly inside, ending exactly at the end, starting exactly at the end (the header
        // filled the last bytes), and running past the end.
        assert_eq!(record(&data, 8, 16, &mut wrapped), &data[8..24]);
        assert_eq!(record(&data, 48, 16, &mut wrapped), &data[48..64]);
        assert_eq!(record(&data, 64, 16, &mut wrapped), &data[0..16]);
        let expect: Vec<u8> = (56..64).chain(0..12).collect();
        assert_eq!(record(&data, 56, 20, &mut wrapped), &expect[..]);
    }
}
