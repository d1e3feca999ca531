//! Loading the programs with this kernel's offsets and attaching them according to the plan.
//! Dropping [`Probes`] detaches everything (aya owns the links); so does process exit, since
//! every link is a file descriptor.

use anyhow::{Context, Result, anyhow, bail};
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray, ProgramArray},
    programs::{BtfTracePoint, ProgramInfo},
};
use wqtrace_common::{
    MAX_RINGS, Offsets,
    counts::{WaitRow, hist},
    known_pipes, stat,
    totals::{PipeKey, PipeTotals},
};

use super::direct::Direct;
use super::kfunc::attach_kfunc_hook;
use super::plan::{self, Hook, HookPlan, Method, Plan};
use super::totals::{Owners, Room};
use crate::{
    cost::{BpfStats, ProcessUsage, ProgramStat, Sample},
    kernel,
    probe::opts::ProbeOpts,
    session::KnownPipes,
};

/// RUNTIME map slots (see wqtrace-ebpf/src/maps.rs).
use wqtrace_common::runtime::{
    HOOK_GET_PIPE_INFO, HOOK_PIPE_WAIT, HOOK_POST_LANDED, HOOK_SECURITY_MAY_SKIP,
    HOOKS as RT_HOOKS, PIPE_FOPS as RT_PIPE_FOPS,
};

/// Ring buffer space, split evenly between the rings in use: ~95k events (176 B each), enough
/// to ride out the drain thread being off CPU for a while at the highest rates seen here. It
/// counts once in RSS (see `source::ringbuf`).
pub const RING_BYTES: u32 = 16 << 20;

/// The possible CPUs (what per-CPU maps hold a value for).
fn possible_cpus() -> Result<usize> {
    aya::util::nr_cpus().map_err(|(path, e)| anyhow!("{path}: {e}"))
}

/// How many event rings the programs write to (`Filter::ring_mask`): one per possible CPU, a
/// power of two, at most MAX_RINGS (past that, CPUs share rings).
pub fn rings_in_use() -> Result<usize> {
    Ok(rings_for(possible_cpus()?))
}

fn rings_for(cpus: usize) -> usize {
    cpus.next_power_of_two().min(MAX_RINGS)
}

/// The event rings' names in the object.
const RING_NAMES: [&str; MAX_RINGS] = [
    "EVENTS0", "EVENTS1", "EVENTS2", "EVENTS3", "EVENTS4", "EVENTS5", "EVENTS6", "EVENTS7",
];

/// The bytes of each ring in use; the others get one page (a ring buffer cannot be smaller).
pub fn ring_bytes(rings: usize) -> u32 {
    RING_BYTES / rings as u32
}

pub struct Probes {
    pub ebpf: Ebpf,
    pub plan: Plan,
    pub offsets: Offsets,
    /// Event rings the programs write to ([`rings_in_use`] at load).
    pub rings: usize,
    /// Whether the kernel counts our programs' runs (held for the session).
    pub bpf_stats: BpfStats,
    /// The totals array's owners, mapped, and its slot mask (sessions that total pipes).
    totals: Option<(Owners, u32)>,
    /// The counts array's owners, mapped (sessions that count events).
    counts: Option<super::mapped::Slots>,
}

/// Mount tracefs if it is not (kprobe attachment falls back to it on older kernels).
pub fn ensure_tracefs() -> bool {
    let p = std::path::Path::new("/sys/kernel/tracing");
    if p.join("events").exists() {
        return true;
    }
    let src = c"tracefs";
    let dst = c"/sys/kernel/tracing";
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            src.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    r == 0 && p.join("events").exists()
}

impl Probes {
    /// Load everything and attach per the plan. Errors are one line, naming what is missing.
    pub fn open(opts: &ProbeOpts) -> Result<Self> {
        Self::open_with(opts, &|| None)
    }

