//! What a user gets besides the program: `--version`, the examples closing every `--help`
//! (each one a command line wqtrace accepts), the man pages and the shell completions.

mod common;

use std::process::Command;

use common::WQTRACE;

fn out(args: &[&str]) -> String {
    let o = Command::new(WQTRACE).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "wqtrace {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The subcommands `wqtrace --help` lists.
fn subcommands() -> Vec<String> {
    let help = out(&["--help"]);
    let cmds: Vec<String> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect();
    assert!(cmds.len() >= 9, "{help}");
    cmds
}

#[test]
fn version_names_the_commit_the_event_abi_and_the_recording_format() {
    let v = out(&["--version"]);
    let want_tail = format!(
        ", event ABI {}, recording format {})\n",
        wqtrace_common::ABI_VERSION,
        wqtrace::recording::FORMAT_VERSION
    );
    assert!(
        v.starts_with(&format!("wqtrace {} (git ", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    assert!(v.ends_with(&want_tail), "{v}");
    let commit = v.split("(git ").nth(1).unwrap().split(',').next().unwrap();
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(head.status.success(), "tests run in a git checkout");
    let head = String::from_utf8(head.stdout).unwrap();
    assert_eq!(commit.trim_end_matches("+dirty"), head.trim(), "{v}");
}

/// Every `--help` ends with examples, and every example is a command line wqtrace parses:
/// each is run with `--help` inserted before its `--` (so nothing is traced).
#[test]
fn every_help_ends_with_examples_that_parse() {
    let mut pages = vec![vec![]];
    pages.extend(subcommands().into_iter().map(|c| vec![c]));
    for page in pages {
        let mut args: Vec<&str> = page.iter().map(String::as_str).collect();
        args.push("--help");
        let help = out(&args);
        let examples = help
            .split("\nExamples:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("no examples in `wqtrace {page:?} --help`:\n{help}"));
        let mut n = 0;
        for line in examples.lines() {
            let cmd = line.trim_start();
            let cmd = cmd.strip_prefix("sudo ").unwrap_or(cmd);
            let Some(rest) = cmd.strip_prefix("wqtrace ") else {
                continue;
            };
            n += 1;
            // The command proper: before a pipe and before the comment (two spaces or more).
            let rest = rest.split(" | ").next().unwrap();
            let rest = rest.split("  ").next().unwrap();
            let mut words: Vec<&str> = rest.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "--").unwrap_or(words.len());
            words.insert(at, "--help");
            let o = Command::new(WQTRACE).args(&words).output().unwrap();
            assert!(
                o.status.success(),
                "example `{line}` does not parse: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        assert!(n >= 2, "fewer than two examples for {page:?}:\n{examples}");
    }
}

/// A fresh directory per call: the tests of this file run at once in one process, and one
/// removing another's directory made troff fail to open a page the other had just checked.
fn assets() -> common::Scratch {
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = common::Scratch::new(&format!("assets-{n}"));
    out(&["assets", "--out", dir.to_str().unwrap()]);
    dir
}

/// One man page per subcommand plus wqtrace(1): groff renders each without a warning, with
/// its options and its examples; the top page has the kernel developer's jobs.
#[test]
fn man_pages_render_with_options_and_examples() {
    let dir = assets();
    let mut names = vec!["wqtrace".to_string()];
    names.extend(subcommands().into_iter().map(|c| format!("wqtrace-{c}")));
    for name in &names {
        let page = dir.join(format!("man1/{name}.1"));
        assert!(page.exists(), "no {}", page.display());
        let o = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-rLL=100n"])
            .arg(&page)
            .env("LC_ALL", "C.UTF-8")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() && stderr.is_empty(), "{name}: {stderr}");
        // Bold and underline are overstrikes (X, backspace, X): keep the last of each.
        let mut text = String::new();
        for c in String::from_utf8_lossy(&o.stdout).chars() {
            if c == '\u{8}' {
                text.pop();
            } else {
                text.push(c);
            }
        }
        for section in ["NAME", "SYNOPSIS", "OPTIONS", "EXAMPLES", "SEE ALSO"] {
            assert!(text.contains(section), "{name}: no {section}:\n{text}");
        }
    }
    let top = std::fs::read_to_string(dir.join("man1/wqtrace.1")).unwrap();
    for job in [
        "notification\\-only",
        "scp target:s.wqt",
        "\\-\\-pipe 81234",
        "wqtrace serve",
    ] {
        assert!(top.contains(job), "wqtrace(1) lacks {job}");
    }
    let record = std::fs::read_to_string(dir.join("man1/wqtrace-record.1")).unwrap();
    assert!(record.contains("\\-\\-force"), "options of record");
}

/// bash completes subcommands and options; zsh and fish accept their scripts.
#[test]
fn completions_work_in_bash_and_parse_in_zsh_and_fish() {
    let dir = assets();
    let bash = dir.join("completions/wqtrace.bash");
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let script = format!(
            "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT={}; _wqtrace wqtrace '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            bash.display(),
            words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            words.len() - 1,
            line.len(),
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let o = Command::new("bash").args(["-c", &script]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let subs = complete("wqtrace re");
    for s in ["record", "replay", "report"] {
        assert!(subs.lines().any(|l| l == s), "wqtrace re<TAB>: {subs}");
    }
    let opts = complete("wqtrace record --fo");
    assert_eq!(opts.trim(), "--force", "wqtrace record --fo<TAB>");
    let formats = complete("wqtrace export s.wqt --format ");
    for f in ["perfetto", "chrome-json", "jsonl"] {
        assert!(formats.lines().any(|l| l == f), "--format <TAB>: {formats}");
    }

    for (shell, file, check) in [
        ("zsh", "_wqtrace", vec!["-n"]),
        ("fish", "wqtrace.fish", vec!["--no-execute"]),
    ] {
        let path = dir.join("completions").join(file);
        let o = Command::new(shell)
            .args(&check)
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("{shell}: {e} (cargo xtask setup installs it)"));
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "{shell} {check:?} {file}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(std::fs::read_to_string(&path).unwrap().contains("record"));
    }
}
