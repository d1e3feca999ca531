//! The recording file format (`wqtrace record -o FILE`).
//!
//! ```text
//! file    = header chunk* [trailer]
//! header  = MAGIC(8) version:u32le json_len:u32le json_crc32:u32le json(HeaderJson)
//! chunk   = SYNC(4) type:u8 len:u32le crc32:u32le payload(len)
//!           crc32 covers type, len and payload
//! events  = (type 1) count first_index base_ts lost (varints) codec-encoded events
//! trailer = (type 2) JSON Trailer, written on a clean stop; readers never require it
//! stacks  = (type 3) JSON StackChunk: stacks new since the last one, with their names
//! cgroups = (type 4) JSON CgroupChunk: cgroup paths new since the last one, by id
//! zevents = (type 5, format 4) as events, the codec-encoded events one zstd frame (level 1,
//!           content size declared); written when smaller than type 1
//! zstacks = (type 6, format 5) a stacks chunk's JSON as one zstd frame, when smaller
//! zcgroups= (type 7, format 5) a cgroups chunk's JSON as one zstd frame, when smaller
//! known   = (type 8, added in format 6; older readers skip it) JSON KnownPipes: how many pipes
//!           the programs knew at once, once past the room they keep (see CHUNK_KNOWN_PIPES)
//! ```
//!
//! Format 6: an events chunk's `count` is of the events read back, and a ring op that carries
//! its syscall's off-CPU wait (`flags::OFF_CPU`, as the programs stream it) is stored whole and
//! read back as the two events it stands for, the wait and the op (`Event::split_wait`).
//!
//! Chunks are self-contained (see [`codec`]), written whole with one `write` and flushed every
//! [`FLUSH_INTERVAL`] or [`FLUSH_BYTES`], so a crash or a full disk loses at most the chunk in
//! flight. A reader that meets damage (bad CRC, garbage, truncation) warns, then scans for the
//! next valid chunk: `first_index` tells it exactly how many events the damage cost.

pub mod codec;
pub mod fixtures;
mod rangecrc;
mod reader;
pub mod side;
mod writer;

pub use reader::{Chunk, ChunkInfo, Reader};
pub use writer::Writer;

use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wqtrace_common::Event;

use crate::session::SessionMeta;

/// First bytes of every recording (PNG-style: catches text-mode and 7-bit mangling).
pub const MAGIC: [u8; 8] = *b"\x89WQT\r\n\x1a\n";
/// Format version this build writes; it reads every version up to this one.
pub const FORMAT_VERSION: u32 = 6;
/// Marks the start of each chunk, so a reader can resynchronise after damage.
pub const SYNC: [u8; 4] = *b"\xc7WQC";
pub const CHUNK_EVENTS: u8 = 1;
pub const CHUNK_TRAILER: u8 = 2;
/// Format 3: symbolized stacks (JSON [`crate::stacks::table::StackChunk`]), written before the
/// first events chunk that refers to them.
pub const CHUNK_STACKS: u8 = 3;
/// Format 3: cgroup paths by id (JSON [`crate::cgroup::CgroupChunk`]), written before the
/// first events chunk that carries the ids.
pub const CHUNK_CGROUPS: u8 = 4;
/// Format 4: an events chunk whose encoded events (after the four counts every events chunk
/// starts with) are one zstd frame. A writer falls back to [`CHUNK_EVENTS`] when that is not
/// smaller.
pub const CHUNK_EVENTS_ZSTD: u8 = 5;
/// Format 5: [`CHUNK_STACKS`] and [`CHUNK_CGROUPS`] as one zstd frame (symbol names and paths
/// repeat: a third of the size), written when smaller.
pub const CHUNK_STACKS_ZSTD: u8 = 6;
pub const CHUNK_CGROUPS_ZSTD: u8 = 7;
/// JSON [`crate::session::KnownPipes`], written before the first events chunk drained after the
/// programs knew more pipes at once than they keep without dropping one (and again as that
/// count grows). The trailer has the final count; this one is for a recording without a
/// trailer (killed, crashed): it still says frees may have been missed from that point on.
pub const CHUNK_KNOWN_PIPES: u8 = 8;
/// zstd's level: 1 is the fastest of its regular levels, and already takes 40 % off.
pub const ZSTD_LEVEL: i32 = 1;
/// Larger chunks are treated as damage.
pub const MAX_CHUNK: u32 = 16 << 20;
/// A chunk is cut at this many encoded bytes…
pub const FLUSH_BYTES: usize = 64 * 1024;
/// …or when the oldest unwritten event is this old.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
const FRAME_LEN: usize = 4 + 1 + 4 + 4;
const MAX_HEADER: u32 = 1 << 20;

