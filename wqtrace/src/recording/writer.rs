//! Writing a recording: the header, then events chunk by chunk, then the trailer.

use std::io::{self, Write};
use std::time::Instant;

use wqtrace_common::Event;

use crate::cgroup::{CgroupTable, SharedCgroups};
use crate::stacks::{SharedStacks, table::StackTable};

use super::{
    CHUNK_EVENTS, CHUNK_EVENTS_ZSTD, CHUNK_KNOWN_PIPES, CHUNK_TRAILER, FLUSH_BYTES, FLUSH_INTERVAL,
    FORMAT_VERSION, Header, MAGIC, Trailer, ZSTD_LEVEL, codec, frame,
    side::{SideTable, Written},
};

/// Writes a recording chunk by chunk.
pub struct Writer<W: Write> {
    out: W,
    enc: codec::ChunkEncoder,
    /// Kept across chunks: a fresh zstd context per chunk costs more than compressing it.
    zstd: Option<zstd::bulk::Compressor<'static>>,
    events: u64,
    chunks: u64,
    bytes: u64,
    lost: u64,
    lost_written: u64,
    sleeps_unattributed: u64,
    known_pipes: Option<crate::session::KnownPipes>,
    /// The count a [`CHUNK_KNOWN_PIPES`] chunk last wrote.
    known_pipes_written: Option<crate::session::KnownPipes>,
    first_ts: Option<u64>,
    last_ts: u64,
    oldest_pending: Option<Instant>,
    flush_bytes: usize,
    /// The session's stacks and cgroup names, and how much of each is written.
    stacks: Written<StackTable>,
    cgroups: Written<CgroupTable>,
}

impl<W: Write> Writer<W> {
    /// Writes the file header.
    pub fn new(mut out: W, header: &Header) -> io::Result<Self> {
        let json = serde_json::to_vec(header).map_err(io::Error::other)?;
        let mut b = Vec::with_capacity(20 + json.len());
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        b.extend_from_slice(&(json.len() as u32).to_le_bytes());
        b.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
        b.extend_from_slice(&json);
        out.write_all(&b)?;
        out.flush()?;
        Ok(Self {
            out,
            enc: codec::ChunkEncoder::new(),
            zstd: zstd::bulk::Compressor::new(ZSTD_LEVEL).ok(),
            events: 0,
            chunks: 0,
            bytes: b.len() as u64,
            lost: 0,
            lost_written: 0,
            sleeps_unattributed: 0,
            known_pipes: None,
            known_pipes_written: None,
            first_ts: None,
            last_ts: 0,
            oldest_pending: None,
            flush_bytes: FLUSH_BYTES,
            stacks: Written::default(),
            cgroups: Written::default(),
        })
    }

    /// Writes the stacks of this table the events refer to (new ones before each chunk).
    pub fn set_stacks(&mut self, t: Option<SharedStacks>) {
        self.stacks = Written::new(t);
    }

    /// Writes the cgroup paths of this table the events carry (new ones before each chunk).
    pub fn set_cgroups(&mut self, t: Option<SharedCgroups>) {
        self.cgroups = Written::new(t);
    }

    /// What `w` has that the file lacks, as one chunk.
    fn write_new<T: SideTable>(&mut self, w: fn(&mut Self) -> &mut Written<T>) -> io::Result<()> {
        let Some(c) = w(self).take_new() else {
            return Ok(());
        };
        let json = serde_json::to_vec(&c).map_err(io::Error::other)?;
        let f = match self.compress(&json) {
            Some(z) => frame(T::CHUNK_ZSTD, &z),
            None => frame(T::CHUNK, &json),
        };
        self.put_chunk(&f)
    }

    /// The programs' count of pipes they knew, once past their room and not written yet: a
    /// recording that ends without its trailer still says frees may have been missed. Set
    /// after the pending events were drained, it covers every one of them.
    fn write_known_pipes(&mut self) -> io::Result<()> {
        let Some(k) = self.known_pipes.filter(|k| k.past_room()) else {
            return Ok(());
        };
        if self.known_pipes_written == Some(k) {
            return Ok(());
        }
        let f = frame(
            CHUNK_KNOWN_PIPES,
            &serde_json::to_vec(&k).map_err(io::Error::other)?,
        );
        self.put_chunk(&f)?;
        self.known_pipes_written = Some(k);
        Ok(())
    }

