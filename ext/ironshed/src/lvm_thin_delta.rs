//! `LVM::ThinDelta`: what changed between two thin devices of a pool, as `thin_delta`
//! reported it (parsed as a stream, natively). `LVM::ThinPool` (lib/lvm/thin_pool.rb) reserves
//! and releases the pool's metadata snapshot around [`RbThinDelta::run`].

use crate::convert::{extents, hash, kwargs, readers, Kwargs};
use crate::errors::{self, OrRaise};
use crate::lvm_change_set::RbChangeSet;
use crate::{gvl, progress::RbProgress};
use ironshed_core::snapshot::thin::{self, ThinDelta, ThinDeltaCommand};
use ironshed_core::snapshot::ChangeSource;
use magnus::scan_args::scan_args;
use magnus::{function, method, prelude::*, Error, RArray, RHash, RString, Ruby, Value};
use std::path::PathBuf;
use std::sync::Arc;

#[magnus::wrap(class = "LVM::ThinDelta", free_immediately, size)]
pub struct RbThinDelta(ThinDelta, Option<String>);

kwargs!(ThinDeltaCommand {
    thin_delta => program,
    metadata_snap
});

impl RbThinDelta {
    /// `_run(metadata, left, right, job, **ThinDeltaCommand)`: runs thin_delta (GVL released;
    /// Ctrl-C or Thread#kill kills it) and parses its output as it arrives.
    fn run(ruby: &Ruby, args: &[Value]) -> Result<Self, Error> {
        let a = scan_args::<(PathBuf, u64, u64, &RbProgress), (), (), (), RHash, ()>(args)?;
        let (metadata, left, right, job) = a.required;
        let mut cmd = ThinDeltaCommand::new(metadata, left, right);
        cmd.set_from(ruby, a.keywords)?;
        let (prog, c2) = (job.0.clone(), cmd.clone());
        let result = gvl::without_gvl(&job.0, move || thin::run_thin_delta(&c2, &prog))
            .ok_or_else(|| errors::panic(ruby, "LVM::ThinDelta.run"))?;
        Ok(RbThinDelta(result.or_raise(ruby)?, Some(cmd.display())))
    }
    /// `_parse(xml, name)`: thin_delta's output held in a String.
    fn parse(ruby: &Ruby, xml: RString, name: String) -> Result<Self, Error> {
        // SAFETY: the bytes are copied out before any Ruby call.
        let bytes = unsafe { xml.as_slice() }.to_vec();
        let d = thin::parse(&bytes[..], &name).or_raise(ruby)?;
        Ok(RbThinDelta(d, None))
    }
    /// A copy of the ranges: the delta keeps its own (`changed_extents`...).
    fn change_set(&self) -> RbChangeSet {
        RbChangeSet(Arc::new(self.0.change_set()))
    }
    fn changed_extents(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        extents(ruby, &rb_self.0.changed)
    }
    fn unmapped_extents(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        extents(ruby, &rb_self.0.unmapped)
    }
    fn all_extents(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        extents(ruby, &rb_self.0.change_set().all())
    }
    fn block_counts(ruby: &Ruby, rb_self: &Self) -> Result<RHash, Error> {
        let d = &rb_self.0;
        Ok(
            hash!(ruby, d; ; same = d.same_blocks, different = d.different_blocks,
            right_only = d.right_only_blocks, left_only = d.left_only_blocks),
        )
    }
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let c = ruby
        .define_module("LVM")?
        .define_class("ThinDelta", ruby.class_object())?;
    c.define_singleton_method("_run", function!(RbThinDelta::run, -1))?;
    c.define_singleton_method("_parse", function!(RbThinDelta::parse, 2))?;
    readers!(c, RbThinDelta; block_size, left, right);
    c.define_method("command", method!(|s: &RbThinDelta| s.1.clone(), 0))?;
    c.define_method("change_set", method!(RbThinDelta::change_set, 0))?;
    c.define_method("changed_extents", method!(RbThinDelta::changed_extents, 0))?;
    c.define_method(
        "unmapped_extents",
        method!(RbThinDelta::unmapped_extents, 0),
    )?;
    c.define_method("extents", method!(RbThinDelta::all_extents, 0))?;
    c.define_method(
        "changed_bytes",
        method!(|s: &RbThinDelta| s.0.changed.total_bytes(), 0),
    )?;
    c.define_method(
        "unmapped_bytes",
        method!(|s: &RbThinDelta| s.0.unmapped.total_bytes(), 0),
    )?;
    c.define_method("block_counts", method!(RbThinDelta::block_counts, 0))?;
    c.define_method(
        "record_count",
        method!(
            |s: &RbThinDelta, max: u64| s.0.change_set().record_count(max),
            1
        ),
    )?;
    Ok(())
}
