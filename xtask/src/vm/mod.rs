//! `cargo xtask vm`: boot a watch_queue kernel under QEMU and run one command inside it.
//!
//! The guest: our busybox initramfs (`vm/init`) mounts the host root read-only over 9p, the
//! workspace read-write at the same path, and runs a script (written by us into target/vm/) in a
//! chroot of the host root. The script's exit status comes back as a `WQVM-EXIT=<rc>` line on the
//! serial console. qemu never outlives us: own process group + PDEATHSIG + a Drop guard + signal
//! handlers that kill it.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::{kernel, util};

mod initramfs;
pub use initramfs::initramfs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kernel series (6.12 or 6.1); see vm/README.md for where the kernel comes from.
    #[arg(long, default_value = "6.12")]
    pub kernel: String,
    /// Kill the guest after this many seconds (exit 124). 0: no limit.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// One more argument for the guest kernel's command line (repeatable), e.g. `idle=poll`.
    #[arg(long = "kernel-arg", value_name = "ARG")]
    pub kernel_args: Vec<String>,
    /// Command to run inside the guest (cwd = the workspace). Default: an interactive shell.
    #[arg(last = true)]
    pub cmd: Vec<String>,
}

pub struct RunOpts {
    pub series: String,
    pub timeout: Option<Duration>,
    pub cmd: Vec<String>,
    /// Extra environment for the command inside the guest.
    pub env: Vec<(String, String)>,
    /// More arguments for the guest kernel's command line.
    pub kernel_args: Vec<String>,
}

pub fn run_cli(a: Args) -> anyhow::Result<i32> {
    let cmd = if a.cmd.is_empty() {
        vec!["/bin/bash".to_string(), "-i".to_string()]
    } else {
        a.cmd
    };
    run(&RunOpts {
        series: a.kernel,
        timeout: (a.timeout > 0).then(|| Duration::from_secs(a.timeout)),
        cmd,
        env: vec![],
        kernel_args: a.kernel_args,
    })
}

// ---------------------------------------------------------------------------------------------
// Kernel lookup

/// `$WQTRACE_VM_KERNEL`, a prebuilt `../shared/vm/bzImage-<series>.*-wqtrace`, the cache in
/// `target/vm/`, else build it.
pub fn find_kernel(series: &str) -> anyhow::Result<PathBuf> {
    kernel::check_series(series)?;
    if let Some(k) = std::env::var_os("WQTRACE_VM_KERNEL") {
        let k = PathBuf::from(k);
        if !k.is_file() {
            bail!("WQTRACE_VM_KERNEL={} is not a file", k.display());
        }
        return Ok(k);
    }
    let shared = util::root().join("../shared/vm");
    if let Some(k) = prebuilt_in(&shared, series) {
        return Ok(k);
    }
    let cached = kernel::cached_path(series)?;
    if cached.is_file() {
        return Ok(cached);
    }
    eprintln!("vm: no {series} kernel found; building one (takes ~5-8 minutes on 2 cores)");
    kernel::build(series, false)
}

/// `bzImage-6.1.192-wqtrace` matches series 6.1; `bzImage-6.12.117-wqtrace` does not.
pub fn matches_series(file_name: &str, series: &str) -> bool {
    let Some(ver) = file_name
        .strip_prefix("bzImage-")
        .and_then(|r| r.strip_suffix("-wqtrace"))
    else {
        return false;
    };
    ver.strip_prefix(series)
        .and_then(|r| r.strip_prefix('.'))
        .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
}

fn prebuilt_in(dir: &Path, series: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| matches_series(n, series))
        })
        .collect();
    found.sort();
    found.pop()
}

// ---------------------------------------------------------------------------------------------
// Accelerator

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accel {
    Tcg,
    Kvm,
}

