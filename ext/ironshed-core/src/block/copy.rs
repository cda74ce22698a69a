//! The copy loop: segments arrive in destination order and are gathered into a batch buffer
//! of up to [`BATCH`] bytes; producers push them one at a time ([`BatchWriter::push`]), so the
//! whole list never has to exist in memory at once.
//!
//! A batch's reads are not done as segments arrive but together, when the batch is full:
//! sorted by source offset (scattered grains of a delta are then read in file order, which
//! the page cache serves with less CPU than random order: 13 % measured) and spread over the
//! CPUs; compressed grains are inflated there too, each once per batch. The batch is then
//! written with one `pwrite` per destination-contiguous span, in ascending order, while the
//! next batch is gathered (two buffers): reading and writing overlap.

use super::{Destination, Error, Result};
use crate::error::{Cancelled, IoContext};
use crate::progress::Progress;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Largest single write, and the size of each of the (at most two) batch buffers the loop
/// allocates.
pub const BATCH: usize = 8 << 20;

/// Most pieces (reads or zero fills) in one batch: bounds the bookkeeping of a batch of many
/// tiny segments.
const MAX_PIECES: usize = 1 << 16;

/// Fewer reads than this in a batch are done on the calling thread alone.
const PARALLEL_READS: usize = 512;

/// Plain reads a thread of `gather` takes at a time.
const READ_UNIT: usize = 256;

/// Segments at least this long are copied with `copy_file_range` when the destination is a
/// regular file; shorter ones are gathered in the buffer.
pub const IN_KERNEL_MIN: u64 = 64 << 10;

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
    /// `len` bytes from byte `skip` of what the zlib stream of `clen` bytes at byte `offset`
    /// of source file number `file` inflates to (at most `glen` bytes): a compressed grain.
    /// A batch inflates each grain once, however many of its segments it holds.
    Deflate {
        /// Index into the source list.
        file: u32,
        /// Byte offset of the compressed data.
        offset: u64,
        /// Compressed length.
        clen: u32,
        /// Largest inflated size accepted.
        glen: u32,
        /// Bytes of the inflated data before the segment's first byte.
        skip: u32,
    },
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
    /// Compressed grains inflated (each grain once per batch holding a piece of it).
    pub inflated: u64,
}

/// `len` bytes for the batch buffer at `at`, from byte `src` of source `file`: read as they
/// are, or (`Some`) inflated from the compressed grain there.
#[derive(Debug, Clone, Copy)]
struct Piece {
    file: u32,
    src: u64,
    at: usize,
    len: usize,
    deflate: Option<Deflated>,
}

/// How a piece comes out of a compressed grain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Deflated {
    clen: u32,
    glen: u32,
    skip: u32,
}

impl Piece {
    /// Pieces with the same key come from one compressed grain (inflated once).
    fn grain(&self) -> Option<(u32, u64)> {
        self.deflate.map(|_| (self.file, self.src))
    }
}

/// `len` bytes of the batch buffer from `at`, to be written at destination byte `dest`.
#[derive(Debug, Clone, Copy)]
struct Span {
    dest: u64,
    at: usize,
    len: usize,
}

/// One batch: its buffer, the destination spans it fills (ascending, each contiguous in
/// the buffer), and the reads that fill them. Every byte of `buf[..fill]` belongs to exactly
/// one span and to at most one read (reads never overlap in the buffer).
#[derive(Debug)]
struct Batch {
    buf: Vec<u8>,
    fill: usize,
    spans: Vec<Span>,
    reads: Vec<Piece>,
}

