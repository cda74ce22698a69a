use crate::error::{Cancelled, IoContext, Kind, Report};

/// Why a zone was refused or could not be installed.
///
/// Every message names what failed: the file and line for syntax, the RRset, key tag and
/// algorithm for a signature, the digest for ZONEMD, both serials for a rollback.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The zone or trust-anchor text cannot be read: a syntax error (with line and column),
    /// a truncated gzip stream, an empty or oversized input.
    #[error("{file}: {msg}")]
    Source {
        /// The input as the user named it.
        file: String,
        /// What is wrong and where.
        msg: String,
    },
    /// The zone's structure is wrong: no SOA, two different SOAs, records outside the zone,
    /// a class other than IN, malformed RDATA.
    #[error("{0}")]
    Zone(String),
    /// The apex DNSKEY RRset is not signed by a key matching the trust anchor.
    #[error("{0}")]
    TrustAnchor(String),
    /// An RRset has no valid signature: none at all, a signature that does not verify, or one
    /// by a key that is not in the zone's DNSKEY RRset.
    #[error("{0}")]
    Signature(String),
    /// An RRset's only signatures are outside their validity window (expired, or not valid
    /// yet).
    #[error("{0}")]
    Expired(String),
    /// An RRset (or the trust anchor) is signed only with algorithms this build cannot check.
    #[error("{0}")]
    Unsupported(String),
    /// ZONEMD is missing, was made for another serial, or does not match the zone.
    #[error("{0}")]
    Digest(String),
    /// The detached OpenPGP signature was refused by gpgv.
    #[error("{0}")]
    OpenPgp(String),
    /// The zone's serial is older than the installed one.
    #[error("{0}")]
    Rollback(String),
    /// The tinydns instance root cannot be used (not a directory, another update holds it).
    #[error("{0}")]
    Install(String),
    /// A system call failed (reading the zone, writing data.cdb...).
    #[error("{0}")]
    Io(#[from] IoContext),
    /// The caller cancelled the job (Ctrl-C).
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
}

impl Report for Error {
    fn kind(&self) -> Kind {
        match self {
            Error::Source { .. } => Kind::ZoneSource,
            Error::Zone(_) => Kind::ZoneStructure,
            Error::TrustAnchor(_) => Kind::TrustAnchor,
            Error::Signature(_) => Kind::Signature,
            Error::Expired(_) => Kind::SignatureExpired,
            Error::Unsupported(_) => Kind::UnsupportedAlgorithm,
            Error::Digest(_) => Kind::ZoneDigest,
            Error::OpenPgp(_) => Kind::OpenPgp,
            Error::Rollback(_) => Kind::Rollback,
            Error::Install(_) => Kind::ZoneInstall,
            Error::Io(ctx) => ctx.kind(),
            Error::Cancelled(c) => c.kind(),
        }
    }
    fn message(&self) -> String {
        match self {
            Error::Io(ctx) => ctx.message(),
            other => other.to_string(),
        }
    }
}

impl Error {
    pub(crate) fn source(file: &str, msg: impl Into<String>) -> Self {
        Error::Source {
            file: file.to_string(),
            msg: msg.into(),
        }
    }

    /// True for the refusals that mean "this zone is not proven complete and authentic".
    pub fn is_verification(&self) -> bool {
        matches!(
            self,
            Error::Zone(_)
                | Error::TrustAnchor(_)
                | Error::Signature(_)
                | Error::Expired(_)
                | Error::Unsupported(_)
                | Error::Digest(_)
                | Error::OpenPgp(_)
        )
    }
}