fn choose_accel(kernel: &Path, initrd: &Path) -> Accel {
    match std::env::var("WQTRACE_VM_ACCEL").as_deref() {
        Ok("kvm") => return Accel::Kvm,
        Ok("tcg") => return Accel::Tcg,
        _ => {}
    }
    // kvm-pvm (software nested virtualisation) hangs ordinary guest kernels right after boot.
    if Path::new("/sys/module/kvm_pvm").exists() {
        return Accel::Tcg;
    }
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return Accel::Tcg;
    }
    let Ok(dir) = util::vm_dir() else {
        return Accel::Tcg;
    };
    let cache = dir.join("kvm-probe");
    match std::fs::read_to_string(&cache).as_deref() {
        Ok("ok") => return Accel::Kvm,
        Ok("fail") => return Accel::Tcg,
        _ => {}
    }
    eprintln!("vm: probing KVM with a test boot");
    let probe = RunOpts {
        series: String::new(),
        timeout: Some(Duration::from_secs(45)),
        cmd: vec!["true".into()],
        env: vec![],
        kernel_args: vec![],
    };
    let ok = matches!(boot(kernel, initrd, Accel::Kvm, &probe, true), Ok(0));
    let _ = std::fs::write(&cache, if ok { "ok" } else { "fail" });
    eprintln!(
        "vm: KVM {}",
        if ok {
            "works"
        } else {
            "does not work: using TCG"
        }
    );
    if ok { Accel::Kvm } else { Accel::Tcg }
}

// ---------------------------------------------------------------------------------------------
// Running qemu

static QEMU_PID: AtomicI32 = AtomicI32::new(0);
static QEMU_OWN_PGRP: AtomicBool = AtomicBool::new(false);
static HAVE_TERMIOS: AtomicBool = AtomicBool::new(false);
static mut SAVED_TERMIOS: std::mem::MaybeUninit<libc::termios> = std::mem::MaybeUninit::uninit();

/// Kills qemu; returns its pid if it was still registered.
fn kill_qemu_raw() -> Option<i32> {
    let pid = QEMU_PID.swap(0, Ordering::SeqCst);
    if pid <= 0 {
        return None;
    }
    let target = if QEMU_OWN_PGRP.load(Ordering::SeqCst) {
        -pid
    } else {
        pid
    };
    // SAFETY: kill is async-signal-safe.
    unsafe { libc::kill(target, libc::SIGKILL) };
    Some(pid)
}

extern "C" fn on_signal(sig: libc::c_int) {
    if let Some(pid) = kill_qemu_raw() {
        // SAFETY: waitpid is async-signal-safe; reaping leaves no zombie behind either.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    }
    if HAVE_TERMIOS.load(Ordering::SeqCst) {
        // SAFETY: written once before the flag was set; tcsetattr is async-signal-safe.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, (&raw const SAVED_TERMIOS).cast());
        }
    }
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(128 + sig) };
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: installing a handler that only calls async-signal-safe functions.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

fn save_termios() {
    // SAFETY: tcgetattr writes a termios; we publish it only after success, before any handler reads.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut t) == 0 {
            (&raw mut SAVED_TERMIOS).write(std::mem::MaybeUninit::new(t));
            HAVE_TERMIOS.store(true, Ordering::SeqCst);
        }
    }
}

/// Kills qemu (its whole process group) and reaps it, whatever way we leave.
struct QemuGuard {
    child: Child,
}

impl Drop for QemuGuard {
    fn drop(&mut self) {
        kill_qemu_raw();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_tty(fd: i32) -> bool {
    // SAFETY: isatty has no preconditions.
    unsafe { libc::isatty(fd) == 1 }
}

fn term_size() -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ fills a winsize.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_row > 0)
            .then_some((ws.ws_row, ws.ws_col))
    }
}

