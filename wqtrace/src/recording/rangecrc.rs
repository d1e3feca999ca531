//! CRC-32 of any byte range of a buffer in O(log n), from the CRCs of its prefixes.
//!
//! After damage the reader tries every chunk marker it finds. Checking a candidate by hashing
//! its claimed payload costs up to 16 MiB, so a file full of fake markers made resync
//! quadratic. CRC-32 is linear: crc(A‖B) = crc(A)·x^(8|B|) ⊕ crc(B) (zlib's `crc32_combine`),
//! hence crc(B) = crc(A‖B) ⊕ crc(A)·x^(8|B|). With the CRC of every prefix of the buffer
//! (computed once per byte) any range's CRC is two lookups and one shift.

/// Prefix CRCs of a buffer: `crc[i]` is the CRC-32 of `buf[..i]` (relative to an origin
/// that moves with the buffer; see [`RangeCrc::drain`]).
pub struct RangeCrc {
    crc: Vec<u32>,
}

const TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// `crc` followed by `len` more bytes' worth of shift, i.e. crc_combine(crc, 0, len).
fn shift(crc: u32, len: u64) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial_len(crc, 0);
    h.combine(&crc32fast::Hasher::new_with_initial_len(0, len));
    h.finalize()
}

impl RangeCrc {
    pub fn new() -> Self {
        Self { crc: vec![0] }
    }

    /// Bytes of the buffer covered so far.
    pub fn covered(&self) -> usize {
        self.crc.len() - 1
    }

    /// Extends the prefixes over `buf[covered..]`.
    pub fn extend(&mut self, buf: &[u8]) {
        if buf.len() <= self.covered() {
            return;
        }
        let mut reg = !*self.crc.last().expect("never empty");
        self.crc.reserve(buf.len().saturating_sub(self.covered()));
        for &b in &buf[self.covered()..] {
            reg = TABLE[((reg ^ u32::from(b)) & 0xff) as usize] ^ (reg >> 8);
            self.crc.push(!reg);
        }
    }

    /// The buffer dropped its first `n` bytes (all covered).
    pub fn drain(&mut self, n: usize) {
        self.crc.drain(..n);
    }

    /// CRC-32 of `buf[a..b]` (both covered).
    pub fn range(&self, a: usize, b: usize) -> u32 {
        self.crc[b] ^ shift(self.crc[a], (b - a) as u64)
    }

    /// CRC-32 of `head` followed by `buf[a..b]`.
    pub fn after(&self, head: &[u8], a: usize, b: usize) -> u32 {
        shift(crc32fast::hash(head), (b - a) as u64) ^ self.range(a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_match_direct_hashing() {
        let buf: Vec<u8> = (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let mut r = RangeCrc::new();
        r.extend(&buf[..1000]);
        r.extend(&buf);
        for (a, b) in [
            (0, 0),
            (0, 1),
            (3, 77),
            (999, 1000),
            (0, 5000),
            (4095, 4999),
        ] {
            assert_eq!(r.range(a, b), crc32fast::hash(&buf[a..b]), "{a}..{b}");
        }
        let mut h = crc32fast::Hasher::new();
        h.update(b"kind+");
        h.update(&buf[10..4000]);
        assert_eq!(r.after(b"kind+", 10, 4000), h.finalize());
        // Dropping the front keeps the rest right.
        r.drain(100);
        assert_eq!(r.range(0, 400), crc32fast::hash(&buf[100..500]));
    }
}
