//! The live source: the programs' BPF ring buffer.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError, sync_channel},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use wqtrace_common::totals::{PipeKey, PipeTotals};
use wqtrace_common::{ABI_VERSION, Event, MAX_RINGS};

use super::{
    EventSource, SessionMeta,
    batch::{Batch, Handoff, Notes},
    filter::PipesSeen,
    merge::{Drained, Merge},
    ringbuf::{BatchRing, Peeked},
};
use crate::{
    kernel,
    privileges::{self, DropPlan},
    probe::opts::ProbeOpts,
    probe::{
        loader::{self, Probes},
        plan::Plan,
    },
    stacks::{
        kallsyms::{Kallsyms, Pending},
        maps::Maps,
        resolve::{self, MapsSnapshot, Resolver},
    },
};

/// Loaded and attached programs plus their ring buffers. Dropping it detaches every probe.
///
/// A dedicated thread drains the BPF ring buffers (one per CPU, merged by timestamp) into
/// batches (a few ms' worth at a time), so a slow sink (JSON on a terminal, a TUI frame)
/// borrows from this queue instead of letting the kernel's ring overflow. The queue is bounded; past it the kernel counts the loss.
pub struct LiveSource {
    rx: Receiver<Vec<Event>>,
    /// Batches handed over and not yet received here (`batch::Handoff::queued`).
    queued: Arc<AtomicUsize>,
    /// Emptied batches go back to the drain thread: a batch is ~700 KiB, so a fresh one each
    /// time is an mmap, a page fault per 4 KiB and an munmap (13 % of the TUI's CPU at 2M
    /// events/s).
    recycle: SyncSender<Vec<Event>>,
    stop: Arc<AtomicBool>,
    drainer: Option<JoinHandle<()>>,
    probes: Probes,
    meta: SessionMeta,
    stacks: crate::stacks::SharedStacks,
    cgroups: crate::cgroup::SharedCgroups,
    /// Names the cgroups of events counted in the kernel (no event brings their ids); made
    /// at the first read, so sessions that stream every op never build it.
    count_namer: Option<crate::cgroup::Namer>,
    /// With a task filter: which frees by tasks outside it are the session's.
    seen: Option<PipesSeen>,
}

/// Batches queued ahead of the sink (a quarter million events), before the kernel's ring has
/// to hold any.
const QUEUED_BATCHES: usize = 64;
/// Of those, queued ahead of the naming thread: room for the first symbolization of a large
/// binary (a few hundred ms) before the kernel's ring has to hold anything.
const BEFORE_NAMING: usize = 32;
/// A batch is handed over once it has BATCH events (or after COALESCE), and holds at most
/// MAX_BATCH: never grown past that, so its storage is allocated once and reused.
const BATCH: usize = 4096;
const MAX_BATCH: usize = BATCH;
/// Emptied batches kept for reuse: enough for a steady flow; a backlog's extra batches are
/// freed, not kept for the session.
const SPARE_BATCHES: usize = 8;
/// How long a small batch waits for company before it is handed over (the latency a sink sees).
const COALESCE: Duration = Duration::from_millis(5);
/// How often the ring is drained when the programs do not wake the reader (the latency of a
/// quiet stream).
const DRAIN_EVERY_MS: i32 = 20;

