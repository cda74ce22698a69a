//! The receiver: applies a PROTO[3] stream (or a snapback file) to a destination.
//!
//! * The destination is opened with [`Destination::open`]: read-write, never created,
//!   truncated or extended, `O_EXCL` for a block device.
//! * A record (partly) past the end of the destination is an error naming the record, unless
//!   [`ApplyOptions::allow_short_destination`] is set: then only the part that fits is written
//!   and the rest is counted in [`ApplyStats::skipped_bytes`].
//! * An input that is a regular file is read and checked whole before the first write
//!   (handshake, every header, every record's length and bounds, and for a marked stream its
//!   end-of-stream mark: the record count and the digest of every byte); a pipe is checked
//!   record by record, and an error there says how much was applied before it.
//! * A marked stream (see [`super::proto3`]) that ends before its `END` mark is cut
//!   ([`Error::Cut`]) wherever it ends; a plain stream ends at EOF
//!   ([`ApplyStats::end_mark`] says which it was).
//! * Records are gathered into batches ([`BATCH`], or [`SNAPBACK_BATCH`] with a snapback
//!   file, whose batch's old data is saved and made durable ([`UndoLog`]) before the batch is
//!   written); adjacent records are written with one `pwrite`. A batch is written by a
//!   second thread while the next one is read and checked; batches are written one at a
//!   time, in stream order, so the writes are exactly those of a single thread.
//! * With a snapback file that an interrupted run of the same apply left, the journal is
//!   resumed ([`UndoLog::open`]); when that apply finished, nothing is written
//!   ([`crate::wire::UndoState::Complete`]). Its identity is the stream's: the layout digest of a marked
//!   stream (known from its `BEGIN`), the digest of a whole plain stream file; a plain
//!   stream from a pipe cannot be identified before it is applied.
//! * A journal (see [`super::undo`]) is applied up to its last commit marker; the
//!   uncommitted tail is skipped and counted in [`ApplyStats::ignored_records`]. Its discard
//!   records (old data that was zeros) are applied like a stream's: the range reads as zeros.
//! * A stream with the extended handshake may carry discard records: the range is made to
//!   read as zeros with [`Destination::discard`] (holes punched, devices unmapped, zeros
//!   written only where that is not enough), in stream order with the data records, checked
//!   and clipped like them, and saved into the snapback file first like them.
//! * The destination is `fdatasync`ed before returning (then the snapback journal gets its
//!   `END` mark); with [`ApplyOptions::verify`] its cached pages are then dropped and every
//!   range written is read back and hashed ([`ApplyStats::digests`], to compare with the
//!   sender's).
//! * A marked stream whose second item is `EXPECT` (a `--from` round's destination check,
//!   [`super::destcheck`]) is refused before the first write — before a snapback file is
//!   created — when a range of the destination holds neither what the round starts from nor
//!   what it writes ([`Error::DestinationDiffers`]), unless
//!   [`ApplyOptions::no_destination_check`].
//! * Every byte of the stream passes through memory, where it is hashed for the `END` mark;
//!   records are therefore never spliced from a pipe.

use super::digest::{compare_digests, Digest, DigestReport, RangeHasher, Reference, ZeroHashes};
use super::proto3::{Control, Decoder, Record, RecordHeader, RecordKind, Shape, Summary};
use super::undo::{JournalTracker, Mark, UndoIdentity, UndoLog, UndoOpen, UndoStats};
use super::{Error, Result};
use crate::block::Destination;
use crate::error::{Cancelled, Report};
use crate::io::{open_path, FileKind, Inputs, OpenMode, Written};
use crate::progress::Progress;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use writer::{Batch, Wrote};

mod writer;

/// A journal from a pipe whose batch outgrew what may be held before its commit.
fn held_too_much<R: Read>(dec: &Decoder<R>, rec: &Record) -> Error {
    Error::JournalBatch {
        name: dec.name().to_string(),
        at: rec.at,
        limit: JOURNAL_HOLD_MAX as u64,
        records: JOURNAL_HOLD_ITEMS as u64,
    }
}

/// The writer thread ended without answering (it panicked).
fn writer_gone() -> Error {
    Error::Internal("the writer thread stopped".into())
}

/// Bytes of data gathered before a batch is handed to the writer thread: enough that the
/// hand-over costs little per byte, small enough that the batch being gathered and the one
/// being written stay in the CPU caches...
pub const BATCH: usize = 1 << 20;
/// ... but larger with a snapback file, where each batch costs two `fdatasync`s.
pub const SNAPBACK_BATCH: usize = 8 << 20;
/// Most a journaled snapback file read from a pipe may hold between two commits...
pub const JOURNAL_HOLD_MAX: usize = 64 << 20;
/// ... and most records (a journal keeps old zeros as discard records, which hold no data:
/// a batch of 32 MiB whose 4 KiB blocks alternate between zeros and data has 8192 of each).
pub const JOURNAL_HOLD_ITEMS: usize = 1 << 18;
const MAX_ITEMS: usize = 16384;
const READ_STEP: usize = 64 << 10;

