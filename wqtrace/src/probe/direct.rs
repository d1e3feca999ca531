//! Direct kernel loads (see the eBPF crate's `direct` module): the BTF ids they need, and the
//! rewrite of the object that makes its `bpf_rdonly_cast` calls real.
//!
//! aya 0.14 cannot relocate kfunc calls, so the programs call a helper number no helper has
//! ([`DIRECT_CAST_MARKER`]). Before loading, every such call in the object's code is rewritten:
//! into a kfunc call with this kernel's BTF id for `bpf_rdonly_cast`, or, on a kernel without
//! it (before 6.2), into `r0 = r1`, which sits on a side of a branch the verifier knows is
//! never taken there (`Offsets::direct_*_btf_id` = 0).

use btf_rs::{Btf, BtfType, Type};
use wqtrace_common::{DIRECT_CAST_MARKER, Offsets};

/// What the running kernel needs for direct loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Direct {
    /// BTF id of the kfunc `bpf_rdonly_cast`.
    pub kfunc: u32,
    /// BTF ids of the structs behind `atomic64_t` and `atomic_t`.
    pub s64: u32,
    pub s32: u32,
}

impl Direct {
    /// From the running kernel's BTF; None when it lacks the kfunc or the types.
    pub fn resolve(btf: &Btf) -> Option<Self> {
        let kfunc = btf
            .resolve_ids_by_name("bpf_rdonly_cast")
            .ok()?
            .into_iter()
            .find(|&id| matches!(btf.resolve_type_by_id(id), Ok(Type::Func(_))))?;
        Some(Self {
            kfunc,
            s64: typedef_struct(btf, "atomic64_t")?,
            s32: typedef_struct(btf, "atomic_t")?,
        })
    }

    pub fn apply(&self, o: &mut Offsets) {
        o.direct_s64_btf_id = self.s64;
        o.direct_s32_btf_id = self.s32;
    }
}

/// The id of the struct a typedef names (`typedef struct { s64 counter; } atomic64_t`).
fn typedef_struct(btf: &Btf, name: &str) -> Option<u32> {
    btf.resolve_types_by_name(name)
        .ok()?
        .into_iter()
        .find_map(|t| match t {
            Type::Typedef(td) => {
                let id = td.get_type_id()?;
                matches!(btf.resolve_type_by_id(id), Ok(Type::Struct(_))).then_some(id)
            }
            _ => None,
        })
}

/// An ELF object in 8-byte-aligned memory (the object parser reads its headers in place).
pub struct Object {
    words: Vec<u64>,
    len: usize,
}

impl Object {
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `words` holds at least `len` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast(), self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as `bytes`, and `self` is borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast(), self.len) }
    }
}

const BPF_CALL: u8 = 0x85; // BPF_JMP | BPF_CALL
const BPF_MOV64_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const BPF_PSEUDO_KFUNC_CALL: u8 = 2;
const SHF_EXECINSTR: u64 = 0x4;

/// A copy of the ELF object `elf` with every marker call rewritten (see the module doc), and
/// how many there were.
pub fn patch(elf: &[u8], direct: Option<&Direct>) -> Result<(Object, usize), String> {
    let mut obj = Object {
        words: vec![0; elf.len().div_ceil(8)],
        len: elf.len(),
    };
    obj.bytes_mut().copy_from_slice(elf);
    let mut n = 0;
    for (start, size) in code_sections(elf)? {
        let code = &mut obj.bytes_mut()[start..start + size];
        for insn in code.chunks_exact_mut(8) {
            let imm = i32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]);
            // A helper call (src_reg 0) to the marker number.
            if insn[0] != BPF_CALL || insn[1] >> 4 != 0 || imm != DIRECT_CAST_MARKER {
                continue;
            }
            match direct {
                Some(d) => {
                    insn[1] = (insn[1] & 0x0f) | BPF_PSEUDO_KFUNC_CALL << 4;
                    insn[4..8].copy_from_slice(&(d.kfunc as i32).to_le_bytes());
                }
                None => insn.copy_from_slice(&[BPF_MOV64_X, 1 << 4, 0, 0, 0, 0, 0, 0]),
            }
            n += 1;
        }
    }
    Ok((obj, n))
}

