//! A live session's stacks: read each distinct stack once from the programs' stack map and
//! name its frames, as soon as the drain thread sees an event that refers to it (a user stack
//! needs its process alive to be named; the sooner, the likelier).

use std::collections::HashSet;

use aya::maps::{Map, MapData, StackTraceMap};
use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, mpsc::Receiver},
};

use blazesym::symbolize::{
    Input, Symbolized, Symbolizer,
    source::{Elf, Process, Source},
};
use wqtrace_common::Event;

use super::{Frame, SharedStacks, Stack, StackKey, kallsyms::Kallsyms, maps::Maps};

/// A process's memory map as the drain thread read it, sent ahead of the batch that needs it.
pub type MapsSnapshot = (u32, Arc<Maps>);

/// What a resolver is made of, gathered while privileged.
pub struct Parts {
    pub map: Map,
    pub kernel: Kallsyms,
    pub table: SharedStacks,
    pub maps: Receiver<MapsSnapshot>,
}

pub struct Resolver {
    map: StackTraceMap<MapData>,
    kernel: Kallsyms,
    user: Symbolizer,
    table: SharedStacks,
    snapshots: Receiver<MapsSnapshot>,
    /// The latest snapshot of each process (bounded: cleared when it grows past MAX_PROCS).
    maps: HashMap<u32, Arc<Maps>>,
}

const MAX_PROCS: usize = 4096;

/// A frame of the BPF program itself or of the code that calls it (trampoline, tracepoint
/// and kprobe glue).
fn is_tracer_frame(f: &Frame) -> bool {
    f.module.as_deref() == Some("bpf")
        || f.name.as_deref().is_some_and(|n| {
            n.starts_with("bpf_prog_")
                || n.starts_with("bpf_trampoline")
                || n.starts_with("bpf_trace_run")
                || n.starts_with("__bpf_trace_")
                || n.starts_with("__bpf_prog_enter")
                || n.starts_with("trace_call_bpf")
                || n.starts_with("kprobe_")
                || n.starts_with("kretprobe_")
                || n.starts_with("__kretprobe_")
                || n.starts_with("perf_trace_")
        })
}

impl Resolver {
    /// Built on the thread that uses it (the symbolizer stays on one thread).
    pub fn new(parts: Parts) -> anyhow::Result<Self> {
        Ok(Self {
            map: StackTraceMap::try_from(parts.map)?,
            kernel: parts.kernel,
            user: Symbolizer::new(),
            table: parts.table,
            snapshots: parts.maps,
            maps: HashMap::new(),
        })
    }

    /// Adds the stacks `events` refer to that the table lacks.
    pub fn resolve(&mut self, events: &[Event]) {
        self.resolve_keys((events.iter().filter(|e| e.has_stacks())).flat_map(StackKey::of_both));
    }

    /// Adds the stacks `keys` name that the table lacks.
    pub fn resolve_keys(&mut self, keys: impl IntoIterator<Item = StackKey>) {
        // Sent before the batch: every snapshot this batch needs is here.
        while let Ok((tgid, m)) = self.snapshots.try_recv() {
            if self.maps.len() >= MAX_PROCS && !self.maps.contains_key(&tgid) {
                self.maps.clear();
            }
            self.maps.insert(tgid, m);
        }
        let mut new: Vec<StackKey> = Vec::new();
        {
            let t = self.table.read().unwrap_or_else(|p| p.into_inner());
            let mut seen = HashSet::new();
            for k in keys {
                if !t.contains(&k) && seen.insert(k) {
                    new.push(k);
                }
            }
        }
        if new.is_empty() {
            return;
        }
        let traces: Vec<(StackKey, Result<Vec<u64>, String>)> = new
            .into_iter()
            .map(|k| {
                let ips = self
                    .map
                    .get(&k.id, 0)
                    .map(|t| t.frames().iter().map(|f| f.ip).collect())
                    .map_err(|e| format!("reading the stack map: {e}"));
                (k, ips)
            })
            .collect();
        let stacks: Vec<(StackKey, Stack)> = traces
            .into_iter()
            .map(|(k, ips)| {
                let s = match ips {
                    Ok(ips) => self.stack(k, &ips),
                    Err(e) => Stack::unknown(e),
                };
                (k, s)
            })
            .collect();
        let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
        for (k, s) in stacks {
            t.insert(k, s);
        }
    }