/// Where the stream comes from.
pub enum Input {
    /// A file path: a regular file is checked whole before the first write.
    File(PathBuf),
    /// A pipe, socket or other reader, applied as it arrives; the string names it in messages.
    Stream(Box<dyn Read + Send>, String),
    /// An open file descriptor (standard input, a pipe from a sender): applied as it arrives,
    /// its reads interruptible by the job's cancel flag.
    Fd(File, String),
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::File(p) => write!(f, "Input::File({})", p.display()),
            Input::Stream(_, n) => write!(f, "Input::Stream({n})"),
            Input::Fd(_, n) => write!(f, "Input::Fd({n})"),
        }
    }
}

/// How to apply.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Save what is overwritten into this snapback journal: a new file, or the journal an
    /// interrupted run of the same apply left (resumed).
    pub undo: Option<PathBuf>,
    /// Write the part of each record that fits and skip the rest, instead of refusing.
    pub allow_short_destination: bool,
    /// After everything is written and `fdatasync`ed, re-read every record's range (as
    /// clipped to the destination) and report its digest in [`ApplyStats::digests`].
    pub verify: bool,
    /// Other files the stream is made from, as `(role, path)` ("the data source", a
    /// device): the destination must not be any of them either (a local sender's source).
    pub inputs: Vec<(String, PathBuf)>,
    /// Testing aid: discard records take the fallback path of [`Destination::discard`]
    /// (see [`Destination::force_discard_fallback`], whose granule this is).
    pub force_discard_fallback: Option<u64>,
    /// Skip the destination check an `EXPECT` item asks for (`--no-destination-check`).
    pub no_destination_check: bool,
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Data records applied (zero-length records not counted).
    pub records: u64,
    /// Data bytes written to the destination.
    pub bytes: u64,
    /// Discard records applied.
    pub discard_records: u64,
    /// Bytes they made read as zeros (the parts inside the destination).
    pub discard_bytes: u64,
    /// Of those, bytes that had to be written as zeros (the destination could not unmap
    /// them, or a best-effort unmap left them non-zero).
    pub discard_zeroed_bytes: u64,
    /// The stream had the extended handshake (`lvmsync PROTO[3] discards`).
    pub discards_in_stream: bool,
    /// The stream was marked (`BEGIN` ... `END`), so a cut anywhere would have been detected;
    /// false for a plain stream, where a cut between two records cannot be.
    pub end_mark: bool,
    /// With [`ApplyOptions::verify`]: one digest per record applied (data and discard,
    /// zero-length records excepted), in stream order, of its range as clipped to the
    /// destination, read back after the final `fdatasync`.
    pub digests: Vec<Digest>,
    /// With [`ApplyOptions::verify`]: what was read back compared with the stream's own
    /// data, hashed record by record as it arrived (zeros for a discard record), leaving out
    /// the records a later one overlaps ([`DigestReport::superseded`]). A mismatch means the
    /// destination does not hold what was written to it.
    pub verified: Option<DigestReport>,
    /// `pwrite` calls (adjacent records are written together).
    pub writes: u64,
    /// Records (data or discard) with a part past the end of the destination (with
    /// `allow_short_destination`).
    pub skipped_records: u64,
    /// Bytes past the end of the destination that were not written (or discarded).
    pub skipped_bytes: u64,
    /// The input was a journal (an undo or snapback file).
    pub journaled: bool,
    /// The journal input ends with its `END` mark: the apply that wrote it had finished.
    pub journal_complete: bool,
    /// Records of a journaled input's uncommitted tail, not applied.
    pub ignored_records: u64,
    /// Their bytes.
    pub ignored_bytes: u64,
    /// The whole input was checked before the first write (a regular file).
    pub checked_first: bool,
    /// The snapback journal written (or found complete), if any.
    pub undo: Option<UndoStats>,
    /// Size of the destination.
    pub dest_size: u64,
    /// The destination check of an `EXPECT` item, when the stream had one and it was done.
    pub destination_check: Option<super::destcheck::CheckStats>,
    /// The stream had an `EXPECT` item that was not checked (`no_destination_check`).
    pub destination_check_skipped: bool,
}

/// What the check of a whole input file found.
#[derive(Debug, Clone, Default)]
struct Plan {
    shape: Option<Shape>,
    /// Items with an index below this are applied (all of them unless journaled).
    apply_until: u64,
    bytes: u64,
    ignored_records: u64,
    ignored_bytes: u64,
    /// The journal input is complete.
    complete: bool,
    /// The digest of the whole stream.
    digest: u64,
    /// Data records.
    records: u64,
}

fn past_end(dest: &Destination, rec: &Record, others: u64) -> Error {
    Error::PastEnd {
        dest: dest.path().to_path_buf(),
        index: rec.index,
        at: rec.at,
        offset: rec.header.offset,
        len: rec.header.len,
        discard: rec.is_discard(),
        size: dest.size(),
        others,
    }
}

fn fits(h: &RecordHeader, size: u64) -> bool {
    h.offset
        .checked_add(u64::from(h.len))
        .is_some_and(|e| e <= size)
}

/// Bytes of a record that fit in the destination.
fn fitting(h: &RecordHeader, size: u64) -> u64 {
    if h.offset >= size {
        0
    } else {
        (size - h.offset).min(u64::from(h.len))
    }
}

