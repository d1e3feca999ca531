//! `wqtrace doctor`.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`wqtrace doctor` is not implemented yet")
}
