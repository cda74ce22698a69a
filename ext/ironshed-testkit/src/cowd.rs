//! Writes ESX COWD (vmfsSparse) delta extents: 2048-byte header, grain directory at sector 4,
//! 4096-entry grain tables, grains in a chosen physical order.

use crate::model::Model;
use crate::pattern::Rng;
use byteorder::{ByteOrder, LittleEndian as LE};
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Entries per grain table.
pub const GT_ENTRIES: u64 = 4096;
const SECTOR: u64 = 512;

/// Physical order of tables and grains in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// All tables after the directory, then grains in virtual order.
    Sequential,
    /// All tables, then grains in reverse virtual order.
    Reverse,
    /// All tables, then grains in a seeded random order.
    Shuffled(u64),
    /// Each table followed by its own grains, in a seeded random order (on-demand allocation).
    Interleaved(u64),
    /// All tables, then grains in the order the model's writes touched them (how ESX
    /// allocates: the file grows as the guest writes).
    WriteOrder,
}

impl Layout {
    /// Parses `sequential`, `reverse`, `shuffled`, `interleaved` (seeded by `seed`).
    pub fn parse(s: &str, seed: u64) -> Option<Layout> {
        Some(match s {
            "sequential" => Layout::Sequential,
            "reverse" => Layout::Reverse,
            "shuffled" => Layout::Shuffled(seed),
            "interleaved" => Layout::Interleaved(seed),
            "write-order" => Layout::WriteOrder,
            _ => return None,
        })
    }
}

/// What to write.
#[derive(Debug, Clone)]
pub struct CowdSpec {
    /// Disk size in sectors.
    pub capacity_sectors: u32,
    /// Sectors per grain.
    pub grain_size: u32,
    /// Physical order.
    pub layout: Layout,
    /// Value of the uncleanShutdown field.
    pub unclean: u32,
}

/// Where things went, for tests that corrupt a specific field.
#[derive(Debug, Clone, Default)]
pub struct CowdLayout {
    /// Sector of the grain directory.
    pub gd_sector: u64,
    /// Number of directory entries.
    pub gd_entries: u64,
    /// Directory index → table sector.
    pub tables: BTreeMap<u64, u64>,
    /// Grain index → data sector.
    pub grains: BTreeMap<u64, u64>,
    /// Total file size in sectors (= freeSector).
    pub end_sector: u64,
}

impl CowdLayout {
    /// Byte offset of the table entry for grain `g`.
    pub fn gte_offset(&self, g: u64) -> Option<u64> {
        let t = self.tables.get(&(g / GT_ENTRIES))?;
        Some(t * SECTOR + (g % GT_ENTRIES) * 4)
    }
}

/// Writes a COWD extent holding, for every grain any write of `model` touches, that grain of
/// the written disk (a partial last grain is padded with zeros in the file).
pub fn write(path: &Path, spec: &CowdSpec, model: &Model) -> io::Result<CowdLayout> {
    write_layer(path, spec, model, 0)
}

/// Like [`write`], for snapshot layer `layer` of the model: its grains hold the disk as seen
/// through that layer. COWD has no zeroed grains: zeroed grains are stored as data.
pub fn write_layer(
    path: &Path,
    spec: &CowdSpec,
    model: &Model,
    layer: usize,
) -> io::Result<CowdLayout> {
    let gs = u64::from(spec.grain_size);
    let gbytes = gs * SECTOR;
    let cap = u64::from(spec.capacity_sectors);
    assert_eq!(model.capacity, cap * SECTOR, "model capacity must match");
    let per_table = GT_ENTRIES * gs;
    let gd_entries = cap.div_ceil(per_table);
    let gd_sectors = (gd_entries * 4).div_ceil(SECTOR);
    let grains: Vec<u64> = model.layer_grains(layer, gbytes).into_keys().collect();

    let mut by_table: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for &g in &grains {
        by_table.entry(g / GT_ENTRIES).or_default().push(g);
    }
    let mut lay = CowdLayout {
        gd_sector: 4,
        gd_entries,
        ..Default::default()
    };
    let mut next = 4 + gd_sectors;
    let mut order: Vec<u64> = Vec::new();
    match spec.layout {
        Layout::Interleaved(seed) => {
            let mut rng = Rng::new(seed);
            for (&t, gs_in) in &by_table {
                lay.tables.insert(t, next);
                next += GT_ENTRIES * 4 / SECTOR;
                let mut v = gs_in.clone();
                rng.shuffle(&mut v);
                for g in v {
                    lay.grains.insert(g, next);
                    next += gs;
                }
            }
        }
        _ => {
            for &t in by_table.keys() {
                lay.tables.insert(t, next);
                next += GT_ENTRIES * 4 / SECTOR;
            }
            if spec.layout == Layout::WriteOrder {
                let mut seen = std::collections::HashSet::new();
                for w in model.writes.iter().filter(|w| w.layer == layer) {
                    if w.len == 0 {
                        continue;
                    }
                    for g in w.offset / gbytes..=(w.offset + w.len - 1) / gbytes {
                        if seen.insert(g) {
                            order.push(g);
                        }
                    }
                }
            } else {
                order.extend_from_slice(&grains);
            }
            match spec.layout {
                Layout::Reverse => order.reverse(),
                Layout::Shuffled(seed) => Rng::new(seed).shuffle(&mut order),
                _ => {}
            }
            for &g in &order {
                lay.grains.insert(g, next);
                next += gs;
            }
        }
    }
    lay.end_sector = next;

    let f = File::create(path)?;
    f.set_len(next * SECTOR)?;
    let mut h = vec![0u8; 2048];
    h[0..4].copy_from_slice(b"COWD");
    LE::write_u32(&mut h[4..], 1);
    LE::write_u32(&mut h[8..], 3);
    LE::write_u32(&mut h[12..], spec.capacity_sectors);
    LE::write_u32(&mut h[16..], spec.grain_size);
    LE::write_u32(&mut h[20..], 4);
    LE::write_u32(&mut h[24..], gd_entries as u32);
    LE::write_u32(&mut h[28..], next as u32);
    LE::write_u32(&mut h[1060..], 1);
    LE::write_u32(&mut h[1648..], spec.unclean);
    f.write_all_at(&h, 0)?;

    let mut gd = vec![0u8; (gd_sectors * SECTOR) as usize];
    for (&t, &sec) in &lay.tables {
        LE::write_u32(&mut gd[(t * 4) as usize..], sec as u32);
    }
    f.write_all_at(&gd, 4 * SECTOR)?;
    for (&t, &sec) in &lay.tables {
        let mut gt = vec![0u8; (GT_ENTRIES * 4) as usize];
        for (&g, &gsec) in lay.grains.range(t * GT_ENTRIES..(t + 1) * GT_ENTRIES) {
            LE::write_u32(&mut gt[((g % GT_ENTRIES) * 4) as usize..], gsec as u32);
        }
        f.write_all_at(&gt, sec * SECTOR)?;
    }
    let mut buf = vec![0u8; gbytes as usize];
    for (&g, &gsec) in &lay.grains {
        let start = g * gbytes;
        let n = gbytes.min(model.capacity - start) as usize;
        buf.fill(0);
        model.disk_at_layer(layer, start, &mut buf[..n]);
        f.write_all_at(&buf, gsec * SECTOR)?;
    }
    Ok(lay)
}
