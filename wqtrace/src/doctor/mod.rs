//! `wqtrace doctor`: what this kernel offers, decided by trying (loading and attaching every
//! hook, then detaching), not by guessing from the version.

mod measure;

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use crate::{
    kernel,
    privileges::{self, Privileges},
    probe::opts::ProbeOpts,
    probe::{
        loader::{self, Probes},
        plan::{AttachPref, Hook, Method, Plan},
    },
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub probe: ProbeOpts,
    /// Then attach for SECS and measure what tracing this machine's current pipe traffic costs:
    /// BPF run time per event and per second, wqtrace's own CPU and memory; then detach.
    #[arg(long, value_name = "SECS", value_parser = crate::argvalue::secs)]
    pub measure: Option<f64>,
}

/// What doctor found, printed as text or JSON.
struct Findings {
    release: String,
    btf_ok: bool,
    btf_line: String,
    watch_queue_btf: bool,
    priv_line: String,
    after_attach: String,
    tracefs: bool,
    notif: std::result::Result<(), String>,
    /// The plan a live session gets here (None: loading failed, see `why_not`).
    plan: Option<Plan>,
    /// When fentry won: the plan with --attach kprobe, to say whether the fallback works.
    kprobe_plan: Option<Plan>,
    why_not: Option<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let f = examine(&args)?;
    // Last: a live session drops privileges once attached.
    let measured = match (args.measure, &f.why_not) {
        (Some(secs), None) => Some(measure::run(&args.probe, secs)?),
        _ => None,
    };
    if args.json {
        print_json(&f, measured.as_ref())?;
    } else {
        print_text(&f);
        if let Some(m) = &measured {
            m.print_text();
        }
    }
    match &f.why_not {
        None => Ok(ExitCode::SUCCESS),
        Some(why) => {
            eprintln!("wqtrace: cannot trace: {why}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Everything doctor found out, before it is printed.
fn examine(args: &Args) -> Result<Findings> {
    let release = kernel::release();
    let btf = kernel::open_btf(args.probe.btf.as_deref());
    let btf_line = match &btf {
        Ok((_, p)) => format!("yes ({})", crate::text::path(p)),
        Err(e) => format!("NO: {e}"),
    };
    let watch_queue_btf = btf
        .as_ref()
        .map(|(b, _)| kernel::has_watch_queue_fields(&kernel::offsets(b)))
        .unwrap_or(false);
    let privs = privileges::check();
    let priv_line = match &privs {
        Privileges::Root => "root".to_string(),
        Privileges::Capabilities => "CAP_BPF+CAP_PERFMON".to_string(),
        Privileges::Missing(why) => format!("MISSING: {why}"),
    };
    // What a live session does with root once attached.
    let after_attach = match privileges::drop_plan(&args.probe.privileges)? {
        privileges::DropPlan::To(u) => format!("dropped to {} (no capabilities)", u.describe()),
        privileges::DropPlan::Capabilities => {
            "every capability given up (no_new_privs set)".to_string()
        }
        privileges::DropPlan::Keep(why) | privileges::DropPlan::Refused(why) => {
            format!("kept: {why}")
        }
    };
    // Mounted already, or mountable by us now.
    let tracefs = loader::ensure_tracefs();
    let notif = kernel::notification_pipes();

    // Load and attach everything the way a live session would, then drop it (detaching).
    let (plan, why_not) = if let Privileges::Missing(why) = &privs {
        (None, Some(why.clone()))
    } else {
        match Probes::open(&args.probe) {
            Ok(p) => (Some(p.plan.clone()), None),
            Err(e) => (
                None,
                Some(
                    e.chain()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(": "),
                ),
            ),
        }
    };
    // When fentry won, say whether kprobes would work too (the fallback users can force with
    // --attach kprobe): a second load and attach, then detach.
    let kprobe_plan = match &plan {
        Some(p)
            if args.probe.attach == AttachPref::Auto
                && p.hooks.iter().any(|h| h.method == Method::Fentry) =>
        {
            let opts = ProbeOpts {
                attach: AttachPref::Kprobe,
                ..args.probe.clone()
            };
            Probes::open(&opts).ok().map(|p| p.plan.clone())
        }
        _ => None,
    };
    Ok(Findings {
        release,
        btf_ok: btf.is_ok(),
        btf_line,
        watch_queue_btf,
        priv_line,
        after_attach,
        tracefs,
        notif,
        plan,
        kprobe_plan,
        why_not,
    })
}

fn print_json(f: &Findings, measured: Option<&measure::Measurement>) -> Result<()> {
    let Findings {
        release,
        btf_ok,
        priv_line,
        after_attach,
        tracefs,
        notif,
        watch_queue_btf,
        plan,
        kprobe_plan,
        why_not,
        ..
    } = f;
    let v = json!({
        "kernel_release": release,
        "btf": btf_ok,
        "privileges": priv_line,
        "privileges_after_attach": after_attach,
        "tracefs": tracefs,
        "notification_pipes": notif.is_ok(),
        "notification_pipes_error": notif.as_ref().err(),
        "watch_queue_in_btf": watch_queue_btf,
        "plan": plan.as_ref().map(|p| &p.hooks),
        "kernel_reads": plan.as_ref().map(|p| if p.direct_loads { "direct" } else { "probe_read" }),
        "kprobe_fallback": kprobe_plan.as_ref().map(|p| &p.hooks),
        "can_run": plan.is_some(),
        "error": why_not,
        "measure": measured.map(|m| m.json()),
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

fn print_text(f: &Findings) {
    let Findings {
        release,
        btf_line,
        priv_line,
        after_attach,
        tracefs,
        notif,
        plan,
        kprobe_plan,
        ..
    } = f;
    let kprobe_ok = |hook: Hook| {
        kprobe_plan
            .as_ref()
            .map(|p| p.method(hook) == Method::Kprobe)
    };
    println!("kernel             {release}");
    println!("btf                {btf_line}");
    println!("privileges         {priv_line}");
    println!("after attaching    {after_attach}");
    println!(
        "tracefs            {}",
        if *tracefs { "mounted" } else { "not mounted" }
    );
    match &notif {
        Ok(()) => println!("notification pipes yes (pipe2(O_NOTIFICATION_PIPE) works)"),
        Err(e) => println!("notification pipes NO: {e}"),
    }
    if let Some(p) = &plan {
        println!(
            "kernel reads       {}",
            if p.direct_loads {
                "direct loads (bpf_rdonly_cast)"
            } else {
                "probe reads (bpf_probe_read_kernel: no bpf_rdonly_cast before 6.2, or WQTRACE_PROBE_READS=1)"
            }
        );
    }
    println!();
    match &plan {
        Some(p) => {
            println!(
                "{:<18} {:<11} {:<40} {:<7} note",
                "hook", "method", "target", "kprobe"
            );
            for h in &p.hooks {
                let target = if h.target.is_empty() { "-" } else { &h.target };
                let kp = match (h.method, kprobe_ok(h.hook)) {
                    (Method::Kprobe, _) => "used",
                    (_, Some(true)) => "works",
                    (Method::Fentry, Some(false)) => "no",
                    _ => "-",
                };
                println!(
                    "{:<18} {:<11} {:<40} {:<7} {}",
                    h.hook.name(),
                    h.method.name(),
                    target,
                    kp,
                    h.note
                );
            }
            let kfunc = p
                .hooks
                .iter()
                .any(|h| matches!(h.method, Method::Fentry | Method::Kprobe));
            let frees = if p.method(Hook::PipeRelease) == Method::TpBtf {
                ", frees at kfree"
            } else {
                ""
            };
            println!();
            println!(
                "mode               {}",
                if kfunc {
                    "kernel-function hooks + tracepoints".to_string()
                } else {
                    format!(
                        "tracepoint fallback (tp_btf): ring ops, rejections by errno, off-CPU \
                         waits, contention{frees}"
                    )
                }
            );
        }
        None => println!("hooks              not probed"),
    }
}