impl LiveSource {
    /// Checks privileges and kernel features, resolves offsets from BTF, loads the programs and
    /// attaches them according to the probe plan.
    pub fn open(opts: &ProbeOpts) -> Result<Self> {
        let drop = privileges::drop_plan(&opts.privileges)?;
        // Kernel symbols are indexed while the programs load and attach (seconds apiece in an
        // emulated guest), not at the first stack.
        let kallsyms = (opts.stacks_mode() != crate::stacks::Mode::None && !opts.empty_programs)
            .then(Kallsyms::open);
        let mut probes = Probes::open_with(opts, &|| kallsyms.as_ref().and_then(Pending::ksyms))?;
        if drop == DropPlan::Capabilities {
            // Capabilities are per thread: given up before the drain thread exists, it has none.
            privileges::drop_capabilities().context("giving up capabilities after attaching")?;
            check_counters(&probes, "giving up capabilities")?;
        }
        let ring_bytes = loader::ring_bytes(probes.rings) as usize;
        let maps = probes.take_rings()?;
        let rings = (maps.into_iter())
            .map(|m| BatchRing::new(m, ring_bytes))
            .collect::<Result<Vec<_>>>()?;
        let stacks = crate::stacks::shared();
        let cgroups = crate::cgroup::SharedCgroups::default();
        let (resolver, snapshots) = match stack_resolver(kallsyms, &mut probes, &stacks)? {
            Some((parts, snapshots)) => (Some(parts), Some(snapshots)),
            None => (None, None),
        };
        // Batches pass a thread that names their stacks and cgroups first: the drain thread
        // never waits for a symbolizer or a walk of the cgroup tree, so the kernel's ring does
        // not either. A batch with nothing new to name goes around it (`batch::Handoff`).
        // Either way, at most QUEUED_BATCHES wait for the sink in all (each is ~700 KiB): the
        // bound on memory, counted by the handoff, not by the two channels' sizes.
        let (tx, rx) = sync_channel(QUEUED_BATCHES);
        let (to_names, from_drain) = sync_channel(BEFORE_NAMING);
        let handoff = Handoff {
            naming: to_names,
            sink: tx.clone(),
            in_naming: Arc::default(),
            queued: Arc::default(),
            max_queued: QUEUED_BATCHES,
            stacks: resolver.is_some().then(|| stacks.clone()),
            cgroups: cgroups.clone(),
        };
        {
            let cgroups = cgroups.clone();
            let in_naming = handoff.in_naming.clone();
            // Behind it the drain thread stops draining: it runs ahead too.
            spawn_ahead("wqtrace-names", move || {
                name_loop(resolver, cgroups, from_drain, tx, &in_naming)
            })?;
        }
        let queued = handoff.queued.clone();
        let tx = handoff;
        let (recycle, reuse) = sync_channel(SPARE_BATCHES);
        let stop = Arc::new(AtomicBool::new(false));
        let drainer = {
            let stop = stop.clone();
            let split = !opts.waits_whole;
            spawn_ahead("wqtrace-drain", move || {
                drain_loop(rings, snapshots, tx, reuse, &stop, split)
            })?
        };
        if opts.sink_ahead {
            // While CAP_SYS_NICE is still held.
            run_ahead_of_the_workload();
        }
        let meta = SessionMeta {
            kernel_release: kernel::release(),
            hostname: kernel::hostname(),
            abi_version: ABI_VERSION,
            realtime_offset_ns: kernel::realtime_offset_ns(),
            attach: probes.plan.attach_table(),
            notification_pipes: kernel::notification_pipes().is_ok(),
            offsets: kernel::offsets_named(&probes.offsets),
        };
        give_up_root(drop, &probes)?;
        Ok(Self {
            rx,
            queued,
            recycle,
            stop,
            drainer: Some(drainer),
            probes,
            meta,
            stacks,
            cgroups,
            count_namer: None,
            seen: opts.tasks_filtered().then(PipesSeen::live),
        })
    }

    pub fn plan(&self) -> &Plan {
        &self.probes.plan
    }

    /// Whether the kernel counts our programs' runs.
    pub fn bpf_stats(&self) -> &crate::cost::BpfStats {
        &self.probes.bpf_stats
    }

    /// Events the programs submitted so far (for rate displays and loss accounting).
    pub fn submitted(&self) -> u64 {
        self.probes.submitted()
    }

