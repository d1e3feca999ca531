use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

/// Compiles `wqtrace-ebpf` for bpfel-unknown-none (nightly + bpf-linker) into OUT_DIR, where
/// `include_bytes_aligned!` picks it up.
fn main() -> anyhow::Result<()> {
    let cargo_metadata::Metadata { packages, .. } = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("MetadataCommand::exec")?;
    let ebpf = packages
        .into_iter()
        .find(|p| p.name.as_str() == "wqtrace-ebpf")
        .ok_or_else(|| anyhow!("wqtrace-ebpf package not found"))?;
    let root = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root.as_str(),
            ..Default::default()
        }],
        Toolchain::default(),
    )
}
