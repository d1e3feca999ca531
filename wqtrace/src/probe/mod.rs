//! Which hook, which attach method, on this kernel ([`plan`]); loading and attaching ([`loader`]).

pub mod loader;
pub mod plan;