    /// Events on ordinary pipes the programs counted instead of streaming (with
    /// `ProbeOpts::count_ordinary`): running totals, each cgroup id named in
    /// [`EventSource::cgroups`] as far as it can be.
    pub fn kernel_counts(&mut self) -> Result<crate::probe::loader::CountedTotals> {
        let totals = self.probes.kernel_counts()?;
        self.count_namer
            .get_or_insert_with(crate::cgroup::Namer::new)
            .add_ids(totals.events.iter().map(|&(id, _, _)| id), &self.cgroups);
        Ok(totals)
    }
}

/// What names the stacks the programs take (None with `--stacks none`). /proc/kallsyms was
/// opened while privileged: it shows addresses to the credentials it was opened with.
fn stack_resolver(
    kallsyms: Option<Pending>,
    probes: &mut Probes,
    table: &crate::stacks::SharedStacks,
) -> Result<Option<(resolve::Parts, Sender<MapsSnapshot>)>> {
    let Some(kallsyms) = kallsyms.map(Pending::wait) else {
        return Ok(None);
    };
    if let Some(n) = kallsyms.note() {
        eprintln!("wqtrace: kernel stacks will show addresses only: {n}");
    }
    let (tx, maps) = std::sync::mpsc::channel();
    Ok(Some((
        resolve::Parts {
            map: probes.take_stacks()?,
            kernel: kallsyms,
            table: table.clone(),
            maps,
        },
        tx,
    )))
}

/// Once attached, a session needs only the descriptors it holds (the ring's mapping, the maps,
/// the links): root becomes the invoking user, with no capabilities (see
/// [`privileges::drop_plan`]; a process holding only capabilities gave them up already), and
/// makes sure the loss counters can still be read.
fn give_up_root(plan: DropPlan, probes: &Probes) -> Result<()> {
    match plan {
        DropPlan::To(user) => {
            privileges::become_user(&user)?;
            check_counters(
                probes,
                &format!("dropping privileges to {}", user.describe()),
            )?;
        }
        DropPlan::Keep(_) | DropPlan::Capabilities => {}
        DropPlan::Refused(why) => eprintln!("wqtrace: keeping root privileges: {why}"),
    }
    Ok(())
}

fn check_counters(probes: &Probes, after: &str) -> Result<()> {
    probes.read_stats().with_context(|| {
        format!("after {after} the loss counters cannot be read (rerun with --keep-root)")
    })
}

