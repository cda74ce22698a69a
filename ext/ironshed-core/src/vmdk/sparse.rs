//! Hosted sparse extents ("KDMV", VMDK4): monolithicSparse, the extents of
//! twoGbMaxExtentSparse, and streamOptimized (zlib-compressed grains with markers, including
//! the footer layout where the header's gdOffset is GD_AT_END).
//!
//! [`read`] validates the header (or footer), the grain directory and every grain table
//! entry, claims the sectors of every structure in a bitmap to prove nothing overlaps, and
//! inflates every compressed grain once to prove it decodes to exactly one grain, all before
//! anything is written ([`Options::inflate_once`] leaves the inflating to the apply). Grain
//! tables are read again one at a time when runs are listed.

use super::error::{Error, Result};
use super::run::{DeflateRef, GrainTables, Run, Src};
use crate::error::IoContext;
use crate::io::ReadAt;
use crate::sectormap::SectorMap;
use byteorder::{ByteOrder, LittleEndian as LE};
use std::path::Path;

/// Bytes `K D M V` at offset 0.
pub const MAGIC: &[u8; 4] = b"KDMV";
/// gdOffset value meaning "the real header is the footer".
pub const GD_AT_END: u64 = u64::MAX;
/// Flag: the newline detection bytes are valid.
pub const FLAG_NEWLINE: u32 = 0x1;
/// Flag: a redundant grain directory exists.
pub const FLAG_RGD: u32 = 0x2;
/// Flag: grain table entry 1 means a zeroed grain.
pub const FLAG_ZERO_GRAIN: u32 = 0x4;
/// Flag: grains are compressed.
pub const FLAG_COMPRESSED: u32 = 0x1_0000;
/// Flag: grains (and metadata) are preceded by markers.
pub const FLAG_MARKERS: u32 = 0x2_0000;
/// Entries per grain table this reader accepts.
pub const GTES_PER_GT: u64 = 512;
/// Largest grain accepted, in sectors (1 MiB).
pub const MAX_GRAIN_SECTORS: u64 = 2048;
/// Largest embedded descriptor read, in bytes.
const MAX_EMBEDDED: u64 = 1 << 20;
const SECTOR: u64 = 512;
const GT_SECTORS: u64 = GTES_PER_GT * 4 / SECTOR;
const MARKER_FOOTER: u32 = 3;
const MARKER_EOS: u32 = 0;

/// The fields of a SparseExtentHeader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// 1, 2 or 3.
    pub version: u32,
    /// Flag bits (`FLAG_*`).
    pub flags: u32,
    /// Extent size in sectors.
    pub capacity: u64,
    /// Sectors per grain.
    pub grain_size: u64,
    /// Sector of the embedded descriptor (0 = none).
    pub descriptor_offset: u64,
    /// Sectors of the embedded descriptor.
    pub descriptor_size: u64,
    /// Entries per grain table (512).
    pub num_gtes_per_gt: u32,
    /// Sector of the redundant grain directory.
    pub rgd_offset: u64,
    /// Sector of the grain directory (GD_AT_END: see the footer).
    pub gd_offset: u64,
    /// Sectors of metadata before the grains.
    pub overhead: u64,
    /// Non-zero when the file was not closed cleanly.
    pub unclean_shutdown: u8,
    /// The four newline detection bytes.
    pub newline: [u8; 4],
    /// 0 none, 1 deflate.
    pub compress_algorithm: u16,
}

impl Header {
    /// Decodes a 512-byte header sector (magic not checked).
    pub fn decode(b: &[u8; 512]) -> Header {
        Header {
            version: LE::read_u32(&b[4..]),
            flags: LE::read_u32(&b[8..]),
            capacity: LE::read_u64(&b[12..]),
            grain_size: LE::read_u64(&b[20..]),
            descriptor_offset: LE::read_u64(&b[28..]),
            descriptor_size: LE::read_u64(&b[36..]),
            num_gtes_per_gt: LE::read_u32(&b[44..]),
            rgd_offset: LE::read_u64(&b[48..]),
            gd_offset: LE::read_u64(&b[56..]),
            overhead: LE::read_u64(&b[64..]),
            unclean_shutdown: b[72],
            newline: [b[73], b[74], b[75], b[76]],
            compress_algorithm: LE::read_u16(&b[77..]),
        }
    }
    /// Extent size in bytes.
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity * SECTOR
    }
    /// Grain size in bytes.
    pub fn grain_bytes(&self) -> u64 {
        self.grain_size * SECTOR
    }
    /// True for compressed (streamOptimized) grains.
    pub fn compressed(&self) -> bool {
        self.compress_algorithm == 1
    }
}

