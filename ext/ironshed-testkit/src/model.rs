//! A disk model: a base made of a pattern, plus writes, each with its own pattern. It answers
//! "what are the bytes of this range of the base / of the written disk" without holding either.

use crate::pattern;
use std::collections::BTreeSet;

/// One guest write: `len` bytes at `offset`, filled with the pattern of `seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Write {
    /// Byte offset.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Pattern seed of the data.
    pub seed: u64,
}

/// Base pattern plus an ordered list of writes (later writes win).
#[derive(Debug, Clone)]
pub struct Model {
    /// Disk size in bytes.
    pub capacity: u64,
    /// Pattern seed of the base disk.
    pub base_seed: u64,
    /// The writes, in order.
    pub writes: Vec<Write>,
    index: std::sync::OnceLock<(Vec<(u64, usize)>, u64)>,
}

impl Model {
    /// A model with no writes.
    pub fn new(capacity: u64, base_seed: u64) -> Self {
        Model {
            capacity,
            base_seed,
            writes: Vec::new(),
            index: Default::default(),
        }
    }

    /// Adds a write; its seed is derived from the base seed and its position.
    pub fn write(&mut self, offset: u64, len: u64) -> &mut Self {
        assert!(offset + len <= self.capacity, "write past capacity");
        let seed = self
            .base_seed
            .wrapping_mul(31)
            .wrapping_add(self.writes.len() as u64 + 1);
        self.writes.push(Write { offset, len, seed });
        self.index = Default::default();
        self
    }

    /// Adds `count` writes of `len` bytes at distinct `len`-aligned offsets chosen by `seed`.
    pub fn random_writes(&mut self, count: u64, len: u64, seed: u64) -> &mut Self {
        let slots = self.capacity / len;
        assert!(count <= slots, "more writes than {len}-byte slots");
        let mut rng = pattern::Rng::new(seed);
        let mut chosen = BTreeSet::new();
        while (chosen.len() as u64) < count {
            chosen.insert(rng.below(slots));
        }
        let mut order: Vec<u64> = chosen.into_iter().collect();
        rng.shuffle(&mut order);
        for slot in order {
            self.write(slot * len, len);
        }
        self
    }

    /// The base's bytes at `offset`.
    pub fn base_at(&self, offset: u64, buf: &mut [u8]) {
        pattern::fill(self.base_seed, offset, buf);
    }

    /// The written disk's bytes at `offset` (base overlaid with every write, in order).
    pub fn disk_at(&self, offset: u64, buf: &mut [u8]) {
        self.base_at(offset, buf);
        let end = offset + buf.len() as u64;
        let index = self.index.get_or_init(|| {
            let mut v: Vec<(u64, usize)> = self
                .writes
                .iter()
                .enumerate()
                .map(|(i, w)| (w.offset, i))
                .collect();
            v.sort_unstable();
            let longest = self.writes.iter().map(|w| w.len).max().unwrap_or(0);
            (v, longest)
        });
        let (sorted, longest) = index;
        let lo = sorted.partition_point(|&(o, _)| o + longest <= offset);
        let hi = sorted.partition_point(|&(o, _)| o < end);
        let mut hits: Vec<usize> = sorted[lo..hi].iter().map(|&(_, i)| i).collect();
        hits.sort_unstable();
        for w in hits.into_iter().map(|i| &self.writes[i]) {
            let s = w.offset.max(offset);
            let e = (w.offset + w.len).min(end);
            if s < e {
                let out = &mut buf[(s - offset) as usize..(e - offset) as usize];
                pattern::fill(w.seed, s, out);
            }
        }
    }

    /// Indexes of the `grain_bytes`-sized grains any write touches, sorted.
    pub fn touched_grains(&self, grain_bytes: u64) -> Vec<u64> {
        let mut set = BTreeSet::new();
        for w in &self.writes {
            if w.len == 0 {
                continue;
            }
            for g in w.offset / grain_bytes..=(w.offset + w.len - 1) / grain_bytes {
                set.insert(g);
            }
        }
        set.into_iter().collect()
    }
}
