//! A command wqtrace runs under tracing (`record -- CMD`, `tui -- CMD`): started once the probes
//! are attached, stopped before they detach.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

/// Starts `argv` (None when it is empty). `quiet`: no stdin, output discarded (the terminal is
/// the TUI's).
pub fn start(argv: &[String], quiet: bool) -> Result<Option<Child>> {
    let Some((prog, rest)) = argv.split_first() else {
        return Ok(None);
    };
    let mut c = Command::new(prog);
    c.args(rest);
    if quiet {
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    }
    c.spawn()
        .map(Some)
        .with_context(|| format!("cannot run {prog}"))
}

/// Takes the command down if it still runs: SIGTERM, then SIGKILL after `grace`. Called before
/// the probes detach, so the command is not mid-syscall in a hooked function while its
/// trampoline is being unpatched.
pub fn stop(c: &mut Child, grace: Duration) {
    if c.try_wait().ok().flatten().is_some() {
        return;
    }
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let end = Instant::now() + grace;
    while Instant::now() < end {
        if c.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}
