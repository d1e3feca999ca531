//! The probe plan.

/// The user's preference for kernel-function hooks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachPref {
    #[default]
    Auto,
    Fentry,
    Kprobe,
    Tracepoint,
}
