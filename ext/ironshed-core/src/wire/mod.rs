//! The lvmsync "PROTO[3]" wire format and what moves over it.
//!
//! * [`proto3`]: the byte format (handshake, big-endian record headers) and its decoder,
//!   with the opt-in `discards` extension (discard records, extended handshake);
//! * [`send`]: the sender loop: changed ranges of a source device → a stream, coalesced into
//!   bounded records, with discard records and digests when asked;
//! * [`apply`]: the receiver loop: a stream (or a snapback file) → a destination, bounds
//!   checked, optionally saving what it overwrites, and re-reading what it wrote (`verify`);
//! * [`digest`]: XXH3-64 range digests for `--verify` and their comparison;
//! * [`undo`]: the crash-safe, resumable snapback ("undo") journal, reusable by any tool that
//!   overwrites a destination (its files are PROTO[3] streams that `lvmsync --apply` restores);
//! * [`destcheck`]: the destination check of a `--from` round (the `EXPECT` item: what the
//!   destination must hold before the first write);
//! * [`negotiate`]: what a sender sends (discard records, end-of-stream mark) given what the
//!   receiver can take.

pub mod apply;
pub mod destcheck;
pub mod digest;
pub mod negotiate;
pub mod proto3;
pub mod send;
pub mod undo;

pub use apply::{apply, read_digests, ApplyOptions, ApplyStats, Input};
pub use destcheck::CheckStats;
pub use digest::{compare_digests, Digest, DigestReport, Mismatch, MismatchKind};
pub use negotiate::{
    destination_check, must_ask, negotiate, Decision, Note, Peer, Wanted, CAPABILITIES,
};
pub use proto3::{
    Control, ControlKind, Decoder, Expected, Record, RecordHeader, RecordKind, Shape, Summary,
    CONTROL_BIT, DISCARD_FLAG, HANDSHAKE, HANDSHAKE_DISCARDS, HANDSHAKE_DISCARDS_LINE,
    HANDSHAKE_LINE, MAX_EXTENDED_LEN, MAX_SEND_RECORD,
};
pub use send::{
    send, send_changes, send_changes_to_file, send_changes_to_link, SendOptions, SendReport,
    SendStats,
};
pub use undo::{DestIdentity, UndoIdentity, UndoLog, UndoOpen, UndoState, UndoStats};

use crate::block;
use crate::error::{Cancelled, IoContext, Kind, Report};
use crate::snapshot;
use std::path::{Path, PathBuf};

