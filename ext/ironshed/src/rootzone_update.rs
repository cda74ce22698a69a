//! `RootZone::UpdateReport`: runs `rootzone update` natively (`UpdateReport._run`) and
//! reports what happened. lib/rootzone.rb's `RootZone.update` fetches the source first.

use crate::rootzone_errors::raise;
use crate::rootzone_verification::RbVerification;
use crate::{errors, gvl};
use ironshed_core::dns::update::{self, UpdateOptions, UpdateReport};
use ironshed_core::Progress;
use magnus::scan_args::{get_kwargs, scan_args};
use magnus::{function, method, prelude::*, Error, RHash, RString, Ruby, Symbol, Value};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

#[magnus::wrap(class = "RootZone::UpdateReport", free_immediately, size)]
pub struct RbUpdateReport(UpdateReport);

/// The keyword arguments of `_run`, in one list.
const REQUIRED: [&str; 3] = ["source", "trust_anchor", "tinydns_root"];
const OPTIONAL: [&str; 6] = [
    "dry_run",
    "allow_older",
    "signature_name",
    "signature",
    "keyring",
    "now",
];

type Required = (String, PathBuf, PathBuf);
type Optional = (
    Option<bool>,
    Option<bool>,
    Option<String>,
    Option<RString>,
    Option<PathBuf>,
    Option<u64>,
);

impl RbUpdateReport {
    /// `_run(zone_bytes, source:, trust_anchor:, tinydns_root:, dry_run: false,
    /// allow_older: false, signature_name: nil, signature: nil, keyring: nil, now: nil)`
    fn run(ruby: &Ruby, args: &[Value]) -> Result<Self, Error> {
        let args = scan_args::<(RString,), (), (), (), RHash, ()>(args)?;
        let kw = get_kwargs::<_, Required, Optional, ()>(args.keywords, &REQUIRED, &OPTIONAL)?;
        let (source, trust_anchor, root) = kw.required;
        let (dry_run, allow_older, sig_name, sig, keyring, now) = kw.optional;
        // SAFETY: both copied before the GVL is released; no Ruby call in between.
        let zone = unsafe { args.required.0.as_slice() }.to_vec();
        let signature = sig.map(|s| {
            let bytes = unsafe { s.as_slice() }.to_vec();
            (
                sig_name.clone().unwrap_or_else(|| "signature".into()),
                bytes,
            )
        });
        let opts = UpdateOptions {
            source,
            trust_anchor,
            root,
            dry_run: dry_run.unwrap_or(false),
            allow_older: allow_older.unwrap_or(false),
            now: now.unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            }),
            signature,
            keyring,
            gpgv: update::default_gpgv(),
        };
        let progress = Progress::new();
        match gvl::without_gvl(&progress, || update::update(zone, &opts, &progress)) {
            Some(r) => r.map(RbUpdateReport).map_err(|e| raise(ruby, e)),
            None => Err(errors::panic(ruby, "rootzone update")),
        }
    }
    fn outcome(ruby: &Ruby, rb_self: &Self) -> Symbol {
        ruby.to_symbol(rb_self.0.outcome.key())
    }
    fn serial(&self) -> u32 {
        self.0.serial
    }
    fn previous_serial(&self) -> Option<u32> {
        self.0.previous
    }
    fn delegations(&self) -> usize {
        self.0.delegations
    }
    /// `[soa, ns, a, aaaa]` line counts.
    fn served(&self) -> Vec<usize> {
        self.0.served.to_vec()
    }
    fn not_served(&self) -> String {
        self.0.not_served.clone()
    }
    fn verification(&self) -> RbVerification {
        RbVerification(self.0.verified.clone())
    }
    fn notes(&self) -> Vec<String> {
        self.0.notes.clone()
    }
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let m = ruby.define_module("RootZone")?;
    m.const_set("DEFAULT_TRUST_ANCHOR", update::DEFAULT_TRUST_ANCHOR)?;
    m.const_set("DEFAULT_TINYDNS_ROOT", update::DEFAULT_ROOT)?;
    let c = m.define_class("UpdateReport", ruby.class_object())?;
    c.define_singleton_method("_run", function!(RbUpdateReport::run, -1))?;
    c.define_method("outcome", method!(RbUpdateReport::outcome, 0))?;
    c.define_method("serial", method!(RbUpdateReport::serial, 0))?;
    c.define_method(
        "previous_serial",
        method!(RbUpdateReport::previous_serial, 0),
    )?;
    c.define_method("delegations", method!(RbUpdateReport::delegations, 0))?;
    c.define_method("served", method!(RbUpdateReport::served, 0))?;
    c.define_method("not_served", method!(RbUpdateReport::not_served, 0))?;
    c.define_method("verification", method!(RbUpdateReport::verification, 0))?;
    c.define_method("notes", method!(RbUpdateReport::notes, 0))?;
    Ok(())
}