/// Poll the ring buffers and hand their events over in batches until told to stop. When the sink
/// is slow the events wait here (QUEUED_BATCHES full batches), not in the kernel's rings.
fn drain_loop(
    rings: Vec<BatchRing>,
    snapshots: Option<Sender<MapsSnapshot>>,
    tx: Handoff,
    reuse: Receiver<Vec<Event>>,
    stop: &AtomicBool,
    split: bool,
) {
    let mut maps = snapshots.map(|to| MapsReader {
        to,
        read_at: HashMap::new(),
    });
    let mut pfds: Vec<libc::pollfd> = (rings.iter())
        .map(|r| libc::pollfd {
            fd: r.fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut d = Drain {
        merge: Merge::new(rings.len()),
        rings,
        split,
    };
    let mut pending = Batch {
        events: Vec::with_capacity(MAX_BATCH),
        notes: Notes::new(),
    };
    // A process's memory map went to the naming thread for the events pending.
    let mut maps_sent = false;
    loop {
        if stop.load(Ordering::Relaxed) {
            // Hand over everything the kernel produced before the stop, then hang up.
            let _ = take(&mut d, &mut pending, usize::MAX, true);
            if let Some(m) = &mut maps {
                m.read_new(&mut pending, 0);
            }
            if !pending.events.is_empty() {
                tx.send_last(pending);
            }
            if d.merge.late() > 0 {
                eprintln!(
                    "wqtrace: {} events were handed on after events of another CPU stamped later \
                     (a CPU stalled while writing one, or an interrupt's event nested in \
                     another's): their order is not certain",
                    d.merge.late()
                );
            }
            return;
        }
        if pending.events.is_empty() {
            // The programs do not wake this thread per event (wqtrace-ebpf emit.rs), only when
            // a ring is a quarter full: the timeout is what drains a quiet stream, and
            // notices a stop request.
            unsafe {
                libc::poll(
                    pfds.as_mut_ptr(),
                    pfds.len() as libc::nfds_t,
                    DRAIN_EVERY_MS,
                )
            };
        }
        let trickle = take(&mut d, &mut pending, MAX_BATCH, false);
        if pending.events.is_empty() {
            continue;
        }
        if let Some(m) = &mut maps {
            maps_sent |= m.read_new(&mut pending, 0);
        }
        if pending.events.len() < BATCH && trickle {
            // A trickle: let it pool for a moment. The kernel only signals a reader that has
            // caught up, so draining every event as it lands costs a wake-up of this thread and
            // of the sink per event (the bulk of wqtrace's CPU at 100k+ events/s). 16 MiB of
            // ring absorbs this window at any rate the programs reach.
            std::thread::sleep(COALESCE);
            let from = pending.events.len();
            let _ = take(&mut d, &mut pending, MAX_BATCH, false);
            if let Some(m) = &mut maps {
                maps_sent |= m.read_new(&mut pending, from);
            }
        }
        // A batch with room (a returned one if any): growing one from empty copied every
        // event again.
        let fresh = reuse.try_recv().map_or_else(
            |_| Vec::with_capacity(MAX_BATCH),
            |mut v| {
                v.clear();
                v
            },
        );
        let batch = std::mem::replace(
            &mut pending,
            Batch {
                events: fresh,
                notes: Notes::new(),
            },
        );
        match tx.try_send(batch, maps_sent) {
            Ok(()) => maps_sent = false,
            Err(TrySendError::Full(back)) => {
                // The fresh batch (empty) goes: `back` holds the events and their notes.
                pending = back;
                // The sink is behind: hold the events here, and pause before taking more rather
                // than spinning on a full queue (that spin, ahead of the sink, took the CPU the
                // sink needed to catch up). The kernel's ring holds what comes meanwhile, and counts
                // what it cannot hold.
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

/// The drain and naming threads (and with `ProbeOpts::sink_ahead` the sink's) are cheap, tens
/// of ns per event and then asleep, but must run when the kernel ring fills, even while the
/// sink and the traced workload keep every core busy. A CFS weight is not enough: with
/// autogroups (`kernel.sched_autogroup_enabled`, on by default) a session started from another
/// terminal, tmux or sudo's pty competes as one group however nice its threads are. Its drain
/// thread at nice -10 waited 40-50 ms for a CPU while `stress-ng --tee` filled the ring, and
/// the TUI lost 3-10 % of 15 M events. So: the lowest real-time priority, which runs ahead of
/// every CFS task, reset on fork so that nothing these threads start inherits it; else (no
/// CAP_SYS_NICE, a cgroup with no real-time budget) nice -10, best effort. Symbolizing a large
/// binary's first stack (a few hundred ms, once per binary) then holds one CPU.
fn run_ahead_of_the_workload() {
    let lowest = libc::sched_param { sched_priority: 1 };
    // pid 0: the calling thread.
    let fifo = unsafe {
        libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &lowest)
    };
    if fifo != 0 {
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, -10);
        }
    }
}

/// Starts thread `name` running `body` ahead of the workload, once its priority is set: while
/// the caller may still raise it (before privileges are dropped).
fn spawn_ahead<T: Send + 'static>(
    name: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>> {
    let (ready, started) = sync_channel(1);
    let h = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            run_ahead_of_the_workload();
            let _ = ready.send(());
            body()
        })?;
    let _ = started.recv();
    Ok(h)
}

/// The drain thread's part in naming user stacks: it reads the memory map of each process
/// with a user stack as soon as it sees one, and sends it ahead of the batch, so the stacks
/// thread names the frames even if the process exits first.
struct MapsReader {
    to: Sender<MapsSnapshot>,
    /// When each process's map was last read: not again within FRESH (this is the drain
    /// thread; a busy machine's many processes must not slow it).
    read_at: HashMap<u32, Instant>,
}

impl MapsReader {
    const FRESH: Duration = Duration::from_millis(100);

    /// Reads the maps of the processes of the user stacks in `batch`'s events from `from` on,
    /// if any was noted; returns whether it sent any.
    fn read_new(&mut self, batch: &mut Batch, from: usize) -> bool {
        if !batch.notes.take_user_stacks() {
            return false;
        }
        let mut sent = false;
        for e in &batch.events[from..] {
            if wqtrace_common::stack_ref::id(e.ustack).is_none()
                || self
                    .read_at
                    .get(&e.tgid)
                    .is_some_and(|t| t.elapsed() < Self::FRESH)
            {
                continue;
            }
            self.read_at.insert(e.tgid, Instant::now());
            if let Ok(m) = Maps::read(e.tgid) {
                sent |= self.to.send((e.tgid, Arc::new(m))).is_ok();
            }
        }
        if self.read_at.len() > 4096 {
            self.read_at.retain(|_, t| t.elapsed() < Self::FRESH);
        }
        sent
    }
}

/// Names the stacks and cgroups each batch refers to, then hands it on: a sink that sees an
/// event finds them in the tables. Ends when the drain thread hangs up (after its last batch).
fn name_loop(
    stacks: Option<resolve::Parts>,
    cgroups: crate::cgroup::SharedCgroups,
    rx: Receiver<Batch>,
    tx: SyncSender<Vec<Event>>,
    in_naming: &AtomicUsize,
) {
    let mut r = stacks.and_then(|parts| {
        Resolver::new(parts)
            .map_err(|e| eprintln!("wqtrace: stacks will show as unknown: {e:#}"))
            .ok()
    });
    let mut namer = crate::cgroup::Namer::new();
    while let Ok(Batch { events, notes }) = rx.recv() {
        if let Some(r) = &mut r {
            match notes.stacks() {
                Some([]) => {}
                Some(keys) => r.resolve_keys(keys.iter().copied()),
                None => r.resolve(&events),
            }
        }
        match notes.cgroups() {
            Some(ids) => namer.add_ids(ids.iter().copied(), &cgroups),
            None => namer.add_new(&events, &cgroups),
        }
        if tx.send(events).is_err() {
            return;
        }
        // After the send: a batch that then goes around this thread lands behind this one.
        in_naming.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The kernel's rings and their merge, as the drain thread reads them.
struct Drain {
    rings: Vec<BatchRing>,
    merge: Merge<usize>,
    /// A ring op carrying its wait goes on as the two events it stands for.
    split: bool,
}

/// Looks at what the rings hold (up to MAX_BATCH events waiting from each; everything with
/// `all`, at the end), then moves into `pending`, oldest first, the events no ring can still
/// precede (every one with `all`), until `pending` holds `limit`. Returns whether the rings
/// were seen to their ends or to a record being written (a trickle: no ring holds more now).
fn take(d: &mut Drain, pending: &mut Batch, limit: usize, all: bool) -> bool {
    let Drain {
        rings,
        merge,
        split,
    } = d;
    let split = *split;
    // Read before any ring is looked at: a ring seen to its end then holds nothing stamped
    // earlier (see `merge`).
    let now = boottime_ns();
    let mut more = false;
    for (i, ring) in rings.iter_mut().enumerate() {
        let room = if all {
            usize::MAX
        } else {
            MAX_BATCH.saturating_sub(merge.staged_from(i))
        };
        let peeked = if room == 0 {
            Peeked::Limit
        } else {
            ring.peek(room, |at, item| {
                // The timestamp is the event's first field.
                let ts = item
                    .first_chunk::<8>()
                    .map_or(0, |b| u64::from_ne_bytes(*b));
                merge.stage(i, ts, at);
            })
        };
        more |= peeked == Peeked::Limit;
        merge.drained(
            i,
            if peeked == Peeked::End {
                Drained::CaughtUp { now }
            } else {
                Drained::Early
            },
        );
    }
    // A record makes one or two events (a pair, or a ring op carrying its wait): one short of
    // the room, so the last record's second event still fits and the batch never grows past
    // `limit` (a batch that grew is not reused: `give_back`).
    let room = limit.saturating_sub(pending.events.len() + 1);
    let mut through: [Option<usize>; MAX_RINGS] = [None; MAX_RINGS];
    let mut out = |ring: usize, at: usize| {
        let before = pending.events.len();
        let item = rings[ring].read(at);
        if let Some(e) = Event::from_short(item) {
            // A ring op that needed none of the later fields (`emit!(in_task short ..)`).
            pending.notes.note(&e);
            pending.events.push(e);
        } else {
            // One event per record, or two of one syscall (a splice or tee between two pipes:
            // `emit!(in_task pair ..)` in the programs), in the order they happened.
            for ev in item.chunks_exact(size_of::<Event>()) {
                // Copied once, straight into the batch (a `read_unaligned` value went through the
                // stack first: two copies). 8-byte alignment is all the ring buffer promises, so
                // the copy is bytewise; any bytes are a valid Event (integers only).
                let n = pending.events.len();
                let src = ev.as_ptr().cast::<Event>();
                pending.events.reserve(1);
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        src.cast::<u8>(),
                        pending.events.as_mut_ptr().add(n).cast::<u8>(),
                        size_of::<Event>(),
                    );
                    pending.events.set_len(n + 1);
                }
                // Noted from the ring, just read and in cache, not from the copy, whose stores may
                // not have landed (84 % of this closure's samples sat on such a load). The record
                // is committed and not yet given back: the kernel does not write it meanwhile. A
                // record put together from both ends of the ring may sit unaligned.
                if src.is_aligned() {
                    pending.notes.note(unsafe { &*src });
                } else {
                    pending.notes.note(&pending.events[n]);
                }
                if split && pending.events[n].carries_wait() {
                    let (wait, op) = pending.events[n].split_wait();
                    pending.events[n] = wait;
                    pending.events.push(op);
                }
            }
        }
        through[ring] = Some(at);
        pending.events.len() - before
    };
    if all {
        merge.release_all(&mut out);
    } else {
        merge.release(room, &mut out);
    }
    for (ring, at) in rings.iter_mut().zip(through) {
        if let Some(at) = at {
            ring.consume_through(at);
        }
    }
    !more
}

/// CLOCK_BOOTTIME, the programs' clock (`bpf_ktime_get_boot_ns`), in ns.
fn boottime_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

impl Drop for LiveSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unblock a drainer waiting on a full queue.
        while self.rx.try_recv().is_ok() {}
        if let Some(h) = self.drainer.take() {
            let _ = h.join();
        }
    }
}