    /// [`Probes::open`], the kernel symbols the programs need taken from `ksyms` when it has
    /// them (a read of /proc/kallsyms already under way: `stacks::kallsyms::Pending::ksyms`)
    /// instead of a read of the file of their own.
    pub fn open_with(
        opts: &ProbeOpts,
        ksyms: &dyn Fn() -> Option<kernel::KsymsScan>,
    ) -> Result<Self> {
        crate::privileges::require()?;
        let t = std::time::Instant::now();
        let facts = kernel_facts(opts, true, ksyms)?;
        log::debug!("kernel facts (BTF, offsets) in {:.2?}", t.elapsed());
        if facts.direct.is_none() {
            return Self::load_and_attach(opts, facts);
        }
        Self::load_and_attach(opts, facts).or_else(|e| {
            // A verifier that refuses the direct loads somewhere (a kernel they were not tried
            // on) gets the programs that probe-read everything, as before 6.2. A failure for
            // any other reason fails again: its first error is the one reported.
            let p = kernel_facts(opts, false, ksyms).and_then(|f| Self::load_and_attach(opts, f));
            if p.is_ok() {
                eprintln!("wqtrace: direct kernel loads refused ({e:#}): reading by probe reads");
            }
            p.map_err(|_| e)
        })
    }

    fn load_and_attach(opts: &ProbeOpts, facts: KernelFacts) -> Result<Self> {
        let KernelFacts {
            btf,
            offsets,
            ksyms,
            security_may_skip,
            direct,
        } = facts;
        ensure_tracefs();
        // Before anything is attached, so every run is counted.
        let bpf_stats = if opts.count_runs {
            BpfStats::enable()
        } else {
            BpfStats::if_on()
        };
        let mut filter = opts.kernel_filter()?;
        let cpus = possible_cpus()?;
        let room = match opts.pipe_totals_max {
            _ if !opts.pipe_totals => Room::NONE,
            Some(n) => Room::for_pipes(n),
            None => Room::for_cpus(cpus),
        };
        filter.totals_slot_mask = room.slots - 1;
        let count_slots = match opts.count_slots {
            _ if !opts.count_ordinary => 1,
            Some(n) => n.max(1).next_power_of_two(),
            None => super::counts::slots_for_cpus(cpus),
        };
        filter.count_slot_mask = count_slots - 1;
        filter.inflight_slot_mask = match opts.inflight_slots {
            Some(0) => wqtrace_common::INFLIGHT_NO_SLOTS,
            Some(n) => n.next_power_of_two().min(wqtrace_common::INFLIGHT_SLOTS) - 1,
            None => wqtrace_common::INFLIGHT_SLOTS - 1,
        };
        let rings = rings_for(cpus);
        filter.ring_mask = rings as u32 - 1;
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u32;
        let (object, _) = super::direct::patch(
            aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/wqtrace")),
            direct.as_ref(),
        )
        .map_err(|e| anyhow!("{e}"))?;
        let mut loader = EbpfLoader::new();
        loader
            .btf(Some(&btf))
            .override_global("OFFSETS", &offsets, true)
            .override_global("FILTER", &filter, true)
            .override_global("KSYMS", &ksyms, true);
        for (i, name) in RING_NAMES.into_iter().enumerate() {
            let size = if i < rings { ring_bytes(rings) } else { page };
            loader.map_max_entries(name, size);
        }
        loader.map_max_entries("PIPE_TOTALS", room.hash);
        loader.map_max_entries("TOTALS_OWNERS", room.slots);
        loader.map_max_entries("TOTALS_BY_SLOT", room.slots);
        loader.map_max_entries("COUNT_OWNERS", count_slots);
        loader.map_max_entries("COUNTS_BY_SLOT", count_slots);
        loader.map_max_entries("KNOWN_PIPES", known_pipes::map_entries(cpus as u32));
        // The threads' slots, then a spare record per CPU (see the map in wqtrace-ebpf).
        loader.map_max_entries(
            "INFLIGHT_BY_TID",
            wqtrace_common::INFLIGHT_SLOTS + cpus as u32,
        );
        let t = std::time::Instant::now();
        let mut ebpf = loader
            .load(object.bytes())
            .map_err(|e| anyhow!("loading BPF maps failed: {e}"))?;
        log::debug!("object and maps loaded in {:.2?}", t.elapsed());
        DIRECT_ATTEMPT.store(direct.is_some(), std::sync::atomic::Ordering::Relaxed);
        let mut plan = Plan {
            direct_loads: direct.is_some(),
            ..Plan::default()
        };

        // The tracepoint path: always on, the base every other hook builds on.
        let t = std::time::Instant::now();
        load_tails(&mut ebpf, &btf)?;
        let ring_ops = plan::tracepoints(Hook::RingOps);
        attach_tps(&mut ebpf, &btf, ring_ops)
            .map_err(|e| anyhow!("cannot attach tp_btf {}: {e}", tp_names(ring_ops)))?;
        plan.hooks.push(HookPlan {
            hook: Hook::RingOps,
            target: tp_names(ring_ops),
            method: Method::TpBtf,
            note: String::new(),
        });
        for hook in [Hook::OffCpuWaits, Hook::LockContention] {
            let tps = plan::tracepoints(hook);
            plan.hooks.push(match attach_tps(&mut ebpf, &btf, tps) {
                Ok(()) => HookPlan {
                    hook,
                    target: tp_names(tps),
                    method: Method::TpBtf,
                    note: String::new(),
                },
                Err(e) => unavailable(hook, e.to_string()),
            });
        }

        log::debug!(
            "tracepoint programs loaded and attached in {:.2?}",
            t.elapsed()
        );
        if !opts.empty_programs {
            // (Empty programs cannot answer; the floor needs no pipe recognition.)
            let t = std::time::Instant::now();
            calibrate(&mut ebpf)?;
            log::debug!("calibrated in {:.2?}", t.elapsed());
        }

        for hook in [
            Hook::NotificationPost,
            Hook::GetPipeInfo,
            Hook::PipeWait,
            Hook::PipeRelease,
        ] {
            let t = std::time::Instant::now();
            plan.hooks.push(attach_kfunc_hook(
                &mut ebpf,
                &btf,
                hook,
                opts.attach,
                &offsets,
                &ksyms,
            ));
            log::debug!("{hook:?} hook loaded and attached in {:.2?}", t.elapsed());
        }
        tell_programs_the_hooks(
            &mut ebpf,
            &mut plan,
            security_may_skip,
            kernel::has_wait_queue_fields(&offsets),
        )?;
        // The kernel's parsed BTF, and what aya built from it while loading, are tens of MiB of
        // heap: free it now, not at the end of this function, and give the freed heap back
        // so a long-running session stays small.
        drop(btf);
        unsafe { libc::malloc_trim(0) };
        let totals = if opts.pipe_totals {
            Some((Owners::map(&ebpf, room.slots)?, filter.totals_slot_mask))
        } else {
            None
        };
        let counts = if opts.count_ordinary {
            Some(super::counts::map_owners(&ebpf, count_slots)?)
        } else {
            None
        };
        Ok(Self {
            ebpf,
            plan,
            offsets,
            rings,
            bpf_stats,
            totals,
            counts,
        })
    }

