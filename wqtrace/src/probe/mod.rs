//! What a session asks for ([`opts`]); which hook, which attach method, on this kernel
//! ([`plan`]); loading and attaching ([`loader`]).

mod counts;
pub mod direct;
mod kfunc;
pub mod loader;
mod mapped;
pub mod opts;
pub mod plan;
pub mod totals;
