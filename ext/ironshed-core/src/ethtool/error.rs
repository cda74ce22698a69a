//! Why an ethtool query was refused or failed.

use crate::error::{Kind, Report};
use std::io;

/// Errors of the ethtool domain.
///
/// System call failures keep their errno ([`Error::errno`]) so that the Ruby binding can raise
/// the matching `Errno::` class; every message names the interface (or namespace) and the
/// operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The interface name cannot name a network device (empty, 16 bytes or more, or containing
    /// a character the kernel would cut the name at). Refused before any system call, because
    /// the kernel would silently query a different interface.
    #[error("{name:?}: invalid interface name: {reason}")]
    InvalidName {
        /// The name as given (lossy UTF-8).
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The namespace reference cannot name a network namespace (e.g. a name with a `/`).
    #[error("{ns:?}: invalid network namespace name: {reason}")]
    InvalidNetns {
        /// The name as given.
        ns: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An ioctl on an interface failed (`Errno` kept in `source`).
    #[error("{iface}: {op}: {source}")]
    Ioctl {
        /// The interface.
        iface: String,
        /// The operation, e.g. "get ring parameters (ETHTOOL_GRINGPARAM)".
        op: String,
        /// The OS error.
        source: io::Error,
    },
    /// Entering a network namespace or opening the socket failed.
    #[error("{what}: {op}: {source}")]
    System {
        /// What was involved: "network namespace blue (/var/run/netns/blue)", "socket".
        what: String,
        /// The operation, e.g. "open", "setns".
        op: String,
        /// The OS error.
        source: io::Error,
    },
    /// The kernel's reply did not make sense (a count that keeps changing, an nwords
    /// handshake that never settles, a buffer shorter than the reply claims).
    #[error("{iface}: {op}: {msg}")]
    Kernel {
        /// The interface.
        iface: String,
        /// The operation.
        op: String,
        /// What was wrong with the reply.
        msg: String,
    },
    /// A field name that is not one of a structure's settable fields.
    #[error("cannot set {name} (settable: {})", settable.join(", "))]
    Field {
        /// The name given.
        name: String,
        /// The fields that can be set.
        settable: &'static [&'static str],
    },
    /// The interface is not listed in the namespace's `/proc/net/dev`.
    #[error("{iface}: read interface counters (/proc/net/dev): no such device")]
    NoCounters {
        /// The interface.
        iface: String,
    },
}

impl Error {
    /// The OS error number behind this error, if it is a failed system call.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Ioctl { source, .. } | Error::System { source, .. } => source.raw_os_error(),
            Error::NoCounters { .. } => Some(libc::ENODEV),
            _ => None,
        }
    }

    pub(crate) fn kernel(iface: &str, op: &str, msg: impl Into<String>) -> Self {
        Error::Kernel {
            iface: iface.to_string(),
            op: op.to_string(),
            msg: msg.into(),
        }
    }
}

impl Report for Error {
    fn kind(&self) -> Kind {
        match self {
            Error::InvalidName { .. } => Kind::InterfaceName,
            Error::InvalidNetns { .. } => Kind::NamespaceName,
            Error::Kernel { .. } => Kind::KernelReply,
            Error::Field { .. } => Kind::Argument,
            other => other.errno().map_or(Kind::Ethtool, Kind::Os),
        }
    }
    /// For a failed system call, without the OS error's own text: "eth0: get ring
    /// parameters (ETHTOOL_GRINGPARAM)" (Ruby's `SystemCallError` adds "Operation not
    /// supported - " itself).
    fn message(&self) -> String {
        match self {
            Error::Ioctl { iface, op, .. } if self.errno().is_some() => format!("{iface}: {op}"),
            Error::System { what, op, .. } if self.errno().is_some() => format!("{what}: {op}"),
            Error::NoCounters { iface } => {
                format!("{iface}: read interface counters (/proc/net/dev)")
            }
            other => other.to_string(),
        }
    }
}

impl From<super::codec::FieldError> for Error {
    fn from(e: super::codec::FieldError) -> Self {
        Error::Field {
            name: e.name,
            settable: e.settable,
        }
    }
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, Error>;

/// A failed decode of a kernel buffer: what was being decoded and why it does not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {msg}")]
pub struct DecodeError {
    /// The structure, e.g. "ethtool_link_settings".
    pub what: &'static str,
    /// What is wrong, with the sizes involved.
    pub msg: String,
}

impl DecodeError {
    pub(crate) fn new(what: &'static str, msg: impl Into<String>) -> Self {
        DecodeError {
            what,
            msg: msg.into(),
        }
    }
    pub(crate) fn short(what: &'static str, need: usize, got: usize) -> Self {
        DecodeError::new(
            what,
            format!("buffer of {got} bytes is shorter than the {need} bytes needed"),
        )
    }
}
