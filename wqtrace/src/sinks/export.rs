//! `wqtrace export FILE --format perfetto|chrome-json|jsonl [-o OUT]`: a recording as a timeline.
//!
//! Tracks: one per pipe (instants: created, posts, lost posts, rejections, released), a child
//! counter track with the pipe's occupancy, a child track with the rd_wait hold of each post
//! (slice), and one per task (slices: waits and lock contention; instants: ring operations).
//! Slices end at the event's `ts_ns` and last `duration_ns`. Perfetto output is the protobuf
//! `Trace` format (hand-encoded TrackDescriptor + TrackEvent packets, boot-time clock), which
//! ui.perfetto.dev opens directly. The recording is read twice (tracks, then events), so memory
//! does not grow with its length.

use std::collections::HashMap;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use wqtrace_common::{Event, EventKind, Op, PostOutcome, flags};

use crate::source::EventSource;
use crate::source::recording::RecordingSource;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Perfetto protobuf trace (open in ui.perfetto.dev).
    Perfetto,
    /// Chrome trace-event JSON (chrome://tracing, ui.perfetto.dev).
    ChromeJson,
    /// One JSON object per event (same fields as `wqtrace trace --json`).
    Jsonl,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A recording made by `wqtrace record`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[arg(short = 'f', long, value_enum)]
    pub format: Format,
    /// Output file (default: standard output). Created 0600 and handed to the sudo user; an
    /// existing file is kept unless --force.
    #[arg(short = 'o', long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Replace OUT if it exists (a symlink there is replaced, never followed).
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let stdout = std::io::stdout();
    if args.output.is_none() && args.format == Format::Perfetto && stdout.is_terminal() {
        bail!("the perfetto format is binary: give -o OUT or redirect standard output");
    }
    let out: Box<dyn Write> = match &args.output {
        Some(p) => {
            let owner = crate::privileges::session_user(&Default::default())?;
            Box::new(crate::output::create(p, args.force, owner.as_ref())?)
        }
        None => Box::new(stdout.lock()),
    };
    let mut out = BufWriter::new(out);
    let res = export(&args.file, args.format, &mut out).and_then(|n| {
        out.flush().context("writing the export")?;
        Ok(n)
    });
    let n = match res {
        Ok(n) => n,
        // The reader went away (`| head`): stop quietly.
        Err(e) if is_broken_pipe(&e) => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e),
    };
    if let Some(p) = &args.output {
        eprintln!("wqtrace: exported {n} events to {}", crate::text::path(p));
    }
    Ok(ExitCode::SUCCESS)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .and_then(|j| j.io_error_kind())
                .is_some_and(|k| k == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes the export of `path` to `out`; returns the number of events.
pub fn export(path: &Path, format: Format, out: &mut dyn Write) -> Result<u64> {
    let mut src = RecordingSource::open(path)?;
    let n = match format {
        Format::Jsonl => {
            let rt = src.meta().realtime_offset_ns;
            let mut n = 0;
            for_each(&mut src, |e| {
                n += 1;
                serde_json::to_writer(
                    &mut *out,
                    &crate::sinks::trace::EventJson {
                        event: e,
                        realtime_offset_ns: rt,
                    },
                )?;
                out.write_all(b"\n")?;
                Ok(())
            })?;
            n
        }
        Format::Perfetto | Format::ChromeJson => {
            // Pass 1: the tracks.
            let mut tracks = Tracks::default();
            for_each(&mut src, |e| {
                tracks.discover(e);
                Ok(())
            })?;
            // Pass 2: the events.
            let mut src = RecordingSource::open(path)?;
            let mut n = 0;
            if format == Format::Perfetto {
                let mut w = PerfettoWriter { out };
                w.descriptors(&tracks)?;
                for_each(&mut src, |e| {
                    n += 1;
                    for it in tracks.items(e) {
                        w.item(&it)?;
                    }
                    Ok(())
                })?;
            } else {
                let mut w = ChromeWriter { out, first: true };
                w.begin(&tracks)?;
                for_each(&mut src, |e| {
                    n += 1;
                    for it in tracks.items(e) {
                        w.item(&tracks, &it)?;
                    }
                    Ok(())
                })?;
                w.end()?;
            }
            src.print_warnings();
            n
        }
    };
    src.print_warnings();
    Ok(n)
}

fn for_each(src: &mut RecordingSource, mut f: impl FnMut(&Event) -> Result<()>) -> Result<()> {
    let mut batch = Vec::new();
    loop {
        batch.clear();
        let more = src.next_batch(&mut batch, Duration::ZERO)?;
        for e in &batch {
            f(e)?;
        }
        if !more {
            return Ok(());
        }
    }
}

/// Where a timeline item goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Track {
    /// Index into [`Tracks::pipes`].
    Pipe(usize),
    PipeOccupancy(usize),
    PipeHolds(usize),
    Thread(u32),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    U(u64),
    I(i64),
    S(String),
}

