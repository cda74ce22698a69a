use crate::block;
use crate::error::{IoContext, Kind, Report};

/// Why a VMDK delta (or the base it should apply to) was refused.
///
/// Every variant's message names the file and, where there is one, the field or offset.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file is damaged or inconsistent: bad magic, a table pointing outside the file,
    /// overlapping grains, a malformed descriptor line...
    #[error("{file}: {msg}")]
    Format {
        /// The file at fault (as the user named it, or the extent file name).
        file: String,
        /// What is wrong and where.
        msg: String,
    },
    /// A well-formed file of a kind or version this build does not handle.
    #[error("{file}: {msg}")]
    Unsupported {
        /// The file.
        file: String,
        /// What is not supported.
        msg: String,
    },
    /// The delta does not belong to the given base (CID chain or capacity).
    #[error("{msg}")]
    BaseMismatch {
        /// Names both files and the values that differ.
        msg: String,
    },
    /// The destination refused or failed (size, busy, write error, interrupted).
    #[error("{0}")]
    Destination(#[from] block::Error),
    /// Reading an input failed.
    #[error("{0}")]
    Io(#[from] IoContext),
    /// A file that must not be used: an input that is not a regular file or block device (a
    /// FIFO would block the open), or a destination or undo file that is one of the inputs.
    #[error("{0}")]
    File(#[from] crate::io::FileError),
    /// The undo file exists already and is no journal an interrupted apply left: it may be
    /// the only way back from an earlier run.
    #[error("{}: the undo file exists and is not empty ({size} bytes), and {why}; refusing to overwrite it, it may be the only way back from an earlier run: choose a new file name", path.display())]
    UndoExists {
        /// The file.
        path: std::path::PathBuf,
        /// Its size.
        size: u64,
        /// Why it is no journal to resume.
        why: String,
    },
    /// The undo file could not be created or written.
    #[error("{0}")]
    Undo(#[from] crate::wire::Error),
    /// Options that cannot be used together: refused before the destination is opened.
    #[error("{0}")]
    Options(String),
    /// An error after the destination was partly written (or interrupted then).
    #[error("{cause}; by then {bytes} bytes of {} had been written", dest.display())]
    Stopped {
        /// What went wrong.
        cause: Box<Error>,
        /// The destination.
        dest: std::path::PathBuf,
        /// Bytes written (or discarded) into the destination before it, as the system calls
        /// reported them (a write cut short counts what it wrote).
        bytes: u64,
    },
}

impl Error {
    pub(crate) fn format(file: &str, msg: impl Into<String>) -> Self {
        Error::Format {
            file: file.to_string(),
            msg: msg.into(),
        }
    }
    pub(crate) fn unsupported(file: &str, msg: impl Into<String>) -> Self {
        Error::Unsupported {
            file: file.to_string(),
            msg: msg.into(),
        }
    }
}

impl Report for Error {
    fn kind(&self) -> Kind {
        match self {
            Error::Options(_) => Kind::Argument,
            Error::Format { .. } => Kind::VmdkFormat,
            Error::Unsupported { .. } => Kind::VmdkUnsupported,
            Error::BaseMismatch { .. } => Kind::VmdkBaseMismatch,
            Error::UndoExists { .. } => Kind::Undo,
            Error::Destination(b) => b.kind(),
            Error::Io(ctx) => ctx.kind(),
            Error::File(f) => f.kind(),
            Error::Undo(w) => w.kind(),
            Error::Stopped { cause, .. } => cause.kind(),
        }
    }
    /// The whole message (with what was written before the error, for [`Error::Stopped`]);
    /// for an OS error without the OS's text; for a cancelled job just "interrupted".
    fn message(&self) -> String {
        match self {
            _ if self.is_cancelled() => crate::Cancelled.message(),
            Error::Stopped { cause, dest, bytes } => format!(
                "{}; by then {bytes} bytes of {} had been written",
                cause.message(),
                dest.display()
            ),
            Error::Destination(b) => b.message(),
            Error::Io(ctx) => ctx.message(),
            Error::File(f) => f.message(),
            Error::Undo(w) => w.message(),
            other => other.to_string(),
        }
    }
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, Error>;
