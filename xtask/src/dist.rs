//! `cargo xtask dist`: what to copy to another machine. target/dist/ gets
//! - `wqtrace-VERSION-x86_64-linux.tar.gz`: bin/wqtrace (the eBPF programs are inside it),
//!   share/ (man pages, completions, README, licences, deploy files), to unpack under a prefix;
//! - `wqtrace_VERSION_amd64.deb`: the same under /usr, for `dpkg -i`.
//!
//! The binary needs glibc (the minimum version is read from its symbol versions and written
//! into the package's Depends) and libgcc_s (Rust's unwinder), which every Debian and Ubuntu
//! base system has.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{install, util};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Skip `cargo xtask setup`.
    #[arg(long)]
    pub no_setup: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let items = install::stage(a.no_setup)?;
    let version = env!("CARGO_PKG_VERSION");
    let dist = util::target_dir().join("dist");
    let _ = std::fs::remove_dir_all(&dist);
    std::fs::create_dir_all(&dist)?;
    let glibc = min_glibc(&items[0].src)?;

    // The tarball: a prefix's worth of files under one top directory.
    let name = format!("wqtrace-{version}-x86_64-linux");
    let top = dist.join(&name);
    for it in &items {
        place(&it.src, &top.join(&it.dest), it.mode, false)?;
    }
    let tarball = dist.join(format!("{name}.tar.gz"));
    util::run(
        Command::new("tar")
            .args(["--owner=0", "--group=0", "--numeric-owner", "-czf"])
            .arg(&tarball)
            .arg("-C")
            .arg(&dist)
            .arg(&name),
    )?;

    // The package: under /usr, man pages compressed as Debian policy wants.
    let root = dist.join("deb");
    for it in &items {
        let is_man = it.dest.starts_with("share/man");
        let mut dest = Path::new("usr").join(&it.dest);
        if it.dest.starts_with("share/zsh/site-functions") {
            // Debian's zsh reads packaged completions from vendor-completions.
            dest = Path::new("usr/share/zsh/vendor-completions").join(it.dest.file_name().unwrap());
        }
        place(&it.src, &root.join(dest), it.mode, is_man)?;
    }
    let installed_kib = du_kib(&root.join("usr"))?;
    let control = format!(
        "Package: wqtrace\n\
         Version: {version}\n\
         Architecture: amd64\n\
         Maintainer: wqtrace developers <wqtrace@users.noreply.github.com>\n\
         Installed-Size: {installed_kib}\n\
         Depends: libc6 (>= {glibc}), libgcc-s1\n\
         Section: devel\n\
         Priority: optional\n\
         Homepage: https://github.com/wqtrace/wqtrace\n\
         Description: watch pipe rings and notification pipes live with eBPF\n \
         wqtrace shows kernel developers which ring slot each watch_queue notification\n \
         lands in, which posts are lost, which splices are refused, and who holds the\n \
         pipe mutex while the kernel writes the ring. It records sessions for replay,\n \
         reports and Perfetto timelines, and serves Prometheus metrics.\n"
    );
    std::fs::create_dir_all(root.join("DEBIAN"))?;
    std::fs::write(root.join("DEBIAN/control"), control)?;
    let deb = dist.join(format!("wqtrace_{version}_amd64.deb"));
    util::run(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&root)
            .arg(&deb),
    )?;
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&top);
    eprintln!(
        "xtask: {}\nxtask: {}\nxtask: runtime needs: glibc >= {glibc}, libgcc_s",
        tarball.display(),
        deb.display()
    );
    Ok(())
}

fn place(src: &Path, dest: &Path, mode: u32, gzip: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dest.parent().unwrap())?;
    let dest: PathBuf = if gzip {
        let out = Command::new("gzip")
            .args(["-9n", "-c"])
            .arg(src)
            .output()
            .context("gzip")?;
        if !out.status.success() {
            bail!("gzip {} failed", src.display());
        }
        let d = PathBuf::from(format!("{}.gz", dest.display()));
        std::fs::write(&d, out.stdout)?;
        d
    } else {
        std::fs::copy(src, dest).with_context(|| format!("copying {}", src.display()))?;
        dest.to_path_buf()
    };
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// The highest GLIBC_x.y symbol version the binary refers to: the oldest glibc it runs on.
pub fn min_glibc(bin: &Path) -> anyhow::Result<String> {
    let out = util::output_ok(Command::new("objdump").arg("-T").arg(bin))
        .context("objdump -T (binutils)")?;
    let mut versions: Vec<Vec<u32>> = out
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|v| v.split('.').map(|n| n.parse().ok()).collect())
        .collect();
    versions.sort();
    let max = versions.last().context("no GLIBC symbol versions")?;
    Ok(max
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join("."))
}

fn du_kib(dir: &Path) -> anyhow::Result<u64> {
    let out = util::output_ok(Command::new("du").args(["-sk"]).arg(dir)).context("du")?;
    Ok(out
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}
