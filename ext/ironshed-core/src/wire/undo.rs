//! The snapback ("undo") writer: before a destination range is overwritten, its current bytes
//! are appended to an undo file and made durable. The file is a PROTO[3] stream, so
//! `lvmsync --apply UNDO DEST` restores the destination (the original lvmsync applies it too).
//!
//! # Use
//! ```no_run
//! # use ironshed_core::{block::Destination, wire::UndoLog};
//! # fn demo(dest: &Destination, writes: &[(u64, Vec<u8>)]) -> ironshed_core::wire::Result<()> {
//! let mut undo = UndoLog::create(std::path::Path::new("/var/tmp/vm.undo"))?;
//! for (offset, data) in writes {
//!     undo.before_write(dest, *offset, data.len() as u64)?; // saved and durable
//!     dest.write_all_at(data, *offset)?;                     // now safe to overwrite
//! }
//! undo.finish()?;
//! # Ok(()) }
//! ```
//! For many small writes, call [`UndoLog::save`] for each range of a batch, then
//! [`UndoLog::commit`] once, then write the whole batch: the contract is only that a range is
//! overwritten after a `commit` that followed its `save`.
//!
//! # File layout and crash safety
//! ```text
//! "lvmsync PROTO[3]\n"
//! (0, 0)                       zero-length record at offset 0: "this is a journaled undo file"
//! records of old data ...      batch 1
//! (1, 0)                       commit marker 1: a zero-length record at offset 1
//! records of old data ...      batch 2
//! (2, 0)                       commit marker 2
//! ...
//! ```
//! The file is created under a temporary name with its handshake and first marker, made
//! durable and renamed into place, so it either does not exist or starts correctly. Then, for
//! each batch: its records are appended and `fdatasync`ed, the next commit marker is appended
//! and `fdatasync`ed, and only then does [`UndoLog::commit`] return and may the caller
//! overwrite the destination. Whatever the moment of a crash:
//! * every record before the last durable commit marker is complete and correct, and the
//!   destination ranges it covers may have been overwritten;
//! * records after it (torn, missing, or whose data never reached the disk and reads back as
//!   zeros) cover ranges that were **not** overwritten yet, so a restore must ignore them, and
//!   `lvmsync --apply` does: in a journaled file it applies records up to the last commit
//!   marker found in sequence (1, 2, 3...) and reports the rest as an uncommitted tail.
//!   Sequence numbers, not zeros, mark commits, so a tail of zeroed blocks (which reads as
//!   `(0, 0)` records) can never pass for a commit.
//!
//! A zero-length record writes nothing on any receiver, so the file stays a valid PROTO[3]
//! stream for the original lvmsync too (which applies the tail as well).
//!
//! Each destination byte is saved at most once per undo file (the first save holds its value
//! before this run; later saves would hold data this run wrote), so the records never overlap
//! and their order does not matter when restoring.

use super::proto3::{RecordHeader, HANDSHAKE, HEADER_LEN};
use super::{Error, Result};
use crate::block::Destination;
use crate::error::IoContext;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Largest record written to an undo file (bounds the copy buffer).
pub const MAX_UNDO_RECORD: u64 = 1 << 20;

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

/// What an undo file holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UndoStats {
    /// Data records written.
    pub records: u64,
    /// Destination bytes saved.
    pub bytes: u64,
    /// Commit markers written (the initial one included).
    pub commits: u64,
    /// Size of the file.
    pub file_bytes: u64,
}

/// An open undo file. See the module documentation for the contract.
#[derive(Debug)]
pub struct UndoLog {
    path: PathBuf,
    file: File,
    saved: RangeSet,
    pending: bool,
    stats: UndoStats,
    buf: Vec<u8>,
    next_commit: u64,
}

