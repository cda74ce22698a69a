//! A bitmap of the sectors of a file, used to prove that no two structures of a sparse file
//! (header, directories, tables, grains) share a sector. One bit per 512-byte sector: 1/4096
//! of the file's size, far less than the tables it checks.

/// Sectors already claimed by some structure.
#[derive(Debug)]
pub struct SectorMap {
    words: Vec<u64>,
    sectors: u64,
}

impl SectorMap {
    /// A map of a file of `sectors` sectors, nothing claimed.
    pub fn new(sectors: u64) -> Self {
        let words = usize::try_from(sectors.div_ceil(64)).unwrap_or(usize::MAX);
        SectorMap {
            words: vec![0; words],
            sectors,
        }
    }

    /// Claims `[start, start+len)`. Returns the first sector that was already claimed (the
    /// range is then left partly claimed: the caller reports the conflict and stops), or the
    /// first sector past the end of the map.
    pub fn claim(&mut self, start: u64, len: u64) -> Result<(), u64> {
        let end = start.checked_add(len).ok_or(start)?;
        if end > self.sectors {
            return Err(self.sectors.max(start));
        }
        let mut s = start;
        while s < end {
            let w = (s / 64) as usize;
            let bit = s % 64;
            let n = (64 - bit).min(end - s);
            let mask = if n == 64 {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << bit
            };
            let word = &mut self.words[w];
            if *word & mask != 0 {
                let hit = (*word & mask).trailing_zeros() as u64;
                return Err(w as u64 * 64 + hit);
            }
            *word |= mask;
            s += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::SectorMap;

    #[test]
    fn finds_the_first_shared_sector() {
        let mut m = SectorMap::new(1000);
        assert_eq!(m.claim(0, 4), Ok(()));
        assert_eq!(m.claim(60, 10), Ok(()));
        assert_eq!(m.claim(70, 200), Ok(()));
        assert_eq!(m.claim(269, 5), Err(269));
        assert_eq!(m.claim(3, 1), Err(3));
        assert_eq!(m.claim(995, 10), Err(1000));
        assert_eq!(m.claim(4, 56), Ok(()));
        assert_eq!(m.claim(u64::MAX - 1, 5), Err(u64::MAX - 1));
    }
}
