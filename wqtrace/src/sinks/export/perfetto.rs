//! The Perfetto protobuf `Trace` format, hand-encoded: TrackDescriptor and TrackEvent packets
//! on the boot-time clock.

use std::io::Write;

use anyhow::Result;

use super::tracks::{Arg, Item, Track, Tracks};

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

pub(super) struct PerfettoWriter<'a> {
    out: &'a mut dyn Write,
}

impl<'a> PerfettoWriter<'a> {
    pub(super) fn new(out: &'a mut dyn Write) -> Self {
        Self { out }
    }
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

    pub(super) fn descriptors(&mut self, t: &Tracks) -> Result<()> {
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

    pub(super) fn item(&mut self, it: &Item) -> Result<()> {
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
