//! `LVM::CowStore`: a validated dm-snapshot exception store (the `-cow` device of a classic
//! snapshot) and the origin ranges it lists. Opened with `O_DIRECT` when it is a block device.

use crate::errors;
use ironshed_core::io::SourceDevice;
use ironshed_core::snapshot::{Changes, CowStore};
use magnus::{function, method, prelude::*, Error, RArray, Ruby};
use std::path::PathBuf;

#[magnus::wrap(class = "LVM::CowStore", free_immediately, size)]
pub struct RbCowStore {
    pub store: CowStore,
    pub changes: Changes,
    read_mode: &'static str,
}

impl RbCowStore {
    fn open(ruby: &Ruby, path: PathBuf) -> Result<Self, Error> {
        let dev = SourceDevice::open(&path)
            .map_err(|e| errors::snapshot(ruby, ironshed_core::snapshot::Error::Io(e)))?;
        let store = CowStore::read(&dev, &path.display().to_string())
            .map_err(|e| errors::snapshot(ruby, e))?;
        let changes = store.changes();
        Ok(RbCowStore {
            store,
            changes,
            read_mode: dev.mode().describe(),
        })
    }
    fn path(&self) -> String {
        self.store.name.clone()
    }
    fn chunk_size(&self) -> u64 {
        self.store.chunk_size
    }
    fn device_size(&self) -> u64 {
        self.store.device_size
    }
    fn exception_count(&self) -> u64 {
        self.store.exceptions
    }
    fn area_count(&self) -> u64 {
        self.store.areas
    }
    fn chunk_count(&self) -> usize {
        self.store.chunks().len()
    }
    fn changed_bytes(&self) -> u64 {
        self.changes.total_bytes()
    }
    fn read_mode(&self) -> &'static str {
        self.read_mode
    }
    fn record_count(&self, max: u64) -> u64 {
        self.changes.piece_count(max)
    }
    fn extents(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        extents(ruby, &rb_self.changes)
    }
    fn chunks(&self) -> Vec<u64> {
        self.store.chunks().to_vec()
    }
}

/// `[[offset, length], ...]` of coalesced ranges (the form every change source's `#extents`
/// returns).
pub fn extents(ruby: &Ruby, c: &Changes) -> Result<RArray, Error> {
    let r = c.ranges();
    let out = ruby.ary_new_capa(r.len());
    for x in r {
        out.push(ruby.ary_new_from_values(&[
            ruby.integer_from_u64(x.offset),
            ruby.integer_from_u64(x.len),
        ]))?;
    }
    Ok(out)
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let m = ruby.define_module("LVM")?;
    let c = m.define_class("CowStore", ruby.class_object())?;
    c.define_singleton_method("_open", function!(RbCowStore::open, 1))?;
    c.define_method("path", method!(RbCowStore::path, 0))?;
    c.define_method("chunk_size", method!(RbCowStore::chunk_size, 0))?;
    c.define_method("device_size", method!(RbCowStore::device_size, 0))?;
    c.define_method("exception_count", method!(RbCowStore::exception_count, 0))?;
    c.define_method("area_count", method!(RbCowStore::area_count, 0))?;
    c.define_method("chunk_count", method!(RbCowStore::chunk_count, 0))?;
    c.define_method("changed_bytes", method!(RbCowStore::changed_bytes, 0))?;
    c.define_method("read_mode", method!(RbCowStore::read_mode, 0))?;
    c.define_method("record_count", method!(RbCowStore::record_count, 1))?;
    c.define_method("extents", method!(RbCowStore::extents, 0))?;
    c.define_method("chunks", method!(RbCowStore::chunks, 0))?;
    Ok(())
}