    fn stack(&mut self, k: StackKey, ips: &[u64]) -> Stack {
        if !k.user {
            let mut frames: Vec<Frame> = ips.iter().map(|&a| self.kernel.frame(a)).collect();
            // The innermost frames are wqtrace's own program and the tracing glue that ran
            // it: not the traced task's path.
            // The index may predate those (it is read while they load and attach): an
            // address it cannot name, before the first frame it can, is one of them too.
            let named = self.kernel.names();
            let own = frames
                .iter()
                .take_while(|f| is_tracer_frame(f) || (named && f.name.is_none()))
                .count();
            frames.drain(..own);
            return Stack {
                frames,
                error: self.kernel.note().map(|n| format!("no kernel names: {n}")),
            };
        }
        self.user_stack(k.tgid, ips)
    }

    fn user_stack(&self, tgid: u32, ips: &[u64]) -> Stack {
        let snapshot = self.maps.get(&tgid).filter(|m| !m.is_empty());
        let frames: Vec<Frame> = match snapshot {
            // Where the drain thread saw the process mapped: the files still name the frames
            // after the process is gone.
            Some(m) => ips
                .iter()
                .map(|&addr| match m.find(addr) {
                    Some((path, off)) => self.in_file(path, off, addr),
                    None => Frame::unnamed(addr, None),
                })
                .collect(),
            None => match self.in_process(tgid, ips) {
                Ok(f) => f,
                Err(e) => {
                    return Stack {
                        frames: ips.iter().map(|&a| Frame::unnamed(a, None)).collect(),
                        error: Some(format!("process {tgid}: {e}")),
                    };
                }
            },
        };
        let named = frames.iter().any(|f| f.name.is_some());
        Stack {
            error: (!named).then(|| {
                format!(
                    "process {tgid}: no symbols found (it exited before its memory map was \
                     read, or this user may not read it)"
                )
            }),
            frames,
        }
    }

    /// One frame, from the symbols of the file it is in.
    fn in_file(&self, path: &Path, off: u64, addr: u64) -> Frame {
        let mut src = Elf::new(path);
        src.debug_syms = false;
        let module = path.file_name().map(|f| f.to_string_lossy().into_owned());
        let sym = self
            .user
            .symbolize(&Source::Elf(src), Input::FileOffset(&[off]))
            .ok()
            .and_then(|mut v| v.pop());
        match sym {
            Some(Symbolized::Sym(s)) => Frame {
                addr,
                name: Some(s.name.to_string()),
                offset: s.offset as u64,
                module,
            },
            _ => Frame::unnamed(addr, module),
        }
    }

    /// Every frame from the live process's map (no snapshot was taken).
    fn in_process(&self, tgid: u32, ips: &[u64]) -> blazesym::Result<Vec<Frame>> {
        let mut src = Process::new(tgid.into());
        // The paths /proc/PID/maps names, not map_files/ (which needs CAP_SYS_ADMIN: this
        // thread may run after privileges were dropped); no DWARF, symbols are enough.
        src.map_files = false;
        src.debug_syms = false;
        src.perf_map = false;
        let syms = self
            .user
            .symbolize(&Source::Process(src), Input::AbsAddr(ips))?;
        Ok(ips
            .iter()
            .zip(syms)
            .map(|(&addr, s)| match s {
                Symbolized::Sym(sym) => Frame {
                    addr,
                    name: Some(sym.name.to_string()),
                    offset: sym.offset as u64,
                    module: sym.module.as_ref().map(|m| {
                        Path::new(m)
                            .file_name()
                            .map_or_else(|| m.to_string_lossy(), |f| f.to_string_lossy())
                            .into_owned()
                    }),
                },
                Symbolized::Unknown(_) => Frame::unnamed(addr, None),
            })
            .collect())
    }
}
