//! `LVM::Native.parse_metadata(text, source, vg_name)`: LVM2 text metadata parsed natively and
//! handed to Ruby as plain hashes (symbol keys for the typed model, the file's own key names
//! in each `:raw` hash). lib/lvm/*.rb builds the `LVM::VGConfig` API on it.

use crate::errors;
use ironshed_core::lvm::{self, Area, Node, Section, SegmentKind, Value};
use magnus::{function, prelude::*, Error, IntoValue, RArray, RHash, Ruby};

fn value(ruby: &Ruby, v: &Value) -> magnus::Value {
    match v {
        Value::Int(i) => ruby.integer_from_i64(*i).into_value_with(ruby),
        Value::Float(f) => ruby.float_from_f64(*f).into_value_with(ruby),
        Value::Str(s) => ruby.str_new(s).into_value_with(ruby),
        Value::List(l) => {
            let a = ruby.ary_new_capa(l.len());
            for x in l {
                let _ = a.push(value(ruby, x));
            }
            a.into_value_with(ruby)
        }
    }
}

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

fn strings(ruby: &Ruby, v: &[String]) -> Result<RArray, Error> {
    let a = ruby.ary_new_capa(v.len());
    for s in v {
        a.push(ruby.str_new(s))?;
    }
    Ok(a)
}

fn areas(ruby: &Ruby, v: &[Area]) -> Result<RArray, Error> {
    let a = ruby.ary_new_capa(v.len());
    for x in v {
        a.push(ruby.ary_new_from_values(&[
            ruby.str_new(&x.name).into_value_with(ruby),
            ruby.integer_from_u64(x.start).into_value_with(ruby),
        ]))?;
    }
    Ok(a)
}

struct H<'a> {
    ruby: &'a Ruby,
    h: RHash,
}

impl H<'_> {
    fn set<T: IntoValue>(&self, k: &str, v: T) -> Result<(), Error> {
        self.h.aset(self.ruby.to_symbol(k), v)
    }
}

fn segment(ruby: &Ruby, s: &lvm::Segment) -> Result<RHash, Error> {
    let h = H {
        ruby,
        h: ruby.hash_new(),
    };
    h.set("name", s.name.as_str())?;
    h.set("number", s.number)?;
    h.set("start_extent", s.start_extent)?;
    h.set("extent_count", s.extent_count)?;
    h.set("type", s.segtype.as_deref())?;
    h.set("type_flags", strings(ruby, &s.type_flags)?)?;
    match &s.kind {
        SegmentKind::Striped {
            stripe_count,
            stripe_size,
            stripes,
        } => {
            h.set("stripe_count", *stripe_count)?;
            h.set("stripe_size", *stripe_size)?;
            h.set("stripes", areas(ruby, stripes)?)?;
        }
        SegmentKind::Snapshot {
            chunk_size,
            origin,
            store,
            merging,
        } => {
            h.set("chunk_size", *chunk_size)?;
            h.set("origin", origin.as_deref())?;
            h.set("store", store.as_deref())?;
            h.set("merging", *merging)?;
        }
        SegmentKind::ThinPool {
            metadata,
            pool,
            transaction_id,
            chunk_size,
            discards,
            zero_new_blocks,
        } => {
            h.set("metadata", metadata.as_deref())?;
            h.set("pool", pool.as_deref())?;
            h.set("transaction_id", *transaction_id)?;
            h.set("chunk_size", *chunk_size)?;
            h.set("discards", discards.as_deref())?;
            h.set("zero_new_blocks", *zero_new_blocks)?;
        }
        SegmentKind::Thin {
            thin_pool,
            transaction_id,
            device_id,
            origin,
            merge,
            external_origin,
        } => {
            h.set("thin_pool", thin_pool.as_deref())?;
            h.set("transaction_id", *transaction_id)?;
            h.set("device_id", *device_id)?;
            h.set("origin", origin.as_deref())?;
            h.set("merge", merge.as_deref())?;
            h.set("external_origin", external_origin.as_deref())?;
        }
        SegmentKind::Mirror {
            mirror_count,
            mirror_log,
            region_size,
            mirrors,
        } => {
            h.set("mirror_count", *mirror_count)?;
            h.set("mirror_log", mirror_log.as_deref())?;
            h.set("region_size", *region_size)?;
            h.set("mirrors", areas(ruby, mirrors)?)?;
        }
        SegmentKind::Raid {
            device_count,
            stripe_size,
            region_size,
            lvs,
        } => {
            h.set("device_count", *device_count)?;
            h.set("stripe_size", *stripe_size)?;
            h.set("region_size", *region_size)?;
            h.set("lvs", strings(ruby, lvs)?)?;
        }
        SegmentKind::Other => {}
    }
    h.set("raw", section(ruby, &s.raw)?)?;
    Ok(h.h)
}

