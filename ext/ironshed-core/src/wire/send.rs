//! The sender: streams the changed ranges of a source device as PROTO[3] records.
//!
//! * Ranges arrive coalesced ([`Changes`]) and are cut into records of at most
//!   [`SendOptions::max_record`] bytes (default [`MAX_SEND_RECORD`], 1 MiB).
//! * Records go out in ascending offset order, except that the record reaching furthest is
//!   sent first: a receiver whose destination is too small then refuses the stream at its
//!   first record, before writing anything. The order never matters for the result, since
//!   records never overlap.
//! * With [`SendOptions::discards`], the stream has the extended handshake and the discard
//!   ranges go out as discard records (a header, no data), cut at 2^31-1 bytes, interleaved
//!   with the data records in the same order (the furthest-reaching record of either kind
//!   first). Without it there are no discard records: [`send_changes`] merges discarded
//!   ranges into the data ranges ([`ChangeSet::for_stream`]), and they are read from the
//!   source, where they read as zeros.
//! * With [`SendOptions::digests`], each record's [`Digest`] is computed from its data while it
//!   is in the arena (a record split over several fills is hashed in pieces), and a discard
//!   record's from `len` zero bytes, never read.
//! * Unless [`SendOptions::plain`], the stream is marked (see [`super::proto3`]): a `BEGIN`
//!   item after the handshake announces the records (their count, data bytes, and the digest
//!   of their headers, all known before any data is read), and an `END` item after the last
//!   record carries the item count and the XXH3-64 of every byte sent before it, computed as
//!   the bytes go out. A receiver of this project then detects a stream cut anywhere; the
//!   original receiver stops at `BEGIN` before writing, so it must be sent a plain stream.
//! * With [`SendOptions::expect_from`] (the OLDER snapshot of a `--from` round), an `EXPECT`
//!   item follows `BEGIN`: OLDER's and the source's hash of every record's range, read
//!   before anything is sent, for the receiver's destination check ([`super::destcheck`]).
//! * Data is read with the source's [`SourceDevice`] (`O_DIRECT` for block devices) into
//!   aligned arenas of [`ARENA`] bytes (small enough to stay in the CPU cache), adjacent data
//!   with one read — on a device also data separated by gaps of at most 64 KiB, whose bytes
//!   are read and skipped, so scattered chunks close together cost one request — and written
//!   out with vectored writes (header and data slices, no copy); a record larger than the
//!   arena goes out in several writes. A reader thread fills the next arena while this one
//!   is written, so reading the source and writing the stream overlap. Memory stays at three
//!   arenas whatever the amount of data.

use super::digest::{Digest, RangeHasher, ZeroHashes};
use super::proto3::{
    layout_digest, Control, RecordHeader, StreamHash, Summary, HANDSHAKE, HANDSHAKE_DISCARDS,
    HEADER_LEN, MAX_EXTENDED_LEN, MAX_SEND_RECORD,
};
use super::{Error, Result};
use crate::error::{Cancelled, IoContext};
use crate::io::{AlignedBuf, Inputs, ReadMode, SourceDevice, WaitingFile, Written, DIRECT_ALIGN};
use crate::progress::Progress;
use crate::snapshot::{ByteRange, ChangeSet, Changes};
use std::fs::File;
use std::io::{IoSlice, Write};
use std::path::{Path, PathBuf};

/// Size of the data arena (one vectored write).
pub const ARENA: usize = 256 << 10;
/// Records per vectored write (two slices each; IOV_MAX is 1024).
const MAX_RECORDS_PER_WRITE: usize = 500;

