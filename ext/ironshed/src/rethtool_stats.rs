//! String sets, NIC statistics and interface counters (`Rethtool::Handle#stats`,
//! `#strings`, `#string_set_counts`, `#counters`).

use crate::{
    errors,
    rethtool_handle::{hash_from, ifname, RbHandle},
};
use magnus::{method, prelude::*, Error, RArray, RClass, RHash, RString, Ruby, Value};

/// `stats(name)`: `[[name, value], ...]` in the driver's order (names may repeat).
fn stats(ruby: &Ruby, rb_self: &RbHandle, name: RString) -> Result<RArray, Error> {
    let ifn = ifname(ruby, name)?;
    let s = rb_self.session(ruby)?;
    let list = s
        .ethtool()
        .stats(&ifn)
        .map_err(|e| errors::ethtool(ruby, e))?;
    let out = ruby.ary_new_capa(list.len());
    for (k, v) in list {
        out.push(ruby.ary_new_from_values(&[
            ruby.str_new(&k).as_value(),
            ruby.integer_from_u64(v).as_value(),
        ]))?;
    }
    Ok(out)
}

fn strings(ruby: &Ruby, rb_self: &RbHandle, name: RString, set: u32) -> Result<Vec<String>, Error> {
    let ifn = ifname(ruby, name)?;
    let s = rb_self.session(ruby)?;
    s.ethtool()
        .strings(&ifn, set)
        .map_err(|e| errors::ethtool(ruby, e))
}

/// `string_set_counts(name, mask)`: `{set => count}` for the sets of `mask` the driver has.
fn string_set_counts(
    ruby: &Ruby,
    rb_self: &RbHandle,
    name: RString,
    mask: u64,
) -> Result<RHash, Error> {
    let ifn = ifname(ruby, name)?;
    let s = rb_self.session(ruby)?;
    let list = s
        .ethtool()
        .sset_counts(&ifn, mask)
        .map_err(|e| errors::ethtool(ruby, e))?;
    let h = ruby.hash_new();
    for (set, n) in list {
        h.aset(set, n)?;
    }
    Ok(h)
}

/// `counters(name)`: the `/proc/net/dev` counters as `{rx_bytes: ..., ...}`.
fn counters(ruby: &Ruby, rb_self: &RbHandle, name: RString) -> Result<RHash, Error> {
    let ifn = ifname(ruby, name)?;
    let s = rb_self.session(ruby)?;
    let c = s.counters(&ifn).map_err(|e| errors::ethtool(ruby, e))?;
    let pairs: Vec<(&str, Value)> = c
        .fields()
        .iter()
        .map(|&(k, v)| (k, ruby.integer_from_u64(v).as_value()))
        .collect();
    hash_from(ruby, &pairs)
}

pub fn init(_ruby: &Ruby, c: RClass) -> Result<(), Error> {
    c.define_method("stats", method!(stats, 1))?;
    c.define_method("strings", method!(strings, 2))?;
    c.define_method("string_set_counts", method!(string_set_counts, 2))?;
    c.define_method("counters", method!(counters, 1))?;
    Ok(())
}
