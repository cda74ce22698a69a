//! ESX "vmfsSparse" (COWD) delta extents: header, grain directory, grain tables.
//!
//! [`read`] validates the whole file before returning anything: every check of the COWD part
//! of the project's format notes (magic, version, flags, grain size, directory size, every
//! table and grain inside the file and below `freeSector`, nothing overlapping the header,
//! the directory, a table or another grain, the GTE-1 policy). The result is a list of
//! grain runs sorted by virtual position, with physically contiguous neighbours merged.

use super::error::{Error, Result};
use crate::error::IoContext;
use crate::io::ReadAt;
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

/// A run of grains present in the delta: `grains` consecutive virtual grains starting at
/// grain `virt_grain`, stored contiguously from file sector `file_sector`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrainRun {
    /// First virtual grain number.
    pub virt_grain: u64,
    /// File sector of its data.
    pub file_sector: u64,
    /// Number of grains in the run.
    pub grains: u64,
}

/// A validated COWD extent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cowd {
    /// The header.
    pub header: Header,
    /// Present grains, sorted by `virt_grain`, physically contiguous neighbours merged.
    pub runs: Vec<GrainRun>,
    /// Number of present grains.
    pub grains: u64,
}

impl Cowd {
    /// Byte ranges `(virtual offset, length, file offset)` of the present data, each clipped to
    /// the capacity (a partial last grain is shorter).
    pub fn byte_runs(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        let gb = self.header.grain_bytes();
        let cap = self.header.capacity_bytes();
        self.runs.iter().map(move |r| {
            let start = r.virt_grain * gb;
            let len = (r.grains * gb).min(cap - start);
            (start, len, r.file_sector * SECTOR)
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Region {
    Header,
    Directory,
    Table(u64),
    Grains(u64),
}

impl Region {
    fn describe(self) -> String {
        match self {
            Region::Header => "the header".into(),
            Region::Directory => "the grain directory".into(),
            Region::Table(i) => format!("grain table {i}"),
            Region::Grains(g) => format!("grain {g}"),
        }
    }
}

/// Reads and validates a COWD extent. `name` is used in every error message.
pub fn read<R: ReadAt + ?Sized>(src: &R, name: &str) -> Result<Cowd> {
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
    let gs = u64::from(h.grain_size);
    let cap = u64::from(h.num_sectors);
    let gd_start = u64::from(h.gd_offset);
    let gd_bytes = u64::from(h.num_gd_entries) * 4;
    let gd_end_sector = gd_start + gd_bytes.div_ceil(SECTOR);
    let free = u64::from(h.free_sector);

    let mut gd = vec![0u8; gd_bytes as usize];
    src.read_exact_at(&mut gd, gd_start * SECTOR).map_err(|e| {
        io(
            format!("read grain directory at byte {}", gd_start * SECTOR),
            e,
        )
    })?;

    let mut regions: Vec<(u64, u64, Region)> = vec![
        (0, 4, Region::Header),
        (gd_start, gd_end_sector, Region::Directory),
    ];
    let mut runs: Vec<GrainRun> = Vec::new();
    let mut grains = 0u64;
    let mut gt = vec![0u8; (GT_ENTRIES * 4) as usize];
    for i in 0..u64::from(h.num_gd_entries) {
        let t = u64::from(LE::read_u32(&gd[(i * 4) as usize..]));
        if t == 0 {
            continue;
        }
        if t < gd_end_sector {
            return Err(Error::format(
                name,
                format!(
                    "grain directory entry {i} points at sector {t}, inside the header or the directory (which ends at sector {gd_end_sector})"
                ),
            ));
        }
        if t + GT_SECTORS > file_sectors {
            return Err(Error::format(
                name,
                format!(
                    "grain directory entry {i}: grain table at sector {t} runs past the end of the file ({} > {file_sectors} sectors)",
                    t + GT_SECTORS
                ),
            ));
        }
        regions.push((t, t + GT_SECTORS, Region::Table(i)));
        src.read_exact_at(&mut gt, t * SECTOR)
            .map_err(|e| io(format!("read grain table {i} at byte {}", t * SECTOR), e))?;
        for j in 0..GT_ENTRIES {
            let e = u64::from(LE::read_u32(&gt[(j * 4) as usize..]));
            if e == 0 {
                continue;
            }
            let g = i * GT_ENTRIES + j;
            let vstart = g * gs;
            if vstart >= cap {
                return Err(Error::format(
                    name,
                    format!(
                        "grain table {i} entry {j} (grain {g}) is set (sector {e}) but lies beyond the disk's {cap} sectors"
                    ),
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
            if e < gd_end_sector {
                return Err(Error::format(
                    name,
                    format!(
                        "grain table {i} entry {j} (grain {g}) points at sector {e}, inside the header or the grain directory (which ends at sector {gd_end_sector})"
                    ),
                ));
            }
            let need = gs.min(cap - vstart);
            let end = e + need;
            if end > file_sectors {
                return Err(Error::format(
                    name,
                    format!(
                        "grain table {i} entry {j} (grain {g}) points past the end of the file (sector {e} + {need} > {file_sectors})"
                    ),
                ));
            }
            if free != 0 && end > free {
                return Err(Error::format(
                    name,
                    format!(
                        "grain table {i} entry {j} (grain {g}) at sector {e} ends past freeSector {free}: that space was never allocated"
                    ),
                ));
            }
            grains += 1;
            match runs.last_mut() {
                Some(r) if r.virt_grain + r.grains == g && r.file_sector + r.grains * gs == e => {
                    r.grains += 1;
                }
                _ => runs.push(GrainRun {
                    virt_grain: g,
                    file_sector: e,
                    grains: 1,
                }),
            }
        }
    }
    for r in &runs {
        let vstart = r.virt_grain * gs;
        let len = (r.grains * gs).min(cap - vstart);
        regions.push((
            r.file_sector,
            r.file_sector + len,
            Region::Grains(r.virt_grain),
        ));
    }
    check_overlaps(&mut regions, name, gs)?;
    Ok(Cowd {
        header: h,
        runs,
        grains,
    })
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

fn check_overlaps(regions: &mut [(u64, u64, Region)], name: &str, gs: u64) -> Result<()> {
    regions.sort_unstable_by_key(|r| (r.0, r.1));
    for w in regions.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if b.0 < a.1 {
            let label = |r: &(u64, u64, Region)| match r.2 {
                Region::Grains(g) => {
                    let n = (r.1 - r.0).div_ceil(gs);
                    if n == 1 {
                        format!("grain {g} (file sectors {}..{})", r.0, r.1)
                    } else {
                        format!("grains {g}..{} (file sectors {}..{})", g + n - 1, r.0, r.1)
                    }
                }
                other => format!("{} (file sectors {}..{})", other.describe(), r.0, r.1),
            };
            return Err(Error::format(
                name,
                format!("{} overlaps {} in the file", label(b), label(a)),
            ));
        }
    }
    Ok(())
}
