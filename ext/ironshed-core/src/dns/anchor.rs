//! Trust anchors: DNSKEY or DS records in master-file syntax, as Debian's dns-root-data ships
//! them in /usr/share/dns/root.key (DNSKEY) and root.ds (DS).

use super::dnssec::{self, ds_matches};
use super::error::Error;
use super::name::Name;
use super::record::{rtype, Dnskey, Ds};
use super::zonefile;
use std::path::Path;

/// The keys a zone's DNSKEY RRset must be signed by.
#[derive(Debug, Clone)]
pub struct TrustAnchor {
    /// Where it came from, for messages.
    pub source: String,
    /// The name the anchor is for (`.`).
    pub owner: Name,
    /// DNSKEY RDATA given directly.
    pub keys: Vec<Box<[u8]>>,
    /// DS RDATA.
    pub ds: Vec<Box<[u8]>>,
}

/// How a zone key relates to the anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnchorMatch {
    /// The key is an anchor (the same DNSKEY, or a DS digest matches).
    Yes,
    /// It is not.
    No,
}

impl TrustAnchor {
    /// Reads a trust-anchor file.
    pub fn load(path: &Path) -> Result<TrustAnchor, Error> {
        let bytes = zonefile::read_input(path)?;
        Self::parse(&path.display().to_string(), &bytes)
    }

    /// Parses trust-anchor text: DNSKEY and/or DS records, all for one name.
    pub fn parse(source: &str, text: &[u8]) -> Result<TrustAnchor, Error> {
        let recs = zonefile::parse(source, text).map_err(|e| match e {
            Error::Source { file, msg } => Error::Source {
                file,
                msg: format!("{msg} (a trust anchor is DNSKEY or DS records in zone-file syntax)"),
            },
            other => other,
        })?;
        let owner = recs[0].owner.clone();
        let mut anchor = TrustAnchor {
            source: source.to_string(),
            owner,
            keys: Vec::new(),
            ds: Vec::new(),
        };
        for r in recs {
            if r.owner != anchor.owner {
                return Err(Error::source(
                    source,
                    format!("anchors for two names ({} and {})", anchor.owner, r.owner),
                ));
            }
            match r.rtype {
                rtype::DNSKEY if Dnskey::parse(&r.rdata).is_some() => anchor.keys.push(r.rdata),
                rtype::DS if Ds::parse(&r.rdata).is_some() => anchor.ds.push(r.rdata),
                t => {
                    return Err(Error::source(
                        source,
                        format!(
                            "{} {} record: a trust anchor is DNSKEY or DS records",
                            r.owner,
                            super::record::type_name(t)
                        ),
                    ))
                }
            }
        }
        Ok(anchor)
    }

    /// Whether `key` (a DNSKEY at the anchor's name) is one of the anchors.
    pub fn matches(&self, key: &Dnskey) -> AnchorMatch {
        if self.keys.iter().any(|k| **k == *key.rdata) {
            return AnchorMatch::Yes;
        }
        let hit = self
            .ds
            .iter()
            .filter_map(|d| Ds::parse(d))
            .any(|ds| ds_matches(&self.owner, key, &ds) == Some(true));
        if hit {
            AnchorMatch::Yes
        } else {
            AnchorMatch::No
        }
    }

    /// `key 20326 (algorithm 8 (RSASHA256))` for each anchor, for messages.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .keys
            .iter()
            .filter_map(|k| Dnskey::parse(k))
            .map(|k| {
                format!(
                    "DNSKEY {} ({})",
                    k.key_tag(),
                    dnssec::algorithm_name(k.algorithm)
                )
            })
            .collect();
        parts.extend(self.ds.iter().filter_map(|d| Ds::parse(d)).map(|d| {
            format!(
                "DS {} ({}, {})",
                d.key_tag,
                dnssec::algorithm_name(d.algorithm),
                dnssec::digest_type_name(d.digest_type)
            )
        }));
        parts.join(", ")
    }

    /// The anchors' algorithms, for explaining an anchor nothing can be verified with.
    pub fn algorithms(&self) -> Vec<u8> {
        let mut v: Vec<u8> = self
            .keys
            .iter()
            .filter_map(|k| Dnskey::parse(k).map(|k| k.algorithm))
            .chain(
                self.ds
                    .iter()
                    .filter_map(|d| Ds::parse(d).map(|d| d.algorithm)),
            )
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT_KEY: &str = ". IN DNSKEY 257 3 8 AwEAAaz/tAm8yTn4Mfeh5eyI96WSVexTBAvkMgJzkKTOiW1vkIbzxeF3+/4RgWOq7HrxRixHlFlExOLAJr5emLvN7SWXgnLh4+B5xQlNVz8Og8kvArMtNROxVQuCaSnIDdD5LKyWbRd2n9WGe2R8PzgCmr3EgVLrjyBxWezF0jLHwVN8efS3rCj/EWgvIWgb9tarpVUDK/b58Da+sqqls3eNbuv7pr+eoZG+SrDK6nWeL3c6H5Apxz7LjVc1uTIdsIXxuOLYA4/ilBmSVIzuDWfdRUfhHdY6+cn8HFRm+2hM8AnXGXws9555KrUB5qihylGa8subX2Nn6UwNR1AkUTV74bU= ; keytag 20326\n";
    // Its DS as IANA publishes it (root-anchors.xml) and dns-root-data's root.ds.
    const ROOT_DS: &str =
        ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n";

    #[test]
    fn dnskey_and_ds_anchors_match_the_same_key() {
        let by_key = TrustAnchor::parse("root.key", ROOT_KEY.as_bytes()).unwrap();
        let by_ds = TrustAnchor::parse("root.ds", ROOT_DS.as_bytes()).unwrap();
        assert!(by_key.owner.is_root());
        let rdata = &by_key.keys[0];
        let key = Dnskey::parse(rdata).unwrap();
        assert_eq!(by_key.matches(&key), AnchorMatch::Yes);
        assert_eq!(
            by_ds.matches(&key),
            AnchorMatch::Yes,
            "the DS digest of KSK-2017"
        );
        assert_eq!(by_key.describe(), "DNSKEY 20326 (RSASHA256)");
        assert_eq!(by_ds.describe(), "DS 20326 (RSASHA256, SHA-256)");
        let mut other = rdata.to_vec();
        let last = other.len() - 1;
        other[last] ^= 1;
        let other = Dnskey::parse(&other).unwrap();
        assert_eq!(by_key.matches(&other), AnchorMatch::No);
        assert_eq!(by_ds.matches(&other), AnchorMatch::No);
    }

    #[test]
    fn refuses_other_records_and_two_names() {
        let e = TrustAnchor::parse("a", b". IN A 192.0.2.1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("DNSKEY or DS"), "{e}");
        let text = format!("{ROOT_DS}com. IN DS 1 8 2 00\n");
        let e = TrustAnchor::parse("a", text.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("two names"), "{e}");
        let e = TrustAnchor::parse("a", b"garbage here\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("zone-file syntax"), "{e}");
    }
}
