//! `cargo xtask test`: setup, fmt + clippy, host tests, then the VM tests on each kernel.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::{setup, util, vm};

/// Kernel series the VM stage runs on.
pub const SERIES: &[&str] = &["6.12", "6.1"];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Skip the VM stage.
    #[arg(long, conflicts_with = "vm_only")]
    pub no_vm: bool,
    /// Only the VM stage (no fmt/clippy/host tests).
    #[arg(long)]
    pub vm_only: bool,
    /// Skip `cargo xtask setup`.
    #[arg(long)]
    pub no_setup: bool,
    /// Timeout of one VM test executable's boot, seconds: a hang's bound, not a speed goal (the
    /// slowest executable takes 5-10 minutes under TCG here, a loaded machine more).
    #[arg(long, default_value_t = 1200)]
    pub vm_timeout: u64,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let t0 = Instant::now();
    if !a.no_setup {
        setup::setup()?;
    }
    // `cargo metadata` once: clippy and the VM stage both need the `test = false` targets.
    let manual = manual_test_targets()?;
    let (vm_targets, after_vm): (Vec<String>, Vec<String>) =
        manual.iter().cloned().partition(|n| n.starts_with("vm"));
    if !a.vm_only {
        util::run(util::cargo().args(["fmt", "--all", "--check"]))?;
        util::run(util::cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))?;
        // --all-targets leaves out the `test = false` targets (the VM tests): lint them too.
        let mut c = util::cargo();
        c.args(["clippy", "-p", "wqtrace"]);
        for n in &manual {
            c.args(["--test", n]);
        }
        util::run(c.args(["--", "-D", "warnings"]))?;
        let mut c = util::cargo();
        c.arg("test");
        if !util::is_root() {
            // The host integration tests load probes: they need root.
            c.env(
                "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER",
                "sudo -E --preserve-env=PATH",
            );
        }
        util::run(&mut c)?;
        // The benchmark must not rot: a quick host run checks that every configuration ran and
        // produced numbers (never a speed).
        // Through cargo, not current_exe(): building xtask's own integration tests above
        // replaced this very binary (it now reads "(deleted)").
        util::run(util::cargo().args(["run", "-q", "-p", "xtask", "--", "bench", "--quick"]))?;
        eprintln!("xtask test: host stage done after {:.0?}", t0.elapsed());
    }
    if !a.no_vm {
        let shared = util::target_dir().join("cross-machine");
        // Only what this run's guests write counts.
        let _ = std::fs::remove_dir_all(&shared);
        vm_stage(a.vm_timeout, &vm_targets)?;
        crash_stage(a.vm_timeout)?;
        after_vm_stage(&after_vm)?;
    }
    eprintln!("xtask test: all stages passed in {:.0?}", t0.elapsed());
    Ok(())
}

/// wqtrace's integration tests declared `test = false` (plain `cargo test` skips them): those
/// named `vm*` run inside the test VM (e.g. `vm`, wqtrace/tests/vm.rs), the others on the host
/// after the VM stage, on what the guests left in target/ (e.g. `cross_machine`).
fn manual_test_targets() -> anyhow::Result<Vec<String>> {
    let out =
        util::output_ok(util::cargo().args(["metadata", "--no-deps", "--format-version", "1"]))
            .context("cargo metadata")?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let mut names = vec![];
    for p in v["packages"].as_array().into_iter().flatten() {
        if p["name"] != "wqtrace" {
            continue;
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            let is_test = t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "test"));
            if is_test && t["test"] == false {
                names.extend(t["name"].as_str().map(String::from));
            }
        }
    }
    if names.is_empty() {
        bail!("wqtrace declares no VM test target (a [[test]] with test = false)");
    }
    names.sort();
    Ok(names)
}

/// Builds the VM test targets and returns each one's name and executable.
fn build_vm_tests(names: &[String]) -> anyhow::Result<Vec<(String, std::path::PathBuf)>> {
    let mut c = util::cargo();
    c.args([
        "test",
        "-p",
        "wqtrace",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    for n in names {
        c.args(["--test", n]);
    }
    c.stderr(std::process::Stdio::inherit());
    eprintln!("xtask: $ {}", util::describe(&c));
    let out = c.output().context("cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the VM tests failed ({})", out.status);
    }
    let mut exes = vec![];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] == "compiler-artifact"
            && v["profile"]["test"] == true
            && let Some(name) = v["target"]["name"].as_str()
            && names.iter().any(|m| m == name)
            && let Some(e) = v["executable"].as_str()
        {
            exes.push((name.to_string(), std::path::PathBuf::from(e)));
        }
    }
    if exes.len() != names.len() {
        bail!(
            "cargo reported {} executables for the VM tests {names:?}",
            exes.len()
        );
    }
    Ok(exes)
}