impl Batch {
    fn new(cap: usize) -> Self {
        Batch {
            buf: vec![0u8; cap],
            fill: 0,
            spans: Vec::new(),
            reads: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    fn clear(&mut self) {
        self.fill = 0;
        self.spans.clear();
        self.reads.clear();
    }

    /// Room for another piece?
    fn room(&self) -> usize {
        if self.spans.len() >= MAX_PIECES || self.reads.len() >= MAX_PIECES {
            0
        } else {
            self.buf.len() - self.fill
        }
    }

    /// Takes the next `len` bytes of the buffer (`len <= room()`) for destination byte
    /// `dest`, extending the last span when `dest` continues it; returns their offset.
    fn take(&mut self, dest: u64, len: usize) -> usize {
        let at = self.fill;
        match self.spans.last_mut() {
            Some(s) if s.dest + s.len as u64 == dest && s.at + s.len == at => s.len += len,
            _ => self.spans.push(Span { dest, at, len }),
        }
        self.fill += len;
        at
    }

    /// Notes that `len` bytes at byte `src` of source `file` go to the buffer at `at`.
    fn add_read(&mut self, file: u32, src: u64, at: usize, len: usize) {
        match self.reads.last_mut() {
            Some(r)
                if r.deflate.is_none()
                    && r.file == file
                    && r.src + r.len as u64 == src
                    && r.at + r.len == at =>
            {
                r.len += len
            }
            _ => self.reads.push(Piece {
                file,
                src,
                at,
                len,
                deflate: None,
            }),
        }
    }

    /// Notes that `len` bytes of a compressed grain go to the buffer at `at`.
    fn add_inflate(&mut self, file: u32, src: u64, at: usize, len: usize, d: Deflated) {
        self.reads.push(Piece {
            file,
            src,
            at,
            len,
            deflate: Some(d),
        });
    }
}

/// The batch buffer as seen by the reader threads of [`gather`].
#[derive(Clone, Copy)]
struct BufPtr(*mut u8, usize);

// SAFETY: the threads of `gather` write through it into disjoint ranges only (see there),
// while the batch is mutably borrowed by `gather` and nothing else touches it.
unsafe impl Send for BufPtr {}
// SAFETY: as above.
unsafe impl Sync for BufPtr {}

impl BufPtr {
    /// The bytes of a piece.
    ///
    /// # Safety
    /// No other live reference may cover `p.at..p.at+p.len` (pieces of a batch never
    /// overlap in its buffer).
    unsafe fn piece<'b>(self, p: &Piece) -> &'b mut [u8] {
        assert!(p.at + p.len <= self.1, "read outside the batch buffer");
        std::slice::from_raw_parts_mut(self.0.add(p.at), p.len)
    }
}

/// Does the batch's reads and inflations: sorted by source and offset, spread over the CPUs
/// when there are many (every piece of one compressed grain on the same thread, which
/// inflates the grain once). Returns the number of grains inflated.
fn gather(batch: &mut Batch, sources: &[SourceFile]) -> Result<u64> {
    if batch.reads.is_empty() {
        return Ok(0);
    }
    batch
        .reads
        .sort_unstable_by_key(|r| (r.file, r.src, r.deflate.map_or(0, |d| d.skip)));
    let buf = BufPtr(batch.buf.as_mut_ptr(), batch.buf.len());
    let reads = &batch.reads;
    let grains = reads.iter().filter(|p| p.deflate.is_some()).count();
    let threads = if reads.len() < PARALLEL_READS && grains < 2 {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    };
    // Units of work, taken by the threads in turn as each finishes its last (grains differ in
    // what inflating them costs, so equal shares would leave a thread idle): every piece of
    // one compressed grain, or up to READ_UNIT plain reads.
    let mut units: Vec<(usize, usize)> = Vec::with_capacity(grains + reads.len() / READ_UNIT + 1);
    let mut start = 0usize;
    while start < reads.len() {
        let key = reads[start].grain();
        let mut end = start + 1;
        while end < reads.len()
            && match key {
                Some(_) => reads[end].grain() == key,
                None => reads[end].grain().is_none() && end - start < READ_UNIT,
            }
        {
            end += 1;
        }
        units.push((start, end));
        start = end;
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let work = || -> Result<u64> {
        let mut inflater = Inflating::default();
        let mut inflated = 0u64;
        while !failed.load(Ordering::Relaxed) {
            let Some(&(a, b)) = units.get(next.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            let part = &reads[a..b];
            let done = part.iter().enumerate().try_for_each(|(i, p)| {
                let src = sources
                    .get(p.file as usize)
                    .ok_or(Error::UnsortedSegments { offset: p.src })?;
                // SAFETY: no two pieces of a batch overlap in its buffer (`Batch::take` hands
                // every byte out once), each piece is taken by one thread (its unit is handed
                // out once), and the buffer is borrowed by `gather` alone while the reads run;
                // the slice does not outlive this call.
                let out = unsafe { buf.piece(p) };
                match p.deflate {
                    None => src.file.read_exact_at(out, p.src).map_err(|e| {
                        Error::Io(IoContext::new(
                            &src.path,
                            format!("read {} bytes at byte {}", p.len, p.src),
                            e,
                        ))
                    }),
                    Some(d) => {
                        inflated += u64::from(inflater.piece(src, p.src, d, out, i > 0)?);
                        Ok(())
                    }
                }
            });
            if done.is_err() {
                failed.store(true, Ordering::Relaxed);
                return done.map(|_| inflated);
            }
        }
        Ok(inflated)
    };
    if threads <= 1 || units.len() <= 1 {
        return work();
    }
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads.min(units.len()))
            .map(|_| s.spawn(work))
            .collect();
        let first = work();
        helpers.into_iter().fold(first, |acc, h| {
            let r = h.join().unwrap_or(Err(Error::ThreadFailed));
            acc.and_then(|a| r.map(|b| a + b))
        })
    })
}

/// One thread's inflation of compressed grains: the grain inflated last, kept for the
/// next piece of it.
#[derive(Default)]
struct Inflating {
    compressed: Vec<u8>,
    inf: crate::vmdk::sparse::Inflater,
    /// The inflater holds the grain inflated last (a whole grain inflated straight into the
    /// batch leaves nothing there).
    held: bool,
}

impl Inflating {
    /// Fills `out` with the bytes of the grain at byte `at` of `src` that the piece takes;
    /// `same`: the grain is the one inflated last. Returns whether it inflated the grain.
    fn piece(
        &mut self,
        src: &SourceFile,
        at: u64,
        d: Deflated,
        out: &mut [u8],
        same: bool,
    ) -> Result<bool> {
        let bad = |why: String| {
            Error::Damaged(IoContext::new(
                &src.path,
                format!("inflate the compressed grain at byte {at}"),
                std::io::Error::new(std::io::ErrorKind::InvalidData, why),
            ))
        };
        let inflate = !(same && self.held);
        if inflate {
            self.held = false;
            self.compressed.resize(d.clen as usize, 0);
            src.file
                .read_exact_at(&mut self.compressed, at)
                .map_err(|e| {
                    Error::Io(IoContext::new(
                        &src.path,
                        format!("read {} compressed bytes at byte {at}", d.clen),
                        e,
                    ))
                })?;
            if d.skip == 0 && out.len() == d.glen as usize {
                // The piece is the whole grain: inflated where it goes, not copied there.
                let n = self.inf.inflate_into(&self.compressed, out).map_err(bad)?;
                if n != out.len() {
                    return Err(bad(format!(
                        "it inflates to {n} bytes, not a grain ({})",
                        out.len()
                    )));
                }
                return Ok(true);
            }
            self.inf
                .inflate(&self.compressed, d.glen as usize)
                .map_err(bad)?;
            self.held = true;
        }
        let got = self.inf.inflate_output();
        let (a, b) = (d.skip as usize, d.skip as usize + out.len());
        let bytes = got.get(a..b).ok_or_else(|| {
            bad(format!(
                "it inflates to {} bytes, too short for bytes {a}..{b}",
                got.len()
            ))
        })?;
        out.copy_from_slice(bytes);
        Ok(inflate)
    }
}

/// Writes a gathered batch: one `pwrite` per span, in ascending order.
fn write_batch(dest: &Destination, batch: &Batch, progress: &Progress) -> Result<CopyStats> {
    let mut stats = CopyStats::default();
    for s in &batch.spans {
        dest.write_all_at(&batch.buf[s.at..s.at + s.len], s.dest)?;
        stats.bytes += s.len as u64;
        stats.writes += 1;
        progress.add_done(s.len as u64);
    }
    // Spans are in ascending order.
    if let (Some(first), Some(last)) = (batch.spans.first(), batch.spans.last()) {
        dest.start_writeback(first.dest, last.dest + last.len as u64 - first.dest);
    }
    Ok(stats)
}

/// Gathers pushed segments into large positioned writes onto a destination.
///
/// Segments must come sorted by destination offset and must not overlap; each is checked
/// against the destination's size before anything of it is buffered. Writes happen in
/// ascending destination order. [`BatchWriter::finish`] writes what is left and
/// `fdatasync`s the destination.
pub struct BatchWriter<'a> {
    dest: &'a Destination,
    sources: &'a [SourceFile],
    progress: &'a Progress,
    /// The batch being filled.
    cur: Batch,
    /// A gathered batch waiting to be written (while `cur` fills).
    ready: Option<Batch>,
    cap: usize,
    next_free: u64,
    stats: CopyStats,
    in_kernel: bool,
    /// The destination range copied in the kernel since it was last handed to the kernel's
    /// writeback, and the bytes copied in it: handed over once a batch's worth is copied
    /// (as each written batch is) and before the final flush.
    copied: Option<(u64, u64)>,
    copied_bytes: u64,
}