/// The JSON header: the session metadata plus how the recording was made.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Header {
    #[serde(default)]
    pub meta: SessionMeta,
    #[serde(default)]
    pub wqtrace_version: String,
    /// Wall-clock time the recording started, ns since the Unix epoch.
    #[serde(default)]
    pub created_unix_ns: i64,
    /// The command `record` ran (`-- CMD…`), if any.
    #[serde(default)]
    pub command: Vec<String>,
    /// The probe filters, as given on the command line.
    #[serde(default)]
    pub filters: Vec<String>,
    /// `--stacks` of the session ("none", "rare", "all"); None: made before stacks existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stacks: Option<String>,
}

/// Totals written when a recording stops cleanly.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Trailer {
    pub events: u64,
    pub lost: u64,
    pub chunks: u64,
    pub first_ts_ns: u64,
    pub last_ts_ns: u64,
    /// "duration", "command", "signal", "source".
    #[serde(default)]
    pub stop_reason: String,
    /// Sleeps of splice, tee or vmsplice the programs could not place on a wait queue, so did
    /// not time as pipe waits (`EventSource::sleeps_unattributed`); 0 in recordings made before
    /// it was kept.
    #[serde(default)]
    pub sleeps_unattributed: u64,
    /// The most pipes the programs knew at once (`EventSource::known_pipes`); None in
    /// recordings made before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_pipes: Option<crate::session::KnownPipes>,
}

/// Why a file cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("not a wqtrace recording (bad magic)")]
    BadMagic,
    #[error("not a wqtrace recording (empty file)")]
    Empty,
    #[error(
        "recorded by {} in format version {found}; this wqtrace ({}) reads format versions 1 to {FORMAT_VERSION}: read it with a wqtrace at least as new as the one that wrote it",
        by.as_deref().map_or("a newer wqtrace".to_string(), |v| format!("wqtrace {}", crate::text::escape(v.as_bytes()))),
        crate::cli::VERSION.as_str()
    )]
    TooNew { found: u32, by: Option<String> },
    #[error("damaged header ({0})")]
    BadHeader(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A compressed chunk body: one zstd frame declaring its size, at most [`MAX_CHUNK`] (a forged
/// frame cannot claim more memory). None: damaged.
pub(crate) fn unzstd(z: &[u8]) -> Option<Vec<u8>> {
    let size = match zstd::zstd_safe::get_frame_content_size(z) {
        Ok(Some(n)) if n <= u64::from(MAX_CHUNK) => n as usize,
        _ => return None,
    };
    zstd::bulk::decompress(z, size).ok()
}

/// A chunk as it lies in the file: marker, type, length, checksum, payload.
pub(crate) fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(FRAME_LEN + payload.len());
    f.extend_from_slice(&SYNC);
    f.push(kind);
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&f[4..9]);
    h.update(payload);
    f.extend_from_slice(&h.finalize().to_le_bytes());
    f.extend_from_slice(payload);
    f
}

