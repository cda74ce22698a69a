//! Writes hosted sparse (KDMV) extents: monolithicSparse and twoGbMaxExtentSparse extents
//! (optionally with the zeroed-grain flag and a redundant directory), and streamOptimized
//! files with compressed grains and markers, with the grain directory either named in the
//! header or only in a footer (gdOffset = GD_AT_END), which QEMU never writes.

use crate::cowd::Layout;
use crate::model::{GrainKind, Model};
use crate::pattern::Rng;
use byteorder::{ByteOrder, LittleEndian as LE};
use flate2::{write::ZlibEncoder, Compression};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write as _};
use std::os::unix::fs::FileExt;
use std::path::Path;

const SECTOR: u64 = 512;
/// Entries per grain table.
pub const GTES: u64 = 512;
const GT_SECTORS: u64 = GTES * 4 / SECTOR;

/// What to write.
#[derive(Debug, Clone)]
pub struct SparseSpec {
    /// Extent size in sectors.
    pub capacity_sectors: u64,
    /// Disk byte where this extent starts (twoGbMaxExtentSparse extents after the first).
    pub extent_start: u64,
    /// Sectors per grain.
    pub grain_size: u64,
    /// Physical order of grains.
    pub layout: Layout,
    /// Set flag 0x4 and store wholly zeroed grains as entry 1.
    pub zeroed_grains: bool,
    /// Write a redundant directory and tables (uncompressed only).
    pub redundant: bool,
    /// Compress grains (streamOptimized).
    pub compressed: bool,
    /// Put the directory only in a footer (header gdOffset = GD_AT_END); compressed only.
    pub footer: bool,
    /// Embedded descriptor text, if any.
    pub descriptor: Option<String>,
}

/// Where things went.
#[derive(Debug, Clone, Default)]
pub struct SparseLayout {
    /// Sector of the grain directory.
    pub gd_sector: u64,
    /// Directory index → table sector.
    pub tables: BTreeMap<u64, u64>,
    /// Grain index (within the extent) → sector of its data or marker (1 for zeroed).
    pub grains: BTreeMap<u64, u64>,
    /// File size in sectors.
    pub end_sector: u64,
}

fn header(spec: &SparseSpec, gd: u64, rgd: u64, overhead: u64, desc_sectors: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[0..4].copy_from_slice(b"KDMV");
    let version = if spec.compressed {
        3
    } else if spec.zeroed_grains {
        2
    } else {
        1
    };
    let mut flags = 0x1u32;
    if spec.redundant {
        flags |= 0x2;
    }
    if spec.zeroed_grains {
        flags |= 0x4;
    }
    if spec.compressed {
        flags |= 0x3_0000;
    }
    LE::write_u32(&mut h[4..], version);
    LE::write_u32(&mut h[8..], flags);
    LE::write_u64(&mut h[12..], spec.capacity_sectors);
    LE::write_u64(&mut h[20..], spec.grain_size);
    if desc_sectors > 0 {
        LE::write_u64(&mut h[28..], 1);
        LE::write_u64(&mut h[36..], desc_sectors);
    }
    LE::write_u32(&mut h[44..], GTES as u32);
    LE::write_u64(&mut h[48..], rgd);
    LE::write_u64(&mut h[56..], gd);
    LE::write_u64(&mut h[64..], overhead);
    h[73..77].copy_from_slice(b"\n \r\n");
    LE::write_u16(&mut h[77..], if spec.compressed { 1 } else { 0 });
    h
}

fn order(
    grains: &[u64],
    layout: Layout,
    model: &Model,
    layer: usize,
    gbytes: u64,
    start: u64,
    end: u64,
) -> Vec<u64> {
    let mut v = grains.to_vec();
    match layout {
        Layout::Reverse => v.reverse(),
        Layout::Shuffled(seed) | Layout::Interleaved(seed) => Rng::new(seed).shuffle(&mut v),
        Layout::WriteOrder => {
            let set: std::collections::BTreeSet<u64> = grains.iter().copied().collect();
            let mut seen = std::collections::HashSet::new();
            v.clear();
            for w in model
                .writes
                .iter()
                .filter(|w| w.layer == layer && w.len > 0)
            {
                let (ws, we) = (w.offset.max(start), (w.offset + w.len).min(end));
                if we <= ws {
                    continue;
                }
                for g in (ws - start) / gbytes..=(we - 1 - start) / gbytes {
                    if set.contains(&g) && seen.insert(g) {
                        v.push(g);
                    }
                }
            }
        }
        Layout::Sequential => {}
    }
    v
}