/// One thing drawn on the timeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Slice {
        track: Track,
        start_ns: u64,
        dur_ns: u64,
        name: String,
        args: Vec<(&'static str, Arg)>,
    },
    Instant {
        track: Track,
        ts_ns: u64,
        name: String,
        args: Vec<(&'static str, Arg)>,
    },
    Counter {
        track: Track,
        ts_ns: u64,
        value: i64,
    },
}

#[derive(Clone, Debug)]
pub struct PipeTrack {
    pub addr: u64,
    pub ino: u64,
    pub notification: bool,
}

impl PipeTrack {
    pub fn name(&self) -> String {
        let base = if self.ino != 0 {
            format!("pipe:[{}]", self.ino)
        } else {
            format!("pipe@{:#x}", self.addr)
        };
        if self.notification {
            base + " (notification)"
        } else {
            base
        }
    }
}

/// The tracks of a recording, in order of first appearance.
#[derive(Default, Debug)]
pub struct Tracks {
    pub pipes: Vec<PipeTrack>,
    pipe_index: HashMap<(u64, u64), usize>,
    /// tid → (tgid, comm), in order of first appearance.
    pub threads: Vec<(u32, u32, String)>,
    thread_index: HashMap<u32, usize>,
}

impl Tracks {
    pub fn discover(&mut self, e: &Event) {
        if e.pipe != 0 || e.ino != 0 {
            let n = self.pipes.len();
            let i = *self.pipe_index.entry((e.pipe, e.ino)).or_insert(n);
            if i == n {
                self.pipes.push(PipeTrack {
                    addr: e.pipe,
                    ino: e.ino,
                    notification: false,
                });
            }
            if e.flags & flags::NOTIFICATION_PIPE != 0
                || matches!(
                    e.kind(),
                    Some(EventKind::WatchQueueSized | EventKind::WatchAdded)
                )
            {
                self.pipes[i].notification = true;
            }
        }
        if e.tid != 0 && !self.thread_index.contains_key(&e.tid) {
            self.thread_index.insert(e.tid, self.threads.len());
            self.threads
                .push((e.tid, e.tgid, crate::text::comm(&e.comm).into_owned()));
        }
    }

    fn pipe(&self, e: &Event) -> Option<usize> {
        self.pipe_index.get(&(e.pipe, e.ino)).copied()
    }

