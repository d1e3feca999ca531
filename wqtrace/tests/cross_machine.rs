//! Record on one machine, read on another: the recordings `vm_record` made in the 6.12 and 6.1
//! guests (copied out to target/cross-machine/), read on this host by uid 65534 with no
//! privileges: report, replay and every export format, and the numbers agree with what the
//! guest's workload said it did.
//!
//! Declared `test = false`: `cargo xtask test` runs it after the VM stage, with
//! WQTRACE_CROSS_KERNELS naming the series the guests ran (`6.12,6.1`).

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use common::{WQTRACE, u};
use serde_json::Value;

fn as_nobody(args: &[&str]) -> std::process::Output {
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(WQTRACE)
        .args(args)
        .current_dir("/")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "wqtrace {args:?} as nobody: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

#[test]
fn recordings_from_the_test_vms_read_here_without_privileges() {
    let want: Vec<String> = std::env::var("WQTRACE_CROSS_KERNELS")
        .expect("run by `cargo xtask test` after the VM stage (WQTRACE_CROSS_KERNELS)")
        .split(',')
        .map(str::to_string)
        .collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/cross-machine");
    let mut recs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (the VM stage makes it)", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wqt"))
        .collect();
    recs.sort();
    for series in &want {
        assert!(
            recs.iter().any(|r| r
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{series}."))),
            "no recording from the {series} guest in {recs:?}"
        );
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    for rec in recs {
        let release = rec.file_stem().unwrap().to_string_lossy().into_owned();
        assert_ne!(release, host.trim());
        let w: Value =
            serde_json::from_str(&std::fs::read_to_string(rec.with_extension("json")).unwrap())
                .unwrap();
        // "Copied to the workstation": a file of the user's own, in a directory of theirs.
        let home = common::Scratch::new("cross");
        let file = home.join("s.wqt");
        std::fs::copy(&rec, &file).unwrap();
        for p in [&*home, &*file] {
            std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
        }
        let f = file.to_str().unwrap();

        let r: Value = serde_json::from_slice(&as_nobody(&["report", "--json", f]).stdout).unwrap();
        assert_eq!(r["kernel"], release.as_str(), "the guest's kernel");
        let by = r["wqtrace_version"].as_str().unwrap();
        assert!(by.starts_with("0.1.0 (git "), "recorded by {by}");
        let posted: u64 = r["pipes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| u(&p["notifications"]["posted"]))
            .sum();
        assert_eq!(posted, u(&w["totals"]["notifications_read"]), "{release}");
        let text = as_nobody(&["report", f]).stdout;
        assert!(String::from_utf8_lossy(&text).contains(&release));

        let jsonl = as_nobody(&["export", f, "-f", "jsonl"]).stdout;
        let notes = String::from_utf8_lossy(&jsonl)
            .lines()
            .filter(|l| serde_json::from_str::<Value>(l).unwrap()["kind"] == "notify_posted")
            .count() as u64;
        assert!(
            notes >= posted,
            "{release}: {notes} notify_posted lines, {posted} posted"
        );
        let pf = home.join("s.pftrace");
        as_nobody(&["export", f, "-f", "perfetto", "-o", pf.to_str().unwrap()]);
        assert!(std::fs::metadata(&pf).unwrap().len() > 1000);
        let dump = as_nobody(&["replay", "--dump", f]).stdout;
        assert!(!dump.is_empty());
    }
}
