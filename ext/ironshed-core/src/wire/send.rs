//! The sender: streams the changed ranges of a source device as PROTO[3] records.
//!
//! * Ranges arrive coalesced ([`Changes`]) and are cut into records of at most
//!   [`SendOptions::max_record`] bytes (default [`MAX_SEND_RECORD`], 1 MiB).
//! * Records go out in ascending offset order, except that the record reaching furthest is
//!   sent first: a receiver whose destination is too small then refuses the stream at its
//!   first record, before writing anything. The order never matters for the result, since
//!   records never overlap.
//! * Data is read with the source's [`SourceDevice`] (`O_DIRECT` for block devices) into an
//!   aligned arena of [`ARENA`] bytes (small enough to stay in the CPU cache), adjacent data
//!   with one read, and written out with vectored writes (header and data slices, no copy);
//!   a record larger than the arena goes out in several writes. Memory stays at the arena
//!   size whatever the amount of data.

use super::proto3::{RecordHeader, HANDSHAKE, MAX_SEND_RECORD};
use super::{Error, Result};
use crate::error::IoContext;
use crate::io::{AlignedBuf, SourceDevice, DIRECT_ALIGN};
use crate::progress::Progress;
use crate::snapshot::{ByteRange, Changes};
use std::io::{IoSlice, Write};
use std::path::Path;

/// Size of the data arena (one vectored write).
pub const ARENA: usize = 256 << 10;
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
    match send_inner(changes, source, out, out_name, opts, progress) {
        Err(_) if progress.is_cancelled() => Err(Error::Interrupted),
        r => r,
    }
}

fn send_inner<W: Write>(
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

    let mut arena = AlignedBuf::new(ARENA);
    let mut ops: Vec<Op> = Vec::with_capacity(2 * MAX_RECORDS_PER_WRITE);
    let mut headers: Vec<[u8; 12]> = Vec::with_capacity(MAX_RECORDS_PER_WRITE);
    // A pending read: source offset, arena offset, length (grows while data is adjacent).
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
        if headers.len() >= MAX_RECORDS_PER_WRITE {
            if let Some(p) = pending.take() {
                read(&mut arena, p)?;
            }
            flush(&mut out, &arena, &headers, &ops, progress)?;
            ops.clear();
            headers.clear();
            used = 0;
        }
        headers.push(
            RecordHeader {
                offset,
                len: len as u32,
            }
            .encode(),
        );
        ops.push(Op::Header(headers.len() - 1));
        // The data, in as many arena fills as it takes (a record may be larger than the
        // arena: the stream is a byte stream, so its data may go out in several writes).
        let mut src = offset;
        let mut left = len as usize;
        while left > 0 {
            let contiguous =
                matches!(pending, Some((s, a, l)) if s + l as u64 == src && a + l == used);
            let at = if contiguous {
                used
            } else {
                used.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN
            };
            let mut take = left.min(ARENA.saturating_sub(at));
            if take < left {
                // Keep later reads aligned for O_DIRECT: cut at an alignment boundary.
                take -= take % DIRECT_ALIGN;
            }
            if take == 0 {
                if let Some(p) = pending.take() {
                    read(&mut arena, p)?;
                }
                flush(&mut out, &arena, &headers, &ops, progress)?;
                ops.clear();
                // Keep the header of the record in flight if it was not written yet (it
                // was, with the flush): nothing to carry over.
                used = 0;
                continue;
            }
            match pending.as_mut() {
                Some((_, _, l)) if contiguous => *l += take,
                _ => {
                    if let Some(p) = pending.take() {
                        read(&mut arena, p)?;
                    }
                    pending = Some((src, at, take));
                }
            }
            match ops.last_mut() {
                Some(Op::Data(a, l)) if contiguous && *a + *l == at => *l += take,
                _ => ops.push(Op::Data(at, take)),
            }
            used = at + take;
            src += take as u64;
            left -= take;
        }
        out.stats.records += 1;
        out.stats.bytes += len;
    }
    if let Some(p) = pending.take() {
        read(&mut arena, p)?;
    }
    flush(&mut out, &arena, &headers, &ops, progress)?;
    out.w.flush().map_err(|e| out.err(e))?;
    Ok(out.stats)
}

/// One slice of a vectored write: a record header, or data at (arena offset, length).
#[derive(Debug, Clone, Copy)]
enum Op {
    Header(usize),
    Data(usize, usize),
}

fn flush<W: Write>(
    out: &mut Out<'_, W>,
    arena: &AlignedBuf,
    headers: &[[u8; 12]],
    ops: &[Op],
    progress: &Progress,
) -> Result<()> {
    if ops.is_empty() {
        return Ok(());
    }
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(ops.len());
    let mut bytes = 0u64;
    for op in ops {
        match *op {
            Op::Header(i) => slices.push(IoSlice::new(&headers[i])),
            Op::Data(at, len) => {
                slices.push(IoSlice::new(&arena[at..at + len]));
                bytes += len as u64;
            }
        }
    }
    out.write_all_vectored(&mut slices)?;
    progress.add_done(bytes);
    if progress.is_cancelled() {
        return Err(Error::Interrupted);
    }
    Ok(())
}