/// How to read a sparse extent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Compare every entry of the redundant grain tables with the primary ones, and refuse on
    /// any difference.
    pub check_redundant: bool,
    /// Check every grain marker (its LBA, its compressed size, that it lies in the file and
    /// overlaps nothing) but do not inflate compressed grains: the apply inflates each one
    /// once, and a grain that does not decode then stops it after earlier batches were
    /// written. Without it every grain is inflated here, before anything is written.
    pub inflate_once: bool,
}

/// A validated hosted sparse extent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sparse {
    /// The effective header (the footer's, for GD_AT_END files).
    pub header: Header,
    /// Grain directory: table sector per entry (0 = no table).
    pub directory: Vec<u32>,
    /// Grains with data (compressed or not).
    pub grains: u64,
    /// Zeroed grains (entry 1 with the zeroed-grain flag).
    pub zero_grains: u64,
    /// Bytes of the extent the present grains (data and zeroed) cover, last grain clipped.
    pub changed_bytes: u64,
    /// The embedded descriptor text, if the header points at one.
    pub embedded_descriptor: Option<Vec<u8>>,
    file_sectors: u64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Entry {
    Grain { g: u64, sector: u64, clip: u64 },
    Zero { g: u64, clip: u64 },
}

fn io_err(name: &str, op: String, e: std::io::Error) -> Error {
    Error::Io(IoContext::new(Path::new(name), op, e))
}

/// Reads the 512-byte header (or, for GD_AT_END files, the footer) and checks it.
pub fn read_header(src: &dyn ReadAt, name: &str) -> Result<(Header, u64)> {
    let file_len = src.size().map_err(|e| io_err(name, "get size".into(), e))?;
    if file_len < SECTOR {
        return Err(Error::format(
            name,
            format!("file is {file_len} bytes, shorter than the 512-byte sparse header"),
        ));
    }
    let mut b = [0u8; 512];
    src.read_exact_at(&mut b, 0)
        .map_err(|e| io_err(name, "read header".into(), e))?;
    if &b[0..4] != MAGIC {
        return Err(Error::format(
            name,
            format!("bad magic {:02x} {:02x} {:02x} {:02x} at byte 0 (a hosted sparse extent starts with 'KDMV')", b[0], b[1], b[2], b[3]),
        ));
    }
    let mut h = Header::decode(&b);
    if h.gd_offset == GD_AT_END {
        h = read_footer(src, name, file_len)?;
    }
    check_header(&h, name, file_len)?;
    Ok((h, file_len))
}

fn read_footer(src: &dyn ReadAt, name: &str, file_len: u64) -> Result<Header> {
    if file_len < 4 * SECTOR || !file_len.is_multiple_of(SECTOR) {
        return Err(Error::format(
            name,
            format!("gdOffset is GD_AT_END but the file ({file_len} bytes) cannot hold a footer marker, footer and end-of-stream marker"),
        ));
    }
    let mut tail = [0u8; 1536];
    let at = file_len - 1536;
    src.read_exact_at(&mut tail, at)
        .map_err(|e| io_err(name, format!("read footer at byte {at}"), e))?;
    let (marker, rest) = tail.split_at(512);
    let (footer, eos) = rest.split_at(512);
    if LE::read_u32(&marker[8..]) != 0 || LE::read_u32(&marker[12..]) != MARKER_FOOTER {
        return Err(Error::format(
            name,
            format!(
                "gdOffset is GD_AT_END but the sector at byte {at} is not a footer marker (size {}, type {})",
                LE::read_u32(&marker[8..]),
                LE::read_u32(&marker[12..])
            ),
        ));
    }
    if &footer[0..4] != MAGIC {
        return Err(Error::format(
            name,
            format!("footer at byte {} does not start with 'KDMV'", at + 512),
        ));
    }
    if LE::read_u64(eos) != 0
        || LE::read_u32(&eos[8..]) != 0
        || LE::read_u32(&eos[12..]) != MARKER_EOS
    {
        return Err(Error::format(
            name,
            format!(
                "the last sector (byte {}) is not an end-of-stream marker",
                at + 1024
            ),
        ));
    }
    let mut fb = [0u8; 512];
    fb.copy_from_slice(footer);
    let h = Header::decode(&fb);
    if h.gd_offset == GD_AT_END {
        return Err(Error::format(
            name,
            format!("the footer at byte {} also says GD_AT_END", at + 512),
        ));
    }
    Ok(h)
}

