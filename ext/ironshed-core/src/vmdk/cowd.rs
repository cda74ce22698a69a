//! ESX "vmfsSparse" (COWD) delta extents: header, grain directory, grain tables.
//!
//! [`read`] validates the whole file before returning anything: every check of the COWD part
//! of the project's format notes (magic, version, flags, grain size, directory size, every
//! table and grain inside the file and below `freeSector`, nothing overlapping the header,
//! the directory, a table or another grain, the GTE-1 policy). The result is a list of
//! grain runs sorted by virtual position, with physically contiguous neighbours merged.

use super::error::{Error, Result};
use super::run::{GrainTables, Run, Src};
use crate::error::IoContext;
use crate::io::ReadAt;
use crate::sectormap::SectorMap;
use byteorder::{ByteOrder, LittleEndian as LE};
use std::path::Path;

/// Bytes `C O W D` at offset 0.
pub const MAGIC: &[u8; 4] = b"COWD";
/// Header size: 4 sectors.
pub const HEADER_BYTES: usize = 2048;
/// Entries per grain table, whatever the grain size.
pub const GT_ENTRIES: u64 = 4096;
/// Sectors per grain table (4096 × 4 bytes).
pub const GT_SECTORS: u64 = GT_ENTRIES * 4 / 512;
/// Largest grain size accepted, in sectors (1 MiB).
pub const MAX_GRAIN_SECTORS: u32 = 2048;
const SECTOR: u64 = 512;

/// The fields of the 2048-byte COWD header that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Format version (1).
    pub version: u32,
    /// Flags (3 in every known file).
    pub flags: u32,
    /// Virtual disk size in sectors.
    pub num_sectors: u32,
    /// Sectors per grain.
    pub grain_size: u32,
    /// Sector of the grain directory.
    pub gd_offset: u32,
    /// Number of grain directory entries.
    pub num_gd_entries: u32,
    /// Next free sector (the allocation pointer).
    pub free_sector: u32,
    /// Parent file name from the header (usually empty), NULs trimmed.
    pub parent_file_name: Vec<u8>,
    /// `generation`.
    pub generation: u32,
    /// `parentGeneration`.
    pub parent_generation: u32,
    /// Non-zero when the file was not closed cleanly.
    pub unclean_shutdown: u32,
}

impl Header {
    /// Decodes the fixed fields; `buf` must hold the 2048-byte header.
    pub fn decode(buf: &[u8; HEADER_BYTES]) -> Header {
        let name = &buf[32..32 + 1024];
        let name_end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        Header {
            version: LE::read_u32(&buf[4..]),
            flags: LE::read_u32(&buf[8..]),
            num_sectors: LE::read_u32(&buf[12..]),
            grain_size: LE::read_u32(&buf[16..]),
            gd_offset: LE::read_u32(&buf[20..]),
            num_gd_entries: LE::read_u32(&buf[24..]),
            free_sector: LE::read_u32(&buf[28..]),
            parent_file_name: name[..name_end].to_vec(),
            parent_generation: LE::read_u32(&buf[1056..]),
            generation: LE::read_u32(&buf[1060..]),
            unclean_shutdown: LE::read_u32(&buf[1648..]),
        }
    }

    /// Virtual size in bytes.
    pub fn capacity_bytes(&self) -> u64 {
        u64::from(self.num_sectors) * SECTOR
    }
    /// Grain size in bytes.
    pub fn grain_bytes(&self) -> u64 {
        u64::from(self.grain_size) * SECTOR
    }
}

/// A validated COWD extent: its header and grain directory. Grain tables are read again,
/// one at a time, when the grains are listed ([`super::run::ExtentReader::for_each_run`]), so
/// memory stays bounded by the directory whatever the size of the delta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cowd {
    /// The header.
    pub header: Header,
    /// Grain directory: table sector per entry (0 = no table).
    pub directory: Vec<u32>,
    /// Number of present grains.
    pub grains: u64,
    /// Bytes of the virtual disk the present grains cover (a partial last grain clipped).
    pub changed_bytes: u64,
    file_sectors: u64,
    gd_end_sector: u64,
}

/// One checked grain-table entry: grain `grain` is stored at file sector `sector` and covers
/// `sectors` sectors of the disk (fewer than a grain for a partial last grain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    grain: u64,
    sector: u64,
    sectors: u64,
}

