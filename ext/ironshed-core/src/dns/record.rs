//! Resource records in canonical wire form and typed views of the RDATA this tool reads.
//!
//! Every view parses with bounds checks and returns `None` for RDATA that is too short or
//! malformed, so that a record given in RFC 3597 generic form (`TYPE46 \# 3 010203`) or
//! damaged input never panics the verifier.

use super::name::Name;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Record type numbers used here.
pub mod rtype {
    /// IPv4 address.
    pub const A: u16 = 1;
    /// Name server.
    pub const NS: u16 = 2;
    /// Start of authority.
    pub const SOA: u16 = 6;
    /// IPv6 address.
    pub const AAAA: u16 = 28;
    /// Delegation signer.
    pub const DS: u16 = 43;
    /// DNSSEC signature.
    pub const RRSIG: u16 = 46;
    /// Next secure (authenticated denial).
    pub const NSEC: u16 = 47;
    /// DNSSEC public key.
    pub const DNSKEY: u16 = 48;
    /// Hashed authenticated denial.
    pub const NSEC3: u16 = 50;
    /// NSEC3 parameters.
    pub const NSEC3PARAM: u16 = 51;
    /// Child DS.
    pub const CDS: u16 = 59;
    /// Child DNSKEY.
    pub const CDNSKEY: u16 = 60;
    /// Message digest for DNS zones (RFC 8976).
    pub const ZONEMD: u16 = 63;
}

/// Class IN, the only class a root zone has.
pub const CLASS_IN: u16 = 1;

/// The mnemonic of a record type (`NS`, `RRSIG`, `TYPE65280`).
pub fn type_name(t: u16) -> String {
    domain::base::iana::Rtype::from_int(t).to_string()
}

/// One resource record of class IN, in canonical form: lower-cased owner, canonical RDATA
/// (names inside lower-cased where RFC 4034 §6.2 says so).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Owner name.
    pub owner: Name,
    /// Record type.
    pub rtype: u16,
    /// Time to live as given in the zone.
    pub ttl: u32,
    /// RDATA in canonical wire form.
    pub rdata: Box<[u8]>,
}

impl Record {
    /// The type an RRSIG covers, for RRSIG records with at least two octets of RDATA.
    pub fn covered(&self) -> Option<u16> {
        if self.rtype == rtype::RRSIG {
            Some(u16::from_be_bytes([
                *self.rdata.first()?,
                *self.rdata.get(1)?,
            ]))
        } else {
            None
        }
    }

    /// Appends the record's canonical wire form with `ttl` in place of its own TTL:
    /// owner | type | class | TTL | RDLENGTH | RDATA.
    pub fn write_canonical(&self, out: &mut Vec<u8>, ttl: u32) {
        out.extend_from_slice(self.owner.wire());
        self.write_after_owner(out, ttl);
    }

    /// The part of the canonical form after the owner name.
    pub fn write_after_owner(&self, out: &mut Vec<u8>, ttl: u32) {
        out.extend_from_slice(&self.rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(self.rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.rdata);
    }
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

/// SOA RDATA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Soa {
    /// Primary name server.
    pub mname: Name,
    /// Responsible mailbox, as a name.
    pub rname: Name,
    /// Serial number.
    pub serial: u32,
    /// Refresh, retry, expire and minimum (negative-caching) timers, in seconds.
    pub timers: [u32; 4],
}

impl Soa {
    /// Parses SOA RDATA.
    pub fn parse(rdata: &[u8]) -> Option<Soa> {
        let (mname, a) = Name::from_wire(rdata)?;
        let (rname, b) = Name::from_wire(rdata.get(a..)?)?;
        let rest = rdata.get(a + b..)?;
        if rest.len() != 20 {
            return None;
        }
        let f = |i: usize| u32_at(rest, i * 4);
        Some(Soa {
            mname,
            rname,
            serial: f(0)?,
            timers: [f(1)?, f(2)?, f(3)?, f(4)?],
        })
    }
}

/// RRSIG RDATA (RFC 4034 §3.1).
#[derive(Clone, Debug)]
pub struct Rrsig<'a> {
    /// The type of the RRset it signs.
    pub type_covered: u16,
    /// Signing algorithm.
    pub algorithm: u8,
    /// Labels of the owner name (fewer than the owner's: a wildcard expansion).
    pub labels: u8,
    /// TTL of the RRset when signed.
    pub original_ttl: u32,
    /// Not valid after (seconds since 1970, serial-number arithmetic).
    pub expiration: u32,
    /// Not valid before.
    pub inception: u32,
    /// Key tag of the signing DNSKEY.
    pub key_tag: u16,
    /// Signer's name (the zone apex).
    pub signer: Name,
    /// RDATA without the signature: what is signed in front of the RRset.
    pub signed_head: &'a [u8],
    /// The signature.
    pub signature: &'a [u8],
}

