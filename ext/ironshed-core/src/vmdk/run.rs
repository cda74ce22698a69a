//! What every extent reader produces: runs of the virtual disk and where their bytes come
//! from, plus the newest-wins overlay used to merge the layers of a snapshot chain, and the
//! walk over an extent's grain tables that every reader shares ([`ExtentReader`]).

use super::Result;
use crate::io::ReadAt;
use byteorder::{ByteOrder, LittleEndian as LE};

/// Where the bytes of a run come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Src {
    /// Stored uncompressed at byte `offset` of source file `file`.
    Data {
        /// Index into the chain's source files.
        file: u32,
        /// Byte offset of the run's first byte.
        offset: u64,
    },
    /// Reads as zeros (a zeroed or unmapped grain).
    Zero,
    /// Part of a zlib-compressed grain: inflate the grain, then take `len` bytes from `skip`.
    Deflate(DeflateRef),
}

/// A compressed grain as found in a streamOptimized extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateRef {
    /// Index into the chain's source files.
    pub file: u32,
    /// Byte offset of the compressed data (after the 12-byte grain marker).
    pub offset: u64,
    /// Compressed length in bytes.
    pub clen: u32,
    /// Largest inflated size accepted (one grain).
    pub glen: u32,
    /// Bytes of the inflated grain before this run's first byte.
    pub skip: u32,
}

/// `len` bytes of the virtual disk at byte `virt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Virtual byte offset.
    pub virt: u64,
    /// Length in bytes (> 0).
    pub len: u64,
    /// Where the bytes come from.
    pub src: Src,
}

impl Run {
    /// End (exclusive) in virtual bytes.
    pub fn end(&self) -> u64 {
        self.virt + self.len
    }

    /// The part of this run inside `[a, b)` (which must intersect it).
    pub fn slice(&self, a: u64, b: u64) -> Run {
        let a = a.max(self.virt);
        let b = b.min(self.end());
        let cut = a - self.virt;
        let src = match self.src {
            Src::Data { file, offset } => Src::Data {
                file,
                offset: offset + cut,
            },
            Src::Zero => Src::Zero,
            Src::Deflate(d) => Src::Deflate(DeflateRef {
                skip: d.skip + cut as u32,
                ..d
            }),
        };
        Run {
            virt: a,
            len: b - a,
            src,
        }
    }

    /// Extends this run by `next` when both are contiguous on disk and in their source.
    pub fn try_merge(&mut self, next: &Run) -> bool {
        if self.end() != next.virt {
            return false;
        }
        let ok = match (self.src, next.src) {
            (
                Src::Data {
                    file: f1,
                    offset: o1,
                },
                Src::Data {
                    file: f2,
                    offset: o2,
                },
            ) => f1 == f2 && o1 + self.len == o2,
            (Src::Zero, Src::Zero) => true,
            _ => false,
        };
        if ok {
            self.len += next.len;
        }
        ok
    }
}

/// Appends `r` to `out`, merging it into the last run when they are contiguous.
pub fn push_merged(out: &mut Vec<Run>, r: Run) {
    if let Some(last) = out.last_mut() {
        if last.try_merge(&r) {
            return;
        }
    }
    out.push(r);
}

/// Lays `newer` over `older` (both sorted by `virt`, each non-overlapping): the result, in
/// `out`, is sorted and non-overlapping; where both have data, `newer` wins.
pub fn overlay(older: &[Run], newer: &[Run], out: &mut Vec<Run>) {
    out.clear();
    let mut j = 0usize;
    let mut pending: Vec<Run> = Vec::new();
    for o in older {
        while j < newer.len() && newer[j].end() <= o.virt {
            j += 1;
        }
        let mut cur = o.virt;
        let mut k = j;
        while cur < o.end() {
            match newer.get(k) {
                Some(n) if n.virt < o.end() => {
                    if n.virt > cur {
                        pending.push(o.slice(cur, n.virt));
                    }
                    cur = cur.max(n.end());
                    k += 1;
                }
                _ => {
                    pending.push(o.slice(cur, o.end()));
                    cur = o.end();
                }
            }
        }
    }
    // Merge the surviving older pieces with the newer runs, both sorted.
    let (mut a, mut b) = (
        pending.into_iter().peekable(),
        newer.iter().copied().peekable(),
    );
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => {
                if x.virt < y.virt {
                    a.next()
                } else {
                    b.next()
                }
            }
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        if let Some(r) = next {
            push_merged(out, r);
        }
    }
}

