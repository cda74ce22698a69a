//! Writes ESX seSparse delta extents: constant and volatile headers, journal, grain directory
//! with table indexes handed out in first-use order, grain tables with the split grain-index
//! encoding, zero (type 2) and unmapped (type 1) grains, and grains in a chosen order.

use crate::cowd::Layout;
use crate::model::{GrainKind, Model};
use crate::pattern::Rng;
use byteorder::{ByteOrder, LittleEndian as LE};
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

const SECTOR: u64 = 512;
const GRAIN: u64 = 8;
const TABLE: u64 = 64;
const ENTRIES: u64 = 4096;

/// Where things went.
#[derive(Debug, Clone, Default)]
pub struct SeSparseLayout {
    /// `(offset, size)` in sectors of: grain directory, grain tables, grains.
    pub directory: (u64, u64),
    /// Grain tables region.
    pub tables: (u64, u64),
    /// Grains region.
    pub grains_region: (u64, u64),
    /// Directory slot → table index.
    pub table_index: BTreeMap<u64, u64>,
    /// Grain → grain index (data grains only).
    pub grain_index: BTreeMap<u64, u64>,
    /// Volatile header sector.
    pub volatile: u64,
    /// File size in sectors.
    pub end_sector: u64,
}

/// The table entry of an allocated grain with index `idx` (its low 12 bits in entry bits
/// 48..59, the rest in bits 0..47).
pub fn allocated_entry(idx: u64) -> u64 {
    (3u64 << 60) | ((idx & 0xfff) << 48) | (idx >> 12)
}

/// Writes layer `layer` of `model` as a seSparse extent. Grain indexes follow `layout`
/// (so many grains give indexes past 4095, exercising the split encoding).
pub fn write_layer(
    path: &Path,
    capacity_sectors: u64,
    layout: Layout,
    model: &Model,
    layer: usize,
) -> io::Result<SeSparseLayout> {
    let gbytes = GRAIN * SECTOR;
    let kinds = model.layer_grains(layer, gbytes);
    let tables = capacity_sectors.div_ceil(ENTRIES * GRAIN);
    let gd_sectors = (tables * 8).div_ceil(SECTOR).max(1);
    let mut data: Vec<u64> = kinds
        .iter()
        .filter(|(_, k)| **k == GrainKind::Data)
        .map(|(g, _)| *g)
        .collect();
    match layout {
        Layout::Reverse => data.reverse(),
        Layout::Shuffled(seed) | Layout::Interleaved(seed) => Rng::new(seed).shuffle(&mut data),
        _ => {}
    }
    let mut lay = SeSparseLayout {
        volatile: 1,
        ..Default::default()
    };
    // Regions: const header 0, volatile 1, journal header 2, journal 3..11, directory,
    // tables, free bitmap, backmap, grains.
    let journal = (3u64, 8u64);
    lay.directory = (journal.0 + journal.1, gd_sectors);
    lay.tables = (lay.directory.0 + gd_sectors, tables * TABLE);
    let free_bitmap = (lay.tables.0 + lay.tables.1, 1u64);
    let backmap = (free_bitmap.0 + 1, 1u64);
    let grains_off = backmap.0 + 1;
    let grains_size = (data.len() as u64 * GRAIN).max(GRAIN);
    lay.grains_region = (grains_off, grains_size);
    for (i, g) in data.iter().enumerate() {
        lay.grain_index.insert(*g, i as u64);
    }
    // Table indexes in first-use order of the grains as stored.
    let mut next_table = 0u64;
    let mut slot_of = |slot: u64, lay: &mut SeSparseLayout| -> u64 {
        *lay.table_index.entry(slot).or_insert_with(|| {
            next_table += 1;
            next_table - 1
        })
    };
    let mut gts: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut order: Vec<(u64, GrainKind)> = data.iter().map(|g| (*g, GrainKind::Data)).collect();
    order.extend(
        kinds
            .iter()
            .filter(|(_, k)| **k != GrainKind::Data)
            .map(|(g, k)| (*g, *k)),
    );
    for (g, k) in order {
        let idx = slot_of(g / ENTRIES, &mut lay);
        let t = gts
            .entry(idx)
            .or_insert_with(|| vec![0u8; (TABLE * SECTOR) as usize]);
        let e = match k {
            GrainKind::Data => allocated_entry(lay.grain_index[&g]),
            GrainKind::Zero => 2u64 << 60,
            GrainKind::Unmapped => 1u64 << 60,
        };
        LE::write_u64(&mut t[((g % ENTRIES) * 8) as usize..], e);
    }
    let f = File::create(path)?;
    let mut h = [0u8; 512];
    let put = |h: &mut [u8; 512], off: usize, v: u64| LE::write_u64(&mut h[off..], v);
    put(&mut h, 0, 0xcafe_babe);
    put(&mut h, 8, 0x0000_0002_0000_0001);
    put(&mut h, 16, capacity_sectors);
    put(&mut h, 24, GRAIN);
    put(&mut h, 32, TABLE);
    for (off, (o, s)) in [
        (80, (1, 1)),
        (96, (2, 1)),
        (112, journal),
        (128, lay.directory),
        (144, lay.tables),
        (160, free_bitmap),
        (176, backmap),
        (192, lay.grains_region),
    ] {
        put(&mut h, off, o);
        put(&mut h, off + 8, s);
    }
    f.write_all_at(&h, 0)?;
    let mut v = [0u8; 512];
    LE::write_u64(&mut v[0..], 0xcafe_cafe);
    LE::write_u64(&mut v[8..], next_table);
    LE::write_u64(&mut v[16..], 1);
    f.write_all_at(&v, SECTOR)?;
    let mut gd = vec![0u8; (gd_sectors * SECTOR) as usize];
    for (slot, idx) in &lay.table_index {
        LE::write_u64(&mut gd[(slot * 8) as usize..], (0x1000_0000u64 << 32) | idx);
    }
    f.write_all_at(&gd, lay.directory.0 * SECTOR)?;
    for (idx, t) in &gts {
        f.write_all_at(t, (lay.tables.0 + idx * TABLE) * SECTOR)?;
    }
    let mut buf = vec![0u8; (GRAIN * SECTOR) as usize];
    let cap = capacity_sectors * SECTOR;
    for (g, idx) in &lay.grain_index {
        buf.fill(0);
        let off = g * gbytes;
        let n = gbytes.min(cap - off) as usize;
        model.disk_at_layer(layer, off, &mut buf[..n]);
        f.write_all_at(&buf, (grains_off + idx * GRAIN) * SECTOR)?;
    }
    lay.end_sector = grains_off + grains_size;
    f.set_len(lay.end_sector * SECTOR)?;
    Ok(lay)
}