impl<'a> Rrsig<'a> {
    /// Parses RRSIG RDATA.
    pub fn parse(rdata: &'a [u8]) -> Option<Rrsig<'a>> {
        let (signer, n) = Name::from_wire(rdata.get(18..)?)?;
        let head = rdata.get(..18 + n)?;
        Some(Rrsig {
            type_covered: u16_at(rdata, 0)?,
            algorithm: rdata[2],
            labels: rdata[3],
            original_ttl: u32_at(rdata, 4)?,
            expiration: u32_at(rdata, 8)?,
            inception: u32_at(rdata, 12)?,
            key_tag: u16_at(rdata, 16)?,
            signer,
            signed_head: head,
            signature: &rdata[18 + n..],
        })
    }
}

/// DNSKEY RDATA (RFC 4034 §2.1).
#[derive(Clone, Debug)]
pub struct Dnskey<'a> {
    /// Flags: 0x0100 zone key, 0x0001 secure entry point, 0x0080 revoked.
    pub flags: u16,
    /// Always 3.
    pub protocol: u8,
    /// Algorithm.
    pub algorithm: u8,
    /// Public key in the algorithm's DNSKEY encoding.
    pub public_key: &'a [u8],
    /// The whole RDATA (for key tags and DS digests).
    pub rdata: &'a [u8],
}

impl<'a> Dnskey<'a> {
    /// Zone Key flag.
    pub const ZONE: u16 = 0x0100;
    /// Revoked flag (RFC 5011).
    pub const REVOKE: u16 = 0x0080;
    /// Secure Entry Point flag.
    pub const SEP: u16 = 0x0001;

    /// Parses DNSKEY RDATA.
    pub fn parse(rdata: &'a [u8]) -> Option<Dnskey<'a>> {
        if rdata.len() < 4 {
            return None;
        }
        Some(Dnskey {
            flags: u16_at(rdata, 0)?,
            protocol: rdata[2],
            algorithm: rdata[3],
            public_key: &rdata[4..],
            rdata,
        })
    }

    /// The key tag (RFC 4034 Appendix B), for every algorithm but the obsolete RSAMD5.
    pub fn key_tag(&self) -> u16 {
        if self.algorithm == 1 {
            // RSAMD5: the third and second-to-last octets of the modulus.
            let k = self.public_key;
            return if k.len() >= 3 {
                u16::from_be_bytes([k[k.len() - 3], k[k.len() - 2]])
            } else {
                0
            };
        }
        let mut ac: u32 = 0;
        for (i, &b) in self.rdata.iter().enumerate() {
            ac += if i & 1 == 1 {
                b as u32
            } else {
                (b as u32) << 8
            };
        }
        ac += (ac >> 16) & 0xffff;
        (ac & 0xffff) as u16
    }
}

/// DS RDATA (RFC 4034 §5.1).
#[derive(Clone, Debug)]
pub struct Ds<'a> {
    /// Key tag of the DNSKEY it points at.
    pub key_tag: u16,
    /// That key's algorithm.
    pub algorithm: u8,
    /// Digest type: 1 SHA-1, 2 SHA-256, 4 SHA-384.
    pub digest_type: u8,
    /// The digest.
    pub digest: &'a [u8],
}

