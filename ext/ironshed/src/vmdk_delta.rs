//! `VMDKSync::Delta`: a validated delta, its geometry and changed extents, and the native
//! apply and verify. lib/vmdksync.rb documents the options and adds timing and progress.

use crate::convert::{hash, kwargs, options, readers, Kwargs};
use crate::errors::{self, OrRaise};
use crate::{gvl, progress::RbProgress};
use ironshed_core::vmdk::{ApplyOptions, ApplyStats, Delta, OpenOptions};
use magnus::scan_args::scan_args;
use magnus::{function, method, prelude::*, Error, RArray, RHash, Ruby, Symbol, Value};
use std::path::PathBuf;

#[magnus::wrap(class = "VMDKSync::Delta", free_immediately, size)]
pub struct RbDelta(Delta);

kwargs!(OpenOptions {
    base,
    allow_unclean,
    check_redundant,
    no_parent_check,
    full,
    inflate_once
});
kwargs!(ApplyOptions {
    allow_larger_destination,
    discard_zeros,
    undo
});

fn stats(ruby: &Ruby, s: ApplyStats) -> Result<RHash, Error> {
    Ok(
        hash!(ruby, s; grains, bytes, extents, writes, discarded, inflated, undo_bytes,
        undo_earlier_bytes, undo_zero_bytes;
        undo_state = s.undo_state.map(|u| u.as_str())),
    )
}

impl RbDelta {
    /// `_open(path, **OpenOptions)`
    fn open(ruby: &Ruby, args: &[Value]) -> Result<Self, Error> {
        let a = scan_args::<(PathBuf,), (), (), (), RHash, ()>(args)?;
        let opts: OpenOptions = options(ruby, a.keywords)?;
        Delta::open(&a.required.0, &opts)
            .map(RbDelta)
            .or_raise(ruby)
    }
    fn format(ruby: &Ruby, rb_self: &Self) -> Symbol {
        ruby.to_symbol(rb_self.0.format.key())
    }
    fn format_description(&self) -> &'static str {
        self.0.format.describe()
    }
    fn changed_bytes(&self) -> u64 {
        self.0.changed_bytes()
    }
    fn extents(ruby: &Ruby, rb_self: &Self) -> Result<Vec<(u64, u64)>, Error> {
        rb_self.0.extents().or_raise(ruby)
    }
    fn base_verified(&self) -> Option<PathBuf> {
        self.0.base.verified().map(PathBuf::from)
    }
    fn base_note(&self) -> Option<String> {
        self.0.base.note().map(String::from)
    }
    fn layers(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        let out = ruby.ary_new();
        for l in rb_self.0.layers() {
            out.push(
                hash!(ruby, l; path, extents, grain_size, grains, zero_grains,
                changed_bytes, cid, parent_cid; format = ruby.to_symbol(l.format.key())),
            )?;
        }
        Ok(out)
    }
    /// `_dry_run(dest, **ApplyOptions)`
    fn dry_run(ruby: &Ruby, rb_self: &Self, args: &[Value]) -> Result<RHash, Error> {
        let a = scan_args::<(PathBuf,), (), (), (), RHash, ()>(args)?;
        let opts: ApplyOptions = options(ruby, a.keywords)?;
        let s = rb_self.0.dry_run(&a.required.0, &opts).or_raise(ruby)?;
        stats(ruby, s)
    }
    /// `_apply(dest, job, **ApplyOptions)`, without the GVL.
    fn apply(ruby: &Ruby, rb_self: &Self, args: &[Value]) -> Result<RHash, Error> {
        let a = scan_args::<(PathBuf, &RbProgress), (), (), (), RHash, ()>(args)?;
        let (dest, job) = a.required;
        let opts: ApplyOptions = options(ruby, a.keywords)?;
        let (delta, prog) = (&rb_self.0, job.0.clone());
        let result = gvl::without_gvl(&job.0, move || delta.apply(&dest, &opts, &prog))
            .ok_or_else(|| errors::panic(ruby, "VMDKSync::Delta#apply"))?;
        stats(ruby, result.or_raise(ruby)?)
    }
    /// `_verify(dest, job)`, without the GVL.
    fn verify(
        ruby: &Ruby,
        rb_self: &Self,
        dest: PathBuf,
        job: &RbProgress,
    ) -> Result<RHash, Error> {
        let (delta, prog) = (&rb_self.0, job.0.clone());
        let result = gvl::without_gvl(&job.0, move || delta.verify(&dest, &prog))
            .ok_or_else(|| errors::panic(ruby, "VMDKSync::Delta#verify"))?;
        let r = result.or_raise(ruby)?;
        Ok(hash!(ruby, r; bytes, mismatched_bytes, mismatches))
    }
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let c = ruby
        .define_module("VMDKSync")?
        .define_class("Delta", ruby.class_object())?;
    c.define_singleton_method("_open", function!(RbDelta::open, -1))?;
    // `inflate_once_refusal(inflate_once, full, undo)`: the core's reason, or nil.
    c.define_singleton_method(
        "inflate_once_refusal",
        function!(ironshed_core::vmdk::inflate_once_refusal, 3),
    )?;
    c.const_set(
        "OPEN_OPTIONS",
        crate::convert::symbols(ruby, OpenOptions::KEYWORDS),
    )?;
    readers!(c, RbDelta; path, extent_path, capacity, grain_size, warnings);
    c.define_method("grain_count", method!(|s: &RbDelta| s.0.grains, 0))?;
    c.define_method("unclean?", method!(|s: &RbDelta| s.0.unclean, 0))?;
    c.define_method("full?", method!(|s: &RbDelta| s.0.full, 0))?;
    c.define_method("inflate_once?", method!(|s: &RbDelta| s.0.inflate_once, 0))?;
    c.define_method("format", method!(RbDelta::format, 0))?;
    c.define_method(
        "format_description",
        method!(RbDelta::format_description, 0),
    )?;
    c.define_method("changed_bytes", method!(RbDelta::changed_bytes, 0))?;
    c.define_method("extents", method!(RbDelta::extents, 0))?;
    c.define_method("cid", method!(|s: &RbDelta| s.0.cid(), 0))?;
    c.define_method("parent_cid", method!(|s: &RbDelta| s.0.parent_cid(), 0))?;
    c.define_method("parent_hint", method!(|s: &RbDelta| s.0.parent_hint(), 0))?;
    c.define_method("base_verified", method!(RbDelta::base_verified, 0))?;
    c.define_method("base_note", method!(RbDelta::base_note, 0))?;
    c.define_method("layers", method!(RbDelta::layers, 0))?;
    c.define_method("_dry_run", method!(RbDelta::dry_run, -1))?;
    c.define_method("_apply", method!(RbDelta::apply, -1))?;
    c.define_method("_verify", method!(RbDelta::verify, 2))?;
    Ok(())
}
