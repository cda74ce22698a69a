//! `RootZone::Verification`: what a successful verification established.

use crate::convert::readers;
use ironshed_core::dns::{dnssec, verify::Verified, zonemd};
use magnus::{method, prelude::*, Error, Ruby};

#[magnus::wrap(class = "RootZone::Verification", free_immediately, size)]
pub struct RbVerification(pub Verified);

impl RbVerification {
    /// `[[key_tag, "RSASHA256"], ...]`
    fn zone_keys(&self) -> Vec<(u16, &'static str)> {
        self.0
            .zone_keys
            .iter()
            .map(|(t, a)| (*t, dnssec::algorithm_name(*a)))
            .collect()
    }
    /// `[["SHA-384", "hex..."], ...]`
    fn zonemd(&self) -> Vec<(String, String)> {
        self.0
            .zonemd
            .iter()
            .map(|m| (zonemd::hash_name(m.hash), m.digest.clone()))
            .collect()
    }
    /// Seconds since 1970; lib/rootzone.rb's `#valid_until` makes it a Time.
    fn valid_until_epoch(&self) -> i64 {
        self.0.valid_until
    }
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let c = ruby
        .define_module("RootZone")?
        .define_class("Verification", ruby.class_object())?;
    readers!(c, RbVerification; serial, anchor_keys, rrsets, signatures, valid_until_rrset, notes);
    c.define_method("zone_keys", method!(RbVerification::zone_keys, 0))?;
    c.define_method("zonemd", method!(RbVerification::zonemd, 0))?;
    c.define_method(
        "valid_until_epoch",
        method!(RbVerification::valid_until_epoch, 0),
    )?;
    Ok(())
}
