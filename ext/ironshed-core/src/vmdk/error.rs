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
            Error::Format { .. } => Kind::VmdkFormat,
            Error::Unsupported { .. } => Kind::VmdkUnsupported,
            Error::BaseMismatch { .. } => Kind::VmdkBaseMismatch,
            Error::UndoExists { .. } => Kind::Undo,
            Error::Destination(b) => b.kind(),
            Error::Io(ctx) => ctx.kind(),
            Error::Undo(w) => w.kind(),
        }
    }
    fn message(&self) -> String {
        match self {
            Error::Destination(b) => b.message(),
            Error::Io(ctx) => ctx.message(),
            Error::Undo(w) => w.message(),
            other => other.to_string(),
        }
    }
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, Error>;
