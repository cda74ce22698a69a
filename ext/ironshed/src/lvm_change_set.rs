//! `LVM::ChangeSet`: what a change source (an `LVM::CowStore`, an `LVM::ThinDelta`) says to
//! send: data ranges, and ranges that must read as zeros. `LVMSync.send_changes` sends one.
//! The source and its change sets share one copy of the ranges. `LVM::ChangeSet.full` makes
//! the set of a whole-volume copy (`lvmsync --full`).

use crate::convert::extents;
use crate::errors::{self, OrRaise};
use crate::{gvl, lvm_thin_mapping::RbThinMapping, progress::RbProgress};
use ironshed_core::snapshot::{full, ChangeSet};
use magnus::{function, method, prelude::*, Error, RArray, Ruby};
use std::path::PathBuf;
use std::sync::Arc;

#[magnus::wrap(class = "LVM::ChangeSet", free_immediately, size)]
pub struct RbChangeSet(pub Arc<ChangeSet>);

impl RbChangeSet {
    /// `_full(source, mapping | nil, job)`: the whole-volume copy of `source`: a thin
    /// device's mapped ranges as data, or (without a mapping) its non-zero parts, read with
    /// the GVL released; the rest as discards.
    fn full(
        ruby: &Ruby,
        source: PathBuf,
        mapping: Option<&RbThinMapping>,
        job: &RbProgress,
    ) -> Result<Self, Error> {
        let (map, prog) = (mapping.map(|m| m.0.clone()), job.0.clone());
        let result = gvl::without_gvl(&job.0, move || {
            full::full_change_set(&source, map.as_ref(), &prog)
        })
        .ok_or_else(|| errors::panic(ruby, "LVM::ChangeSet.full"))?;
        Ok(RbChangeSet(Arc::new(result.or_raise(ruby)?)))
    }
    /// `with_new_part(offset, end, source)`: the set with bytes `offset...end` (an origin's
    /// part past its snapshot's end) sent as data, read from `source`, which must reach `end`.
    fn with_new_part(
        ruby: &Ruby,
        rb_self: &Self,
        offset: u64,
        end: u64,
        source: PathBuf,
    ) -> Result<Self, Error> {
        let set = rb_self.0.with_new_part_from(offset, end, &source);
        Ok(RbChangeSet(Arc::new(set.or_raise(ruby)?)))
    }
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
    c.define_singleton_method("_full", function!(RbChangeSet::full, 3))?;
    c.define_method("with_new_part", method!(RbChangeSet::with_new_part, 3))?;
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