impl<'a> Ds<'a> {
    /// Parses DS RDATA.
    pub fn parse(rdata: &'a [u8]) -> Option<Ds<'a>> {
        if rdata.len() < 5 {
            return None;
        }
        Some(Ds {
            key_tag: u16_at(rdata, 0)?,
            algorithm: rdata[2],
            digest_type: rdata[3],
            digest: &rdata[4..],
        })
    }
}

/// DS RDATA in presentation form: `20326 8 2 E06D44B8...`; RFC 3597 form if malformed.
pub fn ds_text(rdata: &[u8]) -> String {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02X}")).collect::<String>();
    match Ds::parse(rdata) {
        Some(d) => format!(
            "{} {} {} {}",
            d.key_tag,
            d.algorithm,
            d.digest_type,
            hex(d.digest)
        ),
        None => format!("\\# {} {}", rdata.len(), hex(rdata)),
    }
}

/// ZONEMD RDATA (RFC 8976 §2.2).
#[derive(Clone, Debug)]
pub struct Zonemd<'a> {
    /// The SOA serial the digest was made for.
    pub serial: u32,
    /// Collation scheme: 1 SIMPLE.
    pub scheme: u8,
    /// Hash algorithm: 1 SHA-384, 2 SHA-512.
    pub hash: u8,
    /// The digest.
    pub digest: &'a [u8],
}

impl<'a> Zonemd<'a> {
    /// Parses ZONEMD RDATA.
    pub fn parse(rdata: &'a [u8]) -> Option<Zonemd<'a>> {
        if rdata.len() < 6 {
            return None;
        }
        Some(Zonemd {
            serial: u32_at(rdata, 0)?,
            scheme: rdata[4],
            hash: rdata[5],
            digest: &rdata[6..],
        })
    }
}

/// The target of an NS record.
pub fn ns_target(rdata: &[u8]) -> Option<Name> {
    let (n, len) = Name::from_wire(rdata)?;
    (len == rdata.len()).then_some(n)
}

/// The address of an A record.
pub fn a_addr(rdata: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(rdata).ok().map(Ipv4Addr::from)
}

/// The address of an AAAA record.
pub fn aaaa_addr(rdata: &[u8]) -> Option<Ipv6Addr> {
    <[u8; 16]>::try_from(rdata).ok().map(Ipv6Addr::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_tag_of_the_root_ksk_2017() {
        // The root zone's KSK-2017 (/usr/share/dns/root.key): key tag 20326.
        let key = b"AwEAAaz/tAm8yTn4Mfeh5eyI96WSVexTBAvkMgJzkKTOiW1vkIbzxeF3+/4RgWOq7HrxRixHlFlExOLAJr5emLvN7SWXgnLh4+B5xQlNVz8Og8kvArMtNROxVQuCaSnIDdD5LKyWbRd2n9WGe2R8PzgCmr3EgVLrjyBxWezF0jLHwVN8efS3rCj/EWgvIWgb9tarpVUDK/b58Da+sqqls3eNbuv7pr+eoZG+SrDK6nWeL3c6H5Apxz7LjVc1uTIdsIXxuOLYA4/ilBmSVIzuDWfdRUfhHdY6+cn8HFRm+2hM8AnXGXws9555KrUB5qihylGa8subX2Nn6UwNR1AkUTV74bU=";
        let mut rdata = vec![1, 1, 3, 8];
        rdata.extend(base64(key));
        let k = Dnskey::parse(&rdata).unwrap();
        assert_eq!(k.key_tag(), 20326);
        assert_eq!(k.flags, 257);
    }

    /// A minimal base64 decoder for the test vector.
    fn base64(s: &[u8]) -> Vec<u8> {
        let val = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        let mut out = Vec::new();
        let mut acc = 0u32;
        let mut bits = 0;
        for &c in s.iter().filter(|&&c| c != b'=') {
            acc = (acc << 6) | val(c) as u32;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }

    #[test]
    fn short_rdata_gives_none_not_a_panic() {
        for len in 0..25 {
            let b = vec![0u8; len];
            let _ = Rrsig::parse(&b);
            let _ = Soa::parse(&b);
            let _ = Dnskey::parse(&b);
            let _ = Ds::parse(&b);
            let _ = Zonemd::parse(&b);
            let _ = ns_target(&b);
        }
        assert!(Rrsig::parse(&[0; 17]).is_none());
        assert_eq!(ds_text(&[0x4f, 0x66, 8, 2, 0xe0, 0x6d]), "20326 8 2 E06D");
        assert_eq!(ds_text(&[1, 2]), "\\# 2 0102");
        assert!(Zonemd::parse(&[0; 5]).is_none());
    }
}