fn parse_metadata(
    ruby: &Ruby,
    text: magnus::RString,
    source: String,
    vg_name: Option<String>,
) -> Result<RHash, Error> {
    // SAFETY: the bytes are copied before any Ruby code can run again.
    let bytes = unsafe { text.as_slice() }.to_vec();
    let m = lvm::parse(&bytes, &source, vg_name.as_deref()).map_err(|e| errors::lvm(ruby, e))?;
    let top = H {
        ruby,
        h: ruby.hash_new(),
    };
    top.set("contents", m.contents.as_deref())?;
    top.set("version", m.version)?;
    top.set("description", m.description.as_deref())?;
    top.set("creation_host", m.creation_host.as_deref())?;
    top.set("creation_time", m.creation_time)?;
    let probs = ruby.ary_new();
    for p in &m.problems {
        probs.push(p.to_string())?;
    }
    top.set("problems", probs)?;
    top.set("raw", section(ruby, &m.raw)?)?;

    let vg = &m.vg;
    let g = H {
        ruby,
        h: ruby.hash_new(),
    };
    g.set("name", vg.name.as_str())?;
    g.set("id", vg.id.as_deref())?;
    g.set("seqno", vg.seqno)?;
    g.set("format", vg.format.as_deref())?;
    g.set("status", strings(ruby, &vg.status)?)?;
    g.set("flags", strings(ruby, &vg.flags)?)?;
    g.set("tags", strings(ruby, &vg.tags)?)?;
    g.set("extent_size", vg.extent_size)?;
    let pvs = ruby.ary_new();
    for pv in &vg.physical_volumes {
        let p = H {
            ruby,
            h: ruby.hash_new(),
        };
        p.set("name", pv.name.as_str())?;
        p.set("id", pv.id.as_deref())?;
        p.set("device", pv.device.as_deref())?;
        p.set("status", strings(ruby, &pv.status)?)?;
        p.set("flags", strings(ruby, &pv.flags)?)?;
        p.set("dev_size", pv.dev_size)?;
        p.set("pe_start", pv.pe_start)?;
        p.set("pe_count", pv.pe_count)?;
        p.set("raw", section(ruby, &pv.raw)?)?;
        pvs.push(p.h)?;
    }
    g.set("physical_volumes", pvs)?;
    let lvs = ruby.ary_new();
    for lv in &vg.logical_volumes {
        let l = H {
            ruby,
            h: ruby.hash_new(),
        };
        l.set("name", lv.name.as_str())?;
        l.set("id", lv.id.as_deref())?;
        l.set("status", strings(ruby, &lv.status)?)?;
        l.set("flags", strings(ruby, &lv.flags)?)?;
        l.set("tags", strings(ruby, &lv.tags)?)?;
        l.set("creation_time", lv.creation_time)?;
        l.set("creation_host", lv.creation_host.as_deref())?;
        l.set("read_ahead", lv.read_ahead)?;
        l.set("segment_count", lv.segment_count)?;
        l.set("size", vg.lv_size(lv))?;
        let segs = ruby.ary_new();
        for s in &lv.segments {
            segs.push(segment(ruby, s)?)?;
        }
        l.set("segments", segs)?;
        l.set("raw", section(ruby, &lv.raw)?)?;
        lvs.push(l.h)?;
    }
    g.set("logical_volumes", lvs)?;
    g.set("raw", section(ruby, &vg.raw)?)?;
    top.set("vg", g.h)?;
    Ok(top.h)
}

fn dm_name(vg: String, lv: String, layer: Option<String>) -> String {
    lvm::dm_name(&vg, &lv, layer.as_deref())
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let m = ruby.define_module("LVM")?;
    let n = m.define_module("Native")?;
    n.define_singleton_method("parse_metadata", function!(parse_metadata, 3))?;
    n.define_singleton_method("dm_name", function!(dm_name, 3))?;
    Ok(())
}
