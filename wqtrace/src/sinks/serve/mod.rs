//! `wqtrace serve`: the probes, headless, behind a Prometheus/OpenMetrics endpoint.
//!
//! The main thread drains events into [`metrics::Metrics`]; a second thread runs hyper's
//! HTTP/1.1 server on a tokio runtime ([`http`]), which encodes the shared registry on each
//! scrape. SIGINT/SIGTERM stop the loop: `/healthz` turns 503, the probes are detached (the
//! source is dropped), then the listener closes. Ring ops on ordinary pipes arrive as
//! in-kernel counts instead of events unless `--all-pipes` (`counted.rs`).

mod cost;
mod counted;
mod histogram;
pub mod http;
mod labels;
pub mod metrics;
#[cfg(test)]
mod tests;

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{
    kernel,
    probe::opts::ProbeOpts,
    probe::plan::{Hook, Method},
    source::{EventSource, live::LiveSource},
    stop,
};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9435";

/// How often (and after how long idle) pipes are checked against /proc when free_pipe_info()
/// is not hooked.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub probe: ProbeOpts,
    #[command(flatten)]
    pub cost: crate::probe::opts::CostOpt,
    /// Address to serve /metrics and /healthz on (port 0: any free port, printed at start).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Allow a non-loopback --listen address (the metrics name processes and pipes).
    #[arg(long)]
    pub allow_remote: bool,
    /// Ring-occupancy series for ordinary pipes too (default: notification pipes only).
    #[arg(long)]
    pub all_pipes: bool,
    /// Per-pipe occupancy series at most (the rest are summed under pipe="other").
    #[arg(long, default_value_t = metrics::Limits::default().pipe_series)]
    pub max_pipes: usize,
    /// Distinct comm label values at most (the rest count under comm="other").
    #[arg(long, default_value_t = metrics::Limits::default().comms)]
    pub max_comms: usize,
    /// Stop after this many seconds.
    #[arg(short = 'd', long, value_name = "SECS", value_parser = crate::argvalue::secs)]
    pub duration: Option<f64>,
}

/// Refuses a non-loopback address unless asked for explicitly.
pub fn check_listen(addr: SocketAddr, allow_remote: bool) -> Result<()> {
    if !addr.ip().is_loopback() && !allow_remote {
        bail!(
            "refusing to serve metrics on non-loopback address {addr}: pass --allow-remote to expose them beyond this host"
        );
    }
    Ok(())
}

