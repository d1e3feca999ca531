//! SIGINT/SIGTERM → a flag the main loops poll, so every command stops cleanly: files finished,
//! terminal restored, probes detached (by dropping them).

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Install the handlers (idempotent).
pub fn install() {
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGHUP, &sa, std::ptr::null_mut());
    }
}

pub fn requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Ask the loops to stop (e.g. when a traced command exits).
pub fn request() {
    STOP.store(true, Ordering::SeqCst);
}

/// Take down a command wqtrace started, if it still runs: SIGTERM, then SIGKILL after `grace`.
/// Called before the probes detach, so the command is not mid-syscall in a hooked function
/// while its trampoline is being unpatched.
pub fn command(c: &mut std::process::Child, grace: std::time::Duration) {
    if c.try_wait().ok().flatten().is_some() {
        return;
    }
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let end = std::time::Instant::now() + grace;
    while std::time::Instant::now() < end {
        if c.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}
