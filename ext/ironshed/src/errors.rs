//! The one place where core errors become Ruby exceptions.
//!
//! The classes are defined in Ruby (`lib/ironshed/errors.rb`, required before this
//! extension) and looked up once, when the extension loads: a class missing there makes the
//! load fail, never a later raise. Every core error says its [`Kind`] and its message
//! ([`Report`]); this file only maps kinds to classes:
//! * [`Kind::Cancelled`] → `Interrupt`;
//! * [`Kind::Os`] → `SystemCallError.new(message, errno)` (the `Errno::` class, whose message
//!   adds the OS's text: "No such file or directory - /dev/x: open");
//! * [`Kind::Argument`] → `ArgumentError`;
//! * every other kind → its class ([`class_path`]).

use ironshed_core::error::Kind;
use ironshed_core::Report;
use magnus::{prelude::*, value::Opaque, Error, ExceptionClass, Ruby};
use std::sync::OnceLock;

/// The Ruby class of a kind that has one of its own (exhaustive: a new kind in the core does
/// not compile until it has its class here and in `lib/ironshed/errors.rb`).
fn class_path(kind: Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::Cancelled | Kind::Os(_) | Kind::Argument => return None,
        Kind::Failure => "Ironshed::Error",
        Kind::Destination => "Ironshed::DestinationError",
        Kind::Undo => "Ironshed::UndoError",
        Kind::VmdkFormat => "VMDKSync::FormatError",
        Kind::VmdkUnsupported => "VMDKSync::UnsupportedFormat",
        Kind::VmdkBaseMismatch => "VMDKSync::BaseMismatch",
        Kind::LvmMetadata => "LVM::MetadataError",
        Kind::Lvm => "LVM::Error",
        Kind::MetadataSnapshot => "LVM::MetadataSnapshotError",
        Kind::Snapshot => "LVM::SnapshotError",
        Kind::SnapshotInvalid => "LVM::InvalidSnapshot",
        Kind::ThinDelta => "LVM::ThinDeltaError",
        Kind::Protocol => "LVMSync::ProtocolError",
        Kind::Sync => "LVMSync::Error",
        Kind::InterfaceName => "Rethtool::InvalidInterfaceName",
        Kind::NamespaceName => "Rethtool::InvalidNamespaceName",
        Kind::KernelReply => "Rethtool::KernelReplyError",
        Kind::Ethtool => "Rethtool::Error",
        Kind::ZoneSource => "RootZone::SourceError",
        Kind::ZoneStructure => "RootZone::ZoneError",
        Kind::TrustAnchor => "RootZone::TrustAnchorError",
        Kind::Signature => "RootZone::SignatureError",
        Kind::SignatureExpired => "RootZone::SignatureExpired",
        Kind::UnsupportedAlgorithm => "RootZone::UnsupportedAlgorithm",
        Kind::ZoneDigest => "RootZone::DigestError",
        Kind::OpenPgp => "RootZone::OpenPGPError",
        Kind::Rollback => "RootZone::RollbackError",
        Kind::ZoneInstall => "RootZone::InstallError",
    })
}

static LOADED: OnceLock<Vec<(Kind, Opaque<ExceptionClass>)>> = OnceLock::new();

/// Looks up the class of every kind; fails (and so fails the load) if one is missing.
pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let mut loaded = Vec::new();
    for kind in Kind::ALL {
        if let Some(path) = class_path(kind) {
            let class: ExceptionClass = ruby.class_object().funcall("const_get", (path,))?;
            magnus::gc::register_mark_object(class);
            loaded.push((kind, Opaque::from(class)));
        }
    }
    let _ = LOADED.set(loaded);
    Ok(())
}

/// The Ruby exception for a core error.
pub fn raise<E: Report>(ruby: &Ruby, e: E) -> Error {
    let msg = e.message();
    match e.kind() {
        Kind::Cancelled => Error::new(ruby.exception_interrupt(), msg),
        Kind::Argument => Error::new(ruby.exception_arg_error(), msg),
        Kind::Os(errno) => ruby
            .exception_system_call_error()
            .funcall::<_, _, magnus::Exception>("new", (msg, errno))
            .map_or_else(|e| e, Error::from),
        kind => Error::new(class(ruby, kind), msg),
    }
}

fn class(ruby: &Ruby, kind: Kind) -> ExceptionClass {
    LOADED
        .get()
        .and_then(|l| l.iter().find(|(k, _)| *k == kind))
        .map_or_else(
            || ruby.exception_runtime_error(),
            |(_, c)| ruby.get_inner(*c),
        )
}

/// A Rust panic caught at the GVL boundary: reported as `Ironshed::Error`, never a crash.
pub fn panic(ruby: &Ruby, what: &str) -> Error {
    Error::new(
        class(ruby, Kind::Failure),
        format!("internal error in {what} (a bug in ironshed; please report it)"),
    )
}

/// `.or_raise(ruby)?` on a core result.
pub trait OrRaise<T> {
    /// The value, or the Ruby exception for the error.
    fn or_raise(self, ruby: &Ruby) -> Result<T, Error>;
}

impl<T, E: Report> OrRaise<T> for Result<T, E> {
    fn or_raise(self, ruby: &Ruby) -> Result<T, Error> {
        self.map_err(|e| raise(ruby, e))
    }
}
