//! `cargo xtask install`, `uninstall` and `dist`, run for real: a release build (in a target
//! directory of their own, so the `cargo test` running them keeps its lock), files under a
//! scratch prefix, and the .deb installed with dpkg in a throwaway chroot (an overlay of this
//! machine's root in a private mount namespace) and removed again.

use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::Mutex,
};

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

/// One release build at a time (install and dist share it).
static BUILD: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn target() -> PathBuf {
    root().join("target/xtask-tests")
}

fn xtask(args: &[&str], path: Option<&str>) -> Output {
    let mut c = Command::new(XTASK);
    c.args(args)
        .current_dir(root())
        .env("CARGO_TARGET_DIR", target());
    if let Some(p) = path {
        c.env("PATH", p);
    }
    c.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wqtrace-xtask-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every file under `dir`: relative path → (size, mtime, inode).
fn tree(dir: &Path) -> BTreeMap<PathBuf, (u64, i64, u64)> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (u64, i64, u64)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(base).unwrap().to_path_buf(),
                    (m.len(), m.mtime_nsec() + m.mtime() * 1_000_000_000, m.ino()),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// install puts the binary, 10 man pages, 3 completions and the docs under the prefix, says
/// when an older wqtrace comes first on PATH, changes nothing when run again, and uninstall
/// removes exactly its files (the user's own files there stay).
#[test]
fn install_is_idempotent_and_uninstall_removes_exactly_what_it_installed() {
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("install");
    let prefix = dir.join("prefix");
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::create_dir_all(prefix.join("share/man/man1")).unwrap();
    std::fs::write(prefix.join("bin/mine"), "user's").unwrap();
    std::fs::write(prefix.join("share/man/man1/other.1"), "user's").unwrap();
    let old = dir.join("old");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(
        old.join("wqtrace"),
        "#!/bin/sh\necho 'wqtrace 0.0.1 (old)'\n",
    )
    .unwrap();
    std::fs::set_permissions(
        old.join("wqtrace"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!("{}:{}", old.display(), std::env::var("PATH").unwrap());
    let p = prefix.to_str().unwrap();

    let o = xtask(&["install", "--prefix", p, "--no-setup"], Some(&path));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!(
            "xtask: note: {}/wqtrace (wqtrace 0.0.1 (old)) comes first on PATH",
            old.display()
        )),
        "{err}"
    );
    let v = Command::new(prefix.join("bin/wqtrace"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(text(&v.stdout).starts_with("wqtrace 0.1.0 (git "), "{v:?}");
    let installed = tree(&prefix);
    let count = |under: &str| installed.keys().filter(|k| k.starts_with(under)).count();
    assert_eq!(
        count("share/man/man1"),
        11,
        "10 pages + the user's: {installed:?}"
    );
    assert_eq!(count("share/bash-completion/completions"), 1);
    assert_eq!(count("share/zsh/site-functions"), 1);
    assert_eq!(count("share/fish/vendor_completions.d"), 1);
    assert!(installed.contains_key(Path::new("share/doc/wqtrace/LICENSE-APACHE")));
    assert!(installed.contains_key(Path::new(
        "share/doc/wqtrace/deploy/systemd/wqtrace-serve.service"
    )));
    let mode = std::fs::metadata(prefix.join("bin/wqtrace"))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o777, 0o755);

    // Again: nothing rewritten (same inodes and times).
    let o = xtask(&["install", "--prefix", p, "--no-setup"], Some(&path));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains(" 0 changed;"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(tree(&prefix), installed, "a second install changed files");

    let o = xtask(&["uninstall", "--prefix", p], None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let left: Vec<PathBuf> = tree(&prefix).into_keys().collect();
    assert_eq!(
        left,
        [
            PathBuf::from("bin/mine"),
            PathBuf::from("share/man/man1/other.1")
        ],
        "uninstall left or took the wrong files"
    );
    let o = xtask(&["uninstall", "--prefix", p], None);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("xtask: nothing to uninstall: no "), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A prefix the user may not write: one line, before any build starts.
#[test]
fn installing_where_one_may_not_write_is_one_line() {
    let dir = scratch("denied");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", XTASK])
        .args(["install", "--no-setup", "--prefix"])
        .arg(dir.join("usr"))
        .current_dir("/")
        .env("CARGO_TARGET_DIR", target())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert_eq!(
        err,
        format!(
            "xtask: cannot install into {}/usr: Permission denied (os error 13): run it as root (sudo cargo xtask install) or pick a prefix you own (--prefix ~/.local)\n",
            dir.display()
        )
    );
    assert!(!dir.join("usr").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// dist: a tarball that runs where it is unpacked, and a .deb whose only dependencies are
/// glibc (its real minimum) and libgcc_s; dpkg installs it in a chroot, wqtrace runs there
/// (`--version`, `doctor`), and dpkg removes every file again.
#[test]
fn dist_tarball_runs_and_the_deb_installs_runs_and_goes_away() {
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let o = xtask(&["dist", "--no-setup"], None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let dist = target().join("dist");
    let tarball = dist.join("wqtrace-0.1.0-x86_64-linux.tar.gz");
    let deb = dist.join("wqtrace_0.1.0_amd64.deb");

    let list = Command::new("tar")
        .arg("tzf")
        .arg(&tarball)
        .output()
        .unwrap();
    let list = text(&list.stdout);
    for f in [
        "bin/wqtrace",
        "share/man/man1/wqtrace.1",
        "share/man/man1/wqtrace-record.1",
        "share/bash-completion/completions/wqtrace",
        "share/doc/wqtrace/README.md",
        "share/doc/wqtrace/LICENSE-MIT",
        "share/doc/wqtrace/LICENSE-APACHE",
    ] {
        assert!(
            list.lines()
                .any(|l| l == format!("wqtrace-0.1.0-x86_64-linux/{f}")),
            "{f} not in the tarball:\n{list}"
        );
    }
    let dir = scratch("dist");
    let st = Command::new("tar")
        .arg("xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let bin = dir.join("wqtrace-0.1.0-x86_64-linux/bin/wqtrace");
    let v = Command::new(&bin).arg("--version").output().unwrap();
    assert!(text(&v.stdout).starts_with("wqtrace 0.1.0 (git "));

    // The binary's libraries: glibc's and libgcc_s, nothing else.
    let ldd = text(&Command::new("ldd").arg(&bin).output().unwrap().stdout);
    for l in ldd.lines() {
        let lib = l.split_whitespace().next().unwrap_or("");
        assert!(
            lib.starts_with("linux-vdso")
                || lib.starts_with("/lib64/ld-linux")
                || ["libc.so.6", "libm.so.6", "libgcc_s.so.1"].contains(&lib),
            "unexpected runtime library {lib}:\n{ldd}"
        );
    }
    let depends = text(
        &Command::new("dpkg-deb")
            .args(["-f"])
            .arg(&deb)
            .arg("Depends")
            .output()
            .unwrap()
            .stdout,
    );
    let newest = text(
        &Command::new("objdump")
            .arg("-T")
            .arg(&bin)
            .output()
            .unwrap()
            .stdout,
    )
    .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
    .filter_map(|w| w.strip_prefix("GLIBC_"))
    .filter_map(|v| {
        v.split('.')
            .map(|n| n.parse::<u32>().ok())
            .collect::<Option<Vec<_>>>()
    })
    .max()
    .unwrap();
    let newest = newest
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".");
    assert_eq!(
        depends.trim(),
        format!("libc6 (>= {newest}), libgcc-s1"),
        "Depends"
    );

    // dpkg in a chroot: an overlay over / whose writes vanish with the mount namespace.
    let host_had = Path::new("/usr/bin/wqtrace").exists();
    let chroot = dir.join("chroot");
    std::fs::create_dir_all(&chroot).unwrap();
    let c = chroot.display();
    let script = format!(
        r#"set -e
mount -t tmpfs tmpfs {c}
mkdir {c}/u {c}/w {c}/m
mount -t overlay overlay -o lowerdir=/,upperdir={c}/u,workdir={c}/w {c}/m
mount --bind /proc {c}/m/proc
mount --rbind /sys {c}/m/sys
mount --rbind /dev {c}/m/dev
cp {deb} {c}/m/tmp/wqtrace.deb
ch() {{ chroot {c}/m "$@"; }}
ch test ! -e /usr/bin/wqtrace
ch dpkg -i /tmp/wqtrace.deb
ch wqtrace --version
ch test -f /usr/share/man/man1/wqtrace-serve.1.gz
ch test -f /usr/share/bash-completion/completions/wqtrace
ch wqtrace doctor --json > {c}/m/tmp/doctor.json
ch sh -c 'grep -q "\"can_run\": true" /tmp/doctor.json'
ch dpkg -r wqtrace
ch sh -c '! dpkg -L wqtrace 2>/dev/null'
ch test ! -e /usr/bin/wqtrace
ch test ! -e /usr/share/man/man1/wqtrace.1.gz
ch test ! -e /usr/share/doc/wqtrace
echo CHROOT-OK
"#,
        deb = deb.display()
    );
    let o = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .unwrap();
    let out = text(&o.stdout);
    assert!(
        o.status.success() && out.contains("CHROOT-OK"),
        "{out}{}",
        text(&o.stderr)
    );
    assert!(out.contains("wqtrace 0.1.0 (git "), "{out}");
    assert_eq!(
        Path::new("/usr/bin/wqtrace").exists(),
        host_had,
        "the chroot's dpkg touched this machine"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