/// Data records, bytes to write, and the first record past the end (with how many more).
#[derive(Debug, Default)]
struct Tally {
    records: u64,
    bytes: u64,
    past: Option<(Record, u64)>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.records += other.records;
        self.bytes += other.bytes;
        match (&mut self.past, other.past) {
            (Some((_, n)), Some((_, m))) => *n += m + 1,
            (None, p) => self.past = p,
            (Some(_), None) => {}
        }
    }
}

/// True for errors that say the stream's bytes are malformed or end early (rather than that
/// reading or writing failed): in a journal, they mark the start of the uncommitted tail.
fn is_format_error(e: &Error) -> bool {
    matches!(
        e,
        Error::TruncatedHeader { .. }
            | Error::TruncatedData { .. }
            | Error::Cut { .. }
            | Error::BadControl { .. }
            | Error::ZeroDiscard { .. }
    )
}

/// Reads a whole file through the decoder, checking everything before the first write.
fn check_file(file: &File, name: &str, dest: &Destination, opts: &ApplyOptions) -> Result<Plan> {
    let mut dec = Decoder::new(file, name)?;
    let mut plan = Plan::default();
    let mut journal = JournalTracker::default();
    // Committed records (all records unless journaled), and the current journal batch.
    let mut done = Tally::default();
    let mut batch = Tally::default();
    let journaled = |dec: &Decoder<&File>| dec.shape() == Shape::Journal;
    loop {
        let rec = match dec.next_record() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) if journaled(&dec) && is_format_error(&e) => {
                batch.records += 1;
                break;
            }
            Err(e) => return Err(e),
        };
        if journaled(&dec) {
            if rec.index == 0 {
                plan.apply_until = 1;
                continue;
            }
            match journal.classify(&rec, dec.control()) {
                Mark::Commit => {
                    done.merge(std::mem::take(&mut batch));
                    plan.apply_until = dec.records_read();
                    continue;
                }
                Mark::Complete => {
                    plan.complete = matches!(dec.next_record(), Ok(None));
                    break;
                }
                Mark::Tail => {
                    batch.records += 1;
                    break;
                }
                Mark::Data => {}
            }
        } else if rec.is_control() || rec.header.len == 0 {
            continue;
        }
        let h = rec.header;
        batch.records += 1;
        batch.bytes += if opts.allow_short_destination {
            fitting(&h, dest.size())
        } else {
            u64::from(h.len)
        };
        if !fits(&h, dest.size()) {
            match &mut batch.past {
                Some((_, n)) => *n += 1,
                None => batch.past = Some((rec, 0)),
            }
        }
    }
    plan.shape = Some(dec.shape());
    plan.digest = dec.digest();
    if journaled(&dec) {
        // What follows the last commit is the uncommitted tail.
        plan.ignored_records = batch.records;
        plan.ignored_bytes = batch.bytes;
    } else {
        done.merge(batch);
        plan.apply_until = dec.records_read();
    }
    plan.bytes = done.bytes;
    plan.records = done.records;
    if let (Some((rec, others)), false) = (done.past, opts.allow_short_destination) {
        return Err(past_end(dest, &rec, others));
    }
    Ok(plan)
}

/// One destination range of the batch: data gathered in the batch buffer, or a discard.
#[derive(Debug, Clone, Copy)]
struct Item {
    dest: u64,
    /// Where its data starts in the buffer (unused for a discard).
    buf: usize,
    len: usize,
    discard: bool,
}

/// The writer thread as the applier sees it.
struct Pipe {
    to: SyncSender<Batch>,
    back: Receiver<(Batch, Result<Wrote>)>,
    /// The batch being written: its record counts (and digests), counted once written.
    in_flight: Option<InFlight>,
}

struct InFlight {
    records: u64,
    discards: u64,
    ranges: Vec<Digest>,
}

struct Applier<'a> {
    dest: &'a Destination,
    /// With a snapback file: batches are larger (each costs two `fdatasync`s). The journal
    /// itself is the writer thread's while the stream is applied.
    snapback: bool,
    progress: &'a Progress,
    /// The writer thread (present while the stream is applied).
    pipe: Option<Pipe>,
    /// A batch that was written, kept to gather the next one into.
    spare: Option<Batch>,
    /// A journal from a pipe is held batch by batch: each batch is written before the next
    /// is gathered, so no more than one held batch is ever in memory.
    holding: bool,
    buf: Vec<u8>,
    items: Vec<Item>,
    /// Bytes of the batch buffer in use.
    fill: usize,
    /// Records whose data is all in the batch (counted when the batch is written).
    batch_records: u64,
    /// Discard records of the batch.
    batch_discards: u64,
    /// With `verify`: the digest of each record of the batch as it arrived (its range as
    /// clipped to the destination, and the hash of its data), and of those applied before.
    batch_ranges: Vec<Digest>,
    ranges: Option<Vec<Digest>>,
    /// With `verify`: the hash of the current data record's data, fed as it arrives.
    hasher: Option<RangeHasher>,
    /// With `verify`: the hashes of discard records' zeros, by length.
    zeros: ZeroHashes,
    /// Nothing is written: the stream is read and checked only (its snapback journal says
    /// this apply finished before).
    dry: bool,
    stats: ApplyStats,
}

