//! Reading a recording: the header, then every chunk whose checksum holds; damage becomes a
//! warning and the reader resynchronises on the next chunk marker.

use std::io::{self, Read, Seek, SeekFrom};

use wqtrace_common::Event;

use crate::cgroup::SharedCgroups;
use crate::session::KnownPipes;
use crate::stacks::SharedStacks;

use super::{
    CHUNK_CGROUPS, CHUNK_CGROUPS_ZSTD, CHUNK_EVENTS, CHUNK_EVENTS_ZSTD, CHUNK_KNOWN_PIPES,
    CHUNK_STACKS, CHUNK_STACKS_ZSTD, CHUNK_TRAILER, FORMAT_VERSION, FRAME_LEN, FormatError, Header,
    MAGIC, MAX_CHUNK, MAX_HEADER, SYNC, Trailer, codec, rangecrc, side,
};

/// One decoded chunk.
#[derive(Debug, Clone, PartialEq)]
pub enum Chunk {
    Events {
        /// File offset of the chunk's frame.
        offset: u64,
        /// Index of the first event in the whole recording.
        first_index: u64,
        /// Cumulative events the tracer lost when this chunk was written.
        lost: u64,
        events: Vec<Event>,
    },
    Trailer(Trailer),
}

/// Where a chunk is, for seeking (see [`Reader::index`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkInfo {
    pub offset: u64,
    pub first_index: u64,
    pub count: u64,
    pub base_ts: u64,
}

/// Reads a recording, surviving damage.
pub struct Reader<R> {
    r: R,
    header: Header,
    version: u32,
    /// Bytes read from `r` but not consumed, starting at file offset `buf_off`.
    buf: Vec<u8>,
    start: usize,
    buf_off: u64,
    eof: bool,
    warnings: Vec<String>,
    /// Events expected next (first_index of the next chunk when nothing was lost).
    next_index: u64,
    damaged_events: u64,
    tracer_lost: u64,
    trailer: Option<Trailer>,
    /// The highest count of pipes the programs knew that a [`CHUNK_KNOWN_PIPES`] chunk wrote.
    known_pipes: Option<KnownPipes>,
    /// Damage was skipped with good chunks after it: a chunk may be missing from the middle.
    skipped_inside: bool,
    /// While resynchronising: CRCs of the buffer's prefixes, so each candidate chunk is
    /// checked in O(log len), keeping the scan linear in the damaged bytes.
    prefix: Option<rangecrc::RangeCrc>,
    /// The stacks met so far (every one, once [`Reader::index`] has read the file).
    stacks: SharedStacks,
    /// The cgroup paths met so far.
    cgroups: SharedCgroups,
}

/// What [`Reader::parse_frame`] found at a position.
enum Frame {
    Ok {
        kind: u8,
        len: usize,
    },
    /// Not enough bytes (EOF inside the frame).
    Short,
    Bad(&'static str),
}

impl<R: Read> Reader<R> {
    /// Reads and checks the header.
    pub fn new(mut r: R) -> Result<Self, FormatError> {
        let mut fixed = [0u8; 20];
        let n = read_full(&mut r, &mut fixed)?;
        if n == 0 {
            return Err(FormatError::Empty);
        }
        if n < 8 || fixed[..8] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        if n < 20 {
            return Err(FormatError::BadHeader("file ends inside the header".into()));
        }
        let version = u32::from_le_bytes(fixed[8..12].try_into().unwrap());
        if version == 0 {
            return Err(FormatError::BadHeader("format version 0".into()));
        }
        let len = u32::from_le_bytes(fixed[12..16].try_into().unwrap());
        let crc = u32::from_le_bytes(fixed[16..20].try_into().unwrap());
        if len > MAX_HEADER {
            return Err(FormatError::BadHeader(format!("header length {len}")));
        }
        let mut json = vec![0u8; len as usize];
        let complete = read_full(&mut r, &mut json)? == json.len();
        if version > FORMAT_VERSION {
            // Every version starts with this framing and a JSON header: name the writer if
            // it can be read.
            let by = (complete && crc32fast::hash(&json) == crc)
                .then(|| serde_json::from_slice::<serde_json::Value>(&json).ok())
                .flatten()
                .and_then(|v| v["wqtrace_version"].as_str().map(str::to_string));
            return Err(FormatError::TooNew { found: version, by });
        }
        if !complete {
            return Err(FormatError::BadHeader("file ends inside the header".into()));
        }
        if crc32fast::hash(&json) != crc {
            return Err(FormatError::BadHeader("checksum mismatch".into()));
        }
        let header: Header = serde_json::from_slice(&json)
            .map_err(|e| FormatError::BadHeader(format!("invalid JSON: {e}")))?;
        Ok(Self {
            r,
            header,
            version,
            buf: Vec::new(),
            start: 0,
            buf_off: 20 + u64::from(len),
            eof: false,
            warnings: Vec::new(),
            next_index: 0,
            damaged_events: 0,
            tracer_lost: 0,
            trailer: None,
            known_pipes: None,
            skipped_inside: false,
            prefix: None,
            stacks: crate::stacks::shared(),
            cgroups: SharedCgroups::default(),
        })
    }

