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
    /// Per-kernel timeout of the VM stage, seconds.
    #[arg(long, default_value_t = 600)]
    pub vm_timeout: u64,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let t0 = Instant::now();
    if !a.no_setup {
        setup::setup()?;
    }
    if !a.vm_only {
        util::run(util::cargo().args(["fmt", "--all", "--check"]))?;
        util::run(util::cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))?;
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
        eprintln!("xtask test: host stage done after {:.0?}", t0.elapsed());
    }
    if !a.no_vm {
        vm_stage(a.vm_timeout)?;
    }
    eprintln!("xtask test: all stages passed in {:.0?}", t0.elapsed());
    Ok(())
}

/// Builds `wqtrace/tests/vm.rs` (declared `test = false`) and returns its executable.
fn build_vm_tests() -> anyhow::Result<std::path::PathBuf> {
    let mut c = util::cargo();
    c.args([
        "test",
        "-p",
        "wqtrace",
        "--test",
        "vm",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    c.stderr(std::process::Stdio::inherit());
    eprintln!("xtask: $ {}", util::describe(&c));
    let out = c.output().context("cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the VM tests failed ({})", out.status);
    }
    let mut exe = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] == "compiler-artifact"
            && v["target"]["name"] == "vm"
            && v["profile"]["test"] == true
            && let Some(e) = v["executable"].as_str()
        {
            exe = Some(std::path::PathBuf::from(e));
        }
    }
    exe.context("cargo did not report the `vm` test executable")
}

fn vm_stage(timeout: u64) -> anyhow::Result<()> {
    let exe = build_vm_tests()?;
    let mut failed = Vec::new();
    for series in SERIES {
        let t = Instant::now();
        eprintln!(
            "xtask test: VM tests on the {series} kernel: {}",
            exe.display()
        );
        let rc = vm::run(&vm::RunOpts {
            series: series.to_string(),
            timeout: Some(Duration::from_secs(timeout)),
            cmd: vec![
                exe.to_string_lossy().into_owned(),
                "--test-threads=1".into(),
            ],
            env: vec![("RUST_BACKTRACE".into(), "1".into())],
        })?;
        eprintln!(
            "xtask test: VM tests on {series}: exit {rc} after {:.0?}",
            t.elapsed()
        );
        if rc != 0 {
            failed.push(format!("{series} (exit {rc})"));
        }
    }
    if !failed.is_empty() {
        bail!("VM tests failed on: {}", failed.join(", "));
    }
    Ok(())
}
