//! The undo (snapback) journal: before a destination range is overwritten, its current bytes
//! are appended to a journal file and made durable. The file is a PROTO[3] stream, so
//! `lvmsync --apply UNDO DEST` restores the destination. An interrupted apply (Ctrl-C,
//! SIGKILL, power loss) is finished by running it again with the same file: the journal is
//! resumed, not rewritten.
//!
//! # Use
//! ```no_run
//! # use ironshed_core::{block::Destination, wire::{UndoIdentity, UndoLog, UndoOpen}};
//! # fn demo(dest: &Destination, writes: &[(u64, Vec<u8>)]) -> ironshed_core::wire::Result<()> {
//! let id = UndoIdentity::new("mytool", Some("job-42".into()), "job 42", dest)?;
//! let mut undo = match UndoLog::open(std::path::Path::new("/var/tmp/vm.undo"), &id)? {
//!     UndoOpen::Ready(log) => *log,         // a new journal, or one resumed
//!     UndoOpen::Complete(_) => return Ok(()), // this apply finished before: nothing to do
//! };
//! for (offset, data) in writes {
//!     undo.before_write(dest, *offset, data.len() as u64)?; // saved and durable
//!     dest.write_all_at(data, *offset)?;                     // now safe to overwrite
//! }
//! undo.finish()?; // the apply is complete
//! # Ok(()) }
//! ```
//! For many small writes, call [`UndoLog::save`] for each range of a batch, then
//! [`UndoLog::commit`] once, then write the whole batch: the contract is only that a range is
//! overwritten after a `commit` that followed its `save`. An apply that fails or is stopped
//! drops its `UndoLog` without [`UndoLog::finish`]: the journal stays resumable.
//!
//! # File layout
//! ```text
//! "lvmsync PROTO[3] discards\n"
//! JOURNAL "ironshed undo journal 1\ntool ...\nsource-id ...\n..."   what it belongs to
//! records of old data ...      batch 1
//! COMMIT (1, digest)           the batch is durable
//! records of old data ...      batch 2
//! COMMIT (2, digest)
//! ...
//! END (items, data bytes, digest)   the apply finished
//! ```
//! Old data that is all zeros, in runs of whole [`ZERO_BLOCK`]s, is kept as a **discard
//! record** (offset and length, no data: see [`super::proto3`]), so a destination that is
//! mostly zeros — a fresh thin LV under a first `--full` copy — gives a small journal, and
//! restoring it makes those ranges read as zeros again. The rest is kept as data records of up
//! to [`MAX_UNDO_RECORD`] bytes. Journals written before discard records existed have the
//! plain handshake `lvmsync PROTO[3]` and data records only; they are applied and resumed
//! as they are (a resumed one goes on with data records only).
//!
//! Control items (`JOURNAL`, `COMMIT`, `END`) are headers with an offset of 2^63 or more,
//! which no receiver can write (see [`super::proto3`]). `JOURNAL`'s text says which tool
//! started the journal, what it applies (`source-id`: the same string for the same delta
//! chain or stream; `-` when the source cannot be identified before it is applied, a plain
//! stream from a pipe) and to which destination (kind, size, and an identifier that survives
//! a reboot: a device-mapper device's uuid, a loop device's backing file, else the device
//! number; a file's filesystem id and inode).
//!
//! # Crash safety
//! The file is created under a temporary name with its handshake and `JOURNAL` item, made
//! durable and renamed into place, so it either does not exist or starts correctly. Then, for
//! each batch: its records are appended and `fdatasync`ed, the `COMMIT` item is appended and
//! `fdatasync`ed, and only then does [`UndoLog::commit`] return and may the caller overwrite
//! the destination. Whatever the moment of a crash:
//! * every record before the last durable `COMMIT` is complete and correct, and the
//!   destination ranges it covers may have been overwritten;
//! * records after it (torn, missing, or whose data never reached the disk and reads back as
//!   zeros or as stale blocks) cover ranges that were **not** overwritten yet, so a restore
//!   ignores them, and so does a resume, which cuts the file back to the last `COMMIT`.
//!
//! A `COMMIT` counts only when its sequence number is the next one and its digest is the
//! XXH3-64 of every byte of the file before it, so no tail — zeros, stale data, an old copy of
//! the journal — can pass for one.
//!
//! # Resuming, and why it restores the state before the first run
//! Each destination byte is saved at most once per journal: the first save holds its value
//! before the first run; a later save would hold data a run wrote. A resumed journal rebuilds
//! the set of ranges saved and committed so far, so a rerun saves only ranges no run has
//! saved, whose bytes no run has overwritten (a run overwrites only committed ranges). Hence,
//! after any number of interruptions and reruns, the committed records hold exactly the
//! destination's bytes before the first run, wherever any run wrote. The records never
//! overlap, so their order does not matter when restoring.