/// How to send.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Largest data record (bytes, > 0; at most 2^31-1 with `discards`).
    pub max_record: u32,
    /// Extended stream (`lvmsync PROTO[3] discards`): discard ranges go out as discard
    /// records. Only a receiver of this project understands it; the original lvmsync refuses
    /// the handshake before writing anything.
    pub discards: bool,
    /// Compute a [`Digest`] per record ([`SendStats::digests`]).
    pub digests: bool,
    /// Other files the changes come from, as `(role, path)` ("the snapshot", "the exception
    /// store"): [`send_changes_to_file`] refuses an output that is one of them, or the source.
    pub inputs: Vec<(String, PathBuf)>,
    /// The original format: no `BEGIN` and `END` marks, so that the original lvmsync (or an
    /// older version of this one) can apply the stream; a cut between two records then goes
    /// unnoticed.
    pub plain: bool,
    /// The device holding what the destination must hold now (the OLDER snapshot of a
    /// `--from` round): an `EXPECT` item lists its hashes, and the source's, of every range
    /// sent, for the receiver's destination check. Needs a marked stream (not `plain`).
    pub expect_from: Option<PathBuf>,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            max_record: MAX_SEND_RECORD,
            discards: false,
            digests: false,
            inputs: Vec::new(),
            plain: false,
            expect_from: None,
        }
    }
}

/// What a send did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendStats {
    /// Data records sent.
    pub records: u64,
    /// Data bytes sent.
    pub bytes: u64,
    /// Stream bytes written (handshake and headers included).
    pub stream_bytes: u64,
    /// Discard records sent.
    pub discard_records: u64,
    /// Bytes covered by discard records.
    pub discard_bytes: u64,
    /// One digest per record (data and discard), in stream order, with
    /// [`SendOptions::digests`]; empty otherwise.
    pub digests: Vec<Digest>,
    /// The stream was marked (`BEGIN` ... `END`).
    pub end_mark: bool,
    /// Ranges the `EXPECT` item listed for the destination check (0: none was sent).
    pub expect_ranges: u64,
}

struct Out<'a, W: Write> {
    w: &'a mut W,
    name: &'a str,
    stats: SendStats,
    /// Every byte written, for the `END` mark.
    hash: StreamHash,
}