impl Applier<'_> {
    fn used(&self) -> usize {
        self.fill
    }

    /// The batch's records are applied: count them (and keep their ranges for `verify`).
    fn batch_done(&mut self) {
        self.stats.records += self.batch_records;
        self.stats.discard_records += self.batch_discards;
        self.batch_records = 0;
        self.batch_discards = 0;
        if let Some(r) = self.ranges.as_mut() {
            r.append(&mut self.batch_ranges);
        }
    }

    /// Hands the batch to the writer thread (which saves it into the snapback file, when
    /// there is one, and writes it), after the batch before it is written.
    fn flush(&mut self) -> Result<()> {
        self.collect()?;
        if self.items.is_empty() {
            self.batch_done();
            return Ok(());
        }
        let next = self.spare.take().unwrap_or_default();
        let batch = Batch {
            buf: std::mem::replace(&mut self.buf, next.buf),
            items: std::mem::replace(&mut self.items, next.items),
        };
        let flight = InFlight {
            records: std::mem::take(&mut self.batch_records),
            discards: std::mem::take(&mut self.batch_discards),
            ranges: std::mem::take(&mut self.batch_ranges),
        };
        self.fill = 0;
        let pipe = self.pipe.as_mut().ok_or_else(writer_gone)?;
        pipe.to.send(batch).map_err(|_| writer_gone())?;
        pipe.in_flight = Some(flight);
        if self.holding {
            self.collect()?;
        }
        if self.progress.is_cancelled() {
            return Err(Cancelled.into());
        }
        Ok(())
    }

    /// Waits until the batch being written (if any) is, and counts it.
    fn collect(&mut self) -> Result<()> {
        let Some(pipe) = self.pipe.as_mut() else {
            return Ok(());
        };
        let Some(flight) = pipe.in_flight.take() else {
            return Ok(());
        };
        let (batch, wrote) = pipe.back.recv().map_err(|_| writer_gone())?;
        // A buffer grown past the usual batch (a held journal batch) is not kept.
        if batch.buf.capacity() <= self.batch_cap() {
            self.spare = Some(batch);
        }
        let w = wrote?;
        self.stats.writes += w.writes;
        self.stats.bytes += w.bytes;
        self.stats.discard_bytes += w.discard_bytes;
        self.stats.discard_zeroed_bytes += w.discard_zeroed_bytes;
        self.stats.records += flight.records;
        self.stats.discard_records += flight.discards;
        if let Some(r) = self.ranges.as_mut() {
            r.extend(flight.ranges);
        }
        Ok(())
    }

    /// Bytes gathered before a batch is handed over.
    fn batch_cap(&self) -> usize {
        if self.snapback {
            SNAPBACK_BATCH
        } else {
            BATCH
        }
    }

    /// Drops the batch unapplied (an uncommitted journal tail).
    fn drop_batch(&mut self) {
        self.stats.ignored_records += self.batch_records + self.batch_discards;
        self.stats.ignored_bytes += self.items.iter().map(|i| i.len as u64).sum::<u64>();
        self.batch_records = 0;
        self.batch_discards = 0;
        self.batch_ranges.clear();
        self.items.clear();
        self.fill = 0;
    }

    /// Adds a discard record to the batch: the part that fits the destination (all of it
    /// unless short destinations are allowed). It is applied in stream order with the data
    /// records when the batch is written, after its old data is saved with a snapback.
    /// While [`Applier::holding`] (a journal from a pipe), the batch is never written before
    /// its commit: one that grows too large is refused ([`Error::JournalBatch`]).
    fn take_discard<R: Read>(&mut self, dec: &Decoder<R>, rec: &Record) -> Result<()> {
        let h = rec.header;
        let keep = fitting(&h, self.dest.size());
        if keep > 0 && !self.dry {
            if self.holding && self.items.len() >= JOURNAL_HOLD_ITEMS {
                return Err(held_too_much(dec, rec));
            }
            if !self.holding && self.items.len() >= MAX_ITEMS {
                self.flush()?;
            }
            self.items.push(Item {
                dest: h.offset,
                buf: 0,
                len: keep as usize,
                discard: true,
            });
        }
        let rest = u64::from(h.len) - keep;
        if rest > 0 {
            self.stats.skipped_records += 1;
            self.stats.skipped_bytes += rest;
        }
        if !self.dry {
            self.batch_discards += 1;
        }
        Ok(())
    }

    /// Reads the current record's data into the batch: the part that fits the destination
    /// (all of it unless short destinations are allowed), flushing full batches unless
    /// [`Applier::holding`].
    fn take_record<R: Read>(&mut self, dec: &mut Decoder<R>, rec: &Record) -> Result<()> {
        let h = rec.header;
        let keep = fitting(&h, self.dest.size());
        if self.ranges.is_some() {
            self.hasher = Some(RangeHasher::new(h.offset, keep));
        }
        if self.dry {
            // Nothing is written. With `verify`, the data is hashed, to compare what the
            // destination holds with it; the rest is read (for the stream's digest) by the
            // next header's read.
            if let Some(hh) = self.hasher.as_mut() {
                let mut left = keep;
                while left > 0 {
                    let n = (left as usize).min(READ_STEP);
                    if self.buf.len() < n {
                        self.buf.resize(n, 0);
                    }
                    dec.read_data(&mut self.buf[..n])?;
                    hh.update(&self.buf[..n]);
                    left -= n as u64;
                }
            }
            return Ok(());
        }
        let mut off = h.offset;
        let mut left = keep;
        // Data is gathered in pieces as it arrives and written batch by batch: a stream cut
        // inside a record may leave that record partly written, which the error reports.
        let base = self.batch_cap();
        while left > 0 {
            let mut used = self.used();
            let (cap, max_items) = if self.holding {
                (JOURNAL_HOLD_MAX, JOURNAL_HOLD_ITEMS)
            } else {
                (base, MAX_ITEMS)
            };
            if used >= cap || self.items.len() >= max_items {
                if self.holding {
                    return Err(held_too_much(dec, rec));
                }
                self.flush()?;
                used = 0;
            }
            let n = (left as usize).min(cap - used).min(READ_STEP);
            if self.buf.len() < used + n {
                self.buf.resize(used + n, 0);
            }
            dec.read_data(&mut self.buf[used..used + n])?;
            if let Some(hh) = self.hasher.as_mut() {
                hh.update(&self.buf[used..used + n]);
            }
            self.items.push(Item {
                dest: off,
                buf: used,
                len: n,
                discard: false,
            });
            self.fill = used + n;
            off += n as u64;
            left -= n as u64;
        }
        let rest = u64::from(h.len) - keep;
        if rest > 0 {
            dec.skip_data(rest)?;
            self.stats.skipped_records += 1;
            self.stats.skipped_bytes += rest;
        }
        self.batch_records += 1;
        Ok(())
    }
}