/// Takes runs in disk order, clips them to a window `[start, end)`, merges contiguous ones
/// and hands the result to a callback: the tail end of every reader's `for_each_run`.
pub struct RunSink<'f> {
    start: u64,
    end: u64,
    pending: Option<Run>,
    f: &'f mut dyn FnMut(Run) -> Result<()>,
}

impl<'f> RunSink<'f> {
    /// A sink for the window `[start, end)`.
    pub fn new(start: u64, end: u64, f: &'f mut dyn FnMut(Run) -> Result<()>) -> Self {
        RunSink {
            start,
            end,
            pending: None,
            f,
        }
    }

    /// Adds a run (ignored when outside the window).
    pub fn push(&mut self, run: Run) -> Result<()> {
        if run.end() <= self.start || run.virt >= self.end {
            return Ok(());
        }
        let run = run.slice(self.start, self.end);
        if let Some(p) = self.pending.as_mut() {
            if p.try_merge(&run) {
                return Ok(());
            }
        }
        match self.pending.replace(run) {
            Some(p) => (self.f)(p),
            None => Ok(()),
        }
    }

    /// Hands over the last run.
    pub fn finish(mut self) -> Result<()> {
        match self.pending.take() {
            Some(p) => (self.f)(p),
            None => Ok(()),
        }
    }
}

/// What differs between the extent formats (COWD, hosted sparse, seSparse): where the grain
/// tables are, each covering [`GrainTables::table_span`] bytes of the disk, and what a table
/// entry means. Reading a table ([`GrainTables::read_table`]) and the walk over the tables
/// ([`ExtentReader`], which every implementation gets) are written once, here.
pub(crate) trait GrainTables {
    /// A checked table entry.
    type Entry;
    /// Bytes of one table entry (a little-endian integer; 0 means "not in this extent").
    const ENTRY_BYTES: usize;
    /// Bytes of one grain table.
    const TABLE_BYTES: usize;
    /// Disk bytes the extent covers.
    fn capacity_bytes(&self) -> u64;
    /// Disk bytes one grain table covers.
    fn table_span(&self) -> u64;
    /// Entries of the grain directory.
    fn table_count(&self) -> u64;
    /// True when directory entry `i` names a table.
    fn has_table(&self, i: u64) -> bool;
    /// Where the table of directory entry `i` lies, checked: its byte offset and the number
    /// that names it in messages; `None` when the directory names no table there.
    fn table_at(&self, i: u64, name: &str) -> Result<Option<(u64, u64)>>;
    /// Checks entry `j` (raw value `e`, not 0) of the table of directory entry `i`.
    fn check_entry(&self, i: u64, j: u64, e: u64, name: &str) -> Result<Self::Entry>;
    /// The run of the disk an entry stands for; `file` is the source index recorded in it.
    fn run(&self, src: &dyn ReadAt, name: &str, file: u32, entry: Self::Entry) -> Result<Run>;

    /// Reads the table of directory entry `i` into `buf` ([`GrainTables::TABLE_BYTES`]) and
    /// returns its present entries in disk order, each checked; `None` when the directory
    /// names no table there.
    fn read_table<'b>(
        &'b self,
        src: &dyn ReadAt,
        name: &'b str,
        i: u64,
        buf: &'b mut [u8],
    ) -> Result<Option<impl Iterator<Item = Result<Self::Entry>> + 'b>> {
        let Some((at, n)) = self.table_at(i, name)? else {
            return Ok(None);
        };
        src.read_exact_at(buf, at).map_err(|e| {
            super::Error::Io(crate::IoContext::new(
                std::path::Path::new(name),
                format!("read grain table {n} at byte {at}"),
                e,
            ))
        })?;
        let buf: &'b [u8] = buf;
        Ok(Some(
            buf.chunks_exact(Self::ENTRY_BYTES)
                .enumerate()
                .filter_map(move |(j, b)| {
                    let e = if Self::ENTRY_BYTES == 4 {
                        u64::from(LE::read_u32(b))
                    } else {
                        LE::read_u64(b)
                    };
                    (e != 0).then(|| self.check_entry(i, j as u64, e, name))
                }),
        ))
    }
}

