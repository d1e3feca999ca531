//! Call stacks of the rare events: the table of symbolized stacks a session or a recording
//! holds ([`table`]), and how a live session fills it from the programs' stack map
//! ([`resolve`], with kernel names from [`kallsyms`] and user names from the ELF symbols of the
//! traced process).

pub mod kallsyms;
pub mod maps;
pub mod resolve;
pub mod table;

pub use table::{Frame, SharedStacks, Stack, StackKey, StackTable, shared};

/// `--stacks`: which events carry call stacks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// No stacks.
    None,
    /// Rejections, lost and skipped posts, interleaved posts, lock contention, waits from
    /// `--stack-wait`.
    #[default]
    Rare,
    /// Every event, ring ops included (costly: a stack walk per syscall).
    All,
}

impl Mode {
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Rare => "rare",
            Self::All => "all",
        }
    }

    pub const fn abi(self) -> u32 {
        match self {
            Self::None => wqtrace_common::stack_mode::NONE,
            Self::Rare => wqtrace_common::stack_mode::RARE,
            Self::All => wqtrace_common::stack_mode::ALL,
        }
    }
}