impl<'a> BatchWriter<'a> {
    /// A writer onto `dest`, reading `Read` segments from `sources`. `expected` (bytes the
    /// caller will push, if known) sizes the buffers and the progress total.
    pub fn new(
        dest: &'a Destination,
        sources: &'a [SourceFile],
        progress: &'a Progress,
        expected: u64,
    ) -> Self {
        progress.set_total(expected);
        let cap = usize::try_from(expected).unwrap_or(BATCH).clamp(1, BATCH);
        BatchWriter {
            dest,
            sources,
            progress,
            cur: Batch::new(cap),
            ready: None,
            cap,
            next_free: 0,
            stats: CopyStats::default(),
            in_kernel: dest.kind() == super::DestKind::File,
            copied: None,
            copied_bytes: 0,
        }
    }

    fn check(&self, dest: u64, len: u64) -> Result<()> {
        if len == 0 || dest < self.next_free {
            return Err(Error::UnsortedSegments { offset: dest });
        }
        self.dest.check_range(dest, len)
    }

    /// Adds a segment. Large reads onto a regular file are copied in the kernel
    /// (`copy_file_range`), without passing through the buffer.
    pub fn push(&mut self, seg: Segment) -> Result<()> {
        self.check(seg.dest, seg.len)?;
        if let SegmentSource::Read { file, .. } | SegmentSource::Deflate { file, .. } = seg.source {
            if self.sources.get(file as usize).is_none() {
                return Err(Error::UnsortedSegments { offset: seg.dest });
            }
        }
        if let SegmentSource::Read { file, offset } = seg.source {
            if self.in_kernel
                && seg.len >= IN_KERNEL_MIN
                && self.copy_in_kernel(file, offset, seg.dest, seg.len)?
            {
                self.next_free = seg.dest + seg.len;
                return Ok(());
            }
        }
        let mut done = 0u64;
        while done < seg.len {
            let room = self.room()?;
            let take = (seg.len - done).min(room as u64) as usize;
            let at = self.cur.take(seg.dest + done, take);
            match seg.source {
                SegmentSource::Read { file, offset } => {
                    self.cur.add_read(file, offset + done, at, take)
                }
                SegmentSource::Zero => self.cur.buf[at..at + take].fill(0),
                SegmentSource::Deflate {
                    file,
                    offset,
                    clen,
                    glen,
                    skip,
                } => {
                    let skip = u32::try_from(u64::from(skip) + done)
                        .map_err(|_| Error::UnsortedSegments { offset: seg.dest })?;
                    self.cur
                        .add_inflate(file, offset, at, take, Deflated { clen, glen, skip })
                }
            }
            done += take as u64;
        }
        self.next_free = seg.dest + seg.len;
        Ok(())
    }