pub fn run(args: Args) -> Result<ExitCode> {
    check_listen(args.listen, args.allow_remote)?;
    stop::install();
    // Bind before loading the probes: a busy port fails fast, and scrapes that arrive while the
    // probes load wait in the backlog instead of being refused.
    let std_listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    std_listener.set_nonblocking(true)?;
    let local = std_listener.local_addr()?;

    // Metrics carry no stacks: unless asked, none are taken (their walks and naming would be
    // work for nothing on every contention and long wait).
    let mut probe = args.probe.clone();
    probe.stacks.get_or_insert(crate::stacks::Mode::None);
    // The programs' cost is among the metrics if asked (the process's always is).
    probe.count_runs = args.cost.cost;
    // Ordinary pipes' ring ops only bump two counters here unless their occupancy is asked
    // for: the programs count them instead of streaming each one (the costliest part of an
    // op's tracing, on both sides of the ring buffer).
    probe.count_ordinary = !args.all_pipes;
    let mut src = LiveSource::open(&probe)?;
    // Without a free hook, no event says a pipe is gone: its fds' closes and the /proc sweep
    // decide then. (With a task filter, a free by a task outside it is still reported for a
    // pipe the session saw: `source::filter::PipesSeen`.)
    let release_on_close = !matches!(
        src.plan().method(Hook::PipeRelease),
        Method::Fentry | Method::Kprobe | Method::TpBtf
    );
    let info = metrics::BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        kernel_release: src.meta().kernel_release.clone(),
        attach: src.meta().attach.clone(),
    };
    let opts = metrics::Options {
        limits: metrics::Limits {
            comms: args.max_comms,
            pipe_series: args.max_pipes,
            ..metrics::Limits::default()
        },
        all_pipes: args.all_pipes,
        release_on_close,
        cgroups: src.cgroups(),
    };
    let (mut m, mut registry) = metrics::Metrics::new(opts, &info);
    let mut cost = cost::CostMetrics::register(&mut registry);
    if let Some(s) = src.cost() {
        cost.update(&s);
    }
    let mut counted = if probe.count_ordinary {
        Some(counted::KernelCounts::start(&mut src, &mut m)?)
    } else {
        None
    };
    let shared = Arc::new(http::Shared::new(registry));
    shared.beat();
    let max_conns = http::fit_connection_limit();

    let (tx, rx) = tokio::sync::watch::channel(false);
    let server = {
        let shared = shared.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("tokio runtime")?;
        std::thread::Builder::new()
            .name("wqtrace-http".into())
            .spawn(move || {
                rt.block_on(async move {
                    match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(l) => http::serve(l, shared, max_conns, rx).await,
                        Err(e) => log::error!("serve: listener: {e}"),
                    }
                });
                // Dropping the runtime cancels connections still in flight.
            })?
    };
    eprintln!("wqtrace: serving http://{local}/metrics; Ctrl-C to stop");

    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let mut batch = Vec::with_capacity(4096);
    let mut n = 0u64;
    let mut last_sweep = Instant::now();
    let mut last_cost = Instant::now();
    let res = loop {
        if stop::requested() || deadline.is_some_and(|d| Instant::now() >= d) {
            break Ok(());
        }
        batch.clear();
        if let Err(e) = src.next_batch(&mut batch, Duration::from_millis(100)) {
            break Err(e);
        }
        m.apply_batch(&batch);
        n += batch.len() as u64;
        if let Some(c) = &mut counted {
            c.poll(&mut src, &mut m);
        }
        m.set_lost(src.lost());
        m.set_unattributed(src.sleeps_unattributed());
        let known = src.known_pipes();
        m.set_known_pipes(known);
        // Past the programs' room a free may go unseen: the sweep then catches the pipes
        // whose free did.
        let sweep = release_on_close || known.is_some_and(|k| k.past_room());
        if sweep && last_sweep.elapsed() >= SWEEP_EVERY {
            last_sweep = Instant::now();
            let idle_before = kernel::boottime_ns() - SWEEP_EVERY.as_nanos() as u64;
            let mut fds = HashMap::new();
            m.sweep(idle_before, |tgid, ino| proc_holds(&mut fds, tgid, ino));
        }
        if last_cost.elapsed() >= cost::SAMPLE_EVERY
            && let Some(s) = src.cost()
        {
            last_cost = s.at;
            cost.update(&s);
        }
        shared.progress(src.submitted(), n);
    };
    if let Some(c) = counted.as_mut().filter(|_| res.is_ok()) {
        c.finish(&mut src, &mut m);
    }
    let lost = src.lost();
    let unattributed = src.sleeps_unattributed();
    // Detach the probes first, then close the listener.
    shared.detaching();
    drop(src);
    let _ = tx.send(true);
    let _ = server.join();
    res?;
    super::print_unattributed_sleeps(unattributed);
    if counted.is_some() {
        let by_kind = m.counted_by_kind();
        let total: u64 = by_kind.iter().map(|(_, c)| c).sum();
        let list: Vec<String> = by_kind
            .iter()
            .map(|(k, c)| format!("{} {c}", k.name()))
            .collect();
        eprintln!(
            "wqtrace: stopped; {n} events streamed and {total} counted in the kernel ({}), {lost} lost",
            if list.is_empty() {
                "none".to_string()
            } else {
                list.join(", ")
            }
        );
    } else {
        eprintln!("wqtrace: stopped; {n} events, {lost} lost");
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether process `tgid` holds an fd on pipe inode `ino` (its /proc/PID/fd listing, read once
/// per sweep and cached in `cache`). A process that is gone holds nothing; one whose listing we
/// may not read (privileges dropped, another user's process) may hold it: kept.
fn proc_holds(cache: &mut HashMap<u32, Option<HashSet<u64>>>, tgid: u32, ino: u64) -> bool {
    cache
        .entry(tgid)
        .or_insert_with(|| {
            let dir = match std::fs::read_dir(format!("/proc/{tgid}/fd")) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(HashSet::new()),
                Err(_) => return None,
            };
            Some(
                dir.filter_map(|d| std::fs::read_link(d.ok()?.path()).ok())
                    .filter_map(|l| {
                        l.to_str()?
                            .strip_prefix("pipe:[")?
                            .strip_suffix(']')?
                            .parse()
                            .ok()
                    })
                    .collect(),
            )
        })
        .as_ref()
        .is_none_or(|fds| fds.contains(&ino))
}
