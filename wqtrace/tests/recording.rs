//! Recording format, record/report/export/replay over synthetic fixtures (no kernel needed).

mod common;

use common::recording::report_json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wqtrace::model::PipeOrder;
use wqtrace::recording::codec::ChunkEncoder;
use wqtrace::recording::{self, Chunk, FormatError, Header, Reader, Writer, fixtures};
use wqtrace::source::SessionMeta;
use wqtrace::source::replay::Replay;
use wqtrace_common::Event;

const BIN: &str = env!("CARGO_BIN_EXE_wqtrace");

/// A file in this test binary's scratch directory under target/, emptied once per run: what
/// a failing test wrote stays there to look at, and nothing piles up in /tmp run after run.
fn tmp(name: &str) -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("recording");
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    })
    .join(name)
}

fn header() -> Header {
    Header {
        meta: SessionMeta {
            kernel_release: "6.9.0-test".into(),
            hostname: "testhost".into(),
            abi_version: wqtrace_common::ABI_VERSION,
            realtime_offset_ns: 1_700_000_000_000_000_000,
            attach: vec![
                ("notify_post".into(), "fentry".into()),
                ("get_pipe_info".into(), "kprobe".into()),
            ],
            notification_pipes: true,
            offsets: vec![("pipe_head".into(), 0x50)],
        },
        wqtrace_version: "test".into(),
        created_unix_ns: 1,
        command: vec!["keyctl".into(), "watch".into()],
        filters: vec![],
        stacks: Some("rare".into()),
    }
}

fn write_file(name: &str, events: &[Event], lost: u64, chunk_bytes: Option<usize>) -> PathBuf {
    write_file_with(&header(), name, events, lost, chunk_bytes)
}

fn write_file_with(
    h: &Header,
    name: &str,
    events: &[Event],
    lost: u64,
    chunk_bytes: Option<usize>,
) -> PathBuf {
    let p = tmp(name);
    let mut w = Writer::new(std::fs::File::create(&p).unwrap(), h).unwrap();
    if let Some(n) = chunk_bytes {
        w.set_flush_bytes(n);
    }
    for e in events {
        w.push(e).unwrap();
    }
    w.set_lost(lost);
    w.finish("signal").unwrap();
    p
}

fn read(p: &Path) -> (Vec<Event>, Vec<String>) {
    let mut r = Reader::new(std::fs::File::open(p).unwrap()).unwrap();
    let evs = r.read_all().unwrap();
    (evs, r.warnings().to_vec())
}

fn bytes_per_event(events: &[Event]) -> f64 {
    let mut enc = ChunkEncoder::new();
    let mut total = 0usize;
    for e in events {
        enc.push(e);
        if enc.len() >= recording::FLUSH_BYTES {
            total += enc.take().2.len();
        }
    }
    total += enc.take().2.len();
    total as f64 / events.len() as f64
}

#[test]
fn round_trip_and_size_on_fixtures() {
    let session = fixtures::notification_session();
    let busy = fixtures::busy_stream(100_000, 4, 1);
    for (name, evs) in [("session", &session), ("busy", &busy)] {
        let bytes = recording::encode_to_vec(&header(), evs, 3);
        let mut r = Reader::new(&bytes[..]).unwrap();
        assert_eq!(r.header(), &header());
        assert_eq!(&r.read_all().unwrap(), evs, "{name}");
        assert!(r.warnings().is_empty());
        let t = r.trailer().expect("trailer");
        assert_eq!((t.events, t.lost), (evs.len() as u64, 3));
        let bpe = bytes_per_event(evs);
        eprintln!(
            "{name}: {} events, {bpe:.1} bytes/event encoded (Event is {} bytes in memory)",
            evs.len(),
            size_of::<Event>()
        );
        assert!(bpe <= 32.0, "{name}: {bpe} bytes/event");
    }
    assert!(bytes_per_event(&busy) <= 20.0);
}

