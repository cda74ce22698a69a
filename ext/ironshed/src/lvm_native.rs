//! `LVM::Native`: the metadata syntax alone (for lib/vgcfgbackup.rb's parse tree), device-mapper
//! names, and what LVM's tools print: `lvs` names, a thin pool's `dmsetup status`.

use crate::convert::{bytes, hash};
use crate::errors::OrRaise;
use crate::lvm_metadata::section;
use ironshed_core::lvm::{self, lvs, pool_status};
use magnus::{function, prelude::*, Error, RHash, RString, Ruby};

/// `parse_config(text, source)`: the syntax alone, as nested Hashes of the file's keys.
fn parse_config(ruby: &Ruby, text: RString, source: String) -> Result<RHash, Error> {
    section(
        ruby,
        &lvm::text::parse(&bytes(text), &source).or_raise(ruby)?,
    )
}

fn dm_name(vg: String, lv: String, layer: Option<String>) -> String {
    lvm::dm_name(&vg, &lv, layer.as_deref())
}

/// `lvs_names(path, stdout, stderr, success)`: `[vg, lv]` of what `lvs --noheadings -o
/// vg_name,lv_name PATH` printed (`success`: it exited with 0).
fn lvs_names(
    ruby: &Ruby,
    path: String,
    out: RString,
    err: RString,
    success: bool,
) -> Result<(String, String), Error> {
    lvs::vg_lv(&path, &bytes(out), &bytes(err), success).or_raise(ruby)
}

/// `pool_status(text, pool)`: `dmsetup status` of a thin pool's -tpool target as a Hash
/// (only `:mode` for a failed pool); `pool` names it in errors.
fn pool_status(ruby: &Ruby, text: RString, pool: String) -> Result<RHash, Error> {
    let s = pool_status::parse(&bytes(text), &pool).or_raise(ruby)?;
    Ok(match &s.usage {
        Some(u) => hash!(ruby, u; transaction_id, metadata_used, metadata_total, data_used,
            data_total, held_root; mode = s.mode.clone(), needs_check = u.needs_check),
        None => hash!(ruby, s; mode),
    })
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let n = ruby.define_module("LVM")?.define_module("Native")?;
    n.define_singleton_method("parse_config", function!(parse_config, 2))?;
    n.define_singleton_method("dm_name", function!(dm_name, 3))?;
    n.define_singleton_method("lvs_names", function!(lvs_names, 4))?;
    n.define_singleton_method("pool_status", function!(pool_status, 2))?;
    Ok(())
}