use super::proto3::{
    Control, ControlItem, Decoder, Record, RecordHeader, RecordKind, StreamHash, Summary,
    HANDSHAKE_DISCARDS, HEADER_LEN, MAX_JOURNAL_TEXT,
};
use super::{Error, Result};
use crate::block::{DestKind, Destination};
use crate::error::{IoContext, Report};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Largest data record written to an undo file (bounds the copy buffer).
pub const MAX_UNDO_RECORD: u64 = 1 << 20;
/// Unit of the zero test: old data is kept as a discard record in runs of whole blocks of
/// this size (aligned to the destination's byte 0; the unaligned ends of a saved range are
/// tested as they are). A block costs a 12-byte header at most either way, and 4 KiB is the
/// block of filesystems and thin pools: an empty 8 GiB ext4 holds 4.1 MiB of non-zero 4 KiB
/// blocks, but 20 MiB of non-zero 1 MiB pieces.
pub const ZERO_BLOCK: u64 = 4096;
/// Longest discard record written (longer zero runs take several).
pub const MAX_UNDO_DISCARD: u64 = 1 << 30;
/// Saved data bytes after which [`UndoLog::save`] commits by itself, so that no commit
/// group (what a receiver reading the journal from a pipe holds in memory before writing
/// it) grows past this, whatever one save covers (a discard record's range may be 2 GiB of
/// old data). Nothing is overwritten before the save's caller commits, so an early commit
/// only makes durable what is already true.
pub const COMMIT_EVERY: u64 = 8 << 20;
/// The first line of a `JOURNAL` item's text.
pub const JOURNAL_VERSION_LINE: &str = "ironshed undo journal 1";

/// Byte ranges already saved: start → end, disjoint and non-adjacent.
#[derive(Debug, Default, Clone)]
struct RangeSet(BTreeMap<u64, u64>);

impl RangeSet {
    /// Parts of `[start, end)` not in the set, in order.
    fn missing(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut cur = start;
        // The range that may cover `start`, then every range starting inside [start, end).
        if let Some((_, &e)) = self.0.range(..=start).next_back() {
            if e > cur {
                cur = e;
            }
        }
        for (&s, &e) in self.0.range(start..end) {
            if s > cur {
                out.push((cur, s.min(end)));
            }
            cur = cur.max(e);
            if cur >= end {
                break;
            }
        }
        if cur < end {
            out.push((cur, end));
        }
        out
    }

    fn insert(&mut self, start: u64, end: u64) {
        let mut s = start;
        let mut e = end;
        if let Some((&ps, &pe)) = self.0.range(..=start).next_back() {
            if pe >= start {
                s = ps;
                e = e.max(pe);
            }
        }
        let inside: Vec<u64> = self.0.range(s..=e).map(|(&k, _)| k).collect();
        for k in inside {
            if let Some(v) = self.0.remove(&k) {
                e = e.max(v);
            }
        }
        self.0.insert(s, e);
    }
}

/// The destination a journal belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestIdentity {
    /// "block device" or "file".
    pub kind: String,
    /// Its size in bytes.
    pub size: u64,
    /// What identifies it across reboots: `dm-uuid:…` (device-mapper, LVM), `loop:FILE@OFFSET`
    /// (a loop device), `device:MAJOR:MINOR` (other block devices), `file:FSID:INODE`.
    pub id: String,
    /// The path it was named by (for messages).
    pub path: String,
}