#[test]
fn bad_files_give_one_clear_error() {
    let good = recording::encode_to_vec(&header(), &fixtures::notification_session(), 0);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "not a wqtrace recording (empty file)"),
        (
            "text",
            b"hello, world\n".to_vec(),
            "not a wqtrace recording (bad magic)",
        ),
        (
            "short",
            good[..5].to_vec(),
            "not a wqtrace recording (bad magic)",
        ),
        (
            "newer",
            {
                let mut b = good.clone();
                b[8..12].copy_from_slice(&99u32.to_le_bytes());
                b
            },
            "in format version 99; this wqtrace (0.",
        ),
        (
            "newer-damaged-header",
            {
                let mut b = good.clone();
                b[8..12].copy_from_slice(&99u32.to_le_bytes());
                b[25] ^= 0x20;
                b
            },
            "recorded by a newer wqtrace in format version 99; this wqtrace",
        ),
        (
            "header",
            {
                let mut b = good.clone();
                b[25] ^= 0x20;
                b
            },
            "damaged header (checksum mismatch)",
        ),
        ("cut-header", good[..22].to_vec(), "damaged header"),
    ];
    for (name, bytes, want) in cases {
        let err = Reader::new(&bytes[..])
            .err()
            .unwrap_or_else(|| panic!("{name} accepted"));
        assert!(err.to_string().contains(want), "{name}: {err}");
        if name == "newer" {
            // It names the version that wrote it, and what this one reads.
            let by = header().wqtrace_version;
            assert!(
                matches!(&err, FormatError::TooNew { found: 99, by: Some(v) } if *v == by),
                "{err:?}"
            );
            assert!(
                err.to_string()
                    .starts_with(&format!("recorded by wqtrace {by} in format")),
                "{err}"
            );
            assert!(
                err.to_string().contains(&format!(
                    "reads format versions 1 to {}",
                    recording::FORMAT_VERSION
                )),
                "{err}"
            );
        }
        // Through the CLI: one line, naming the file.
        let p = tmp(&format!("bad-{name}.wqt"));
        std::fs::write(&p, &bytes).unwrap();
        let out = Command::new(BIN).arg("report").arg(&p).output().unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("wqtrace: {}: ", p.display())),
            "{stderr}"
        );
        assert!(stderr.contains(want), "{stderr}");
    }
}

#[test]
fn truncated_tail_keeps_every_complete_chunk() {
    let evs = fixtures::busy_stream(20_000, 2, 3);
    let p = write_file("trunc.wqt", &evs, 0, Some(4096));
    let full = std::fs::read(&p).unwrap();
    // Cut in the middle of the last events chunk (before the trailer).
    let cut = full.len() - 2000;
    std::fs::write(&p, &full[..cut]).unwrap();
    let (got, warnings) = read(&p);
    assert!(!got.is_empty() && got.len() < evs.len());
    assert_eq!(&evs[..got.len()], &got[..], "a prefix");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("truncated"), "{warnings:?}");
    // report still works, warns once, and says the recording did not stop cleanly.
    let out = Command::new(BIN).arg("report").arg(&p).output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("wqtrace: warning:") && stderr.contains("truncated"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("did not stop cleanly"), "{stdout}");
    assert!(
        stdout.contains(&format!("events     {}", got.len())),
        "{stdout}"
    );
}

/// Positions of the chunk markers in a file (after its header).
fn markers(b: &[u8]) -> Vec<usize> {
    b.windows(4)
        .enumerate()
        .filter(|(i, w)| *i > 20 && *w == recording::SYNC)
        .map(|(i, _)| i)
        .collect()
}

/// Events of every chunk a reader returns, checked against `evs` by their index.
fn recovered(p: &Path, evs: &[Event]) -> (usize, Reader<std::fs::File>) {
    let mut r = Reader::new(std::fs::File::open(p).unwrap()).unwrap();
    let mut n = 0;
    while let Some(c) = r.next_chunk().unwrap() {
        if let Chunk::Events {
            first_index,
            events,
            ..
        } = c
        {
            let i = first_index as usize;
            assert_eq!(&evs[i..i + events.len()], &events[..]);
            n += events.len();
        }
    }
    (n, r)
}

/// A chunk whose length field was damaged to point past the end of the file is one damaged
/// chunk, not the end of the recording: every later chunk is recovered.
#[test]
fn damaged_length_past_the_end_loses_one_chunk() {
    let evs = fixtures::busy_stream(20_000, 2, 4);
    let p = write_file("badlen.wqt", &evs, 0, Some(4096));
    let mut b = std::fs::read(&p).unwrap();
    let m = markers(&b);
    let at = m[m.len() / 2];
    let past_end = (b.len() as u32 + 1000).to_le_bytes();
    b[at + 5..at + 9].copy_from_slice(&past_end);
    std::fs::write(&p, &b).unwrap();
    let (got, r) = recovered(&p, &evs);
    let lost = evs.len() - got;
    assert!(lost > 0 && lost < 2000, "one chunk lost, got {lost}");
    assert!(r.trailer().is_some(), "the chunks after it were read");
    assert!(
        r.warnings()
            .iter()
            .any(|w| w.contains("chunk length past the end")),
        "{:?}",
        r.warnings()
    );
}

/// 2 MiB of fake chunk markers, each claiming a payload up to the end of the file: every
/// candidate is checked without hashing its payload again, so reading stays linear (each
/// would have cost a checksum over megabytes: hours in all), and the real chunks after them
/// are recovered.
#[test]
fn fake_markers_keep_resync_linear() {
    let evs = fixtures::busy_stream(20_000, 2, 4);
    let p = write_file("fakes.wqt", &evs, 0, Some(4096));
    let b = std::fs::read(&p).unwrap();
    let m = markers(&b);
    let cut = m[m.len() / 2];
    let fake_len = 2 << 20;
    let mut fakes = Vec::with_capacity(fake_len);
    while fakes.len() + 13 <= fake_len {
        // Marker, events kind, a length reaching into the real chunks after the block, a
        // checksum that will not match.
        let to_end = (fake_len - fakes.len() + (b.len() - cut) - 13) as u32;
        fakes.extend_from_slice(&recording::SYNC);
        fakes.push(recording::CHUNK_EVENTS);
        fakes.extend_from_slice(&to_end.min(recording::MAX_CHUNK).to_le_bytes());
        fakes.extend_from_slice(&[0xab; 4]);
    }
    let mut damaged = b[..cut].to_vec();
    damaged.extend_from_slice(&fakes);
    damaged.extend_from_slice(&b[cut..]);
    std::fs::write(&p, &damaged).unwrap();
    let t = Instant::now();
    let (got, r) = recovered(&p, &evs);
    let took = t.elapsed();
    assert_eq!(got, evs.len(), "nothing lost: the fakes sit between chunks");
    assert!(r.trailer().is_some());
    assert!(took < Duration::from_secs(30), "resync took {took:?}");
}

