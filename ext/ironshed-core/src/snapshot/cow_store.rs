//! The device-mapper persistent exception store: the `-cow` device behind a classic LVM
//! snapshot, and the list of origin chunks it says may differ from the snapshot.
//!
//! Layout (all integers little-endian; the device is an array of chunks of `C` bytes):
//! * chunk 0, the header: `magic` u32 (`0x70416E53`, "SnAp"), `valid` u32 (1; 0 once the
//!   snapshot overflowed or failed), `version` u32 (1), `chunk_size` u32 in sectors;
//! * metadata areas of one chunk each, holding `E = C/16` records of (`old_chunk` u64,
//!   `new_chunk` u64); area `i` sits at chunk `1 + i(E+1)` and is followed by the `E` data
//!   chunks it describes;
//! * a record with `new_chunk == 0` ends the table (chunk 0 is the header, never data); an
//!   area that is not full is the last one; the table may also end with a full area at the
//!   very end of the device, where the next area would not fit.

use super::{Changes, Error, Result};
use crate::io::{ReadAt, ReadMode, SourceDevice};
use std::path::Path;

/// `magic` of an initialised store: "SnAp" on disk.
pub const SNAP_MAGIC: u32 = 0x7041_6E53;
/// The only store version the kernel (and this reader) knows.
pub const SNAPSHOT_DISK_VERSION: u32 = 1;
/// Largest chunk size accepted, in sectors (1 GiB; LVM itself stops at 512 KiB).
pub const MAX_CHUNK_SECTORS: u32 = 1 << 21;

/// The 16 bytes of chunk 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Byte 0.
    pub magic: u32,
    /// Byte 4: 1 = usable.
    pub valid: u32,
    /// Byte 8.
    pub version: u32,
    /// Byte 12: chunk size in 512-byte sectors.
    pub chunk_sectors: u32,
}

impl Header {
    /// Decodes the first 16 bytes of a store.
    pub fn decode(b: &[u8; 16]) -> Self {
        let u = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Header {
            magic: u(0),
            valid: u(4),
            version: u(8),
            chunk_sectors: u(12),
        }
    }
}

/// A validated exception store and the origin chunks it lists.
#[derive(Debug, Clone)]
pub struct CowStore {
    /// The device or file read, for messages.
    pub name: String,
    /// The header.
    pub header: Header,
    /// Chunk size in bytes.
    pub chunk_size: u64,
    /// Size of the store device in bytes.
    pub device_size: u64,
    /// Exception records read (repeats of one origin chunk included).
    pub exceptions: u64,
    /// Metadata areas read.
    pub areas: u64,
    /// How the store was read, when it was opened by path ([`CowStore::open`]).
    pub read_mode: Option<ReadMode>,
    /// Distinct origin chunks, sorted.
    chunks: Vec<u64>,
}

