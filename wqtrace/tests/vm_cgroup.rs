//! `--cgroup` on a watch_queue kernel, inside the test VM, for each kernel-function attach
//! method: `workload notify` run in a child of cgroup A; a session filtered on A sees its
//! notification posts and reads, one filtered on the sibling B sees none of them, and every
//! event of the workload names its cgroup.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Tracer, WQTRACE, kind, u};
use serde_json::Value;

/// The guest's init mounts no cgroup hierarchy: mount cgroup v2 if nothing did.
fn cgroup2_root() -> PathBuf {
    if let Some(r) = wqtrace::cgroup::v2_root() {
        return r;
    }
    let st = Command::new("mount")
        .args(["-t", "cgroup2", "none", "/sys/fs/cgroup"])
        .status()
        .unwrap();
    assert!(st.success(), "mounting cgroup2");
    wqtrace::cgroup::v2_root().expect("cgroup2 mounted")
}

fn notify_in(procs: &std::path::Path) -> Value {
    let out = Command::new("sh")
        .args([
            "-c",
            &format!(
                "echo $$ > {} && exec \"$0\" workload notify",
                procs.display()
            ),
            WQTRACE,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn cgroup_filter_on_each_attach_method() {
    assert!(
        std::env::var_os("WQTRACE_IN_VM").is_some(),
        "needs a watch_queue kernel: run with `cargo xtask test` (VM stage)"
    );
    let root = cgroup2_root();
    let base = root.join("wqtrace-vm-test");
    std::fs::create_dir_all(base.join("a/inner")).unwrap();
    std::fs::create_dir_all(base.join("b")).unwrap();
    for attach in ["fentry", "kprobe"] {
        let a = Tracer::start(&[
            "--attach",
            attach,
            "--cgroup",
            base.join("a").to_str().unwrap(),
        ]);
        let b = Tracer::start(&["--attach", attach, "--cgroup", "/wqtrace-vm-test/b"]);
        let all = Tracer::start(&["--attach", attach]);
        let w = notify_in(&base.join("a/inner/cgroup.procs"));
        let (ea, eb, eall) = (a.stop(), b.stop(), all.stop());
        let pid = u(&w["pid"]);
        for k in ["notify_posted", "ring_op", "pipe_created"] {
            let (kept, there) = (kind(&ea, k, pid).len(), kind(&eall, k, pid).len());
            assert!(there > 0, "{attach}: no {k} of the workload at all");
            assert_eq!(kept, there, "{attach}: {k} of the workload in a/inner");
        }
        assert!(
            eb.iter().all(|e| u(&e["tgid"]) != pid),
            "{attach}: the sibling's session saw the workload"
        );
        // Every event of the workload, posts included, names its cgroup (the shell that
        // became it closed fds before it moved in: those stay in its old one).
        for k in ["notify_posted", "ring_op", "pipe_created"] {
            for e in kind(&eall, k, pid) {
                assert_eq!(e["cgroup"], "/wqtrace-vm-test/a/inner", "{attach}: {e}");
            }
        }
    }
    for d in ["a/inner", "a", "b", ""] {
        let _ = std::fs::remove_dir(base.join(d));
    }
}