/// In each guest: record continuous pipe traffic onto a share the guest caches (cache=loose),
/// then power the machine off without syncing. Leaves target/crash/SERIES/ with the recording,
/// a canary written (never synced) just before the crash, and the crash time, for
/// tests/machine_crash.rs.
const CRASH_SCRIPT: &str = r#"set -e
WQ=$1; OUT=$2
mkdir -p /tmp/crash
mount -t 9p -o trans=virtio,version=9p2000.L,cache=loose,msize=262144 crash /tmp/crash
# Steady traffic the tracer keeps up with under TCG (a backlog would count as crash loss).
sh -c 'while :; do echo x; sleep 0.01; done' | cat >/dev/null &
"$WQ" record -o /tmp/crash/rec.wqt 2>"$OUT/record.err" &
i=0
until grep -q "recording to" "$OUT/record.err"; do
  i=$((i+1)); [ $i -lt 1200 ] || { echo "WQCRASH: record never started"; cat "$OUT/record.err"; exit 1; }
  sleep 0.1
done
sleep 8
# Like the recording: written and still open (9p writes dirty pages back when a file is
# closed), never synced.
exec 3>/tmp/crash/canary
head -c 4194304 /dev/zero >&3
cut -d' ' -f1 /proc/uptime > "$OUT/crash-at"
echo "WQCRASH: powering off without sync"
/bin/busybox poweroff -f -n
sleep 60
echo "WQCRASH: still running after poweroff"
exit 1
"#;

fn crash_stage(timeout: u64) -> anyhow::Result<()> {
    let wqtrace = util::target_dir().join("debug/wqtrace");
    for series in SERIES {
        let share = vm::crash_share()?;
        std::fs::remove_dir_all(&share)?;
        let share = vm::crash_share()?;
        let out = util::target_dir().join("crash").join(series);
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out)?;
        eprintln!("xtask test: crashing the {series} guest while it records");
        let rc = vm::run(&vm::RunOpts {
            series: series.to_string(),
            timeout: Some(Duration::from_secs(timeout)),
            cmd: vec![
                "sh".into(),
                "-c".into(),
                CRASH_SCRIPT.into(),
                "sh".into(),
                wqtrace.to_string_lossy().into_owned(),
                out.to_string_lossy().into_owned(),
            ],
            env: vec![],
            kernel_args: vec![],
        })?;
        // 125: no exit status, the machine went down under the script (what we want).
        if rc != 125 {
            bail!("the crash run on {series} ended with exit {rc} instead of a power-off");
        }
        for f in ["rec.wqt", "canary"] {
            let src = share.join(f);
            if src.exists() {
                std::fs::copy(&src, out.join(f))?;
            }
        }
    }
    Ok(())
}

/// The host tests that read what the guests wrote (their recordings), told which kernels ran.
fn after_vm_stage(targets: &[String]) -> anyhow::Result<()> {
    if targets.is_empty() {
        return Ok(());
    }
    let mut c = util::cargo();
    c.args(["test", "-p", "wqtrace"]);
    for n in targets {
        c.args(["--test", n]);
    }
    c.env("WQTRACE_CROSS_KERNELS", SERIES.join(","));
    util::run(&mut c)
}

fn vm_stage(timeout: u64, targets: &[String]) -> anyhow::Result<()> {
    let exes = build_vm_tests(targets)?;
    // One boot per test executable and kernel: a hang costs one executable's bound, not the
    // kernel's whole stage, and a text-patching oops reruns only the executable it hit. A boot
    // is a few seconds of the ~15 minutes one kernel's tests take under TCG.
    let mut failed = Vec::new();
    for series in SERIES {
        let t = Instant::now();
        eprintln!("xtask test: VM tests on the {series} kernel");
        for (name, exe) in &exes {
            let te = Instant::now();
            eprintln!("xtask test: {name} on {series}");
            let opts = vm::RunOpts {
                series: series.to_string(),
                timeout: Some(Duration::from_secs(timeout)),
                cmd: vec![
                    exe.to_string_lossy().into_owned(),
                    "--test-threads=1".to_string(),
                ],
                env: vec![("RUST_BACKTRACE".into(), "1".into())],
                kernel_args: vec![],
            };
            let (rc, _) = vm::run_once_more_after_patching_oops(&opts, "xtask test")?;
            eprintln!(
                "xtask test: {name} on {series}: exit {rc} after {:.0?}",
                te.elapsed()
            );
            if rc != 0 {
                failed.push(format!("{name} on {series} (exit {rc})"));
            }
        }
        eprintln!(
            "xtask test: VM tests on {series} done after {:.0?}",
            t.elapsed()
        );
    }
    if !failed.is_empty() {
        bail!("VM tests failed: {}", failed.join(", "));
    }
    Ok(())
}