/// Encodes `events` as a complete in-memory recording (tests, fixtures, benchmarks).
pub fn encode_to_vec(header: &Header, events: &[Event], lost: u64) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), header).expect("Vec writes do not fail");
    for e in events {
        w.push(e).expect("Vec writes do not fail");
    }
    w.set_lost(lost);
    w.finish("source").expect("Vec writes do not fail").0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty recording without the trailer the writer puts last: made-up chunks go after it.
    fn without_trailer() -> Vec<u8> {
        let mut file = Writer::new(Vec::new(), &Header::default())
            .unwrap()
            .finish("x")
            .unwrap()
            .0;
        let trailer_at = file.windows(4).rposition(|w| w == SYNC).unwrap();
        file.truncate(trailer_at);
        file
    }

    /// The sleeps a session could not time as pipe waits reach the trailer; a trailer written
    /// before it was kept reads as 0 of them.
    #[test]
    fn the_trailer_keeps_unattributed_sleeps() {
        let mut w = Writer::new(Vec::new(), &Header::default()).unwrap();
        w.set_sleeps_unattributed(7);
        let file = w.finish("signal").unwrap().0;
        let mut r = Reader::new(std::io::Cursor::new(file)).unwrap();
        r.read_all().unwrap();
        assert_eq!(r.trailer().unwrap().sleeps_unattributed, 7);

        let old: Trailer = serde_json::from_str(
            r#"{"events":3,"lost":0,"chunks":1,"first_ts_ns":1,"last_ts_ns":2,"stop_reason":"signal"}"#,
        )
        .unwrap();
        assert_eq!(old.sleeps_unattributed, 0);
    }

    /// A chunk whose checksum holds but whose event count is forged: refused before anything is
    /// reserved for it (an event takes at least 4 bytes), reported, and the reader goes on.
    #[test]
    fn forged_event_counts_reserve_nothing() {
        let mut file = without_trailer();
        for n in [u64::MAX >> 1, 1 << 40, 4096 / 4 + 1] {
            let mut p = Vec::new();
            for v in [n, 0, 0, 0] {
                codec::put_varint(&mut p, v);
            }
            p.resize(p.len() + 4096, 0);
            file.extend_from_slice(&frame(CHUNK_EVENTS, &p));
        }
        let mut r = Reader::new(std::io::Cursor::new(file)).unwrap();
        let evs = r.read_all().unwrap();
        assert!(evs.is_empty());
        let w = r.warnings().join("\n");
        assert_eq!(
            w.matches("event count larger than the chunk").count(),
            3,
            "{w}"
        );
    }

    /// A ring op stream like a ping-pong's: two tasks, two pipes, ring indices moving by one.
    fn pingpong(n: u32) -> Vec<Event> {
        (0..n)
            .map(|i| {
                let mut e = Event::zeroed();
                e.kind = wqtrace_common::EventKind::RingOp as u8;
                e.ts_ns = 1_000_000 + u64::from(i) * 13_000 + u64::from(i % 7) * 31;
                e.tid = 100 + i % 2;
                e.tgid = e.tid;
                e.pipe = 0xffff_8880_0000_1000 + u64::from(i / 2 % 2) * 0x200;
                e.ino = 5000 + u64::from(i / 2 % 2);
                e.ret = 64;
                e.head = i / 4 + 1;
                e.head_before = i / 4;
                e.ring_size = 16;
                e.duration_ns = 900 + u64::from(i % 13) * 17;
                e.comm[..4].copy_from_slice(b"ping");
                e
            })
            .collect()
    }

    fn chunk_kinds(file: &[u8]) -> Vec<u8> {
        let mut kinds = Vec::new();
        let mut at = file.windows(4).position(|w| w == SYNC);
        while let Some(i) = at {
            let len = u32::from_le_bytes(file[i + 5..i + 9].try_into().unwrap()) as usize;
            kinds.push(file[i + 4]);
            let next = i + FRAME_LEN + len;
            at = file
                .get(next..)
                .and_then(|r| r.windows(4).position(|w| w == SYNC))
                .map(|k| next + k);
        }
        kinds
    }

    /// Past the room, the programs' count of pipes they knew goes before the events drained
    /// after it (again when it grows), so a recording cut short (no trailer) still says frees
    /// may have been missed. At the room nothing is written; damage skipped inside a recording
    /// without a trailer may have held one, so then the count is unknown.
    #[test]
    fn a_recording_cut_short_keeps_the_count_of_pipes_past_the_room() {
        use crate::session::KnownPipes;
        let evs = pingpong(100);
        let known = |peak| Some(KnownPipes { peak, room: 16384 });
        let cut = |peaks: &[(usize, u64)]| {
            let mut w = Writer::new(Vec::new(), &Header::default()).unwrap();
            for (i, e) in evs.iter().enumerate() {
                if let Some(&(_, peak)) = peaks.iter().find(|(at, _)| *at == i) {
                    w.set_known_pipes(known(peak));
                }
                w.push(e).unwrap();
                if i % 10 == 9 {
                    w.flush_chunk().unwrap();
                }
            }
            let mut file = w.finish("x").unwrap().0;
            let trailer_at = file.windows(4).rposition(|w| w == SYNC).unwrap();
            file.truncate(trailer_at);
            file
        };
        let read = |file: &[u8]| {
            let mut r = Reader::new(std::io::Cursor::new(file)).unwrap();
            assert_eq!(r.read_all().unwrap().len(), evs.len());
            assert!(r.trailer().is_none());
            r.known_pipes()
        };
        let notes = |file: &[u8]| {
            let kinds = chunk_kinds(file);
            kinds.iter().filter(|&&k| k == CHUNK_KNOWN_PIPES).count()
        };

        let file = cut(&[(35, 16384), (50, 16385), (60, 16385), (70, 16390)]);
        assert_eq!(notes(&file), 2, "once past the room, and once as it grew");
        assert_eq!(read(&file), Ok(known(16390)));
        // Before the chunk holding the events drained with it.
        let kinds = chunk_kinds(&file);
        let first = kinds.iter().position(|&k| k == CHUNK_KNOWN_PIPES).unwrap();
        assert_eq!(kinds[..first].len(), 5, "{kinds:?}");

        let file = cut(&[(50, 16384)]);
        assert_eq!(notes(&file), 0);
        assert_eq!(read(&file), Ok(None));
        let mut damaged = file.clone();
        let syncs: Vec<usize> = (0..damaged.len() - 4)
            .filter(|&i| damaged[i..i + 4] == SYNC)
            .collect();
        damaged[syncs[2] + FRAME_LEN + 2] ^= 0xff;
        let mut r = Reader::new(std::io::Cursor::new(&damaged)).unwrap();
        r.read_all().unwrap();
        assert!(!r.warnings().is_empty());
        let why = r.known_pipes().unwrap_err();
        assert!(why.starts_with("damage was skipped inside"), "{why}");
    }

    /// Events chunks are stored compressed when that is smaller, and read back exactly.
    #[test]
    fn events_chunks_are_compressed_and_exact() {
        let evs = pingpong(20_000);
        let file = encode_to_vec(&Header::default(), &evs, 3);
        let kinds = chunk_kinds(&file);
        assert!(kinds.contains(&CHUNK_EVENTS_ZSTD), "{kinds:?}");
        assert!(!kinds.contains(&CHUNK_EVENTS), "{kinds:?}");
        let mut r = Reader::new(std::io::Cursor::new(&file)).unwrap();
        assert_eq!(r.read_all().unwrap(), evs);
        assert!(r.warnings().is_empty(), "{:?}", r.warnings());
        // And smaller than the same chunks stored plainly.
        let mut plain = 0;
        let mut enc = codec::ChunkEncoder::new();
        for e in &evs {
            enc.push(e);
        }
        plain += enc.take().2.len();
        assert!(file.len() * 10 < plain * 8, "{} vs {plain}", file.len());
    }

    /// A compressed chunk whose checksum holds but whose zstd frame is damaged (or claims more
    /// than a chunk may hold) is reported and skipped; the chunks after it still read.
    #[test]
    fn damaged_compressed_chunks_are_reported_and_skipped() {
        let mut file = without_trailer();
        let evs = pingpong(500);
        let mut enc = codec::ChunkEncoder::new();
        for e in &evs {
            enc.push(e);
        }
        let (n, base_ts, body) = enc.take();
        let chunk = |z: &[u8], first: u64| {
            let mut p = Vec::new();
            for v in [n, first, base_ts, 0] {
                codec::put_varint(&mut p, v);
            }
            p.extend_from_slice(z);
            frame(CHUNK_EVENTS_ZSTD, &p)
        };
        let good = zstd::bulk::compress(&body, ZSTD_LEVEL).unwrap();
        let mut bad = good.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x55;
        bad.truncate(bad.len() - 3);
        // 17 MiB of zeros: compresses to a few hundred bytes, decompresses past MAX_CHUNK.
        let bomb = zstd::bulk::compress(&vec![0u8; 17 << 20], ZSTD_LEVEL).unwrap();
        file.extend_from_slice(&chunk(&bad, 0));
        file.extend_from_slice(&chunk(&bomb, 0));
        file.extend_from_slice(&chunk(&good, 0));
        let mut r = Reader::new(std::io::Cursor::new(file)).unwrap();
        assert_eq!(r.read_all().unwrap(), evs);
        let w = r.warnings().join("\n");
        assert_eq!(
            w.matches("compressed events do not decompress").count(),
            2,
            "{w}"
        );
    }

    /// Kernel stacks as a session names them: frames repeat across stacks.
    fn named_stacks(n: u32) -> crate::stacks::SharedStacks {
        use crate::stacks::{Frame, Stack, StackKey};
        let t = crate::stacks::shared();
        for id in 0..n {
            let frames = ["pipe_write", "vfs_write", "ksys_write", "do_syscall_64"]
                .iter()
                .enumerate()
                .map(|(i, f)| Frame {
                    addr: 0xffff_ffff_8100_0000 + u64::from(id) * 64 + i as u64,
                    name: Some(f.to_string()),
                    offset: u64::from(id) + i as u64,
                    module: None,
                })
                .collect();
            let key = StackKey {
                user: false,
                tgid: 0,
                id,
            };
            t.write().unwrap().insert(
                key,
                Stack {
                    frames,
                    error: None,
                },
            );
        }
        t
    }

    fn stack_names(t: &crate::stacks::SharedStacks) -> Vec<String> {
        let t = t.read().unwrap();
        t.since(0)
            .iter()
            .flat_map(|(k, s)| s.lines().into_iter().map(move |l| format!("{}:{l}", k.id)))
            .collect()
    }

    /// A stacks chunk is stored compressed when that is smaller, and reads back whole; a damaged
    /// one is one warning and costs only those names.
    #[test]
    fn stacks_chunks_are_compressed_and_damage_is_reported() {
        let stacks = named_stacks(40);
        let mut w = Writer::new(Vec::new(), &Header::default()).unwrap();
        w.set_stacks(Some(stacks.clone()));
        for e in pingpong(100) {
            w.push(&e).unwrap();
        }
        let file = w.finish("x").unwrap().0;
        let kinds = chunk_kinds(&file);
        assert!(kinds.contains(&CHUNK_STACKS_ZSTD), "{kinds:?}");
        assert!(!kinds.contains(&CHUNK_STACKS), "{kinds:?}");
        let json = serde_json::to_vec(&crate::stacks::table::StackChunk {
            stacks: (stacks.read().unwrap().since(0).iter())
                .map(|(k, s)| (*k, (**s).clone()))
                .collect(),
        })
        .unwrap();
        assert!(file.len() < json.len(), "{} vs {}", file.len(), json.len());
        let mut r = Reader::new(std::io::Cursor::new(&file)).unwrap();
        assert_eq!(r.read_all().unwrap().len(), 100);
        assert!(r.warnings().is_empty(), "{:?}", r.warnings());
        assert_eq!(stack_names(&r.stacks()), stack_names(&stacks));
        assert_eq!(stack_names(&stacks).len(), 160);

        // The same chunk with its frame damaged (checksum made to hold): a warning, the
        // events still read.
        let mut file = without_trailer();
        let header_len = file.len();
        let mut z = zstd::bulk::compress(&json, ZSTD_LEVEL).unwrap();
        let mid = z.len() / 2;
        z[mid] ^= 0x55;
        z.truncate(z.len() - 3);
        file.extend_from_slice(&frame(CHUNK_STACKS_ZSTD, &z));
        file.extend_from_slice(&encode_to_vec(&Header::default(), &pingpong(10), 0)[header_len..]);
        let mut r = Reader::new(std::io::Cursor::new(file)).unwrap();
        assert_eq!(r.read_all().unwrap().len(), 10);
        let w = r.warnings().join("\n");
        assert!(
            w.contains("stacks at byte") && w.contains("does not decompress"),
            "{w}"
        );
        assert!(stack_names(&r.stacks()).is_empty());
    }
}
