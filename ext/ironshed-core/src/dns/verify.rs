//! The verdict on a zone: DNSSEC from the trust anchor down to every authoritative RRset,
//! then ZONEMD over the whole zone. Nothing is ever accepted on a signature this build
//! cannot check.
//!
//! Order (RFC 8976 §4): the apex DNSKEY RRset against the trust anchor; the SOA and ZONEMD
//! RRsets against the zone's keys; the ZONEMD digest; then every other authoritative RRset
//! (DS and NSEC at delegations, everything at the apex and at in-zone names). Delegation NS
//! RRsets and glue are not signed: ZONEMD is what proves them.

use super::anchor::{AnchorMatch, TrustAnchor};
use super::dnssec::{self, describe_algorithm};
use super::error::Error;
use super::name::Name;
use super::record::{self, rtype, Dnskey, Record, Rrsig};
use super::time::{format_utc, serial_le, unwrap_time};
use super::zone::{rrset_of, Position, Zone};
use super::zonemd::{self, ZonemdMatch};

/// What a successful verification established.
#[derive(Debug, Clone)]
pub struct Verified {
    /// SOA serial.
    pub serial: u32,
    /// Key tags of the trust-anchor keys whose signature over the DNSKEY RRset verified.
    pub anchor_keys: Vec<u16>,
    /// The zone keys (tag, algorithm) from the verified DNSKEY RRset.
    pub zone_keys: Vec<(u16, u8)>,
    /// RRsets whose signatures were checked.
    pub rrsets: usize,
    /// Signatures that verified.
    pub signatures: usize,
    /// The ZONEMD digests that matched.
    pub zonemd: Vec<ZonemdMatch>,
    /// Remarks (ignored ZONEMD records...).
    pub notes: Vec<String>,
    /// When the first RRset loses its last valid signature (seconds since 1970): the copy
    /// must be replaced before then.
    pub valid_until: i64,
    /// That RRset (`com. DS`).
    pub valid_until_rrset: String,
}

/// Why one RRSIG did not validate an RRset, ranked: the highest rank among an RRset's
/// signatures is reported.
#[derive(Debug, Clone)]
enum Fail {
    Unsupported(u8),
    Malformed,
    WrongSigner(Name),
    UnknownKey(u16, u8),
    NotYet(u16, i64),
    Expired(u16, i64),
    Mismatch(u16, u8),
}

impl Fail {
    fn rank(&self) -> u8 {
        match self {
            Fail::Unsupported(_) => 0,
            Fail::Malformed => 1,
            Fail::WrongSigner(_) => 2,
            Fail::UnknownKey(..) => 3,
            Fail::NotYet(..) | Fail::Expired(..) => 4,
            Fail::Mismatch(..) => 5,
        }
    }
}

/// The keys an RRset may be signed with.
struct Keys<'a> {
    keys: Vec<Dnskey<'a>>,
    /// For messages: what these keys are ("the zone's DNSKEY RRset", "the trust anchor").
    what: String,
}

struct Ok {
    until: i64,
    sigs: usize,
    tags: Vec<u16>,
}

/// One RRset's verdict: how it validated, or its best failure (`None`: no RRSIG at all).
type Checked = Result<Ok, Option<Fail>>;

fn check_rrset(zone: &Zone, set: &[Record], sigs: &[Record], keys: &Keys, now: u64) -> Checked {
    let t = set[0].rtype;
    let mut best: Option<Fail> = None;
    let mut ok = Ok {
        until: i64::MIN,
        sigs: 0,
        tags: Vec::new(),
    };
    let mut note = |f: Fail| {
        if best.as_ref().is_none_or(|b| f.rank() > b.rank()) {
            best = Some(f);
        }
    };
    for s in sigs.iter().filter(|s| s.covered() == Some(t)) {
        let Some(sig) = Rrsig::parse(&s.rdata) else {
            note(Fail::Malformed);
            continue;
        };
        if !dnssec::algorithm_supported(sig.algorithm) {
            note(Fail::Unsupported(sig.algorithm));
            continue;
        }
        if sig.signer != *zone.apex() {
            note(Fail::WrongSigner(sig.signer.clone()));
            continue;
        }
        let candidates: Vec<&Dnskey> = keys
            .keys
            .iter()
            .filter(|k| k.algorithm == sig.algorithm && k.key_tag() == sig.key_tag)
            .collect();
        if candidates.is_empty() {
            note(Fail::UnknownKey(sig.key_tag, sig.algorithm));
            continue;
        }
        let inception = unwrap_time(sig.inception, now);
        let expiration = unwrap_time(sig.expiration, now);
        if !serial_le(sig.inception, now as u32) {
            note(Fail::NotYet(sig.key_tag, inception));
            continue;
        }
        if !serial_le(now as u32, sig.expiration) {
            note(Fail::Expired(sig.key_tag, expiration));
            continue;
        }
        let Some(data) = dnssec::signed_data(&sig, set) else {
            note(Fail::Malformed);
            continue;
        };
        let good = candidates
            .iter()
            .any(|k| dnssec::verify(k, &data, sig.signature).is_ok());
        if good {
            ok.sigs += 1;
            ok.until = ok.until.max(expiration);
            ok.tags.push(sig.key_tag);
        } else {
            note(Fail::Mismatch(sig.key_tag, sig.algorithm));
        }
    }
    if ok.sigs > 0 {
        Result::Ok(ok)
    } else {
        Err(best)
    }
}