/// The input once opened.
enum Source {
    /// A regular file: checked whole before the first write.
    File(File, String),
    /// A descriptor (standard input, a pipe, a named pipe): applied as it arrives, waiting
    /// in `poll` where the cancel flag is seen.
    Fd(File, String),
    /// Any other reader (a block device, a caller's stream), applied as it arrives.
    Reader(Box<dyn Read + Send>, String),
}

/// The identity of the stream for a snapback journal, known before the first write: a marked
/// stream's layout (its `BEGIN`), a whole file's digest; `None` for a plain stream from a pipe.
fn stream_identity(
    name: &str,
    first: Option<&Summary>,
    plan: Option<&Plan>,
) -> (Option<String>, String) {
    if let Some(b) = first {
        return (
            Some(format!(
                "stream-layout:{:016x}:{}:{}",
                b.digest, b.items, b.data_bytes
            )),
            format!(
                "the stream {name} ({} records, {} data bytes)",
                b.items, b.data_bytes
            ),
        );
    }
    match plan {
        Some(p) => (
            Some(format!(
                "stream-digest:{:016x}:{}:{}",
                p.digest, p.records, p.bytes
            )),
            format!(
                "the stream file {name} ({} records, {} data bytes)",
                p.records, p.bytes
            ),
        ),
        None => (None, format!("a plain stream from {name}")),
    }
}

