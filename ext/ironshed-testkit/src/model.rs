//! A disk model: a base made of a pattern, plus writes grouped in layers (one per snapshot),
//! each write with its own pattern or zeros. It answers "what are the bytes of this range of
//! the disk as seen through layer k" without holding any of it.

use crate::pattern;
use std::collections::{BTreeMap, BTreeSet};

/// What a write puts on the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// The pattern of this seed.
    Pattern(u64),
    /// Zeros, stored as zeroed grains where the format has them.
    Zero,
    /// Zeros, stored as "unmapped" grains (seSparse type 1) where the format has them.
    Unmapped,
}

/// One guest write: `len` bytes at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Write {
    /// Byte offset.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// What it writes.
    pub fill: Fill,
    /// The snapshot layer it belongs to (0 = first delta).
    pub layer: usize,
}

/// How a layer stores one grain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrainKind {
    /// Data (the disk's bytes through this layer).
    Data,
    /// Every write of this layer touching the grain zeroes it whole.
    Zero,
    /// Like `Zero`, but written as unmapped.
    Unmapped,
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
    /// The layer new writes go to.
    pub layer: usize,
    /// Written data compresses about 2:1 (see [`pattern::fill_compressible`]).
    pub compressible: bool,
    /// Written data is a mix of zeros, text, literal-heavy and random blocks (see
    /// [`pattern::fill_mixed`]); takes precedence over `compressible`.
    pub mixed: bool,
    index: std::sync::OnceLock<(Vec<(u64, usize)>, u64)>,
}

impl Model {
    /// A model with no writes.
    pub fn new(capacity: u64, base_seed: u64) -> Self {
        Model {
            capacity,
            base_seed,
            writes: Vec::new(),
            layer: 0,
            compressible: false,
            mixed: false,
            index: Default::default(),
        }
    }

    /// Starts the next snapshot layer: later writes belong to it.
    pub fn next_layer(&mut self) -> &mut Self {
        self.layer += 1;
        self
    }

    fn push(&mut self, offset: u64, len: u64, fill: Fill) -> &mut Self {
        assert!(offset + len <= self.capacity, "write past capacity");
        self.writes.push(Write {
            offset,
            len,
            fill,
            layer: self.layer,
        });
        self.index = Default::default();
        self
    }

    /// Adds a data write; its seed is derived from the base seed and its position.
    pub fn write(&mut self, offset: u64, len: u64) -> &mut Self {
        let seed = self
            .base_seed
            .wrapping_mul(31)
            .wrapping_add(self.writes.len() as u64 + 1);
        self.push(offset, len, Fill::Pattern(seed))
    }

    /// Adds a write of zeros.
    pub fn zero(&mut self, offset: u64, len: u64) -> &mut Self {
        self.push(offset, len, Fill::Zero)
    }

    /// Adds an unmap (reads as zeros).
    pub fn unmap(&mut self, offset: u64, len: u64) -> &mut Self {
        self.push(offset, len, Fill::Unmapped)
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

    /// Number of layers with writes (or started).
    pub fn layers(&self) -> usize {
        self.layer + 1
    }

    /// The base's bytes at `offset`.
    pub fn base_at(&self, offset: u64, buf: &mut [u8]) {
        pattern::fill(self.base_seed, offset, buf);
    }

    /// The disk's bytes at `offset` through every layer.
    pub fn disk_at(&self, offset: u64, buf: &mut [u8]) {
        self.disk_at_layer(usize::MAX, offset, buf)
    }

    /// The disk's bytes at `offset` as seen through layer `k` (base + writes of layers ≤ k).
    pub fn disk_at_layer(&self, k: usize, offset: u64, buf: &mut [u8]) {
        self.base_at(offset, buf);
        let end = offset + buf.len() as u64;
        for w in self.hits(offset, end).map(|i| &self.writes[i]) {
            if w.layer > k {
                continue;
            }
            let s = w.offset.max(offset);
            let e = (w.offset + w.len).min(end);
            let out = &mut buf[(s - offset) as usize..(e - offset) as usize];
            match w.fill {
                Fill::Pattern(seed) if self.mixed => pattern::fill_mixed(seed, s, out),
                Fill::Pattern(seed) if self.compressible => {
                    pattern::fill_compressible(seed, s, out)
                }
                Fill::Pattern(seed) => pattern::fill(seed, s, out),
                Fill::Zero | Fill::Unmapped => out.fill(0),
            }
        }
    }

    /// Indexes of the writes touching `[start, end)`, in write order.
    fn hits(&self, start: u64, end: u64) -> impl Iterator<Item = usize> {
        let (sorted, longest) = self.index.get_or_init(|| {
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
        let lo = sorted.partition_point(|&(o, _)| o + longest <= start);
        let hi = sorted.partition_point(|&(o, _)| o < end);
        let mut hits: Vec<usize> = sorted[lo..hi]
            .iter()
            .map(|&(_, i)| i)
            .filter(|&i| {
                let w = &self.writes[i];
                w.offset < end && w.offset + w.len > start
            })
            .collect();
        hits.sort_unstable();
        hits.into_iter()
    }

    /// Indexes of the `grain_bytes`-sized grains any write (of any layer) touches, sorted.
    pub fn touched_grains(&self, grain_bytes: u64) -> Vec<u64> {
        let mut set = BTreeSet::new();
        for w in self.writes.iter().filter(|w| w.len > 0) {
            for g in w.offset / grain_bytes..=(w.offset + w.len - 1) / grain_bytes {
                set.insert(g);
            }
        }
        set.into_iter().collect()
    }

    /// The grains layer `k` stores, with how: zeroed when every write of the layer touching
    /// the grain zeroes it and together they cover the whole (clipped) grain.
    pub fn layer_grains(&self, k: usize, grain_bytes: u64) -> BTreeMap<u64, GrainKind> {
        let mut out = BTreeMap::new();
        for w in self.writes.iter().filter(|w| w.layer == k && w.len > 0) {
            for g in w.offset / grain_bytes..=(w.offset + w.len - 1) / grain_bytes {
                out.entry(g).or_insert(GrainKind::Data);
            }
        }
        for (g, kind) in out.iter_mut() {
            // Replay this layer's writes over the grain, sector by sector: the grain is zeroed
            // when every sector was last written by a zero or unmap write.
            let gs = g * grain_bytes;
            let ge = (gs + grain_bytes).min(self.capacity);
            let sectors = (ge - gs).div_ceil(512) as usize;
            let mut last: Vec<Option<Fill>> = vec![None; sectors];
            for i in self.hits(gs, ge) {
                let w = &self.writes[i];
                if w.layer != k {
                    continue;
                }
                let (s, e) = (w.offset.max(gs) - gs, (w.offset + w.len).min(ge) - gs);
                for (n, slot) in last.iter_mut().enumerate() {
                    let (a, b) = (n as u64 * 512, (n as u64 + 1) * 512);
                    if s < b && e > a {
                        let whole = s <= a && e >= b.min(ge - gs);
                        *slot = Some(match w.fill {
                            Fill::Pattern(seed) => Fill::Pattern(seed),
                            // A zero write covering part of a sector leaves data in the rest.
                            z if whole => z,
                            _ => Fill::Pattern(0),
                        });
                    }
                }
            }
            if last
                .iter()
                .all(|f| matches!(f, Some(Fill::Zero) | Some(Fill::Unmapped)))
            {
                *kind = if last.iter().all(|f| *f == Some(Fill::Unmapped)) {
                    GrainKind::Unmapped
                } else {
                    GrainKind::Zero
                };
            }
        }
        out
    }
}
