//! ESX space-efficient sparse ("seSparse") delta extents.
//!
//! Layout: a constant header (sector 0), a volatile header, journal, grain directory, grain
//! tables, free bitmap, backmap and grains, each a region given in the constant header.
//! [`read`] checks both headers as strictly as QEMU does, checks that the regions do not
//! overlap and that the directory and tables lie inside the file, then checks every directory
//! and table entry: table indexes and grain indexes inside their regions and inside the file,
//! no table or grain used twice, only known entry types. Tables are re-read one at a time when
//! runs are listed.

use super::error::{Error, Result};
use super::run::{GrainTables, Run, Src};
use crate::error::IoContext;
use crate::io::ReadAt;
use byteorder::{ByteOrder, LittleEndian as LE};
use std::path::Path;

/// Constant header magic.
pub const CONST_MAGIC: u64 = 0xcafe_babe;
/// Volatile header magic.
pub const VOLATILE_MAGIC: u64 = 0xcafe_cafe;
/// The only known version.
pub const VERSION: u64 = 0x0000_0002_0000_0001;
/// Grain size in sectors (4 KiB).
pub const GRAIN_SECTORS: u64 = 8;
/// Grain table size in sectors (4096 u64 entries).
pub const TABLE_SECTORS: u64 = 64;
/// Entries per grain table.
pub const TABLE_ENTRIES: u64 = TABLE_SECTORS * 512 / 8;
const SECTOR: u64 = 512;
const GRAIN_BYTES: u64 = GRAIN_SECTORS * SECTOR;
const GD_VALID: u64 = 0x1000_0000;

/// The constant header's fields (offsets and sizes in sectors).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    /// Disk size in sectors.
    pub capacity: u64,
    /// `(offset, size)` of the volatile header.
    pub volatile: (u64, u64),
    /// `(offset, size)` of the journal header.
    pub journal_header: (u64, u64),
    /// `(offset, size)` of the journal.
    pub journal: (u64, u64),
    /// `(offset, size)` of the grain directory.
    pub directory: (u64, u64),
    /// `(offset, size)` of the grain tables region.
    pub tables: (u64, u64),
    /// `(offset, size)` of the free bitmap.
    pub free_bitmap: (u64, u64),
    /// `(offset, size)` of the backmap.
    pub backmap: (u64, u64),
    /// `(offset, size)` of the grains region.
    pub grains: (u64, u64),
    /// The volatile header's replayJournal field (non-zero: not closed cleanly).
    pub replay_journal: u64,
}

impl Header {
    /// Disk size in bytes.
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity * SECTOR
    }
}

/// A validated seSparse extent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeSparse {
    /// The headers.
    pub header: Header,
    /// Raw grain directory entries, one per 16 MiB of disk.
    pub directory: Vec<u64>,
    /// Allocated grains.
    pub grains: u64,
    /// Zero (type 2) and unmapped (type 1) grains, both read as zeros.
    pub zero_grains: u64,
    /// Bytes of the disk the present grains cover.
    pub changed_bytes: u64,
    file_sectors: u64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Entry {
    Grain { g: u64, sector: u64 },
    Zero { g: u64 },
}

fn io_err(name: &str, op: String, e: std::io::Error) -> Error {
    Error::Io(IoContext::new(Path::new(name), op, e))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    LE::read_u64(&b[off..])
}

