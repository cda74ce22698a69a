//! A zone as a sorted set of records: canonical order (RFC 4034 §6.1–6.3 with RRsets of one
//! owner ordered by type, as RFC 8976 §3.3.1 prescribes), duplicates removed, the apex found
//! from the SOA, and every name classified as apex, delegation point, glue or in-zone data.

use super::error::Error;
use super::name::Name;
use super::record::{self, rtype, Record, Soa};
use std::cmp::Ordering;
use std::net::IpAddr;

/// A parsed zone. Nothing here says it is authentic: see [`super::verify`].
#[derive(Debug, Clone)]
pub struct Zone {
    /// The source as the user named it, for messages.
    pub source: String,
    apex: Name,
    soa: Soa,
    records: Vec<Record>,
    /// One entry per owner name: (first record index, end index, position).
    owners: Vec<Owner>,
}

/// Where a name sits in the zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The zone apex.
    Apex,
    /// A zone cut: the name has NS records and is not the apex (its DS and NSEC are still
    /// authoritative data of this zone).
    Delegation,
    /// Below a zone cut: glue (or occluded data).
    Glue,
    /// Any other name of the zone: authoritative.
    InZone,
}

#[derive(Debug, Clone)]
struct Owner {
    start: usize,
    end: usize,
    position: Position,
}

/// One delegation of the zone, with what it needs to be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    /// The delegated name (`com.`).
    pub name: Name,
    /// The TTL of its NS RRset.
    pub ttl: u32,
    /// Its name servers, in canonical order.
    pub nameservers: Vec<Name>,
    /// Addresses of those name servers found in the zone (A and AAAA glue).
    pub glue: Vec<(Name, IpAddr)>,
    /// Its DS records as RDATA (key tag, algorithm, digest type, digest).
    pub ds: Vec<Box<[u8]>>,
}

fn cmp_records(a: &Record, b: &Record) -> Ordering {
    a.owner
        .canonical_cmp(&b.owner)
        .then(a.rtype.cmp(&b.rtype))
        .then_with(|| a.rdata.cmp(&b.rdata))
}

impl Zone {
    /// Builds a zone from records in any order. Refuses a zone without exactly one SOA, or
    /// with records outside the SOA's name.
    pub fn from_records(source: &str, mut records: Vec<Record>) -> Result<Zone, Error> {
        records.sort_unstable_by(cmp_records);
        // RFC 4034 §6.3 / RFC 8976 §3.3.1.1: duplicate RRs count once (an AXFR transcript
        // repeats the SOA at its end).
        records.dedup_by(|b, a| a.owner == b.owner && a.rtype == b.rtype && a.rdata == b.rdata);

        let mut soas = records.iter().filter(|r| r.rtype == rtype::SOA);
        let soa_rec = soas
            .next()
            .ok_or_else(|| Error::Zone(format!("{source}: no SOA record: not a zone")))?;
        if let Some(other) = soas.next() {
            return Err(Error::Zone(format!(
                "{source}: two different SOA records ({} and {}): not one zone",
                soa_rec.owner, other.owner
            )));
        }
        let apex = soa_rec.owner.clone();
        let soa = Soa::parse(&soa_rec.rdata)
            .ok_or_else(|| Error::Zone(format!("{source}: {apex} SOA: malformed RDATA")))?;
        if let Some(out) = records.iter().find(|r| !r.owner.is_at_or_below(&apex)) {
            return Err(Error::Zone(format!(
                "{source}: {} {} is outside the zone {apex}",
                out.owner,
                record::type_name(out.rtype)
            )));
        }
        let owners = classify(&records, &apex);
        Ok(Zone {
            source: source.to_string(),
            apex,
            soa,
            records,
            owners,
        })
    }

    /// The zone's name (the SOA owner).
    pub fn apex(&self) -> &Name {
        &self.apex
    }

    /// The SOA RDATA.
    pub fn soa(&self) -> &Soa {
        &self.soa
    }

    /// The SOA serial.
    pub fn serial(&self) -> u32 {
        self.soa.serial
    }

    /// All records, canonical order, no duplicates.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Each owner name's records and position, in canonical order.
    pub fn names(&self) -> impl Iterator<Item = (&[Record], Position)> {
        self.owners
            .iter()
            .map(|o| (&self.records[o.start..o.end], o.position))
    }

    /// The records of `owner` (all types).
    pub fn at(&self, owner: &Name) -> &[Record] {
        match self
            .owners
            .binary_search_by(|o| self.records[o.start].owner.canonical_cmp(owner))
        {
            Ok(i) => &self.records[self.owners[i].start..self.owners[i].end],
            Err(_) => &[],
        }
    }

    /// The RRset `owner`/`t`.
    pub fn rrset(&self, owner: &Name, t: u16) -> &[Record] {
        rrset_of(self.at(owner), t)
    }

