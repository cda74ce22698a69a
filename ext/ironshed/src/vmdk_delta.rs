//! `VMDKSync::Delta`: a validated delta, its geometry and changed extents, and the native
//! apply. The Ruby wrapper in lib/vmdksync.rb gives these methods their keyword arguments.

use crate::{errors, gvl, progress::RbProgress};
use ironshed_core::vmdk::{ApplyOptions, ApplyStats, BaseCheck, Delta, OpenOptions, VerifyReport};
use magnus::{function, method, prelude::*, Error, RArray, RHash, Ruby, Symbol};
use std::path::PathBuf;

#[magnus::wrap(class = "VMDKSync::Delta", free_immediately, size)]
pub struct RbDelta(Delta);

fn stats_hash(ruby: &Ruby, s: ApplyStats) -> Result<RHash, Error> {
    let h = ruby.hash_new();
    h.aset(ruby.to_symbol("grains"), s.grains)?;
    h.aset(ruby.to_symbol("bytes"), s.bytes)?;
    h.aset(ruby.to_symbol("extents"), s.extents)?;
    h.aset(ruby.to_symbol("writes"), s.writes)?;
    h.aset(ruby.to_symbol("discarded"), s.discarded)?;
    h.aset(ruby.to_symbol("undo_bytes"), s.undo_bytes)?;
    Ok(h)
}

fn flag(ruby: &Ruby, h: RHash, key: &str) -> Result<bool, Error> {
    Ok(h.lookup::<_, Option<bool>>(ruby.to_symbol(key))?
        .unwrap_or(false))
}

fn apply_options(ruby: &Ruby, h: RHash) -> Result<ApplyOptions, Error> {
    Ok(ApplyOptions {
        allow_larger_destination: flag(ruby, h, "allow_larger_destination")?,
        discard_zeros: flag(ruby, h, "discard_zeros")?,
        undo: h.lookup::<_, Option<PathBuf>>(ruby.to_symbol("undo"))?,
    })
}

fn verify_hash(ruby: &Ruby, r: VerifyReport) -> Result<RHash, Error> {
    let h = ruby.hash_new();
    h.aset(ruby.to_symbol("bytes"), r.bytes)?;
    h.aset(ruby.to_symbol("mismatched_bytes"), r.mismatched_bytes)?;
    let list = ruby.ary_new_capa(r.mismatches.len());
    for (off, len) in r.mismatches {
        list.push(
            ruby.ary_new_from_values(&[ruby.integer_from_u64(off), ruby.integer_from_u64(len)]),
        )?;
    }
    h.aset(ruby.to_symbol("mismatches"), list)?;
    Ok(h)
}

