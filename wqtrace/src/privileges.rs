//! Can this process load and attach BPF programs? Checked up front so the user gets one line
//! ("run with sudo") instead of an errno from deep inside the loader.

use anyhow::{Result, bail};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capability bits of this process (from /proc/self/status).
pub fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Privileges {
    Root,
    Capabilities,
    Missing(String),
}

pub fn check() -> Privileges {
    let caps = effective_caps();
    let has = |c: u32| caps & (1u64 << c) != 0;
    if unsafe { libc::geteuid() } == 0 && has(CAP_SYS_ADMIN) {
        return Privileges::Root;
    }
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Privileges::Capabilities;
    }
    let mut missing = vec![];
    if !has(CAP_BPF) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) {
        missing.push("CAP_PERFMON");
    }
    Privileges::Missing(format!(
        "run with sudo (or grant {}): loading BPF programs needs privileges",
        missing.join("+")
    ))
}

/// Fails with the one-line reason when privileges are missing.
pub fn require() -> Result<()> {
    match check() {
        Privileges::Missing(why) => bail!("{why}"),
        _ => Ok(()),
    }
}

/// Who a live session runs as once its probes are attached.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DropOpts {
    /// After attaching, run as USER (name or uid) instead of the user who ran sudo; `-- CMD`
    /// runs as USER too, and output files are handed to USER.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Keep root for the whole session (`-- CMD` then runs as root too).
    #[arg(long, conflicts_with = "user")]
    pub keep_root: bool,
}

/// A user to become: uid, primary gid and (when it has a passwd entry) the name, for its
/// supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub name: Option<String>,
}

impl User {
    pub fn describe(&self) -> String {
        match &self.name {
            Some(n) => format!("{} (uid {})", crate::text::escape(n.as_bytes()), self.uid),
            None => format!("uid {}", self.uid),
        }
    }
}

/// What happens to root's privileges once the probes are attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropPlan {
    /// Become this user, with no capabilities left.
    To(User),
    /// Stay as we are (nobody to become), and why.
    Keep(String),
    /// Not root but holding capabilities (a service granted CAP_BPF, CAP_PERFMON…): give every
    /// capability up, staying this user.
    Capabilities,
    /// A drop was asked for (sudo or --user) and cannot be done here: why (said on stderr).
    Refused(String),
}

/// The user a session belongs to: `--user`, else the one who ran sudo (SUDO_UID), else none.
/// Output files are handed to this user.
pub fn session_user(opts: &DropOpts) -> Result<Option<User>> {
    if opts.keep_root {
        return Ok(None);
    }
    if let Some(u) = &opts.user {
        return lookup(u).map(Some);
    }
    let Some(uid) = std::env::var("SUDO_UID")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    else {
        return Ok(None);
    };
    let gid = std::env::var("SUDO_GID")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(uid);
    let name = passwd_by_uid(uid).map(|p| p.name);
    Ok(Some(User { uid, gid, name }))
}

/// Whether and to whom this session drops its privileges, and if not, why not.
pub fn drop_plan(opts: &DropOpts) -> Result<DropPlan> {
    if opts.keep_root {
        return Ok(DropPlan::Keep("--keep-root".into()));
    }
    if unsafe { libc::geteuid() } != 0 {
        if let Some(why) = unprivileged_bpf_blocked() {
            return Ok(DropPlan::Keep(why));
        }
        if opts.user.is_some() {
            bail!(
                "--user needs root: this process only holds capabilities (it gives those up once attached)"
            );
        }
        return Ok(DropPlan::Capabilities);
    }
    Ok(match session_user(opts)? {
        None => DropPlan::Keep(
            "run as root without sudo: pass --user NAME to drop privileges after attaching".into(),
        ),
        Some(u) if u.uid == 0 => DropPlan::Keep("the invoking user is root".into()),
        Some(u) => match unprivileged_bpf_blocked() {
            None => DropPlan::To(u),
            Some(why) => DropPlan::Refused(why),
        },
    })
}

/// Before 5.19 `kernel.unprivileged_bpf_disabled` refused every bpf() command to processes
/// without CAP_BPF, reads of maps we already hold included (the loss counters).
fn unprivileged_bpf_blocked() -> Option<String> {
    let (major, minor) = crate::kernel::version();
    if (major, minor) >= (5, 19) {
        return None;
    }
    let v = std::fs::read_to_string("/proc/sys/kernel/unprivileged_bpf_disabled").ok()?;
    (v.trim() != "0").then(|| {
        format!(
            "kernel {major}.{minor} < 5.19 with kernel.unprivileged_bpf_disabled={}: an unprivileged process cannot read the loss counters",
            v.trim()
        )
    })
}

