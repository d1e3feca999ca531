//! `wqtrace assets --out DIR` (hidden): the man pages and shell completions, generated from the
//! same clap definitions the binary parses with, so they cannot drift from it. `cargo xtask
//! install` and `cargo xtask dist` run it on the binary they ship.
//!
//! DIR/man1/wqtrace.1 and one page per subcommand (wqtrace-record.1, …), each ending with the
//! examples its `--help` shows; DIR/completions/{wqtrace.bash,_wqtrace,wqtrace.fish}.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write man1/ and completions/ into (created).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// The top page's examples: the jobs a kernel developer comes with.
const MAN_EXAMPLES: &str = "\
Debug a program's notification pipe (key notifications):
  sudo wqtrace tui --notification-only -- ./keymon
  sudo wqtrace trace --notification-only --json | jq 'select(.kind == \"notify_posted\")'

Record on a test box, look at it on your workstation:
  sudo wqtrace record -o s.wqt -d 60            (on the target; the file is yours, 0600)
  scp target:s.wqt . && wqtrace report s.wqt    (anywhere, no privileges)
  wqtrace replay s.wqt
  wqtrace export s.wqt -f perfetto -o s.pftrace (open in ui.perfetto.dev)

Narrow it down (in the kernel, before an event is made):
  sudo wqtrace trace -p 1234                    one process
  sudo wqtrace trace -c keymon --pipe 81234     one name, one pipe inode

Metrics for Prometheus:
  sudo wqtrace serve                            http://127.0.0.1:9435/metrics
  (as a service: deploy/systemd/wqtrace-serve.service)

Before anything else, on a new kernel:
  sudo wqtrace doctor";

pub fn run(a: Args) -> Result<ExitCode> {
    let man = a.out.join("man1");
    let comp = a.out.join("completions");
    for d in [&man, &comp] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    write_page(&man, &cmd, MAN_EXAMPLES)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let examples = sub
            .get_after_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        let examples = examples.strip_prefix("Examples:\n").unwrap_or(&examples);
        write_page(&man, sub, examples)?;
    }
    for (shell, name) in [
        (Shell::Bash, "wqtrace.bash"),
        (Shell::Zsh, "_wqtrace"),
        (Shell::Fish, "wqtrace.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "wqtrace", &mut buf);
        write(&comp.join(name), &buf)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// clap_mangen's sections, then EXAMPLES (verbatim) and SEE ALSO.
fn write_page(dir: &Path, cmd: &clap::Command, examples: &str) -> Result<()> {
    // Without its after_help: clap_mangen would print it again, refilled, as "EXTRA".
    let page = clap_mangen::Man::new(cmd.clone().after_help(None::<&str>))
        .date("")
        .source(format!("wqtrace {}", env!("CARGO_PKG_VERSION")))
        .manual("wqtrace manual");
    let mut out = Vec::new();
    page.render(&mut out)?;
    if !examples.trim().is_empty() {
        out.extend_from_slice(b".SH EXAMPLES\n.nf\n");
        for line in examples.trim_end().lines() {
            writeln!(out, "{}", roff_line(line))?;
        }
        out.extend_from_slice(b".fi\n");
    }
    let name = page.get_filename();
    let see_also = if cmd.get_name() == "wqtrace" {
        "wqtrace\\-doctor(1), wqtrace\\-tui(1), wqtrace\\-trace(1), wqtrace\\-record(1), wqtrace\\-replay(1), wqtrace\\-report(1), wqtrace\\-export(1), wqtrace\\-serve(1), wqtrace\\-workload(1), bpftrace(8), pipe(7)".to_string()
    } else {
        "wqtrace(1)".to_string()
    };
    writeln!(out, ".SH \"SEE ALSO\"\n{see_also}")?;
    write(&dir.join(name), &out)
}

/// One line of verbatim text for roff: backslashes and leading control characters escaped.
fn roff_line(line: &str) -> String {
    let s = line.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roff_lines_are_escaped() {
        assert_eq!(roff_line(".hidden"), "\\&.hidden");
        assert_eq!(roff_line("a\\b -x"), "a\\eb \\-x");
    }
}
