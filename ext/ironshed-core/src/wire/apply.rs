//! The receiver: applies a PROTO[3] stream (or a snapback file) to a destination.
//!
//! * The destination is opened with [`Destination::open`]: read-write, never created,
//!   truncated or extended, `O_EXCL` for a block device.
//! * A record (partly) past the end of the destination is an error naming the record, unless
//!   [`ApplyOptions::allow_short_destination`] is set: then only the part that fits is written
//!   and the rest is counted in [`ApplyStats::skipped_bytes`].
//! * An input that is a regular file is checked whole (handshake, every header, every
//!   record's length, every record's bounds) before the first write; a pipe is checked record
//!   by record, and an error there says how much was applied before it.
//! * Records are gathered into batches ([`BATCH`], or [`SNAPBACK_BATCH`] with a snapback
//!   file, whose batch's old data is saved and made durable ([`UndoLog`]) before the batch is
//!   written); adjacent records are written with one `pwrite`.
//! * A journaled snapback file (see [`super::undo`]) is applied up to its last commit marker;
//!   the uncommitted tail is skipped and counted in [`ApplyStats::ignored_records`].
//! * A stream with the extended handshake may carry discard records: the range is made to
//!   read as zeros with [`Destination::discard`] (holes punched, devices unmapped, zeros
//!   written only where that is not enough), in stream order with the data records, checked
//!   and clipped like them, and saved into the snapback file first like them. Journaled
//!   snapback files are always plain streams, so an extended stream is never taken for one.
//! * The destination is `fdatasync`ed before returning; with [`ApplyOptions::verify`] its
//!   cached pages are then dropped and every range written is read back and hashed
//!   ([`ApplyStats::digests`], to compare with the sender's).

use super::digest::{compare_digests, Digest, DigestReport, RangeHasher, Reference, ZeroHashes};
use super::proto3::{Decoder, Record, RecordHeader, RecordKind, HEADER_LEN};
use super::undo::{Journal, Mark, UndoLog, UndoStats};
use super::{Error, Result};
use crate::block::Destination;
use crate::error::{Cancelled, IoContext, Report};
use crate::io::{open_path, FileKind, Inputs, OpenMode, Written};
use crate::progress::Progress;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes of data gathered before a batch is written: small, so the data is still in the CPU
/// cache when it is written...
pub const BATCH: usize = 64 << 10;
/// ... but larger with a snapback file, where each batch costs two `fdatasync`s.
pub const SNAPBACK_BATCH: usize = 8 << 20;
/// Most a journaled snapback file read from a pipe may hold between two commits.
pub const JOURNAL_HOLD_MAX: usize = 64 << 20;
const MAX_ITEMS: usize = 16384;
const READ_STEP: usize = 64 << 10;
/// Records at least this large arriving on a pipe are spliced to the destination.
const SPLICE_MIN: u64 = 256 << 10;

/// Where the stream comes from.
pub enum Input {
    /// A file path: a regular file is checked whole before the first write.
    File(PathBuf),
    /// A pipe, socket or other reader, applied as it arrives; the string names it in messages.
    Stream(Box<dyn Read + Send>, String),
    /// An open file descriptor (standard input, a pipe from a sender): applied as it arrives;
    /// from a pipe, large records go to the destination with `splice(2)`, without a copy
    /// through this process.
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
    /// Save what is overwritten into this new undo (snapback) file.
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
    /// The input was a journaled snapback file.
    pub journaled: bool,
    /// Records of a journaled input's uncommitted tail, not applied.
    pub ignored_records: u64,
    /// Their bytes.
    pub ignored_bytes: u64,
    /// The whole input was checked before the first write (a regular file).
    pub checked_first: bool,
    /// The snapback file written, if any.
    pub undo: Option<UndoStats>,
    /// Size of the destination.
    pub dest_size: u64,
}