    /// The timeline items of one event.
    pub fn items(&self, e: &Event) -> Vec<Item> {
        let mut v = Vec::new();
        let pipe = self.pipe(e);
        let thread =
            (e.tid != 0 && self.thread_index.contains_key(&e.tid)).then_some(Track::Thread(e.tid));
        let who = || Arg::S(format!("{}[{}]", crate::text::comm(&e.comm), e.tid));
        let ts = e.ts_ns;
        let Some(kind) = e.kind() else { return v };
        match kind {
            EventKind::PipeCreated => {
                if let Some(p) = pipe {
                    v.push(Item::Instant {
                        track: Track::Pipe(p),
                        ts_ns: ts,
                        name: "created".into(),
                        args: vec![
                            ("by", who()),
                            ("fd_in", Arg::I(e.fd_in.into())),
                            ("fd_out", Arg::I(e.fd_out.into())),
                        ],
                    });
                }
            }
            EventKind::RingOp => {
                if let Some(t) = thread {
                    v.push(Item::Instant {
                        track: t,
                        ts_ns: ts,
                        name: e.op().name().into(),
                        args: vec![
                            ("ret", Arg::I(e.ret)),
                            ("ino", Arg::U(e.ino)),
                            (
                                "slots",
                                Arg::U(u64::from(
                                    e.head
                                        .wrapping_sub(e.head_before)
                                        .max(e.tail.wrapping_sub(e.tail_before)),
                                )),
                            ),
                        ],
                    });
                }
            }
            EventKind::NotifyPosted => {
                if let Some(p) = pipe {
                    let outcome = PostOutcome::from_flags(e.flags);
                    let mut args = vec![
                        ("type", Arg::U(e.ntype.into())),
                        ("subtype", Arg::U(e.subtype.into())),
                        ("watch_id", Arg::U(e.watch_id().into())),
                        ("by", who()),
                    ];
                    if let Some(slot) = e.slot() {
                        args.push(("slot", Arg::U(slot.into())));
                    }
                    if e.flags & flags::MUTEX_HELD != 0 {
                        args.push((
                            "mutex_owner",
                            Arg::S(format!(
                                "{}[{}]",
                                crate::text::comm(&e.owner_comm),
                                e.owner_tid
                            )),
                        ));
                    }
                    args.push(("outcome", Arg::S(outcome.name().into())));
                    let name = match outcome {
                        PostOutcome::Landed => "post",
                        o if o.is_lost() => "post lost",
                        PostOutcome::SkippedFilter => "post filtered",
                        _ => "post unknown",
                    };
                    v.push(Item::Instant {
                        track: Track::Pipe(p),
                        ts_ns: ts,
                        name: name.into(),
                        args,
                    });
                    if e.duration_ns > 0 {
                        v.push(Item::Slice {
                            track: Track::PipeHolds(p),
                            start_ns: ts.saturating_sub(e.duration_ns),
                            dur_ns: e.duration_ns,
                            name: "rd_wait held (post)".into(),
                            args: vec![("by", who())],
                        });
                    }
                }
            }
            EventKind::SpliceRejected => {
                if let Some(p) = pipe {
                    v.push(Item::Instant {
                        track: Track::Pipe(p),
                        ts_ns: ts,
                        name: format!("{} rejected", e.op().name()),
                        args: vec![("by", who()), ("ret", Arg::I(e.ret))],
                    });
                }
            }
            EventKind::PipeWait => {
                if let Some(t) = thread {
                    let what = match e.op() {
                        Op::WaitReadable | Op::WaitWritable | Op::Wait => e.op().name().to_string(),
                        op => format!("wait ({})", op.name()),
                    };
                    v.push(Item::Slice {
                        track: t,
                        start_ns: ts.saturating_sub(e.duration_ns),
                        dur_ns: e.duration_ns,
                        name: what,
                        args: vec![("ino", Arg::U(e.ino))],
                    });
                }
            }
            EventKind::LockContended => {
                if let Some(t) = thread {
                    let lock = if e.flags & flags::LOCK_MUTEX != 0 {
                        "mutex"
                    } else {
                        "rd_wait"
                    };
                    let mut args = vec![("ino", Arg::U(e.ino))];
                    if e.owner_tid != 0 {
                        args.push((
                            "holder",
                            Arg::S(format!(
                                "{}[{}]",
                                crate::text::comm(&e.owner_comm),
                                e.owner_tid
                            )),
                        ));
                    }
                    v.push(Item::Slice {
                        track: t,
                        start_ns: ts.saturating_sub(e.duration_ns),
                        dur_ns: e.duration_ns,
                        name: format!("{lock} contended"),
                        args,
                    });
                }
            }
            EventKind::WatchQueueSized | EventKind::WatchAdded | EventKind::PipeReleased => {
                if let Some(p) = pipe {
                    let name = match kind {
                        EventKind::WatchQueueSized => "watch queue sized".to_string(),
                        EventKind::WatchAdded => "watch added".to_string(),
                        _ if e.op() == Op::Close => "fd closed".to_string(),
                        _ => "released".to_string(),
                    };
                    v.push(Item::Instant {
                        track: Track::Pipe(p),
                        ts_ns: ts,
                        name,
                        args: vec![("by", who())],
                    });
                }
            }
        }
        if let Some(p) = pipe
            && e.ring_size != 0
            && matches!(
                kind,
                EventKind::RingOp
                    | EventKind::NotifyPosted
                    | EventKind::PipeCreated
                    | EventKind::WatchQueueSized
            )
        {
            v.push(Item::Counter {
                track: Track::PipeOccupancy(p),
                ts_ns: ts,
                value: e.occupancy().into(),
            });
        }
        v
    }
}

