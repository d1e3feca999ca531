//! Can this process load and attach BPF programs? Checked up front so the user gets one line
//! ("run with sudo") instead of an errno from deep inside the loader.

use anyhow::{Result, bail};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capability bits of this process (from /proc/self/status).
pub fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Privileges {
    Root,
    Capabilities,
    Missing(String),
}

pub fn check() -> Privileges {
    let caps = effective_caps();
    let has = |c: u32| caps & (1u64 << c) != 0;
    if unsafe { libc::geteuid() } == 0 && has(CAP_SYS_ADMIN) {
        return Privileges::Root;
    }
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Privileges::Capabilities;
    }
    let mut missing = vec![];
    if !has(CAP_BPF) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) {
        missing.push("CAP_PERFMON");
    }
    Privileges::Missing(format!(
        "run with sudo (or grant {}): loading BPF programs needs privileges",
        missing.join("+")
    ))
}

/// Fails with the one-line reason when privileges are missing.
pub fn require() -> Result<()> {
    match check() {
        Privileges::Missing(why) => bail!("{why}"),
        _ => Ok(()),
    }
}
