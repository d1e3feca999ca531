use which::which;

/// Building this crate needs the `bpf-linker` binary (installed by `cargo xtask setup`); rebuild
/// when it changes, as aya-template does.
fn main() {
    match which("bpf-linker") {
        Ok(p) => println!("cargo:rerun-if-changed={}", p.display()),
        Err(_) => panic!("bpf-linker not found: run `cargo xtask setup`"),
    }
}