impl DestIdentity {
    /// The identity of an open destination.
    pub fn of(dest: &Destination) -> Result<Self> {
        let meta = dest
            .file()
            .metadata()
            .map_err(|e| IoContext::new(dest.path(), "stat", e))?;
        let (kind, id) = match dest.kind() {
            DestKind::BlockDevice => ("block device", block_id(meta.rdev())),
            DestKind::File => ("file", file_id(dest.file(), &meta)),
        };
        Ok(DestIdentity {
            kind: kind.to_string(),
            size: dest.size(),
            id,
            path: dest.path().display().to_string(),
        })
    }

    fn describe(&self) -> String {
        format!(
            "{} ({}, {}, {} bytes)",
            self.path, self.kind, self.id, self.size
        )
    }
}

fn sys_text(path: &str) -> Option<String> {
    let t = std::fs::read_to_string(path).ok()?;
    let t = t.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn block_id(rdev: u64) -> String {
    let (maj, min) = (libc::major(rdev), libc::minor(rdev));
    let sys = format!("/sys/dev/block/{maj}:{min}");
    if let Some(uuid) = sys_text(&format!("{sys}/dm/uuid")) {
        return format!("dm-uuid:{uuid}");
    }
    if let Some(file) = sys_text(&format!("{sys}/loop/backing_file")) {
        let offset = sys_text(&format!("{sys}/loop/offset")).unwrap_or_else(|| "0".into());
        return format!("loop:{file}@{offset}");
    }
    format!("device:{maj}:{min}")
}

fn file_id(file: &File, meta: &std::fs::Metadata) -> String {
    // SAFETY: fstatfs writes one statfs structure through the pointer, valid for the call.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let fsid = if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } == 0 {
        // SAFETY: fsid_t is a repr(C) struct holding exactly two ints.
        let v: [libc::c_int; 2] = unsafe { std::mem::transmute(st.f_fsid) };
        (v != [0, 0]).then(|| format!("{:08x}{:08x}", v[0] as u32, v[1] as u32))
    } else {
        None
    };
    // A filesystem's id survives a reboot (it comes from its superblock); its device number
    // may not, so it is the fallback.
    let fs = fsid.unwrap_or_else(|| format!("dev{}", meta.dev()));
    format!("file:{fs}:{}", meta.ino())
}

/// What a journal belongs to: the tool, what it applies, the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoIdentity {
    /// The tool that writes it ("vmdksync", "lvmsync").
    pub tool: String,
    /// What is applied, as a string that is the same for the same delta chain or stream;
    /// `None` when it cannot be known before the first write (a plain stream from a pipe).
    pub source_id: Option<String>,
    /// What is applied, for messages.
    pub source: String,
    /// The destination.
    pub dest: DestIdentity,
}

/// One line's value as stored: no line breaks or control characters, bounded.
fn clean(v: &str) -> String {
    v.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(1000)
        .collect()
}

impl UndoIdentity {
    /// The identity of an apply by `tool` of `source` (identified by `source_id`) to `dest`.
    pub fn new(
        tool: &str,
        source_id: Option<String>,
        source: &str,
        dest: &Destination,
    ) -> Result<Self> {
        Ok(UndoIdentity {
            tool: tool.to_string(),
            source_id,
            source: source.to_string(),
            dest: DestIdentity::of(dest)?,
        })
    }

    /// The `JOURNAL` item's text, for the journal `nonce` (random, so that no two journals,
    /// even of the same apply, share any digest: stale blocks of an older journal can never
    /// pass for commits of a newer one).
    pub fn to_text(&self, nonce: u128) -> Vec<u8> {
        let lines = [
            JOURNAL_VERSION_LINE.to_string(),
            format!("journal-id {nonce:032x}"),
            format!("tool {}", clean(&self.tool)),
            format!(
                "source-id {}",
                self.source_id.as_deref().map_or("-".to_string(), clean)
            ),
            format!("source {}", clean(&self.source)),
            format!("destination-kind {}", clean(&self.dest.kind)),
            format!("destination-size {}", self.dest.size),
            format!("destination-id {}", clean(&self.dest.id)),
            format!("destination {}", clean(&self.dest.path)),
        ];
        let mut t = lines.join("\n").into_bytes();
        t.push(b'\n');
        t.truncate(MAX_JOURNAL_TEXT as usize);
        t
    }