impl RbDelta {
    /// `_open(path, {base:, allow_unclean:, check_redundant:, no_parent_check:})`
    fn open(ruby: &Ruby, path: PathBuf, opts: RHash) -> Result<Self, Error> {
        let opts = OpenOptions {
            base: opts.lookup::<_, Option<PathBuf>>(ruby.to_symbol("base"))?,
            allow_unclean: flag(ruby, opts, "allow_unclean")?,
            check_redundant: flag(ruby, opts, "check_redundant")?,
            no_parent_check: flag(ruby, opts, "no_parent_check")?,
        };
        Delta::open(&path, &opts)
            .map(RbDelta)
            .map_err(|e| errors::vmdk(ruby, e))
    }
    fn path(&self) -> PathBuf {
        self.0.path.clone()
    }
    fn extent_path(&self) -> PathBuf {
        self.0.extent_path.clone()
    }
    fn format(ruby: &Ruby, rb_self: &Self) -> Symbol {
        ruby.to_symbol(rb_self.0.format.key())
    }
    fn format_description(&self) -> &'static str {
        self.0.format.describe()
    }
    fn capacity(&self) -> u64 {
        self.0.capacity
    }
    fn grain_size(&self) -> u64 {
        self.0.grain_size
    }
    fn grain_count(&self) -> u64 {
        self.0.grains
    }
    fn changed_bytes(&self) -> u64 {
        self.0.changed_bytes()
    }
    fn extents(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        let list = rb_self.0.extents().map_err(|e| errors::vmdk(ruby, e))?;
        let out = ruby.ary_new_capa(list.len());
        for (off, len) in list {
            out.push(
                ruby.ary_new_from_values(&[ruby.integer_from_u64(off), ruby.integer_from_u64(len)]),
            )?;
        }
        Ok(out)
    }
    fn cid(&self) -> Option<u32> {
        self.0.descriptor.as_ref().and_then(|d| d.cid)
    }
    fn parent_cid(&self) -> Option<u32> {
        self.0.descriptor.as_ref().and_then(|d| d.parent_cid)
    }
    fn parent_hint(&self) -> Option<String> {
        self.0
            .descriptor
            .as_ref()
            .and_then(|d| d.parent_hint_display())
    }
    fn unclean(&self) -> bool {
        self.0.unclean
    }
    fn base_verified(&self) -> Option<PathBuf> {
        match &self.0.base {
            BaseCheck::Verified(p) => Some(p.clone()),
            BaseCheck::NotChecked(_) => None,
        }
    }
    fn base_note(&self) -> Option<String> {
        match &self.0.base {
            BaseCheck::Verified(_) => None,
            BaseCheck::NotChecked(why) => Some(why.clone()),
        }
    }
    fn warnings(&self) -> Vec<String> {
        self.0.warnings.clone()
    }
    fn layers(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        let out = ruby.ary_new();
        for l in rb_self.0.layers() {
            let h = ruby.hash_new();
            h.aset(ruby.to_symbol("path"), l.path)?;
            h.aset(ruby.to_symbol("format"), ruby.to_symbol(l.format.key()))?;
            h.aset(ruby.to_symbol("extents"), l.extents)?;
            h.aset(ruby.to_symbol("grain_size"), l.grain_size)?;
            h.aset(ruby.to_symbol("grains"), l.grains)?;
            h.aset(ruby.to_symbol("zero_grains"), l.zero_grains)?;
            h.aset(ruby.to_symbol("changed_bytes"), l.changed_bytes)?;
            h.aset(ruby.to_symbol("cid"), l.cid)?;
            h.aset(ruby.to_symbol("parent_cid"), l.parent_cid)?;
            out.push(h)?;
        }
        Ok(out)
    }
    /// `_dry_run(dest, {allow_larger_destination:})`
    fn dry_run(ruby: &Ruby, rb_self: &Self, dest: PathBuf, opts: RHash) -> Result<RHash, Error> {
        let opts = apply_options(ruby, opts)?;
        let stats = rb_self
            .0
            .dry_run(&dest, &opts)
            .map_err(|e| errors::vmdk(ruby, e))?;
        stats_hash(ruby, stats)
    }
    /// `_apply(dest, {allow_larger_destination:, discard_zeros:}, progress)`
    fn apply(
        ruby: &Ruby,
        rb_self: &Self,
        dest: PathBuf,
        opts: RHash,
        progress: &RbProgress,
    ) -> Result<RHash, Error> {
        let opts = apply_options(ruby, opts)?;
        let delta = &rb_self.0;
        let prog = progress.0.clone();
        let result = gvl::without_gvl(&progress.0, move || delta.apply(&dest, &opts, &prog))
            .ok_or_else(|| errors::panic(ruby, "VMDKSync::Delta#apply"))?;
        let stats = result.map_err(|e| errors::vmdk(ruby, e))?;
        stats_hash(ruby, stats)
    }
    fn verify(
        ruby: &Ruby,
        rb_self: &Self,
        dest: PathBuf,
        progress: &RbProgress,
    ) -> Result<RHash, Error> {
        let delta = &rb_self.0;
        let prog = progress.0.clone();
        let result = gvl::without_gvl(&progress.0, move || delta.verify(&dest, &prog))
            .ok_or_else(|| errors::panic(ruby, "VMDKSync::Delta#verify"))?;
        let report = result.map_err(|e| errors::vmdk(ruby, e))?;
        verify_hash(ruby, report)
    }
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let m = ruby.define_module("VMDKSync")?;
    let c = m.define_class("Delta", ruby.class_object())?;
    c.define_singleton_method("_open", function!(RbDelta::open, 2))?;
    c.define_method("path", method!(RbDelta::path, 0))?;
    c.define_method("extent_path", method!(RbDelta::extent_path, 0))?;
    c.define_method("format", method!(RbDelta::format, 0))?;
    c.define_method(
        "format_description",
        method!(RbDelta::format_description, 0),
    )?;
    c.define_method("capacity", method!(RbDelta::capacity, 0))?;
    c.define_method("grain_size", method!(RbDelta::grain_size, 0))?;
    c.define_method("grain_count", method!(RbDelta::grain_count, 0))?;
    c.define_method("changed_bytes", method!(RbDelta::changed_bytes, 0))?;
    c.define_method("extents", method!(RbDelta::extents, 0))?;
    c.define_method("cid", method!(RbDelta::cid, 0))?;
    c.define_method("parent_cid", method!(RbDelta::parent_cid, 0))?;
    c.define_method("parent_hint", method!(RbDelta::parent_hint, 0))?;
    c.define_method("unclean?", method!(RbDelta::unclean, 0))?;
    c.define_method("base_verified", method!(RbDelta::base_verified, 0))?;
    c.define_method("base_note", method!(RbDelta::base_note, 0))?;
    c.define_method("warnings", method!(RbDelta::warnings, 0))?;
    c.define_method("_dry_run", method!(RbDelta::dry_run, 2))?;
    c.define_method("_apply", method!(RbDelta::apply, 3))?;
    c.define_method("_verify", method!(RbDelta::verify, 2))?;
    c.define_method("layers", method!(RbDelta::layers, 0))?;
    Ok(())
}
