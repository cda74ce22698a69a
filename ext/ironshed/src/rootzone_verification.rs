//! `RootZone::Verification`: what a successful verification established.

use ironshed_core::dns::{dnssec, verify::Verified, zonemd};
use magnus::{method, prelude::*, Error, Ruby};

#[magnus::wrap(class = "RootZone::Verification", free_immediately, size)]
pub struct RbVerification(pub Verified);

impl RbVerification {
    fn serial(&self) -> u32 {
        self.0.serial
    }
    fn anchor_keys(&self) -> Vec<u16> {
        self.0.anchor_keys.clone()
    }
    /// `[[key_tag, "RSASHA256"], ...]`
    fn zone_keys(&self) -> Vec<(u16, &'static str)> {
        self.0
            .zone_keys
            .iter()
            .map(|(t, a)| (*t, dnssec::algorithm_name(*a)))
            .collect()
    }
    fn rrsets(&self) -> usize {
        self.0.rrsets
    }
    fn signatures(&self) -> usize {
        self.0.signatures
    }
    /// `[["SHA-384", "hex..."], ...]`
    fn zonemd(&self) -> Vec<(String, String)> {
        self.0
            .zonemd
            .iter()
            .map(|m| (zonemd::hash_name(m.hash), m.digest.clone()))
            .collect()
    }
    fn valid_until_epoch(&self) -> i64 {
        self.0.valid_until
    }
    fn valid_until_rrset(&self) -> String {
        self.0.valid_until_rrset.clone()
    }
    fn notes(&self) -> Vec<String> {
        self.0.notes.clone()
    }
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let c = ruby
        .define_module("RootZone")?
        .define_class("Verification", ruby.class_object())?;
    c.define_method("serial", method!(RbVerification::serial, 0))?;
    c.define_method("anchor_keys", method!(RbVerification::anchor_keys, 0))?;
    c.define_method("zone_keys", method!(RbVerification::zone_keys, 0))?;
    c.define_method("rrsets", method!(RbVerification::rrsets, 0))?;
    c.define_method("signatures", method!(RbVerification::signatures, 0))?;
    c.define_method("zonemd", method!(RbVerification::zonemd, 0))?;
    c.define_method(
        "valid_until_epoch",
        method!(RbVerification::valid_until_epoch, 0),
    )?;
    c.define_method(
        "valid_until_rrset",
        method!(RbVerification::valid_until_rrset, 0),
    )?;
    c.define_method("notes", method!(RbVerification::notes, 0))?;
    Ok(())
}