/// Applies `input` to the destination at `dest_path`. Nothing is written (and no snapback
/// file is created) if the input or the destination cannot be used (not a kind of file that
/// can be; the destination is the input; the snapback file is either), the handshake is
/// wrong, or — for a regular file input — anything in the file is wrong: a record truncated
/// or out of bounds, a marked stream cut or not matching its end-of-stream mark.
///
/// A path naming a FIFO is read as a stream: opened without waiting for a writer, then
/// waiting for data in `poll`, where `progress`'s cancel flag is seen. An error after the
/// first write is an [`Error::Stopped`] saying what was applied, and `progress` records that
/// the destination was changed ([`Progress::written`]) however the apply ends.
pub fn apply(
    input: Input,
    dest_path: &Path,
    opts: &ApplyOptions,
    progress: &Progress,
) -> Result<ApplyStats> {
    // The input first (it may not be opened at all), so the destination can be checked
    // against it.
    let mut inputs = Inputs::new();
    let input = match input {
        Input::File(p) => {
            let o = open_path(&p, OpenMode::STREAM)?;
            inputs.add(&o.file, &p, "the input stream")?;
            let name = p.display().to_string();
            match o.kind {
                FileKind::Pipe => Source::Fd(o.file, name),
                FileKind::File => Source::File(o.file, name),
                FileKind::BlockDevice => Source::Reader(Box::new(o.file), name),
            }
        }
        Input::Fd(f, name) => {
            inputs.add(&f, Path::new(&name), "the input stream")?;
            Source::Fd(f, name)
        }
        Input::Stream(r, name) => Source::Reader(r, name),
    };
    inputs.add_paths(&opts.inputs)?;
    let mut dest = Destination::open(dest_path)?;
    dest.check_not_input(&inputs)?;
    if let Some(sb) = &opts.undo {
        inputs.add(dest.file(), dest_path, "the destination")?;
        inputs.check_path(sb, Written::UndoFile)?;
    }
    if let Some(g) = opts.force_discard_fallback {
        dest.force_discard_fallback(g);
    }
    let dest = dest;
    let _watch = dest.watched_by(progress);
    let (reader, name, plan): (Box<dyn Read + Send + '_>, String, Option<Plan>) = match input {
        Source::File(f, name) => {
            let plan = check_file(&f, &name, &dest, opts)?;
            // The same open file is applied, from its start: what was checked is what is
            // read (the stream digest is checked again on the way).
            use std::io::Seek;
            (&f).seek(std::io::SeekFrom::Start(0))
                .map_err(|e| Error::input(&name, "seek back to the start", e))?;
            (Box::new(f), name, Some(plan))
        }
        Source::Reader(r, name) => (r, name, None),
        Source::Fd(f, name) => (
            Box::new(crate::io::WaitingFile::new(f).cancelled_by(progress))
                as Box<dyn Read + Send + '_>,
            name,
            None,
        ),
    };
    if let Some(p) = &plan {
        progress.set_total(p.bytes);
    }
    // Waiting for the handshake and the first item (a pipe with no writer yet) ends on the
    // cancel flag too.
    let cancelled = |e: Error| {
        if progress.is_cancelled() {
            Cancelled.into()
        } else {
            e
        }
    };
    let mut dec = Decoder::new(reader, &name).map_err(cancelled)?;
    // The first item says what the stream is (and, for a marked one, what it will change).
    let first = dec.next_record().map_err(cancelled)?;
    let begin = match dec.control().map(|c| &c.control) {
        Some(Control::Begin(s)) => Some(*s),
        _ => None,
    };
    if let (Some(b), None) = (&begin, &plan) {
        progress.set_total(b.data_bytes);
    }
    // A marked stream's second item may be EXPECT: the destination is checked now, before
    // the first write and before a snapback file is created.
    let (mut checked, mut skipped) = (None, false);
    let first = match begin {
        Some(_) => {
            let second = dec.next_record().map_err(cancelled)?;
            match dec.control().map(|c| &c.control) {
                Some(Control::Expect(_)) if opts.no_destination_check => {
                    skipped = true;
                    dec.next_record().map_err(cancelled)?
                }
                Some(Control::Expect(e)) => {
                    checked = Some(super::destcheck::check(&dest, e, progress).map_err(cancelled)?);
                    dec.next_record().map_err(cancelled)?
                }
                _ => second,
            }
        }
        None => first,
    };
    let mut dry = false;
    let mut complete = None;
    let undo = match &opts.undo {
        Some(p) => {
            let (source_id, source) = stream_identity(&name, begin.as_ref(), plan.as_ref());
            let id = UndoIdentity::new("lvmsync", source_id, &source, &dest)?;
            match UndoLog::open(p, &id)? {
                UndoOpen::Ready(log) => Some(*log),
                UndoOpen::Complete(stats) => {
                    // This apply finished before: read and check the stream, write nothing.
                    dry = true;
                    complete = Some(stats);
                    None
                }
            }
        }
        None => None,
    };
    let mut ap = Applier {
        dest: &dest,
        snapback: undo.is_some(),
        progress,
        pipe: None,
        spare: None,
        holding: false,
        buf: Vec::new(),
        items: Vec::new(),
        fill: 0,
        batch_records: 0,
        batch_discards: 0,
        batch_ranges: Vec::new(),
        ranges: opts.verify.then(Vec::new),
        hasher: None,
        zeros: ZeroHashes::default(),
        dry,
        stats: ApplyStats {
            checked_first: plan.is_some(),
            dest_size: dest.size(),
            discards_in_stream: dec.discards(),
            end_mark: begin.is_some(),
            destination_check: checked,
            destination_check_skipped: skipped,
            ..Default::default()
        },
    };
    // The stream is read, checked and hashed on this thread, and written on another.
    let (mut result, undo) = std::thread::scope(|s| {
        let (to, batches) = sync_channel(1);
        let (done, back) = sync_channel(1);
        let d = &dest;
        let writer = s.spawn(move || writer::serve(d, undo, progress, batches, done));
        ap.pipe = Some(Pipe {
            to,
            back,
            in_flight: None,
        });
        // A panic here must not leave the writer waiting for a batch that never comes (the
        // scope would wait for it forever): the writer is let go first, then the panic goes on.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(&mut ap, &mut dec, first, plan.as_ref(), opts)
        }));
        // The last batch is written (or failed) before anything else is reported.
        let settled = match &ran {
            Ok(_) => ap.collect(),
            Err(_) => Ok(()),
        };
        ap.pipe = None;
        let undo = writer.join();
        let ran = ran.unwrap_or_else(|p| std::panic::resume_unwind(p));
        // A write that failed came before the stream error met while it was being written.
        let result = match (ran, settled) {
            (Err(_), Err(w)) => Err(w),
            (r, w) => r.and(w),
        }
        .and(undo.as_ref().map(|_| ()).map_err(|_| writer_gone()));
        (result, undo.ok().flatten())
    });
    if result.is_err() && progress.is_cancelled() {
        result = Err(Cancelled.into());
    }
    let mut stats = std::mem::take(&mut ap.stats);
    let arrived = ap.ranges.take();
    // Everything up to the last fdatasync and the journal's end mark; an error anywhere in
    // it after the first write leaves the destination partly updated.
    let result = result
        .and_then(|()| Ok(dest.sync()?))
        .and_then(|()| match undo {
            // Only now, with every write durable, is the journal marked complete.
            Some(u) => u.finish().map(Some),
            None => Ok(complete),
        });
    match result {
        Ok(undo) => {
            stats.undo = undo;
            if let Some(arrived) = arrived {
                let ranges: Vec<(u64, u64)> = arrived.iter().map(|d| (d.offset, d.len)).collect();
                stats.digests = read_digests(&dest, &ranges, progress)?;
                let named = dest_path.display().to_string();
                stats.verified = Some(check_read_back(&arrived, &stats.digests, &named));
            }
            Ok(stats)
        }
        Err(e) => {
            // A journal stays as it is: resumable by a rerun, restorable as it is.
            let _ = dest.sync();
            // An interruption is reported as such (the caller learns from `progress`
            // whether the destination was changed).
            if dest.touched() && !e.is_cancelled() {
                Err(Error::Stopped {
                    cause: Box::new(e),
                    records: stats.records,
                    bytes: dest.written_bytes(),
                    discards: stats.discard_records,
                })
            } else {
                Err(e)
            }
        }
    }
}

