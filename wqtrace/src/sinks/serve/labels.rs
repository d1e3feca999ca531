//! Label sets of serve's metrics, and the caps that keep them bounded whatever the traced
//! system does (comm values beyond the cap count under `other`; names are sanitized).

// Keys are ids and comms, hashed once per event: SipHash was a fifth of serve's time on a
// notification storm.
use foldhash::HashMap;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;

use super::metrics::{OTHER, UNKNOWN};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct NoteLabels {
    pub(super) r#type: &'static str,
    pub(super) comm: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RejectLabels {
    pub(super) syscall: &'static str,
    pub(super) comm: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct LockLabels {
    pub(super) lock: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct OutcomeLabels {
    pub(super) outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct KindLabels {
    pub(super) kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CgroupLabels {
    pub(super) cgroup: Arc<str>,
    pub(super) kind: &'static str,
}

/// Cgroup id → label value (its path), for the first `cap` cgroups seen; later ones are
/// `other`, ids without a name `unknown`. Counters per (cgroup id, kind) are kept at hand: the
/// family's lookup per event would cost more than the rest of serve's work on it.
pub(super) struct Cgroups {
    pub(super) cap: usize,
    pub(super) names: Option<crate::cgroup::SharedCgroups>,
    pub(super) labels: HashMap<u64, Arc<str>>,
    pub(super) counters: HashMap<(u64, u8), prometheus_client::metrics::counter::Counter>,
    /// Counters of ids without a name yet (labelled `unknown`), valid while the table holds
    /// `unnamed_at` entries: a new entry may name one of them.
    pub(super) unnamed: HashMap<(u64, u8), prometheus_client::metrics::counter::Counter>,
    pub(super) unnamed_at: usize,
    /// Events per (cgroup id, kind) not yet published: their labels are looked up once per
    /// batch, not per event.
    pub(super) pending: HashMap<(u64, u8), u64>,
    /// The run of events of one (cgroup id, kind) being counted, not yet in `pending`: a
    /// task's events come in runs, so most events cost a compare instead of a map lookup.
    pub(super) run: ((u64, u8), u64),
}

impl Cgroups {
    fn label(&mut self, id: u64) -> Arc<str> {
        if let Some(l) = self.labels.get(&id) {
            return l.clone();
        }
        let path = self.names.as_ref().and_then(|t| {
            t.read()
                .unwrap_or_else(|p| p.into_inner())
                .path(id)
                .map(str::to_string)
        });
        let l: Arc<str> = match path {
            // Not remembered: it may be named by the next batch.
            None => return UNKNOWN.into(),
            Some(_) if self.labels.len() >= self.cap => OTHER.into(),
            Some(p) => p
                .chars()
                .map(|c| {
                    if c.is_control() || c == '"' || c == '\\' {
                        '_'
                    } else {
                        c
                    }
                })
                .collect::<String>()
                .into(),
        };
        self.labels.insert(id, l.clone());
        l
    }

    /// One event of `kind` in cgroup `id`, published by [`Cgroups::publish`].
    pub(super) fn count(&mut self, id: u64, kind: wqtrace_common::EventKind) {
        let key = (id, kind as u8);
        if self.run.0 != key {
            self.end_run();
            self.run.0 = key;
        }
        self.run.1 += 1;
    }

    fn end_run(&mut self) {
        let (key, n) = std::mem::take(&mut self.run);
        if n != 0 {
            *self.pending.entry(key).or_default() += n;
        }
    }

    /// Adds the events counted since the last call to their counters.
    pub(super) fn publish(
        &mut self,
        fam: &prometheus_client::metrics::family::Family<
            CgroupLabels,
            prometheus_client::metrics::counter::Counter,
        >,
    ) {
        self.end_run();
        let mut pending = std::mem::take(&mut self.pending);
        for ((id, kind), n) in pending.drain() {
            if let Some(kind) = wqtrace_common::EventKind::from_u8(kind) {
                self.counter(fam, id, kind).inc_by(n);
            }
        }
        // Kept, emptied, with its capacity: the same few keys come back batch after batch.
        self.pending = pending;
    }

    /// The counter of events of `kind` in cgroup `id`.
    pub(super) fn counter(
        &mut self,
        fam: &prometheus_client::metrics::family::Family<
            CgroupLabels,
            prometheus_client::metrics::counter::Counter,
        >,
        id: u64,
        kind: wqtrace_common::EventKind,
    ) -> prometheus_client::metrics::counter::Counter {
        let key = (id, kind as u8);
        if let Some(c) = self.counters.get(&key) {
            return c.clone();
        }
        let named = self
            .names
            .as_ref()
            .map_or(0, |t| t.read().unwrap_or_else(|p| p.into_inner()).len());
        if named != self.unnamed_at {
            self.unnamed.clear();
            self.unnamed_at = named;
        }
        if let Some(c) = self.unnamed.get(&key) {
            return c.clone();
        }
        let cgroup = self.label(id);
        let known = &*cgroup != UNKNOWN;
        let c = fam.get_or_create_owned(&CgroupLabels {
            cgroup,
            kind: kind.name(),
        });
        let cache = if known {
            &mut self.counters
        } else {
            &mut self.unnamed
        };
        cache.insert(key, c.clone());
        c
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct PipeLabels {
    pub(super) pipe: Arc<str>,
    pub(super) comm: Arc<str>,
}

/// WATCH_TYPE_* names (include/uapi/linux/watch_queue.h); anything else is `other`.
pub fn note_type_name(t: u32) -> &'static str {
    match t {
        0 => "meta",
        1 => "key_notify",
        _ => OTHER,
    }
}

/// A pipe the gauge knows about.
/// Comm → label value, for the first `cap` comms seen; later ones are `other`.
#[derive(Debug)]
pub(super) struct Comms {
    pub(super) cap: usize,
    pub(super) map: HashMap<[u8; 16], Arc<str>>,
    pub(super) other: Arc<str>,
    pub(super) unknown: Arc<str>,
}

impl Comms {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            cap,
            map: HashMap::default(),
            other: OTHER.into(),
            unknown: UNKNOWN.into(),
        }
    }

    pub(super) fn label(&mut self, comm: &[u8; 16]) -> Arc<str> {
        if comm[0] == 0 {
            return self.unknown.clone();
        }
        if let Some(l) = self.map.get(comm) {
            return l.clone();
        }
        if self.map.len() >= self.cap {
            return self.other.clone();
        }
        let l: Arc<str> = sanitize(comm).into();
        self.map.insert(*comm, l.clone());
        l
    }
}

/// A comm as a label value: printable ASCII, no quotes or backslashes (they would be escaped
/// correctly, but make dashboards and shell quoting miserable).
fn sanitize(comm: &[u8; 16]) -> String {
    let n = comm.iter().position(|&c| c == 0).unwrap_or(16);
    comm[..n]
        .iter()
        .map(|&c| {
            if c.is_ascii_graphic() && c != b'"' && c != b'\\' || c == b' ' {
                c as char
            } else {
                '_'
            }
        })
        .collect()
}