/// (file offset, size) of each executable section of a little-endian ELF64 object.
fn code_sections(elf: &[u8]) -> Result<Vec<(usize, usize)>, String> {
    let bad = |why: &str| format!("the built BPF object is not a little-endian ELF64 file: {why}");
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return Err(bad("bad header"));
    }
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    let (shoff, shentsize, shnum) = (u64_at(0x28) as usize, u16_at(0x3a), u16_at(0x3c));
    if shentsize < 0x40 || shoff.saturating_add(shnum.saturating_mul(shentsize)) > elf.len() {
        return Err(bad("section headers out of bounds"));
    }
    let mut out = vec![];
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        let (flags, off, size) = (u64_at(h + 8), u64_at(h + 0x18) as usize, u64_at(h + 0x20));
        let size = size as usize;
        if flags & SHF_EXECINSTR == 0 || size == 0 {
            continue;
        }
        if off % 8 != 0 || off.saturating_add(size) > elf.len() {
            return Err(bad("a code section out of bounds"));
        }
        out.push((off, size));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built() -> &'static [u8] {
        aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/wqtrace"))
    }

    fn marker_calls(elf: &[u8]) -> usize {
        code_sections(elf)
            .unwrap()
            .into_iter()
            .flat_map(|(o, s)| elf[o..o + s].chunks_exact(8))
            .filter(|i| {
                i[0] == BPF_CALL
                    && i32::from_le_bytes([i[4], i[5], i[6], i[7]]) == DIRECT_CAST_MARKER
            })
            .count()
    }

    /// Every marker call in the built object becomes the kfunc call, and nothing else changes.
    #[test]
    fn every_marker_call_becomes_the_kfunc_call() {
        let d = Direct {
            kfunc: 4242,
            s64: 1,
            s32: 2,
        };
        let n0 = marker_calls(built());
        assert!(n0 > 0, "the programs make no direct loads");
        let (obj, n) = patch(built(), Some(&d)).unwrap();
        assert_eq!(n, n0);
        assert_eq!(marker_calls(obj.bytes()), 0);
        let diff = built()
            .chunks_exact(8)
            .zip(obj.bytes().chunks_exact(8))
            .filter(|(a, b)| a != b)
            .inspect(|(_, b)| {
                assert_eq!(b[0], BPF_CALL);
                assert_eq!(b[1] >> 4, BPF_PSEUDO_KFUNC_CALL);
                assert_eq!(i32::from_le_bytes([b[4], b[5], b[6], b[7]]), 4242);
            })
            .count();
        assert_eq!(diff, n0);
        aya_obj::Object::parse(obj.bytes()).expect("the patched object parses");
    }

    /// Without the kfunc the calls become `r0 = r1`, and the object still parses.
    #[test]
    fn without_the_kfunc_the_calls_become_moves() {
        let (obj, n) = patch(built(), None).unwrap();
        assert!(n > 0);
        assert_eq!(marker_calls(obj.bytes()), 0);
        aya_obj::Object::parse(obj.bytes()).expect("the patched object parses");
    }

    #[test]
    fn a_file_that_is_not_elf64_is_refused() {
        let e = patch(
            b"not an object at all, but long enough to have a header of sixty-four bytes",
            None,
        );
        assert!(e.err().unwrap().contains("not a little-endian ELF64"));
    }

    /// On a kernel with BTF (the host), the ids resolve and name what the programs assume.
    #[test]
    fn the_running_kernels_btf_has_the_kfunc_and_the_types() {
        let Ok(btf) = Btf::from_file("/sys/kernel/btf/vmlinux") else {
            return;
        };
        let Some(d) = Direct::resolve(&btf) else {
            // A kernel before 6.2 has no bpf_rdonly_cast.
            assert!(crate::kernel::version() < (6, 2));
            return;
        };
        for (id, size) in [(d.s64, 8), (d.s32, 4)] {
            match btf.resolve_type_by_id(id).unwrap() {
                Type::Struct(s) => assert_eq!(s.size(), size),
                _ => panic!("{id} is not a struct"),
            }
        }
    }
}