/// Compares what was read back from `destination` (`read`) with the digests of the records
/// as they arrived (`arrived`), record by record, leaving out the records a later record
/// overlaps (what is read back there is the later record's data).
fn check_read_back(arrived: &[Digest], read: &[Digest], destination: &str) -> DigestReport {
    let later = overwritten_later(arrived);
    let kept = |v: &[Digest]| -> Vec<Digest> {
        v.iter()
            .zip(&later)
            .filter(|(_, &over)| !over)
            .map(|(d, _)| *d)
            .collect()
    };
    DigestReport {
        reference: Reference::Stream,
        superseded: later.iter().filter(|&&o| o).count() as u64,
        ..compare_digests(&kept(arrived), &kept(read), destination)
    }
}

/// For each range, in stream order: whether a later one overlaps it.
fn overwritten_later(ranges: &[Digest]) -> Vec<bool> {
    // The union of the ranges after the current one: start -> end, disjoint, not adjacent.
    let mut later: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
    let mut out = vec![false; ranges.len()];
    for (i, d) in ranges.iter().enumerate().rev() {
        if d.len == 0 {
            continue;
        }
        let (off, end) = (d.offset, d.offset.saturating_add(d.len));
        // The last member starting before `end` is the only one that can reach past `off`.
        out[i] = later
            .range(..end)
            .next_back()
            .is_some_and(|(_, &e)| e > off);
        let touching: Vec<(u64, u64)> = later
            .range(..=end)
            .rev()
            .take_while(|(_, &e)| e >= off)
            .map(|(&s, &e)| (s, e))
            .collect();
        let (mut s, mut e) = (off, end);
        for (ts, te) in touching {
            later.remove(&ts);
            s = s.min(ts);
            e = e.max(te);
        }
        later.insert(s, e);
    }
    out
}

/// What `verify` does after an apply: drops the destination's cached pages (they must be
/// clean: call it after an `fdatasync`) and reads every `(offset, len)` range back from the
/// device, in order, returning one [`Digest`] per range. Also usable alone, to re-check a
/// destination against digests received earlier.
///
/// Reads are arranged for the device: ranges that follow each other closely (gaps up to
/// [`VERIFY_GAP`]) are read together in one read of up to 1 MiB, gaps included, and the reads
/// coming next are announced to the kernel ([`Destination::will_need`]) so that they queue
/// up on the device in parallel; thousands of scattered 4 KiB records would otherwise cost a
/// device round trip each.
pub fn read_digests(
    dest: &Destination,
    ranges: &[(u64, u64)],
    progress: &Progress,
) -> Result<Vec<Digest>> {
    dest.drop_cache();
    hash_ranges(
        &|buf, at| Ok(dest.read_exact_at(buf, at)?),
        &|at, n| dest.will_need(at, n),
        ranges,
        progress,
    )
}

/// Reads and hashes every `(offset, len)` range through `read` (announcing reads ahead with
/// `announce`), as [`read_digests`] describes: one [`Digest`] per range, in order. The
/// buffer is aligned for `O_DIRECT` reads.
pub(crate) fn hash_ranges(
    read: &dyn Fn(&mut [u8], u64) -> Result<()>,
    announce: &dyn Fn(u64, u64),
    ranges: &[(u64, u64)],
    progress: &Progress,
) -> Result<Vec<Digest>> {
    const STEP: u64 = 1 << 20;
    // Bytes of reads announced ahead of the one in progress.
    const AHEAD_BYTES: u64 = 32 << 20;
    let spans = read_spans(ranges, STEP);
    let mut buf = crate::io::AlignedBuf::new(
        spans.iter().map(|s| s.len).max().unwrap_or(0).min(STEP) as usize,
    );
    let mut out = Vec::with_capacity(ranges.len());
    let (mut next, mut announced) = (0usize, 0u64);
    for (i, span) in spans.iter().enumerate() {
        while next < spans.len() && (next <= i || announced < AHEAD_BYTES) {
            let n = spans[next].len.min(AHEAD_BYTES);
            if n > 0 {
                announce(spans[next].off, n);
            }
            announced += n;
            next += 1;
        }
        announced = announced.saturating_sub(span.len.min(AHEAD_BYTES));
        if span.end - span.first == 1 {
            // One range, possibly longer than the buffer: hashed as it is read.
            let (offset, len) = ranges[span.first];
            let mut h = RangeHasher::new(offset, len);
            let mut at = offset;
            while at < offset + len {
                let n = (offset + len - at).min(STEP) as usize;
                read(&mut buf[..n], at)?;
                h.update(&buf[..n]);
                at += n as u64;
                if progress.is_cancelled() {
                    return Err(Cancelled.into());
                }
            }
            out.push(h.finish());
        } else {
            // Several short ranges and the gaps between them, in one read.
            let b = &mut buf[..span.len as usize];
            read(b, span.off)?;
            for &(offset, len) in &ranges[span.first..span.end] {
                let at = (offset - span.off) as usize;
                out.push(Digest::of(offset, &b[at..at + len as usize]));
            }
            if progress.is_cancelled() {
                return Err(Cancelled.into());
            }
        }
    }
    Ok(out)
}