#[test]
fn flipped_byte_skips_one_chunk_and_counts_its_events() {
    let evs = fixtures::busy_stream(20_000, 2, 4);
    let p = write_file("flip.wqt", &evs, 0, Some(4096));
    let mut b = std::fs::read(&p).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x10;
    std::fs::write(&p, &b).unwrap();
    let (got, r) = recovered(&p, &evs);
    let lost = evs.len() - got;
    assert!(lost > 0 && lost < 2000, "one chunk lost, got {lost}");
    assert_eq!(r.damaged_events(), lost as u64);
    assert!(r.trailer().is_some(), "reading resumed after the damage");
    assert!(
        r.warnings().iter().any(|w| w.contains("damaged")),
        "{:?}",
        r.warnings()
    );
}

/// A pipe the session saw no free of: "not released" where the session could see frees,
/// "unknown" (null, and a line in the text) where it could not: no free hook, more pipes
/// known at once than the programs keep without dropping one, events lost by the tracer or to
/// file damage (a free among them). A recording cut short (no trailer) answers as it would
/// have with one. A pipe seen freed is released either way.
#[test]
fn release_is_unknown_where_frees_were_not_traced() {
    use wqtrace::session::KnownPipes;
    let mut events = fixtures::notification_session();
    // The ordinary pipe's free: without it, that pipe was not seen released.
    let free = events.pop().unwrap();
    assert_eq!(free.kind(), Some(wqtrace_common::EventKind::PipeReleased));
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Spoil {
        None,
        /// Killed: no trailer.
        Cut,
        /// The kernel's ring dropped events.
        Lost,
        /// A chunk (one event: a chunk per event) fails its checksum.
        Damaged,
    }
    let released_in = |method: &str, peak: Option<u64>, spoil: Spoil| {
        let mut h = header();
        h.meta.attach.push(("pipe_release".into(), method.into()));
        let p = tmp(&format!("release-{method}-{peak:?}-{spoil:?}.wqt"));
        let mut w = Writer::new(std::fs::File::create(&p).unwrap(), &h).unwrap();
        if spoil == Spoil::Damaged {
            w.set_flush_bytes(1);
        }
        for e in &events {
            w.push(e).unwrap();
        }
        w.set_known_pipes(peak.map(|peak| KnownPipes { peak, room: 16384 }));
        w.set_lost(if spoil == Spoil::Lost { 3 } else { 0 });
        w.finish("signal").unwrap();
        let mut file = std::fs::read(&p).unwrap();
        let syncs: Vec<usize> = (0..file.len() - 4)
            .filter(|&i| file[i..i + 4] == wqtrace::recording::SYNC)
            .collect();
        match spoil {
            Spoil::Cut => file.truncate(*syncs.last().unwrap()),
            // The second event's chunk: the first creates a pipe the report looks up.
            Spoil::Damaged => file[syncs[1] + 15] ^= 0x40,
            _ => {}
        }
        std::fs::write(&p, file).unwrap();
        let text = common::recording::report_text(&p);
        assert_eq!(text.contains("no trailer"), spoil == Spoil::Cut, "{text}");
        let v = report_json(&p, &[]);
        let by_ino = |ino: u64| {
            v["pipes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["ino"] == ino)
                .unwrap()["released"]
                .clone()
        };
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("frees"))
            .map(|l| l.trim().to_string());
        let (npipe, ordinary) = (by_ino(fixtures::NPIPE_INO), by_ino(free.ino));
        (npipe, ordinary, line)
    };
    let short = |line: Option<String>| line.map(|l| l.split(':').next().unwrap().to_string());
    let released = |method: &str, peak: Option<u64>| {
        let (a, b, line) = released_in(method, peak, Spoil::None);
        let clean = (a, b, short(line));
        let (a, b, line) = released_in(method, peak, Spoil::Cut);
        assert_eq!((a, b, short(line)), clean, "{method} {peak:?}, cut short");
        clean
    };
    let (t, f, n) = (
        serde_json::json!(true),
        serde_json::json!(false),
        serde_json::Value::Null,
    );
    assert_eq!(released("tp_btf kfree", None), (t.clone(), f.clone(), None));
    assert_eq!(
        released("tp_btf kfree", Some(16384)),
        (t.clone(), f, None),
        "at the room, nothing was dropped"
    );
    assert_eq!(
        released("unavailable", None),
        (t.clone(), n.clone(), Some("not traced".into()))
    );
    assert_eq!(
        released("tp_btf kfree", Some(16385)),
        (t.clone(), n.clone(), Some("may have been missed".into()))
    );
    for (spoil, why) in [
        (Spoil::Lost, "3 events were lost by the tracer"),
        (Spoil::Damaged, "1 event was lost to file damage"),
    ] {
        let (a, b, line) = released_in("tp_btf kfree", None, spoil);
        assert_eq!((&a, &b), (&t, &n), "{spoil:?}");
        let line = line.unwrap_or_else(|| panic!("{spoil:?}: no frees line"));
        assert!(
            line.starts_with(&format!("may have been missed: {why}")),
            "{spoil:?}: {line}"
        );
    }
}