/// Reads and validates a COWD extent. `name` is used in every error message.
pub fn read(src: &dyn ReadAt, name: &str) -> Result<Cowd> {
    let io = |op: String, e| Error::Io(IoContext::new(Path::new(name), op, e));
    let file_len = src.size().map_err(|e| io("get size".into(), e))?;
    if file_len < HEADER_BYTES as u64 {
        return Err(Error::format(
            name,
            format!("file is {file_len} bytes, shorter than the {HEADER_BYTES}-byte COWD header"),
        ));
    }
    let mut hbuf = [0u8; HEADER_BYTES];
    src.read_exact_at(&mut hbuf, 0)
        .map_err(|e| io("read header".into(), e))?;
    if &hbuf[0..4] != MAGIC {
        return Err(Error::format(
            name,
            format!(
                "bad magic {:02x} {:02x} {:02x} {:02x} at byte 0 (a COWD delta starts with 'COWD')",
                hbuf[0], hbuf[1], hbuf[2], hbuf[3]
            ),
        ));
    }
    let h = Header::decode(&hbuf);
    check_header(&h, name, file_len)?;

    let file_sectors = file_len / SECTOR;
    let gd_start = u64::from(h.gd_offset);
    let gd_bytes = u64::from(h.num_gd_entries) * 4;
    let gd_end_sector = gd_start + gd_bytes.div_ceil(SECTOR);
    let mut raw = vec![0u8; gd_bytes as usize];
    src.read_exact_at(&mut raw, gd_start * SECTOR)
        .map_err(|e| {
            io(
                format!("read grain directory at byte {}", gd_start * SECTOR),
                e,
            )
        })?;
    let directory: Vec<u32> = raw.chunks_exact(4).map(LE::read_u32).collect();
    drop(raw);

    let mut cowd = Cowd {
        header: h,
        directory,
        grains: 0,
        changed_bytes: 0,
        file_sectors,
        gd_end_sector,
    };
    // Every sector belongs to at most one structure: header, directory, a table, a grain.
    let mut used = SectorMap::new(file_sectors.max(gd_end_sector));
    let overlap = |cowd: &Cowd, what: String, at: u64| -> Error {
        let owner = cowd.owner_of(src, name, at, &what);
        Error::format(name, format!("{what} overlaps {owner} at file sector {at}"))
    };
    used.claim(0, 4)
        .map_err(|at| overlap(&cowd, "the header".into(), at))?;
    used.claim(gd_start, gd_end_sector - gd_start)
        .map_err(|at| overlap(&cowd, "the grain directory".into(), at))?;
    for (i, &t) in cowd.directory.iter().enumerate() {
        let t = u64::from(t);
        if t == 0 {
            continue;
        }
        cowd.check_table(i as u64, t, name)?;
        used.claim(t, GT_SECTORS).map_err(|at| {
            overlap(
                &cowd,
                format!("grain table {i} (file sectors {t}..{})", t + GT_SECTORS),
                at,
            )
        })?;
    }
    let mut gt = vec![0u8; Cowd::TABLE_BYTES];
    let (mut grains, mut sectors) = (0u64, 0u64);
    for i in 0..cowd.directory.len() as u64 {
        let Some(entries) = cowd.read_table(src, name, i, &mut gt)? else {
            continue;
        };
        for e in entries {
            let e = e?;
            used.claim(e.sector, e.sectors).map_err(|at| {
                overlap(
                    &cowd,
                    format!(
                        "grain {} (file sectors {}..{})",
                        e.grain,
                        e.sector,
                        e.sector + e.sectors
                    ),
                    at,
                )
            })?;
            grains += 1;
            sectors += e.sectors;
        }
    }
    cowd.grains = grains;
    cowd.changed_bytes = sectors * SECTOR;
    Ok(cowd)
}

impl Cowd {
    fn check_table(&self, i: u64, t: u64, name: &str) -> Result<()> {
        if t < self.gd_end_sector {
            return Err(Error::format(
                name,
                format!(
                    "grain directory entry {i} points at sector {t}, inside the header or the directory (which ends at sector {})",
                    self.gd_end_sector
                ),
            ));
        }
        if t + GT_SECTORS > self.file_sectors {
            return Err(Error::format(
                name,
                format!(
                    "grain directory entry {i}: grain table at sector {t} runs past the end of the file ({} > {} sectors)",
                    t + GT_SECTORS,
                    self.file_sectors
                ),
            ));
        }
        Ok(())
    }

    /// Names the structure that owns file sector `at` (for overlap messages); `not` is the
    /// structure being checked, which is skipped.
    fn owner_of(&self, src: &dyn ReadAt, name: &str, at: u64, not: &str) -> String {
        if at < 4 {
            return "the header".into();
        }
        if at >= u64::from(self.header.gd_offset)
            && at < self.gd_end_sector
            && not != "the grain directory"
        {
            return "the grain directory".into();
        }
        for (i, &t) in self.directory.iter().enumerate() {
            let t = u64::from(t);
            if t != 0 && at >= t && at < t + GT_SECTORS {
                let label = format!("grain table {i} (file sectors {t}..{})", t + GT_SECTORS);
                if !not.starts_with(&label) {
                    return label;
                }
            }
        }
        let mut gt = vec![0u8; Self::TABLE_BYTES];
        for i in 0..self.directory.len() as u64 {
            if let Ok(Some(entries)) = self.read_table(src, name, i, &mut gt) {
                for e in entries.flatten() {
                    let label = format!(
                        "grain {} (file sectors {}..{})",
                        e.grain,
                        e.sector,
                        e.sector + e.sectors
                    );
                    if at >= e.sector && at < e.sector + e.sectors && label != not {
                        return label;
                    }
                }
            }
        }
        "another structure".into()
    }
}

