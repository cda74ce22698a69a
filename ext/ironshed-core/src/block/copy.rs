//! The copy loop: writes a sorted list of segments onto a destination, gathering virtually
//! adjacent segments into one buffer so that each `pwrite` is large (up to [`BATCH`] bytes).

use super::{Destination, Error, Result};
use crate::error::IoContext;
use crate::progress::Progress;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// Largest single write, and the size of the one buffer the loop allocates.
pub const BATCH: usize = 8 << 20;

/// A file segments are read from.
#[derive(Debug)]
pub struct SourceFile {
    /// Its path, for error messages.
    pub path: PathBuf,
    /// The open file.
    pub file: File,
}

/// Where a segment's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentSource {
    /// `len` bytes at byte `offset` of source file number `file`.
    Read {
        /// Index into the source list.
        file: u32,
        /// Byte offset in that file.
        offset: u64,
    },
    /// `len` zero bytes.
    Zero,
}

/// `len` bytes to write at destination byte `dest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Destination byte offset.
    pub dest: u64,
    /// Length in bytes (> 0).
    pub len: u64,
    /// Where the bytes come from.
    pub source: SegmentSource,
}

/// What a run of the copy loop did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// Bytes written.
    pub bytes: u64,
    /// Number of `pwrite` calls.
    pub writes: u64,
}

/// Checks the segment list: sorted, non-overlapping, non-empty segments, all inside the
/// destination and naming existing sources. Called before the first write.
pub fn check_segments(segs: &[Segment], sources: &[SourceFile], dest: &Destination) -> Result<()> {
    let mut end = 0u64;
    for s in segs {
        if s.len == 0 || s.dest < end {
            return Err(Error::UnsortedSegments { offset: s.dest });
        }
        dest.check_range(s.dest, s.len)?;
        if let SegmentSource::Read { file, .. } = s.source {
            if file as usize >= sources.len() {
                return Err(Error::UnsortedSegments { offset: s.dest });
            }
        }
        end = s.dest + s.len;
    }
    Ok(())
}

/// Writes every segment onto `dest`, then `fdatasync`s it. Checks the whole list first;
/// stops with [`Error::Interrupted`] between writes once `progress` is cancelled.
pub fn write_segments(
    segs: &[Segment],
    sources: &[SourceFile],
    dest: &Destination,
    progress: &Progress,
) -> Result<CopyStats> {
    check_segments(segs, sources, dest)?;
    let total: u64 = segs.iter().map(|s| s.len).sum();
    progress.set_total(total);
    let mut stats = CopyStats::default();
    let cap = usize::try_from(total).unwrap_or(BATCH).min(BATCH);
    let mut buf = vec![0u8; cap];

    let mut idx = 0usize;
    let mut within = 0u64;
    while idx < segs.len() {
        if progress.is_cancelled() {
            return Err(Error::Interrupted);
        }
        let start = segs[idx].dest + within;
        let mut fill = 0usize;
        while idx < segs.len() && fill < cap {
            let seg = &segs[idx];
            if seg.dest + within != start + fill as u64 {
                break;
            }
            let take = (seg.len - within).min((cap - fill) as u64) as usize;
            let out = &mut buf[fill..fill + take];
            match seg.source {
                SegmentSource::Read { file, offset } => {
                    let src = &sources[file as usize];
                    let at = offset + within;
                    src.file.read_exact_at(out, at).map_err(|e| {
                        IoContext::new(&src.path, format!("read {take} bytes at byte {at}"), e)
                    })?;
                }
                SegmentSource::Zero => out.fill(0),
            }
            fill += take;
            within += take as u64;
            if within == seg.len {
                idx += 1;
                within = 0;
            }
        }
        dest.write_all_at(&buf[..fill], start)?;
        stats.bytes += fill as u64;
        stats.writes += 1;
        progress.add_done(fill as u64);
    }
    dest.sync()?;
    Ok(stats)
}
