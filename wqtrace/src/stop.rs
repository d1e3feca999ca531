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