    /// Reads [`UndoIdentity::to_text`]'s form; the error says what is wrong.
    pub fn from_text(text: &[u8]) -> std::result::Result<Self, String> {
        let text = std::str::from_utf8(text).map_err(|_| "its text is not UTF-8".to_string())?;
        let mut lines = text.lines();
        if lines.next() != Some(JOURNAL_VERSION_LINE) {
            return Err(format!(
                "its JOURNAL item does not start with '{JOURNAL_VERSION_LINE}' (a newer format?)"
            ));
        }
        let mut map = BTreeMap::new();
        for l in lines {
            let (k, v) = l.split_once(' ').unwrap_or((l, ""));
            if map.insert(k, v).is_some() {
                return Err(format!("its JOURNAL item names '{k}' twice"));
            }
        }
        let get = |k: &str| {
            map.get(k)
                .map(|v| v.to_string())
                .ok_or_else(|| format!("its JOURNAL item lacks '{k}'"))
        };
        let (tool, source_id, source) = (get("tool")?, get("source-id")?, get("source")?);
        let (kind, size) = (get("destination-kind")?, get("destination-size")?);
        Ok(UndoIdentity {
            tool,
            source_id: Some(source_id).filter(|s| s != "-"),
            source,
            dest: DestIdentity {
                kind,
                size: size
                    .parse()
                    .map_err(|_| format!("its destination-size '{size}' is not a number"))?,
                id: get("destination-id")?,
                path: get("destination")?,
            },
        })
    }

    /// What differs between the apply that started a journal (`self`) and `now`, one phrase
    /// each; empty when `now` may continue it. Sources that cannot both be identified are not
    /// compared (see [`UndoIdentity::source_unchecked`]).
    pub fn differences(&self, now: &UndoIdentity) -> Vec<String> {
        let mut out = Vec::new();
        if self.tool != now.tool {
            out.push(format!(
                "it was started by {}, this is {}",
                self.tool, now.tool
            ));
        }
        if let (Some(a), Some(b)) = (&self.source_id, &now.source_id) {
            if a != b {
                out.push(format!(
                    "it was started for {} [{a}], this is {} [{b}]",
                    self.source, now.source
                ));
            }
        }
        let (a, b) = (&self.dest, &now.dest);
        if a.kind != b.kind || a.size != b.size || a.id != b.id {
            out.push(format!(
                "it was started for the destination {}, this is {}",
                a.describe(),
                b.describe()
            ));
        }
        out
    }

    /// True when `self` and `now` name sources that cannot be compared before the first write.
    pub fn source_unchecked(&self, now: &UndoIdentity) -> bool {
        self.source_id.is_none() || now.source_id.is_none()
    }
}

/// How a journal came to be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UndoState {
    /// Created by this run.
    #[default]
    Created,
    /// Left by an interrupted run, and continued by this one.
    Resumed,
    /// Left by a run that finished: nothing to do.
    Complete,
}

impl UndoState {
    /// "created", "resumed", "complete".
    pub fn as_str(self) -> &'static str {
        match self {
            UndoState::Created => "created",
            UndoState::Resumed => "resumed",
            UndoState::Complete => "complete",
        }
    }
}

/// What an undo file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UndoStats {
    /// Records (old data, or discard records for old zeros) committed or written so far.
    pub records: u64,
    /// Destination bytes saved (by this run and earlier ones).
    pub bytes: u64,
    /// Of `bytes`, those that were zeros, kept as discard records (no room in the file).
    pub zero_bytes: u64,
    /// Commit markers written (by this run and earlier ones).
    pub commits: u64,
    /// Size of the file.
    pub file_bytes: u64,
    /// How the journal came to be open.
    pub state: UndoState,
    /// Bytes earlier runs had saved and committed.
    pub earlier_bytes: u64,
    /// The source of the earlier runs could not be compared with this one's (a plain stream
    /// from a pipe was one of them).
    pub source_unchecked: bool,
}

/// What [`UndoLog::open`] found.
#[derive(Debug)]
pub enum UndoOpen {
    /// A journal to write to: new, or resumed ([`UndoLog::stats`] says which).
    Ready(Box<UndoLog>),
    /// The journal of this very apply, which finished: nothing to do.
    Complete(UndoStats),
}

