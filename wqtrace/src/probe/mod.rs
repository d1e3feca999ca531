//! Which hook, which attach method, on this kernel; loading and attaching the programs.

pub mod plan;