fn check_header(h: &Header, name: &str, file_len: u64) -> Result<()> {
    if !(1..=3).contains(&h.version) {
        return Err(Error::unsupported(
            name,
            format!(
                "sparse header version {} at byte 4 (known: 1, 2, 3)",
                h.version
            ),
        ));
    }
    let unknown = h.flags & 0xffff_0000 & !(FLAG_COMPRESSED | FLAG_MARKERS);
    if unknown != 0 {
        return Err(Error::unsupported(
            name,
            format!("unknown incompatible flags {unknown:#x} at byte 8"),
        ));
    }
    if h.flags & FLAG_NEWLINE != 0 && h.newline != *b"\n \r\n" {
        return Err(Error::format(
            name,
            format!(
                "newline detection bytes at byte 73 are {:02x} {:02x} {:02x} {:02x}, not 0a 20 0d 0a: the file was damaged by a text-mode transfer",
                h.newline[0], h.newline[1], h.newline[2], h.newline[3]
            ),
        ));
    }
    if u64::from(h.num_gtes_per_gt) != GTES_PER_GT {
        return Err(Error::unsupported(
            name,
            format!(
                "numGTEsPerGT is {} at byte 44 (only 512 is known)",
                h.num_gtes_per_gt
            ),
        ));
    }
    if h.grain_size == 0 || !h.grain_size.is_power_of_two() || h.grain_size > MAX_GRAIN_SECTORS {
        return Err(Error::format(
            name,
            format!("grainSize {} at byte 20 is not a power of two between 1 and {MAX_GRAIN_SECTORS} sectors", h.grain_size),
        ));
    }
    if h.capacity == 0 || h.capacity > (u64::MAX / SECTOR) / 2 {
        return Err(Error::format(
            name,
            format!("capacity {} sectors at byte 12 is not usable", h.capacity),
        ));
    }
    if h.compress_algorithm > 1 {
        return Err(Error::unsupported(
            name,
            format!(
                "compressAlgorithm {} at byte 77 (known: 0 none, 1 deflate)",
                h.compress_algorithm
            ),
        ));
    }
    if h.flags & FLAG_COMPRESSED != 0 && !h.compressed() {
        return Err(Error::format(
            name,
            "flags say the grains are compressed but compressAlgorithm is 0",
        ));
    }
    if h.compressed() && h.flags & FLAG_MARKERS == 0 {
        return Err(Error::unsupported(
            name,
            "compressed grains without grain markers",
        ));
    }
    if !h.compressed() && h.flags & FLAG_MARKERS != 0 {
        return Err(Error::unsupported(
            name,
            "grain markers on uncompressed grains",
        ));
    }
    if h.gd_offset == 0 {
        return Err(Error::format(name, "gdOffset is 0 at byte 56"));
    }
    let file_sectors = file_len / SECTOR;
    if h.overhead > file_sectors {
        return Err(Error::format(
            name,
            format!(
                "file truncated: overHead is {} sectors but the file has {file_sectors}",
                h.overhead
            ),
        ));
    }
    let gd_end = gd_entries(h)
        .checked_mul(4)
        .and_then(|b| b.checked_add(h.gd_offset.checked_mul(SECTOR)?));
    if gd_end.is_none_or(|e| e > file_len) {
        return Err(Error::format(
            name,
            format!("grain directory (sector {}, {} entries) runs past the end of the file ({file_len} bytes)", h.gd_offset, gd_entries(h)),
        ));
    }
    Ok(())
}

fn gd_entries(h: &Header) -> u64 {
    h.capacity.div_ceil(GTES_PER_GT * h.grain_size)
}

