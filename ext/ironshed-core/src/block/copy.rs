//! The copy loop: segments arrive in destination order and are gathered into one buffer while
//! they are contiguous, so that each `pwrite` is large (up to [`BATCH`] bytes). Producers push
//! segments one at a time ([`BatchWriter::push`]), so the whole list never has to exist in
//! memory at once.

use super::{Destination, Error, Result};
use crate::error::{Cancelled, IoContext};
use crate::progress::Progress;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// Largest single write, and the size of the one buffer the loop allocates.
pub const BATCH: usize = 8 << 20;

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

/// Gathers pushed segments into large positioned writes onto a destination.
///
/// Segments must come sorted by destination offset and must not overlap; each is checked
/// against the destination's size before anything of it is buffered. [`BatchWriter::finish`]
/// writes what is left and `fdatasync`s the destination.
pub struct BatchWriter<'a> {
    dest: &'a Destination,
    sources: &'a [SourceFile],
    progress: &'a Progress,
    buf: Vec<u8>,
    start: u64,
    fill: usize,
    next_free: u64,
    stats: CopyStats,
    in_kernel: bool,
}

impl<'a> BatchWriter<'a> {
    /// A writer onto `dest`, reading `Read` segments from `sources`. `expected` (bytes the
    /// caller will push, if known) sizes the buffer and the progress total.
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
            buf: vec![0u8; cap],
            start: 0,
            fill: 0,
            next_free: 0,
            stats: CopyStats::default(),
            in_kernel: dest.kind() == super::DestKind::File,
        }
    }

    fn check(&self, dest: u64, len: u64) -> Result<()> {
        if len == 0 || dest < self.next_free {
            return Err(Error::UnsortedSegments { offset: dest });
        }
        self.dest.check_range(dest, len)
    }

    /// Adds a segment; writes out the buffer first when the segment does not continue it.
    /// Large reads onto a regular file are copied in the kernel (`copy_file_range`), without
    /// passing through the buffer.
    pub fn push(&mut self, seg: Segment) -> Result<()> {
        self.check(seg.dest, seg.len)?;
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
            let at = seg.dest + done;
            self.make_room(at)?;
            let take = (seg.len - done).min((self.buf.len() - self.fill) as u64) as usize;
            let out = &mut self.buf[self.fill..self.fill + take];
            match seg.source {
                SegmentSource::Read { file, offset } => {
                    let src = self
                        .sources
                        .get(file as usize)
                        .ok_or(Error::UnsortedSegments { offset: seg.dest })?;
                    let from = offset + done;
                    src.file.read_exact_at(out, from).map_err(|e| {
                        IoContext::new(&src.path, format!("read {take} bytes at byte {from}"), e)
                    })?;
                }
                SegmentSource::Zero => out.fill(0),
            }
            self.fill += take;
            done += take as u64;
        }
        self.next_free = seg.dest + seg.len;
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
        self.flush()?;
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
        Ok(true)
    }

    /// Adds bytes the caller already holds (for example an inflated grain) at `dest`.
    pub fn push_bytes(&mut self, dest: u64, data: &[u8]) -> Result<()> {
        self.check(dest, data.len() as u64)?;
        let mut done = 0usize;
        while done < data.len() {
            self.make_room(dest + done as u64)?;
            let take = (data.len() - done).min(self.buf.len() - self.fill);
            self.buf[self.fill..self.fill + take].copy_from_slice(&data[done..done + take]);
            self.fill += take;
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
        self.flush()?;
        if self.progress.is_cancelled() {
            return Err(Cancelled.into());
        }
        let unmapped = self.dest.discard(dest, len)?.unmapped;
        self.next_free = dest + len;
        self.progress.add_done(len);
        self.stats.bytes += len;
        Ok(unmapped)
    }

    /// Ensures the buffer can take bytes for destination offset `at` next.
    fn make_room(&mut self, at: u64) -> Result<()> {
        let contiguous = self.fill > 0 && self.start + self.fill as u64 == at;
        if !contiguous || self.fill == self.buf.len() {
            self.flush()?;
        }
        if self.fill == 0 {
            self.start = at;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.fill == 0 {
            return Ok(());
        }
        if self.progress.is_cancelled() {
            return Err(Cancelled.into());
        }
        self.dest.write_all_at(&self.buf[..self.fill], self.start)?;
        self.stats.bytes += self.fill as u64;
        self.stats.writes += 1;
        self.progress.add_done(self.fill as u64);
        self.fill = 0;
        Ok(())
    }

    /// Writes what is buffered and makes the destination durable.
    pub fn finish(mut self) -> Result<CopyStats> {
        self.flush()?;
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
