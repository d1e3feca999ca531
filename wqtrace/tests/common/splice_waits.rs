//! Waits of splice and tee on their pipes, as the user would check them (host and VM tests).

use std::time::{Duration, Instant};

use super::{Tracer, has_flag, kind, u};

fn frames(e: &serde_json::Value, k: &str) -> Vec<String> {
    e[k].as_array()
        .map(|a| a.iter().map(|f| f.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// A sleep of a blocked call: its wchan, and what ends it.
type Phase<'a> = (&'a str, Box<dyn FnOnce() + 'a>);

/// Runs `call` in a thread of its own, whose syscall `nr` must sleep in each of `phases` in
/// turn (in the kernel function its wchan names, "" for any) until that phase's wake-up ends
/// the sleep, timed from both sides: (thread id, how long the test saw it asleep in each phase
/// before waking it, the call's whole length, its result).
fn blocked_call(
    nr: libc::c_long,
    call: impl FnOnce() -> isize + Send + 'static,
    phases: Vec<Phase<'_>>,
) -> (u32, Vec<Duration>, Duration, isize) {
    use wqtrace::workload::sys::gettid;
    let (tx, rx) = std::sync::mpsc::channel::<u32>();
    let h = std::thread::spawn(move || {
        tx.send(gettid()).unwrap();
        let t0 = Instant::now();
        let r = call();
        (t0.elapsed(), r)
    });
    let tid = rx.recv().unwrap();
    let nr = nr.to_string();
    let proc = |f: &str| std::fs::read_to_string(format!("/proc/self/task/{tid}/{f}")).unwrap();
    let mut asleep_for = Vec::new();
    for (wchan, wake) in phases {
        let deadline = Instant::now() + Duration::from_secs(10);
        // Asleep in that syscall, there: /proc's syscall line, the task's state and wchan.
        let asleep = || {
            proc("syscall").split(' ').next() == Some(nr.as_str())
                && proc("stat")
                    .rsplit(')')
                    .next()
                    .unwrap()
                    .trim_start()
                    .starts_with('S')
                && (wchan.is_empty() || proc("wchan") == wchan)
        };
        while !asleep() {
            assert!(
                Instant::now() < deadline,
                "thread {tid} never slept in syscall {nr} at {wchan:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let seen = Instant::now();
        std::thread::sleep(Duration::from_millis(200));
        asleep_for.push(seen.elapsed());
        wake();
    }
    let (whole, r) = h.join().unwrap();
    (tid, asleep_for, whole, r)
}

/// Traced with `tracer_args`: a tee asleep until its input pipe has data and a splice asleep
/// until its output pipe has room each report one wait on that pipe (`pipe_wait_readable`,
/// `pipe_wait_writable`, with `flag`: `kfunc` where those functions are hooked, `off_cpu` where
/// sched_switch found the task on the pipe's wait queue), at least as long as the test saw the
/// thread asleep and at most the call's length, and a tee asleep on both of its pipes one on
/// each; a splice asleep on a socket at its other end reports no wait.
pub fn check(tracer_args: &[&str], flag: &str) {
    use std::os::fd::{AsRawFd, IntoRawFd};
    let pipe = || {
        let (r, w) = wqtrace::kernel::pipe2(0).unwrap();
        let ino = std::fs::metadata(format!("/proc/self/fd/{}", r.as_raw_fd()))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap();
        (r.into_raw_fd(), w.into_raw_fd(), ino)
    };
    let (a_r, a_w, a_ino) = pipe();
    let (b_r, b_w, b_ino) = pipe();
    let (c_r, c_w, c_ino) = pipe();
    let (d_r, d_w, d_ino) = pipe();
    let pid = std::process::id().to_string();
    // Kernel stacks where a wait slept are taken only for every wait (`--stack-wait 0`).
    let mut args = vec!["-p", pid.as_str(), "--stack-wait", "0"];
    args.extend_from_slice(tracer_args);
    let t = Tracer::start(&args);

    // tee from empty A into B: asleep until A has data (pipe_wait_readable on A).
    let write = |fd: i32, n: usize| {
        let buf = vec![1u8; n];
        assert_eq!(
            unsafe { libc::write(fd, buf.as_ptr().cast(), n) },
            n as isize
        );
    };
    let tee = blocked_call(
        libc::SYS_tee,
        move || unsafe { libc::tee(a_r, b_w, 4096, 0) },
        vec![("pipe_wait_readable", Box::new(|| write(a_w, 100)))],
    );
    assert_eq!(tee.3, 100);

    let fill = |w: i32| unsafe {
        let fl = libc::fcntl(w, libc::F_GETFL);
        libc::fcntl(w, libc::F_SETFL, fl | libc::O_NONBLOCK);
        let chunk = [2u8; 4096];
        let mut filled = 0;
        while libc::write(w, chunk.as_ptr().cast(), 4096) > 0 {
            filled += 4096;
        }
        libc::fcntl(w, libc::F_SETFL, fl);
        assert!(filled >= 4096);
    };
    let drain = |r: i32| {
        let mut buf = vec![0u8; 65536];
        assert!(unsafe { libc::read(r, buf.as_mut_ptr().cast(), buf.len()) } > 0);
    };

    // tee from empty E into full F: asleep until E has data, then until F has room: a wait on
    // each pipe, each with the kernel stack of its own sleep.
    let (e_r, e_w, e_ino) = pipe();
    let (f_r, f_w, f_ino) = pipe();
    fill(f_w);
    let tee2 = blocked_call(
        libc::SYS_tee,
        move || unsafe { libc::tee(e_r, f_w, 4096, 0) },
        vec![
            ("pipe_wait_readable", Box::new(|| write(e_w, 100))),
            ("pipe_wait_writable", Box::new(|| drain(f_r))),
        ],
    );
    assert_eq!(tee2.3, 100);

    // splice a file (this program's: /dev/zero cannot splice before 6.4) into full C: asleep
    // until C has room (pipe_wait_writable on C).
    fill(c_w);
    let file = std::fs::File::open("/proc/self/exe").unwrap().into_raw_fd();
    let spl = blocked_call(
        libc::SYS_splice,
        move || unsafe {
            libc::splice(
                file,
                std::ptr::null_mut(),
                c_w,
                std::ptr::null_mut(),
                4096,
                0,
            )
        },
        vec![("pipe_wait_writable", Box::new(|| drain(c_r)))],
    );
    assert_eq!(spl.3, 4096);

    // splice from an empty socket into D: asleep on the socket, not on D.
    let mut sv = [0i32; 2];
    assert_eq!(
        unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv.as_mut_ptr()) },
        0
    );
    let sock = sv[0];
    let peer = sv[1];
    let sockspl = blocked_call(
        libc::SYS_splice,
        move || unsafe {
            libc::splice(
                sock,
                std::ptr::null_mut(),
                d_w,
                std::ptr::null_mut(),
                4096,
                0,
            )
        },
        vec![("", Box::new(|| write(peer, 10)))],
    );
    assert_eq!(sockspl.3, 10);
    let events = t.stop();
    for fd in [
        a_r, a_w, b_r, b_w, c_r, c_w, d_r, d_w, e_r, e_w, f_r, f_w, sv[0], sv[1], file,
    ] {
        unsafe { libc::close(fd) };
    }

    let me = std::process::id() as u64;
    let waits = kind(&events, "pipe_wait", me);
    let of = |tid: u32| -> Vec<&serde_json::Value> {
        waits
            .iter()
            .filter(|e| u(&e["tid"]) == tid as u64)
            .copied()
            .collect()
    };
    for ((tid, asleep, whole, _), want) in [
        (&tee, vec![(a_ino, "pipe_wait_readable")]),
        (&spl, vec![(c_ino, "pipe_wait_writable")]),
        (
            &tee2,
            vec![(e_ino, "pipe_wait_readable"), (f_ino, "pipe_wait_writable")],
        ),
    ] {
        let w = of(*tid);
        assert_eq!(w.len(), want.len(), "waits of thread {tid}: {w:?}");
        let mut total = 0;
        for (i, (ino, op)) in want.into_iter().enumerate() {
            let e = w
                .iter()
                .find(|e| u(&e["ino"]) == ino)
                .unwrap_or_else(|| panic!("no wait on pipe {ino} for thread {tid}: {w:?}"));
            assert_eq!(e["op"], op, "{e}");
            assert!(has_flag(e, flag), "{e}");
            // At least as long as the test saw it asleep there.
            let d = u(&e["duration_ns"]);
            assert!(
                d >= asleep[i].as_nanos() as u64,
                "{d} ns asleep, seen asleep {:?}: {e}",
                asleep[i]
            );
            total += d;
            // Where sched_switch timed it, the kernel stack is its own sleep's.
            if flag == "off_cpu" {
                let k = frames(e, "kstack");
                assert!(k.iter().any(|f| f.contains(op)), "{op}: {k:?}");
            }
        }
        // At most the call's whole length.
        assert!(
            total <= whole.as_nanos() as u64,
            "{total} ns of waits in a call of {whole:?}: {w:?}"
        );
    }
    let (sock_tid, ..) = sockspl;
    assert!(
        of(sock_tid).is_empty(),
        "a socket wait reported as D's: {:?}",
        of(sock_tid)
    );
    // That splice was traced all the same.
    assert!(
        kind(&events, "ring_op", me)
            .iter()
            .any(|e| u(&e["tid"]) == sock_tid as u64 && u(&e["ino"]) == d_ino && e["ret"] == 10),
        "no ring op for the socket splice into D"
    );
    // And the tee moved A's 100 bytes into B.
    assert!(
        kind(&events, "ring_op", me)
            .iter()
            .any(|e| u(&e["tid"]) == tee.0 as u64 && u(&e["ino"]) == b_ino && e["ret"] == 100),
        "no ring op for the tee into B"
    );
}