// ---- perfetto protobuf ----

/// A protobuf message being built (just the wire types we need).
#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn key(&mut self, field: u32, wire: u8) {
        crate::recording::codec::put_varint(&mut self.0, (u64::from(field) << 3) | u64::from(wire));
    }
    fn u64(&mut self, field: u32, v: u64) -> &mut Self {
        self.key(field, 0);
        crate::recording::codec::put_varint(&mut self.0, v);
        self
    }
    fn i64(&mut self, field: u32, v: i64) -> &mut Self {
        self.u64(field, v as u64)
    }
    fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.key(field, 2);
        crate::recording::codec::put_varint(&mut self.0, b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn str(&mut self, field: u32, s: &str) -> &mut Self {
        self.bytes(field, s.as_bytes())
    }
    fn msg(&mut self, field: u32, m: &Pb) -> &mut Self {
        self.bytes(field, &m.0)
    }
}

// Field numbers (protos/perfetto/trace/…).
const TRACE_PACKET: u32 = 1;
const PKT_TIMESTAMP: u32 = 8;
const PKT_SEQ_ID: u32 = 10;
const PKT_TRACK_EVENT: u32 = 11;
const PKT_TRACK_DESCRIPTOR: u32 = 60;
const TD_UUID: u32 = 1;
const TD_NAME: u32 = 2;
const TD_PROCESS: u32 = 3;
const TD_THREAD: u32 = 4;
const TD_PARENT: u32 = 5;
const TD_COUNTER: u32 = 8;
const TE_TYPE: u32 = 9;
const TE_TRACK: u32 = 11;
const TE_NAME: u32 = 23;
const TE_COUNTER_VALUE: u32 = 30;
const TE_DEBUG: u32 = 4;
const DA_NAME: u32 = 10;
const DA_UINT: u32 = 3;
const DA_INT: u32 = 4;
const DA_STRING: u32 = 6;
const SLICE_BEGIN: u64 = 1;
const SLICE_END: u64 = 2;
const INSTANT: u64 = 3;
const COUNTER: u64 = 4;
const SEQ: u64 = 0x77_71;

/// Track UUIDs: stable, disjoint ranges per track type.
pub fn uuid(t: Track) -> u64 {
    match t {
        Track::Pipe(i) => 0x1_0000_0000 + 4 * i as u64,
        Track::PipeOccupancy(i) => 0x1_0000_0001 + 4 * i as u64,
        Track::PipeHolds(i) => 0x1_0000_0002 + 4 * i as u64,
        Track::Thread(tid) => 0x2_0000_0000 + u64::from(tid),
    }
}

fn process_uuid(tgid: u32) -> u64 {
    0x3_0000_0000 + u64::from(tgid)
}

struct PerfettoWriter<'a> {
    out: &'a mut dyn Write,
}

