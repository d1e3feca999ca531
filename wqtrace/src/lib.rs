//! wqtrace: watch pipe rings and notification pipes live, with eBPF.
//!
//! Data path (see docs/architecture.md):
//! `wqtrace-ebpf` hooks → [`wqtrace_common::Event`] → [`probe`] (plan + loader) →
//! [`source`] (live ring buffer or recording) → [`model`] (pure state) → [`sinks`].

pub mod argvalue;
pub mod assets;
pub mod cgroup;
pub mod child;
pub mod cli;
pub mod cost;
pub mod doctor;
pub mod kernel;
pub mod model;
pub mod output;
pub mod privileges;
pub mod probe;
pub mod recording;
pub mod session;
pub mod sinks;
pub mod source;
pub mod stacks;
pub mod stop;
pub mod text;
pub mod workload;
