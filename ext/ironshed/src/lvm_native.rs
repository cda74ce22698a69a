//! `LVM::Native`: LVM2 text metadata parsed natively and handed to Ruby as one Hash per model
//! struct (Symbol keys for the typed fields, the file's own key names in each `:raw` Hash).
//! lib/lvm/*.rb builds the `LVM::VGConfig` API on it, lib/vgcfgbackup.rb the original's
//! parse tree on `parse_config`.

use crate::convert::hash;
use crate::errors::OrRaise;
use ironshed_core::lvm::{self, Area, LogicalVolume, Node, Section, Segment, SegmentKind, Value};
use ironshed_core::lvm::{PhysicalVolume, VolumeGroup};
use magnus::{function, prelude::*, Error, IntoValue, RArray, RHash, RString, Ruby};

fn value(ruby: &Ruby, v: &Value) -> magnus::Value {
    match v {
        Value::Int(i) => i.into_value_with(ruby),
        Value::Float(f) => f.into_value_with(ruby),
        Value::Str(s) => s.as_str().into_value_with(ruby),
        Value::List(l) => ruby
            .ary_from_iter(l.iter().map(|x| value(ruby, x)))
            .into_value_with(ruby),
    }
}

/// A section as a Hash keyed by the file's own names.
fn section(ruby: &Ruby, s: &Section) -> Result<RHash, Error> {
    let h = ruby.hash_new();
    for (k, n) in s.entries() {
        match n {
            Node::Value(v) => h.aset(k, value(ruby, v))?,
            Node::Section(sub) => h.aset(k, section(ruby, sub)?)?,
        }
    }
    Ok(h)
}

fn areas(ruby: &Ruby, v: &[Area]) -> RArray {
    ruby.ary_from_iter(v.iter().map(|a| (a.name.as_str(), a.start)))
}

fn list<T>(ruby: &Ruby, v: &[T], f: impl Fn(&T) -> Result<RHash, Error>) -> Result<RArray, Error> {
    let a = ruby.ary_new_capa(v.len());
    for x in v {
        a.push(f(x)?)?;
    }
    Ok(a)
}

fn segment(ruby: &Ruby, s: &Segment) -> Result<RHash, Error> {
    let h = hash!(ruby, s; name, number, start_extent, extent_count; type = s.segtype.clone(),
        type_flags = s.type_flags.clone());
    let k = match &s.kind {
        SegmentKind::Striped {
            stripe_count,
            stripe_size,
            stripes,
        } => hash!(ruby; stripe_count, stripe_size; stripes = areas(ruby, stripes)),
        SegmentKind::Snapshot {
            chunk_size,
            origin,
            store,
            merging,
        } => hash!(ruby; chunk_size, origin, store, merging),
        SegmentKind::ThinPool {
            metadata,
            pool,
            transaction_id,
            chunk_size,
            discards,
            zero_new_blocks,
        } => hash!(ruby; metadata, pool, transaction_id, chunk_size, discards, zero_new_blocks),
        SegmentKind::Thin {
            thin_pool,
            transaction_id,
            device_id,
            origin,
            merge,
            external_origin,
        } => hash!(ruby; thin_pool, transaction_id, device_id, origin, merge, external_origin),
        SegmentKind::Mirror {
            mirror_count,
            mirror_log,
            region_size,
            mirrors,
        } => hash!(ruby; mirror_count, mirror_log, region_size; mirrors = areas(ruby, mirrors)),
        SegmentKind::Raid {
            device_count,
            stripe_size,
            region_size,
            lvs,
        } => hash!(ruby; device_count, stripe_size, region_size, lvs),
        SegmentKind::Other => ruby.hash_new(),
    };
    h.update(k)?;
    h.aset(ruby.sym_new("raw"), section(ruby, &s.raw)?)?;
    Ok(h)
}

fn pv(ruby: &Ruby, p: &PhysicalVolume) -> Result<RHash, Error> {
    Ok(
        hash!(ruby, p; name, id, device, status, flags, dev_size, pe_start, pe_count;
        raw = section(ruby, &p.raw)?),
    )
}

fn lv(ruby: &Ruby, vg: &VolumeGroup, l: &LogicalVolume) -> Result<RHash, Error> {
    Ok(
        hash!(ruby, l; name, id, status, flags, tags, creation_time, creation_host, read_ahead,
        segment_count; size = vg.lv_size(l), segments = list(ruby, &l.segments,
        |s| segment(ruby, s))?, raw = section(ruby, &l.raw)?),
    )
}

fn vg(ruby: &Ruby, g: &VolumeGroup) -> Result<RHash, Error> {
    Ok(
        hash!(ruby, g; name, id, seqno, format, status, flags, tags, extent_size;
        physical_volumes = list(ruby, &g.physical_volumes, |p| pv(ruby, p))?,
        logical_volumes = list(ruby, &g.logical_volumes, |l| lv(ruby, g, l))?,
        classic_snapshots = list(ruby, &g.classic_snapshots(), |c| Ok(hash!(ruby, c;
            bookkeeping_lv, cow_store, origin; chunk_size = c.chunk_bytes(), merging = c.merging)))?,
        raw = section(ruby, &g.raw)?),
    )
}

/// `parse_metadata(text, source, vg_name)`: the model; `:vg` is nil for a text holding only
/// the header keys.
fn parse_metadata(
    ruby: &Ruby,
    text: RString,
    source: String,
    vg_name: Option<String>,
) -> Result<RHash, Error> {
    // SAFETY: the bytes are copied before any Ruby code can run again.
    let bytes = unsafe { text.as_slice() }.to_vec();
    let m = lvm::parse(&bytes, &source, vg_name.as_deref()).or_raise(ruby)?;
    let g = m.vg.as_ref().map(|g| vg(ruby, g)).transpose()?;
    let problems: Vec<String> = m.problems.iter().map(|p| p.to_string()).collect();
    Ok(
        hash!(ruby, m; contents, version, description, creation_host, creation_time;
        problems = problems, raw = section(ruby, &m.raw)?, vg = g),
    )
}

/// `parse_config(text, source)`: the syntax alone, as nested Hashes of the file's keys.
fn parse_config(ruby: &Ruby, text: RString, source: String) -> Result<RHash, Error> {
    // SAFETY: the bytes are copied before any Ruby code can run again.
    let bytes = unsafe { text.as_slice() }.to_vec();
    section(ruby, &lvm::text::parse(&bytes, &source).or_raise(ruby)?)
}

fn dm_name(vg: String, lv: String, layer: Option<String>) -> String {
    lvm::dm_name(&vg, &lv, layer.as_deref())
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let n = ruby.define_module("LVM")?.define_module("Native")?;
    n.define_singleton_method("parse_metadata", function!(parse_metadata, 3))?;
    n.define_singleton_method("parse_config", function!(parse_config, 2))?;
    n.define_singleton_method("dm_name", function!(dm_name, 3))?;
    Ok(())
}