/// Reads the embedded descriptor named by the header, NULs trimmed (None if there is none).
pub fn embedded_descriptor(
    src: &dyn ReadAt,
    name: &str,
    h: &Header,
    file_len: u64,
) -> Result<Option<Vec<u8>>> {
    if h.descriptor_offset == 0 || h.descriptor_size == 0 {
        return Ok(None);
    }
    let start = h.descriptor_offset.checked_mul(SECTOR);
    let len = h
        .descriptor_size
        .checked_mul(SECTOR)
        .map(|l| l.min(MAX_EMBEDDED));
    let (Some(start), Some(len)) = (start, len) else {
        return Err(Error::format(name, "embedded descriptor offset overflows"));
    };
    if start.checked_add(len).is_none_or(|e| e > file_len) {
        return Err(Error::format(
            name,
            format!(
                "embedded descriptor (sector {}, {} sectors) runs past the end of the file",
                h.descriptor_offset, h.descriptor_size
            ),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    src.read_exact_at(&mut buf, start)
        .map_err(|e| io_err(name, format!("read embedded descriptor at byte {start}"), e))?;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    buf.truncate(end);
    Ok(Some(buf))
}

/// Reads and validates a hosted sparse extent.
pub fn read(src: &dyn ReadAt, name: &str, opts: Options) -> Result<Sparse> {
    let (h, file_len) = read_header(src, name)?;
    let file_sectors = file_len / SECTOR;
    let embedded = embedded_descriptor(src, name, &h, file_len)?;
    let directory = read_directory(src, name, &h, h.gd_offset, "grain directory")?;
    let mut sp = Sparse {
        header: h.clone(),
        directory,
        grains: 0,
        zero_grains: 0,
        changed_bytes: 0,
        embedded_descriptor: embedded,
        file_sectors,
    };
    let gd_sectors = (gd_entries(&h) * 4).div_ceil(SECTOR);
    let mut used = SectorMap::new(file_sectors);
    let overlap = |what: &str, at: u64| {
        Error::format(
            name,
            format!("{what} overlaps another structure of the file at sector {at}"),
        )
    };
    let claim = |used: &mut SectorMap, start: u64, len: u64, what: &str| -> Result<()> {
        used.claim(start, len).map_err(|at| {
            if at >= file_sectors {
                Error::format(name, format!("{what} (sectors {start}..{}) runs past the end of the file ({file_sectors} sectors)", start.saturating_add(len)))
            } else {
                overlap(what, at)
            }
        })
    };
    claim(&mut used, 0, 1, "the header")?;
    if h.descriptor_offset != 0 && h.descriptor_size != 0 {
        claim(
            &mut used,
            h.descriptor_offset,
            h.descriptor_size,
            "the embedded descriptor",
        )?;
    }
    if file_len >= 1536 && is_footer_file(src, file_len) {
        claim(&mut used, file_sectors - 3, 3, "the footer")?;
    }
    claim(&mut used, h.gd_offset, gd_sectors, "the grain directory")?;
    for (i, &t) in sp.directory.iter().enumerate() {
        let t = u64::from(t);
        if t != 0 {
            claim(
                &mut used,
                t,
                GT_SECTORS,
                &format!("grain table {i} (sector {t})"),
            )?;
        }
    }
    let redundant = if h.flags & FLAG_RGD != 0 && h.rgd_offset != 0 {
        claim(
            &mut used,
            h.rgd_offset,
            gd_sectors,
            "the redundant grain directory",
        )?;
        let rdir = read_directory(src, name, &h, h.rgd_offset, "redundant grain directory")?;
        for (i, &t) in rdir.iter().enumerate() {
            let t = u64::from(t);
            if t != 0 {
                claim(
                    &mut used,
                    t,
                    GT_SECTORS,
                    &format!("redundant grain table {i} (sector {t})"),
                )?;
            }
        }
        Some(rdir)
    } else {
        None
    };
    let mut gt = vec![0u8; Sparse::TABLE_BYTES];
    let mut rgt = vec![0u8; Sparse::TABLE_BYTES];
    let (mut grains, mut zeros, mut bytes) = (0u64, 0u64, 0u64);
    let mut batch: Vec<(u64, u64, u64)> = Vec::new();
    for i in 0..sp.directory.len() as u64 {
        if opts.check_redundant {
            if let Some(rdir) = &redundant {
                sp.compare_redundant(src, name, i, rdir, &mut gt, &mut rgt)?;
            }
        }
        let Some(entries) = sp.read_table(src, name, i, &mut gt)? else {
            continue;
        };
        batch.clear();
        for e in entries {
            match e? {
                Entry::Zero { clip, .. } => {
                    zeros += 1;
                    bytes += clip;
                }
                Entry::Grain { g, sector, clip } => batch.push((g, sector, clip)),
            }
        }
        // Compressed grains of the table are inflated once, on every core, to prove they
        // decode; then every grain claims its sectors.
        let spans: Vec<u64> = if h.compressed() {
            sp.check_markers(src, name, &batch, !opts.inflate_once)?
                .into_iter()
                .map(|clen| (12 + u64::from(clen)).div_ceil(SECTOR))
                .collect()
        } else {
            batch
                .iter()
                .map(|&(_, _, clip)| clip.div_ceil(SECTOR))
                .collect()
        };
        for (&(g, sector, clip), span) in batch.iter().zip(spans) {
            claim(
                &mut used,
                sector,
                span,
                &format!("grain {g} (sector {sector})"),
            )?;
            grains += 1;
            bytes += clip;
        }
    }
    sp.grains = grains;
    sp.zero_grains = zeros;
    sp.changed_bytes = bytes;
    Ok(sp)
}

fn is_footer_file(src: &dyn ReadAt, file_len: u64) -> bool {
    let mut b = [0u8; 16];
    src.read_exact_at(&mut b, file_len - 1536).is_ok()
        && LE::read_u32(&b[8..]) == 0
        && LE::read_u32(&b[12..]) == MARKER_FOOTER
        && {
            let mut m = [0u8; 4];
            src.read_exact_at(&mut m, file_len - 1024).is_ok() && &m == MAGIC
        }
}

fn read_directory(
    src: &dyn ReadAt,
    name: &str,
    h: &Header,
    at: u64,
    what: &str,
) -> Result<Vec<u32>> {
    let n = gd_entries(h);
    let start = at
        .checked_mul(SECTOR)
        .ok_or_else(|| Error::format(name, format!("{what} offset overflows")))?;
    let len = src.size().map_err(|e| io_err(name, "get size".into(), e))?;
    if start.checked_add(n * 4).is_none_or(|e| e > len) {
        return Err(Error::format(
            name,
            format!("{what} (sector {at}, {n} entries) runs past the end of the file"),
        ));
    }
    let mut raw = vec![0u8; (n * 4) as usize];
    src.read_exact_at(&mut raw, start)
        .map_err(|e| io_err(name, format!("read {what} at byte {start}"), e))?;
    Ok(raw.chunks_exact(4).map(LE::read_u32).collect())
}

impl GrainTables for Sparse {
    type Entry = Entry;
    const ENTRY_BYTES: usize = 4;
    const TABLE_BYTES: usize = (GTES_PER_GT * 4) as usize;

    fn capacity_bytes(&self) -> u64 {
        self.header.capacity_bytes()
    }

    fn table_span(&self) -> u64 {
        GTES_PER_GT * self.header.grain_bytes()
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
        if t + GT_SECTORS > self.file_sectors {
            return Err(Error::format(
                name,
                format!("grain directory entry {i}: grain table at sector {t} runs past the end of the file ({} sectors)", self.file_sectors),
            ));
        }
        Ok(Some((t * SECTOR, i)))
    }

    fn check_entry(&self, i: u64, j: u64, e: u64, name: &str) -> Result<Entry> {
        let gs = self.header.grain_size;
        let cap = self.header.capacity;
        let g = i * GTES_PER_GT + j;
        let vstart = g * gs;
        if vstart >= cap {
            return Err(Error::format(
                name,
                format!("grain table {i} entry {j} (grain {g}) is set ({e}) but lies beyond the extent's {cap} sectors"),
            ));
        }
        let clip = gs.min(cap - vstart) * SECTOR;
        if e == 1 {
            if self.header.flags & FLAG_ZERO_GRAIN == 0 {
                return Err(Error::format(
                    name,
                    format!("grain table {i} entry {j} (grain {g}) is 1 but the zeroed-grain flag (0x4) is not set: corrupt table"),
                ));
            }
            return Ok(Entry::Zero { g, clip });
        }
        let need = if self.header.compressed() {
            1
        } else {
            clip.div_ceil(SECTOR)
        };
        if e + need > self.file_sectors {
            return Err(Error::format(
                name,
                format!("grain table {i} entry {j} (grain {g}) points past the end of the file (sector {e} + {need} > {})", self.file_sectors),
            ));
        }
        Ok(Entry::Grain { g, sector: e, clip })
    }

    #[inline]
    fn run(&self, src: &dyn ReadAt, name: &str, file: u32, e: Entry) -> Result<Run> {
        let (g, clip, src) = match e {
            Entry::Zero { g, clip } => (g, clip, Src::Zero),
            Entry::Grain { g, sector, clip } if self.header.compressed() => (
                g,
                clip,
                Src::Deflate(self.deflate_ref(src, name, file, g, sector)?),
            ),
            Entry::Grain { g, sector, clip } => (
                g,
                clip,
                Src::Data {
                    file,
                    offset: sector * SECTOR,
                },
            ),
        };
        Ok(Run {
            virt: g * self.header.grain_bytes(),
            len: clip,
            src,
        })
    }
}

impl Sparse {
    /// Checks the grain marker at `sector` and, given an inflater, inflates the grain once;
    /// returns the compressed length.
    fn check_marker(
        &self,
        src: &dyn ReadAt,
        name: &str,
        g: u64,
        sector: u64,
        clip: u64,
        inf: Option<&mut Inflater>,
    ) -> Result<u32> {
        let mut m = [0u8; 12];
        let at = sector * SECTOR;
        src.read_exact_at(&mut m, at)
            .map_err(|e| io_err(name, format!("read grain marker at byte {at}"), e))?;
        let lba = LE::read_u64(&m);
        let size = LE::read_u32(&m[8..]);
        let want = g * self.header.grain_size;
        if lba != want {
            return Err(Error::format(
                name,
                format!("grain marker at sector {sector} says lba {lba} but the grain table puts grain {g} at sector {want}"),
            ));
        }
        let gb = self.header.grain_bytes();
        if size == 0 || u64::from(size) > 2 * gb {
            return Err(Error::format(name, format!("grain marker at sector {sector}: compressed size {size} is not between 1 and {}", 2 * gb)));
        }
        let end = at + 12 + u64::from(size);
        if end > self.file_sectors * SECTOR {
            return Err(Error::format(name, format!("grain marker at sector {sector}: {size} compressed bytes run past the end of the file")));
        }
        let Some(inf) = inf else {
            return Ok(size);
        };
        let mut data = vec![0u8; size as usize];
        src.read_exact_at(&mut data, at + 12).map_err(|e| {
            io_err(
                name,
                format!("read compressed grain at byte {}", at + 12),
                e,
            )
        })?;
        let out = inf
            .inflate(&data, gb as usize)
            .map_err(|why| Error::format(name, format!("grain {g} at sector {sector}: {why}")))?;
        let n = out.len() as u64;
        if n != gb && n != clip {
            return Err(Error::format(
                name,
                format!(
                    "grain {g} at sector {sector} inflates to {n} bytes, not a grain ({gb}){}",
                    if clip != gb {
                        format!(" or the last grain's {clip}")
                    } else {
                        String::new()
                    }
                ),
            ));
        }
        Ok(size)
    }

    /// [`Sparse::check_marker`] for many grains `(g, sector, clip)`, spread over the CPUs
    /// when they are inflated; returns their compressed lengths, or the error of the first
    /// failing grain.
    fn check_markers(
        &self,
        src: &dyn ReadAt,
        name: &str,
        grains: &[(u64, u64, u64)],
        inflate: bool,
    ) -> Result<Vec<u32>> {
        if !inflate {
            return grains
                .iter()
                .map(|&(g, sector, clip)| self.check_marker(src, name, g, sector, clip, None))
                .collect();
        }
        let threads = worker_count(grains.len());
        let chunk = grains.len().div_ceil(threads).max(1);
        let results: Vec<Result<Vec<u32>>> = std::thread::scope(|s| {
            let handles: Vec<_> = grains
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        let mut inf = Inflater::new();
                        part.iter()
                            .map(|&(g, sector, clip)| {
                                self.check_marker(src, name, g, sector, clip, Some(&mut inf))
                            })
                            .collect::<Result<Vec<u32>>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::format(name, "internal error while inflating grains"))
                    })
                })
                .collect()
        });
        let mut out = Vec::with_capacity(grains.len());
        for r in results {
            out.extend(r?);
        }
        Ok(out)
    }

    fn compare_redundant(
        &self,
        src: &dyn ReadAt,
        name: &str,
        i: u64,
        rdir: &[u32],
        gt: &mut [u8],
        rgt: &mut [u8],
    ) -> Result<()> {
        let t = u64::from(self.directory[i as usize]);
        let r = u64::from(rdir.get(i as usize).copied().unwrap_or(0));
        if (t == 0) != (r == 0) {
            return Err(Error::format(
                name,
                format!("grain directory entry {i} is {t} but the redundant directory's is {r}"),
            ));
        }
        if t == 0 {
            return Ok(());
        }
        for (at, buf) in [(t, &mut *gt), (r, &mut *rgt)] {
            if at + GT_SECTORS > self.file_sectors {
                return Err(Error::format(
                    name,
                    format!("grain table at sector {at} runs past the end of the file"),
                ));
            }
            src.read_exact_at(buf, at * SECTOR).map_err(|e| {
                io_err(name, format!("read grain table at byte {}", at * SECTOR), e)
            })?;
        }
        if gt != rgt {
            let j = gt
                .chunks_exact(4)
                .zip(rgt.chunks_exact(4))
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Err(Error::format(
                name,
                format!(
                    "grain table {i} entry {j} differs from the redundant table's ({} vs {})",
                    LE::read_u32(&gt[j * 4..]),
                    LE::read_u32(&rgt[j * 4..])
                ),
            ));
        }
        Ok(())
    }

    /// The compressed grain behind the marker at `sector` (checked again: it was checked when
    /// the extent was opened).
    fn deflate_ref(
        &self,
        src: &dyn ReadAt,
        name: &str,
        file: u32,
        g: u64,
        sector: u64,
    ) -> Result<DeflateRef> {
        let gb = self.header.grain_bytes();
        let mut m = [0u8; 12];
        src.read_exact_at(&mut m, sector * SECTOR).map_err(|e| {
            io_err(
                name,
                format!("read grain marker at byte {}", sector * SECTOR),
                e,
            )
        })?;
        let clen = LE::read_u32(&m[8..]);
        if LE::read_u64(&m) != g * self.header.grain_size || clen == 0 || u64::from(clen) > 2 * gb {
            return Err(Error::format(
                name,
                format!("grain marker at sector {sector} changed since it was checked"),
            ));
        }
        Ok(DeflateRef {
            file,
            offset: sector * SECTOR + 12,
            clen,
            glen: gb as u32,
            skip: 0,
        })
    }
}