impl GrainTables for Cowd {
    type Entry = Entry;
    const ENTRY_BYTES: usize = 4;
    const TABLE_BYTES: usize = (GT_ENTRIES * 4) as usize;

    fn capacity_bytes(&self) -> u64 {
        self.header.capacity_bytes()
    }

    fn table_span(&self) -> u64 {
        GT_ENTRIES * self.header.grain_bytes()
    }

    fn table_count(&self) -> u64 {
        self.directory.len() as u64
    }

    fn has_table(&self, i: u64) -> bool {
        self.directory.get(i as usize).is_some_and(|&t| t != 0)
    }

    fn table_at(&self, i: u64, name: &str) -> Result<Option<(u64, u64)>> {
        let t = u64::from(self.directory.get(i as usize).copied().unwrap_or(0));
        if t == 0 {
            return Ok(None);
        }
        self.check_table(i, t, name)?;
        Ok(Some((t * SECTOR, i)))
    }

    fn check_entry(&self, i: u64, j: u64, e: u64, name: &str) -> Result<Entry> {
        let gs = u64::from(self.header.grain_size);
        let cap = u64::from(self.header.num_sectors);
        let free = u64::from(self.header.free_sector);
        let g = i * GT_ENTRIES + j;
        let vstart = g * gs;
        if vstart >= cap {
            return Err(Error::format(
                name,
                format!("grain table {i} entry {j} (grain {g}) is set (sector {e}) but lies beyond the disk's {cap} sectors"),
            ));
        }
        if e == 1 {
            return Err(Error::format(
                name,
                format!(
                    "grain table {i} entry {j} (grain {g}) is 1: some tools use it for a zeroed grain, others read sector 1 (header bytes); refusing an ambiguous delta"
                ),
            ));
        }
        if e < self.gd_end_sector {
            return Err(Error::format(
                name,
                format!(
                    "grain table {i} entry {j} (grain {g}) points at sector {e}, inside the header or the grain directory (which ends at sector {})",
                    self.gd_end_sector
                ),
            ));
        }
        let need = gs.min(cap - vstart);
        let end = e + need;
        if end > self.file_sectors {
            return Err(Error::format(
                name,
                format!(
                    "grain table {i} entry {j} (grain {g}) points past the end of the file (sector {e} + {need} > {})",
                    self.file_sectors
                ),
            ));
        }
        if free != 0 && end > free {
            return Err(Error::format(
                name,
                format!("grain table {i} entry {j} (grain {g}) at sector {e} ends past freeSector {free}: that space was never allocated"),
            ));
        }
        Ok(Entry {
            grain: g,
            sector: e,
            sectors: need,
        })
    }

    #[inline]
    fn run(&self, _: &dyn ReadAt, _: &str, file: u32, e: Entry) -> Result<Run> {
        Ok(Run {
            virt: e.grain * self.header.grain_bytes(),
            len: e.sectors * SECTOR,
            src: Src::Data {
                file,
                offset: e.sector * SECTOR,
            },
        })
    }
}

fn check_header(h: &Header, name: &str, file_len: u64) -> Result<()> {
    if h.version != 1 {
        return Err(Error::format(
            name,
            format!(
                "header version is {} at byte 4; only version 1 is known",
                h.version
            ),
        ));
    }
    if h.flags != 3 {
        return Err(Error::format(
            name,
            format!(
                "header flags are {:#x} at byte 8; every known COWD delta has 0x3",
                h.flags
            ),
        ));
    }
    if h.grain_size == 0 {
        return Err(Error::format(name, "grainSize is 0 at byte 16"));
    }
    if !h.grain_size.is_power_of_two() || h.grain_size > MAX_GRAIN_SECTORS {
        return Err(Error::format(
            name,
            format!(
                "grainSize {} at byte 16 is not a power of two between 1 and {MAX_GRAIN_SECTORS} sectors",
                h.grain_size
            ),
        ));
    }
    if h.num_sectors == 0 {
        return Err(Error::format(name, "numSectors (capacity) is 0 at byte 12"));
    }
    let per_table = GT_ENTRIES * u64::from(h.grain_size);
    let want = u64::from(h.num_sectors).div_ceil(per_table);
    if u64::from(h.num_gd_entries) != want {
        return Err(Error::format(
            name,
            format!(
                "numGDEntries is {} at byte 24, but {} sectors in grains of {} need {want}",
                h.num_gd_entries, h.num_sectors, h.grain_size
            ),
        ));
    }
    if h.gd_offset < 4 {
        return Err(Error::format(
            name,
            format!(
                "gdOffset {} at byte 20 points inside the 4-sector header",
                h.gd_offset
            ),
        ));
    }
    let gd_end = (u64::from(h.gd_offset) * SECTOR) + u64::from(h.num_gd_entries) * 4;
    if gd_end > file_len {
        return Err(Error::format(
            name,
            format!(
                "grain directory (sector {}, {} entries) runs past the end of the file ({gd_end} > {file_len} bytes)",
                h.gd_offset, h.num_gd_entries
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
