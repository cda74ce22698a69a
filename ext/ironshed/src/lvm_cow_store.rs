//! `LVM::CowStore`: a validated dm-snapshot exception store (the `-cow` device of a classic
//! snapshot) and the origin ranges it lists. Opened with `O_DIRECT` when it is a block device.

use crate::convert::{extents, readers};
use crate::errors::OrRaise;
use crate::lvm_change_set::RbChangeSet;
use ironshed_core::snapshot::{ChangeSet, ChangeSource, CowStore};
use magnus::{function, method, prelude::*, Error, RArray, Ruby};
use std::path::PathBuf;
use std::sync::Arc;

#[magnus::wrap(class = "LVM::CowStore", free_immediately, size)]
pub struct RbCowStore(CowStore, Arc<ChangeSet>);

impl RbCowStore {
    fn open(ruby: &Ruby, path: PathBuf) -> Result<Self, Error> {
        let store = CowStore::open(&path).or_raise(ruby)?;
        let set = Arc::new(store.change_set());
        Ok(RbCowStore(store, set))
    }
    fn read_mode(&self) -> Option<&'static str> {
        self.0.read_mode.map(|m| m.describe())
    }
    fn change_set(&self) -> RbChangeSet {
        RbChangeSet(Arc::clone(&self.1))
    }
    fn extents(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        extents(ruby, &rb_self.1.data)
    }
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let c = ruby
        .define_module("LVM")?
        .define_class("CowStore", ruby.class_object())?;
    c.define_singleton_method("_open", function!(RbCowStore::open, 1))?;
    readers!(c, RbCowStore; chunk_size, device_size);
    c.define_method("path", method!(|s: &RbCowStore| s.0.name.clone(), 0))?;
    c.define_method(
        "exception_count",
        method!(|s: &RbCowStore| s.0.exceptions, 0),
    )?;
    c.define_method("area_count", method!(|s: &RbCowStore| s.0.areas, 0))?;
    c.define_method(
        "chunk_count",
        method!(|s: &RbCowStore| s.0.chunks().len(), 0),
    )?;
    c.define_method("chunks", method!(|s: &RbCowStore| s.0.chunks().to_vec(), 0))?;
    c.define_method("read_mode", method!(RbCowStore::read_mode, 0))?;
    c.define_method("change_set", method!(RbCowStore::change_set, 0))?;
    c.define_method("extents", method!(RbCowStore::extents, 0))?;
    c.define_method(
        "changed_bytes",
        method!(|s: &RbCowStore| s.1.data.total_bytes(), 0),
    )?;
    c.define_method(
        "record_count",
        method!(|s: &RbCowStore, max: u64| s.1.record_count(max), 1),
    )?;
    Ok(())
}