#[test]
fn report_text_and_json() {
    let p = write_file("report.wqt", &fixtures::notification_session(), 2, None);
    let out = Command::new(BIN).arg("report").arg(&p).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    eprintln!("{text}");
    for want in [
        "kernel     6.9.0-test on testhost",
        "attach     notify_post=fentry get_pipe_info=kprobe",
        "stop       clean (signal)",
        "pipe:[81234] notification",
        "notifications attempts 6: landed 5, lost 1 (ring full 1, notes full 0, reason unknown 0), filtered 0, unknown 0",
        "rejections    2: splice by splicer[4300] ×1 (EINVAL), tee by splicer[4300] ×1 (EINVAL)",
        "waits         1, total 1.99 ms, max 1.99 ms",
        "contention    mutex   1 (total 15.0 µs, worst 15.0 µs: wq-reader[4101] waited for splicer[4301])",
        // The reader's 2-slot read with a post landing meanwhile is not an interleave.
        "interleaves   0",
        "pipe:[81240]  (",
        "ring          8 slots, max occupancy 3",
    ] {
        assert!(text.contains(want), "missing {want:?}");
    }
    // Totals come first, notification pipes before ordinary ones.
    assert!(text.find("events     ").unwrap() < text.find("pipe:[81234]").unwrap());
    assert!(text.find("pipe:[81234]").unwrap() < text.find("pipe:[81240]").unwrap());

    let v = report_json(&p, &[]);
    assert_eq!(
        v["totals"]["events"],
        fixtures::notification_session().len()
    );
    assert_eq!(v["totals"]["lost"], 2);
    assert_eq!(v["kernel"], "6.9.0-test");
    assert_eq!(v["attach"][0]["method"], "fentry");
    let np = &v["pipes"][0];
    assert_eq!(np["ino"], fixtures::NPIPE_INO);
    assert_eq!(np["notifications"]["lost"], 1);
    assert_eq!(np["max_occupancy"], 4);
    assert_eq!(np["rejections"]["by"][0]["op"], "splice");
    assert_eq!(np["rejections"]["by"][0]["comm"], "splicer");
    assert_eq!(np["waits"]["max_ns"], 1_990_000);
    assert_eq!(np["contention"]["mutex"]["worst_ns"], 15_000);
    assert_eq!(np["interleaves"].as_array().map(Vec::len), Some(0));
    assert_eq!(v["totals"]["post_outcomes"]["landed"], 5);
    assert_eq!(v["totals"]["post_outcomes"]["lost_ring_full"], 1);
    assert_eq!(v["pipes"][1]["notification"], false);
}

#[test]
fn report_names_the_notes_a_queue_leaked() {
    let p = write_file("leak.wqt", &fixtures::leaked_note_session(), 0, None);
    let out = Command::new(BIN).arg("report").arg(&p).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(
            "notes leaked  1 of 256: in use with no ring slot holding them, never handed out again (+0.000060s to +0.000060s); 255 notes left for the ring"
        ),
        "{text}"
    );
    let v = report_json(&p, &[]);
    assert_eq!(v["pipes"][0]["notes_leaked"]["count"], 1);
    // A queue that lost none says nothing about it.
    let p = write_file("noleak.wqt", &fixtures::notification_session(), 0, None);
    let out = Command::new(BIN).arg("report").arg(&p).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("notes leaked"), "{text}");
}

const PERFETTO_CHECK: &str = r#"
import sys, collections
from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb
t = pb.Trace()
t.ParseFromString(open(sys.argv[1], 'rb').read())
tracks = {}
counts = collections.Counter()
for p in t.packet:
    if p.HasField('track_descriptor'):
        d = p.track_descriptor
        name = d.name or (d.thread.thread_name if d.HasField('thread') else d.process.process_name)
        kind = 'counter' if d.HasField('counter') else 'thread' if d.HasField('thread') else 'process' if d.HasField('process') else 'track'
        tracks[d.uuid] = (kind, name)
    elif p.HasField('track_event'):
        e = p.track_event
        assert e.track_uuid in tracks, e
        assert p.timestamp > 0
        key = {1: 'begin', 2: 'end', 3: 'instant', 4: 'counter'}[e.type]
        counts[key] += 1
        if e.name:
            counts[key + ':' + e.name] += 1