    /// Room in the current batch, rotating batches when it is full.
    fn room(&mut self) -> Result<usize> {
        if self.cur.room() == 0 {
            self.rotate()?;
        }
        Ok(self.cur.room())
    }

    /// Gathers the current batch while the ready one (if any) is written; the gathered
    /// batch becomes the ready one.
    fn rotate(&mut self) -> Result<()> {
        if self.cur.is_empty() {
            return Ok(());
        }
        if self.progress.is_cancelled() {
            return Err(Cancelled.into());
        }
        let (dest, sources, progress) = (self.dest, self.sources, self.progress);
        let ready = self.ready.take();
        let cur = &mut self.cur;
        let (written, gathered) = std::thread::scope(|s| {
            let writer = ready
                .as_ref()
                .map(|b| s.spawn(move || write_batch(dest, b, progress)));
            let gathered = gather(cur, sources);
            let written = match writer {
                Some(h) => h.join().unwrap_or(Err(Error::ThreadFailed)),
                None => Ok(CopyStats::default()),
            };
            (written, gathered)
        });
        let w = written?;
        self.stats.bytes += w.bytes;
        self.stats.writes += w.writes;
        self.stats.inflated += gathered?;
        let mut next = ready.unwrap_or_else(|| Batch::new(self.cap));
        next.clear();
        self.ready = Some(std::mem::replace(&mut self.cur, next));
        Ok(())
    }

