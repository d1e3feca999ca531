//! Small helpers: paths, running commands.

use std::path::PathBuf;
use std::process::{Command, ExitStatus};

use anyhow::{Context as _, bail};

/// The workspace root (the parent of this crate's manifest directory).
pub fn root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() { d } else { root().join(d) }
        }
        None => root().join("target"),
    }
}

/// `target/vm`, created.
pub fn vm_dir() -> anyhow::Result<PathBuf> {
    let d = target_dir().join("vm");
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    Ok(d)
}

pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn describe(c: &Command) -> String {
    let mut s = c.get_program().to_string_lossy().into_owned();
    for a in c.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a command with inherited stdio; fails unless it exits 0.
pub fn run(c: &mut Command) -> anyhow::Result<()> {
    let d = describe(c);
    eprintln!("xtask: $ {d}");
    let st = c.status().with_context(|| format!("spawning `{d}`"))?;
    if !st.success() {
        bail!("`{d}` failed ({st})");
    }
    Ok(())
}

/// Output of a command, or None if it could not run or failed.
pub fn output_ok(c: &mut Command) -> Option<String> {
    let o = c.output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

pub fn exit_code(st: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}

pub fn have_exe(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            let f = d.join(name);
            f.is_file()
        })
    })
}

/// POSIX shell single-quoting.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("target/debug/wqtrace"), "target/debug/wqtrace");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
