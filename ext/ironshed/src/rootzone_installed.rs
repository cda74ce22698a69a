//! `RootZone::Installed`: what a tinydns instance root holds (for check_rootzone and the
//! rollback check).

use crate::rootzone_errors::raise;
use ironshed_core::dns::install::{self, Installed};
use magnus::{function, method, prelude::*, Error, Ruby};
use std::path::PathBuf;

#[magnus::wrap(class = "RootZone::Installed", free_immediately, size)]
pub struct RbInstalled(Installed);

impl RbInstalled {
    fn read(ruby: &Ruby, dir: PathBuf) -> Result<Self, Error> {
        install::installed(&dir)
            .map(RbInstalled)
            .map_err(|e| raise(ruby, e))
    }
    fn serial(&self) -> Option<u32> {
        self.0.serial
    }
    fn cdb_mtime_epoch(&self) -> Option<i64> {
        self.0.cdb_mtime
    }
    fn valid_until_epoch(&self) -> Option<i64> {
        self.0.valid_until
    }
    fn valid_until_rrset(&self) -> Option<String> {
        self.0.valid_until_rrset.clone()
    }
    fn notes(&self) -> Vec<String> {
        self.0.notes.clone()
    }
}

/// `RootZone.serial_diff(a, b)`: how far serial `b` is ahead of `a` (RFC 1982).
fn serial_diff(a: u32, b: u32) -> i64 {
    ironshed_core::dns::time::serial_diff(a, b)
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let m = ruby.define_module("RootZone")?;
    m.define_module_function("serial_diff", function!(serial_diff, 2))?;
    let c = m.define_class("Installed", ruby.class_object())?;
    c.define_singleton_method("read", function!(RbInstalled::read, 1))?;
    c.define_method("serial", method!(RbInstalled::serial, 0))?;
    c.define_method("cdb_mtime_epoch", method!(RbInstalled::cdb_mtime_epoch, 0))?;
    c.define_method(
        "valid_until_epoch",
        method!(RbInstalled::valid_until_epoch, 0),
    )?;
    c.define_method(
        "valid_until_rrset",
        method!(RbInstalled::valid_until_rrset, 0),
    )?;
    c.define_method("notes", method!(RbInstalled::notes, 0))?;
    Ok(())
}