    /// Writes one framed chunk and counts it (events chunks also flush: see `flush_chunk`).
    fn put_chunk(&mut self, f: &[u8]) -> io::Result<()> {
        self.out.write_all(f)?;
        self.bytes += f.len() as u64;
        self.chunks += 1;
        Ok(())
    }

    /// `b` as one zstd frame, if that is smaller.
    fn compress(&mut self, b: &[u8]) -> Option<Vec<u8>> {
        let z = self.zstd.as_mut()?.compress(b).ok()?;
        (z.len() < b.len()).then_some(z)
    }

    /// Cuts chunks at `n` encoded bytes instead of [`FLUSH_BYTES`] (tests, tiny chunks).
    pub fn set_flush_bytes(&mut self, n: usize) {
        self.flush_bytes = n.max(1);
    }

    /// Adds one event; writes a chunk when [`FLUSH_BYTES`] are pending.
    pub fn push(&mut self, e: &Event) -> io::Result<()> {
        self.events += self.enc.push(e);
        self.first_ts.get_or_insert(e.ts_ns);
        self.last_ts = e.ts_ns;
        self.oldest_pending.get_or_insert_with(Instant::now);
        if self.enc.len() >= self.flush_bytes {
            self.flush_chunk()?;
        }
        Ok(())
    }

    /// The source's count of sleeps it could not time as pipe waits; kept in the trailer.
    pub fn set_sleeps_unattributed(&mut self, n: u64) {
        self.sleeps_unattributed = n;
    }

    /// How many pipes the source's programs knew at most, read after the events pushed so far
    /// were drained; kept in the trailer, and (once past the room) before the next chunk.
    pub fn set_known_pipes(&mut self, k: Option<crate::session::KnownPipes>) {
        self.known_pipes = k;
    }

    /// The source's cumulative lost-event count; carried by the next chunk.
    pub fn set_lost(&mut self, lost: u64) {
        self.lost = lost;
    }

    /// Writes the pending chunk if its oldest event is older than [`FLUSH_INTERVAL`] (or the
    /// lost count changed).
    pub fn maybe_flush(&mut self) -> io::Result<()> {
        let due = self
            .oldest_pending
            .is_some_and(|t| t.elapsed() >= FLUSH_INTERVAL);
        if due || (self.enc.is_empty() && self.lost != self.lost_written) {
            self.flush_chunk()?;
        }
        Ok(())
    }

    /// Writes the pending events (if any) as one chunk.
    pub fn flush_chunk(&mut self) -> io::Result<()> {
        if self.enc.is_empty() && self.lost == self.lost_written {
            return Ok(());
        }
        // The events may refer to stacks: those go first, so a reader has met them.
        self.write_new(|w| &mut w.stacks)?;
        self.write_new(|w| &mut w.cgroups)?;
        self.write_known_pipes()?;
        let first_index = self.events - self.enc.count();
        let (n, base_ts, body) = self.enc.take();
        let mut payload = Vec::with_capacity(body.len() + 24);
        codec::put_varint(&mut payload, n);
        codec::put_varint(&mut payload, first_index);
        codec::put_varint(&mut payload, base_ts);
        codec::put_varint(&mut payload, self.lost);
        let kind = match self.compress(&body) {
            Some(z) => {
                payload.extend_from_slice(&z);
                CHUNK_EVENTS_ZSTD
            }
            _ => {
                payload.extend_from_slice(&body);
                CHUNK_EVENTS
            }
        };
        let f = frame(kind, &payload);
        self.oldest_pending = None;
        self.lost_written = self.lost;
        self.put_chunk(&f)?;
        self.out.flush()?;
        Ok(())
    }

    /// Events pushed so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Bytes written to the file so far (pending events not included).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The output, holding every chunk flushed so far (for an fsync).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Flushes, writes the trailer and returns the inner writer.
    pub fn finish(mut self, stop_reason: &str) -> io::Result<(W, Trailer)> {
        self.flush_chunk()?;
        let t = Trailer {
            events: self.events,
            lost: self.lost,
            chunks: self.chunks,
            first_ts_ns: self.first_ts.unwrap_or(0),
            last_ts_ns: self.last_ts,
            stop_reason: stop_reason.to_string(),
            sleeps_unattributed: self.sleeps_unattributed,
            known_pipes: self.known_pipes,
        };
        let f = frame(
            CHUNK_TRAILER,
            &serde_json::to_vec(&t).map_err(io::Error::other)?,
        );
        self.out.write_all(&f)?;
        self.out.flush()?;
        self.bytes += f.len() as u64;
        Ok((self.out, t))
    }
}
