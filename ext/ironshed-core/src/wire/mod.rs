//! The lvmsync "PROTO[3]" wire format and what moves over it.
//!
//! * [`proto3`]: the byte format (handshake, big-endian record headers) and its decoder,
//!   with the opt-in `discards` extension (discard records, extended handshake);
//! * [`send`]: the sender loop: changed ranges of a source device → a stream, coalesced into
//!   bounded records, with discard records and digests when asked;
//! * [`apply`]: the receiver loop: a stream (or a snapback file) → a destination, bounds
//!   checked, optionally saving what it overwrites, and re-reading what it wrote (`verify`);
//! * [`digest`]: XXH3-64 range digests for `--verify` and their comparison;
//! * [`undo`]: the crash-safe snapback ("undo") writer, reusable by any tool that overwrites a
//!   destination (its files are PROTO[3] streams that `lvmsync --apply` restores).

pub mod apply;
pub mod digest;
pub mod proto3;
pub mod send;
pub mod undo;

pub use apply::{apply, read_digests, ApplyOptions, ApplyStats, Input};
pub use digest::{compare_digests, Digest, DigestReport, Mismatch, MismatchKind};
pub use proto3::{
    Decoder, Record, RecordHeader, RecordKind, DISCARD_FLAG, HANDSHAKE, HANDSHAKE_DISCARDS,
    HANDSHAKE_DISCARDS_LINE, HANDSHAKE_LINE, MAX_EXTENDED_LEN, MAX_SEND_RECORD,
};
pub use send::{send, SendOptions, SendStats};
pub use undo::{UndoLog, UndoStats};

use crate::block;
use crate::error::IoContext;
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
    /// The snapback file already holds data.
    #[error("{}: snapback file exists and is not empty ({size} bytes); refusing to overwrite an earlier snapback: choose a new file name", path.display())]
    SnapbackExists {
        /// The snapback file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The snapback file is the destination or the input.
    #[error("{}: the snapback file is the same file as the {what}", path.display())]
    SnapbackClash {
        /// The snapback file.
        path: PathBuf,
        /// "destination" or "input stream".
        what: &'static str,
    },
    /// A snapback file read from a pipe has a batch too large to hold before its commit.
    #[error("{name}: snapback batch at stream byte {at} exceeds {limit} bytes without a commit record; apply the file directly (--apply FILE), where the whole file is checked first")]
    JournalBatch {
        /// The stream.
        name: String,
        /// Where the batch starts.
        at: u64,
        /// The limit.
        limit: u64,
    },
    /// An error after part of the stream was already applied.
    #[error("{cause}; by then {records} records were complete and {bytes} bytes had been written{}", if *discards > 0 { format!(", and {discards} discard records applied") } else { String::new() })]
    Stopped {
        /// What went wrong.
        cause: Box<Error>,
        /// Data records completely written before it.
        records: u64,
        /// Bytes written before it (a record cut short may be partly written).
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
    /// The caller cancelled the job.
    #[error("interrupted")]
    Interrupted,
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
    /// True when the job was cancelled.
    pub fn is_interrupted(&self) -> bool {
        matches!(
            self.cause(),
            Error::Interrupted | Error::Destination(block::Error::Interrupted)
        )
    }
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, Error>;