impl<W: Write> Out<'_, W> {
    fn err(&self, e: std::io::Error) -> Error {
        Error::Io(IoContext::new(Path::new(self.name), "write the stream", e))
    }

    /// Writes the slices whole (hashing them for the `END` mark).
    fn write_all_vectored(&mut self, mut slices: &mut [IoSlice<'_>]) -> Result<()> {
        for s in slices.iter() {
            self.hash.update(s);
        }
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

/// What [`send_changes`] did: the send's [`SendStats`], and what it found about the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReport {
    /// The send.
    pub stats: SendStats,
    /// Data ranges sent (after merging and clipping), each cut into records.
    pub ranges: u64,
    /// Size of the source in bytes.
    pub source_size: u64,
    /// How the source was read.
    pub read_mode: ReadMode,
}

/// Sends what a change source said changed, reading the data from the device or file at
/// `source` (`O_DIRECT` for a block device): the set is made what the stream can carry
/// ([`ChangeSet::for_stream`]: discards merged into data without [`SendOptions::discards`]),
/// checked and clipped against the source's size ([`ChangeSet::clip_to`]), then sent with
/// [`send`].
pub fn send_changes<W: Write>(
    set: ChangeSet,
    source: &Path,
    out: &mut W,
    out_name: &str,
    opts: &SendOptions,
    progress: &Progress,
) -> Result<SendReport> {
    let src = SourceDevice::open(source)?;
    let mut set = set.for_stream(opts.discards);
    set.clip_to(src.len(), &source.display().to_string())?;
    let stats = send(&set, &src, out, out_name, opts, progress)?;
    Ok(SendReport {
        stats,
        ranges: set.data.ranges().len() as u64,
        source_size: src.len(),
        read_mode: src.mode(),
    })
}

/// [`send_changes`] to an open file (standard output, a pipe to a receiver), refused before
/// anything is read or written when the output is the source or one of
/// [`SendOptions::inputs`] (`lvmsync --stdout SNAP > /dev/VG/ORIGIN` would write the stream
/// over the origin it reads). Writes wait in `poll`, where `progress`'s cancel flag is seen.
pub fn send_changes_to_file(
    set: ChangeSet,
    source: &Path,
    out: File,
    out_name: &str,
    opts: &SendOptions,
    progress: &Progress,
) -> Result<SendReport> {
    let mut inputs = Inputs::new();
    inputs.add_path(source, "the data source")?;
    inputs.add_paths(&opts.inputs)?;
    if let Some(older) = &opts.expect_from {
        inputs.add_path(older, "the older snapshot")?;
    }
    inputs.check(&out, Path::new(out_name), Written::Output)?;
    let mut w = WaitingFile::new(out).cancelled_by(progress);
    send_changes(set, source, &mut w, out_name, opts, progress)
}

/// [`send_changes`] into an in-process link to a receiver thread (a local destination). The
/// link is finished only when everything was sent: a send that fails makes the receiver
/// fail too, after the bytes already sent, even for a plain stream, whose end would
/// otherwise look complete.
pub fn send_changes_to_link(
    set: ChangeSet,
    source: &Path,
    mut out: crate::io::link::LinkWriter,
    out_name: &str,
    opts: &SendOptions,
    progress: &Progress,
) -> Result<SendReport> {
    let report = send_changes(set, source, &mut out, out_name, opts, progress)?;
    out.finish()
        .map_err(|e| Error::Io(IoContext::new(Path::new(out_name), "write the stream", e)))?;
    Ok(report)
}

/// Sends `set` (data ranges, and ranges that must read as zeros) read from `source` to `out`
/// (named `out_name` in messages).
///
/// Every range must lie inside the source (see [`Changes::clip_to`]), and the two lists must
/// not overlap; both are checked before anything is written. Without
/// [`SendOptions::discards`], `set.discards` must be empty ([`Error::Internal`] otherwise:
/// [`ChangeSet::for_stream`] merges them into the data ranges).
pub fn send<W: Write>(
    set: &ChangeSet,
    source: &SourceDevice,
    out: &mut W,
    out_name: &str,
    opts: &SendOptions,
    progress: &Progress,
) -> Result<SendStats> {
    match send_inner(
        &set.data,
        &set.discards,
        source,
        out,
        out_name,
        opts,
        progress,
    ) {
        Err(_) if progress.is_cancelled() => Err(Cancelled.into()),
        r => r,
    }
}

fn check_inside(list: &Changes, source: &SourceDevice) -> Result<()> {
    if let Some(last) = list.ranges().last() {
        if last.end() > source.len() {
            return Err(Error::Source(crate::snapshot::Error::PastSource {
                source_name: source.path().display().to_string(),
                offset: list
                    .ranges()
                    .iter()
                    .find(|r| r.end() > source.len())
                    .map_or(last.offset, |r| r.offset.max(source.len())),
                size: source.len(),
            }));
        }
    }
    Ok(())
}

/// Refuses data and discard ranges that overlap (both lists are sorted: one merge pass).
fn check_disjoint(data: &[ByteRange], discards: &[ByteRange]) -> Result<()> {
    let (mut i, mut j) = (0, 0);
    while i < data.len() && j < discards.len() {
        let (a, b) = (data[i], discards[j]);
        if a.end() <= b.offset {
            i += 1;
        } else if b.end() <= a.offset {
            j += 1;
        } else {
            return Err(Error::Internal(format!(
                "data range of {} bytes at byte {} overlaps discard range of {} bytes at byte {}",
                a.len, a.offset, b.len, b.offset
            )));
        }
    }
    Ok(())
}

/// A record to send: a data range, or a discard range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    range: ByteRange,
    discard: bool,
}

/// The pieces of both lists in ascending offset order.
fn merged<'a>(
    data: impl Iterator<Item = ByteRange> + 'a,
    discards: impl Iterator<Item = ByteRange> + 'a,
) -> impl Iterator<Item = Piece> + 'a {
    let mut a = data.peekable();
    let mut b = discards.peekable();
    std::iter::from_fn(move || {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.offset <= y.offset,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        if take_a {
            a.next().map(|range| Piece {
                range,
                discard: false,
            })
        } else {
            b.next().map(|range| Piece {
                range,
                discard: true,
            })
        }
    })
}

/// The pieces in the order they are sent: the furthest-reaching one first (the last of
/// either list), then all others in order.
fn send_order<'a>(
    changes: &'a Changes,
    discards: &'a Changes,
    max: u64,
    dmax: u64,
    count: u64,
) -> impl Iterator<Item = Piece> + 'a {
    let last = merged(changes.pieces(max), discards.pieces(dmax)).last();
    last.into_iter().chain(
        merged(changes.pieces(max), discards.pieces(dmax)).take(count.saturating_sub(1) as usize),
    )
}