/// Turns the best failure of an RRset into the refusal, naming the RRset, key tag and time.
fn refusal(zone: &Zone, set: &[Record], f: Option<Fail>, keys: &Keys, now: u64) -> Error {
    let what = format!(
        "{}: {} {}",
        zone.source,
        set[0].owner,
        record::type_name(set[0].rtype)
    );
    let now_s = format_utc(now as i64);
    match f {
        None => Error::Signature(format!("{what}: no RRSIG (the RRset is not signed)")),
        Some(Fail::Malformed) => Error::Signature(format!("{what}: its RRSIG is malformed")),
        Some(Fail::WrongSigner(n)) => Error::Signature(format!(
            "{what}: signed by {n}, not by the zone {}",
            zone.apex()
        )),
        Some(Fail::Unsupported(a)) => Error::Unsupported(format!(
            "{what}: signed only with {}, which this build does not verify \
             (supported: 8 RSASHA256, 10 RSASHA512, 13 ECDSAP256SHA256, 14 ECDSAP384SHA384, 15 ED25519)",
            describe_algorithm(a)
        )),
        Some(Fail::UnknownKey(tag, a)) => Error::Signature(format!(
            "{what}: signed by key {tag} ({}), which is not in {}",
            dnssec::algorithm_name(a),
            keys.what
        )),
        Some(Fail::NotYet(tag, t)) => Error::Expired(format!(
            "{what}: RRSIG by key {tag} is not valid before {} (now {now_s})",
            format_utc(t)
        )),
        Some(Fail::Expired(tag, t)) => Error::Expired(format!(
            "{what}: RRSIG by key {tag} expired at {} (now {now_s})",
            format_utc(t)
        )),
        Some(Fail::Mismatch(tag, a)) => Error::Signature(format!(
            "{what}: RRSIG by key {tag} ({}) does not verify: the RRset or its signature was altered",
            dnssec::algorithm_name(a)
        )),
    }
}

/// A key that may sign the zone's data (RFC 4035 §5.3.1, RFC 5011 §2.1): the Zone Key flag,
/// protocol 3, not revoked.
fn usable_key(k: &Dnskey) -> bool {
    k.flags & Dnskey::ZONE != 0 && k.flags & Dnskey::REVOKE == 0 && k.protocol == 3
}

fn account(v: &mut Verified, set: &[Record], ok: Ok) {
    v.rrsets += 1;
    v.signatures += ok.sigs;
    if ok.until < v.valid_until {
        v.valid_until = ok.until;
        v.valid_until_rrset = format!("{} {}", set[0].owner, record::type_name(set[0].rtype));
    }
}