/// What a layer asks of an extent, whatever its format.
pub trait ExtentReader {
    /// The first disk byte at or after `from` that a grain table covers (None: no data there).
    fn next_data(&self, from: u64) -> Option<u64>;
    /// Calls `f` for the runs inside the disk byte range `[start, end)`, in disk order, with
    /// contiguous runs merged; `file` is the source index recorded in the runs. Tables are
    /// read (and their entries checked again) one at a time, so memory stays bounded by one
    /// table whatever the size of the extent.
    fn for_each_run(
        &self,
        src: &dyn ReadAt,
        name: &str,
        file: u32,
        start: u64,
        end: u64,
        f: &mut dyn FnMut(Run) -> Result<()>,
    ) -> Result<()>;
}

impl<T: GrainTables> ExtentReader for T {
    fn next_data(&self, from: u64) -> Option<u64> {
        let span = self.table_span();
        (from / span..self.table_count())
            .find(|&i| self.has_table(i))
            .map(|i| (i * span).max(from))
    }

    fn for_each_run(
        &self,
        src: &dyn ReadAt,
        name: &str,
        file: u32,
        start: u64,
        end: u64,
        f: &mut dyn FnMut(Run) -> Result<()>,
    ) -> Result<()> {
        let end = end.min(self.capacity_bytes());
        if start >= end {
            return Ok(());
        }
        let span = self.table_span();
        let mut table = vec![0u8; T::TABLE_BYTES];
        let mut sink = RunSink::new(start, end, f);
        for i in start / span..end.div_ceil(span) {
            let Some(entries) = self.read_table(src, name, i, &mut table)? else {
                continue;
            };
            for e in entries {
                sink.push(self.run(src, name, file, e?)?)?;
            }
        }
        sink.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(virt: u64, len: u64, file: u32, offset: u64) -> Run {
        Run {
            virt,
            len,
            src: Src::Data { file, offset },
        }
    }

    #[test]
    fn newer_wins_and_older_pieces_are_sliced() {
        let older = [data(0, 100, 0, 1000), data(200, 50, 0, 5000)];
        let newer = [data(10, 20, 1, 0), data(90, 130, 1, 500)];
        let mut out = Vec::new();
        overlay(&older, &newer, &mut out);
        assert_eq!(
            out,
            vec![
                data(0, 10, 0, 1000),
                data(10, 20, 1, 0),
                data(30, 60, 0, 1030),
                data(90, 130, 1, 500),
                data(220, 30, 0, 5020),
            ]
        );
    }

    #[test]
    fn contiguous_pieces_merge() {
        let older = [data(0, 10, 0, 0), data(10, 10, 0, 10)];
        let mut out = Vec::new();
        overlay(&older, &[], &mut out);
        assert_eq!(out, vec![data(0, 20, 0, 0)]);
        let zeros = [
            Run {
                virt: 0,
                len: 5,
                src: Src::Zero,
            },
            Run {
                virt: 5,
                len: 5,
                src: Src::Zero,
            },
        ];
        overlay(&zeros, &[], &mut out);
        assert_eq!(
            out,
            vec![Run {
                virt: 0,
                len: 10,
                src: Src::Zero
            }]
        );
    }

    #[test]
    fn deflate_slices_keep_their_grain() {
        let d = DeflateRef {
            file: 2,
            offset: 600,
            clen: 99,
            glen: 65536,
            skip: 0,
        };
        let older = [Run {
            virt: 65536,
            len: 65536,
            src: Src::Deflate(d),
        }];
        let newer = [data(65536 + 4096, 4096, 0, 0)];
        let mut out = Vec::new();
        overlay(&older, &newer, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].src, Src::Deflate(DeflateRef { skip: 8192, ..d }));
        assert_eq!((out[2].virt, out[2].len), (65536 + 8192, 65536 - 8192));
    }
}