/// Reads and checks both headers.
pub fn read_header(src: &dyn ReadAt, name: &str) -> Result<(Header, u64)> {
    let file_len = src.size().map_err(|e| io_err(name, "get size".into(), e))?;
    if file_len < SECTOR {
        return Err(Error::format(
            name,
            format!("file is {file_len} bytes, shorter than the 512-byte seSparse header"),
        ));
    }
    let mut b = [0u8; 512];
    src.read_exact_at(&mut b, 0)
        .map_err(|e| io_err(name, "read constant header".into(), e))?;
    let magic = u64_at(&b, 0);
    if magic != CONST_MAGIC {
        return Err(Error::format(
            name,
            format!("bad constant header magic {magic:#018x} at byte 0 (seSparse: 0xcafebabe)"),
        ));
    }
    let version = u64_at(&b, 8);
    if version != VERSION {
        return Err(Error::unsupported(
            name,
            format!("seSparse version {version:#018x} at byte 8 (known: 0x0000000200000001)"),
        ));
    }
    let grain = u64_at(&b, 24);
    if grain != GRAIN_SECTORS {
        return Err(Error::unsupported(
            name,
            format!("grain size {grain} sectors at byte 24 (only 8 is known)"),
        ));
    }
    let gt = u64_at(&b, 32);
    if gt != TABLE_SECTORS {
        return Err(Error::unsupported(
            name,
            format!("grain table size {gt} sectors at byte 32 (only 64 is known)"),
        ));
    }
    let flags = u64_at(&b, 40);
    if flags != 0 {
        return Err(Error::unsupported(
            name,
            format!("flags {flags:#x} at byte 40 (only 0 is known)"),
        ));
    }
    for k in 0..4 {
        let v = u64_at(&b, 48 + 8 * k);
        if v != 0 {
            return Err(Error::unsupported(
                name,
                format!("reserved field at byte {} is {v:#x}, not 0", 48 + 8 * k),
            ));
        }
    }
    if b[208..].iter().any(|&x| x != 0) {
        return Err(Error::unsupported(
            name,
            "constant header padding (bytes 208..511) is not zero",
        ));
    }
    let pair = |off: usize| (u64_at(&b, off), u64_at(&b, off + 8));
    let mut h = Header {
        capacity: u64_at(&b, 16),
        volatile: pair(80),
        journal_header: pair(96),
        journal: pair(112),
        directory: pair(128),
        tables: pair(144),
        free_bitmap: pair(160),
        backmap: pair(176),
        grains: pair(192),
        replay_journal: 0,
    };
    if h.capacity == 0 || h.capacity > (u64::MAX / SECTOR) / 2 {
        return Err(Error::format(
            name,
            format!("capacity {} sectors at byte 16 is not usable", h.capacity),
        ));
    }
    let file_sectors = file_len / SECTOR;
    let vh = h.volatile.0;
    if vh == 0 || vh.checked_add(1).is_none_or(|e| e > file_sectors) {
        return Err(Error::format(
            name,
            format!(
                "volatile header at sector {vh} lies outside the file ({file_sectors} sectors)"
            ),
        ));
    }
    let mut v = [0u8; 512];
    src.read_exact_at(&mut v, vh * SECTOR)
        .map_err(|e| io_err(name, "read volatile header".into(), e))?;
    let vmagic = u64_at(&v, 0);
    if vmagic != VOLATILE_MAGIC {
        return Err(Error::format(
            name,
            format!(
                "bad volatile header magic {vmagic:#018x} at byte {} (seSparse: 0xcafecafe)",
                vh * SECTOR
            ),
        ));
    }
    if v[32..].iter().any(|&x| x != 0) {
        return Err(Error::unsupported(
            name,
            "volatile header padding is not zero",
        ));
    }
    h.replay_journal = u64_at(&v, 24);
    check_regions(&h, name, file_sectors)?;
    Ok((h, file_len))
}