/// An open undo journal. See the module documentation for the contract.
#[derive(Debug)]
pub struct UndoLog {
    path: PathBuf,
    file: File,
    saved: RangeSet,
    pending: bool,
    /// Data bytes saved since the last commit.
    pending_bytes: u64,
    stats: UndoStats,
    buf: Vec<u8>,
    next_commit: u64,
    /// Every byte of the file.
    hash: StreamHash,
    /// Items after the handshake.
    items: u64,
    /// Data bytes of its records.
    data_bytes: u64,
    /// The file has the extended handshake: old zeros may go as discard records.
    discards: bool,
}

fn noun(tool: &str) -> &'static str {
    if tool == "lvmsync" {
        "snapback file"
    } else {
        "undo file"
    }
}

impl UndoLog {
    /// Creates a new journal: refuses a file that exists with data in it (an earlier journal
    /// must never be clobbered); writes the handshake and the `JOURNAL` item under a temporary
    /// name, makes it durable, renames it into place and makes the directory entry durable.
    pub fn create(path: &Path, id: &UndoIdentity) -> Result<Self> {
        if let Some(size) = existing_size(path)? {
            return Err(Error::UndoExists {
                path: path.to_path_buf(),
                size,
                why: "resuming was not asked for".into(),
            });
        }
        Self::create_new(path, id)
    }