impl LiveSource {
    /// Returns an emptied batch to the drain thread, unless it grew large (a backlog): holding
    /// on to those would keep a backlog's memory for the session.
    fn give_back(&self, mut v: Vec<Event>) {
        if v.capacity() <= MAX_BATCH {
            v.clear();
            let _ = self.recycle.try_send(v);
        }
    }
}

impl EventSource for LiveSource {
    fn next_batch(&mut self, out: &mut Vec<Event>, timeout: Duration) -> Result<bool> {
        let first = match self.rx.recv_timeout(timeout) {
            Ok(b) => {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                b
            }
            Err(RecvTimeoutError::Timeout) => return Ok(true),
            Err(RecvTimeoutError::Disconnected) => anyhow::bail!("ring buffer reader stopped"),
        };
        let mut first = first;
        if let Some(seen) = &mut self.seen {
            seen.keep_live(&mut first);
        }
        if out.is_empty() {
            // The batch itself, not a copy of it: one batch per call, and `out`'s storage
            // goes back for reuse.
            std::mem::swap(out, &mut first);
        } else {
            out.extend_from_slice(&first);
        }
        self.give_back(first);
        Ok(true)
    }

    fn finish(&mut self, out: &mut Vec<Event>) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        // Until the drain thread hangs up: it sends the ring's remainder last.
        while let Ok(mut b) = self.rx.recv() {
            if let Some(seen) = &mut self.seen {
                seen.keep_live(&mut b);
            }
            out.extend_from_slice(&b);
        }
        if let Some(h) = self.drainer.take() {
            let _ = h.join();
        }
        Ok(())
    }

    fn lost(&self) -> u64 {
        self.probes.lost()
    }

    fn sleeps_unattributed(&self) -> u64 {
        self.probes.sleeps_unattributed()
    }

    fn known_pipes(&self) -> Option<crate::session::KnownPipes> {
        self.probes.known_pipes()
    }

    fn meta(&self) -> &SessionMeta {
        &self.meta
    }

    fn cost(&self) -> Option<crate::cost::Sample> {
        Some(self.probes.cost())
    }

    fn stacks(&self) -> Option<crate::stacks::SharedStacks> {
        Some(self.stacks.clone())
    }

    fn cgroups(&self) -> Option<crate::cgroup::SharedCgroups> {
        Some(self.cgroups.clone())
    }

    fn pipe_totals(&mut self) -> Result<Vec<(PipeKey, PipeTotals)>> {
        self.probes.pipe_totals()
    }

    fn forget_pipe_totals(&mut self, keys: &[PipeKey]) -> Result<()> {
        self.probes.forget_pipe_totals(keys)
    }
}

