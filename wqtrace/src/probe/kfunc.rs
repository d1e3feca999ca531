//! The kernel-function hooks: each hook's candidate functions tried in order, fentry first
//! with kprobe as the fallback (chosen at load time, as libbpf-tools do), companions attached
//! with the method that worked.

use anyhow::{Result, anyhow, bail};
use aya::{Btf, Ebpf, programs::Program};

use super::loader::{refused, short};
use super::plan::{self, AttachPref, Hook, HookPlan, Method};
use crate::kernel;
use wqtrace_common::Offsets;

pub(super) fn attach_kfunc_hook(
    ebpf: &mut Ebpf,
    btf: &Btf,
    hook: Hook,
    pref: AttachPref,
    offsets: &Offsets,
) -> HookPlan {
    let fallback = |note: String| HookPlan {
        hook,
        target: String::new(),
        method: if hook == Hook::NotificationPost {
            Method::Unavailable
        } else {
            Method::Tracepoint
        },
        note: format!("{note}; fallback: {}", hook.fallback()),
    };
    if hook == Hook::NotificationPost && !kernel::has_watch_queue_fields(offsets) {
        return fallback("kernel built without CONFIG_WATCH_QUEUE".into());
    }
    if pref == AttachPref::Tracepoint {
        return fallback("--attach tracepoint".into());
    }
    let mut failures = vec![];
    let mut attached: Vec<&str> = vec![];
    let mut method_used = None;
    'methods: for &method in pref.methods() {
        for c in plan::candidates(hook) {
            match attach_candidate(ebpf, btf, c, method) {
                Ok(()) => {
                    attached.push(c.func);
                    method_used = Some(method);
                    if !plan::needs_all(hook) {
                        break 'methods;
                    }
                }
                Err(e) => {
                    failures.push(format!("{} {}: {e}", method.name(), c.func));
                    if plan::needs_all(hook) && !attached.is_empty() {
                        // Half a pair (readable without writable) would mislead: keep what
                        // attached (it is still correct data) and say what is missing.
                        break 'methods;
                    }
                }
            }
        }
        if !attached.is_empty() {
            break;
        }
    }
    if let Some(m) = method_used {
        for c in plan::companions(hook) {
            match attach_candidate(ebpf, btf, c, m) {
                Ok(()) => attached.push(c.func),
                Err(e) => failures.push(format!("{} {}: {e}", m.name(), c.func)),
            }
        }
    }
    match method_used {
        Some(m) if !attached.is_empty() => HookPlan {
            hook,
            target: attached.join(","),
            method: m,
            note: failures.join("; "),
        },
        _ => fallback(failures.join("; ")),
    }
}

fn attach_candidate(ebpf: &mut Ebpf, btf: &Btf, c: &plan::Candidate, method: Method) -> Result<()> {
    let (entry, exit) = match method {
        Method::Fentry => c.fentry,
        _ => c.kprobe,
    };
    let progs: Vec<&str> = std::iter::once(entry).chain(exit).collect();
    let mut done: Vec<&str> = vec![];
    for name in &progs {
        if let Err(e) = attach_one(ebpf, btf, name, c.func) {
            for d in done {
                unload(ebpf, d);
            }
            unload(ebpf, name);
            return Err(e);
        }
        done.push(name);
    }
    Ok(())
}

fn attach_one(ebpf: &mut Ebpf, btf: &Btf, prog: &str, func: &str) -> Result<()> {
    let p = ebpf
        .program_mut(prog)
        .ok_or_else(|| anyhow!("program {prog} missing"))?;
    let t = std::time::Instant::now();
    match p {
        Program::FEntry(p) => {
            p.load(func, btf)
                .map_err(|e| anyhow!("{prog}: {}", refused(prog, &e)))?;
            p.attach().map_err(|e| anyhow!("{}", short(&e)))?;
        }
        Program::FExit(p) => {
            p.load(func, btf)
                .map_err(|e| anyhow!("{prog}: {}", refused(prog, &e)))?;
            p.attach().map_err(|e| anyhow!("{}", short(&e)))?;
        }
        Program::KProbe(p) => {
            p.load().map_err(|e| anyhow!("{}", refused(prog, &e)))?;
            p.attach(func, 0).map_err(|e| anyhow!("{}", short(&e)))?;
        }
        _ => bail!("program {prog} has an unexpected type"),
    }
    super::loader::log_loaded(prog, "loaded and attached", t.elapsed(), || p.info().ok());
    Ok(())
}

fn unload(ebpf: &mut Ebpf, prog: &str) {
    if let Some(p) = ebpf.program_mut(prog) {
        let _ = match p {
            Program::FEntry(p) => p.unload(),
            Program::FExit(p) => p.unload(),
            Program::KProbe(p) => p.unload(),
            _ => Ok(()),
        };
    }
}
