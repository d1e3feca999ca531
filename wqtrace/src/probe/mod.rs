//! What a session asks for ([`opts`]); which hook, which attach method, on this kernel
//! ([`plan`]); loading and attaching ([`loader`]).

pub mod direct;
mod kfunc;
pub mod loader;
pub mod opts;
pub mod plan;
pub mod totals;