    /// Opens the journal at `path` for the apply `id`: creates it when it does not exist (or
    /// is empty); resumes it when it is the journal of an interrupted apply with the same
    /// identity (cut back to its last commit); reports [`UndoOpen::Complete`] when that apply
    /// finished. Refuses a file that is no journal ([`Error::UndoExists`]) or the journal of
    /// another apply ([`Error::UndoMismatch`], naming what differs).
    pub fn open(path: &Path, id: &UndoIdentity) -> Result<UndoOpen> {
        let Some(size) = existing_size(path)? else {
            return Self::create_new(path, id).map(|l| UndoOpen::Ready(Box::new(l)));
        };
        let scan = match scan(path) {
            Ok(s) => s,
            Err(Scan::Not(why)) => {
                return Err(Error::UndoExists {
                    path: path.to_path_buf(),
                    size,
                    why,
                })
            }
            Err(Scan::Failed(e)) => return Err(e),
        };
        let differences = scan.identity.differences(id);
        if !differences.is_empty() {
            return Err(Error::UndoMismatch {
                path: path.to_path_buf(),
                noun: noun(&id.tool),
                differences,
            });
        }
        let mut stats = UndoStats {
            records: scan.records,
            bytes: scan.bytes,
            zero_bytes: scan.zero_bytes,
            commits: scan.commits,
            file_bytes: scan.end,
            state: UndoState::Resumed,
            earlier_bytes: scan.bytes,
            source_unchecked: scan.identity.source_unchecked(id),
        };
        if scan.complete {
            stats.state = UndoState::Complete;
            stats.file_bytes = size;
            return Ok(UndoOpen::Complete(stats));
        }
        let io = |op: &str, e| Error::Io(IoContext::new(path, op, e));
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| io("open the journal to resume it", e))?;
        // Whatever follows the last commit was never relied on: cut it off, durably, before
        // anything is appended.
        file.set_len(scan.end)
            .map_err(|e| io("cut the journal back to its last commit", e))?;
        file.sync_all()
            .map_err(|e| io("fsync the journal after cutting it back", e))?;
        let mut log = UndoLog {
            path: path.to_path_buf(),
            file,
            saved: scan.saved,
            pending: false,
            pending_bytes: 0,
            stats,
            buf: Vec::new(),
            next_commit: scan.next_commit,
            hash: scan.hash,
            items: scan.items,
            data_bytes: scan.data_bytes,
            discards: scan.discards,
        };
        use std::io::Seek;
        log.file
            .seek(std::io::SeekFrom::End(0))
            .map_err(|e| io("seek to the end of the journal", e))?;
        Ok(UndoOpen::Ready(Box::new(log)))
    }

    fn create_new(path: &Path, id: &UndoIdentity) -> Result<Self> {
        let io = |op: &str, e| Error::Io(IoContext::new(path, op, e));
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let base = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "snapback".to_string());
        let tmp = dir.join(format!(".{base}.{}.tmp", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(|e| Error::Io(IoContext::new(&tmp, "create the snapback file", e)))?;
        let mut log = UndoLog {
            path: tmp.clone(),
            file,
            saved: RangeSet::default(),
            pending: false,
            pending_bytes: 0,
            stats: UndoStats::default(),
            buf: Vec::new(),
            next_commit: 1,
            hash: StreamHash::default(),
            items: 0,
            data_bytes: 0,
            discards: true,
        };
        let mut head = HANDSHAKE_DISCARDS.to_vec();
        head.extend_from_slice(&Control::Journal(id.to_text(nonce())).encode());
        let started = log.append(&head).and_then(|_| log.sync());
        log.items = 1;
        if let Err(e) = started {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        if let Err(e) = std::fs::rename(&tmp, path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io("rename the new snapback file into place", e));
        }
        log.path = path.to_path_buf();
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::Io(IoContext::new(&dir, "fsync the directory", e)))?;
        Ok(log)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&mut self, b: &[u8]) -> Result<()> {
        self.file
            .write_all(b)
            .map_err(|e| Error::Io(IoContext::new(&self.path, "write the snapback file", e)))?;
        self.hash.update(b);
        self.stats.file_bytes += b.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::Io(IoContext::new(&self.path, "fdatasync the snapback file", e)))
    }

    /// Appends the destination's current bytes of `[offset, offset+len)` that this journal
    /// does not hold yet: runs of all-zero [`ZERO_BLOCK`]s as discard records (unless the
    /// journal is one of the older, plain form), the rest as data records. Not durable until
    /// [`UndoLog::commit`].
    pub fn save(&mut self, dest: &Destination, offset: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        dest.check_range(offset, len)?;
        for (s, e) in self.saved.missing(offset, offset + len) {
            // A run of zeros not written yet: (start, length). It grows across pieces.
            let mut zeros: Option<(u64, u64)> = None;
            let mut at = s;
            while at < e {
                // Pieces end on a block boundary, so that no block is tested in two parts.
                let limit = (at + MAX_UNDO_RECORD) / ZERO_BLOCK * ZERO_BLOCK;
                let n = (e.min(limit) - at) as usize;
                self.buf.resize(HEADER_LEN + n, 0);
                dest.read_exact_at(&mut self.buf[HEADER_LEN..], at)?;
                let runs = if self.discards {
                    zero_runs(at, &self.buf[HEADER_LEN..])
                } else {
                    vec![(0, n, false)]
                };
                for (i, l, zero) in runs {
                    let start = at + i as u64;
                    if zero {
                        zeros = match zeros {
                            Some((zs, zl)) if zl + l as u64 <= MAX_UNDO_DISCARD => {
                                Some((zs, zl + l as u64))
                            }
                            Some((zs, zl)) => {
                                self.append_discard(zs, zl)?;
                                Some((start, l as u64))
                            }
                            None => Some((start, l as u64)),
                        };
                        continue;
                    }
                    if let Some((zs, zl)) = zeros.take() {
                        self.append_discard(zs, zl)?;
                    }
                    // The header goes right before the run's data, over bytes already
                    // written (the runs are appended in order), so header and data are one
                    // write.
                    let hdr = RecordHeader {
                        offset: start,
                        len: l as u32,
                    }
                    .encode();
                    self.buf[i..i + HEADER_LEN].copy_from_slice(&hdr);
                    let b = std::mem::take(&mut self.buf);
                    let r = self.append(&b[i..i + HEADER_LEN + l]);
                    self.buf = b;
                    r?;
                    self.items += 1;
                    self.data_bytes += l as u64;
                    self.stats.records += 1;
                    self.stats.bytes += l as u64;
                    self.pending = true;
                    self.pending_bytes += l as u64;
                }
                at += n as u64;
                if self.pending_bytes >= COMMIT_EVERY {
                    self.commit()?;
                }
            }
            if let Some((zs, zl)) = zeros {
                self.append_discard(zs, zl)?;
            }
            self.saved.insert(s, e);
        }
        Ok(())
    }

    /// Appends a discard record: `len` bytes at `offset` were zeros.
    fn append_discard(&mut self, offset: u64, len: u64) -> Result<()> {
        let hdr = RecordHeader {
            offset,
            len: len as u32,
        }
        .encode_discard();
        self.append(&hdr)?;
        self.items += 1;
        self.stats.records += 1;
        self.stats.bytes += len;
        self.stats.zero_bytes += len;
        self.pending = true;
        Ok(())
    }

    /// Makes everything saved so far durable: `fdatasync`, the next `COMMIT`, `fdatasync`.
    /// After it returns, the saved ranges may be overwritten. Does nothing when nothing is
    /// pending.
    pub fn commit(&mut self) -> Result<()> {
        if !self.pending {
            return Ok(());
        }
        self.sync()?;
        let marker = Control::Commit {
            seq: self.next_commit,
            digest: self.hash.digest(),
        };
        self.append(&marker.encode())?;
        self.items += 1;
        self.sync()?;
        self.next_commit += 1;
        self.stats.commits += 1;
        self.pending = false;
        self.pending_bytes = 0;
        Ok(())
    }

    /// [`UndoLog::save`] then [`UndoLog::commit`]: call before each write of
    /// `[offset, offset+len)`.
    pub fn before_write(&mut self, dest: &Destination, offset: u64, len: u64) -> Result<()> {
        self.save(dest, offset, len)?;
        self.commit()
    }

    /// The apply finished: commits anything pending and appends the `END` mark, which makes
    /// a rerun with this journal a no-op. Call only after every write reached the
    /// destination (after its `fdatasync`).
    pub fn finish(mut self) -> Result<UndoStats> {
        self.commit()?;
        let end = Control::End(Summary {
            items: self.items,
            data_bytes: self.data_bytes,
            digest: self.hash.digest(),
        });
        self.append(&end.encode())?;
        self.sync()?;
        Ok(self.stats)
    }

    /// Counts so far.
    pub fn stats(&self) -> UndoStats {
        self.stats.clone()
    }
}

