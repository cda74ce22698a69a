//! `LVM::ThinMapping`: the blocks one thin device maps, as `thin_dump` lists them (parsed as a
//! stream, natively). `LVM::ThinPool` (lib/lvm/thin_pool.rb) reserves and releases the pool's
//! metadata snapshot around [`RbThinMapping::run`]; `LVM::ChangeSet.full` makes the
//! whole-volume copy of it.

use crate::convert::{extents, kwargs, readers, Kwargs};
use crate::errors::{self, OrRaise};
use crate::{gvl, progress::RbProgress};
use ironshed_core::snapshot::full::{self, ThinDumpCommand, ThinMapping};
use magnus::scan_args::scan_args;
use magnus::{function, method, prelude::*, Error, RArray, RHash, RString, Ruby, Value};
use std::path::PathBuf;

#[magnus::wrap(class = "LVM::ThinMapping", free_immediately, size)]
pub struct RbThinMapping(pub ThinMapping, Option<String>);

kwargs!(ThinDumpCommand {
    thin_dump => program,
    metadata_snap
});

impl RbThinMapping {
    /// `_run(metadata, dev_id, job, **ThinDumpCommand)`: runs thin_dump (GVL released;
    /// Ctrl-C or Thread#kill kills it) and parses its output as it arrives.
    fn run(ruby: &Ruby, args: &[Value]) -> Result<Self, Error> {
        let a = scan_args::<(PathBuf, u64, &RbProgress), (), (), (), RHash, ()>(args)?;
        let (metadata, dev_id, job) = a.required;
        let mut cmd = ThinDumpCommand::new(metadata, dev_id);
        cmd.set_from(ruby, a.keywords)?;
        let (prog, c2) = (job.0.clone(), cmd.clone());
        let result = gvl::without_gvl(&job.0, move || full::run_thin_dump(&c2, &prog))
            .ok_or_else(|| errors::panic(ruby, "LVM::ThinMapping.run"))?;
        Ok(RbThinMapping(result.or_raise(ruby)?, Some(cmd.display())))
    }
    /// `_parse(xml, name, dev_id)`: thin_dump's output held in a String.
    fn parse(ruby: &Ruby, xml: RString, name: String, dev_id: u64) -> Result<Self, Error> {
        // SAFETY: the bytes are copied out before any Ruby call.
        let bytes = unsafe { xml.as_slice() }.to_vec();
        let m = full::parse_thin_dump(&bytes[..], &name, dev_id).or_raise(ruby)?;
        Ok(RbThinMapping(m, None))
    }
    fn mapped_extents(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        extents(ruby, &rb_self.0.mapped)
    }
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let c = ruby
        .define_module("LVM")?
        .define_class("ThinMapping", ruby.class_object())?;
    c.define_singleton_method("_run", function!(RbThinMapping::run, -1))?;
    c.define_singleton_method("_parse", function!(RbThinMapping::parse, 3))?;
    readers!(c, RbThinMapping; block_size, dev_id, mapped_blocks);
    c.define_method("command", method!(|s: &RbThinMapping| s.1.clone(), 0))?;
    c.define_method("mapped_extents", method!(RbThinMapping::mapped_extents, 0))?;
    c.define_method(
        "mapped_bytes",
        method!(|s: &RbThinMapping| s.0.mapped.total_bytes(), 0),
    )?;
    Ok(())
}
