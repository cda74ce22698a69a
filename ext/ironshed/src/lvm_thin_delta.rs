//! `LVM::ThinDelta`: what changed between two thin devices of a pool, as `thin_delta`
//! reported it (parsed as a stream, natively). `LVM::ThinPool` (lib/lvm/thin_pool.rb) reserves
//! and releases the pool's metadata snapshot around [`RbThinDelta::run`].

use crate::lvm_cow_store::extents;
use crate::{errors, gvl, progress::RbProgress};
use ironshed_core::snapshot::thin::{self, ThinDelta, ThinDeltaCommand};
use ironshed_core::snapshot::Changes;
use magnus::{function, method, prelude::*, Error, RArray, RString, Ruby};
use std::path::PathBuf;

#[magnus::wrap(class = "LVM::ThinDelta", free_immediately, size)]
pub struct RbThinDelta {
    pub delta: ThinDelta,
    command: Option<String>,
}

impl RbThinDelta {
    /// Runs thin_delta (GVL released; Ctrl-C or Thread#kill kills it) and parses its output.
    fn run(
        ruby: &Ruby,
        program: String,
        metadata: PathBuf,
        left: u64,
        right: u64,
        metadata_snap: bool,
        progress: &RbProgress,
    ) -> Result<Self, Error> {
        let cmd = ThinDeltaCommand {
            program,
            metadata,
            left,
            right,
            metadata_snap,
        };
        let prog = progress.0.clone();
        let c2 = cmd.clone();
        let result = gvl::without_gvl(&progress.0, move || thin::run_thin_delta(&c2, &prog))
            .ok_or_else(|| errors::panic(ruby, "LVM::ThinDelta.run"))?;
        let delta = result.map_err(|e| errors::snapshot(ruby, e))?;
        Ok(RbThinDelta {
            delta,
            command: Some(cmd.display()),
        })
    }

    /// Parses thin_delta XML held in a String.
    fn parse(ruby: &Ruby, xml: RString, name: String) -> Result<Self, Error> {
        // SAFETY: the bytes are copied out before any Ruby call.
        let bytes = unsafe { xml.as_slice() }.to_vec();
        let delta = thin::parse(&bytes[..], &name).map_err(|e| errors::snapshot(ruby, e))?;
        Ok(RbThinDelta {
            delta,
            command: None,
        })
    }

    fn command(&self) -> Option<String> {
        self.command.clone()
    }
    fn block_size(&self) -> u64 {
        self.delta.block_size
    }
    fn left(&self) -> u64 {
        self.delta.left
    }
    fn right(&self) -> u64 {
        self.delta.right
    }
    fn changed_extents(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        extents(ruby, &rb_self.delta.changed)
    }
    fn unmapped_extents(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        extents(ruby, &rb_self.delta.unmapped)
    }
    fn changed_bytes(&self) -> u64 {
        self.delta.changed.total_bytes()
    }
    fn unmapped_bytes(&self) -> u64 {
        self.delta.unmapped.total_bytes()
    }
    fn block_counts(ruby: &Ruby, rb_self: &Self) -> Result<magnus::RHash, Error> {
        let h = ruby.hash_new();
        let d = &rb_self.delta;
        h.aset(ruby.to_symbol("same"), d.same_blocks)?;
        h.aset(ruby.to_symbol("different"), d.different_blocks)?;
        h.aset(ruby.to_symbol("right_only"), d.right_only_blocks)?;
        h.aset(ruby.to_symbol("left_only"), d.left_only_blocks)?;
        Ok(h)
    }
    /// Records of at most `max` bytes a send would need (data and unmapped ranges).
    fn record_count(&self, max: u64) -> u64 {
        self.delta.changed.piece_count(max) + self.delta.unmapped.piece_count(max)
    }
    /// Every range that differs (changed ∪ unmapped), coalesced.
    pub fn all_changes(&self) -> Changes {
        let mut v = self.delta.changed.ranges().to_vec();
        v.extend_from_slice(self.delta.unmapped.ranges());
        Changes::from_ranges(v)
    }
    fn all_extents(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        extents(ruby, &rb_self.all_changes())
    }
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let m = ruby.define_module("LVM")?;
    let c = m.define_class("ThinDelta", ruby.class_object())?;
    c.define_singleton_method("_run", function!(RbThinDelta::run, 6))?;
    c.define_singleton_method("_parse", function!(RbThinDelta::parse, 2))?;
    c.define_method("command", method!(RbThinDelta::command, 0))?;
    c.define_method("block_size", method!(RbThinDelta::block_size, 0))?;
    c.define_method("left", method!(RbThinDelta::left, 0))?;
    c.define_method("right", method!(RbThinDelta::right, 0))?;
    c.define_method("changed_extents", method!(RbThinDelta::changed_extents, 0))?;
    c.define_method(
        "unmapped_extents",
        method!(RbThinDelta::unmapped_extents, 0),
    )?;
    c.define_method("extents", method!(RbThinDelta::all_extents, 0))?;
    c.define_method("changed_bytes", method!(RbThinDelta::changed_bytes, 0))?;
    c.define_method("unmapped_bytes", method!(RbThinDelta::unmapped_bytes, 0))?;
    c.define_method("block_counts", method!(RbThinDelta::block_counts, 0))?;
    c.define_method("record_count", method!(RbThinDelta::record_count, 1))?;
    Ok(())
}