    /// Writes everything pushed so far.
    fn drain(&mut self) -> Result<()> {
        self.rotate()?;
        if let Some(mut b) = self.ready.take() {
            let w = write_batch(self.dest, &b, self.progress)?;
            self.stats.bytes += w.bytes;
            self.stats.writes += w.writes;
            b.clear();
            self.cur = b;
        }
        Ok(())
    }

    /// Copies `len` bytes from source `file` at `offset` to the destination at `dest` with
    /// `copy_file_range`. Returns false, having written nothing, when the kernel cannot do it
    /// for these files (the caller then copies through the buffer, and so do later segments).
    fn copy_in_kernel(&mut self, file: u32, offset: u64, dest: u64, len: u64) -> Result<bool> {
        let src = self
            .sources
            .get(file as usize)
            .ok_or(Error::UnsortedSegments { offset: dest })?;
        self.drain()?;
        if self.progress.is_cancelled() {
            return Err(Cancelled.into());
        }
        let (mut off_in, mut off_out, mut left) = (offset as i64, dest as i64, len);
        while left > 0 {
            let want = left.min(1 << 30) as usize;
            match nix::fcntl::copy_file_range(
                &src.file,
                Some(&mut off_in),
                self.dest.file_for_write(),
                Some(&mut off_out),
                want,
            ) {
                Ok(0) => {
                    return Err(Error::Io(IoContext::new(
                        &src.path,
                        format!("read {left} bytes at byte {off_in}"),
                        std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                    )))
                }
                Ok(n) => {
                    // Counted as it goes: a copy that fails part way has written this much.
                    left -= n as u64;
                    self.progress.add_done(n as u64);
                    self.dest.note_written(n as u64);
                }
                Err(e)
                    if left == len
                        && matches!(
                            e,
                            nix::errno::Errno::EXDEV
                                | nix::errno::Errno::EINVAL
                                | nix::errno::Errno::ENOSYS
                                | nix::errno::Errno::EOPNOTSUPP
                        ) =>
                {
                    self.in_kernel = false;
                    return Ok(false);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    return Err(Error::Io(IoContext::new(
                        self.dest.path(),
                        format!(
                            "copy {left} bytes from {} at byte {off_in} to byte {off_out}",
                            src.path.display()
                        ),
                        std::io::Error::from(e),
                    )))
                }
            }
        }
        self.stats.bytes += len;
        self.stats.writes += 1;
        let start = self.copied.map_or(dest, |(s, _)| s);
        self.copied = Some((start, dest + len));
        self.copied_bytes += len;
        if self.copied_bytes >= self.cap as u64 {
            self.write_back_copied();
        }
        Ok(true)
    }

    /// Hands the range copied in the kernel since the last hand-over to the kernel's
    /// writeback ([`Destination::start_writeback`]).
    fn write_back_copied(&mut self) {
        if let Some((start, end)) = self.copied.take() {
            self.dest.start_writeback(start, end - start);
        }
        self.copied_bytes = 0;
    }

    /// Adds bytes the caller already holds (for example an inflated grain) at `dest`.
    pub fn push_bytes(&mut self, dest: u64, data: &[u8]) -> Result<()> {
        self.check(dest, data.len() as u64)?;
        let mut done = 0usize;
        while done < data.len() {
            let take = (data.len() - done).min(self.room()?);
            let at = self.cur.take(dest + done as u64, take);
            self.cur.buf[at..at + take].copy_from_slice(&data[done..done + take]);
            done += take;
        }
        self.next_free = dest + data.len() as u64;
        Ok(())
    }