#[cfg(test)]
mod tests {
    use wqtrace_common::{EventKind, Op, flags};

    use super::*;

    fn bytes(e: &Event, n: usize) -> &[u8] {
        unsafe { std::slice::from_raw_parts((e as *const Event).cast::<u8>(), n) }
    }

    /// The programs write a ring op that needs none of the later fields as a short record; the
    /// drain reads it back as the whole event.
    #[test]
    fn a_short_record_is_the_event_it_stands_for() {
        let mut e = Event::zeroed();
        e.ts_ns = 5;
        e.pipe = 0xffff_8881_0000_1000;
        e.ino = 42;
        e.ret = 64;
        e.kind = EventKind::RingOp as u8;
        e.op = Op::Write as u8;
        e.flags = flags::RING_DST;
        (e.cpu, e.tid, e.tgid) = (1, 7, 7);
        (e.head_before, e.tail_before, e.head, e.tail) = (3, 2, 4, 2);
        (e.ring_size, e.max_usage, e.fd_in, e.fd_out) = (16, 16, -1, 4);
        e.comm[..6].copy_from_slice(b"writer");
        e.cgroup = 9;
        assert_eq!(Event::from_short(bytes(&e, Event::SHORT_BYTES)), Some(e));
        // A field past the short layout does not survive it: such events go whole.
        for f in [
            |e: &mut Event| e.owner_tid = 8,
            |e: &mut Event| e.info = 1,
            |e: &mut Event| e.duration_ns = 1000,
            |e: &mut Event| e.slot = 0,
        ] {
            let mut long = e;
            f(&mut long);
            assert_ne!(
                Event::from_short(bytes(&long, Event::SHORT_BYTES)),
                Some(long)
            );
        }
        // A whole event, or a pair, is not a short record.
        assert_eq!(Event::from_short(bytes(&e, size_of::<Event>())), None);
        assert_eq!(Event::SHORT_BYTES, 112);
    }
}