/// Splits `data`, the destination's bytes from `at`, into runs of blocks that are all zeros
/// and runs of blocks that are not: `(index, length, zero)`, in order, covering `data`.
/// Blocks are the [`ZERO_BLOCK`]s of the destination (the first and last may be partial).
fn zero_runs(at: u64, data: &[u8]) -> Vec<(usize, usize, bool)> {
    let mut out: Vec<(usize, usize, bool)> = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let next = ((at + i as u64) / ZERO_BLOCK + 1) * ZERO_BLOCK;
        let end = ((next - at) as usize).min(data.len());
        let zero = crate::block::is_zero(&data[i..end]);
        match out.last_mut() {
            Some((_, l, z)) if *z == zero => *l += end - i,
            _ => out.push((i, end - i, zero)),
        }
        i = end;
    }
    out
}

/// 128 random bits (the kernel's, or the time and process id when it has none to give).
fn nonce() -> u128 {
    let mut b = [0u8; 16];
    // SAFETY: getrandom writes at most 16 bytes into the buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n == 16 {
        return u128::from_le_bytes(b);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    t ^ (u128::from(std::process::id()) << 96)
}

/// The size of the file at `path` when it exists and is not empty; refuses what is no
/// regular file.
fn existing_size(path: &Path) -> Result<Option<u64>> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Err(Error::Io(IoContext::new(
            path,
            "create the snapback file",
            std::io::Error::other("exists and is not a regular file"),
        ))),
        Ok(meta) if meta.len() > 0 => Ok(Some(meta.len())),
        _ => Ok(None),
    }
}

/// What a journal holds up to its last commit.
struct Scanned {
    identity: UndoIdentity,
    /// File size up to and including the last valid commit (or the `JOURNAL` item).
    end: u64,
    hash: StreamHash,
    items: u64,
    data_bytes: u64,
    next_commit: u64,
    saved: RangeSet,
    records: u64,
    bytes: u64,
    zero_bytes: u64,
    commits: u64,
    complete: bool,
    /// The extended handshake: discard records may follow.
    discards: bool,
}

enum Scan {
    /// Not a journal: why.
    Not(String),
    /// Could not be read.
    Failed(Error),
}