/// The 12 header bytes of `piece`'s record.
fn header_of(piece: &Piece) -> [u8; HEADER_LEN] {
    let h = RecordHeader {
        offset: piece.range.offset,
        len: piece.range.len as u32,
    };
    if piece.discard {
        h.encode_discard()
    } else {
        h.encode()
    }
}

fn send_inner<W: Write>(
    changes: &Changes,
    discards: &Changes,
    source: &SourceDevice,
    out: &mut W,
    out_name: &str,
    opts: &SendOptions,
    progress: &Progress,
) -> Result<SendStats> {
    if !opts.discards && !discards.is_empty() {
        return Err(Error::Internal(format!(
            "{} discard ranges given for a plain PROTO[3] stream: merge them into the data ranges (they read as zeros from the source)",
            discards.ranges().len()
        )));
    }
    let mut max = u64::from(opts.max_record.max(1));
    if opts.discards {
        // The length's top bit marks discard records in an extended stream.
        max = max.min(u64::from(MAX_EXTENDED_LEN));
    }
    let dmax = u64::from(MAX_EXTENDED_LEN);
    check_inside(changes, source)?;
    check_inside(discards, source)?;
    check_disjoint(changes.ranges(), discards.ranges())?;
    progress.set_total(changes.total_bytes());
    let mut out = Out {
        w: out,
        name: out_name,
        stats: SendStats::default(),
        hash: StreamHash::default(),
    };
    let handshake = if opts.discards {
        HANDSHAKE_DISCARDS
    } else {
        HANDSHAKE
    };

    // The furthest-reaching piece first (the last of either list), then all others in order.
    let count = changes.piece_count(max) + discards.piece_count(dmax);
    let order = || send_order(changes, discards, max, dmax, count);
    // The destination check's hashes, read before anything is sent.
    let expect = match &opts.expect_from {
        Some(_) if opts.plain => {
            return Err(Error::Internal(
                "the destination check needs a marked stream, not a plain one".into(),
            ))
        }
        Some(path) => {
            let older = SourceDevice::open(path)?;
            let pieces = merged(changes.pieces(max), discards.pieces(dmax));
            Some(super::destcheck::expected(
                pieces.map(|p| (p.range, p.discard)),
                &older,
                source,
                progress,
            )?)
            // Nothing changes: nothing to check.
            .filter(|e| !e.is_empty())
        }
        None => None,
    };
    // The handshake and BEGIN in one write (one piece on a pipe): a stream cut right after
    // its handshake would read as an empty plain stream.
    let mut head = handshake.to_vec();
    if !opts.plain {
        let begin = Control::Begin(Summary {
            items: count + u64::from(expect.is_some()),
            data_bytes: changes.total_bytes(),
            digest: layout_digest(handshake, order().map(|p| header_of(&p))),
        });
        head.extend_from_slice(&begin.encode());
        out.stats.end_mark = true;
        if let Some(e) = expect {
            out.stats.expect_ranges = e.len() as u64;
            head.extend_from_slice(&Control::Expect(e).encode());
        }
    }
    out.write_all_vectored(&mut [IoSlice::new(&head)])?;
    let order = order();
    let mut digests = opts.digests.then(Digester::default);
    // Reading and writing overlap: a reader thread fills arenas (at most FILLS exist) while
    // this thread writes the filled ones to the stream in order.
    let (filled_tx, filled) = std::sync::mpsc::sync_channel::<Fill>(1);
    let (spare_tx, spare) = std::sync::mpsc::channel::<Fill>();
    let gap = match source.mode() {
        // A cached regular file: a gap costs a copy about as dear as the read it saves.
        ReadMode::Buffered => 0,
        // A device: one larger request instead of several small ones.
        ReadMode::Direct | ReadMode::DropCachedRange => READ_THROUGH_GAP,
    };
    let counts = std::thread::scope(|s| -> Result<Counts> {
        let reader = s.spawn(move || fill_arenas(order, source, gap, filled_tx, spare));
        let mut written: Result<()> = Ok(());
        for f in filled.iter() {
            written = flush(
                &mut out,
                &f.arena,
                &f.headers,
                &f.ops,
                digests.as_mut(),
                progress,
            );
            if written.is_err() {
                break;
            }
            let _ = spare_tx.send(f);
        }
        // A write error ends the reader at its next hand-over (the channels close); a read
        // error ends it at once, after the fills before it were written.
        drop(filled);
        drop(spare_tx);
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(Error::Internal("the reader thread failed".into())));
        written?;
        read
    })?;
    out.stats.records = counts.records;
    out.stats.bytes = counts.bytes;
    out.stats.discard_records = counts.discard_records;
    out.stats.discard_bytes = counts.discard_bytes;
    if !opts.plain {
        let end = Control::End(Summary {
            items: count + 1 + u64::from(out.stats.expect_ranges > 0),
            data_bytes: changes.total_bytes(),
            digest: out.hash.digest(),
        });
        out.write_all_vectored(&mut [IoSlice::new(&end.encode())])?;
    }
    out.w.flush().map_err(|e| out.err(e))?;
    if let Some(d) = digests {
        if d.current.is_some() {
            return Err(Error::Internal(
                "a record's digest was left incomplete".into(),
            ));
        }
        out.stats.digests = d.out;
    }
    Ok(out.stats)
}

