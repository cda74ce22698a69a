//! What tinydns serves from a root zone, as tinydns `data` lines and as the `data.cdb`
//! records tinydns-data (djbdns 1.05) compiles from those lines.
//!
//! Served: the SOA (the zone's own serial and timers, a `Z` line), the apex NS RRset and
//! every delegation's NS RRset (`&` lines), every A record (`+`) and every AAAA record (a
//! generic `:` line of type 28: tinydns 1.05 has no AAAA line). Not served: the DNSSEC
//! records (RRSIG, NSEC, NSEC3, DNSKEY, DS, ZONEMD...: tinydns cannot sign answers), NS
//! records below a delegation (occluded), and any other type, which is counted.

use super::name::Name;
use super::record::{self, rtype, Soa};
use super::zone::{Position, Zone};
use std::collections::BTreeMap;
use std::fmt::Write;

/// One line of tinydns data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `Zfqdn:mname:rname:serial:refresh:retry:expire:minimum:ttl`
    Soa {
        /// Zone apex.
        owner: Name,
        /// The SOA RDATA.
        soa: Soa,
        /// TTL.
        ttl: u32,
    },
    /// `&fqdn::ns:ttl`
    Ns {
        /// Owner (apex or delegation).
        owner: Name,
        /// Name server.
        target: Name,
        /// TTL.
        ttl: u32,
    },
    /// `+fqdn:ip:ttl`
    A {
        /// Owner.
        owner: Name,
        /// IPv4 address.
        addr: [u8; 4],
        /// TTL.
        ttl: u32,
    },
    /// `:fqdn:type:rdata:ttl`, RDATA as octal escapes.
    Generic {
        /// Owner.
        owner: Name,
        /// Record type.
        rtype: u16,
        /// RDATA.
        rdata: Box<[u8]>,
        /// TTL.
        ttl: u32,
    },
}

/// A name as tinydns-data reads it: fully qualified with its trailing dot (so that a
/// one-label NS target is not taken for `x.ns.fqdn`), octets other than letters, digits,
/// `-` and `_` as `\ooo`.
fn dotted(n: &Name, out: &mut String) {
    if n.is_root() {
        out.push('.');
        return;
    }
    for label in n.labels() {
        for &c in label {
            if c.is_ascii_alphanumeric()
                || c == b'-'
                || c == b'_'
                || (c == b'*' && label.len() == 1)
            {
                out.push(c as char);
            } else {
                let _ = write!(out, "\\{c:03o}");
            }
        }
        out.push('.');
    }
}

impl Line {
    /// The data line, without newline.
    pub fn text(&self) -> String {
        let mut s = String::with_capacity(64);
        match self {
            Line::Soa { owner, soa, ttl } => {
                s.push('Z');
                dotted(owner, &mut s);
                s.push(':');
                dotted(&soa.mname, &mut s);
                s.push(':');
                dotted(&soa.rname, &mut s);
                let [r, t, e, m] = soa.timers;
                let _ = write!(s, ":{}:{r}:{t}:{e}:{m}:{ttl}", soa.serial);
            }
            Line::Ns { owner, target, ttl } => {
                s.push('&');
                dotted(owner, &mut s);
                s.push_str("::");
                dotted(target, &mut s);
                let _ = write!(s, ":{ttl}");
            }
            Line::A { owner, addr, ttl } => {
                s.push('+');
                dotted(owner, &mut s);
                let _ = write!(s, ":{}.{}.{}.{}:{ttl}", addr[0], addr[1], addr[2], addr[3]);
            }
            Line::Generic {
                owner,
                rtype,
                rdata,
                ttl,
            } => {
                s.push(':');
                dotted(owner, &mut s);
                let _ = write!(s, ":{rtype}:");
                for b in rdata.iter() {
                    let _ = write!(s, "\\{b:03o}");
                }
                let _ = write!(s, ":{ttl}");
            }
        }
        s
    }

    /// The CDB record tinydns-data writes for this line: key = owner in wire form (lower
    /// case); value = type, `=` (no location), TTL, 8-octet zero time stamp, RDATA. An owner
    /// `*.rest` is stored under `rest` with `*` in place of `=`, as tinydns-data does.
    pub fn cdb_record(&self) -> (Vec<u8>, Vec<u8>) {
        let (owner, t, ttl) = match self {
            Line::Soa { owner, ttl, .. } => (owner, rtype::SOA, *ttl),
            Line::Ns { owner, ttl, .. } => (owner, rtype::NS, *ttl),
            Line::A { owner, ttl, .. } => (owner, rtype::A, *ttl),
            Line::Generic {
                owner, rtype, ttl, ..
            } => (owner, *rtype, *ttl),
        };
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(&t.to_be_bytes());
        v.push(b'=');
        v.extend_from_slice(&ttl.to_be_bytes());
        v.extend_from_slice(&[0; 8]);
        match self {
            Line::Soa { soa, .. } => {
                v.extend_from_slice(soa.mname.wire());
                v.extend_from_slice(soa.rname.wire());
                v.extend_from_slice(&soa.serial.to_be_bytes());
                for x in soa.timers {
                    v.extend_from_slice(&x.to_be_bytes());
                }
            }
            Line::Ns { target, .. } => v.extend_from_slice(target.wire()),
            Line::A { addr, .. } => v.extend_from_slice(addr),
            Line::Generic { rdata, .. } => v.extend_from_slice(rdata),
        }
        let mut key = owner.wire();
        if key.starts_with(&[1, b'*']) {
            key = &key[2..];
            v[2] -= 19;
        }
        (key.to_vec(), v)
    }
}