fn check_regions(h: &Header, name: &str, file_sectors: u64) -> Result<()> {
    let mut regions: Vec<(&str, u64, u64)> = vec![
        ("constant header", 0, 1),
        ("volatile header", h.volatile.0, h.volatile.1.max(1)),
        ("journal header", h.journal_header.0, h.journal_header.1),
        ("journal", h.journal.0, h.journal.1),
        ("grain directory", h.directory.0, h.directory.1),
        ("grain tables", h.tables.0, h.tables.1),
        ("free bitmap", h.free_bitmap.0, h.free_bitmap.1),
        ("backmap", h.backmap.0, h.backmap.1),
        ("grains", h.grains.0, h.grains.1),
    ];
    for &(what, off, size) in &regions {
        if off.checked_add(size).is_none_or(|e| e > u64::MAX / SECTOR) {
            return Err(Error::format(
                name,
                format!("{what} region (sector {off}, {size} sectors) overflows"),
            ));
        }
    }
    regions.retain(|r| r.2 > 0);
    regions.sort_by_key(|r| (r.1, r.2));
    for w in regions.windows(2) {
        if w[1].1 < w[0].1 + w[0].2 {
            return Err(Error::format(
                name,
                format!(
                    "{} region (sectors {}..{}) overlaps the {} region (sectors {}..{})",
                    w[1].0,
                    w[1].1,
                    w[1].1 + w[1].2,
                    w[0].0,
                    w[0].1,
                    w[0].1 + w[0].2
                ),
            ));
        }
    }
    for (what, (off, size)) in [("grain directory", h.directory), ("grain tables", h.tables)] {
        if off == 0 || size == 0 || off + size > file_sectors {
            return Err(Error::format(
                name,
                format!("{what} region (sector {off}, {size} sectors) is empty or lies outside the file ({file_sectors} sectors)"),
            ));
        }
    }
    let need = h.capacity.div_ceil(TABLE_ENTRIES * GRAIN_SECTORS);
    let have = h.directory.1 * SECTOR / 8;
    if have < need {
        return Err(Error::format(
            name,
            format!(
                "grain directory has {have} entries but a disk of {} sectors needs {need}",
                h.capacity
            ),
        ));
    }
    if h.grains.0 == 0 {
        return Err(Error::format(name, "grains region offset is 0"));
    }
    Ok(())
}

/// Reads and validates a seSparse extent.
pub fn read(src: &dyn ReadAt, name: &str) -> Result<SeSparse> {
    let (h, file_len) = read_header(src, name)?;
    let file_sectors = file_len / SECTOR;
    let entries = h.capacity.div_ceil(TABLE_ENTRIES * GRAIN_SECTORS);
    let at = h.directory.0 * SECTOR;
    let mut raw = vec![0u8; (h.directory.1 * SECTOR) as usize];
    src.read_exact_at(&mut raw, at)
        .map_err(|e| io_err(name, format!("read grain directory at byte {at}"), e))?;
    let all: Vec<u64> = raw.chunks_exact(8).map(LE::read_u64).collect();
    drop(raw);
    if let Some(i) = all.iter().skip(entries as usize).position(|&e| e != 0) {
        return Err(Error::format(
            name,
            format!(
                "grain directory entry {} is set but lies beyond the disk's {} sectors",
                entries as usize + i,
                h.capacity
            ),
        ));
    }
    let directory: Vec<u64> = all.into_iter().take(entries as usize).collect();
    let mut sp = SeSparse {
        header: h,
        directory,
        grains: 0,
        zero_grains: 0,
        changed_bytes: 0,
        file_sectors,
    };
    // No two directory slots may share a table.
    let table_slots = sp.header.tables.1 / TABLE_SECTORS;
    let mut used_tables = crate::sectormap::SectorMap::new(table_slots);
    for i in 0..sp.directory.len() as u64 {
        if let Some(idx) = sp.table_index(i, name)? {
            used_tables.claim(idx, 1).map_err(|_| {
                Error::format(name, format!("grain directory entry {i} uses grain table {idx}, which another entry already uses"))
            })?;
        }
    }
    // Grains: inside their region and the file, none used twice.
    let grain_slots = (sp.header.grains.1 / GRAIN_SECTORS)
        .min(file_sectors.saturating_sub(sp.header.grains.0) / GRAIN_SECTORS);
    let mut used_grains = crate::sectormap::SectorMap::new(grain_slots);
    let mut gt = vec![0u8; SeSparse::TABLE_BYTES];
    let (mut grains, mut zeros, mut bytes) = (0u64, 0u64, 0u64);
    for i in 0..sp.directory.len() as u64 {
        let Some(list) = sp.read_table(src, name, i, &mut gt)? else {
            continue;
        };
        for e in list {
            match e? {
                Entry::Zero { g } => {
                    zeros += 1;
                    bytes += sp.clip(g);
                }
                Entry::Grain { g, sector } => {
                    let idx = (sector - sp.header.grains.0) / GRAIN_SECTORS;
                    used_grains.claim(idx, 1).map_err(|_| {
                        Error::format(name, format!("grain {g} uses grain index {idx}, which another table entry already uses"))
                    })?;
                    grains += 1;
                    bytes += sp.clip(g);
                }
            }
        }
    }
    sp.grains = grains;
    sp.zero_grains = zeros;
    sp.changed_bytes = bytes;
    Ok(sp)
}

