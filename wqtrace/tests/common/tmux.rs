//! A detached tmux session on its own server socket: the TUI tests' real terminal.

use std::process::Command;
use std::time::{Duration, Instant};

pub struct Tmux {
    pub socket: &'static str,
    pub session: &'static str,
}

impl Tmux {
    /// `tmux -L socket ARGS…`, which must succeed; its stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(self.socket)
            .args(args)
            .env("TERM", "xterm-256color")
            .output()
            .expect("tmux (installed by `cargo xtask setup`)");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A new session of `w`×`h` running the shell command `cmd`.
    pub fn start(&self, w: u16, h: u16, cmd: &str) {
        self.kill_server();
        let (w, h) = (w.to_string(), h.to_string());
        self.run(&[
            "new-session",
            "-d",
            "-s",
            self.session,
            "-x",
            &w,
            "-y",
            &h,
            cmd,
        ]);
    }

    /// Runs `tui_cmd` (a shell command starting `wqtrace tui`) in a new `w`×`h` session, its
    /// exit status going to `exit_file` for [`quit`](Self::quit), and waits for the first live
    /// frame (probes attached).
    pub fn start_tui(&self, w: u16, h: u16, tui_cmd: &str, exit_file: &std::path::Path) {
        let cmd = format!("{tui_cmd}; echo $? >{}; sleep 600", exit_file.display());
        self.start(w, h, &cmd);
        self.wait_screen("the TUI", Duration::from_secs(60), |s| s.contains(" LIVE "));
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", self.session];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    pub fn capture(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", self.session])
    }

    /// Polls the screen until `pred` holds (returns that screen) or `timeout` passes (panics).
    pub fn wait_screen(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.capture();
            if pred(&s) {
                return s;
            }
            if t0.elapsed() > timeout {
                panic!("timed out waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Presses `q` and waits (≤ 30 s) for the session's command to write its exit status to
    /// `exit_file` (`…; echo $? >exit_file`); returns that status.
    pub fn quit(&self, exit_file: &std::path::Path) -> String {
        self.keys(&["q"]);
        let t0 = Instant::now();
        while !exit_file.exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the TUI did not quit on q: {}",
                self.capture()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // The shell writes the status right after creating the file.
        std::thread::sleep(Duration::from_millis(200));
        std::fs::read_to_string(exit_file)
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn kill_server(&self) {
        let _ = Command::new("tmux")
            .args(["-L", self.socket, "kill-server"])
            .output();
    }

    /// `wqtrace tui TUI_ARGS -- python3 SCRIPT` in this session, stderr to `dir/err`: the
    /// script names itself `comm`, runs `body`, writes its `out` to a file and sleeps. Returns
    /// `out` once written, and the files the TUI's exit status and stderr go to.
    pub fn tui_over_python(
        &self,
        dir: &std::path::Path,
        comm: &str,
        tui_args: &str,
        body: &str,
    ) -> (String, std::path::PathBuf, std::path::PathBuf) {
        std::fs::create_dir_all(dir).unwrap();
        let (out_file, exit_file, err_file) = (dir.join("out"), dir.join("exit"), dir.join("err"));
        let f = out_file.display();
        let script = format!(
            "import os, time\nopen('/proc/self/comm', 'w').write('{comm}')\n{body}\n\
             open('{f}.tmp', 'w').write(out)\nos.rename('{f}.tmp', '{f}')\ntime.sleep(600)\n"
        );
        std::fs::write(dir.join("w.py"), script).unwrap();
        let cmd = format!(
            "{} tui {tui_args} -- python3 {} 2>{}",
            super::WQTRACE,
            dir.join("w.py").display(),
            err_file.display()
        );
        self.start_tui(120, 30, &cmd, &exit_file);
        // A bound, not a wait: the emulated guests run python slowly.
        let t0 = Instant::now();
        loop {
            if let Ok(s) = std::fs::read_to_string(&out_file) {
                return (s, exit_file, err_file);
            }
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "the workload never finished"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `wqtrace tui --comm wqtot` over a process that writes and reads its own ordinary pipe
    /// `n` times: the kernel totals exactly 2n ring ops, none lost; the pipe's row names its
    /// creator (from the streamed pipe2) and "+?" for the tasks the totals do not name.
    pub fn totals_every_op_on_an_ordinary_pipe(&self, tag: &str, n: u32) {
        let dir = super::Scratch::new(&format!("{tag}-totals"));
        let body = format!(
            "r, w = os.pipe()\n\
             for _ in range({n}):\n    os.write(w, b'x' * 100)\n    assert len(os.read(r, 100)) == 100\n\
             out = str(os.fstat(w).st_ino)"
        );
        let (ino, exit_file, err_file) = self.tui_over_python(&dir, "wqtot", "--comm wqtot", &body);
        self.wait_screen("the pipe's row", Duration::from_secs(30), |s| {
            s.lines().any(|l| {
                l.contains(&format!(" {ino} ")) && l.contains("wqtot/") && l.contains(" +?")
            })
        });
        let code = self.quit(&exit_file);
        self.kill_server();
        let err = std::fs::read_to_string(&err_file).unwrap_or_default();
        assert_eq!(code, "0", "exit status; stderr: {err}");
        assert!(err.contains(&totalled(2 * n, 0, 0)), "{err}");
    }

    /// The kernel's totals room is given back when pipes are freed: with room for two pipes
    /// (one totals-array slot, one hash entry), `rounds` rounds of two pipes used at once, each
    /// round's closed before the next begins, are all totalled, exactly, with nothing
    /// streamed. A slot or an entry never given back would leave a later round's pipe without
    /// room, and its ops streamed instead of totalled. Needs a free hook (free_pipe_info, or
    /// its kfree where it cannot be hooked).
    ///
    /// With `freed_by_child`, a child outside the TUI's task filter (`sleep`, not `--comm
    /// wqroom`) holds each round's last fds and frees the pipes when it is killed: the frees
    /// of pipes the kernel totals are reported whoever frees them.
    pub fn totals_room_is_given_back_when_pipes_are_freed(
        &self,
        tag: &str,
        n: u32,
        rounds: u32,
        freed_by_child: bool,
    ) {
        let dir = super::Scratch::new(&format!("{tag}-room"));
        let (spawn, reap) = if freed_by_child {
            super::python_sleep_child("a + b", "    ")
        } else {
            (String::new(), String::new())
        };
        // After each round, time for the free events to reach the TUI and for its next totals
        // read (every 100 ms) to find the pipes gone.
        let body = format!(
            "for _ in range({rounds}):\n    \
             a = os.pipe()\n    b = os.pipe()\n{spawn}    \
             for _ in range({n}):\n        \
             for r, w in (a, b):\n            os.write(w, b'x' * 10)\n            os.read(r, 10)\n    \
             for fd in a + b:\n        os.close(fd)\n{reap}    time.sleep(2)\n\
             out = 'done'"
        );
        let (_, exit_file, err_file) =
            self.tui_over_python(&dir, "wqroom", "--comm wqroom --pipe-totals-max 2", &body);
        let code = self.quit(&exit_file);
        self.kill_server();
        let err = std::fs::read_to_string(&err_file).unwrap_or_default();
        assert_eq!(code, "0", "exit status; stderr: {err}");
        assert!(
            err.contains(&totalled(rounds * 2 * 2 * n, 0, 0)),
            "every round's ops totalled, none streamed: {err}"
        );
    }
}

/// The TUI's exit line's account of what the kernel totalled (`tui` without --all-pipes):
/// nothing lost, and these many ring ops, lock waits and pipe waits on ordinary pipes.
pub fn totalled(
    ring_ops: impl std::fmt::Display,
    lock_waits: impl std::fmt::Display,
    pipe_waits: impl std::fmt::Display,
) -> String {
    format!(
        "0 lost ({ring_ops} ring ops, {lock_waits} lock waits and {pipe_waits} pipe waits of \
         them on ordinary pipes, totalled in the kernel)"
    )
}