for uuid, (kind, name) in sorted(tracks.items()):
    print('track', kind, name)
for k, v in sorted(counts.items()):
    print('count', k, v)
"#;

#[test]
fn export_perfetto_parses_with_the_perfetto_protos() {
    // `cargo xtask setup` installs both; a test does not install packages, nor pass without them.
    let py = "python3";
    let have = Command::new(py)
        .args([
            "-c",
            "from perfetto.protos.perfetto.trace import perfetto_trace_pb2",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        have,
        "python3 with the PyPI `perfetto` package is needed to check Perfetto exports: run `cargo xtask setup`"
    );
    let p = write_file("export.wqt", &fixtures::notification_session(), 0, None);
    let out = tmp("export.pftrace");
    let st = Command::new(BIN)
        .arg("export")
        .arg(&p)
        .args(["--format", "perfetto", "-o"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let script = tmp("check_perfetto.py");
    std::fs::write(&script, PERFETTO_CHECK).unwrap();
    let o = Command::new(py).arg(&script).arg(&out).output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("{stdout}");
    for want in [
        "track track pipe:[81234] (notification)",
        "track counter pipe:[81234] (notification) occupancy",
        "track track pipe:[81234] (notification) rd_wait",
        "track track pipe:[81240]",
        "track thread wq-reader",
        "track thread keyctl",
        "track thread splicer",
        "track process wq-reader",
        // 5 posts + 1 lost post, 2 rejections.
        "count instant:post 5",
        "count instant:post lost 1",
        "count instant:splice rejected 1",
        "count instant:tee rejected 1",
        // Slices: 6 post holds, 2 waits, 2 contentions.
        "count begin 10",
        "count end 10",
        "count begin:rd_wait held (post) 6",
        "count begin:mutex contended 1",
        "count begin:rd_wait contended 1",
    ] {
        assert!(stdout.lines().any(|l| l == want), "missing {want:?}");
    }
    let threads = stdout
        .lines()
        .filter(|l| l.starts_with("track thread "))
        .count();
    assert_eq!(threads, 5);
    let counters: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("count counter "))
        .unwrap()
        .parse()
        .unwrap();
    let expected = fixtures::notification_session()
        .iter()
        .filter(|e| e.ring_size != 0 && matches!(e.kind, 1 | 2 | 3 | 7))
        .count();
    assert_eq!(counters, expected);
}

#[test]
fn export_chrome_json_and_jsonl() {
    let evs = fixtures::notification_session();
    let p = write_file("export2.wqt", &evs, 0, None);
    let o = Command::new(BIN)
        .arg("export")
        .arg(&p)
        .args(["-f", "chrome-json"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let evs_json = v["traceEvents"].as_array().unwrap();
    let count = |ph: &str| evs_json.iter().filter(|e| e["ph"] == ph).count();
    assert_eq!(count("X"), 10);
    assert!(count("C") > 5);
    let x = evs_json
        .iter()
        .find(|e| e["name"] == "pipe_wait" || e["name"] == "wait (read)")
        .unwrap();
    assert_eq!(x["dur"], 1990.0);
    let o = Command::new(BIN)
        .arg("export")
        .arg(&p)
        .args(["-f", "jsonl"])
        .output()
        .unwrap();
    let lines = common::json_lines(&o.stdout);
    assert_eq!(lines.len(), evs.len());
    assert_eq!(lines[0]["kind"], "pipe_created");
    assert_eq!(
        lines[0]["wall_ns"],
        evs[0].ts_ns as i64 + 1_700_000_000_000_000_000
    );
}

/// Stacks written into a recording come back by name on any machine: export's JSON lines carry
/// them under their events, the report groups them per pipe with counts, and a recording
/// without stacks says why when asked for them.
#[test]
fn stacks_travel_with_the_recording() {
    use wqtrace::stacks::{Frame, Stack, StackKey};
    let frame = |name: &str, module: Option<&str>| Frame {
        addr: 0xffff_ffff_8100_0000,
        name: Some(name.into()),
        offset: 0x10,
        module: module.map(Into::into),
    };
    let table = wqtrace::stacks::shared();
    let mut evs = fixtures::notification_session();
    let rejected: Vec<usize> = evs
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == wqtrace_common::EventKind::SpliceRejected as u8)
        .map(|(i, _)| i)
        .collect();
    assert!(!rejected.is_empty(), "the fixture has rejections");
    let tgid = evs[rejected[0]].tgid;
    for &i in &rejected {
        evs[i].kstack = 5; // id 4
        evs[i].ustack = 2; // id 1
    }
    {
        let mut t = table.write().unwrap();
        t.insert(
            StackKey {
                user: false,
                tgid: 0,
                id: 4,
            },
            Stack {
                frames: vec![frame("get_pipe_info", None), frame("do_splice", None)],
                error: None,
            },
        );
        t.insert(
            StackKey {
                user: true,
                tgid,
                id: 1,
            },
            Stack {
                frames: vec![frame("myapp::splice_it", Some("myapp"))],
                error: None,
            },
        );
    }
    let p = tmp("stacks.wqt");
    let mut w = Writer::new(std::fs::File::create(&p).unwrap(), &header()).unwrap();
    w.set_stacks(Some(table));
    w.set_flush_bytes(64);
    for e in &evs {
        w.push(e).unwrap();
    }
    w.finish("test").unwrap();

    let o = Command::new(BIN)
        .args(["export", "-f", "jsonl"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = common::json_lines(&o.stdout);
    let with: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l.get("kstack").is_some()).collect();
    assert_eq!(with.len(), rejected.len());
    for l in with {
        assert_eq!(l["kind"], "splice_rejected");
        assert_eq!(l["kstack"][0], "get_pipe_info+0x10");
        assert_eq!(l["kstack"][1], "do_splice+0x10");
        assert_eq!(l["ustack"][0], "myapp::splice_it+0x10 [myapp]");
    }

    // The timeline formats carry them as arguments of the event's item.
    let o = Command::new(BIN)
        .args(["export", "-f", "chrome-json"])
        .arg(&p)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let items: Vec<&serde_json::Value> = v["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"].as_str().is_some_and(|n| n.ends_with("rejected")))
        .collect();
    assert_eq!(items.len(), rejected.len());
    for it in items {
        assert_eq!(
            it["args"]["kernel_stack"], "get_pipe_info+0x10\ndo_splice+0x10",
            "{it}"
        );
        assert_eq!(
            it["args"]["user_stack"], "myapp::splice_it+0x10 [myapp]",
            "{it}"
        );
    }

    let r = report_json(&p, &[]);
    let groups = r["stacks"].as_array().unwrap();
    let total: u64 = groups.iter().map(|g| g["count"].as_u64().unwrap()).sum();
    assert_eq!(total, rejected.len() as u64, "{groups:?}");
    assert!(
        groups
            .iter()
            .all(|g| g["kind"] == "rejection" && g["kstack"][0] == "get_pipe_info+0x10")
    );
    let o = Command::new(BIN).arg("report").arg(&p).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("rejection ×"), "{text}");
    assert!(text.contains("myapp::splice_it+0x10 [myapp]"), "{text}");

    // A recording made without stacks: one line when asked, and the report is still whole.
    let mut h = header();
    h.stacks = Some("none".into());
    let q = tmp("nostacks.wqt");
    let mut w = Writer::new(std::fs::File::create(&q).unwrap(), &h).unwrap();
    for e in &fixtures::notification_session() {
        w.push(e).unwrap();
    }
    w.finish("test").unwrap();
    let o = Command::new(BIN)
        .args(["report", "--stacks"])
        .arg(&q)
        .output()
        .unwrap();
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("has no stacks: it was recorded with --stacks none"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("Stacks: none recorded"));
}

#[test]
fn replay_engine_paces_pauses_steps_and_seeks() {
    let evs = fixtures::busy_stream(30_000, 3, 9);
    let p = write_file("replay.wqt", &evs, 0, Some(8192));
    let mut r = Replay::open(&p, Default::default()).unwrap();
    assert_eq!(r.start_ts(), evs[0].ts_ns);
    assert_eq!(r.end_ts(), evs.last().unwrap().ts_ns);
    // Pacing: 10 ms of wall time at 10× = 100 ms of recording.
    let t0 = Instant::now();
    r.set_speed(10.0);
    assert_eq!(
        r.tick(t0).unwrap(),
        evs.iter().filter(|e| e.ts_ns <= evs[0].ts_ns).count()
    );
    let n = r.tick(t0 + Duration::from_millis(10)).unwrap();
    let want = evs
        .iter()
        .filter(|e| e.ts_ns <= evs[0].ts_ns + 100_000_000)
        .count();
    assert_eq!(r.applied() as usize, want);
    assert!(n > 0);
    // Paused: time passes, nothing happens; step applies exactly one event.
    r.pause();
    assert_eq!(r.tick(t0 + Duration::from_secs(100)).unwrap(), 0);
    let e = r.step().unwrap().unwrap();
    assert_eq!(e, evs[want]);
    assert!(r.is_paused());

    // Seeking anywhere gives the same model as applying the events up to there.
    let fresh = |ts: u64| {
        let mut m = wqtrace::model::Model::default();
        for e in evs.iter().filter(|e| e.ts_ns <= ts) {
            m.apply(e);
        }
        m
    };
    let span = r.end_ts() - r.start_ts();
    for frac in [0.9, 0.2, 0.5, 0.0, 1.0, 0.3] {
        let ts = r.start_ts() + (span as f64 * frac) as u64;
        r.seek(ts).unwrap();
        let m = fresh(ts);
        assert_eq!(r.model().counters(), m.counters(), "at {frac}");
        assert_eq!(
            r.model().pipes_sorted(PipeOrder::Ino),
            m.pipes_sorted(PipeOrder::Ino),
            "at {frac}"
        );
    }
    r.seek(r.end_ts()).unwrap();
    assert!(r.at_end().unwrap());
    assert_eq!(r.applied() as usize, evs.len());

    // --dump through the CLI.
    let o = Command::new(BIN)
        .args(["replay", "--dump", "--at", "0"])
        .arg(&p)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && s.starts_with("at +0.000000s"), "{s}");
    // Without a terminal the interactive replay says so in one line and points at --dump.
    let o = Command::new(BIN)
        .arg("replay")
        .arg(&p)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("needs a terminal") && err.contains("--dump"),
        "{err}"
    );
}