/// Largest gap between two chunks of a device that one read covers (the gap's bytes are read
/// and not sent): scattered chunks close together cost one request instead of several.
const READ_THROUGH_GAP: u64 = 64 << 10;

/// Arenas in use at most: one being filled, one queued, one being written.
const FILLS: usize = 3;

/// One arena's worth of the stream: the data read, and the slices to write in order.
struct Fill {
    arena: AlignedBuf,
    headers: Vec<Header>,
    ops: Vec<Op>,
}

/// What the reader counted.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    records: u64,
    bytes: u64,
    discard_records: u64,
    discard_bytes: u64,
}

/// The reader side of [`send_inner`]: cuts the pieces into arena fills, reads their data
/// (adjacent data with one read, and through gaps of at most `gap` bytes) and hands every
/// fill over in order; takes written fills back from `spare`.
fn fill_arenas(
    order: impl Iterator<Item = Piece>,
    source: &SourceDevice,
    gap: u64,
    filled: std::sync::mpsc::SyncSender<Fill>,
    spare: std::sync::mpsc::Receiver<Fill>,
) -> Result<Counts> {
    let mut made = 1usize;
    let mut f = Fill {
        arena: AlignedBuf::new(ARENA),
        headers: Vec::with_capacity(MAX_RECORDS_PER_WRITE),
        ops: Vec::with_capacity(2 * MAX_RECORDS_PER_WRITE),
    };
    let mut counts = Counts::default();
    // A pending read: source offset, arena offset, length (grows while data is adjacent or
    // close).
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
    // Hands the fill over (its pending read done) and starts the next one; false when the
    // writer has stopped.
    let mut hand_over = |f: &mut Fill, pending: &mut Option<(u64, usize, usize)>| -> Result<bool> {
        if let Some(p) = pending.take() {
            read(&mut f.arena, p)?;
        }
        if f.ops.is_empty() {
            return Ok(true);
        }
        let next = match spare.try_recv() {
            Ok(n) => n,
            Err(_) if made < FILLS => {
                made += 1;
                Fill {
                    arena: AlignedBuf::new(ARENA),
                    headers: Vec::with_capacity(MAX_RECORDS_PER_WRITE),
                    ops: Vec::with_capacity(2 * MAX_RECORDS_PER_WRITE),
                }
            }
            Err(_) => match spare.recv() {
                Ok(n) => n,
                Err(_) => return Ok(false),
            },
        };
        let done = std::mem::replace(f, next);
        f.headers.clear();
        f.ops.clear();
        Ok(filled.send(done).is_ok())
    };

    let result: Result<()> = (|| {
        for piece in order {
            let ByteRange { offset, len } = piece.range;
            if f.headers.len() >= MAX_RECORDS_PER_WRITE {
                if !hand_over(&mut f, &mut pending)? {
                    return Ok(());
                }
                used = 0;
            }
            f.headers.push(Header {
                bytes: header_of(&piece),
                offset,
                len,
                discard: piece.discard,
            });
            f.ops.push(Op::Header(f.headers.len() - 1));
            if piece.discard {
                counts.discard_records += 1;
                counts.discard_bytes += len;
                continue;
            }
            // The data, in as many arena fills as it takes (a record may be larger than the
            // arena: the stream is a byte stream, so its data may go out in several writes).
            let mut src = offset;
            let mut left = len as usize;
            while left > 0 {
                // Where the data goes: right after the pending read when it continues it or
                // follows it closely (the gap is read too, and skipped), else a new read.
                let near = match pending {
                    Some((s, a, l))
                        if a + l == used && src >= s + l as u64 && src - (s + l as u64) <= gap =>
                    {
                        Some(a + (src - s) as usize)
                    }
                    _ => None,
                };
                let at = near.unwrap_or_else(|| used.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN);
                let mut take = left.min(ARENA.saturating_sub(at));
                if take < left {
                    // Keep later reads aligned for O_DIRECT: cut at an alignment boundary.
                    take -= take % DIRECT_ALIGN;
                }
                if take == 0 {
                    // The header of the record in flight goes out with this fill.
                    if !hand_over(&mut f, &mut pending)? {
                        return Ok(());
                    }
                    used = 0;
                    continue;
                }
                match (pending.as_mut(), near) {
                    (Some((s, _, l)), Some(_)) => *l = (src - *s) as usize + take,
                    _ => {
                        if let Some(p) = pending.take() {
                            read(&mut f.arena, p)?;
                        }
                        pending = Some((src, at, take));
                    }
                }
                match f.ops.last_mut() {
                    Some(Op::Data(a, l)) if *a + *l == at => *l += take,
                    _ => f.ops.push(Op::Data(at, take)),
                }
                used = at + take;
                src += take as u64;
                left -= take;
            }
            counts.records += 1;
            counts.bytes += len;
        }
        hand_over(&mut f, &mut pending).map(|_| ())
    })();
    result.map(|()| counts)
}