/// Threads worth using for `items` independent pieces of work: one per CPU (at most 8), but
/// no more than one per 16 items.
pub fn worker_count(items: usize) -> usize {
    let cpus = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    cpus.min(items / 16 + 1).max(1)
}

/// zlib inflation into a reusable buffer.
pub struct Inflater {
    out: Vec<u8>,
    len: usize,
    d: libdeflater::Decompressor,
}

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflater {
    /// A fresh inflater.
    pub fn new() -> Self {
        Inflater {
            out: Vec::new(),
            len: 0,
            d: libdeflater::Decompressor::new(),
        }
    }

    /// The output of the last successful [`Inflater::inflate`].
    pub fn inflate_output(&self) -> &[u8] {
        &self.out[..self.len]
    }

    /// Inflates one zlib stream of at most `max` bytes of output; the stream must end (with a
    /// valid checksum) within `data` and within `max` bytes.
    pub fn inflate(&mut self, data: &[u8], max: usize) -> std::result::Result<&[u8], String> {
        self.len = 0;
        if self.out.len() < max {
            self.out.resize(max, 0);
        }
        self.len = zlib(&mut self.d, data, &mut self.out[..max])?;
        Ok(self.inflate_output())
    }

    /// Inflates one zlib stream straight into `out` (at most `out.len()` bytes of output, the
    /// same checks as [`Inflater::inflate`]); returns the bytes it inflated to. The output of
    /// an earlier [`Inflater::inflate`] is gone.
    pub fn inflate_into(
        &mut self,
        data: &[u8],
        out: &mut [u8],
    ) -> std::result::Result<usize, String> {
        self.len = 0;
        zlib(&mut self.d, data, out)
    }
}

fn zlib(
    d: &mut libdeflater::Decompressor,
    data: &[u8],
    out: &mut [u8],
) -> std::result::Result<usize, String> {
    use libdeflater::DecompressionError;
    d.zlib_decompress(data, out).map_err(|e| match e {
        DecompressionError::InsufficientSpace => format!(
            "compressed data inflates to more than a grain ({} bytes)",
            out.len()
        ),
        DecompressionError::BadData => "compressed data is not valid zlib: corrupt, cut short before the end of its stream, or a wrong checksum".into(),
    })
}

#[cfg(test)]
mod tests;
