//! Error pieces shared by the domain error enums, and how every error is reported.
//!
//! Each domain has its own `thiserror` enum (`vmdk::Error`, `wire::Error`...). A front end
//! (the Ruby binding) does not look inside them: it asks [`Report::kind`] which kind of failure
//! an error is (one Ruby exception class per [`Kind`]) and [`Report::message`] for the text.

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

impl Report for IoContext {
    fn kind(&self) -> Kind {
        self.errno().map_or(Kind::Failure, Kind::Os)
    }
    fn message(&self) -> String {
        match self.errno() {
            Some(_) => format!("{}: {}", self.path.display(), self.op),
            None => self.to_string(),
        }
    }
}

/// The job was cancelled (Ctrl-C, `Thread#kill`, [`crate::Progress::cancel`]): the one
/// cancellation error of every domain, which each domain enum carries as its `Cancelled`
/// variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted")]
pub struct Cancelled;

impl Report for Cancelled {
    fn kind(&self) -> Kind {
        Kind::Cancelled
    }
    fn message(&self) -> String {
        self.to_string()
    }
}

/// What kind of failure an error is. A front end maps each kind to one error class of its
/// own (the Ruby binding: one exception class per kind, see `lib/ironshed/errors.rb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The job was cancelled ([`Cancelled`]).
    Cancelled,
    /// A system call failed with this OS error number.
    Os(i32),
    /// The caller passed an argument that cannot be used (an unknown field name...).
    Argument,
    /// Any other refusal or failure (and bugs, which say so).
    Failure,
    /// The destination cannot be used: not a file or device, busy, too small, or a record
    /// lies past its end.
    Destination,
    /// An undo file (lvmsync's snapback file) exists already, is the input or the destination,
    /// or cannot be held.
    Undo,
    /// A damaged or inconsistent VMDK delta or descriptor.
    VmdkFormat,
    /// A well-formed VMDK of a kind this version does not handle.
    VmdkUnsupported,
    /// A delta that does not belong to the given base or destination.
    VmdkBaseMismatch,
    /// LVM text metadata that cannot be parsed.
    LvmMetadata,
    /// Another LVM refusal: `lvs` could not resolve a path, no such LV, not a snapshot, a
    /// round whose snapshots do not go together.
    Lvm,
    /// A thin pool's metadata snapshot cannot be reserved or released (its status says why).
    MetadataSnapshot,
    /// An unusable snapshot exception store.
    Snapshot,
    /// An invalid (overflowed or failed) snapshot.
    SnapshotInvalid,
    /// `thin_delta` missing, failing, or printing what is not a diff.
    ThinDelta,
    /// Not a PROTO[3] stream, or a truncated or corrupt one.
    Protocol,
    /// Another failure of an lvmsync stream or its digests.
    Sync,
    /// An interface name the kernel would not look up as written.
    InterfaceName,
    /// A network namespace name that cannot name one.
    NamespaceName,
    /// A kernel reply to an ethtool command that makes no sense.
    KernelReply,
    /// Another ethtool refusal.
    Ethtool,
    /// A zone or trust anchor that cannot be read (syntax, truncated gzip, size).
    ZoneSource,
    /// Not one zone: no SOA, two SOAs, records outside it, malformed RDATA.
    ZoneStructure,
    /// The zone's DNSKEY RRset is not signed by a key of the trust anchor.
    TrustAnchor,
    /// An RRset without a valid DNSSEC signature.
    Signature,
    /// An RRset whose signatures are all outside their validity window.
    SignatureExpired,
    /// Signed only with DNSSEC algorithms this build does not verify.
    UnsupportedAlgorithm,
    /// ZONEMD missing, for another serial, or not matching the zone.
    ZoneDigest,
    /// A detached OpenPGP signature that gpgv refused.
    OpenPgp,
    /// A zone older than the installed one.
    Rollback,
    /// A tinydns instance root that cannot be used.
    ZoneInstall,
}

