//! Core `dns::Error` → the `RootZone::` exceptions of lib/ironshed/errors.rb, whose classes
//! are looked up once when the extension loads (a missing class fails the load).

use ironshed_core::dns::Error as E;
use magnus::{prelude::*, value::Opaque, Error, ExceptionClass, RModule, Ruby};
use std::sync::OnceLock;

/// The classes, in the order of [`NAMES`].
static CLASSES: OnceLock<Vec<Opaque<ExceptionClass>>> = OnceLock::new();

const NAMES: [&str; 11] = [
    "SourceError",
    "ZoneError",
    "TrustAnchorError",
    "SignatureError",
    "SignatureExpired",
    "UnsupportedAlgorithm",
    "DigestError",
    "OpenPGPError",
    "RollbackError",
    "InstallError",
    "Error",
];

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let m: RModule = ruby.class_object().const_get("RootZone")?;
    let list = NAMES
        .iter()
        .map(|n| m.const_get::<_, ExceptionClass>(*n).map(Opaque::from))
        .collect::<Result<Vec<_>, _>>()?;
    let _ = CLASSES.set(list);
    Ok(())
}

fn class(ruby: &Ruby, name: &str) -> ExceptionClass {
    let i = NAMES
        .iter()
        .position(|n| *n == name)
        .unwrap_or(NAMES.len() - 1);
    match CLASSES.get() {
        Some(list) => ruby.get_inner(list[i]),
        None => ruby.exception_runtime_error(),
    }
}

/// The Ruby exception for a core error.
pub fn raise(ruby: &Ruby, e: E) -> Error {
    let name = match &e {
        E::Source { .. } => "SourceError",
        E::Zone(_) => "ZoneError",
        E::TrustAnchor(_) => "TrustAnchorError",
        E::Signature(_) => "SignatureError",
        E::Expired(_) => "SignatureExpired",
        E::Unsupported(_) => "UnsupportedAlgorithm",
        E::Digest(_) => "DigestError",
        E::OpenPgp(_) => "OpenPGPError",
        E::Rollback(_) => "RollbackError",
        E::Install(_) => "InstallError",
        E::Interrupted | E::Io(_) => "Error",
    };
    match e {
        E::Interrupted => Error::new(ruby.exception_interrupt(), "interrupted"),
        E::Io(ctx) => crate::errors::raise(ruby, ctx),
        other => Error::new(class(ruby, name), other.to_string()),
    }
}