fn record_cmd() -> Command {
    let mut c = Command::new(BIN);
    c.arg("record").stdin(Stdio::null());
    c
}

fn trailer_of(p: &Path) -> recording::Trailer {
    let mut r = Reader::new(std::fs::File::open(p).unwrap()).unwrap();
    r.read_all().unwrap();
    r.trailer().cloned().expect("trailer")
}

#[test]
fn record_stops_on_duration_command_and_signal() {
    // -d
    let p = tmp("rec-d.wqt");
    let t = Instant::now();
    let o = record_cmd()
        .arg("-o")
        .arg(&p)
        .args([
            "--synthetic",
            "10000000",
            "--synthetic-rate",
            "20000",
            "-d",
            "0.5",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(t.elapsed() < Duration::from_secs(5));
    let tr = trailer_of(&p);
    assert_eq!(tr.stop_reason, "duration");
    assert!(tr.events > 1000, "{tr:?}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("B/event; stopped by duration"), "{stderr}");

    // -- CMD: stops when it exits.
    let p = tmp("rec-cmd.wqt");
    let o = record_cmd()
        .arg("-o")
        .arg(&p)
        .args([
            "--synthetic",
            "10000000",
            "--synthetic-rate",
            "20000",
            "--",
            "sh",
            "-c",
            "sleep 0.3; exit 3",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("command exit (status 3)"));
    let tr = trailer_of(&p);
    assert_eq!(tr.stop_reason, "command");
    let mut r = Reader::new(std::fs::File::open(&p).unwrap()).unwrap();
    assert_eq!(r.header().command, ["sh", "-c", "sleep 0.3; exit 3"]);
    assert_eq!(r.read_all().unwrap().len() as u64, tr.events);

    // SIGTERM: clean stop, trailer written.
    let p = tmp("rec-sig.wqt");
    let mut child = record_cmd()
        .arg("-o")
        .arg(&p)
        .args(["--synthetic", "10000000", "--synthetic-rate", "20000"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut first = [0u8; 32];
    std::io::Read::read_exact(&mut stderr, &mut first).unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("wqtrace: recording to"));
    std::thread::sleep(Duration::from_millis(300));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    assert!(st.success());
    let tr = trailer_of(&p);
    assert_eq!(tr.stop_reason, "signal");
    assert!(tr.events > 0);
}

#[test]
fn sigkill_loses_at_most_the_last_chunk() {
    let p = tmp("rec-kill.wqt");
    let mut child = record_cmd()
        .arg("-o")
        .arg(&p)
        .args(["--synthetic", "10000000", "--synthetic-rate", "50000", "-q"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap();
    child.wait().unwrap();
    let (evs, warnings) = read(&p);
    // ~35k events were produced; everything but the last 100 ms must be there.
    assert!(evs.len() > 10_000, "{} events, {warnings:?}", evs.len());
    assert_eq!(&fixtures::busy_stream(evs.len(), 4, 7)[..], &evs[..]);
}

/// Outputs that cannot be fsynced (a character device, a pipe) are not errors: the recording
/// still ends cleanly, and through a pipe it arrives whole.
#[test]
fn record_to_dev_null_and_through_a_pipe() {
    let o = record_cmd()
        .args(["-o", "/dev/null", "--synthetic", "1000", "-q"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = record_cmd()
        .args(["-o", "/dev/stdout", "--synthetic", "1000", "-q"])
        .stdout(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = tmp("piped.wqt");
    std::fs::write(&p, &o.stdout).unwrap();
    let (evs, warnings) = read(&p);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(&fixtures::busy_stream(1000, 4, 7)[..], &evs[..]);
    // `-o -` is standard output too.
    let o = record_cmd()
        .args(["-o", "-", "--synthetic", "1000", "-q"])
        .stdout(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = tmp("dash.wqt");
    std::fs::write(&p, &o.stdout).unwrap();
    assert_eq!(&fixtures::busy_stream(1000, 4, 7)[..], &read(&p).0[..]);
    // No size is claimed for a pipe (it has none to tell).
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("B/event"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `-o -` on a terminal: one line, nothing written (a recording is binary). `script` gives the
/// command a pseudo-terminal as its standard output.
#[test]
fn record_to_a_terminal_is_refused() {
    let o = Command::new("script")
        .args(["-qec"])
        .arg(format!("{BIN} record -o - --synthetic 10"))
        .arg("/dev/null")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("wqtrace: a recording is binary: give -o FILE, or redirect standard output"),
        "{out:?}"
    );
    assert!(
        !out.contains("WQT"),
        "no recording bytes on the terminal: {out:?}"
    );
}

/// As root in /tmp: a link planted where the recording goes is not followed, an existing file
/// is not replaced without --force, the recording is 0600 and, under sudo, its user's.
#[test]
fn recordings_are_private_and_never_follow_planted_links() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let victim = tmp("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let link = tmp("sym.wqt");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let o = record_cmd()
        .arg("-o")
        .arg(&link)
        .args(["--synthetic", "10", "-q"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is a symbolic link"), "{err}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");

    let p = tmp("mine.wqt");
    let rec = |extra: &[&str]| {
        record_cmd()
            .arg("-o")
            .arg(&p)
            .args(["--synthetic", "10", "-q"])
            .args(extra)
            .env("SUDO_UID", "65534")
            .env("SUDO_GID", "65534")
            .output()
            .unwrap()
    };
    assert!(rec(&[]).status.success());
    let m = std::fs::metadata(&p).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        (m.uid(), m.gid()),
        (65534, 65534),
        "handed to the sudo user"
    );
    let again = rec(&[]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists: pass --force to replace it"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(rec(&["--force"]).status.success());
    assert_eq!(read(&p).0.len(), 10);
}

#[test]
fn full_disk_is_one_clear_error_and_the_file_stays_readable() {
    // The CLI on /dev/full: one line.
    let o = record_cmd()
        .args(["-o", "/dev/full", "--synthetic", "1000"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        stderr.trim_end(),
        "wqtrace: /dev/full: disk full (no space left on device) after 0 events; the recording is readable up to its last complete chunk"
    );

    // The loop with a disk that fills up after 100 KiB.
    struct Disk {
        data: Vec<u8>,
        cap: usize,
    }
    impl Write for &mut Disk {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let room = self.cap - self.data.len();
            if room == 0 {
                return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = room.min(b.len());
            self.data.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl wqtrace::sinks::record::Durable for &mut Disk {}
    let mut disk = Disk {
        data: Vec::new(),
        cap: 100 * 1024,
    };
    let evs = fixtures::busy_stream(50_000, 2, 5);
    let mut src =
        wqtrace::source::file::VecSource::new(SessionMeta::default(), evs.clone(), 1000, 0);
    let mut w = Writer::new(&mut disk, &header()).unwrap();
    let mut progress = wqtrace::sinks::record::Progress::new(true);
    let err = wqtrace::sinks::record::record_loop(
        &mut src,
        &mut w,
        Path::new("out.wqt"),
        None,
        None,
        &mut progress,
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("out.wqt: disk full"), "{err}");
    drop(w);
    let mut r = Reader::new(&disk.data[..]).unwrap();
    let got = r.read_all().unwrap();
    assert!(got.len() > 1000);
    assert_eq!(&evs[..got.len()], &got[..]);
    assert!(r.warnings().iter().all(|w| w.contains("truncated")));
}

/// A format-version-1 recording (made by the wqtrace before version 2, in the 6.12 test VM:
/// the notify, overflow and reject workloads) still reads, and its events survive being
/// written again in the current format unchanged.
#[test]
fn format_v1_recordings_still_read() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format-v1.wqt");
    let r = Reader::new(std::fs::File::open(&p).unwrap()).unwrap();
    assert_eq!(r.version(), 1);
    let (evs, warnings) = read(&p);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(evs.len(), 149);
    let kind = |k: wqtrace_common::EventKind| evs.iter().filter(|e| e.kind() == Some(k)).count();
    assert_eq!(kind(wqtrace_common::EventKind::NotifyPosted), 79);
    assert_eq!(kind(wqtrace_common::EventKind::SpliceRejected), 7);
    assert_eq!(kind(wqtrace_common::EventKind::RingOp), 27);
    // Version 1 left an absent fd at -1 (version 2 defaults to the task's last one).
    assert!(
        evs.iter()
            .filter(|e| e.kind() == Some(wqtrace_common::EventKind::RingOp))
            .all(|e| e.fd_in >= 0 || e.fd_out >= 0)
    );
    assert!(evs.iter().any(|e| e.fd_out == -1));

    // Its events carry no cgroup: asked for one, export says so in one line.
    let o = Command::new(BIN)
        .args(["export", "-f", "jsonl", "--cgroup", "/system.slice"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("was recorded before events carried their cgroup (format 1)"),
        "{err}"
    );
    assert!(o.stdout.is_empty());

    let again = write_file("v1-again.wqt", &evs, 0, Some(512));
    let r = Reader::new(std::fs::File::open(&again).unwrap()).unwrap();
    assert_eq!(r.version(), recording::FORMAT_VERSION);
    assert_eq!(read(&again).0, evs);
}