impl PerfettoWriter<'_> {
    fn packet(&mut self, p: &Pb) -> Result<()> {
        let mut t = Pb::default();
        t.msg(TRACE_PACKET, p);
        self.out.write_all(&t.0)?;
        Ok(())
    }

    fn descriptor(&mut self, td: &Pb) -> Result<()> {
        let mut p = Pb::default();
        p.u64(PKT_SEQ_ID, SEQ).msg(PKT_TRACK_DESCRIPTOR, td);
        self.packet(&p)
    }

    fn descriptors(&mut self, t: &Tracks) -> Result<()> {
        for (i, pt) in t.pipes.iter().enumerate() {
            let mut td = Pb::default();
            td.u64(TD_UUID, uuid(Track::Pipe(i)))
                .str(TD_NAME, &pt.name());
            self.descriptor(&td)?;
            let mut td = Pb::default();
            td.u64(TD_UUID, uuid(Track::PipeOccupancy(i)))
                .u64(TD_PARENT, uuid(Track::Pipe(i)))
                .str(TD_NAME, &format!("{} occupancy", pt.name()))
                .msg(TD_COUNTER, &Pb::default());
            self.descriptor(&td)?;
            let mut td = Pb::default();
            td.u64(TD_UUID, uuid(Track::PipeHolds(i)))
                .u64(TD_PARENT, uuid(Track::Pipe(i)))
                .str(TD_NAME, &format!("{} rd_wait", pt.name()));
            self.descriptor(&td)?;
        }
        let mut seen = std::collections::HashSet::new();
        for (tid, tgid, comm) in &t.threads {
            if seen.insert(*tgid) {
                let mut pd = Pb::default();
                pd.i64(1, i64::from(*tgid));
                let leader = t
                    .threads
                    .iter()
                    .find(|x| x.0 == *tgid)
                    .map_or(comm, |x| &x.2);
                pd.str(6, leader);
                let mut td = Pb::default();
                td.u64(TD_UUID, process_uuid(*tgid)).msg(TD_PROCESS, &pd);
                self.descriptor(&td)?;
            }
            let mut thd = Pb::default();
            thd.i64(1, i64::from(*tgid))
                .i64(2, i64::from(*tid))
                .str(5, comm);
            let mut td = Pb::default();
            td.u64(TD_UUID, uuid(Track::Thread(*tid)))
                .u64(TD_PARENT, process_uuid(*tgid))
                .msg(TD_THREAD, &thd);
            self.descriptor(&td)?;
        }
        Ok(())
    }

    fn event(&mut self, ts: u64, te: &Pb) -> Result<()> {
        let mut p = Pb::default();
        p.u64(PKT_TIMESTAMP, ts)
            .u64(PKT_SEQ_ID, SEQ)
            .msg(PKT_TRACK_EVENT, te);
        self.packet(&p)
    }

    fn item(&mut self, it: &Item) -> Result<()> {
        let annotations = |te: &mut Pb, args: &[(&'static str, Arg)]| {
            for (k, v) in args {
                let mut da = Pb::default();
                da.str(DA_NAME, k);
                match v {
                    Arg::U(u) => da.u64(DA_UINT, *u),
                    Arg::I(i) => da.i64(DA_INT, *i),
                    Arg::S(s) => da.str(DA_STRING, s),
                };
                te.msg(TE_DEBUG, &da);
            }
        };
        // A slice's begin or an instant: typed, on its track, named and annotated.
        let named = |ty: u64, track: Track, name: &str, args: &[(&'static str, Arg)]| {
            let mut te = Pb::default();
            te.u64(TE_TYPE, ty)
                .u64(TE_TRACK, uuid(track))
                .str(TE_NAME, name);
            annotations(&mut te, args);
            te
        };
        match it {
            Item::Slice {
                track,
                start_ns,
                dur_ns,
                name,
                args,
            } => {
                self.event(*start_ns, &named(SLICE_BEGIN, *track, name, args))?;
                let mut te = Pb::default();
                te.u64(TE_TYPE, SLICE_END).u64(TE_TRACK, uuid(*track));
                self.event(start_ns + dur_ns, &te)
            }
            Item::Instant {
                track,
                ts_ns,
                name,
                args,
            } => self.event(*ts_ns, &named(INSTANT, *track, name, args)),
            Item::Counter {
                track,
                ts_ns,
                value,
            } => {
                let mut te = Pb::default();
                te.u64(TE_TYPE, COUNTER)
                    .u64(TE_TRACK, uuid(*track))
                    .i64(TE_COUNTER_VALUE, *value);
                self.event(*ts_ns, &te)
            }
        }
    }
}

// ---- Chrome trace-event JSON ----

/// Pipes live in one pseudo-process of the JSON trace.
const PIPES_PID: u64 = 0x7fff_0000;

struct ChromeWriter<'a> {
    out: &'a mut dyn Write,
    first: bool,
}