/// Writes layer `layer` of `model` (its part inside this extent) as a KDMV file.
pub fn write_layer(
    path: &Path,
    spec: &SparseSpec,
    model: &Model,
    layer: usize,
) -> io::Result<SparseLayout> {
    assert!(
        !(spec.redundant && spec.compressed),
        "no redundant tables in stream files"
    );
    assert!(
        !spec.footer || spec.compressed,
        "footers are for stream files"
    );
    let gbytes = spec.grain_size * SECTOR;
    let cap = spec.capacity_sectors;
    let extent_bytes = cap * SECTOR;
    let n_tables = cap.div_ceil(GTES * spec.grain_size);
    let gd_sectors = (n_tables * 4).div_ceil(SECTOR);
    let all = model.layer_grains(layer, gbytes);
    // Grains of this extent (the model's grains are disk-wide).
    let mut kinds: BTreeMap<u64, GrainKind> = BTreeMap::new();
    for (g, k) in all {
        let start = g * gbytes;
        if start >= spec.extent_start && start < spec.extent_start + extent_bytes {
            kinds.insert((start - spec.extent_start) / gbytes, k);
        }
    }
    let zero = |k: &GrainKind| spec.zeroed_grains && *k != GrainKind::Data;
    let data: Vec<u64> = kinds
        .iter()
        .filter(|(_, k)| !zero(k))
        .map(|(g, _)| *g)
        .collect();
    let ordered = order(
        &data,
        spec.layout,
        model,
        layer,
        gbytes,
        spec.extent_start,
        spec.extent_start + extent_bytes,
    );
    let desc_sectors = if spec.descriptor.is_some() { 20 } else { 0 };
    let mut lay = SparseLayout::default();
    let f = File::create(path)?;
    let mut grain_buf = vec![0u8; gbytes as usize];
    let fill = |g: u64, buf: &mut [u8]| {
        buf.fill(0);
        let off = spec.extent_start + g * gbytes;
        let n = gbytes.min(spec.extent_start + extent_bytes - off) as usize;
        model.disk_at_layer(layer, off, &mut buf[..n]);
    };
    let mut gts: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let put_gte = |gts: &mut BTreeMap<u64, Vec<u8>>, g: u64, v: u64| {
        let t = gts
            .entry(g / GTES)
            .or_insert_with(|| vec![0u8; (GTES * 4) as usize]);
        LE::write_u32(&mut t[((g % GTES) * 4) as usize..], v as u32);
    };
    for (g, k) in &kinds {
        if zero(k) {
            put_gte(&mut gts, *g, 1);
            lay.grains.insert(*g, 1);
        }
    }
    if let Some(d) = &spec.descriptor {
        assert!(d.len() as u64 <= desc_sectors * SECTOR);
        f.write_all_at(d.as_bytes(), SECTOR)?;
    }
    if !spec.compressed {
        let mut next = 1 + desc_sectors;
        let rgd = if spec.redundant {
            let r = next;
            next += gd_sectors + n_tables * GT_SECTORS;
            r
        } else {
            0
        };
        let gd = next;
        next += gd_sectors + n_tables * GT_SECTORS;
        let overhead = next.div_ceil(spec.grain_size) * spec.grain_size;
        let mut at = overhead;
        for &g in &ordered {
            put_gte(&mut gts, g, at);
            lay.grains.insert(g, at);
            fill(g, &mut grain_buf);
            f.write_all_at(&grain_buf, at * SECTOR)?;
            at += spec.grain_size;
        }
        for dir in [gd].into_iter().chain((rgd != 0).then_some(rgd)) {
            let mut gdb = vec![0u8; (gd_sectors * SECTOR) as usize];
            for t in 0..n_tables {
                let sec = dir + gd_sectors + t * GT_SECTORS;
                LE::write_u32(&mut gdb[(t * 4) as usize..], sec as u32);
                let empty = vec![0u8; (GTES * 4) as usize];
                f.write_all_at(gts.get(&t).unwrap_or(&empty), sec * SECTOR)?;
                if dir == gd {
                    lay.tables.insert(t, sec);
                }
            }
            f.write_all_at(&gdb, dir * SECTOR)?;
        }
        lay.gd_sector = gd;
        lay.end_sector = at;
        f.set_len(at * SECTOR)?;
        f.write_all_at(&header(spec, gd, rgd, overhead, desc_sectors), 0)?;
        return Ok(lay);
    }
    // streamOptimized: grains with markers, then tables and directory with metadata markers.
    let mut at = 1 + desc_sectors;
    let overhead = at;
    for &g in &ordered {
        fill(g, &mut grain_buf);
        // Mixed data is compressed as qemu-img and VMware's tools do (zlib's default level).
        let level = if model.mixed {
            Compression::default()
        } else {
            Compression::fast()
        };
        let mut enc = ZlibEncoder::new(Vec::new(), level);
        enc.write_all(&grain_buf)?;
        let z = enc.finish()?;
        let mut rec = vec![0u8; (12 + z.len()).div_ceil(SECTOR as usize) * SECTOR as usize];
        LE::write_u64(&mut rec[0..], g * spec.grain_size);
        LE::write_u32(&mut rec[8..], z.len() as u32);
        rec[12..12 + z.len()].copy_from_slice(&z);
        f.write_all_at(&rec, at * SECTOR)?;
        put_gte(&mut gts, g, at);
        lay.grains.insert(g, at);
        at += rec.len() as u64 / SECTOR;
    }
    let marker = |val: u64, kind: u32| {
        let mut m = [0u8; 512];
        LE::write_u64(&mut m[0..], val);
        LE::write_u32(&mut m[12..], kind);
        m
    };
    let mut gdb = vec![0u8; (gd_sectors * SECTOR) as usize];
    for (t, table) in &gts {
        f.write_all_at(&marker(GT_SECTORS, 1), at * SECTOR)?;
        at += 1;
        f.write_all_at(table, at * SECTOR)?;
        LE::write_u32(&mut gdb[(t * 4) as usize..], at as u32);
        lay.tables.insert(*t, at);
        at += GT_SECTORS;
    }
    f.write_all_at(&marker(gd_sectors, 2), at * SECTOR)?;
    at += 1;
    let gd = at;
    f.write_all_at(&gdb, gd * SECTOR)?;
    at += gd_sectors;
    lay.gd_sector = gd;
    if spec.footer {
        f.write_all_at(&marker(1, 3), at * SECTOR)?;
        at += 1;
        f.write_all_at(&header(spec, gd, 0, overhead, desc_sectors), at * SECTOR)?;
        at += 1;
        f.write_all_at(&header(spec, u64::MAX, 0, overhead, desc_sectors), 0)?;
    } else {
        f.write_all_at(&header(spec, gd, 0, overhead, desc_sectors), 0)?;
    }
    f.write_all_at(&marker(0, 0), at * SECTOR)?;
    at += 1;
    lay.end_sector = at;
    f.set_len(at * SECTOR)?;
    Ok(lay)
}
