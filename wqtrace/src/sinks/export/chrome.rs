//! Chrome trace-event JSON (chrome://tracing, ui.perfetto.dev).

use std::io::Write;

use anyhow::Result;
use serde_json::{Value, json};

use super::tracks::{Arg, Item, Track, Tracks};

/// Pipes live in one pseudo-process of the JSON trace.
const PIPES_PID: u64 = 0x7fff_0000;

pub(super) struct ChromeWriter<'a> {
    out: &'a mut dyn Write,
    first: bool,
}

impl<'a> ChromeWriter<'a> {
    pub(super) fn new(out: &'a mut dyn Write) -> Self {
        Self { out, first: true }
    }
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

    pub(super) fn begin(&mut self, t: &Tracks) -> Result<()> {
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

    pub(super) fn item(&mut self, t: &Tracks, it: &Item) -> Result<()> {
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

    pub(super) fn end(&mut self) -> Result<()> {
        self.out.write_all(b"\n]}\n")?;
        Ok(())
    }
}
