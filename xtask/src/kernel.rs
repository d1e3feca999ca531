//! `cargo xtask vm-kernel`: a small x86_64 guest kernel with WATCH_QUEUE, KPROBES, BPF, BTF and
//! 9p built in, from Debian's `linux-source-<series>` package and `vm/wqtrace.config`.
//!
//! Recipe: `make allnoconfig` (ARCH=x86_64, or the config is 32-bit), `kvm_guest.config`, then our
//! fragment; check that the options that matter landed; `make bzImage`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};

use crate::{setup, util};

/// Options that must be `=y` in the final .config.
pub const REQUIRED: &[&str] = &[
    "X86_64",
    "WATCH_QUEUE",
    "KEYS",
    "KEY_NOTIFICATIONS",
    "KPROBES",
    "BPF_SYSCALL",
    "BPF_EVENTS",
    "DEBUG_INFO_BTF",
    "NET_9P_VIRTIO",
    "9P_FS",
    "VIRTIO_PCI",
    "SERIAL_8250_CONSOLE",
];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kernel series: 6.12 (bookworm-security/updates) or 6.1 (bookworm).
    #[arg(long = "version", default_value = "6.12")]
    pub series: String,
    /// Rebuild from a freshly extracted source tree even when a kernel is cached.
    #[arg(long)]
    pub force: bool,
}

pub fn cached_path(series: &str) -> anyhow::Result<PathBuf> {
    Ok(util::vm_dir()?.join(format!("bzImage-{series}-wqtrace")))
}

pub fn check_series(series: &str) -> anyhow::Result<()> {
    match series {
        "6.12" | "6.1" => Ok(()),
        _ => bail!("unsupported kernel series {series:?} (use 6.12 or 6.1)"),
    }
}

pub fn run(args: Args) -> anyhow::Result<PathBuf> {
    build(&args.series, args.force)
}

fn find_deb(dir: &Path, series: &str) -> Option<PathBuf> {
    let prefix = format!("linux-source-{series}_");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
        .collect();
    debs.sort();
    debs.pop()
}

fn fetch_deb(src: &Path, series: &str) -> anyhow::Result<PathBuf> {
    let debdir = src.join("deb");
    std::fs::create_dir_all(&debdir)?;
    if let Some(d) = find_deb(&debdir, series) {
        eprintln!("vm-kernel: using {}", d.display());
        return Ok(d);
    }
    // Another checkout (or the shared recipe) may have downloaded it already.
    let shared =
        PathBuf::from(std::env::var_os("WQVM_SRC").unwrap_or_else(|| "/var/tmp/wqvm-src".into()))
            .join("deb");
    if let Some(d) = find_deb(&shared, series) {
        eprintln!("vm-kernel: using {}", d.display());
        return Ok(d);
    }
    let pkg = format!("linux-source-{series}");
    let dl = || {
        util::run(
            Command::new("apt-get")
                .args(["-q", "download", &pkg])
                .current_dir(&debdir),
        )
    };
    if dl().is_err() {
        util::run(Command::new("apt-get").args(["-q", "update"]))?;
        dl()?;
    }
    find_deb(&debdir, series).with_context(|| format!("apt-get download {pkg} left no .deb"))
}

pub fn build(series: &str, force: bool) -> anyhow::Result<PathBuf> {
    check_series(series)?;
    let out = cached_path(series)?;
    if out.is_file() && !force {
        eprintln!(
            "vm-kernel: {} exists (use --force to rebuild)",
            out.display()
        );
        return Ok(out);
    }
    let t0 = Instant::now();
    setup::apt_install(setup::KERNEL_BUILD_PACKAGES)?;
    let src = util::vm_dir()?.join("src");
    std::fs::create_dir_all(&src)?;
    let deb = fetch_deb(&src, series)?;
    let tree = src.join(format!("linux-source-{series}"));
    if force && tree.exists() {
        eprintln!("vm-kernel: removing {}", tree.display());
        std::fs::remove_dir_all(&tree)?;
    }
    if !tree.join("Makefile").is_file() {
        let pkgdir = src.join(format!("pkg-{series}"));
        if pkgdir.exists() {
            std::fs::remove_dir_all(&pkgdir)?;
        }
        util::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&pkgdir))?;
        let tarball = pkgdir.join(format!("usr/src/linux-source-{series}.tar.xz"));
        util::run(
            Command::new("tar")
                .arg("-C")
                .arg(&src)
                .arg("-xaf")
                .arg(&tarball),
        )?;
        std::fs::remove_dir_all(&pkgdir)?;
        eprintln!("vm-kernel: extracted in {:.0?}", t0.elapsed());
    }
    let fragment = util::root().join("vm/wqtrace.config");
    std::fs::copy(&fragment, tree.join("kernel/configs/wqtrace.config"))
        .with_context(|| format!("copying {}", fragment.display()))?;
    let make = |args: &[&str]| {
        util::run(
            Command::new("make")
                .arg("-s")
                .arg("ARCH=x86_64")
                .args(args)
                .current_dir(&tree),
        )
    };
    make(&["allnoconfig"])?;
    make(&["kvm_guest.config"])?;
    make(&["wqtrace.config"])?;
    let config = std::fs::read_to_string(tree.join(".config"))?;
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|o| !config.lines().any(|l| l == format!("CONFIG_{o}=y")))
        .collect();
    if !missing.is_empty() {
        bail!("kernel config: missing {}", missing.join(", "));
    }
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
    make(&[&format!("-j{jobs}"), "bzImage"])?;
    let tmp = out.with_extension("tmp");
    std::fs::copy(tree.join("arch/x86/boot/bzImage"), &tmp)?;
    std::fs::rename(&tmp, &out)?;
    std::fs::copy(
        tree.join(".config"),
        util::vm_dir()?.join(format!("config-{series}-wqtrace")),
    )?;
    eprintln!("vm-kernel: built {} in {:.0?}", out.display(), t0.elapsed());
    Ok(out)
}
