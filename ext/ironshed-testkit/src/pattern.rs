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
