//! Property tests: the encoder/decoder round trip on arbitrary events, and a fuzz of the reader
//! with random corruption (truncation, bit flips, garbage): never a panic, and whatever is
//! decoded is exactly the original events of the chunks that survived.

use proptest::prelude::*;
use wqtrace::recording::{Chunk, Header, Reader, Writer, fixtures};
use wqtrace_common::Event;

fn arb_event() -> impl Strategy<Value = Event> {
    // Mostly realistic values (small deltas, few kinds) with fully arbitrary ones mixed in.
    let a = (
        any::<u64>(),
        prop_oneof![Just(0u64), Just(fixtures::NPIPE), any::<u64>()],
        prop_oneof![Just(0u64), Just(fixtures::NPIPE_INO), any::<u64>()],
        any::<u64>(),
        any::<i64>(),
        any::<u64>(),
        prop_oneof![1u8..=9, any::<u8>()],
        any::<u8>(),
        any::<u16>(),
        any::<u32>(),
    );
    let b = (
        prop_oneof![Just(4101u32), any::<u32>()],
        any::<u32>(),
        any::<[u32; 4]>(),
        any::<[u32; 2]>(),
        any::<[i32; 2]>(),
        any::<[u32; 2]>(),
        any::<[u32; 6]>(),
        any::<u8>(),
        any::<[u8; 7]>(),
        prop_oneof![Just(*b"wq-reader\0\0\0\0\0\0\0"), any::<[u8; 16]>()],
        any::<[u8; 16]>(),
        prop_oneof![Just(0u64), Just(4242u64), any::<u64>()],
    );
    (a, b).prop_map(|(a, b)| Event {
        ts_ns: a.0,
        pipe: a.1,
        ino: a.2,
        duration_ns: a.3,
        ret: a.4,
        lock: a.5,
        kind: a.6,
        op: a.7,
        flags: a.8,
        cpu: a.9,
        tid: b.0,
        tgid: b.1,
        head_before: b.2[0],
        tail_before: b.2[1],
        head: b.2[2],
        tail: b.2[3],
        ring_size: b.3[0],
        max_usage: b.3[1],
        fd_in: b.4[0],
        fd_out: b.4[1],
        nr_notes: b.5[0],
        notes_in_use: b.5[1],
        slot: b.6[0],
        note: b.6[1],
        ntype: b.6[2],
        subtype: b.6[3],
        info: b.6[4],
        owner_tid: b.6[5],
        ctx: b.7,
        _pad: [b.8[0], b.8[1], b.8[2]],
        // Every bit: zero (none), u16::MAX (failed) and ids alike.
        kstack: u16::from_le_bytes([b.8[3], b.8[4]]),
        ustack: u16::from_le_bytes([b.8[5], b.8[6]]),
        comm: b.9,
        owner_comm: b.10,
        cgroup: b.11,
    })
}

/// The events a reader gives back for `events` written: a ring op carrying its wait as the wait
/// and the op (format 6), every other event as it was.
fn read_back(events: &[Event]) -> Vec<Event> {
    let mut v = Vec::new();
    for e in events {
        if e.carries_wait() {
            let (wait, op) = e.split_wait();
            v.extend([wait, op]);
        } else {
            v.push(*e);
        }
    }
    v
}

fn encode(events: &[Event], chunk_bytes: usize) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), &Header::default()).unwrap();
    w.set_flush_bytes(chunk_bytes);
    for e in events {
        w.push(e).unwrap();
    }
    w.finish("source").unwrap().0
}

/// Decodes whatever survives; checks every surviving chunk against the originals.
fn check_survivors(bytes: &[u8], orig: &[Event]) -> usize {
    let Ok(mut r) = Reader::new(bytes) else {
        return 0;
    };
    let mut n = 0;
    while let Some(c) = r.next_chunk().unwrap() {
        if let Chunk::Events {
            first_index,
            events,
            ..
        } = c
        {
            let i = first_index as usize;
            assert!(i + events.len() <= orig.len(), "chunk beyond the original");
            assert_eq!(&orig[i..i + events.len()], &events[..]);
            n += events.len();
        }
    }
    n
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn round_trip(events in prop::collection::vec(arb_event(), 0..200), chunk in 1usize..2048) {
        let bytes = encode(&events, chunk);
        let mut r = Reader::new(&bytes[..]).unwrap();
        prop_assert_eq!(r.read_all().unwrap(), read_back(&events));
        prop_assert!(r.warnings().is_empty());
    }

    #[test]
    fn truncation_keeps_a_prefix(events in prop::collection::vec(arb_event(), 1..100), cut in any::<prop::sample::Index>()) {
        let bytes = encode(&events, 256);
        let cut = cut.index(bytes.len() + 1);
        let events = read_back(&events);
        if let Ok(mut r) = Reader::new(&bytes[..cut]) {
            let got = r.read_all().unwrap();
            prop_assert_eq!(&events[..got.len()], &got[..]);
        }
    }

    #[test]
    fn bit_flips_never_panic_and_never_invent(
        events in prop::collection::vec(arb_event(), 1..100),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4),
    ) {
        let mut bytes = encode(&events, 256);
        for (i, bit) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        check_survivors(&bytes, &read_back(&events));
    }

    #[test]
    fn garbage_spliced_in(
        events in prop::collection::vec(arb_event(), 1..60),
        at in any::<prop::sample::Index>(),
        junk in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let bytes = encode(&events, 128);
        let at = at.index(bytes.len() + 1);
        let mut b = bytes[..at].to_vec();
        b.extend_from_slice(&junk);
        b.extend_from_slice(&bytes[at..]);
        check_survivors(&b, &read_back(&events));
    }

    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..600), magic in any::<bool>()) {
        if magic && bytes.len() >= 20 {
            // Get past the header checks now and then, to fuzz the chunk decoder itself.
            bytes[..8].copy_from_slice(&wqtrace::recording::MAGIC);
            bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
            bytes[12..16].copy_from_slice(&2u32.to_le_bytes());
            bytes[16..20].copy_from_slice(&crc32fast::hash(b"{}").to_le_bytes());
            bytes.splice(20..20, *b"{}");
        }
        if let Ok(mut r) = Reader::new(&bytes[..]) {
            let _ = r.read_all().unwrap();
        }
    }

    #[test]
    fn chunk_payload_fuzz(body in prop::collection::vec(any::<u8>(), 0..400), count in 0u64..50) {
        // The codec alone, on garbage: errors, never panics.
        for version in 1..=wqtrace::recording::FORMAT_VERSION {
            let mut out = Vec::new();
            let _ = wqtrace::recording::codec::decode_events(&body, count, 0, version, &mut out);
        }
    }
}