    /// Makes `[dest, dest+len)` read as zeros by discarding it ([`Destination::discard`]: a
    /// punched hole in a file; on a block device an unmap that does not fill a thin
    /// destination, with zeros written only where a best-effort discard left data). Returns
    /// the bytes that read as zeros without being written.
    pub fn discard(&mut self, dest: u64, len: u64) -> Result<u64> {
        self.check(dest, len)?;
        self.drain()?;
        if self.progress.is_cancelled() {
            return Err(Cancelled.into());
        }
        let unmapped = self.dest.discard(dest, len)?.unmapped;
        self.next_free = dest + len;
        self.progress.add_done(len);
        self.stats.bytes += len;
        Ok(unmapped)
    }

    /// Writes what is buffered and makes the destination durable.
    pub fn finish(mut self) -> Result<CopyStats> {
        self.drain()?;
        self.write_back_copied();
        self.dest.sync()?;
        Ok(self.stats)
    }
}

/// Writes a whole list of segments (sorted, non-overlapping) onto `dest`, then `fdatasync`s
/// it. The list is checked completely before the first write.
pub fn write_segments(
    segs: &[Segment],
    sources: &[SourceFile],
    dest: &Destination,
    progress: &Progress,
) -> Result<CopyStats> {
    let mut end = 0u64;
    for s in segs {
        if s.len == 0 || s.dest < end {
            return Err(Error::UnsortedSegments { offset: s.dest });
        }
        dest.check_range(s.dest, s.len)?;
        end = s.dest + s.len;
    }
    let total = segs.iter().map(|s| s.len).sum();
    let mut w = BatchWriter::new(dest, sources, progress, total);
    for s in segs {
        w.push(*s)?;
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|i| (i.wrapping_mul(0x9e37_79b9).wrapping_add(seed * 7919) >> 7) as u8)
            .collect()
    }

    /// A small deterministic shuffle.
    fn shuffle<T>(v: &mut [T], mut x: u64) {
        for i in (1..v.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.swap(i, (x % (i as u64 + 1)) as usize);
        }
    }

    /// Pieces from two sources in shuffled order, zeros, caller-held bytes and large in-kernel
    /// copies, over several batches: the destination gets exactly the expected bytes, and
    /// nothing outside the segments changes.
    #[test]
    fn scattered_reads_over_many_batches_land_where_they_belong() {
        let dir = tempfile::tempdir().unwrap();
        let grains = 40_000usize; // 20 MiB of 512-byte grains: more than two batches
        let size = (grains as u64 + 1024) * 512;
        let srcs: Vec<Vec<u8>> = (0..2).map(|k| bytes(k + 1, (grains * 512) / 2)).collect();
        let mut sources = Vec::new();
        for (k, s) in srcs.iter().enumerate() {
            let p = dir.path().join(format!("src{k}"));
            fs::write(&p, s).unwrap();
            sources.push(SourceFile {
                file: File::open(&p).unwrap(),
                path: p,
            });
        }
        // A compressed 4 KiB grain at byte 100 of a third source.
        let grain = bytes(7, 4096);
        let zgrain = {
            let mut c = libdeflater::Compressor::new(libdeflater::CompressionLvl::default());
            let mut z = vec![0u8; c.zlib_compress_bound(grain.len())];
            let n = c.zlib_compress(&grain, &mut z).unwrap();
            z.truncate(n);
            z
        };
        let zp = dir.path().join("src2");
        fs::write(&zp, [vec![0u8; 100], zgrain.clone()].concat()).unwrap();
        sources.push(SourceFile {
            file: File::open(&zp).unwrap(),
            path: zp,
        });
        let before = bytes(99, size as usize);
        let dp = dir.path().join("dest");
        fs::write(&dp, &before).unwrap();
        // Grain g of the destination comes from a shuffled place of one of the sources.
        let mut slots: Vec<usize> = (0..grains).collect();
        shuffle(&mut slots, 0x1234_5678);
        let mut want = before.clone();
        let dest = Destination::open(&dp).unwrap();
        let progress = Progress::new();
        let mut w = BatchWriter::new(&dest, &sources, &progress, size);
        let mut g = 0usize;
        let mut expected_bytes = 0u64;
        while g < grains {
            let at = (g as u64 + 512) * 512; // leaves the first 256 KiB untouched
            let (len, seg): (usize, Option<Segment>) = match g % 1000 {
                // A zeroed stretch.
                7 => (
                    3 * 512,
                    Some(Segment {
                        dest: at,
                        len: 3 * 512,
                        source: SegmentSource::Zero,
                    }),
                ),
                // A large run onto a regular file: copied in the kernel.
                500 => (
                    256 * 512,
                    Some(Segment {
                        dest: at,
                        len: 256 * 512,
                        source: SegmentSource::Read { file: 0, offset: 0 },
                    }),
                ),
                // Bytes the caller holds.
                900 => (512, None),
                // Two pieces of the compressed grain (inflated once per batch).
                300 | 302 => (
                    1024,
                    Some(Segment {
                        dest: at,
                        len: 1024,
                        source: SegmentSource::Deflate {
                            file: 2,
                            offset: 100,
                            clen: zgrain.len() as u32,
                            glen: 4096,
                            skip: if g % 1000 == 300 { 512 } else { 3072 },
                        },
                    }),
                ),
                _ => {
                    let s = slots[g];
                    let (file, off) = ((s % 2) as u32, (s / 2 * 512) as u64);
                    (
                        512,
                        Some(Segment {
                            dest: at,
                            len: 512,
                            source: SegmentSource::Read { file, offset: off },
                        }),
                    )
                }
            };
            if g + len / 512 > grains {
                break;
            }
            let range = at as usize..at as usize + len;
            match seg {
                Some(s) => {
                    match s.source {
                        SegmentSource::Zero => want[range].fill(0),
                        SegmentSource::Deflate { skip, .. } => {
                            want[range].copy_from_slice(&grain[skip as usize..skip as usize + len])
                        }
                        SegmentSource::Read { file, offset } => want[range].copy_from_slice(
                            &srcs[file as usize][offset as usize..offset as usize + len],
                        ),
                    }
                    w.push(s).unwrap();
                }
                None => {
                    let held = bytes(g as u64, len);
                    want[range].copy_from_slice(&held);
                    w.push_bytes(at, &held).unwrap();
                }
            }
            expected_bytes += len as u64;
            // Leave a gap now and then, so that batches hold several spans.
            g += len / 512 + usize::from(g.is_multiple_of(3));
        }
        assert!(matches!(
            w.push(Segment {
                dest: 0,
                len: 512,
                source: SegmentSource::Zero
            }),
            Err(Error::UnsortedSegments { .. })
        ));
        let stats = w.finish().unwrap();
        assert_eq!(stats.bytes, expected_bytes);
        assert_eq!(progress.done(), expected_bytes);
        assert!(fs::read(&dp).unwrap() == want, "destination differs");
    }

    /// A compressed grain that does not inflate is an error naming the file and the byte,
    /// and nothing of its batch is written.
    #[test]
    fn a_bad_grain_is_reported_and_its_batch_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let sp = dir.path().join("delta");
        fs::write(&sp, vec![0x55u8; 4096]).unwrap();
        let sources = vec![SourceFile {
            file: File::open(&sp).unwrap(),
            path: sp.clone(),
        }];
        let dp = dir.path().join("dest");
        fs::write(&dp, vec![1u8; 65536]).unwrap();
        let dest = Destination::open(&dp).unwrap();
        let progress = Progress::new();
        let mut w = BatchWriter::new(&dest, &sources, &progress, 8192);
        w.push(Segment {
            dest: 0,
            len: 4096,
            source: SegmentSource::Zero,
        })
        .unwrap();
        let deflate = SegmentSource::Deflate {
            file: 0,
            offset: 512,
            clen: 1000,
            glen: 4096,
            skip: 0,
        };
        w.push(Segment {
            dest: 8192,
            len: 4096,
            source: deflate,
        })
        .unwrap();
        let e = w.finish().unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "{}: inflate the compressed grain at byte 512",
                sp.display()
            )),
            "{e}"
        );
        assert!(fs::read(&dp).unwrap().iter().all(|&b| b == 1));
    }
}