    /// The stacks read so far.
    pub fn stacks(&self) -> SharedStacks {
        self.stacks.clone()
    }

    /// The cgroup paths read so far.
    pub fn cgroups(&self) -> SharedCgroups {
        self.cgroups.clone()
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// The trailer, once read (clean recordings only).
    pub fn trailer(&self) -> Option<&Trailer> {
        self.trailer.as_ref()
    }

    /// The most pipes the programs knew at once, as far as the file read so far says: the
    /// trailer's count, or without a trailer the last one written past the room. None: never
    /// past it (or a recording that did not keep the count). Err: the file cannot say, why.
    pub fn known_pipes(&self) -> Result<Option<KnownPipes>, String> {
        if let Some(t) = &self.trailer {
            return Ok(t.known_pipes);
        }
        if self.known_pipes.is_none() && self.skipped_inside {
            return Err(
                "damage was skipped inside a recording without its trailer, and may have \
                 held the count of pipes the programs knew"
                    .into(),
            );
        }
        Ok(self.known_pipes)
    }

    /// Damage found so far, one human sentence each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Removes and returns the warnings found so far.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Events lost by the tracer (ring buffer full) as of the last chunk read.
    pub fn tracer_lost(&self) -> u64 {
        self.tracer_lost
    }

    /// Events known to be lost to file damage (between two good chunks).
    pub fn damaged_events(&self) -> u64 {
        self.damaged_events
    }

    fn offset(&self) -> u64 {
        self.buf_off + self.start as u64
    }

    /// Makes at least `n` bytes available from `start`; false at EOF.
    fn fill(&mut self, n: usize) -> io::Result<bool> {
        while self.buf.len() - self.start < n {
            if self.eof {
                return Ok(false);
            }
            if self.start > 0 && self.start >= self.buf.len() / 2 {
                if let Some(p) = &mut self.prefix {
                    p.extend(&self.buf[..self.start]);
                    p.drain(self.start);
                }
                self.buf.drain(..self.start);
                self.buf_off += self.start as u64;
                self.start = 0;
            }
            let want = (n - (self.buf.len() - self.start)).max(64 * 1024);
            let old = self.buf.len();
            self.buf.resize(old + want, 0);
            let got = read_full(&mut self.r, &mut self.buf[old..])?;
            self.buf.truncate(old + got);
            if got < want {
                self.eof = true;
            }
        }
        Ok(true)
    }

    fn parse_frame(&mut self) -> io::Result<Frame> {
        if !self.fill(FRAME_LEN)? {
            return Ok(Frame::Short);
        }
        let b = &self.buf[self.start..];
        if b[..4] != SYNC {
            return Ok(Frame::Bad("no chunk marker"));
        }
        let kind = b[4];
        let len = u32::from_le_bytes(b[5..9].try_into().unwrap());
        let crc = u32::from_le_bytes(b[9..13].try_into().unwrap());
        if len > MAX_CHUNK {
            return Ok(Frame::Bad("impossible chunk length"));
        }
        if !self.fill(FRAME_LEN + len as usize)? {
            return Ok(Frame::Short);
        }
        let b = &self.buf[self.start..];
        let mut h = crc32fast::Hasher::new();
        h.update(&b[4..9]);
        h.update(&b[FRAME_LEN..FRAME_LEN + len as usize]);
        if h.finalize() != crc {
            return Ok(Frame::Bad("checksum mismatch"));
        }
        Ok(Frame::Ok {
            kind,
            len: len as usize,
        })
    }

    /// Scans forward from a damaged position to the next frame that checks out.
    /// Returns the number of bytes skipped, or None at EOF.
    fn resync(&mut self) -> io::Result<Option<u64>> {
        let from = self.offset();
        self.prefix = Some(rangecrc::RangeCrc::new());
        let found = self.scan();
        self.prefix = None;
        Ok(found?.then(|| self.offset() - from))
    }

    fn scan(&mut self) -> io::Result<bool> {
        loop {
            self.start += 1;
            // Find the next marker candidate.
            loop {
                if !self.fill(4)? {
                    self.start = self.buf.len();
                    return Ok(false);
                }
                let hay = &self.buf[self.start..];
                match hay.windows(4).position(|w| w == SYNC) {
                    Some(p) => {
                        self.start += p;
                        break;
                    }
                    None => self.start = self.buf.len() - 3,
                }
            }
            if self.candidate_checks_out()? {
                return Ok(true);
            }
        }
    }

    /// Whether the marker at `start` begins a whole frame whose checksum holds (checked
    /// through the prefix CRCs, never by hashing the payload again).
    fn candidate_checks_out(&mut self) -> io::Result<bool> {
        if !self.fill(FRAME_LEN)? {
            return Ok(false);
        }
        let b = &self.buf[self.start..];
        let len = u32::from_le_bytes(b[5..9].try_into().unwrap());
        let crc = u32::from_le_bytes(b[9..13].try_into().unwrap());
        if len > MAX_CHUNK || !self.fill(FRAME_LEN + len as usize)? {
            return Ok(false);
        }
        let (a, z) = (
            self.start + FRAME_LEN,
            self.start + FRAME_LEN + len as usize,
        );
        let prefix = self.prefix.as_mut().expect("set by resync");
        prefix.extend(&self.buf[..z]);
        Ok(prefix.after(&self.buf[self.start + 4..self.start + 9], a, z) == crc)
    }

    /// Resynchronises past damage found at `at`, with a warning either way: `why` when a good
    /// chunk follows (true), `gone` when none does (false: the rest was ignored).
    fn skip_damage(&mut self, at: u64, why: &str, gone: String) -> io::Result<bool> {
        match self.resync()? {
            Some(skipped) => {
                self.skipped_inside = true;
                self.warnings.push(format!(
                    "damaged data at byte {at} ({why}): skipped {skipped} bytes"
                ));
                Ok(true)
            }
            None => {
                self.warnings.push(gone);
                Ok(false)
            }
        }
    }

    /// The next good chunk, or None at the end. Damage becomes a warning (see
    /// [`Reader::warnings`]); only I/O errors are errors.
    pub fn next_chunk(&mut self) -> io::Result<Option<Chunk>> {
        loop {
            if self.trailer.is_some() && !self.fill(1)? {
                return Ok(None);
            }
            let at = self.offset();
            let (kind, len) = match self.parse_frame()? {
                Frame::Ok { kind, len } => (kind, len),
                Frame::Short => {
                    let rest = self.buf.len() - self.start;
                    if rest == 0 {
                        return Ok(None);
                    }
                    // A chunk running past the end: the file's end, or a damaged length
                    // field with good chunks after it.
                    let gone = format!(
                        "truncated at byte {at}: the last {rest} bytes (an incomplete chunk) were ignored"
                    );
                    if !self.skip_damage(at, "chunk length past the end of the file", gone)? {
                        return Ok(None);
                    }
                    continue;
                }
                Frame::Bad(why) => {
                    let gone = format!(
                        "damaged data at byte {at} ({why}): the rest of the file was ignored"
                    );
                    if !self.skip_damage(at, why, gone)? {
                        return Ok(None);
                    }
                    continue;
                }
            };
            let p0 = self.start + FRAME_LEN;
            let payload = self.buf[p0..p0 + len].to_vec();
            self.start = p0 + len;
            match kind {
                CHUNK_EVENTS | CHUNK_EVENTS_ZSTD => {
                    match self.decode_events_chunk(at, &payload, kind == CHUNK_EVENTS_ZSTD) {
                        Ok(c) => return Ok(Some(c)),
                        Err(e) => {
                            self.warnings
                                .push(format!("chunk at byte {at} ignored: {e}"));
                            continue;
                        }
                    }
                }
                CHUNK_TRAILER => match serde_json::from_slice::<Trailer>(&payload) {
                    Ok(t) => {
                        self.trailer = Some(t.clone());
                        return Ok(Some(Chunk::Trailer(t)));
                    }
                    Err(e) => {
                        self.warnings
                            .push(format!("trailer at byte {at} ignored: {e}"));
                        continue;
                    }
                },
                CHUNK_KNOWN_PIPES => {
                    match serde_json::from_slice::<KnownPipes>(&payload) {
                        Ok(k) if self.known_pipes.is_none_or(|o| k.peak > o.peak) => {
                            self.known_pipes = Some(k)
                        }
                        Ok(_) => {}
                        Err(e) => {
                            self.skipped_inside = true;
                            self.warnings
                                .push(format!("pipe count at byte {at} ignored: {e}"))
                        }
                    }
                    continue;
                }
                CHUNK_STACKS | CHUNK_STACKS_ZSTD => {
                    let z = kind == CHUNK_STACKS_ZSTD;
                    if let Err(w) = side::merge(&self.stacks, &payload, z, at) {
                        self.warnings.push(w);
                    }
                    continue;
                }
                CHUNK_CGROUPS | CHUNK_CGROUPS_ZSTD => {
                    let z = kind == CHUNK_CGROUPS_ZSTD;
                    if let Err(w) = side::merge(&self.cgroups, &payload, z, at) {
                        self.warnings.push(w);
                    }
                    continue;
                }
                // Unknown chunk types (a later minor addition) are skipped silently.
                _ => continue,
            }
        }
    }

    fn decode_events_chunk(
        &mut self,
        offset: u64,
        payload: &[u8],
        zstd: bool,
    ) -> Result<Chunk, codec::DecodeError> {
        let mut c = codec::Cursor::new(payload);
        let n = c.varint()?;
        let first_index = c.varint()?;
        let base_ts = c.varint()?;
        let lost = c.varint()?;
        let hdr = payload.len() - c.remaining();
        let unpacked;
        let body = if zstd {
            unpacked = super::unzstd(&payload[hdr..])
                .ok_or(codec::DecodeError("compressed events do not decompress"))?;
            &unpacked[..]
        } else {
            &payload[hdr..]
        };
        // An event takes at least 4 bytes (5 in format 1): refuse counts the chunk cannot hold
        // before allocating, and reserve no more than a writer's chunk holds; a forged count
        // costs memory only as its events actually decode.
        let min_event = if self.version < 2 { 5 } else { 4 };
        if n > (body.len() / min_event) as u64 {
            return Err(codec::DecodeError("event count larger than the chunk"));
        }
        let mut events = Vec::with_capacity((n as usize).min(1 << 16));
        codec::decode_events(body, n, base_ts, self.version, &mut events)?;
        if first_index > self.next_index {
            let gap = first_index - self.next_index;
            self.damaged_events += gap;
            self.warnings
                .push(format!("{gap} events lost to damage before byte {offset}"));
        }
        self.next_index = first_index + n;
        self.tracer_lost = self.tracer_lost.max(lost);
        Ok(Chunk::Events {
            offset,
            first_index,
            lost,
            events,
        })
    }

    /// Reads the rest of the file and returns where each events chunk is.
    pub fn index(&mut self) -> io::Result<Vec<ChunkInfo>> {
        let mut v = Vec::new();
        while let Some(c) = self.next_chunk()? {
            if let Chunk::Events {
                offset,
                first_index,
                events,
                ..
            } = c
            {
                v.push(ChunkInfo {
                    offset,
                    first_index,
                    count: events.len() as u64,
                    base_ts: events.first().map_or(0, |e| e.ts_ns),
                });
            }
        }
        Ok(v)
    }

    /// Reads every remaining event (tests, small files).
    pub fn read_all(&mut self) -> io::Result<Vec<Event>> {
        let mut all = Vec::new();
        while let Some(c) = self.next_chunk()? {
            if let Chunk::Events { events, .. } = c {
                all.extend(events);
            }
        }
        Ok(all)
    }
}

impl<R: Read + Seek> Reader<R> {
    /// Continues reading at the chunk that starts at `offset` (from [`Reader::index`]).
    pub fn seek_to(&mut self, offset: u64, first_index: u64) -> io::Result<()> {
        self.r.seek(SeekFrom::Start(offset))?;
        self.buf.clear();
        self.start = 0;
        self.buf_off = offset;
        self.eof = false;
        self.next_index = first_index;
        self.trailer = None;
        Ok(())
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