/// A record header as encoded, and what it says (for the digests).
#[derive(Debug, Clone, Copy)]
struct Header {
    bytes: [u8; 12],
    offset: u64,
    len: u64,
    discard: bool,
}

/// Digests of the records written so far, and the one whose data is still arriving.
#[derive(Default)]
struct Digester {
    current: Option<RangeHasher>,
    zeros: ZeroHashes,
    out: Vec<Digest>,
}

impl Digester {
    fn header(&mut self, h: &Header) {
        if h.discard {
            self.out.push(self.zeros.digest(h.offset, h.len));
        } else if h.len == 0 {
            self.out.push(Digest::of(h.offset, &[]));
        } else {
            self.current = Some(RangeHasher::new(h.offset, h.len));
        }
    }
    fn data(&mut self, bytes: &[u8]) {
        if let Some(c) = self.current.as_mut() {
            c.update(bytes);
            if c.complete() {
                self.out.push(c.finish());
                self.current = None;
            }
        }
    }
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
    headers: &[Header],
    ops: &[Op],
    mut digests: Option<&mut Digester>,
    progress: &Progress,
) -> Result<()> {
    if ops.is_empty() {
        return Ok(());
    }
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(ops.len());
    let mut bytes = 0u64;
    for op in ops {
        match *op {
            Op::Header(i) => {
                slices.push(IoSlice::new(&headers[i].bytes));
                if let Some(d) = digests.as_deref_mut() {
                    d.header(&headers[i]);
                }
            }
            Op::Data(at, len) => {
                slices.push(IoSlice::new(&arena[at..at + len]));
                bytes += len as u64;
                if let Some(d) = digests.as_deref_mut() {
                    d.data(&arena[at..at + len]);
                }
            }
        }
    }
    out.write_all_vectored(&mut slices)?;
    progress.add_done(bytes);
    if progress.is_cancelled() {
        return Err(Cancelled.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
