//! Facts about the running kernel: release, BTF layouts.
