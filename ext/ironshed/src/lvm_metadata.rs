//! `LVM::Metadata`: LVM2 text metadata parsed natively into the core's volume group model,
//! which stays on the native side: `#to_h` hands it to Ruby as one Hash per model struct
//! (Symbol keys for the typed fields, the file's own key names in each `:raw` Hash), from
//! which lib/lvm/*.rb builds the `LVM::VGConfig` API; `#plan_round` plans an lvmsync round
//! on it (`lvm::round`).

use crate::convert::{bytes, hash, kwargs, options};
use crate::errors::OrRaise;
use ironshed_core::lvm::{self, Area, LogicalVolume, Node, Section, Segment, SegmentKind, Value};
use ironshed_core::lvm::{Changes, PhysicalVolume, Round, RoundOptions, Target, ThinDevice};
use ironshed_core::lvm::{Metadata, VolumeGroup};
use magnus::scan_args::scan_args;
use magnus::{function, method, prelude::*, Error, IntoValue, RArray, RHash, RString, Ruby};

#[magnus::wrap(class = "LVM::Metadata", free_immediately, size)]
pub struct RbMetadata(Metadata);

kwargs!(RoundOptions {
    data_source,
    full,
    discards,
    plain
});

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
pub fn section(ruby: &Ruby, s: &Section) -> Result<RHash, Error> {
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

fn round(ruby: &Ruby, r: &Round) -> Result<RHash, Error> {
    let device = |d: &ThinDevice| -> Result<RHash, Error> { Ok(hash!(ruby, d; lv, device_id)) };
    let new_part = match &r.new_part {
        Some(p) => Some(hash!(ruby, p; offset, end; note = p.note(&r.vg))),
        None => None,
    };
    let h = hash!(ruby, r; vg, origin, data_lv, data_lv_is_snapshot, live, discards, notes;
        thin = r.thin(), full = r.full(), new_part = new_part);
    h.update(match &r.changes {
        Changes::Classic { store } => hash!(ruby; store),
        Changes::Thin {
            pool,
            left,
            right,
            external_origin,
        } => {
            hash!(ruby; pool, external_origin; left = device(left)?, right = device(right)?)
        }
        Changes::FullThin { pool, device: d } => hash!(ruby; pool; device = device(d)?),
        Changes::FullScan => ruby.hash_new(),
    })?;
    Ok(h)
}

/// A snapshot as `[given, vg, lv]`.
type Named = (String, String, String);

impl RbMetadata {
    /// `parse(text, source, vg_name)`: the model (no volume group for a text holding only
    /// the header keys).
    fn parse(
        ruby: &Ruby,
        text: RString,
        source: String,
        vg_name: Option<String>,
    ) -> Result<Self, Error> {
        let m = lvm::parse(&bytes(text), &source, vg_name.as_deref()).or_raise(ruby)?;
        Ok(RbMetadata(m))
    }

    /// `to_h`: the model as Hashes; `:vg` is nil for a text holding only the header keys.
    fn to_h(ruby: &Ruby, rb_self: &Self) -> Result<RHash, Error> {
        let m = &rb_self.0;
        let g = m.vg.as_ref().map(|g| vg(ruby, g)).transpose()?;
        let problems: Vec<String> = m.problems.iter().map(|p| p.to_string()).collect();
        Ok(
            hash!(ruby, m; contents, version, description, creation_host, creation_time;
            problems = problems, raw = section(ruby, &m.raw)?, vg = g),
        )
    }

    /// `plan_round([given, vg, lv], [given, vg, lv] | nil, **RoundOptions)`: the round that
    /// sends what changed in the first snapshot (since the second: `--from`), as a Hash.
    fn plan_round(ruby: &Ruby, rb_self: &Self, args: &[magnus::Value]) -> Result<RHash, Error> {
        let a = scan_args::<(Named, Option<Named>), (), (), (), RHash, ()>(args)?;
        let (newer, older) = a.required;
        let opts: RoundOptions = options(ruby, a.keywords)?;
        let target = |(given, vg, lv): Named| Target::new(given, vg, lv);
        let older = older.map(target);
        let r =
            lvm::plan_round(&rb_self.0, &target(newer), older.as_ref(), &opts).or_raise(ruby)?;
        round(ruby, &r)
    }
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let c = ruby
        .define_module("LVM")?
        .define_class("Metadata", ruby.class_object())?;
    c.undef_default_alloc_func();
    c.define_singleton_method("parse", function!(RbMetadata::parse, 3))?;
    c.define_method("to_h", method!(RbMetadata::to_h, 0))?;
    c.define_method("plan_round", method!(RbMetadata::plan_round, -1))?;
    Ok(())
}