impl SeSparse {
    fn clip(&self, g: u64) -> u64 {
        GRAIN_BYTES.min(self.header.capacity_bytes() - g * GRAIN_BYTES)
    }

    fn table_index(&self, i: u64, name: &str) -> Result<Option<u64>> {
        let e = self.directory.get(i as usize).copied().unwrap_or(0);
        if e == 0 {
            return Ok(None);
        }
        if e >> 32 != GD_VALID {
            return Err(Error::format(
                name,
                format!(
                    "grain directory entry {i} is {e:#018x}: the top 32 bits must be 0x10000000"
                ),
            ));
        }
        let idx = e & 0xffff_ffff;
        let slots = self.header.tables.1 / TABLE_SECTORS;
        if idx >= slots {
            return Err(Error::format(
                name,
                format!("grain directory entry {i} names grain table {idx}, but the tables region holds {slots}"),
            ));
        }
        Ok(Some(idx))
    }
}

impl GrainTables for SeSparse {
    type Entry = Entry;
    const ENTRY_BYTES: usize = 8;
    const TABLE_BYTES: usize = (TABLE_SECTORS * SECTOR) as usize;

    fn capacity_bytes(&self) -> u64 {
        self.header.capacity_bytes()
    }

    /// 16 MiB.
    fn table_span(&self) -> u64 {
        TABLE_ENTRIES * GRAIN_BYTES
    }

    fn table_count(&self) -> u64 {
        self.directory.len() as u64
    }

    fn has_table(&self, i: u64) -> bool {
        self.directory.get(i as usize).is_some_and(|&e| e != 0)
    }

    fn table_at(&self, i: u64, name: &str) -> Result<Option<(u64, u64)>> {
        Ok(self
            .table_index(i, name)?
            .map(|idx| ((self.header.tables.0 + idx * TABLE_SECTORS) * SECTOR, idx)))
    }

    fn check_entry(&self, i: u64, j: u64, e: u64, name: &str) -> Result<Entry> {
        let g = i * TABLE_ENTRIES + j;
        if g * GRAIN_SECTORS >= self.header.capacity {
            return Err(Error::format(
                name,
                format!("grain table for directory entry {i}, entry {j} (grain {g}) is set ({e:#018x}) but lies beyond the disk's {} sectors", self.header.capacity),
            ));
        }
        match e >> 60 {
            0 => Err(Error::format(
                name,
                format!("grain {g}: unallocated entry (type 0) with other bits set: {e:#018x}"),
            )),
            1 | 2 => Ok(Entry::Zero { g }),
            3 => {
                let idx = ((e >> 48) & 0xfff) | ((e & 0x0000_ffff_ffff_ffff) << 12);
                let slots = self.header.grains.1 / GRAIN_SECTORS;
                if idx >= slots {
                    return Err(Error::format(
                        name,
                        format!(
                            "grain {g} uses grain index {idx}, but the grains region holds {slots}"
                        ),
                    ));
                }
                let sector = self.header.grains.0 + idx * GRAIN_SECTORS;
                if sector + GRAIN_SECTORS > self.file_sectors {
                    return Err(Error::format(
                        name,
                        format!("grain {g} (index {idx}, sector {sector}) lies past the end of the file ({} sectors)", self.file_sectors),
                    ));
                }
                Ok(Entry::Grain { g, sector })
            }
            t => Err(Error::format(
                name,
                format!("grain {g}: entry {e:#018x} has unknown type {t:#x}"),
            )),
        }
    }

    /// Unmapped and zero grains become zero runs.
    #[inline]
    fn run(&self, _: &dyn ReadAt, _: &str, file: u32, e: Entry) -> Result<Run> {
        let (g, src) = match e {
            Entry::Zero { g } => (g, Src::Zero),
            Entry::Grain { g, sector } => (
                g,
                Src::Data {
                    file,
                    offset: sector * SECTOR,
                },
            ),
        };
        Ok(Run {
            virt: g * GRAIN_BYTES,
            len: self.clip(g),
            src,
        })
    }
}

#[cfg(test)]
mod tests;
