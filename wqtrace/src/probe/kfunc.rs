//! The kernel-function hooks: each hook's candidate functions tried in order, fentry first
//! with kprobe as the fallback (chosen at load time, as libbpf-tools do), companions attached
//! with the method that worked.

use anyhow::{Result, anyhow, bail};
use aya::{Btf, Ebpf, programs::Program};

use super::loader::{attach_tp, refused, short};
use super::plan::{self, AttachPref, Hook, HookPlan, Method};
use crate::kernel;
use wqtrace_common::{Ksyms, Offsets};

pub(super) fn attach_kfunc_hook(
    ebpf: &mut Ebpf,
    btf: &Btf,
    hook: Hook,
    pref: AttachPref,
    offsets: &Offsets,
    ksyms: &Ksyms,
) -> HookPlan {
    if hook == Hook::NotificationPost && !kernel::has_watch_queue_fields(offsets) {
        let why = "kernel built without CONFIG_WATCH_QUEUE";
        return fall_back(ebpf, btf, hook, ksyms, why);
    }
    if pref == AttachPref::Tracepoint {
        return fall_back(ebpf, btf, hook, ksyms, "--attach tracepoint");
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
        _ => fall_back(ebpf, btf, hook, ksyms, &failures.join("; ")),
    }
}

/// No kernel function of the hook attached (`why`): its tp_btf stand-in if it has one and it
/// works here, else what the other tracepoints see of it.
fn fall_back(ebpf: &mut Ebpf, btf: &Btf, hook: Hook, ksyms: &Ksyms, why: &str) -> HookPlan {
    let mut h = HookPlan {
        hook,
        target: String::new(),
        method: Method::Tracepoint,
        note: why.to_string(),
    };
    if let Some(s) = plan::stand_in(hook) {
        match (s.scope)(ksyms).and_then(|scope| {
            attach_tp(ebpf, btf, s.prog, s.tracepoint)
                .map(|()| scope)
                .map_err(|e| e.to_string())
        }) {
            Ok(scope) => {
                h.method = Method::TpBtf;
                h.target = s.tracepoint.into();
                h.add_note(&scope);
                return h;
            }
            Err(e) => h.add_note(&e),
        }
    }
    if hook == Hook::NotificationPost {
        h.method = Method::Unavailable;
    }
    h.add_note(&format!("fallback: {}", hook.fallback()));
    h
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