    /// Run count and run time of every loaded program (None: the kernel is not counting).
    /// Only needs the program descriptors we hold, so it works after privileges are dropped.
    pub fn program_stats(&self) -> Option<Vec<ProgramStat>> {
        if !self.bpf_stats.available() {
            return None;
        }
        let mut out: Vec<ProgramStat> = self
            .ebpf
            .programs()
            .filter_map(|(name, p)| {
                let info = p.info().ok()?;
                Some(ProgramStat {
                    name: name.to_string(),
                    runs: info.run_count(),
                    run_ns: info.run_time().as_nanos() as u64,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Some(out)
    }

    /// Everything tracing has cost so far.
    pub fn cost(&self) -> Sample {
        Sample {
            at: std::time::Instant::now(),
            programs: self.program_stats(),
            bpf_off: matches!(self.bpf_stats, BpfStats::NotAsked),
            process: ProcessUsage::now(),
        }
    }

    /// The event rings the programs write to, taken out of the object (call once). The unused
    /// ones' descriptors are closed (the programs keep them alive): a session's descriptors
    /// do not grow with MAX_RINGS.
    pub fn take_rings(&mut self) -> Result<Vec<MapData>> {
        let used = self.rings;
        let mut rings = Vec::with_capacity(used);
        for (i, name) in RING_NAMES.into_iter().enumerate() {
            match self.ebpf.take_map(name) {
                Some(aya::maps::Map::RingBuf(m)) if i < used => rings.push(m),
                Some(_) if i >= used => {}
                Some(_) => bail!("{name} is not a ring buffer"),
                None => bail!("{name} map missing"),
            }
        }
        Ok(rings)
    }

    /// The stack map, taken out of the object (call once).
    pub fn take_stacks(&mut self) -> Result<aya::maps::Map> {
        self.ebpf.take_map("STACKS").context("STACKS map missing")
    }

    /// Events the programs could not reserve room for, summed over CPUs.
    pub fn lost(&self) -> u64 {
        self.stat(stat::LOST)
    }

    /// Sleeps of splice, tee or vmsplice not timed as pipe waits: their wait queue could not
    /// be told (`stat::SLEEPS_UNATTRIBUTED`).
    pub fn sleeps_unattributed(&self) -> u64 {
        self.stat(stat::SLEEPS_UNATTRIBUTED)
    }

    /// The most pipes the programs knew at once, against the room they have for them
    /// (`wqtrace_common::known_pipes`); None where the count cannot be read.
    pub fn known_pipes(&self) -> Option<KnownPipes> {
        let m = self.ebpf.map("KNOWN_COUNT")?;
        let a: Array<_, u64> = Array::try_from(m).ok()?;
        Some(KnownPipes {
            peak: a.get(&known_pipes::PEAK, 0).ok()?,
            room: u64::from(known_pipes::ROOM),
        })
    }

    pub fn submitted(&self) -> u64 {
        self.stat(stat::SUBMITTED)
    }

    fn stat(&self, idx: u32) -> u64 {
        self.try_stat(idx).unwrap_or(0)
    }

    /// Reads the counters once (a bpf() lookup): fails where this process may not.
    pub fn read_stats(&self) -> Result<()> {
        self.try_stat(stat::LOST).map(|_| ())
    }

    /// Events on ordinary pipes counted in the kernel instead of streamed
    /// (`ProbeOpts::count_ordinary`): running totals, summed over CPUs.
    pub fn kernel_counts(&self) -> Result<CountedTotals> {
        // Per-CPU values are sized by a sysfs read that aya caches per thread: done here even
        // while the maps are empty, so the first call on a thread is the only one that opens a
        // file (later ones work with every descriptor in use).
        possible_cpus()?;
        let events = match &self.counts {
            Some(owners) => super::counts::read(&self.ebpf, owners)?,
            None => Vec::new(),
        };
        let m = self
            .ebpf
            .map("WAIT_HISTOGRAMS")
            .context("no WAIT_HISTOGRAMS map")?;
        let a = PerCpuArray::<_, WaitRow>::try_from(m)?;
        let mut waits = [WaitRow::default(); hist::ROWS as usize];
        for (row, w) in waits.iter_mut().enumerate() {
            for cpu in a
                .get(&(row as u32), 0)
                .context("reading WAIT_HISTOGRAMS")?
                .iter()
            {
                w.add(cpu);
            }
        }
        Ok(CountedTotals { events, waits })
    }

    /// Ring ops on ordinary pipes totalled per pipe in the kernel instead of streamed
    /// (`ProbeOpts::pipe_totals`): running totals, each pipe's CPUs merged.
    pub fn pipe_totals(&self) -> Result<Vec<(PipeKey, PipeTotals)>> {
        match &self.totals {
            Some((owners, _)) => super::totals::read(&self.ebpf, owners),
            None => Ok(Vec::new()),
        }
    }

    /// Drops the totals of pipes that are gone and whose totals were read after they went.
    pub fn forget_pipe_totals(&mut self, keys: &[PipeKey]) -> Result<()> {
        match &self.totals {
            Some((owners, mask)) => super::totals::forget(&mut self.ebpf, owners, *mask, keys),
            None => Ok(()),
        }
    }

    fn try_stat(&self, idx: u32) -> Result<u64> {
        let m = self.ebpf.map("STATS").context("no STATS map")?;
        let a = PerCpuArray::<_, u64>::try_from(m)?;
        Ok(a.get(&idx, 0).map(|v| v.iter().sum())?)
    }
}

fn unavailable(hook: Hook, why: String) -> HookPlan {
    HookPlan {
        hook,
        target: String::new(),
        method: Method::Unavailable,
        note: why,
    }
}

/// What the loader needs from the kernel's BTF: field offsets, kernel symbols, whether a
/// security hook may refuse posts unseen; then aya's own parse of it.
fn kernel_facts(
    opts: &ProbeOpts,
    allow_direct: bool,
    ksyms: &dyn Fn() -> Option<kernel::KsymsScan>,
) -> Result<KernelFacts> {
    let (btf_rs, btf_path) = kernel::open_btf(opts.btf.as_deref())?;
    let mut offsets = kernel::offsets(&btf_rs);
    let missing = kernel::missing_core(&offsets);
    if !missing.is_empty() {
        bail!(
            "{} lacks fields wqtrace needs: {}",
            crate::text::path(&btf_path),
            missing.join(", ")
        );
    }
    let pcpu_preempt = kernel::pcpu_hot_preempt_count(&btf_rs);
    let direct = allow_direct
        .then(|| direct_loads(&btf_path, &btf_rs))
        .flatten();
    if let Some(d) = &direct {
        d.apply(&mut offsets);
    }
    // With CONFIG_SECURITY a module may refuse a post silently (no hook sees it).
    let security_may_skip = kernel::Layout::new(&btf_rs).has_func("security_post_notification");
    // Two parsed copies of the kernel's BTF at once would set the process's peak RSS: the
    // first goes (and its heap back to the system) before aya parses its own.
    drop(btf_rs);
    unsafe { libc::malloc_trim(0) };
    let btf = Btf::parse_file(&btf_path, aya::Endianness::default())
        .with_context(|| format!("cannot parse BTF {}", crate::text::path(&btf_path)))?;
    // Last: a read of /proc/kallsyms started before (for stacks) has had the BTF parses'
    // time to reach the end of the file.
    let ksyms = ksyms()
        .or_else(kernel::KsymsScan::read)
        .unwrap_or_default()
        .ksyms(pcpu_preempt);
    Ok(KernelFacts {
        btf,
        offsets,
        ksyms,
        security_may_skip,
        direct,
    })
}

/// Direct loads need the running kernel's own BTF ids (a kfunc call names one), and can be
/// turned off (`WQTRACE_PROBE_READS=1`: every kernel read a probe read, for comparison).
fn direct_loads(btf_path: &std::path::Path, btf: &btf_rs::Btf) -> Option<Direct> {
    if std::env::var_os("WQTRACE_PROBE_READS").is_some_and(|v| v == "1") {
        return None;
    }
    if btf_path != std::path::Path::new(kernel::VMLINUX_BTF) {
        return None;
    }
    Direct::resolve(btf)
}

struct KernelFacts {
    btf: Btf,
    offsets: Offsets,
    /// Whether the programs load kernel words directly (see `probe::direct`).
    direct: Option<Direct>,
    ksyms: wqtrace_common::Ksyms,
    /// With CONFIG_SECURITY a module may refuse a post silently (no hook sees it).
    security_may_skip: bool,
}

/// Tells the programs which kernel-function hooks are attached (the RUNTIME hook bits decide
/// what a missing event means), and notes in the plan what follows for post outcomes.
fn tell_programs_the_hooks(
    ebpf: &mut Ebpf,
    plan: &mut Plan,
    security_may_skip: bool,
    splice_waits_readable: bool,
) -> Result<()> {
    let mut hooks = 0;
    if matches!(
        plan.method(Hook::GetPipeInfo),
        Method::Fentry | Method::Kprobe
    ) {
        hooks |= HOOK_GET_PIPE_INFO;
    }
    let sched_switch = plan.method(Hook::OffCpuWaits) == Method::TpBtf;
    if let Some(h) = plan.hooks.iter_mut().find(|h| h.hook == Hook::PipeWait) {
        match h.method {
            Method::Fentry | Method::Kprobe => hooks |= HOOK_PIPE_WAIT,
            Method::Tracepoint if sched_switch && splice_waits_readable => {
                h.target = "sched_switch".into();
            }
            Method::Tracepoint => {
                h.add_note(
                    "splice/tee/vmsplice waits are not timed (no sched_switch, or no wait \
                     queue layout in BTF)",
                );
            }
            _ => {}
        }
    }
    if let Some(h) = plan
        .hooks
        .iter_mut()
        .find(|h| h.hook == Hook::NotificationPost)
    {
        if h.target.split(',').any(|f| f == plan::POST_LANDED_FUNC) {
            hooks |= HOOK_POST_LANDED;
        } else if h.method != Method::Unavailable {
            h.add_note(
                "posts that do not land are reported with outcome unknown (no landing hook)",
            );
        }
        if security_may_skip && h.method != Method::Unavailable {
            hooks |= HOOK_SECURITY_MAY_SKIP;
            h.add_note(
                "security_post_notification may refuse posts unseen: those report outcome unknown",
            );
        }
    }
    let mut rt: Array<_, u64> = Array::try_from(
        ebpf.map_mut("RUNTIME")
            .ok_or_else(|| anyhow!("RUNTIME map missing"))?,
    )?;
    rt.set(RT_HOOKS, hooks, 0)?;
    Ok(())
}

/// Attaches every (program, tracepoint) pair, stopping at the first that fails.
fn attach_tps(ebpf: &mut Ebpf, btf: &Btf, tps: &[(&str, &str)]) -> Result<()> {
    tps.iter()
        .try_for_each(|(prog, tp)| attach_tp(ebpf, btf, prog, tp))
}

/// `sys_enter,sys_exit,sched_process_exit`: the plan's target for a tracepoint hook.
fn tp_names(tps: &[(&str, &str)]) -> String {
    tps.iter().map(|(_, tp)| *tp).collect::<Vec<_>>().join(",")
}

pub(super) fn attach_tp(ebpf: &mut Ebpf, btf: &Btf, prog: &str, tp: &str) -> Result<()> {
    let p: &mut BtfTracePoint = ebpf
        .program_mut(prog)
        .ok_or_else(|| anyhow!("program {prog} missing"))?
        .try_into()?;
    let t = std::time::Instant::now();
    p.load(tp, btf)
        .map_err(|e| anyhow!("tp_btf/{tp}: {}", refused(prog, &e)))?;
    p.attach()
        .map_err(|e| anyhow!("tp_btf/{tp}: {}", short(&e)))?;
    log_loaded(prog, "loaded and attached", t.elapsed(), || p.info().ok());
    Ok(())
}

/// For `RUST_LOG=wqtrace=debug`: one program's load and attach time (`done`: what it
/// took, "loaded and attached" or "loaded"), and how many instructions the verifier walked
/// for it (what most of an attach's time grows with). The program's info (a bpf() call) is
/// asked for only when the line is logged.
pub(super) fn log_loaded(
    prog: &str,
    done: &str,
    took: std::time::Duration,
    info: impl FnOnce() -> Option<ProgramInfo>,
) {
    if !log::log_enabled!(log::Level::Debug) {
        return;
    }
    let walked = info().and_then(|i| i.verified_instruction_count());
    log::debug!(
        "{prog}: {done} in {took:.2?} ({} instructions verified)",
        walked.map_or_else(|| "?".to_owned(), |n| n.to_string())
    );
}

/// The programs sys_exit tail-calls ([`plan::TAIL_PROGRAMS`]): loaded for sys_exit, never
/// attached on their own.
fn load_tails(ebpf: &mut Ebpf, btf: &Btf) -> Result<()> {
    for (i, name) in plan::TAIL_PROGRAMS.into_iter().enumerate() {
        load_tail(ebpf, btf, name, i as u32)
            .map_err(|e| anyhow!("cannot load tp_btf {name}: {e}"))?;
    }
    Ok(())
}

/// Loads tail-called program `prog` into slot `index` of the TAILS map.
fn load_tail(ebpf: &mut Ebpf, btf: &Btf, prog: &str, index: u32) -> Result<()> {
    let p: &mut BtfTracePoint = ebpf
        .program_mut(prog)
        .ok_or_else(|| anyhow!("program {prog} missing"))?
        .try_into()?;
    let t = std::time::Instant::now();
    p.load("sys_exit", btf)
        .map_err(|e| anyhow!("{}", refused(prog, &e)))?;
    log_loaded(prog, "loaded", t.elapsed(), || p.info().ok());
    let fd = p.fd()?.try_clone()?;
    let mut tails = ProgramArray::try_from(
        ebpf.map_mut("TAILS")
            .ok_or_else(|| anyhow!("TAILS map missing"))?,
    )?;
    tails.set(index, &fd, 0)?;
    Ok(())
}

/// Whether the programs being loaded read the kernel by direct loads: a refusal's log is then
/// kept apart from the probe-read retry's, which would otherwise overwrite the first cause.
static DIRECT_ATTEMPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Why the kernel refused to load `prog`, in one line ([`short`]). aya errors nest their cause
/// and may carry a whole verifier log; the plan wants the reason. With
/// `WQTRACE_VERIFIER_LOG=DIR`, the whole log is kept in DIR/PROG.log (DIR/PROG.direct.log for
/// the programs with direct loads).
pub(crate) fn refused(prog: &str, e: &aya::programs::ProgramError) -> String {
    if let Some(dir) = std::env::var_os("WQTRACE_VERIFIER_LOG") {
        let direct = DIRECT_ATTEMPT.load(std::sync::atomic::Ordering::Relaxed);
        let _ = std::fs::write(
            std::path::Path::new(&dir)
                .join(format!("{prog}{}.log", if direct { ".direct" } else { "" })),
            format!("{e:?}"),
        );
    }
    short(e)
}

pub(crate) fn short(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s = format!("{s}: {c}");
        cur = c.source();
    }
    if s.contains("kprobe/type") {
        return "no kprobe PMU (kernel without CONFIG_KPROBES)".into();
    }
    if s.contains("Operation not permitted") {
        return "refused with EPERM".into();
    }
    if s.contains("No such file or directory") || s.contains("not found") {
        return "function not found (or not traceable)".into();
    }
    if let Some(i) = s.find("Verifier output:") {
        // Keep the verifier's last words, not its whole log.
        let log = &s[i..];
        let last = log
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return format!("verifier rejected: {}", last.trim());
    }
    s
}

/// Teach the programs the kernel's pipe `file_operations` address: wqtrace issues
/// fcntl(F_GETPIPE_SZ) on a pipe of its own, which sys_enter records (kallsyms may not name
/// `pipefifo_fops`).
fn calibrate(ebpf: &mut Ebpf) -> Result<()> {
    use std::os::fd::AsRawFd as _;
    let (rd, _wr) = kernel::pipe2(libc::O_CLOEXEC).context("pipe2 for calibration")?;
    let rt: Array<_, u64> = Array::try_from(
        ebpf.map("RUNTIME")
            .ok_or_else(|| anyhow!("RUNTIME map missing"))?,
    )?;
    let mut fops = 0;
    for _ in 0..50 {
        unsafe { libc::fcntl(rd.as_raw_fd(), wqtrace_common::CALIBRATE_FCNTL_CMD as i32) };
        fops = rt.get(&RT_PIPE_FOPS, 0).unwrap_or(0);
        if fops != 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    if fops == 0 {
        bail!("calibration failed: sys_enter did not see wqtrace's own fcntl on its pipe");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::plan::{self, Hook};

    /// The loader names programs and maps by string; the eBPF crate names them by its function
    /// and static names. Every name userspace uses must exist in the object it loads.
    #[test]
    fn every_program_and_map_the_loader_names_is_in_the_object() {
        let bytes = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/wqtrace"));
        let obj = aya_obj::Object::parse(bytes).expect("the built BPF object parses");
        let mut programs = plan::TAIL_PROGRAMS.to_vec();
        for hook in Hook::ALL {
            programs.extend(plan::tracepoints(hook).iter().map(|(p, _)| *p));
            programs.extend(plan::stand_in(hook).map(|s| s.prog));
            for c in plan::candidates(hook).iter().chain(plan::companions(hook)) {
                programs.extend([c.fentry.0, c.kprobe.0]);
                programs.extend(c.fentry.1.into_iter().chain(c.kprobe.1));
            }
        }
        let missing: Vec<_> = programs
            .iter()
            .filter(|p| !obj.programs.contains_key(**p))
            .collect();
        assert!(
            missing.is_empty(),
            "programs not in the object: {missing:?} (it has {:?})",
            obj.programs.keys().collect::<Vec<_>>()
        );
        for m in plan::MAPS {
            assert!(obj.maps.contains_key(m), "map {m} not in the object");
        }
        assert!(programs.len() > 20, "{programs:?}");
    }
}

/// What the programs counted instead of streaming, since they were loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountedTotals {
    /// (cgroup id, `EventKind` as u32, events).
    pub events: Vec<(u64, u32, u64)>,
    /// Per `counts::hist` row: the counted waits' durations.
    pub waits: [WaitRow; hist::ROWS as usize],
}