impl Kind {
    /// Every kind ([`Kind::Os`] as `Os(0)`), so that a front end can prepare a class for each
    /// when it starts rather than find one missing when it reports.
    pub const ALL: [Kind; 31] = [
        Kind::Cancelled,
        Kind::Os(0),
        Kind::Argument,
        Kind::Failure,
        Kind::Destination,
        Kind::Undo,
        Kind::VmdkFormat,
        Kind::VmdkUnsupported,
        Kind::VmdkBaseMismatch,
        Kind::LvmMetadata,
        Kind::Lvm,
        Kind::MetadataSnapshot,
        Kind::Snapshot,
        Kind::SnapshotInvalid,
        Kind::ThinDelta,
        Kind::Protocol,
        Kind::Sync,
        Kind::InterfaceName,
        Kind::NamespaceName,
        Kind::KernelReply,
        Kind::Ethtool,
        Kind::ZoneSource,
        Kind::ZoneStructure,
        Kind::TrustAnchor,
        Kind::Signature,
        Kind::SignatureExpired,
        Kind::UnsupportedAlgorithm,
        Kind::ZoneDigest,
        Kind::OpenPgp,
        Kind::Rollback,
        Kind::ZoneInstall,
    ];
}

/// How an error is reported: its [`Kind`] and its message.
pub trait Report: std::error::Error {
    /// The kind of failure.
    fn kind(&self) -> Kind;
    /// The message to show. For [`Kind::Os`] it leaves out the OS error's own text ("No such
    /// file or directory"), which the reporter adds from the error number (Ruby's
    /// `SystemCallError` does); otherwise it is the whole message.
    fn message(&self) -> String;
    /// True when the job was cancelled rather than refused or failed.
    fn is_cancelled(&self) -> bool {
        self.kind() == Kind::Cancelled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_once() {
        // Exhaustive: a new kind does not compile until it has a number here.
        fn number(k: Kind) -> usize {
            match k {
                Kind::Cancelled => 0,
                Kind::Os(_) => 1,
                Kind::Argument => 2,
                Kind::Failure => 3,
                Kind::Destination => 4,
                Kind::Undo => 5,
                Kind::VmdkFormat => 6,
                Kind::VmdkUnsupported => 7,
                Kind::VmdkBaseMismatch => 8,
                Kind::LvmMetadata => 9,
                Kind::Snapshot => 10,
                Kind::SnapshotInvalid => 11,
                Kind::ThinDelta => 12,
                Kind::Protocol => 13,
                Kind::Sync => 14,
                Kind::InterfaceName => 15,
                Kind::NamespaceName => 16,
                Kind::KernelReply => 17,
                Kind::Ethtool => 18,
                Kind::Lvm => 19,
                Kind::MetadataSnapshot => 20,
                Kind::ZoneSource => 21,
                Kind::ZoneStructure => 22,
                Kind::TrustAnchor => 23,
                Kind::Signature => 24,
                Kind::SignatureExpired => 25,
                Kind::UnsupportedAlgorithm => 26,
                Kind::ZoneDigest => 27,
                Kind::OpenPgp => 28,
                Kind::Rollback => 29,
                Kind::ZoneInstall => 30,
            }
        }
        let mut seen: Vec<usize> = Kind::ALL.iter().map(|&k| number(k)).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..Kind::ALL.len()).collect::<Vec<_>>());
    }

    #[test]
    fn io_context_reports_the_errno_and_a_message_without_the_os_text() {
        let e = IoContext::new(
            Path::new("/dev/x"),
            "open",
            io::Error::from_raw_os_error(libc::ENOENT),
        );
        assert_eq!(e.kind(), Kind::Os(libc::ENOENT));
        assert_eq!(e.message(), "/dev/x: open");
        assert!(e.to_string().starts_with("/dev/x: open: No such file"));
        let e = IoContext::new(Path::new("f"), "read", io::Error::other("short read"));
        assert_eq!(e.kind(), Kind::Failure);
        assert_eq!(e.message(), "f: read: short read");
        assert!(Cancelled.is_cancelled() && !e.is_cancelled());
        assert_eq!(Cancelled.message(), "interrupted");
    }
}
