//! Error pieces shared by the domain error enums.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// An I/O failure with the file and the operation it happened in, so that a message can say
/// "vm-000001-delta.vmdk: read at byte 8192: Input/output error" rather than a bare errno.
#[derive(Debug)]
pub struct IoContext {
    /// The file or device involved.
    pub path: PathBuf,
    /// What was being done, for the message ("open", "read at byte 8192", ...).
    pub op: String,
    /// The underlying error; its `raw_os_error` becomes the Ruby `Errno::` class.
    pub source: io::Error,
}

impl IoContext {
    /// Wraps `source` with the path and the operation that failed.
    pub fn new(path: &Path, op: impl Into<String>, source: io::Error) -> Self {
        IoContext {
            path: path.to_path_buf(),
            op: op.into(),
            source,
        }
    }

    /// The OS error number, when there is one.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

impl fmt::Display for IoContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.path.display(), self.op, self.source)
    }
}

impl std::error::Error for IoContext {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
