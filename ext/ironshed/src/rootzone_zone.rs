//! `RootZone::Zone`: a parsed zone, its delegations, its tinydns data, and verification.
//! lib/rootzone.rb adds `Zone.load` and `#verify!` with their keyword arguments.

use crate::errors::{self, OrRaise};
use crate::gvl;
use crate::rootzone_verification::RbVerification;
use ironshed_core::dns::{self, record, tinydns, Zone};
use ironshed_core::Progress;
use magnus::{function, method, prelude::*, Error, RString, Ruby};
use std::path::PathBuf;

#[magnus::wrap(class = "RootZone::Zone", free_immediately, size)]
pub struct RbZone(Zone);

/// Runs `f` without the GVL; a panic becomes Ironshed::Error.
fn native<T>(
    ruby: &Ruby,
    what: &str,
    f: impl FnOnce() -> Result<T, dns::Error>,
) -> Result<T, Error> {
    let progress = Progress::new();
    match gvl::without_gvl(&progress, f) {
        Some(r) => r.or_raise(ruby),
        None => Err(errors::panic(ruby, what)),
    }
}

impl RbZone {
    /// `_open(path)`: reads a file, FIFO or `-` (stdin), gunzips, parses.
    fn open(ruby: &Ruby, path: PathBuf) -> Result<Self, Error> {
        let name = path.display().to_string();
        native(ruby, "RootZone::Zone.load", move || {
            dns::parse_zone(&name, dns::zonefile::read_input(&path)?)
        })
        .map(RbZone)
    }
    /// `_parse(bytes, source)`: the same from a String.
    fn parse(ruby: &Ruby, bytes: RString, source: String) -> Result<Self, Error> {
        // SAFETY: copied before the GVL is released; no Ruby call in between.
        let bytes = unsafe { bytes.as_slice() }.to_vec();
        native(ruby, "RootZone::Zone.load", move || {
            dns::parse_zone(&source, bytes)
        })
        .map(RbZone)
    }
    fn source(&self) -> String {
        self.0.source.clone()
    }
    fn apex(&self) -> String {
        self.0.apex().to_string()
    }
    fn serial(&self) -> u32 {
        self.0.serial()
    }
    fn size(&self) -> usize {
        self.0.records().len()
    }
    /// `_verify(trust_anchor_path, now_epoch)`
    fn verify(
        ruby: &Ruby,
        rb_self: &Self,
        anchor: PathBuf,
        now: u64,
    ) -> Result<RbVerification, Error> {
        let zone = &rb_self.0;
        native(ruby, "RootZone::Zone#verify!", || {
            let anchor = dns::TrustAnchor::load(&anchor)?;
            dns::verify(zone, &anchor, now)
        })
        .map(RbVerification)
    }
    /// `[[name, ttl, [ns...], [[ns, address]...], ["tag alg type DIGEST"...]], ...]`
    #[allow(clippy::type_complexity)]
    fn delegations(&self) -> Vec<(String, u32, Vec<String>, Vec<(String, String)>, Vec<String>)> {
        self.0
            .delegations()
            .into_iter()
            .map(|d| {
                (
                    d.name.to_string(),
                    d.ttl,
                    d.nameservers.iter().map(|n| n.to_string()).collect(),
                    d.glue
                        .iter()
                        .map(|(n, a)| (n.to_string(), a.to_string()))
                        .collect(),
                    d.ds.iter().map(|r| record::ds_text(r)).collect(),
                )
            })
            .collect()
    }
    /// The tinydns data lines (no header).
    fn to_tinydns(&self) -> String {
        let conv = tinydns::convert(&self.0);
        String::from_utf8_lossy(&tinydns::data_file(&[], &conv.lines)).into_owned()
    }
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let c = ruby
        .define_module("RootZone")?
        .define_class("Zone", ruby.class_object())?;
    c.define_singleton_method("_open", function!(RbZone::open, 1))?;
    c.define_singleton_method("_parse", function!(RbZone::parse, 2))?;
    c.define_method("source", method!(RbZone::source, 0))?;
    c.define_method("apex", method!(RbZone::apex, 0))?;
    c.define_method("serial", method!(RbZone::serial, 0))?;
    c.define_method("size", method!(RbZone::size, 0))?;
    c.define_method("_verify", method!(RbZone::verify, 2))?;
    c.define_method("_delegations", method!(RbZone::delegations, 0))?;
    c.define_method("to_tinydns", method!(RbZone::to_tinydns, 0))?;
    Ok(())
}