fn u64le(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

impl CowStore {
    /// Opens a `-cow` device (or an image file) so reads see current data (`O_DIRECT` for
    /// block devices, see [`SourceDevice`]) and reads it.
    pub fn open(path: &Path) -> Result<Self> {
        let dev = SourceDevice::open(path)?;
        let store = Self::read(&dev, &path.display().to_string())?;
        Ok(CowStore {
            read_mode: Some(dev.mode()),
            ..store
        })
    }

    /// Reads and validates a store through any [`ReadAt`]; `name` is used in messages.
    pub fn read<R: ReadAt + ?Sized>(r: &R, name: &str) -> Result<Self> {
        let corrupt = |msg: String| Error::Corrupt {
            name: name.to_string(),
            msg,
        };
        let io = |op: String, e: std::io::Error| {
            Error::Io(crate::IoContext::new(Path::new(name), op, e))
        };
        let size = r.size().map_err(|e| io("get size".into(), e))?;
        if size < 16 {
            return Err(corrupt(format!(
                "{size} bytes is too short for an exception store header (16 bytes)"
            )));
        }
        let mut hb = [0u8; 16];
        r.read_exact_at(&mut hb, 0)
            .map_err(|e| io("read the header at byte 0".into(), e))?;
        let header = Header::decode(&hb);
        if header.magic == 0 {
            return Err(Error::Uninitialised {
                name: name.to_string(),
            });
        }
        if header.magic != SNAP_MAGIC {
            return Err(Error::BadMagic {
                name: name.to_string(),
                magic: header.magic,
            });
        }
        if header.version != SNAPSHOT_DISK_VERSION {
            return Err(Error::UnsupportedVersion {
                name: name.to_string(),
                version: header.version,
            });
        }
        let cs = header.chunk_sectors;
        if cs == 0 || !cs.is_power_of_two() || cs > MAX_CHUNK_SECTORS {
            return Err(corrupt(format!(
                "chunk size {cs} sectors (header byte 12) is not a power of two between 1 and {MAX_CHUNK_SECTORS}"
            )));
        }
        match header.valid {
            1 => {}
            0 => {
                return Err(Error::Invalid {
                    name: name.to_string(),
                })
            }
            v => {
                return Err(corrupt(format!(
                    "header field 'valid' (byte 4) is {v}, expected 1 (or 0 for an invalidated snapshot)"
                )))
            }
        }
        let c = u64::from(cs) * 512;
        let total_chunks = size / c;
        if total_chunks < 2 {
            return Err(corrupt(format!(
                "{size} bytes holds fewer than 2 chunks of {c} bytes: no room for the first metadata area"
            )));
        }
        let per_area = c / 16;
        let mut area_buf = vec![0u8; c as usize];
        let mut chunks: Vec<u64> = Vec::new();
        let mut exceptions = 0u64;
        let mut areas = 0u64;
        let max_old = u64::MAX / c;
        'areas: for i in 0u64.. {
            let Some(area_chunk) = i
                .checked_mul(per_area + 1)
                .and_then(|x| x.checked_add(1))
                .filter(|&a| a < total_chunks)
            else {
                // The previous area was full and the next one would not fit: end of table.
                break;
            };
            let at = area_chunk * c;
            r.read_exact_at(&mut area_buf, at).map_err(|e| {
                io(
                    format!("read metadata area {i} ({c} bytes at byte {at})"),
                    e,
                )
            })?;
            areas += 1;
            for (slot, rec) in area_buf.chunks_exact(16).enumerate() {
                let old = u64le(&rec[0..8]);
                let new = u64le(&rec[8..16]);
                if new == 0 {
                    break 'areas;
                }
                let where_ = || format!("metadata area {i} (byte {at}) record {slot}");
                if new >= total_chunks {
                    return Err(corrupt(format!(
                        "{}: data chunk {new} is past the end of the store ({total_chunks} chunks)",
                        where_()
                    )));
                }
                if (new - 1).is_multiple_of(per_area + 1) {
                    return Err(corrupt(format!(
                        "{}: data chunk {new} is a metadata area, not a data chunk",
                        where_()
                    )));
                }
                if old > max_old {
                    return Err(corrupt(format!(
                        "{}: origin chunk {old} lies beyond any possible device",
                        where_()
                    )));
                }
                chunks.push(old);
                exceptions += 1;
            }
        }
        chunks.sort_unstable();
        chunks.dedup();
        Ok(CowStore {
            name: name.to_string(),
            header,
            chunk_size: c,
            device_size: size,
            exceptions,
            areas,
            read_mode: None,
            chunks,
        })
    }

    /// Distinct origin chunk numbers, sorted.
    pub fn chunks(&self) -> &[u64] {
        &self.chunks
    }

    /// The changed byte ranges of the origin, adjacent chunks coalesced.
    pub fn changes(&self) -> Changes {
        Changes::from_sorted_chunks(&self.chunks, self.chunk_size)
    }
}
