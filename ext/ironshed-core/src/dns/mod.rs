//! The DNS root zone for djbdns (RFC 8806): read a zone file, prove it complete and
//! authentic (DNSSEC from a trust anchor, ZONEMD over the whole zone), convert what tinydns
//! can serve to its `data` format and `data.cdb`, and install both atomically.
//!
//! * [`zonefile`]: reading (file, FIFO, stdin, gzip) and master-file scanning.
//! * [`zone`]: the sorted, de-duplicated zone and its delegations.
//! * [`anchor`]: trust anchors (DNSKEY or DS records).
//! * [`dnssec`], [`zonemd`], [`verify`]: the verification.
//! * [`tinydns`]: what tinydns serves, as `data` lines and `data.cdb` records.
//! * [`install`]: the instance root: what is installed, the atomic replacement.
//! * [`update`]: the whole `rootzone update`, every check before the first write.

pub mod anchor;
pub mod cdb;
pub mod dnssec;
mod error;
pub mod install;
pub mod name;
pub mod pgp;
pub mod record;
pub mod time;
pub mod tinydns;
pub mod update;
pub mod verify;
pub mod zone;
pub mod zonefile;
pub mod zonemd;

pub use anchor::TrustAnchor;
pub use error::Error;
pub use name::Name;
pub use record::Record;
pub use verify::{verify, Verified};
pub use zone::{Delegation, Zone};

/// Reads, gunzips and parses a zone from bytes; `source` names it in messages.
pub fn parse_zone(source: &str, bytes: Vec<u8>) -> Result<Zone, Error> {
    let text = zonefile::gunzip_if_needed(source, bytes)?;
    let records = zonefile::parse(source, &text)?;
    Zone::from_records(source, records)
}
