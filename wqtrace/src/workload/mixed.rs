//! `mixed`: `contend` in the background for the whole duration while the main thread loops over
//! `notify`, `reject` and `overflow`, with a short pause between rounds.
//!
//! On a kernel without notification pipes, only `contend` and the ordinary half of `reject` run;
//! the summary says `"notifications": "unavailable"`, one note goes to stderr, and the exit status
//! reflects the parts that did run.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Common, contend, notify, overflow, reject, sys};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Seconds to run.
    #[arg(long, default_value_t = 5.0, value_parser = crate::argvalue::secs)]
    pub duration: f64,
    /// Threads of the background `contend`.
    #[arg(long, default_value_t = 3)]
    pub threads: u32,
    /// KEYCTL_UPDATEs per `notify` round.
    #[arg(long, default_value_t = 8)]
    pub count: u32,
    /// Pause between rounds, milliseconds.
    #[arg(long, default_value_t = 50)]
    pub pause_ms: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct NotifyTotals {
    pub runs: u32,
    pub ok_runs: u32,
    pub expected_notifications: u64,
    pub notifications_read: u64,
    pub loss_records: u64,
    pub pipe_inos: Vec<u64>,
    pub errors: Vec<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct RejectTotals {
    pub runs: u32,
    pub ok_runs: u32,
    pub attempts: u64,
    pub rejected: u64,
    pub succeeded: u64,
    /// Attempt list of the first run (the later ones repeat it).
    pub first: Option<Vec<reject::Attempt>>,
    pub errors: Vec<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct OverflowTotals {
    pub runs: u32,
    pub ok_runs: u32,
    pub posts_attempted: u64,
    pub notifications_read: u64,
    pub loss_records: u64,
    pub pipe_inos: Vec<u64>,
    pub errors: Vec<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Totals {
    pub pipes_created: u64,
    pub notifications_read: u64,
    pub loss_records: u64,
    pub bytes_written: u64,
    pub bytes_read: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub scenario: &'static str,
    pub pid: u32,
    pub ok: bool,
    /// "available" or "unavailable"
    pub notifications: &'static str,
    pub duration_s: f64,
    pub rounds: u32,
    pub contend: Option<contend::Summary>,
    pub notify: NotifyTotals,
    pub reject: RejectTotals,
    pub overflow: OverflowTotals,
    pub totals: Totals,
    pub errors: Vec<String>,
}

/// Long on purpose: a scenario is a script of syscalls, read in order; its summary says what
/// each step did.
pub fn run(a: &Args) -> anyhow::Result<Summary> {
    let duration = Duration::from_secs_f64(a.duration.max(0.0));
    let available = match sys::notification_pipe() {
        Ok(_) => true,
        Err(e) => {
            eprintln!("wqtrace: {e} (mixed: running the ordinary-pipe parts only)");
            false
        }
    };
    let t0 = Instant::now();
    let copts = contend::Opts {
        threads: a.threads.max(2),
        duration,
        writes: None,
        spread: false,
    };
    let bg = std::thread::Builder::new()
        .name("wq-contend".into())
        .spawn(move || contend::run(&copts))?;
    let mut s = Summary {
        scenario: "mixed",
        pid: sys::getpid(),
        ok: false,
        notifications: if available {
            "available"
        } else {
            "unavailable"
        },
        duration_s: 0.0,
        rounds: 0,
        contend: None,
        notify: NotifyTotals::default(),
        reject: RejectTotals::default(),
        overflow: OverflowTotals::default(),
        totals: Totals::default(),
        errors: vec![],
    };
    let nopts = notify::Opts {
        count: a.count,
        nr_notes: 256,
        filter: false,
        watch_id: 7,
        timeout: Duration::from_secs(5),
        extra_watchers: 0,
    };
    let oopts = overflow::Opts {
        nr_notes: 4,
        count: None,
        watch_id: 9,
    };
    loop {
        s.rounds += 1;
        if available {
            match notify::run(&nopts) {
                Ok(n) => {
                    let t = &mut s.notify;
                    t.runs += 1;
                    t.ok_runs += u32::from(n.ok);
                    t.expected_notifications += u64::from(n.expected_notifications);
                    t.notifications_read += u64::from(n.notifications_read);
                    t.loss_records += u64::from(n.loss_records);
                    t.pipe_inos.push(n.pipe_ino);
                    t.errors.extend(n.errors);
                }
                Err(e) => {
                    s.notify.runs += 1;
                    s.notify.errors.push(format!("{e:#}"));
                }
            }
        }
        match reject::run(!available) {
            Ok(r) => {
                let t = &mut s.reject;
                t.runs += 1;
                t.ok_runs += u32::from(r.ok);
                t.attempts += r.attempts.len() as u64;
                t.rejected += u64::from(r.rejected);
                t.succeeded += u64::from(r.succeeded);
                t.first.get_or_insert(r.attempts);
            }
            Err(e) => {
                s.reject.runs += 1;
                s.reject.errors.push(format!("{e:#}"));
            }
        }
        if available {
            match overflow::run(&oopts) {
                Ok(o) => {
                    let t = &mut s.overflow;
                    t.runs += 1;
                    t.ok_runs += u32::from(o.ok);
                    t.posts_attempted += u64::from(o.posts_attempted);
                    t.notifications_read += u64::from(o.notifications_read);
                    t.loss_records += u64::from(o.loss_records);
                    t.pipe_inos.push(o.pipe_ino);
                    t.errors.extend(o.errors);
                }
                Err(e) => {
                    s.overflow.runs += 1;
                    s.overflow.errors.push(format!("{e:#}"));
                }
            }
        }
        if t0.elapsed() >= duration {
            break;
        }
        std::thread::sleep(
            Duration::from_millis(a.pause_ms).min(duration.saturating_sub(t0.elapsed())),
        );
    }
    match bg.join() {
        Ok(Ok(c)) => s.contend = Some(c),
        Ok(Err(e)) => s.errors.push(format!("contend: {e:#}")),
        Err(_) => s.errors.push("contend: thread panicked".into()),
    }
    s.duration_s = t0.elapsed().as_secs_f64();
    let c_ok = s.contend.as_ref().is_some_and(|c| c.ok);
    let (cw, cr) = s
        .contend
        .as_ref()
        .map_or((0, 0), |c| (c.total_bytes_written, c.total_bytes_read));
    s.totals = Totals {
        // reject: 2 or 3 pipes per run; contend: 1 + one per splicer
        pipes_created: u64::from(s.notify.runs)
            + u64::from(s.overflow.runs)
            + u64::from(s.reject.runs) * if available { 3 } else { 2 }
            + s.contend.as_ref().map_or(0, |c| {
                1 + c
                    .threads
                    .iter()
                    .filter(|t| t.role == contend::Role::Splicer)
                    .count() as u64
            }),
        notifications_read: s.notify.notifications_read + s.overflow.notifications_read,
        loss_records: s.notify.loss_records + s.overflow.loss_records,
        bytes_written: cw,
        bytes_read: cr,
    };
    s.ok = s.errors.is_empty()
        && c_ok
        && s.reject.ok_runs == s.reject.runs
        && s.notify.ok_runs == s.notify.runs
        && s.overflow.ok_runs == s.overflow.runs;
    Ok(s)
}
