//! A crash of the machine loses at most [`SYNC_EVERY`] of a recording: `cargo xtask test`
//! boots each guest, records continuous pipe traffic onto a 9p share the guest caches
//! (cache=loose), writes a canary it never syncs, notes the time and powers off without
//! syncing (`busybox poweroff -f -n`). Here, on the host: the canary is gone (so the crash did
//! drop unsynced writes) while the recording is readable and reaches to within SYNC_EVERY of
//! the crash, plus two seconds of slack: the fsync itself over 9p and the events still on
//! their way to the file when it began (a TCG guest is slow at both). Without the periodic
//! fsync the whole recording (about ten seconds) would be gone.
//!
//! Declared `test = false`: run by `cargo xtask test` after the VM stage (WQTRACE_CROSS_KERNELS).

use std::path::Path;
use std::time::Duration;

use wqtrace::recording::Reader;
use wqtrace::sinks::record::SYNC_EVERY;

#[test]
fn a_machine_crash_loses_at_most_the_sync_interval() {
    let kernels = std::env::var("WQTRACE_CROSS_KERNELS")
        .expect("run by `cargo xtask test` after the VM stage (WQTRACE_CROSS_KERNELS)");
    for series in kernels.split(',') {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/crash")
            .join(series);
        let crash_at = std::fs::read_to_string(dir.join("crash-at")).unwrap_or_else(|e| {
            panic!("{series}: no crash-at ({e}): the crash run did not get there")
        });
        let crash_ns = (crash_at.trim().parse::<f64>().unwrap() * 1e9) as u64;
        let canary = std::fs::metadata(dir.join("canary")).map_or(0, |m| m.len());
        assert!(
            canary < 4 << 20,
            "{series}: the unsynced canary survived the crash whole ({canary} bytes): the crash loses nothing, so it proves nothing"
        );
        let mut r = Reader::new(std::fs::File::open(dir.join("rec.wqt")).unwrap())
            .unwrap_or_else(|e| panic!("{series}: recording unreadable after the crash: {e}"));
        let events = r.read_all().unwrap();
        assert!(!events.is_empty(), "{series}: no events survived");
        // Only a tracer that keeps up measures the file's durability: a backlog in the ring
        // or the queue would be lost at the crash as well, and counted here.
        assert_eq!(
            r.tracer_lost(),
            0,
            "{series}: the tracer fell behind the crash run's traffic"
        );
        let first = events.iter().map(|e| e.ts_ns).min().unwrap();
        let last = events.iter().map(|e| e.ts_ns).max().unwrap();
        let lost = Duration::from_nanos(crash_ns.saturating_sub(last));
        eprintln!(
            "{series}: {} events over {:.1} s survived; the last {:.2} s before the crash are gone (canary: {canary} of {} bytes); warnings {:?}",
            events.len(),
            (last - first) as f64 / 1e9,
            lost.as_secs_f64(),
            4 << 20,
            r.warnings()
        );
        assert!(
            crash_ns > first + 5_000_000_000,
            "{series}: the recording began too late to say anything"
        );
        assert!(
            lost <= SYNC_EVERY + Duration::from_secs(2),
            "{series}: the crash took the last {lost:?} of the recording (sync every {SYNC_EVERY:?})"
        );
    }
}