fn us(ns: u64) -> Value {
    // Microseconds with ns precision; f64 is exact to the ns for ~100 days of uptime.
    json!(ns as f64 / 1000.0)
}

impl ChromeWriter<'_> {
    fn emit(&mut self, v: &Value) -> Result<()> {
        self.out
            .write_all(if self.first { b"\n" } else { b",\n" })?;
        self.first = false;
        serde_json::to_writer(&mut *self.out, v)?;
        Ok(())
    }

    fn pid_tid(t: &Tracks, track: Track) -> (u64, u64) {
        match track {
            Track::Pipe(i) => (PIPES_PID, 1 + 3 * i as u64),
            Track::PipeOccupancy(i) => (PIPES_PID, 2 + 3 * i as u64),
            Track::PipeHolds(i) => (PIPES_PID, 3 + 3 * i as u64),
            Track::Thread(tid) => {
                let tgid = t.threads.iter().find(|x| x.0 == tid).map_or(tid, |x| x.1);
                (u64::from(tgid), u64::from(tid))
            }
        }
    }

    fn begin(&mut self, t: &Tracks) -> Result<()> {
        self.out
            .write_all(b"{\"displayTimeUnit\":\"ns\",\"traceEvents\":[")?;
        self.emit(
            &json!({"ph":"M","name":"process_name","pid":PIPES_PID,"args":{"name":"pipes"}}),
        )?;
        for (i, p) in t.pipes.iter().enumerate() {
            for (track, name) in [
                (Track::Pipe(i), p.name()),
                (Track::PipeHolds(i), format!("{} rd_wait", p.name())),
            ] {
                let (pid, tid) = Self::pid_tid(t, track);
                self.emit(&json!({"ph":"M","name":"thread_name","pid":pid,"tid":tid,"args":{"name":name}}))?;
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (tid, tgid, comm) in &t.threads {
            if seen.insert(*tgid) {
                self.emit(
                    &json!({"ph":"M","name":"process_name","pid":tgid,"args":{"name":comm}}),
                )?;
            }
            self.emit(
                &json!({"ph":"M","name":"thread_name","pid":tgid,"tid":tid,"args":{"name":comm}}),
            )?;
        }
        Ok(())
    }

    fn item(&mut self, t: &Tracks, it: &Item) -> Result<()> {
        let args_json = |args: &[(&'static str, Arg)]| -> Value {
            let m: serde_json::Map<String, Value> = args
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Arg::U(u) => json!(u),
                        Arg::I(i) => json!(i),
                        Arg::S(s) => json!(s),
                    };
                    (k.to_string(), v)
                })
                .collect();
            Value::Object(m)
        };
        let v = match it {
            Item::Slice {
                track,
                start_ns,
                dur_ns,
                name,
                args,
            } => {
                let (pid, tid) = Self::pid_tid(t, *track);
                json!({"ph":"X","name":name,"pid":pid,"tid":tid,"ts":us(*start_ns),"dur":us(*dur_ns),"args":args_json(args)})
            }
            Item::Instant {
                track,
                ts_ns,
                name,
                args,
            } => {
                let (pid, tid) = Self::pid_tid(t, *track);
                json!({"ph":"i","s":"t","name":name,"pid":pid,"tid":tid,"ts":us(*ts_ns),"args":args_json(args)})
            }
            Item::Counter {
                track,
                ts_ns,
                value,
            } => {
                let Track::PipeOccupancy(i) = track else {
                    return Ok(());
                };
                let name = format!("{} occupancy", t.pipes[*i].name());
                json!({"ph":"C","name":name,"pid":PIPES_PID,"ts":us(*ts_ns),"args":{"occupancy":value}})
            }
        };
        self.emit(&v)
    }

    fn end(&mut self) -> Result<()> {
        self.out.write_all(b"\n]}\n")?;
        Ok(())
    }
}