/// Reads a journal whole: its identity, and what it holds up to its last valid commit.
fn scan(path: &Path) -> std::result::Result<Scanned, Scan> {
    let name = path.display().to_string();
    let f = File::open(path)
        .map_err(|e| Scan::Failed(Error::input(&name, "open the existing snapback file", e)))?;
    let not_journal = |e: Error| match e {
        Error::Io(_) | Error::Cancelled(_) => Scan::Failed(e),
        Error::Empty { .. } | Error::Handshake { .. } => {
            Scan::Not("it is no lvmsync stream (its first line is not 'lvmsync PROTO[3]')".into())
        }
        other => Scan::Not(format!("it is no undo journal ({})", other.message())),
    };
    let mut dec = Decoder::new(BufReader::new(f), &name).map_err(not_journal)?;
    let first = dec.next_record().map_err(not_journal)?;
    let identity = match (first, dec.control()) {
        (Some(_), Some(ControlItem {
            control: Control::Journal(text),
            ..
        })) => UndoIdentity::from_text(text)
            .map_err(|why| Scan::Not(format!("it is an undo journal this version cannot read: {why}")))?,
        _ => {
            return Err(Scan::Not(
                "it is no undo journal (it does not start with a JOURNAL item: a change stream, or a snapback file the original lvmsync wrote)".into(),
            ))
        }
    };
    let mut s = Scanned {
        identity,
        end: dec.position(),
        hash: dec.stream_hash(),
        items: dec.records_read(),
        data_bytes: dec.data_bytes(),
        next_commit: 1,
        saved: RangeSet::default(),
        records: 0,
        bytes: 0,
        zero_bytes: 0,
        commits: 0,
        complete: false,
        discards: dec.discards(),
    };
    let mut tracker = JournalTracker::default();
    // The records since the last commit: (offset, length, a discard record).
    let mut batch: Vec<(u64, u64, bool)> = Vec::new();
    loop {
        let rec = match dec.next_record() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e @ (Error::Io(_) | Error::Cancelled(_))) => return Err(Scan::Failed(e)),
            Err(_) => break, // a torn tail
        };
        match tracker.classify(&rec, dec.control()) {
            Mark::Data => batch.push((
                rec.header.offset,
                u64::from(rec.header.len),
                rec.is_discard(),
            )),
            Mark::Commit => {
                for (o, l, zero) in batch.drain(..) {
                    s.saved.insert(o, o + l);
                    s.records += 1;
                    s.bytes += l;
                    if zero {
                        s.zero_bytes += l;
                    }
                }
                s.commits += 1;
                s.end = dec.position();
                s.hash = dec.stream_hash();
                s.items = dec.records_read();
                s.data_bytes = dec.data_bytes();
                s.next_commit = tracker.next;
            }
            Mark::Complete => {
                // Complete only when nothing follows the mark.
                s.complete = matches!(dec.next_record(), Ok(None));
                break;
            }
            Mark::Tail => break,
        }
    }
    Ok(s)
}

/// What a record of a journal is, once its `JOURNAL` item was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Old data to put back, or old zeros (a discard record), when a commit follows.
    Data,
    /// The next valid `COMMIT`: the records before it are durable.
    Commit,
    /// A valid `END` right after a commit: the apply finished.
    Complete,
    /// Anything else: the uncommitted tail starts at the last commit.
    Tail,
}

/// Follows the commits of a journal (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct JournalTracker {
    next: u64,
    pending: bool,
}

impl Default for JournalTracker {
    fn default() -> Self {
        JournalTracker {
            next: 1,
            pending: false,
        }
    }
}

impl JournalTracker {
    /// Classifies the next item after the `JOURNAL` item; `control` is the decoder's
    /// [`Decoder::control`] for it.
    pub fn classify(&mut self, rec: &Record, control: Option<&ControlItem>) -> Mark {
        match (rec.kind, control) {
            (RecordKind::Data | RecordKind::Discard, _) if rec.header.len > 0 => {
                self.pending = true;
                Mark::Data
            }
            (
                RecordKind::Control,
                Some(ControlItem {
                    control: Control::Commit { seq, digest },
                    digest_before,
                }),
            ) if *seq == self.next && digest == digest_before => {
                self.next += 1;
                self.pending = false;
                Mark::Commit
            }
            (
                RecordKind::Control,
                Some(ControlItem {
                    control: Control::End(_),
                    ..
                }),
            ) if !self.pending => Mark::Complete,
            _ => Mark::Tail,
        }
    }
}

#[cfg(test)]
mod tests;
