//! ZONEMD (RFC 8976): the SIMPLE scheme's digest over the whole zone, and its check against
//! the apex ZONEMD RRset.

use super::error::Error;
use super::record::{rtype, Zonemd};
use super::zone::Zone;

/// Scheme SIMPLE.
pub const SIMPLE: u8 = 1;
/// Hash algorithm SHA-384 (mandatory).
pub const SHA384: u8 = 1;
/// Hash algorithm SHA-512.
pub const SHA512: u8 = 2;

/// `SHA-384`, `SHA-512`, or the number.
pub fn hash_name(h: u8) -> String {
    match h {
        SHA384 => "SHA-384".into(),
        SHA512 => "SHA-512".into(),
        n => format!("hash algorithm {n}"),
    }
}

/// One ZONEMD record that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZonemdMatch {
    /// Hash algorithm (1 SHA-384, 2 SHA-512).
    pub hash: u8,
    /// The digest, lower-case hex.
    pub digest: String,
}

/// The SIMPLE-scheme digests of `zone` for the hash algorithms in `hashes` (each SHA-384 or
/// SHA-512), computed in one pass: every record in canonical order, duplicates once, except
/// the apex ZONEMD RRset and the RRSIGs covering it (RFC 8976 §3.3.1).
pub fn simple_digests(zone: &Zone, hashes: &[u8]) -> Vec<Vec<u8>> {
    let mut ctxs: Vec<ring::digest::Context> = hashes
        .iter()
        .map(|h| {
            ring::digest::Context::new(if *h == SHA512 {
                &ring::digest::SHA512
            } else {
                &ring::digest::SHA384
            })
        })
        .collect();
    let apex = zone.apex();
    let mut buf = Vec::with_capacity(1024);
    for r in zone.records() {
        if r.owner == *apex && (r.rtype == rtype::ZONEMD || r.covered() == Some(rtype::ZONEMD)) {
            continue;
        }
        buf.clear();
        r.write_canonical(&mut buf, r.ttl);
        for c in &mut ctxs {
            c.update(&buf);
        }
    }
    ctxs.into_iter()
        .map(|c| c.finish().as_ref().to_vec())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Checks the apex ZONEMD RRset against the zone: a SIMPLE/SHA-384 record must be there,
/// every SIMPLE record with SHA-384 or SHA-512 must be for the SOA's serial and match; no
/// two records may share a scheme and hash. Records of other schemes or hashes are returned
/// as notes (RFC 8976 §4 lets a verifier ignore them).
pub fn check(zone: &Zone) -> Result<(Vec<ZonemdMatch>, Vec<String>), Error> {
    let src = &zone.source;
    let apex = zone.apex();
    let set = zone.rrset(apex, rtype::ZONEMD);
    if set.is_empty() {
        return Err(Error::Digest(format!(
            "{src}: no ZONEMD record at {apex}: the zone cannot be proven complete (RFC 8976)"
        )));
    }
    let mut seen: Vec<(u8, u8)> = Vec::new();
    let mut wanted: Vec<(u8, &[u8])> = Vec::new();
    let mut notes = Vec::new();
    for r in set {
        let z = Zonemd::parse(&r.rdata).ok_or_else(|| {
            Error::Digest(format!(
                "{src}: {apex} ZONEMD: malformed RDATA ({} octets)",
                r.rdata.len()
            ))
        })?;
        if seen.contains(&(z.scheme, z.hash)) {
            return Err(Error::Digest(format!(
                "{src}: {apex} ZONEMD: two records with scheme {} and {} (RFC 8976 §4 forbids it)",
                z.scheme,
                hash_name(z.hash)
            )));
        }
        seen.push((z.scheme, z.hash));
        if z.scheme != SIMPLE || !(z.hash == SHA384 || z.hash == SHA512) {
            notes.push(format!(
                "ZONEMD with scheme {} and {} ignored (not supported)",
                z.scheme,
                hash_name(z.hash)
            ));
            continue;
        }
        if z.serial != zone.serial() {
            return Err(Error::Digest(format!(
                "{src}: {apex} ZONEMD {} was made for serial {}, the SOA serial is {}",
                hash_name(z.hash),
                z.serial,
                zone.serial()
            )));
        }
        let want_len = if z.hash == SHA384 { 48 } else { 64 };
        if z.digest.len() != want_len {
            return Err(Error::Digest(format!(
                "{src}: {apex} ZONEMD {} digest is {} octets, not {want_len}",
                hash_name(z.hash),
                z.digest.len()
            )));
        }
        wanted.push((z.hash, z.digest));
    }
    if !wanted.iter().any(|(h, _)| *h == SHA384) {
        return Err(Error::Digest(format!(
            "{src}: {apex} has no ZONEMD with scheme SIMPLE and SHA-384 (found {})",
            seen.iter()
                .map(|(s, h)| format!("scheme {s} {}", hash_name(*h)))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let hashes: Vec<u8> = wanted.iter().map(|(h, _)| *h).collect();
    let computed = simple_digests(zone, &hashes);
    let mut matches = Vec::new();
    for ((h, given), got) in wanted.iter().zip(computed) {
        if *given != &got[..] {
            return Err(Error::Digest(format!(
                "{src}: {apex} ZONEMD {} digest does not match the zone: the zone says {}, \
                 its records give {} (a record was changed, added or removed after it was made)",
                hash_name(*h),
                hex(given),
                hex(&got)
            )));
        }
        matches.push(ZonemdMatch {
            hash: *h,
            digest: hex(&got),
        });
    }
    Ok((matches, notes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::parse_zone;

    fn zone(text: &str) -> Zone {
        parse_zone("example", text.as_bytes().to_vec()).unwrap()
    }

    // RFC 8976 Appendix A.1, verbatim.
    const SIMPLE_EXAMPLE: &str = "$ORIGIN example.
example.      86400   IN  SOA     ns1 admin 2018031900 (
                                  1800 900 604800 86400 )
              86400   IN  NS      ns1
              86400   IN  NS      ns2
              86400   IN  ZONEMD  2018031900 1 1 (
                                  c68090d90a7aed71
                                  6bc459f9340e3d7c
                                  1370d4d24b7e2fc3
                                  a1ddc0b9a87153b9
                                  a9713b3c9ae5cc27
                                  777f98b8e730044c )
ns1           3600    IN  A       203.0.113.63
ns2           3600    IN  AAAA    2001:db8::63
";

    #[test]
    fn rfc8976_a1_simple_example() {
        let (m, notes) = check(&zone(SIMPLE_EXAMPLE)).unwrap();
        assert_eq!(m.len(), 1);
        assert!(m[0].digest.starts_with("c68090d90a7aed71"));
        assert!(notes.is_empty());
    }

    // RFC 8976 Appendix A.2 without its out-of-zone record (`foo.test.`, which the digest
    // excludes and which this tool refuses outright): duplicates once, occluded data and a
    // non-apex ZONEMD digested as ordinary records.
    #[test]
    fn rfc8976_a2_complex_example() {
        let text = "$ORIGIN example.
example.      86400   IN  SOA     ns1 admin 2018031900 (
                                  1800 900 604800 86400 )
              86400   IN  NS      ns1
              86400   IN  NS      ns2
              86400   IN  ZONEMD  2018031900 1 1 (
                                  31cefb03814f5062
                                  ad12fa951ba0ef5f
                                  8da6ae354a415767
                                  246f7dc932ceb1e7
                                  42a2108f529db6a3
                                  3a11c01493de358d )
ns1           3600    IN  A       203.0.113.63
ns2           3600    IN  AAAA    2001:db8::63
occluded.sub  7200    IN  TXT     \"I'm occluded but must be digested\"
sub           7200    IN  NS      ns1
duplicate     300     IN  TXT     \"I must be digested just once\"
duplicate     300     IN  TXT     \"I must be digested just once\"
non-apex      900     IN  ZONEMD  2018031900 1 1 (
                                  616c6c6f77656420
                                  6275742069676e6f
                                  7265642e20616c6c
                                  6f77656420627574
                                  2069676e6f726564
                                  2e20616c6c6f7765 )
";
        check(&zone(text)).unwrap();
    }

    // RFC 8976 Appendix A.3: SHA-384 and SHA-512 both checked, private-range ones ignored.
    #[test]
    fn rfc8976_a3_multiple_digests() {
        let text = "$ORIGIN example.
example.      86400   IN  SOA     ns1 admin 2018031900 (
                                  1800 900 604800 86400 )
example.      86400   IN  NS      ns1.example.
example.      86400   IN  NS      ns2.example.
example.      86400   IN  ZONEMD  2018031900 1 1 (
                                  62e6cf51b02e54b9
                                  b5f967d547ce4313
                                  6792901f9f88e637
                                  493daaf401c92c27
                                  9dd10f0edb1c56f8
                                  080211f8480ee306 )
example.      86400   IN  ZONEMD  2018031900 1 2 (
                                  08cfa1115c7b948c
                                  4163a901270395ea
                                  226a930cd2cbcf2f
                                  a9a5e6eb85f37c8a
                                  4e114d884e66f176
                                  eab121cb02db7d65
                                  2e0cc4827e7a3204
                                  f166b47e5613fd27 )
example.      86400   IN  ZONEMD  2018031900 1 240 (
                                  e2d523f654b9422a
                                  96c5a8f44607bbee )
example.      86400   IN  ZONEMD  2018031900 241 1 (
                                  e1846540e33a9e41
                                  89792d18d5d131f6
                                  05fc283e )
ns1.example.  3600    IN  A       203.0.113.63
ns2.example.  86400   IN  TXT     \"This example has multiple digests\"
ns2.example.  3600    IN  AAAA    2001:db8::63
";
        let (m, notes) = check(&zone(text)).unwrap();
        assert_eq!(
            m.iter().map(|x| x.hash).collect::<Vec<_>>(),
            [SHA384, SHA512]
        );
        assert_eq!(notes.len(), 2, "{notes:?}");
        // The same zone with the SHA-512 digest damaged is refused although SHA-384 matches.
        let bad = text.replace("f166b47e5613fd27", "f166b47e5613fd28");
        let e = check(&zone(&bad)).unwrap_err().to_string();
        assert!(e.contains("ZONEMD SHA-512 digest does not match"), "{e}");
    }

    #[test]
    fn refusals() {
        let changed = SIMPLE_EXAMPLE.replace("203.0.113.63", "203.0.113.64");
        let e = check(&zone(&changed)).unwrap_err().to_string();
        assert!(
            e.contains("SHA-384 digest does not match the zone: the zone says c68090d9"),
            "{e}"
        );

        let missing =
            "example. 86400 IN SOA ns1.example. admin.example. 2018031900 1800 900 604800 86400\n\
                       example. 86400 IN NS ns1.example.\n";
        let e = check(&zone(missing)).unwrap_err().to_string();
        assert!(e.contains("no ZONEMD record at example."), "{e}");

        let other_serial = SIMPLE_EXAMPLE.replace("ZONEMD  2018031900", "ZONEMD  2018031901");
        let e = check(&zone(&other_serial)).unwrap_err().to_string();
        assert!(
            e.contains("made for serial 2018031901, the SOA serial is 2018031900"),
            "{e}"
        );

        let sha512_only =
            SIMPLE_EXAMPLE.replace("ZONEMD  2018031900 1 1", "ZONEMD  2018031900 1 240");
        let e = check(&zone(&sha512_only)).unwrap_err().to_string();
        assert!(
            e.contains("no ZONEMD with scheme SIMPLE and SHA-384"),
            "{e}"
        );

        let short = SIMPLE_EXAMPLE.replace("777f98b8e730044c )", ")");
        let e = check(&zone(&short)).unwrap_err().to_string();
        assert!(e.contains("digest is 40 octets, not 48"), "{e}");
    }
}
