//! `LVM::ChangeSet`: what a change source (an `LVM::CowStore`, an `LVM::ThinDelta`) says to
//! send: data ranges, and ranges that must read as zeros. `LVMSync.send_changes` sends one.
//! The source and its change sets share one copy of the ranges.

use crate::convert::extents;
use ironshed_core::snapshot::ChangeSet;
use magnus::{method, prelude::*, Error, RArray, Ruby};
use std::sync::Arc;

#[magnus::wrap(class = "LVM::ChangeSet", free_immediately, size)]
pub struct RbChangeSet(pub Arc<ChangeSet>);

impl RbChangeSet {
    fn data_extents(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        extents(ruby, &rb_self.0.data)
    }
    fn discard_extents(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        extents(ruby, &rb_self.0.discards)
    }
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let c = ruby
        .define_module("LVM")?
        .define_class("ChangeSet", ruby.class_object())?;
    c.undef_default_alloc_func();
    c.define_method("data_extents", method!(RbChangeSet::data_extents, 0))?;
    c.define_method("discard_extents", method!(RbChangeSet::discard_extents, 0))?;
    c.define_method(
        "data_bytes",
        method!(|s: &RbChangeSet| s.0.data.total_bytes(), 0),
    )?;
    c.define_method(
        "discard_bytes",
        method!(|s: &RbChangeSet| s.0.discards.total_bytes(), 0),
    )?;
    Ok(())
}
