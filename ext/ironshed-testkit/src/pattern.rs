//! Deterministic pseudo-random data: the byte at absolute offset `x` under seed `s` is always
//! the same, so any range of a "disk" can be regenerated without storing it.

/// splitmix64 step.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `buf` with the pattern of `seed` as found at absolute byte `offset`.
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let key = mix(seed);
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let word = pos / 8;
        let v = mix(key ^ word).to_le_bytes();
        let start = (pos % 8) as usize;
        let n = (8 - start).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&v[start..start + n]);
        i += n;
        pos += n as u64;
    }
}

/// Like [`fill`], but every byte takes one of 16 values (about 4 bits of entropy), so the
/// data compresses roughly 2:1 like real disk contents rather than not at all.
pub fn fill_compressible(seed: u64, offset: u64, buf: &mut [u8]) {
    fill(seed, offset, buf);
    for b in buf.iter_mut() {
        *b = (*b & 0x0f) | 0x40;
    }
}

/// Like [`fill`], but as a disk's contents mix: each 4 KiB block (by absolute offset) is, by
/// turns chosen from the seed, zeros, text (words from a small vocabulary: long matches),
/// 4-bit values (literal-heavy), or random bytes (incompressible).
pub fn fill_mixed(seed: u64, offset: u64, buf: &mut [u8]) {
    const WORDS: [&[u8]; 16] = [
        b"the ",
        b"disk ",
        b"grain ",
        b"snapshot ",
        b"of ",
        b"a ",
        b"volume ",
        b"write ",
        b"kernel ",
        b"block ",
        b"and ",
        b"to ",
        b"data\n",
        b"error ",
        b"file ",
        b"0x1f ",
    ];
    fill(seed, offset, buf);
    let mut i = 0usize;
    while i < buf.len() {
        let pos = offset + i as u64;
        let block = pos / 4096;
        let end = (((block + 1) * 4096 - offset) as usize).min(buf.len());
        let kind = mix(seed ^ block.wrapping_mul(0x2545_f491_4f6c_dd1d)) % 4;
        match kind {
            0 => buf[i..end].fill(0),
            1 => {
                // Text: the same word sequence for the same block, from its start.
                let mut r = mix(seed ^ block);
                let mut text = Vec::with_capacity(4096 + 16);
                while text.len() < 4096 {
                    r = mix(r);
                    text.extend_from_slice(WORDS[(r % 16) as usize]);
                }
                let from = (pos % 4096) as usize;
                buf[i..end].copy_from_slice(&text[from..from + (end - i)]);
            }
            2 => {
                for b in &mut buf[i..end] {
                    *b = (*b & 0x0f) | 0x40;
                }
            }
            _ => {}
        }
        i = end;
    }
}

/// A small deterministic generator for layouts and random writes.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Rng(mix(seed ^ 0x5eed))
    }
    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }
    /// Uniform-ish value below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fill_is_position_independent() {
        let mut whole = vec![0u8; 100];
        super::fill(7, 1000, &mut whole);
        let mut part = vec![0u8; 37];
        super::fill(7, 1013, &mut part);
        assert_eq!(&whole[13..50], &part[..]);
    }
}
