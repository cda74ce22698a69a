//! `RootZone::Installed`: what a tinydns instance root holds (for check_rootzone and the
//! rollback check), and `RootZone.serial_diff`.

use crate::convert::readers;
use crate::errors::OrRaise;
use ironshed_core::dns::install::{self, Installed};
use ironshed_core::dns::time;
use magnus::{function, method, prelude::*, Error, Ruby};
use std::path::PathBuf;

#[magnus::wrap(class = "RootZone::Installed", free_immediately, size)]
pub struct RbInstalled(Installed);

impl RbInstalled {
    fn read(ruby: &Ruby, dir: PathBuf) -> Result<Self, Error> {
        install::installed(&dir).map(RbInstalled).or_raise(ruby)
    }
    /// Seconds since 1970 (lib/rootzone.rb's `#cdb_mtime` makes it a Time).
    fn cdb_mtime_epoch(&self) -> Option<i64> {
        self.0.cdb_mtime
    }
    /// Seconds since 1970 (lib/rootzone.rb's `#valid_until` makes it a Time).
    fn valid_until_epoch(&self) -> Option<i64> {
        self.0.valid_until
    }
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let m = ruby.define_module("RootZone")?;
    // How far serial `b` is ahead of `a` (RFC 1982).
    m.define_module_function("serial_diff", function!(time::serial_diff, 2))?;
    let c = m.define_class("Installed", ruby.class_object())?;
    c.define_singleton_method("read", function!(RbInstalled::read, 1))?;
    readers!(c, RbInstalled; serial, valid_until_rrset, notes);
    c.define_method("cdb_mtime_epoch", method!(RbInstalled::cdb_mtime_epoch, 0))?;
    c.define_method(
        "valid_until_epoch",
        method!(RbInstalled::valid_until_epoch, 0),
    )?;
    Ok(())
}
