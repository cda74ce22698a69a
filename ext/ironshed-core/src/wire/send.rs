//! The sender: streams the changed ranges of a source device as PROTO[3] records.
//!
//! * Ranges arrive coalesced ([`Changes`]) and are cut into records of at most
//!   [`SendOptions::max_record`] bytes (default [`MAX_SEND_RECORD`], 1 MiB).
//! * Records go out in ascending offset order, except that the record reaching furthest is
//!   sent first: a receiver whose destination is too small then refuses the stream at its
//!   first record, before writing anything. The order never matters for the result, since
//!   records never overlap.
//! * Data is read with the source's [`SourceDevice`] (`O_DIRECT` for block devices) into an
//!   aligned arena of [`ARENA`] bytes, adjacent records with one read, and written out with
//!   vectored writes (header and data slices, no copy). Memory stays at the arena size
//!   whatever the amount of data.

use super::proto3::{RecordHeader, HANDSHAKE, MAX_SEND_RECORD};
use super::{Error, Result};
use crate::error::IoContext;
use crate::io::{AlignedBuf, SourceDevice, DIRECT_ALIGN};
use crate::progress::Progress;
use crate::snapshot::{ByteRange, Changes};
use std::io::{IoSlice, Write};
use std::path::Path;

/// Size of the data arena (one batch of records).
pub const ARENA: usize = 8 << 20;
/// Records per vectored write (two slices each; IOV_MAX is 1024).
const MAX_RECORDS_PER_WRITE: usize = 500;

/// How to send.
#[derive(Debug, Clone, Copy)]
pub struct SendOptions {
    /// Largest record (bytes, > 0).
    pub max_record: u32,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            max_record: MAX_SEND_RECORD,
        }
    }
}

/// What a send did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendStats {
    /// Records sent.
    pub records: u64,
    /// Data bytes sent.
    pub bytes: u64,
    /// Stream bytes written (handshake and headers included).
    pub stream_bytes: u64,
}

struct Out<'a, W: Write> {
    w: &'a mut W,
    name: &'a str,
    stats: SendStats,
}

impl<W: Write> Out<'_, W> {
    fn err(&self, e: std::io::Error) -> Error {
        Error::Io(IoContext::new(Path::new(self.name), "write the stream", e))
    }

    fn write_all_vectored(&mut self, mut slices: &mut [IoSlice<'_>]) -> Result<()> {
        while !slices.is_empty() {
            match self.w.write_vectored(slices) {
                Ok(0) => {
                    return Err(self.err(std::io::Error::new(
                        std::io::ErrorKind::WriteZero,
                        "wrote nothing",
                    )))
                }
                Ok(n) => {
                    self.stats.stream_bytes += n as u64;
                    IoSlice::advance_slices(&mut slices, n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.err(e)),
            }
        }
        Ok(())
    }
}

/// Sends `changes` read from `source` to `out` (named `out_name` in messages). Every range
/// must lie inside the source (see [`Changes::clip_to`]); this is checked before anything is
/// written.
pub fn send<W: Write>(
    changes: &Changes,
    source: &SourceDevice,
    out: &mut W,
    out_name: &str,
    opts: &SendOptions,
    progress: &Progress,
) -> Result<SendStats> {
    let max = u64::from(opts.max_record.max(1));
    if let Some(last) = changes.ranges().last() {
        if last.end() > source.len() {
            return Err(Error::Source(crate::snapshot::Error::PastSource {
                source_name: source.path().display().to_string(),
                offset: changes
                    .ranges()
                    .iter()
                    .find(|r| r.end() > source.len())
                    .map_or(last.offset, |r| r.offset.max(source.len())),
                size: source.len(),
            }));
        }
    }
    progress.set_total(changes.total_bytes());
    let mut out = Out {
        w: out,
        name: out_name,
        stats: SendStats::default(),
    };
    out.write_all_vectored(&mut [IoSlice::new(HANDSHAKE)])?;

    let count = changes.piece_count(max);
    let last = changes.pieces(max).last();
    let order = last
        .into_iter()
        .chain(changes.pieces(max).take(count.saturating_sub(1) as usize));

    let arena_len = ARENA.max(max as usize);
    let mut arena = AlignedBuf::new(arena_len);
    // (header bytes, arena offset, length) of the records in the arena.
    let mut batch: Vec<([u8; 12], usize, usize)> = Vec::with_capacity(MAX_RECORDS_PER_WRITE);
    // A pending read: source offset, arena offset, length (grows while records are adjacent).
    let mut pending: Option<(u64, usize, usize)> = None;
    let mut used = 0usize;

    let read = |arena: &mut AlignedBuf, p: (u64, usize, usize)| -> Result<()> {
        let (src, at, len) = p;
        source.read_at(&mut arena[at..at + len], src).map_err(|e| {
            Error::Io(IoContext::new(
                source.path(),
                format!("read {len} bytes at byte {src}"),
                e,
            ))
        })
    };

    for piece in order {
        let ByteRange { offset, len } = piece;
        let len = len as usize;
        let mut contiguous =
            matches!(pending, Some((s, a, l)) if s + l as u64 == offset && a + l == used);
        let mut at = if contiguous {
            used
        } else {
            used.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN
        };
        if at + len > arena_len || batch.len() >= MAX_RECORDS_PER_WRITE {
            if let Some(p) = pending.take() {
                read(&mut arena, p)?;
            }
            flush(&mut out, &arena, &mut batch, progress)?;
            at = 0;
            contiguous = false;
        }
        match pending.as_mut() {
            Some((_, _, l)) if contiguous => *l += len,
            _ => {
                if let Some(p) = pending.take() {
                    read(&mut arena, p)?;
                }
                pending = Some((offset, at, len));
            }
        }
        let hdr = RecordHeader {
            offset,
            len: len as u32,
        }
        .encode();
        batch.push((hdr, at, len));
        used = at + len;
        out.stats.records += 1;
        out.stats.bytes += len as u64;
    }
    if let Some(p) = pending.take() {
        read(&mut arena, p)?;
    }
    flush(&mut out, &arena, &mut batch, progress)?;
    out.w.flush().map_err(|e| out.err(e))?;
    Ok(out.stats)
}

fn flush<W: Write>(
    out: &mut Out<'_, W>,
    arena: &AlignedBuf,
    batch: &mut Vec<([u8; 12], usize, usize)>,
    progress: &Progress,
) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(batch.len() * 2);
    let mut bytes = 0u64;
    for (hdr, at, len) in batch.iter() {
        slices.push(IoSlice::new(hdr));
        slices.push(IoSlice::new(&arena[*at..*at + *len]));
        bytes += *len as u64;
    }
    out.write_all_vectored(&mut slices)?;
    batch.clear();
    progress.add_done(bytes);
    if progress.is_cancelled() {
        return Err(Error::Interrupted);
    }
    Ok(())
}
