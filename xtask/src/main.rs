//! `cargo xtask …`: the project's own build, test and test-VM recipe.

mod bench;
mod dist;
mod install;
mod kernel;
mod setup;
mod test;
mod util;
mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "wqtrace developer tasks (cargo xtask …)")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Install what building and testing need (apt packages, rust-src, bpf-linker, perfetto); idempotent.
    Setup,
    /// Build the default workspace members.
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Setup, build, then run wqtrace as root with ARGS.
    Run {
        #[arg(long)]
        release: bool,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// fmt + clippy, host tests, then the VM tests on the 6.12 and 6.1 kernels.
    Test(test::Args),
    /// Build a test-VM kernel from Debian's linux-source into target/vm/.
    VmKernel(kernel::Args),
    /// Boot the test VM (TCG) and run CMD inside it (cwd = the workspace).
    Vm(vm::Args),
    /// The live TUI inside the test VM, with `wqtrace workload mixed` running in the background.
    Demo {
        #[arg(long, default_value = "6.12")]
        kernel: String,
        /// Use the debug build (the default is release: under TCG a debug TUI falls behind
        /// the workload's event rate).
        #[arg(long)]
        debug: bool,
    },
    /// Tracing overhead benchmarks (host + VM); writes docs/benchmarks.md (see there).
    Bench(bench::Args),
    /// Setup, release build, then install wqtrace, its man pages and completions under a prefix.
    Install(install::Args),
    /// Remove exactly what `install` put under the prefix.
    Uninstall(install::Args),
    /// A .deb and a tarball in target/dist/ (release build, man pages, completions, docs).
    Dist(dist::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Cmd::Setup => setup::setup().map(|()| 0),
        Cmd::Build { release } => build(release).map(|()| 0),
        Cmd::Run { release, args } => run_wqtrace(release, &args),
        Cmd::Test(a) => test::run(a).map(|()| 0),
        Cmd::VmKernel(a) => kernel::run(a).map(|p| {
            println!("kernel: {}", p.display());
            0
        }),
        Cmd::Vm(a) => vm::run_cli(a),
        Cmd::Demo { kernel, debug } => demo(&kernel, !debug),
        Cmd::Bench(a) => bench::run(a),
        Cmd::Install(a) => install::install(a).map(|()| 0),
        Cmd::Uninstall(a) => install::uninstall(a).map(|()| 0),
        Cmd::Dist(a) => dist::run(a).map(|()| 0),
    };
    match res {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn build(release: bool) -> anyhow::Result<()> {
    let mut c = util::cargo();
    c.arg("build");
    if release {
        c.arg("--release");
    }
    util::run(&mut c)
}

fn wqtrace_bin(release: bool) -> std::path::PathBuf {
    util::target_dir()
        .join(if release { "release" } else { "debug" })
        .join("wqtrace")
}

fn run_wqtrace(release: bool, args: &[String]) -> anyhow::Result<i32> {
    setup::setup()?;
    build(release)?;
    let bin = wqtrace_bin(release);
    let mut c = if util::is_root() {
        std::process::Command::new(&bin)
    } else {
        let mut c = std::process::Command::new("sudo");
        c.arg("-E").arg(&bin);
        c
    };
    c.args(args);
    let st = c.status()?;
    Ok(util::exit_code(st))
}

fn demo(kernel: &str, release: bool) -> anyhow::Result<i32> {
    build(release)?;
    let bin = wqtrace_bin(release);
    let b = util::shell_quote(&bin.to_string_lossy());
    // The TUI starts the workload once attached (the notification pipes' creation is seen) and
    // stops it before detaching: unpatching an fentry trampoline while another vCPU runs
    // through it has oopsed the TCG guest (int3 in get_pipe_info).
    let script = format!("exec {b} tui -- {b} workload mixed --duration 3600");
    let opts = vm::RunOpts {
        series: kernel.to_string(),
        timeout: None,
        cmd: vec!["sh".into(), "-c".into(), script],
        env: vec![],
        kernel_args: vec![],
    };
    vm::run(&opts)
}