/// Verifies `zone` against `anchor` at time `now` (seconds since 1970). Returns the first
/// failure in the order described in the module documentation.
pub fn verify(zone: &Zone, anchor: &TrustAnchor, now: u64) -> Result<Verified, Error> {
    let apex = zone.apex();
    let src = &zone.source;
    if anchor.owner != *apex {
        return Err(Error::TrustAnchor(format!(
            "{}: the trust anchor is for {}, the zone is {apex}",
            anchor.source, anchor.owner
        )));
    }
    let at_apex = zone.at(apex);
    let apex_sigs = rrset_of(at_apex, rtype::RRSIG);
    let dnskey_set = rrset_of(at_apex, rtype::DNSKEY);
    if dnskey_set.is_empty() {
        return Err(Error::TrustAnchor(format!(
            "{src}: no DNSKEY RRset at {apex}: the zone is not signed"
        )));
    }
    let all: Vec<Dnskey> = dnskey_set
        .iter()
        .filter_map(|r| Dnskey::parse(&r.rdata))
        .collect();
    let (anchored, unusable): (Vec<Dnskey>, Vec<Dnskey>) = all
        .iter()
        .filter(|k| anchor.matches(k) == AnchorMatch::Yes)
        .cloned()
        .partition(usable_key);
    if anchored.is_empty() && !unusable.is_empty() {
        let k = &unusable[0];
        return Err(Error::TrustAnchor(format!(
            "{src}: the zone's DNSKEY {} matching the trust anchor {} is {} (flags {}): it cannot \
             sign the zone",
            k.key_tag(),
            anchor.source,
            if k.flags & Dnskey::REVOKE != 0 {
                "revoked"
            } else {
                "not a zone key"
            },
            k.flags
        )));
    }
    if anchored.is_empty() {
        let algs = anchor.algorithms();
        if !algs.is_empty() && algs.iter().all(|a| !dnssec::algorithm_supported(*a)) {
            return Err(Error::Unsupported(format!(
                "{}: the trust anchor ({}) uses {}, which this build does not verify",
                anchor.source,
                anchor.describe(),
                describe_algorithm(algs[0])
            )));
        }
        let tags: Vec<String> = all.iter().map(|k| k.key_tag().to_string()).collect();
        return Err(Error::TrustAnchor(format!(
            "{src}: none of the zone's DNSKEYs (key tags {}) matches the trust anchor {} ({})",
            tags.join(", "),
            anchor.source,
            anchor.describe()
        )));
    }
    let anchor_keys = Keys {
        keys: anchored,
        what: format!("the trust anchor ({})", anchor.describe()),
    };
    let dk =
        check_rrset(zone, dnskey_set, apex_sigs, &anchor_keys, now).map_err(|f| {
            match refusal(zone, dnskey_set, f, &anchor_keys, now) {
                Error::Signature(m) => Error::TrustAnchor(m),
                other => other,
            }
        })?;
    let zone_keys = Keys {
        keys: all.iter().filter(|k| usable_key(k)).cloned().collect(),
        what: format!("the zone's DNSKEY RRset at {apex}"),
    };

    let mut v = Verified {
        serial: zone.serial(),
        anchor_keys: dk.tags.clone(),
        zone_keys: zone_keys
            .keys
            .iter()
            .map(|k| (k.key_tag(), k.algorithm))
            .collect(),
        rrsets: 1,
        signatures: dk.sigs,
        zonemd: Vec::new(),
        notes: Vec::new(),
        valid_until: dk.until,
        valid_until_rrset: format!("{apex} DNSKEY"),
    };

    // The SOA and ZONEMD RRsets first (RFC 8976 §4 step 3), then the digest.
    let zmd = rrset_of(at_apex, rtype::ZONEMD);
    if zmd.is_empty() {
        zonemd::check(zone)?; // reports the missing ZONEMD
    }
    for set in [rrset_of(at_apex, rtype::SOA), zmd] {
        let ok = check_rrset(zone, set, apex_sigs, &zone_keys, now)
            .map_err(|f| refusal(zone, set, f, &zone_keys, now))?;
        account(&mut v, set, ok);
    }
    let (matches, notes) = zonemd::check(zone)?;
    v.zonemd = matches;
    v.notes = notes;

    // Every other authoritative RRset, checked on all cores; the first failure in canonical
    // order is reported, whatever the threads' timing.
    let mut jobs: Vec<(&[Record], &[Record])> = Vec::new();
    for (recs, pos) in zone.names() {
        let sigs = rrset_of(recs, rtype::RRSIG);
        let mut i = 0;
        while i < recs.len() {
            let t = recs[i].rtype;
            let n = recs[i..].iter().take_while(|r| r.rtype == t).count();
            let set = &recs[i..i + n];
            i += n;
            let wanted = match pos {
                Position::Glue => false,
                Position::Delegation => t == rtype::DS || t == rtype::NSEC,
                Position::Apex => {
                    !matches!(t, rtype::RRSIG | rtype::DNSKEY | rtype::SOA | rtype::ZONEMD)
                }
                Position::InZone => t != rtype::RRSIG,
            };
            if wanted {
                jobs.push((set, sigs));
            }
        }
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
        .min(jobs.len().div_ceil(64).max(1));
    let chunk = jobs.len().div_ceil(threads).max(1);
    let results: Vec<Option<Vec<Checked>>> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| {
                let zk = &zone_keys;
                s.spawn(move || {
                    part.iter()
                        .map(|(set, sigs)| check_rrset(zone, set, sigs, zk, now))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().ok()).collect()
    });
    let Some(results) = results.into_iter().collect::<Option<Vec<_>>>() else {
        return Err(Error::Signature(format!(
            "{src}: internal error: a verification thread failed"
        )));
    };
    for (res, (set, _)) in results.into_iter().flatten().zip(&jobs) {
        match res {
            Result::Ok(ok) => account(&mut v, set, ok),
            Err(f) => return Err(refusal(zone, set, f, &zone_keys, now)),
        }
    }
    Ok(v)
}