/// The served part of a zone, and a count per record type of what was left out.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// The data lines, SOA first.
    pub lines: Vec<Line>,
    /// Records not served, by type.
    pub not_served: BTreeMap<u16, usize>,
}

impl Conversion {
    /// `1502 NSEC, 2900 RRSIG, ...` in type order, or `nothing`.
    pub fn not_served_text(&self) -> String {
        if self.not_served.is_empty() {
            return "nothing".into();
        }
        self.not_served
            .iter()
            .map(|(t, n)| format!("{n} {}", record::type_name(*t)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Number of lines of each kind: (SOA, NS, A, AAAA/generic).
    pub fn counts(&self) -> [usize; 4] {
        let mut c = [0; 4];
        for l in &self.lines {
            c[match l {
                Line::Soa { .. } => 0,
                Line::Ns { .. } => 1,
                Line::A { .. } => 2,
                Line::Generic { .. } => 3,
            }] += 1;
        }
        c
    }
}

/// Converts a zone to tinydns lines, in canonical order with the SOA first.
pub fn convert(zone: &Zone) -> Conversion {
    let mut lines = Vec::with_capacity(zone.records().len());
    let mut not_served: BTreeMap<u16, usize> = BTreeMap::new();
    let soa_rec = &zone.rrset(zone.apex(), rtype::SOA)[0];
    lines.push(Line::Soa {
        owner: zone.apex().clone(),
        soa: zone.soa().clone(),
        ttl: soa_rec.ttl,
    });
    for (recs, pos) in zone.names() {
        for r in recs {
            let owner = r.owner.clone();
            let line = match r.rtype {
                rtype::SOA => continue,
                rtype::NS if pos != Position::Glue => {
                    record::ns_target(&r.rdata).map(|target| Line::Ns {
                        owner,
                        target,
                        ttl: r.ttl,
                    })
                }
                rtype::A => <[u8; 4]>::try_from(&r.rdata[..]).ok().map(|addr| Line::A {
                    owner,
                    addr,
                    ttl: r.ttl,
                }),
                rtype::AAAA if r.rdata.len() == 16 => Some(Line::Generic {
                    owner,
                    rtype: rtype::AAAA,
                    rdata: r.rdata.clone(),
                    ttl: r.ttl,
                }),
                _ => None,
            };
            match line {
                Some(l) => lines.push(l),
                None => *not_served.entry(r.rtype).or_default() += 1,
            }
        }
    }
    Conversion { lines, not_served }
}

/// The whole `data` file: the header lines (each becomes a `#` comment) and the lines.
pub fn data_file(header: &[String], lines: &[Line]) -> Vec<u8> {
    let mut s = String::with_capacity(lines.len() * 48 + 512);
    for h in header {
        s.push_str("# ");
        s.push_str(h);
        s.push('\n');
    }
    for l in lines {
        s.push_str(&l.text());
        s.push('\n');
    }
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::parse_zone;

    #[test]
    fn lines_and_records() {
        let z = parse_zone(
            "t",
            b". 86400 IN SOA a.root-servers.net. nstld.verisign-grs.com. 7 1800 900 604800 86400\n\
              . 518400 IN NS a.root-servers.net.\n\
              a.root-servers.net. 518400 IN A 198.41.0.4\n\
              a.root-servers.net. 518400 IN AAAA 2001:503:ba3e::2:30\n\
              xn--p1ai. 172800 IN NS a.dns.ripn.net.\n\
              xn--p1ai. 86400 IN DS 1 8 2 00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF\n\
              lo. 172800 IN NS localhost.\n"
                .to_vec(),
        )
        .unwrap();
        let c = convert(&z);
        let text: Vec<String> = c.lines.iter().map(Line::text).collect();
        assert_eq!(
            text,
            [
                "Z.:a.root-servers.net.:nstld.verisign-grs.com.:7:1800:900:604800:86400:86400",
                "&.::a.root-servers.net.:518400",
                "&lo.::localhost.:172800",
                "+a.root-servers.net.:198.41.0.4:518400",
                ":a.root-servers.net.:28:\\040\\001\\005\\003\\272\\076\\000\\000\\000\\000\\000\\000\\000\\002\\000\\060:518400",
                "&xn--p1ai.::a.dns.ripn.net.:172800",
            ]
        );
        assert_eq!(c.not_served_text(), "1 DS");
        let (k, v) = c.lines[3].cdb_record();
        assert_eq!(k, b"\x01a\x0croot-servers\x03net\x00");
        assert_eq!(
            v,
            b"\x00\x01=\x00\x07\xe9\x00\x00\x00\x00\x00\x00\x00\x00\x00\xc6\x29\x00\x04"
        );
    }

    #[test]
    fn odd_octets_are_escaped() {
        let z = parse_zone(
            "t",
            b". 1 IN SOA a. b. 1 2 3 4 5\nw\\:x\\032y. 1 IN A 192.0.2.1\n*.w. 1 IN A 192.0.2.2\n"
                .to_vec(),
        )
        .unwrap();
        let c = convert(&z);
        let text: Vec<String> = c.lines.iter().map(Line::text).collect();
        assert!(text.contains(&"+*.w.:192.0.2.2:1".to_string()), "{text:?}");
        assert!(
            text.contains(&"+w\\072x\\040y.:192.0.2.1:1".to_string()),
            "{text:?}"
        );
        let wild = c.lines.iter().find(|l| l.text().starts_with("+*")).unwrap();
        let (k, v) = wild.cdb_record();
        assert_eq!(k, b"\x01w\x00");
        assert_eq!(v[2], b'*');
    }
}
