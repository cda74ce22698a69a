//! `RootZone::UpdateReport`: runs `rootzone update` natively (`UpdateReport._run`) and
//! reports what happened. lib/rootzone.rb's `RootZone.update` fetches the source first.

use crate::convert::{kwargs, options, readers, Kwargs};
use crate::errors::{self, OrRaise};
use crate::gvl;
use crate::rootzone_verification::RbVerification;
use ironshed_core::dns::update::{self, UpdateOptions, UpdateReport};
use ironshed_core::Progress;
use magnus::scan_args::scan_args;
use magnus::{function, method, prelude::*, Error, RHash, RString, Ruby, Symbol, Value};

#[magnus::wrap(class = "RootZone::UpdateReport", free_immediately, size)]
pub struct RbUpdateReport(UpdateReport);

kwargs!(UpdateOptions {
    source,
    trust_anchor,
    tinydns_root => root,
    dry_run,
    allow_older,
    signature,
    signature_name,
    keyring,
    now
});

impl RbUpdateReport {
    /// `_run(zone_bytes, **UpdateOptions)`, without the GVL.
    fn run(ruby: &Ruby, args: &[Value]) -> Result<Self, Error> {
        let a = scan_args::<(RString,), (), (), (), RHash, ()>(args)?;
        let opts: UpdateOptions = options(ruby, a.keywords)?;
        // SAFETY: copied before the GVL is released; no Ruby call in between.
        let zone = unsafe { a.required.0.as_slice() }.to_vec();
        let progress = Progress::new();
        match gvl::without_gvl(&progress, || update::update(zone, &opts, &progress)) {
            Some(r) => r.map(RbUpdateReport).or_raise(ruby),
            None => Err(errors::panic(ruby, "rootzone update")),
        }
    }
    fn outcome(ruby: &Ruby, rb_self: &Self) -> Symbol {
        ruby.to_symbol(rb_self.0.outcome.key())
    }
    fn verification(&self) -> RbVerification {
        RbVerification(self.0.verified.clone())
    }
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let m = ruby.define_module("RootZone")?;
    m.const_set("DEFAULT_TRUST_ANCHOR", update::DEFAULT_TRUST_ANCHOR)?;
    m.const_set("DEFAULT_TINYDNS_ROOT", update::DEFAULT_ROOT)?;
    let c = m.define_class("UpdateReport", ruby.class_object())?;
    c.const_set(
        "OPTIONS",
        crate::convert::symbols(ruby, UpdateOptions::KEYWORDS),
    )?;
    c.define_singleton_method("_run", function!(RbUpdateReport::run, -1))?;
    // served: [soa, ns, a, aaaa] line counts; not_served: "1502 NSEC, ...".
    readers!(c, RbUpdateReport; serial, previous_serial, delegations, served, not_served, notes);
    c.define_method("outcome", method!(RbUpdateReport::outcome, 0))?;
    c.define_method("verification", method!(RbUpdateReport::verification, 0))?;
    Ok(())
}
