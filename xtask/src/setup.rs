//! `cargo xtask setup`: install what the build and the tests need; skip what is present.

use std::process::Command;

use anyhow::Context as _;

use crate::util;

/// Debian packages the VM (qemu, busybox), the tests (tmux, bpftool) and the benchmarks
/// (bpftrace, stress-ng) run; setup installs these and the kernel build tools below.
pub const APT_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "bpftrace",
    "bpftool",
    "stress-ng",
    // The operations tests: a real Prometheus scraping serve, promtool on rules and scrapes.
    "prometheus",
    // dist: objdump reads the binary's glibc symbol versions; the completions tests parse
    // the zsh and fish scripts.
    "binutils",
    "zsh",
    "fish",
    "tmux",
];

/// Only what building a kernel needs (`vm-kernel`).
pub const KERNEL_BUILD_PACKAGES: &[&str] = &[
    "flex",
    "bison",
    "dwarves",
    "bc",
    "libelf-dev",
    "libssl-dev",
    "cpio",
    "xz-utils",
    "make",
    "gcc",
];

pub fn setup() -> anyhow::Result<()> {
    apt_install(&[APT_PACKAGES, KERNEL_BUILD_PACKAGES].concat())?;
    rust_src()?;
    bpf_linker()?;
    // Perfetto export validation and Prometheus exposition parsing in tests.
    pip_package("perfetto", "perfetto")?;
    pip_package("prometheus_client", "prometheus-client")?;
    Ok(())
}

fn dpkg_installed(pkg: &str) -> bool {
    util::output_ok(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_some_and(|s| s.contains("install ok installed"))
}

fn sudo(prog: &str) -> Command {
    if util::is_root() {
        Command::new(prog)
    } else {
        let mut c = Command::new("sudo");
        c.arg(prog);
        c
    }
}

/// Installs the missing ones among `pkgs`; `apt-get update` only when something is missing.
pub fn apt_install(pkgs: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = pkgs
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        eprintln!("setup: apt packages present ({})", pkgs.join(" "));
        return Ok(());
    }
    eprintln!("setup: installing apt packages: {}", missing.join(" "));
    util::run(
        sudo("apt-get")
            .args(["-q", "update"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    // Install one by one when the batch fails, so a package missing from this Debian is a note,
    // not a failure of everything else.
    let batch = util::run(
        sudo("apt-get")
            .args(["-q", "install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
    if batch.is_err() {
        for p in &missing {
            if let Err(e) = util::run(
                sudo("apt-get")
                    .args(["-q", "install", "-y", "--no-install-recommends", p])
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            ) {
                eprintln!("setup: note: could not install {p}: {e:#}");
            }
        }
    }
    Ok(())
}

fn rust_src() -> anyhow::Result<()> {
    let installed = util::output_ok(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        "nightly",
    ]))
    .unwrap_or_default();
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("setup: rust-src (nightly) present");
        return Ok(());
    }
    eprintln!("setup: adding rust-src to the nightly toolchain");
    util::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))
}

fn bpf_linker() -> anyhow::Result<()> {
    if util::have_exe("bpf-linker") {
        eprintln!("setup: bpf-linker present");
        return Ok(());
    }
    eprintln!("setup: installing bpf-linker 0.10.4 (cargo +nightly install)");
    util::run(Command::new("cargo").args(["+nightly", "install", "bpf-linker@0.10.4", "--locked"]))
        .context("installing bpf-linker")
}

/// A PyPI package the tests use from python3 (`import MODULE`), installed when missing.
fn pip_package(module: &str, package: &str) -> anyhow::Result<()> {
    if util::output_ok(Command::new("python3").args(["-c", &format!("import {module}")])).is_some()
    {
        eprintln!("setup: python {package} present");
        return Ok(());
    }
    if util::output_ok(Command::new("python3").args(["-m", "pip", "--version"])).is_none() {
        apt_install(&["python3-pip"])?;
    }
    eprintln!("setup: pip install {package}");
    let mut c = Command::new("python3");
    c.args(["-m", "pip", "install", "-q", package]);
    if util::run(&mut c).is_err() {
        // Debian's own python refuses global installs (PEP 668) without this flag.
        util::run(Command::new("python3").args([
            "-m",
            "pip",
            "install",
            "-q",
            "--break-system-packages",
            package,
        ]))?;
    }
    Ok(())
}