    /// The delegations in canonical order.
    pub fn delegations(&self) -> Vec<Delegation> {
        self.names()
            .filter(|(_, p)| *p == Position::Delegation)
            .map(|(recs, _)| {
                let ns = rrset_of(recs, rtype::NS);
                let nameservers: Vec<Name> = ns
                    .iter()
                    .filter_map(|r| record::ns_target(&r.rdata))
                    .collect();
                let mut glue = Vec::new();
                for n in &nameservers {
                    for r in self.at(n) {
                        let addr = match r.rtype {
                            rtype::A => record::a_addr(&r.rdata).map(IpAddr::V4),
                            rtype::AAAA => record::aaaa_addr(&r.rdata).map(IpAddr::V6),
                            _ => None,
                        };
                        glue.extend(addr.map(|a| (n.clone(), a)));
                    }
                }
                Delegation {
                    name: recs[0].owner.clone(),
                    ttl: ns.first().map_or(0, |r| r.ttl),
                    nameservers,
                    glue,
                    ds: rrset_of(recs, rtype::DS)
                        .iter()
                        .map(|r| r.rdata.clone())
                        .collect(),
                }
            })
            .collect()
    }
}

/// The records of type `t` within one owner's records (sorted by type).
pub fn rrset_of(recs: &[Record], t: u16) -> &[Record] {
    let lo = recs.partition_point(|r| r.rtype < t);
    let hi = recs.partition_point(|r| r.rtype <= t);
    &recs[lo..hi]
}

/// Groups sorted records by owner and tells apex, cuts, glue and in-zone names apart. In
/// canonical order a cut's subtree follows the cut directly, so one pass suffices.
fn classify(records: &[Record], apex: &Name) -> Vec<Owner> {
    let mut owners = Vec::new();
    let mut cut: Option<&Name> = None;
    let mut i = 0;
    while i < records.len() {
        let name = &records[i].owner;
        let mut j = i + 1;
        while j < records.len() && records[j].owner == *name {
            j += 1;
        }
        if cut.is_some_and(|c| !name.is_at_or_below(c)) {
            cut = None;
        }
        let position = if name == apex {
            Position::Apex
        } else if cut.is_some() {
            Position::Glue
        } else if records[i..j].iter().any(|r| r.rtype == rtype::NS) {
            cut = Some(name);
            Position::Delegation
        } else {
            Position::InZone
        };
        owners.push(Owner {
            start: i,
            end: j,
            position,
        });
        i = j;
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::zonefile::parse;

    const ZONE: &str = "\
. 86400 IN SOA a.root-servers.net. nstld.verisign-grs.com. 2024120600 1800 900 604800 86400
. 518400 IN NS a.root-servers.net.
com. 172800 IN NS a.gtld-servers.net.
com. 172800 IN NS ns.nic.com.
ns.nic.com. 172800 IN A 192.0.2.53
ns.nic.com. 172800 IN AAAA 2001:db8::53
com. 86400 IN DS 1 8 2 0011223344556677889900112233445566778899001122334455667788990011
a.gtld-servers.net. 172800 IN A 192.5.6.30
net. 172800 IN NS a.gtld-servers.net.
a.root-servers.net. 518400 IN A 198.41.0.4
. 86400 IN SOA a.root-servers.net. nstld.verisign-grs.com. 2024120600 1800 900 604800 86400
";

    fn zone() -> Zone {
        Zone::from_records("t", parse("t", ZONE.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn sorted_deduplicated_and_classified() {
        let z = zone();
        assert_eq!(z.serial(), 2024120600);
        assert_eq!(z.records().len(), 10, "the repeated SOA counts once");
        let names: Vec<(String, Position)> = z
            .names()
            .map(|(r, p)| (r[0].owner.to_string(), p))
            .collect();
        let want = [
            (".", Position::Apex),
            ("com.", Position::Delegation),
            ("ns.nic.com.", Position::Glue),
            ("net.", Position::Delegation),
            ("a.gtld-servers.net.", Position::Glue),
            ("a.root-servers.net.", Position::Glue),
        ];
        let want: Vec<(String, Position)> = want.iter().map(|(n, p)| (n.to_string(), *p)).collect();
        assert_eq!(names, want);
    }

    #[test]
    fn delegations_carry_ns_glue_and_ds() {
        let d = zone().delegations();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].name.to_string(), "com.");
        let ns: Vec<String> = d[0].nameservers.iter().map(|n| n.to_string()).collect();
        assert_eq!(ns, ["a.gtld-servers.net.", "ns.nic.com."]);
        assert_eq!(d[0].glue.len(), 3);
        assert_eq!(d[0].ds.len(), 1);
        assert_eq!(d[0].ttl, 172800);
    }

    #[test]
    fn refuses_no_soa_two_soas_and_outside_records() {
        let recs = parse("t", b"com. 1 IN NS a.\n").unwrap();
        assert!(Zone::from_records("t", recs)
            .unwrap_err()
            .to_string()
            .contains("no SOA"));
        let recs = parse(
            "t",
            b". 1 IN SOA a. b. 1 2 3 4 5\n. 1 IN SOA a. b. 2 2 3 4 5\n",
        )
        .unwrap();
        let e = Zone::from_records("t", recs).unwrap_err().to_string();
        assert!(e.contains("two different SOA"), "{e}");
        let recs = parse(
            "t",
            b"com. 1 IN SOA a. b. 1 2 3 4 5\nnet. 1 IN A 192.0.2.1\n",
        )
        .unwrap();
        let e = Zone::from_records("t", recs).unwrap_err().to_string();
        assert!(e.contains("net. A is outside the zone com."), "{e}");
    }
}
