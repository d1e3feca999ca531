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
}