impl UndoLog {
    /// Creates the undo file: refuses one that exists with data in it (an earlier undo file
    /// must never be clobbered); writes the handshake and the first commit marker under a
    /// temporary name, makes it durable, renames it into place and makes the directory entry
    /// durable.
    pub fn create(path: &Path) -> Result<Self> {
        let io = |op: &str, e| Error::Io(IoContext::new(path, op, e));
        if let Ok(meta) = std::fs::metadata(path) {
            if !meta.is_file() {
                return Err(io(
                    "create the snapback file",
                    std::io::Error::other("exists and is not a regular file"),
                ));
            }
            if meta.len() > 0 {
                return Err(Error::UndoExists {
                    path: path.to_path_buf(),
                    size: meta.len(),
                });
            }
        }
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
            stats: UndoStats::default(),
            buf: Vec::new(),
            next_commit: 1,
        };
        let mut head = HANDSHAKE.to_vec();
        head.extend_from_slice(&RecordHeader { offset: 0, len: 0 }.encode());
        let started = log.append(&head).and_then(|_| log.sync());
        if let Err(e) = started {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        if let Err(e) = std::fs::rename(&tmp, path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io("rename the new snapback file into place", e));
        }
        log.path = path.to_path_buf();
        log.stats.commits = 1;
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
        self.stats.file_bytes += b.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::Io(IoContext::new(&self.path, "fdatasync the snapback file", e)))
    }

    /// Appends the destination's current bytes of `[offset, offset+len)` that this file does
    /// not hold yet. Not durable until [`UndoLog::commit`].
    pub fn save(&mut self, dest: &Destination, offset: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        dest.check_range(offset, len)?;
        for (s, e) in self.saved.missing(offset, offset + len) {
            let mut at = s;
            while at < e {
                let n = (e - at).min(MAX_UNDO_RECORD);
                self.buf.resize(HEADER_LEN + n as usize, 0);
                let hdr = RecordHeader {
                    offset: at,
                    len: n as u32,
                }
                .encode();
                self.buf[..HEADER_LEN].copy_from_slice(&hdr);
                dest.read_exact_at(&mut self.buf[HEADER_LEN..], at)?;
                let b = std::mem::take(&mut self.buf);
                let r = self.append(&b);
                self.buf = b;
                r?;
                self.stats.records += 1;
                self.stats.bytes += n;
                self.pending = true;
                at += n;
            }
            self.saved.insert(s, e);
        }
        Ok(())
    }

    /// Makes everything saved so far durable: `fdatasync`, next commit marker, `fdatasync`. After
    /// it returns, the saved ranges may be overwritten. Does nothing when nothing is pending.
    pub fn commit(&mut self) -> Result<()> {
        if !self.pending {
            return Ok(());
        }
        self.sync()?;
        let marker = RecordHeader {
            offset: self.next_commit,
            len: 0,
        };
        self.append(&marker.encode())?;
        self.sync()?;
        self.next_commit += 1;
        self.stats.commits += 1;
        self.pending = false;
        Ok(())
    }

    /// [`UndoLog::save`] then [`UndoLog::commit`]: call before each write of
    /// `[offset, offset+len)`.
    pub fn before_write(&mut self, dest: &Destination, offset: u64, len: u64) -> Result<()> {
        self.save(dest, offset, len)?;
        self.commit()
    }

    /// Commits anything pending and closes the file.
    pub fn finish(mut self) -> Result<UndoStats> {
        self.commit()?;
        Ok(self.stats)
    }

    /// Counts so far.
    pub fn stats(&self) -> UndoStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_set_reports_only_unsaved_parts() {
        let mut s = RangeSet::default();
        assert_eq!(s.missing(10, 20), [(10, 20)]);
        s.insert(10, 20);
        s.insert(30, 40);
        assert_eq!(s.missing(0, 50), [(0, 10), (20, 30), (40, 50)]);
        assert_eq!(s.missing(12, 18), []);
        assert_eq!(s.missing(15, 35), [(20, 30)]);
        s.insert(20, 30);
        assert_eq!(s.0.len(), 1);
        assert_eq!(s.missing(0, 100), [(0, 10), (40, 100)]);
        s.insert(5, 45);
        assert_eq!(s.0.iter().collect::<Vec<_>>(), [(&5, &45)]);
    }
}

/// What a record of a journaled undo file is, on the restore side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Old data to put back.
    Data,
    /// The next commit marker in sequence: the records before it are durable.
    Commit,
    /// A zero-length record out of sequence: the uncommitted tail starts at the last commit.
    Anomaly,
}

/// Tracks the commit sequence while reading a journaled undo file (one that starts with a
/// zero-length record at offset 0).
#[derive(Debug, Clone, Copy)]
pub struct Journal {
    next: u64,
}

impl Default for Journal {
    fn default() -> Self {
        Journal { next: 1 }
    }
}

impl Journal {
    /// Classifies the next record after the opening marker.
    pub fn classify(&mut self, h: &RecordHeader) -> Mark {
        if h.len > 0 {
            Mark::Data
        } else if h.offset == self.next {
            self.next += 1;
            Mark::Commit
        } else {
            Mark::Anomaly
        }
    }
}