/// Becomes `user` for good: its groups, gid and uid (real, effective and saved), which empties
/// every capability set. glibc applies each id change to every thread of the process (the
/// ring buffer's drain thread, serve's runtime). Fails unless every thread ends up with that
/// uid and no capabilities.
pub fn become_user(user: &User) -> Result<()> {
    use anyhow::Context as _;
    let groups_set = match &user.name {
        Some(n) => {
            let c = std::ffi::CString::new(n.as_str()).context("user name with a NUL byte")?;
            unsafe { libc::initgroups(c.as_ptr(), user.gid) }
        }
        None => unsafe { libc::setgroups(1, &user.gid) },
    };
    if groups_set != 0 {
        return Err(std::io::Error::last_os_error()).context("setting the user's groups");
    }
    if unsafe { libc::setresgid(user.gid, user.gid, user.gid) } != 0 {
        return Err(std::io::Error::last_os_error()).context("setresgid");
    }
    if unsafe { libc::setresuid(user.uid, user.uid, user.uid) } != 0 {
        return Err(std::io::Error::last_os_error()).context("setresuid");
    }
    // Not ptrace-able by the user's other processes: they would inherit our BPF fds' reach.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0) };
    verify_no_capabilities(Some(user.uid))
}

/// Gives up every capability this thread holds (effective, permitted, inheritable, hence
/// ambient) and forbids regaining any through exec (no_new_privs). Capabilities are per
/// thread: threads started later inherit the empty sets, earlier ones keep theirs (which
/// [`verify_no_capabilities`] catches).
pub fn drop_capabilities() -> Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let hdr = Header {
        version: VERSION_3,
        pid: 0,
    };
    let data = [Data::default(); 2];
    if unsafe { libc::syscall(libc::SYS_capset, &hdr, data.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    verify_no_capabilities(None)
}

/// Fails unless every thread of this process holds no capability (and, given, has `uid`).
pub fn verify_no_capabilities(uid: Option<u32>) -> Result<()> {
    for (tid, status) in thread_statuses() {
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let uids = field("Uid:");
        let caps = [field("CapEff:"), field("CapPrm:"), field("CapAmb:")].concat();
        if uid.is_some_and(|uid| uids.iter().any(|u| *u != uid.to_string()))
            || caps.iter().any(|c| u64::from_str_radix(c, 16) != Ok(0))
        {
            bail!("privileges not dropped in thread {tid}: Uid {uids:?}, capabilities {caps:?}");
        }
    }
    Ok(())
}

fn thread_statuses() -> Vec<(String, String)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return vec![];
    };
    dir.filter_map(|d| {
        let d = d.ok()?;
        let s = std::fs::read_to_string(d.path().join("status")).ok()?;
        Some((d.file_name().to_string_lossy().into_owned(), s))
    })
    .collect()
}

struct Passwd {
    name: String,
    uid: u32,
    gid: u32,
}

/// `NAME` or a numeric uid (one without a passwd entry keeps gid = uid).
fn lookup(user: &str) -> Result<User> {
    if let Some(p) = passwd_by_name(user) {
        return Ok(User {
            uid: p.uid,
            gid: p.gid,
            name: Some(p.name),
        });
    }
    match user.parse::<u32>() {
        Ok(uid) => Ok(match passwd_by_uid(uid) {
            Some(p) => User {
                uid,
                gid: p.gid,
                name: Some(p.name),
            },
            None => User {
                uid,
                gid: uid,
                name: None,
            },
        }),
        Err(_) => bail!(
            "--user {}: no such user",
            crate::text::escape(user.as_bytes())
        ),
    }
}

fn passwd_by_name(name: &str) -> Option<Passwd> {
    let c = std::ffi::CString::new(name).ok()?;
    passwd(|pw, buf, res| unsafe {
        libc::getpwnam_r(c.as_ptr(), pw, buf.as_mut_ptr(), buf.len(), res)
    })
}

fn passwd_by_uid(uid: u32) -> Option<Passwd> {
    passwd(|pw, buf, res| unsafe { libc::getpwuid_r(uid, pw, buf.as_mut_ptr(), buf.len(), res) })
}

fn passwd(
    call: impl Fn(*mut libc::passwd, &mut [libc::c_char], *mut *mut libc::passwd) -> libc::c_int,
) -> Option<Passwd> {
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut res = std::ptr::null_mut();
    if call(&mut pw, &mut buf, &mut res) != 0 || res.is_null() {
        return None;
    }
    let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) }
        .to_string_lossy()
        .into_owned();
    Some(Passwd {
        name,
        uid: pw.pw_uid,
        gid: pw.pw_gid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_found_by_name_or_uid() {
        let root = lookup("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(lookup("0").unwrap().name.as_deref(), Some("root"));
        let bare = lookup("4000000").unwrap();
        assert_eq!((bare.uid, bare.gid, bare.name), (4000000, 4000000, None));
        let err = lookup("no-such-user-\x1b").unwrap_err().to_string();
        assert_eq!(err, r"--user no-such-user-\x1b: no such user");
    }

    #[test]
    fn keep_root_keeps_root() {
        let opts = DropOpts {
            keep_root: true,
            ..Default::default()
        };
        assert_eq!(session_user(&opts).unwrap(), None);
        assert!(matches!(drop_plan(&opts).unwrap(), DropPlan::Keep(w) if w == "--keep-root"));
    }
}
