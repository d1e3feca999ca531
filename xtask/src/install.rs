//! `cargo xtask install` / `uninstall`: the release binary, its man pages and shell completions
//! under a prefix (default /usr/local), with a manifest of exactly what was put there.
//!
//! The files come from [`stage`], which `dist` uses too: one list of what wqtrace ships.

use std::{
    collections::BTreeSet,
    io::ErrorKind,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{setup, util};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to install: PREFIX/bin/wqtrace, PREFIX/share/man/man1, PREFIX/share/…/completions.
    #[arg(long, default_value = "/usr/local")]
    pub prefix: PathBuf,
    /// Skip `cargo xtask setup` (the toolchain is there already).
    #[arg(long)]
    pub no_setup: bool,
}

/// Relative to the prefix: the manifest of what `install` put there.
const MANIFEST: &str = "share/wqtrace/install-manifest";

/// One shipped file: where it comes from, where it goes (relative to a prefix), its mode.
#[derive(Debug, Clone)]
pub struct Item {
    pub src: PathBuf,
    pub dest: PathBuf,
    pub mode: u32,
}

/// Builds the release binary (setup first unless `no_setup`), writes its man pages and
/// completions, and returns every file wqtrace ships, laid out under a prefix.
pub fn stage(no_setup: bool) -> anyhow::Result<Vec<Item>> {
    if !no_setup {
        setup::setup()?;
    }
    eprintln!("xtask: building wqtrace (release; the first build takes a few minutes)");
    util::run(util::cargo().args(["build", "--release", "-p", "wqtrace"]))?;
    let bin = util::target_dir().join("release/wqtrace");
    let assets = util::target_dir().join("release/assets");
    let _ = std::fs::remove_dir_all(&assets);
    util::run(Command::new(&bin).arg("assets").arg("--out").arg(&assets))?;

    let mut items = vec![Item {
        src: bin,
        dest: "bin/wqtrace".into(),
        mode: 0o755,
    }];
    let mut pages: Vec<PathBuf> = std::fs::read_dir(assets.join("man1"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    pages.sort();
    for p in pages {
        let name = p.file_name().unwrap().to_owned();
        items.push(Item {
            src: p,
            dest: Path::new("share/man/man1").join(name),
            mode: 0o644,
        });
    }
    for (file, dest) in [
        ("wqtrace.bash", "share/bash-completion/completions/wqtrace"),
        ("_wqtrace", "share/zsh/site-functions/_wqtrace"),
        (
            "wqtrace.fish",
            "share/fish/vendor_completions.d/wqtrace.fish",
        ),
    ] {
        items.push(Item {
            src: assets.join("completions").join(file),
            dest: dest.into(),
            mode: 0o644,
        });
    }
    let root = util::root();
    for doc in [
        "README.md",
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "deploy/systemd/wqtrace-serve.service",
        "deploy/prometheus/scrape.yml",
        "deploy/prometheus/wqtrace-rules.yml",
        "deploy/grafana/wqtrace-dashboard.json",
    ] {
        items.push(Item {
            src: root.join(doc),
            dest: Path::new("share/doc/wqtrace").join(doc),
            mode: 0o644,
        });
    }
    Ok(items)
}

pub fn install(a: Args) -> anyhow::Result<()> {
    let prefix = absolute(&a.prefix)?;
    // Before a build of several minutes: can we write there at all?
    check_writable(&prefix)?;
    let items = stage(a.no_setup)?;
    let old = read_manifest(&prefix).unwrap_or_default();
    let mut changed = 0;
    for it in &items {
        let dest = prefix.join(&it.dest);
        if copy_if_changed(&it.src, &dest, it.mode)? {
            changed += 1;
        }
    }
    let new: BTreeSet<PathBuf> = items.iter().map(|i| i.dest.clone()).collect();
    // Files an earlier install put there and this one does not ship any more.
    for stale in old.difference(&new) {
        remove_file_if_present(&prefix.join(stale))?;
    }
    let manifest: String = new.iter().map(|p| format!("{}\n", p.display())).collect();
    let path = prefix.join(MANIFEST);
    if std::fs::read(&path).ok().as_deref() != Some(manifest.as_bytes()) {
        write_atomically(&path, manifest.as_bytes(), 0o644)?;
    }
    let bin = prefix.join("bin/wqtrace");
    let version = util::output_ok(Command::new(&bin).arg("--version"))
        .context("the installed binary does not run")?;
    eprintln!(
        "xtask: installed {} at {} ({} files, {changed} changed; `cargo xtask uninstall --prefix {}` removes them)",
        version.trim(),
        bin.display(),
        items.len(),
        prefix.display()
    );
    note_path(&bin);
    Ok(())
}

pub fn uninstall(a: Args) -> anyhow::Result<()> {
    let prefix = absolute(&a.prefix)?;
    let Some(files) = read_manifest(&prefix) else {
        bail!(
            "nothing to uninstall: no {} (only what `cargo xtask install --prefix {}` installed is removed)",
            prefix.join(MANIFEST).display(),
            prefix.display()
        );
    };
    for f in &files {
        remove_file_if_present(&prefix.join(f))?;
    }
    remove_file_if_present(&prefix.join(MANIFEST))?;
    // Directories only wqtrace uses, if now empty.
    for d in [
        "share/wqtrace",
        "share/doc/wqtrace/deploy/systemd",
        "share/doc/wqtrace/deploy/prometheus",
        "share/doc/wqtrace/deploy/grafana",
        "share/doc/wqtrace/deploy",
        "share/doc/wqtrace",
    ] {
        let _ = std::fs::remove_dir(prefix.join(d));
    }
    eprintln!(
        "xtask: removed {} files from {}",
        files.len(),
        prefix.display()
    );
    Ok(())
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

/// Fails in one line when PREFIX/bin cannot be created or written.
fn check_writable(prefix: &Path) -> anyhow::Result<()> {
    let bin = prefix.join("bin");
    let probe = bin.join(format!(".wqtrace-install-{}", std::process::id()));
    let res = std::fs::create_dir_all(&bin).and_then(|()| std::fs::write(&probe, b""));
    let _ = std::fs::remove_file(&probe);
    match res {
        Ok(()) => Ok(()),
        Err(e) => {
            let hint = if matches!(e.kind(), ErrorKind::PermissionDenied) && !util::is_root() {
                ": run it as root (sudo cargo xtask install) or pick a prefix you own (--prefix ~/.local)"
            } else {
                ""
            };
            bail!("cannot install into {}: {e}{hint}", prefix.display())
        }
    }
}

fn read_manifest(prefix: &Path) -> Option<BTreeSet<PathBuf>> {
    let text = std::fs::read_to_string(prefix.join(MANIFEST)).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.is_empty())
            // Only paths inside the prefix: a manifest is never a way to delete elsewhere.
            .filter(|l| !l.starts_with('/') && !l.split('/').any(|c| c == ".."))
            .map(PathBuf::from)
            .collect(),
    )
}

/// Copies unless the destination already has the same bytes and mode. Returns whether it did.
fn copy_if_changed(src: &Path, dest: &Path, mode: u32) -> anyhow::Result<bool> {
    let bytes = std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
    if let (Ok(old), Ok(meta)) = (std::fs::read(dest), std::fs::metadata(dest))
        && old == bytes
        && meta.permissions().mode() & 0o7777 == mode
    {
        return Ok(false);
    }
    write_atomically(dest, &bytes, mode)?;
    Ok(true)
}

/// Write beside, then rename: a running wqtrace keeps its old binary, and a failed copy
/// leaves the old file in place.
fn write_atomically(dest: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = dest.parent().unwrap();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        dest.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, dest).with_context(|| format!("installing {}", dest.display()))?;
    Ok(())
}

fn remove_file_if_present(p: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", p.display()))
        }
        _ => Ok(()),
    }
}

/// Says when `wqtrace` on PATH is not the one just installed (an older copy comes first, or
/// PREFIX/bin is not on PATH at all).
fn note_path(installed: &Path) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let first = std::env::split_paths(&path)
        .map(|d| d.join("wqtrace"))
        .find(|p| p.is_file());
    match first {
        Some(p) if same_file(&p, installed) => {}
        Some(p) => {
            let v = util::output_ok(Command::new(&p).arg("--version"))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| "version unknown".into());
            eprintln!(
                "xtask: note: {} ({v}) comes first on PATH; run {} or put {} first",
                p.display(),
                installed.display(),
                installed.parent().unwrap().display()
            );
        }
        None => eprintln!(
            "xtask: note: {} is not on PATH",
            installed.parent().unwrap().display()
        ),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}