/// Largest gap between two ranges that [`read_digests`] reads through rather than skipping.
pub const VERIFY_GAP: u64 = 64 << 10;

/// Consecutive ranges `first..end` read as one: `len` bytes at `off`.
struct Span {
    first: usize,
    end: usize,
    off: u64,
    len: u64,
}

/// Groups consecutive ranges that ascend without overlapping, with gaps of at most
/// [`VERIFY_GAP`], into reads of at most `max` bytes. A range longer than `max`, a
/// zero-length range, or one out of order is a span of its own.
fn read_spans(ranges: &[(u64, u64)], max: u64) -> Vec<Span> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < ranges.len() {
        let (off, len) = ranges[i];
        let mut end = off.saturating_add(len);
        let mut j = i + 1;
        if len > 0 {
            while let Some(&(o, l)) = ranges.get(j) {
                let joins = l > 0
                    && o >= end
                    && o - end <= VERIFY_GAP
                    && o.checked_add(l).is_some_and(|e| e - off <= max);
                if !joins {
                    break;
                }
                end = o + l;
                j += 1;
            }
        }
        out.push(Span {
            first: i,
            end: j,
            off,
            len: end - off,
        });
        i = j;
    }
    out
}

fn run<R: Read>(
    ap: &mut Applier,
    dec: &mut Decoder<R>,
    first: Option<Record>,
    plan: Option<&Plan>,
    opts: &ApplyOptions,
) -> Result<()> {
    let mut journal = JournalTracker::default();
    // A journal from a pipe is held batch by batch until its commit marker arrives.
    let mut next = Some(first);
    loop {
        if let (Some(p), None) = (plan, &next) {
            if p.shape == Some(Shape::Journal) && dec.records_read() >= p.apply_until {
                break;
            }
        }
        let item = match next.take() {
            Some(r) => Ok(r),
            None => dec.next_record(),
        };
        let rec = match item {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) if ap.holding && is_format_error(&e) => {
                ap.batch_records += 1;
                break;
            }
            Err(e) => return Err(e),
        };
        let journaled = dec.shape() == Shape::Journal;
        if journaled && rec.index == 0 {
            ap.stats.journaled = true;
            ap.holding = plan.is_none();
            continue;
        }
        if rec.is_control() {
            match dec.control().map(|c| &c.control) {
                Some(Control::Begin(_)) => ap.stats.end_mark = true,
                Some(Control::End(_)) if !journaled => {}
                _ => match journal.classify(&rec, dec.control()) {
                    Mark::Commit => ap.flush()?,
                    Mark::Complete => {
                        ap.stats.journal_complete = true;
                    }
                    Mark::Tail | Mark::Data => break,
                },
            }
            continue;
        }
        if journaled {
            if journal.classify(&rec, None) != Mark::Data {
                break;
            }
        } else if rec.header.len == 0 {
            continue;
        }
        if !opts.allow_short_destination && !fits(&rec.header, ap.dest.size()) {
            return Err(past_end(ap.dest, &rec, 0));
        }
        let taken = match rec.kind {
            RecordKind::Data => ap.take_record(dec, &rec),
            RecordKind::Discard => ap.take_discard(dec, &rec),
            RecordKind::Control => Ok(()),
        };
        match taken {
            Ok(()) => {
                if opts.verify {
                    let keep = fitting(&rec.header, ap.dest.size());
                    let arrived = match (rec.kind, ap.hasher.take()) {
                        (RecordKind::Data, Some(h)) => h.finish(),
                        _ => ap.zeros.digest(rec.header.offset, keep),
                    };
                    ap.batch_ranges.push(arrived);
                }
            }
            Err(e) if ap.holding && is_format_error(&e) => {
                ap.batch_records += 1;
                break;
            }
            Err(e) => return Err(e),
        }
    }
    if ap.holding {
        ap.drop_batch();
    } else {
        ap.flush()?;
    }
    if let Some(p) = plan {
        ap.stats.ignored_records += p.ignored_records;
        ap.stats.ignored_bytes += p.ignored_bytes;
        ap.stats.journal_complete |= p.complete;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