/// Boots the guest with the command; returns the command's exit status.
/// target/vm/crash-share, created: the guest's `crash` 9p share.
pub fn crash_share() -> anyhow::Result<PathBuf> {
    let d = util::vm_dir()?.join("crash-share");
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

pub fn run(opts: &RunOpts) -> anyhow::Result<i32> {
    let kernel = find_kernel(&opts.series)?;
    let initrd = initramfs()?;
    let accel = choose_accel(&kernel, &initrd);
    eprintln!(
        "vm: kernel {} ({}), initramfs {}",
        kernel.display(),
        if accel == Accel::Kvm { "kvm" } else { "tcg" },
        initrd.display()
    );
    let rc = boot(&kernel, &initrd, accel, opts, false)?;
    if rc != NEVER_UP {
        return Ok(rc);
    }
    let dir = util::vm_dir()?;
    std::fs::copy(dir.join("last-boot.log"), dir.join("last-boot-hung.log"))?;
    eprintln!(
        "vm: the {} guest's init never started within {:.0?} (a hang at boot under TCG, not \
         the command's doing; its log is kept as target/vm/last-boot-hung.log); booting it \
         once more",
        opts.series, BOOT_BOUND
    );
    boot(&kernel, &initrd, accel, opts, false)
}

/// How long a guest may take to start its init (`WQVM: up`, ~2 s of guest uptime under TCG).
/// Now and then a TCG guest hangs before that with nothing on its console (seen once in the
/// crash stage: 1200 s of silence); it is killed at this bound and booted once more.
const BOOT_BOUND: Duration = Duration::from_secs(300);

/// What [`boot`] returns when the guest's init never started.
const NEVER_UP: i32 = 126;

fn write_script(opts: &RunOpts, interactive: bool) -> anyhow::Result<PathBuf> {
    let root = util::root();
    let mut s = String::from("#!/bin/sh\n# written by `cargo xtask vm`\n");
    let term = if interactive {
        std::env::var("TERM").unwrap_or_else(|_| "xterm-256color".into())
    } else {
        "dumb".into()
    };
    s += &format!("export TERM={}\n", util::shell_quote(&term));
    s += "export WQTRACE_IN_VM=1\n";
    for k in ["RUST_LOG", "RUST_BACKTRACE"] {
        if let Ok(v) = std::env::var(k) {
            s += &format!("export {k}={}\n", util::shell_quote(&v));
        }
    }
    for (k, v) in &opts.env {
        s += &format!("export {k}={}\n", util::shell_quote(v));
    }
    if interactive {
        if let Some((r, c)) = term_size() {
            s += &format!("stty rows {r} cols {c} 2>/dev/null\n");
        }
    } else {
        // No \r\n translation: the output is read by programs.
        s += "stty -onlcr 2>/dev/null\n";
    }
    s += &format!(
        "cd {} || exit 125\n",
        util::shell_quote(&root.to_string_lossy())
    );
    let cmd: Vec<String> = opts.cmd.iter().map(|a| util::shell_quote(a)).collect();
    s += &format!("{}\nrc=$?\n", cmd.join(" "));
    // This shell may lead the session of the serial tty (interactive): when it exits, the kernel
    // hangs the tty up and drops unsent output. stty sets modes with TCSADRAIN: wait for it.
    s += "stty echo 2>/dev/null\nexit $rc\n";
    let path = util::vm_dir()?.join(format!("run-{}.sh", std::process::id()));
    std::fs::write(&path, s)?;
    Ok(path)
}

/// Parses the exit status out of a console line.
pub fn parse_exit_marker(line: &str) -> Option<i32> {
    let i = line.find("WQVM-EXIT=")?;
    let digits: String = line[i + "WQVM-EXIT=".len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

// Long on purpose: QEMU's command line, then the console pump and the exit protocol, in order.
fn boot(
    kernel: &Path,
    initrd: &Path,
    accel: Accel,
    opts: &RunOpts,
    quiet: bool,
) -> anyhow::Result<i32> {
    let root = util::root();
    let root_s = root.to_string_lossy().into_owned();
    if root_s.contains(char::is_whitespace) {
        bail!(
            "the workspace path {root_s:?} contains whitespace: the kernel command line cannot carry it"
        );
    }
    if let Some(a) = opts
        .kernel_args
        .iter()
        .find(|a| a.is_empty() || a.contains(char::is_whitespace))
    {
        bail!("kernel argument {a:?}: one word each, without whitespace");
    }
    let interactive = !quiet && is_tty(0) && is_tty(1);
    let script = write_script(opts, interactive)?;
    let dir = util::vm_dir()?;
    let log_path = dir.join("last-boot.log");
    let dmesg_path = dir.join("last-dmesg.log");
    let mut log = File::create(&log_path)?;

    let mut c = Command::new("qemu-system-x86_64");
    match accel {
        Accel::Kvm => c.args(["-enable-kvm", "-cpu", "host"]),
        Accel::Tcg => c.args(["-accel", "tcg,thread=multi", "-cpu", "max"]),
    };
    c.args(["-m", "3G", "-smp", "2", "-no-reboot", "-nic", "none"]);
    c.args(["-display", "none", "-monitor", "none"]);
    c.args([
        "-chardev",
        "stdio,id=s0,signal=off",
        "-serial",
        "chardev:s0",
    ]);
    c.arg("-serial")
        .arg(format!("file:{}", dmesg_path.display()));
    c.arg("-kernel").arg(kernel).arg("-initrd").arg(initrd);
    c.arg("-append").arg(format!(
        "console=ttyS0 quiet loglevel=3 panic=-1 wq.work={root_s} wq.run={} wq.tty={}{}",
        script.display(),
        u8::from(interactive),
        opts.kernel_args
            .iter()
            .map(|a| format!(" {a}"))
            .collect::<String>()
    ));
    c.args([
        "-virtfs",
        "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap",
    ]);
    c.arg("-virtfs").arg(format!(
        "local,path={root_s},mount_tag=work,security_model=none,multidevs=remap"
    ));
    // For the machine-crash test: a share the guest mounts with cache=loose, so what was not
    // fsynced is lost when it powers off without syncing (the work share writes through).
    let crash = crash_share()?;
    c.arg("-virtfs").arg(format!(
        "local,path={},mount_tag=crash,security_model=none,multidevs=remap",
        crash.display()
    ));

    let (mut rd, wr) = std::io::pipe()?;
    c.stdout(wr.try_clone()?).stderr(wr);
    c.stdin(if interactive {
        Stdio::inherit()
    } else {
        Stdio::null()
    });
    let own_pgrp = !interactive;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            if own_pgrp {
                libc::setpgid(0, 0);
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    if interactive {
        save_termios();
    }
    install_signal_handlers();
    let child = c
        .spawn()
        .context("spawning qemu-system-x86_64 (run `cargo xtask setup`)")?;
    drop(c); // closes our copies of the pipe's write end
    QEMU_OWN_PGRP.store(own_pgrp, Ordering::SeqCst);
    QEMU_PID.store(child.id() as i32, Ordering::SeqCst);
    let mut guard = QemuGuard { child };
    let t0 = Instant::now();

    let exit: Arc<Mutex<Option<i32>>> = Arc::new(Mutex::new(None));
    let exit2 = exit.clone();
    let up = Arc::new(AtomicBool::new(false));
    let up2 = up.clone();
    let fwd = std::thread::spawn(move || {
        let mut out = std::io::stdout();
        let mut line: Vec<u8> = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = match rd.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let _ = log.write_all(&buf[..n]);
            for &b in &buf[..n] {
                if interactive && !quiet {
                    // raw: a TUI draws with escape sequences and no newlines
                    let _ = out.write_all(&[b]);
                }
                if b == b'\n' {
                    let s = String::from_utf8_lossy(&line);
                    let s = s.trim_end_matches('\r');
                    if let Some(rc) = parse_exit_marker(s) {
                        *exit2.lock().unwrap() = Some(rc);
                    }
                    if s.contains("WQVM: up ") {
                        up2.store(true, Ordering::Relaxed);
                    }
                    if !interactive && !quiet {
                        let _ = writeln!(out, "{s}");
                    }
                    line.clear();
                } else {
                    line.push(b);
                }
            }
            if interactive {
                let _ = out.flush();
            }
        }
        if !line.is_empty() && !interactive && !quiet {
            let _ = writeln!(out, "{}", String::from_utf8_lossy(&line));
        }
        let _ = out.flush();
    });

    let mut timed_out = false;
    let mut never_up = false;
    loop {
        if guard.child.try_wait()?.is_some() {
            break;
        }
        if opts.timeout.is_some_and(|t| t0.elapsed() > t) {
            timed_out = true;
            break;
        }
        if !up.load(Ordering::Relaxed) && t0.elapsed() > BOOT_BOUND {
            never_up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(guard); // kills (if still running) and reaps
    let _ = fwd.join();
    let _ = std::fs::remove_file(&script);
    let elapsed = t0.elapsed();
    if never_up {
        eprintln!(
            "vm: the guest printed no `WQVM: up` in {:.0?}; qemu killed (log: {})",
            elapsed,
            log_path.display()
        );
        return Ok(NEVER_UP);
    }
    if timed_out {
        eprintln!(
            "vm: timed out after {:.0?}; qemu killed (log: {})",
            elapsed,
            log_path.display()
        );
        return Ok(124);
    }
    let rc = *exit.lock().unwrap();
    match rc {
        Some(rc) => {
            if !quiet {
                eprintln!("vm: exit {rc} after {:.1}s", elapsed.as_secs_f64());
            }
            Ok(rc)
        }
        None => {
            eprintln!(
                "vm: the guest never reported an exit status (see {} and {})",
                log_path.display(),
                dmesg_path.display()
            );
            Ok(NO_EXIT_STATUS)
        }
    }
}

/// What [`run`] returns when the guest never said how its command ended (it crashed, or
/// powered off first).
pub const NO_EXIT_STATUS: i32 = 125;

/// [`run`], and once more from a fresh boot if the guest died of the trap vm/README.md
/// describes under "Known: live kernel patching can oops the TCG guest": QEMU TCG gets the
/// kernel's own text patching wrong now and then, which is neither a test failure nor a
/// measurement. Said loudly (`who` names the caller and what runs again), the first log kept
/// as last-boot-oops.log; a second death is returned like any status. Returns the last status
/// and the number of boots.
pub fn run_once_more_after_patching_oops(opts: &RunOpts, who: &str) -> anyhow::Result<(i32, u32)> {
    let rc = run(opts)?;
    if rc != NO_EXIT_STATUS || !guest_died_patching_text()? {
        return Ok((rc, 1));
    }
    eprintln!(
        "{who}: the {} guest oopsed while kernel text was being patched (TCG, see \
         vm/README.md); its log is kept as target/vm/last-boot-oops.log; booting it once more",
        opts.series
    );
    Ok((run(opts)?, 2))
}

/// Whether the last guest died of the text-patching trap (its log is then kept as
/// last-boot-oops.log).
fn guest_died_patching_text() -> anyhow::Result<bool> {
    let dir = util::vm_dir()?;
    let log = std::fs::read_to_string(dir.join("last-boot.log")).unwrap_or_default();
    let died = text_patching_oops(&log);
    if died {
        std::fs::copy(dir.join("last-boot.log"), dir.join("last-boot-oops.log"))?;
    }
    Ok(died)
}

/// An int3 the kernel did not expect, or a jump to address 0, in kernel mode: what a vCPU
/// running stale code from before a `text_poke_bp` produces.
fn text_patching_oops(log: &str) -> bool {
    log.lines().any(|l| {
        let l = l.trim_end();
        l.contains("Oops: int3") || l.ends_with("RIP: 0010:0x0")
    })
}

#[cfg(test)]
mod tests {
    use super::initramfs::Cpio;
    use super::*;

    #[test]
    fn a_text_patching_oops_is_told_from_a_test_failure() {
        let int3 = "test recording_of_mixed_reports_the_workloads_counts ... Oops: int3: 0000 [#1] SMP\n\
                    RIP: 0010:syscall_exit_work+0x8c/0xd0\n";
        assert!(text_patching_oops(int3));
        assert!(text_patching_oops("[   12.5] RIP: 0010:0x0\n"));
        let failed = "thread 'x' panicked at wqtrace/tests/vm_record.rs:10:5\nWQVM-EXIT=101\n";
        assert!(!text_patching_oops(failed));
        assert!(!text_patching_oops("RIP: 0010:0x0000000000401000\n"));
    }

    #[test]
    fn series_matching() {
        assert!(matches_series("bzImage-6.12.117-wqtrace", "6.12"));
        assert!(matches_series("bzImage-6.1.192-wqtrace", "6.1"));
        assert!(!matches_series("bzImage-6.12.117-wqtrace", "6.1"));
        assert!(!matches_series("bzImage-6.1.192-wqtrace", "6.12"));
        assert!(!matches_series("config-6.1.192-wqtrace", "6.1"));
        assert!(!matches_series("bzImage-6.1-wqtrace", "6.1"));
    }

    #[test]
    fn exit_marker() {
        assert_eq!(parse_exit_marker("WQVM-EXIT=0"), Some(0));
        assert_eq!(parse_exit_marker("[  1.2] x WQVM-EXIT=101\r"), Some(101));
        assert_eq!(parse_exit_marker("WQVM: up 1.3s"), None);
    }

    #[test]
    fn cpio_layout() {
        let mut c = Cpio::default();
        c.file("init", 0o755, b"#!/bin/sh\n");
        let b = c.finish();
        assert!(b.starts_with(b"070701"));
        assert_eq!(b.len() % 4, 0);
        // header (110) + "init\0" padded to 116, then data padded to 12
        assert_eq!(&b[110..115], b"init\0");
        assert_eq!(&b[116..126], b"#!/bin/sh\n");
        assert!(b.windows(10).any(|w| w == b"TRAILER!!!"));
    }
}