/// Why a stream could not be sent or applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing at all arrived.
    #[error(
        "{name}: the stream is empty: no handshake (did the sender fail before sending anything?)"
    )]
    Empty {
        /// The stream ("-" for standard input, or a file).
        name: String,
    },
    /// The first line is not `lvmsync PROTO[3]`.
    #[error("{name}: handshake failed: saw '{saw}', expected 'lvmsync PROTO[3]' (protocol mismatch, or not an lvmsync stream)")]
    Handshake {
        /// The stream.
        name: String,
        /// What arrived instead (escaped).
        saw: String,
    },
    /// The stream ends inside a record header.
    #[error("{name}: stream ends inside the header of record {index} at stream byte {at} ({got} of 12 bytes): the sender stopped or the file is truncated")]
    TruncatedHeader {
        /// The stream.
        name: String,
        /// 0-based record number.
        index: u64,
        /// Stream byte of the header.
        at: u64,
        /// Header bytes present.
        got: usize,
    },
    /// The stream ends inside a record's data.
    #[error("{name}: stream ends inside record {index} (stream byte {at}: {len} bytes for offset {offset}): only {got} data bytes arrived; the sender stopped or the file is truncated")]
    TruncatedData {
        /// The stream.
        name: String,
        /// 0-based record number.
        index: u64,
        /// Stream byte of the header.
        at: u64,
        /// Destination offset of the record.
        offset: u64,
        /// Declared length.
        len: u32,
        /// Data bytes present.
        got: u64,
    },
    /// A marked stream (one that starts with `BEGIN`) ends before its end-of-stream mark.
    #[error("{name}: the stream ends at stream byte {at}, before its end-of-stream mark: {items} of its {total} records and {data_bytes} of its {total_bytes} data bytes arrived; the sender stopped, the connection broke, or the file is truncated")]
    Cut {
        /// The stream.
        name: String,
        /// Stream byte where it ends.
        at: u64,
        /// Records (after `BEGIN`) that arrived.
        items: u64,
        /// Records `BEGIN` announced.
        total: u64,
        /// Data bytes that arrived.
        data_bytes: u64,
        /// Data bytes `BEGIN` announced.
        total_bytes: u64,
    },
    /// A control item (offset 2^63 or more) that is unknown, malformed, misplaced, or an
    /// end-of-stream mark the stream does not match.
    #[error("{name}: record {index} (stream byte {at}) {what}")]
    BadControl {
        /// The stream.
        name: String,
        /// 0-based item number.
        index: u64,
        /// Stream byte of its header.
        at: u64,
        /// What is wrong.
        what: String,
    },
    /// A discard record of length 0 (extended streams only): a discard always covers bytes.
    #[error("{name}: record {index} (stream byte {at}) is a discard record of length 0, which is invalid: the stream is corrupt")]
    ZeroDiscard {
        /// The stream.
        name: String,
        /// 0-based record number.
        index: u64,
        /// Stream byte of the header.
        at: u64,
    },
    /// A record lies (partly) past the end of the destination.
    #[error("{}: record {index} (stream byte {at}) {} {len} bytes at byte {offset}, past the end of the destination ({size} bytes){}; the destination is smaller than the volume the stream was made from (--allow-short-destination writes only what fits)", dest.display(), if *discard { "discards" } else { "writes" }, if *others > 0 { format!(", and {others} more records do too") } else { String::new() })]
    PastEnd {
        /// The destination.
        dest: PathBuf,
        /// 0-based record number.
        index: u64,
        /// Stream byte of the header.
        at: u64,
        /// Record offset.
        offset: u64,
        /// Record length.
        len: u32,
        /// It is a discard record.
        discard: bool,
        /// Destination size.
        size: u64,
        /// Further records past the end (known when the input was checked up front).
        others: u64,
    },
    /// The snapback file already holds data, and is no journal that could be resumed.
    #[error("{}: snapback file exists and is not empty ({size} bytes), and {why}; refusing to overwrite an earlier snapback: choose a new file name", path.display())]
    UndoExists {
        /// The snapback file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// Why it is no journal to resume.
        why: String,
    },
    /// The undo (snapback) journal was started by another apply: another tool, source or
    /// destination.
    #[error("{}: this {noun} was started by another apply ({}); refusing to use it: to finish that apply, rerun the command that started it; to undo it, apply the file (lvmsync --apply {} DESTINATION); otherwise give a new file name", path.display(), differences.join("; "), path.display())]
    UndoMismatch {
        /// The journal.
        path: PathBuf,
        /// "snapback file" or "undo file".
        noun: &'static str,
        /// What differs, one phrase each.
        differences: Vec<String>,
    },
    /// A snapback file read from a pipe has a batch too large to hold before its commit.
    #[error("{name}: snapback batch at stream byte {at} exceeds {limit} bytes (or {records} records) without a commit record; apply the file directly (--apply FILE), where the whole file is checked first")]
    JournalBatch {
        /// The stream.
        name: String,
        /// Where the batch starts.
        at: u64,
        /// The limit.
        limit: u64,
        /// The limit on records.
        records: u64,
    },
    /// An error after part of the stream was already applied.
    #[error("{cause}{}", stopped_note(*records, *bytes, *discards))]
    Stopped {
        /// What went wrong.
        cause: Box<Error>,
        /// Data records completely written before it.
        records: u64,
        /// Bytes written (or discarded) into the destination before it, as the system calls
        /// reported them (a record cut short may be partly written).
        bytes: u64,
        /// Discard records applied before it.
        discards: u64,
    },
    /// The change list does not fit the source device.
    #[error("{0}")]
    Source(#[from] snapshot::Error),
    /// The destination refused or failed.
    #[error("{0}")]
    Destination(#[from] block::Error),
    /// A read or write of an input, output or snapback file failed.
    #[error("{0}")]
    Io(#[from] IoContext),
    /// An input, destination or snapback file that must not be used: not a kind of file
    /// that can be (a FIFO where a file is needed...), or one file in two roles (the
    /// destination is the input stream...).
    #[error("{0}")]
    File(#[from] crate::io::FileError),
    /// The caller cancelled the job.
    #[error("{0}")]
    Cancelled(#[from] Cancelled),
    /// A packed digest list that is not a whole number of digests, or a malformed digest
    /// line.
    #[error("{0}")]
    Digests(String),
    /// `--from`'s destination check on a destination shorter than the round: a range it
    /// changes crosses the destination's end, so only part of it would be written, and the
    /// check (a hash of the whole range) cannot compare it; nothing was written.
    #[error("{}: the round changes bytes {offset}..{}, which cross the end of the destination ({size} bytes): the destination check cannot compare a range only partly there; nothing was written. To apply the round to a shorter destination anyway, send it with --no-destination-check", dest.display(), offset + len - 1)]
    ShortForCheck {
        /// The destination.
        dest: PathBuf,
        /// The range's start.
        offset: u64,
        /// The range's length.
        len: u64,
        /// The destination's size.
        size: u64,
    },
    /// `--from`'s destination check: ranges of the destination hold neither what the round
    /// starts from (OLDER) nor what it writes (NEWER); nothing was written.
    #[error("{}: the destination does not hold what this round starts from: {differ} of the {total} ranges it changes hold neither the older snapshot's data nor the newer one's: {}; nothing was written. Is it the right destination, holding the older snapshot's content (the previous round's result)? If an interrupted run of this same round left a range partly written, finish it with --no-destination-check", dest.display(), destcheck::describe(first, differ.saturating_sub(first.len() as u64)))]
    DestinationDiffers {
        /// The destination.
        dest: PathBuf,
        /// Ranges that differ.
        differ: u64,
        /// Ranges compared.
        total: u64,
        /// The first of them, `(offset, len)`.
        first: Vec<(u64, u64)>,
    },
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn input(name: &str, op: impl Into<String>, e: std::io::Error) -> Self {
        Error::Io(IoContext::new(Path::new(name), op, e))
    }
    /// The error itself, without a [`Error::Stopped`] wrapper.
    pub fn cause(&self) -> &Error {
        match self {
            Error::Stopped { cause, .. } => cause.cause(),
            other => other,
        }
    }
}

/// What was done before an error that stopped an apply: "; by then 3 records were complete
/// and 12288 bytes had been written".
fn stopped_note(records: u64, bytes: u64, discards: u64) -> String {
    let discards = if discards > 0 {
        format!(", and {discards} discard records applied")
    } else {
        String::new()
    };
    format!(
        "; by then {records} records were complete and {bytes} bytes had been written{discards}"
    )
}

impl Report for Error {
    fn kind(&self) -> Kind {
        match self {
            Error::Stopped { cause, .. } => cause.kind(),
            Error::Cancelled(c) => c.kind(),
            Error::Source(s) => s.kind(),
            Error::Destination(d) => d.kind(),
            Error::Io(ctx) => ctx.kind(),
            Error::File(f) => f.kind(),
            Error::Empty { .. }
            | Error::Handshake { .. }
            | Error::TruncatedHeader { .. }
            | Error::TruncatedData { .. }
            | Error::Cut { .. }
            | Error::BadControl { .. }
            | Error::ZeroDiscard { .. } => Kind::Protocol,
            Error::UndoExists { .. } | Error::UndoMismatch { .. } | Error::JournalBatch { .. } => {
                Kind::Undo
            }
            Error::PastEnd { .. }
            | Error::DestinationDiffers { .. }
            | Error::ShortForCheck { .. } => Kind::Destination,
            Error::Digests(_) => Kind::Sync,
            Error::Internal(_) => Kind::Failure,
        }
    }
    /// The whole message (with what was done before the error, for [`Error::Stopped`]); for
    /// an OS error without the OS's text; for a cancelled job just "interrupted".
    fn message(&self) -> String {
        match self {
            _ if self.is_cancelled() => Cancelled.message(),
            Error::Stopped {
                cause,
                records,
                bytes,
                discards,
            } => format!(
                "{}{}",
                cause.message(),
                stopped_note(*records, *bytes, *discards)
            ),
            Error::Source(s) => s.message(),
            Error::Destination(d) => d.message(),
            Error::Io(ctx) => ctx.message(),
            Error::File(f) => f.message(),
            other => other.to_string(),
        }
    }
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    fn enoent(path: &str, op: &str) -> IoContext {
        IoContext::new(
            Path::new(path),
            op,
            std::io::Error::from_raw_os_error(libc::ENOENT),
        )
    }

    #[test]
    fn a_stopped_apply_reports_its_cause_and_what_was_done() {
        let e = Error::Stopped {
            cause: Box::new(Error::Destination(block::Error::Io(enoent(
                "/dev/d",
                "write 4096 bytes at byte 0",
            )))),
            records: 3,
            bytes: 12288,
            discards: 1,
        };
        assert_eq!(e.kind(), Kind::Os(libc::ENOENT));
        // The OS text is left to the reporter (Ruby's SystemCallError adds it).
        assert_eq!(
            e.message(),
            "/dev/d: write 4096 bytes at byte 0; by then 3 records were complete and 12288 \
             bytes had been written, and 1 discard records applied"
        );
        assert!(e
            .to_string()
            .contains("at byte 0: No such file or directory (os error 2); by then 3"));

        let e = Error::Stopped {
            cause: Box::new(Error::TruncatedHeader {
                name: "-".into(),
                index: 4,
                at: 70,
                got: 3,
            }),
            records: 4,
            bytes: 16,
            discards: 0,
        };
        assert_eq!(e.kind(), Kind::Protocol);
        assert_eq!(e.message(), e.to_string());
        assert!(e
            .message()
            .ends_with("truncated; by then 4 records were complete and 16 bytes had been written"));
    }

    #[test]
    fn cancellation_is_one_error_wherever_it_happens() {
        for e in [
            Error::Cancelled(Cancelled),
            Error::Destination(Cancelled.into()),
            Error::Source(Cancelled.into()),
            Error::Stopped {
                cause: Box::new(Error::Destination(Cancelled.into())),
                records: 1,
                bytes: 1,
                discards: 0,
            },
        ] {
            assert!(e.is_cancelled(), "{e:?}");
            assert_eq!(e.message(), "interrupted");
        }
    }

    #[test]
    fn kinds_of_stream_errors() {
        let past = Error::PastEnd {
            dest: "/d".into(),
            index: 0,
            at: 17,
            offset: 4096,
            len: 4096,
            discard: false,
            size: 4096,
            others: 0,
        };
        assert_eq!(past.kind(), Kind::Destination);
        let undo = Error::UndoExists {
            path: "/sb".into(),
            size: 16,
            why: "it is no journal".into(),
        };
        assert_eq!(undo.kind(), Kind::Undo);
        assert_eq!(
            Error::Source(snapshot::Error::Io(enoent("/o", "open"))).message(),
            "/o: open"
        );
        assert_eq!(Error::Internal("x".into()).kind(), Kind::Failure);
        assert_eq!(Error::Digests("x".into()).kind(), Kind::Sync);
        assert_eq!(Error::Empty { name: "-".into() }.kind(), Kind::Protocol);
    }
}