/// What the check of a whole input file found.
#[derive(Debug, Clone, Copy, Default)]
struct Plan {
    journaled: bool,
    /// Records with an index below this are applied (all of them unless journaled).
    apply_until: u64,
    bytes: u64,
    ignored_records: u64,
    ignored_bytes: u64,
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

/// Walks the headers of a whole file with positioned reads (data is not read).
fn check_file(file: &File, name: &str, dest: &Destination, opts: &ApplyOptions) -> Result<Plan> {
    let size = file
        .metadata()
        .map_err(|e| Error::input(name, "stat", e))?
        .len();
    // The handshake, through the decoder's own rules.
    let mut head = vec![0u8; (size.min(64)) as usize];
    file.read_exact_at(&mut head, 0)
        .map_err(|e| Error::input(name, "read the handshake", e))?;
    let hs = Decoder::new(&head[..], name)?;
    let discards = hs.discards();
    let mut pos = hs.position();
    let mut plan = Plan::default();
    let mut index = 0u64;
    let mut journal = Journal::default();
    // Committed records (all records of a plain stream), and the current journal batch.
    let mut done = Tally::default();
    let mut batch = Tally::default();
    while pos < size {
        let at = pos;
        if size - pos < HEADER_LEN as u64 {
            if plan.journaled {
                batch.records += 1;
                break;
            }
            return Err(Error::TruncatedHeader {
                name: name.to_string(),
                index,
                at,
                got: (size - pos) as usize,
            });
        }
        let mut hb = [0u8; HEADER_LEN];
        file.read_exact_at(&mut hb, pos)
            .map_err(|e| Error::input(name, format!("read at byte {pos}"), e))?;
        let (h, kind) = RecordHeader::decode_in(&hb, discards);
        let rec = Record {
            header: h,
            kind,
            index,
            at,
        };
        if rec.is_discard() && h.len == 0 {
            return Err(Error::ZeroDiscard {
                name: name.to_string(),
                index,
                at,
            });
        }
        index += 1;
        pos += HEADER_LEN as u64;
        if rec.index == 0 && h.is_commit() && !discards {
            plan.journaled = true;
            plan.apply_until = 1;
            continue;
        }
        if plan.journaled {
            match journal.classify(&h) {
                Mark::Commit => {
                    done.merge(std::mem::take(&mut batch));
                    plan.apply_until = index;
                    continue;
                }
                Mark::Anomaly => break,
                Mark::Data => {}
            }
        }
        let len = u64::from(h.len);
        let data = rec.data_len();
        if size - pos < data {
            if plan.journaled {
                batch.records += 1;
                break;
            }
            return Err(Error::TruncatedData {
                name: name.to_string(),
                index: rec.index,
                at,
                offset: h.offset,
                len: h.len,
                got: size - pos,
            });
        }
        pos += data;
        if len == 0 {
            continue;
        }
        batch.records += 1;
        batch.bytes += if opts.allow_short_destination {
            fitting(&h, dest.size())
        } else {
            len
        };
        if !fits(&h, dest.size()) {
            match &mut batch.past {
                Some((_, n)) => *n += 1,
                None => batch.past = Some((rec, 0)),
            }
        }
    }
    if plan.journaled {
        // What follows the last commit is the uncommitted tail.
        plan.ignored_records = batch.records;
        plan.ignored_bytes = batch.bytes;
    } else {
        done.merge(batch);
        plan.apply_until = index;
    }
    plan.bytes = done.bytes;
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

struct Applier<'a> {
    dest: &'a Destination,
    /// The input pipe, when records may be spliced from it.
    pipe_fd: Option<i32>,
    undo: Option<UndoLog>,
    progress: &'a Progress,
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

    /// Saves (with a snapback) and writes the batch.
    fn flush(&mut self) -> Result<()> {
        if self.items.is_empty() {
            self.batch_done();
            return Ok(());
        }
        if let Some(u) = self.undo.as_mut() {
            // Adjacent pieces saved as one range, so the undo file gets one record per run.
            let mut run: Option<(u64, u64)> = None;
            for it in &self.items {
                match run {
                    Some((s, l)) if s + l == it.dest => run = Some((s, l + it.len as u64)),
                    _ => {
                        if let Some((s, l)) = run {
                            u.save(self.dest, s, l)?;
                        }
                        run = Some((it.dest, it.len as u64));
                    }
                }
            }
            if let Some((s, l)) = run {
                u.save(self.dest, s, l)?;
            }
            u.commit()?;
        }
        let mut i = 0;
        while i < self.items.len() {
            let first = self.items[i];
            if first.discard {
                let len = first.len as u64;
                let done = self.dest.discard(first.dest, len)?;
                self.stats.discard_bytes += len;
                self.stats.discard_zeroed_bytes += done.zeroed;
                self.progress.add_done(len);
                i += 1;
                continue;
            }
            let mut end = i + 1;
            let mut len = first.len;
            while end < self.items.len()
                && !self.items[end].discard
                && self.items[end].dest == first.dest + len as u64
                && self.items[end].buf == first.buf + len
            {
                len += self.items[end].len;
                end += 1;
            }
            self.dest
                .write_all_at(&self.buf[first.buf..first.buf + len], first.dest)?;
            self.stats.writes += 1;
            self.stats.bytes += len as u64;
            self.progress.add_done(len as u64);
            i = end;
        }
        self.batch_done();
        self.items.clear();
        self.fill = 0;
        if self.progress.is_cancelled() {
            return Err(Cancelled.into());
        }
        Ok(())
    }

    /// Moves a whole record from the input pipe to the destination: the bytes the decoder
    /// already read ahead are written from memory, the rest is spliced (kernel to kernel).
    fn splice_record<R: Read>(
        &mut self,
        dec: &mut Decoder<R>,
        fd: i32,
        offset: u64,
        len: u64,
    ) -> Result<()> {
        use std::os::fd::AsRawFd;
        // Earlier records first: a later record may overlap them.
        self.flush()?;
        let mut off = offset;
        let mut left = len;
        let ahead = dec.buffered_data();
        if ahead > 0 {
            if self.buf.len() < ahead {
                self.buf.resize(ahead, 0);
            }
            dec.read_data(&mut self.buf[..ahead])?;
            self.dest.write_all_at(&self.buf[..ahead], off)?;
            self.stats.writes += 1;
            self.stats.bytes += ahead as u64;
            self.progress.add_done(ahead as u64);
            off += ahead as u64;
            left -= ahead as u64;
        }
        let out = self.dest.file_for_write().as_raw_fd();
        while left > 0 {
            let mut at = off as libc::loff_t;
            let want = left.min(1 << 30) as usize;
            // SAFETY: both descriptors are open for the call; `at` is a valid offset pointer.
            let n = unsafe {
                libc::splice(
                    fd,
                    std::ptr::null_mut(),
                    out,
                    &mut at,
                    want,
                    libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
                )
            };
            if n > 0 {
                let n = n as u64;
                self.dest.note_written(n);
                dec.took_directly(n, false)?;
                self.stats.writes += 1;
                self.stats.bytes += n;
                self.progress.add_done(n);
                off += n;
                left -= n;
                continue;
            }
            if n == 0 {
                dec.took_directly(0, true)?;
                break;
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => {
                    let mut p = libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // Nothing in the pipe yet: wait in short slices, watching for Ctrl-C.
                    // SAFETY: one valid pollfd.
                    unsafe { libc::poll(&mut p, 1, 200) };
                    if self.progress.is_cancelled() {
                        return Err(Cancelled.into());
                    }
                }
                Some(libc::EINVAL) | Some(libc::ENOSYS) => {
                    // This destination cannot be spliced to: copy the rest, and stop trying.
                    self.pipe_fd = None;
                    return self.copy_rest(dec, off, left);
                }
                _ => {
                    return Err(Error::Destination(crate::block::Error::Io(IoContext::new(
                        self.dest.path(),
                        format!("write {left} bytes at byte {off} (splice)"),
                        e,
                    ))))
                }
            }
        }
        self.stats.records += 1;
        if self.progress.is_cancelled() {
            return Err(Cancelled.into());
        }
        Ok(())
    }

    /// The rest of a record through memory (the fallback of [`Applier::splice_record`]).
    fn copy_rest<R: Read>(
        &mut self,
        dec: &mut Decoder<R>,
        mut off: u64,
        mut left: u64,
    ) -> Result<()> {
        while left > 0 {
            let n = left.min(READ_STEP as u64) as usize;
            if self.buf.len() < n {
                self.buf.resize(n, 0);
            }
            dec.read_data(&mut self.buf[..n])?;
            self.dest.write_all_at(&self.buf[..n], off)?;
            self.stats.writes += 1;
            self.stats.bytes += n as u64;
            self.progress.add_done(n as u64);
            off += n as u64;
            left -= n as u64;
        }
        self.stats.records += 1;
        Ok(())
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
    fn take_discard(&mut self, rec: &Record) -> Result<()> {
        let h = rec.header;
        let keep = fitting(&h, self.dest.size());
        if keep > 0 {
            if self.items.len() >= MAX_ITEMS {
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
        self.batch_discards += 1;
        Ok(())
    }

    /// Reads the current record's data into the batch: the part that fits the destination
    /// (all of it unless short destinations are allowed), flushing full batches unless `hold`.
    fn take_record<R: Read>(
        &mut self,
        dec: &mut Decoder<R>,
        rec: &Record,
        hold: bool,
    ) -> Result<()> {
        let h = rec.header;
        let keep = fitting(&h, self.dest.size());
        if let Some(fd) = self.pipe_fd {
            // Spliced data never passes through here, so it cannot be hashed for `verify`.
            if !hold
                && self.undo.is_none()
                && self.ranges.is_none()
                && keep == u64::from(h.len)
                && keep >= SPLICE_MIN
            {
                return self.splice_record(dec, fd, h.offset, keep);
            }
        }
        if self.ranges.is_some() {
            self.hasher = Some(RangeHasher::new(h.offset, keep));
        }
        let mut off = h.offset;
        let mut left = keep;
        // Data is written in pieces as it arrives (so it is still in the CPU cache): a stream
        // cut inside a record may leave that record partly written, which the error reports.
        let base = if self.undo.is_some() {
            SNAPBACK_BATCH
        } else {
            BATCH
        };
        while left > 0 {
            let mut used = self.used();
            let cap = if hold { JOURNAL_HOLD_MAX } else { base };
            if used >= cap || self.items.len() >= MAX_ITEMS {
                if hold {
                    return Err(Error::JournalBatch {
                        name: dec.name().to_string(),
                        at: rec.at,
                        limit: JOURNAL_HOLD_MAX as u64,
                    });
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
    /// in `poll` where the cancel flag is seen; from a pipe, large records are spliced.
    Fd(File, String),
    /// Any other reader (a block device, a caller's stream), applied as it arrives.
    Reader(Box<dyn Read + Send>, String),
}

/// Applies `input` to the destination at `dest_path`. Nothing is written (and no snapback
/// file is created) if the input or the destination cannot be used (not a kind of file that
/// can be; the destination is the input; the snapback file is either), the handshake is
/// wrong, or — for a regular file input — any record is truncated or out of bounds.
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
    let mut pipe_fd: Option<i32> = None;
    let (reader, name, plan): (Box<dyn Read + Send + '_>, String, Option<Plan>) = match input {
        Source::File(f, name) => {
            let plan = check_file(&f, &name, &dest, opts)?;
            (Box::new(f), name, Some(plan))
        }
        Source::Reader(r, name) => (r, name, None),
        Source::Fd(f, name) => {
            use std::os::fd::AsRawFd;
            use std::os::unix::fs::FileTypeExt;
            if f.metadata().is_ok_and(|m| m.file_type().is_fifo()) {
                pipe_fd = Some(f.as_raw_fd());
            }
            (
                Box::new(crate::io::WaitingFile::new(f).cancelled_by(progress))
                    as Box<dyn Read + Send + '_>,
                name,
                None,
            )
        }
    };
    if let Some(p) = &plan {
        progress.set_total(p.bytes);
    }
    // Waiting for the handshake (a pipe with no writer yet) ends on the cancel flag too.
    let mut dec = match Decoder::new(reader, &name) {
        Err(_) if progress.is_cancelled() => return Err(Cancelled.into()),
        r => r?,
    };
    let undo = match &opts.undo {
        Some(p) => Some(UndoLog::create(p)?),
        None => None,
    };
    let mut ap = Applier {
        dest: &dest,
        pipe_fd,
        undo,
        progress,
        buf: Vec::new(),
        items: Vec::new(),
        fill: 0,
        batch_records: 0,
        batch_discards: 0,
        batch_ranges: Vec::new(),
        ranges: opts.verify.then(Vec::new),
        hasher: None,
        zeros: ZeroHashes::default(),
        stats: ApplyStats {
            checked_first: plan.is_some(),
            dest_size: dest.size(),
            discards_in_stream: dec.discards(),
            ..Default::default()
        },
    };
    let mut result = run(&mut ap, &mut dec, plan, opts);
    if result.is_err() && progress.is_cancelled() {
        result = Err(Cancelled.into());
    }
    let mut stats = std::mem::take(&mut ap.stats);
    let arrived = ap.ranges.take();
    let undo_result = match ap.undo.take() {
        Some(u) => u.finish().map(Some),
        None => Ok(None),
    };
    // Everything up to the last fdatasync; an error anywhere in it after the first write
    // leaves the destination partly updated.
    let result = result.and_then(|()| Ok(dest.sync()?)).and(undo_result);
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
    const STEP: u64 = 1 << 20;
    // Bytes of reads announced ahead of the one in progress.
    const AHEAD_BYTES: u64 = 32 << 20;
    dest.drop_cache();
    let spans = read_spans(ranges, STEP);
    let mut buf = vec![0u8; spans.iter().map(|s| s.len).max().unwrap_or(0).min(STEP) as usize];
    let mut out = Vec::with_capacity(ranges.len());
    let (mut next, mut announced) = (0usize, 0u64);
    for (i, span) in spans.iter().enumerate() {
        while next < spans.len() && (next <= i || announced < AHEAD_BYTES) {
            let n = spans[next].len.min(AHEAD_BYTES);
            if n > 0 {
                dest.will_need(spans[next].off, n);
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
                dest.read_exact_at(&mut buf[..n], at)?;
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
            dest.read_exact_at(b, span.off)?;
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
    plan: Option<Plan>,
    opts: &ApplyOptions,
) -> Result<()> {
    let mut journal = Journal::default();
    let mut journaled = false;
    // A journaled stream is held batch by batch until its commit marker arrives.
    let mut hold = false;
    loop {
        if let Some(p) = plan {
            if dec.records_read() >= p.apply_until {
                break;
            }
        }
        let rec = match dec.next_record() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) if hold && is_truncation(&e) => {
                ap.batch_records += 1;
                break;
            }
            Err(e) => return Err(e),
        };
        // Snapback files are plain streams: an extended stream is never journaled.
        if rec.index == 0 && rec.header.is_commit() && !dec.discards() {
            journaled = true;
            ap.stats.journaled = true;
            hold = plan.is_none();
            continue;
        }
        if journaled {
            match journal.classify(&rec.header) {
                Mark::Commit => {
                    ap.flush()?;
                    continue;
                }
                Mark::Anomaly => break,
                Mark::Data => {}
            }
        } else if rec.header.len == 0 {
            continue;
        }
        if !opts.allow_short_destination && !fits(&rec.header, ap.dest.size()) {
            return Err(past_end(ap.dest, &rec, 0));
        }
        let taken = match rec.kind {
            RecordKind::Data => ap.take_record(dec, &rec, hold),
            RecordKind::Discard => ap.take_discard(&rec),
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
            Err(e) if hold && is_truncation(&e) => {
                ap.batch_records += 1;
                break;
            }
            Err(e) => return Err(e),
        }
    }
    if hold {
        ap.drop_batch();
    } else {
        ap.flush()?;
    }
    if let Some(p) = plan {
        ap.stats.ignored_records += p.ignored_records;
        ap.stats.ignored_bytes += p.ignored_bytes;
    }
    Ok(())
}

fn is_truncation(e: &Error) -> bool {
    matches!(
        e,
        Error::TruncatedHeader { .. } | Error::TruncatedData { .. }
    )
}

#[cfg(test)]
mod tests;
