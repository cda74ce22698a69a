//! DNSSEC primitives (RFC 4034, 4035, 5702, 6605, 8080): algorithm names and support, the
//! data an RRSIG signs, signature verification with ring, DS digests.

use super::name::Name;
use super::record::{Dnskey, Ds, Record, Rrsig};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};

/// The mnemonic of a DNSSEC algorithm number (IANA "DNS Security Algorithm Numbers").
pub fn algorithm_name(a: u8) -> &'static str {
    match a {
        1 => "RSAMD5",
        3 => "DSA",
        5 => "RSASHA1",
        6 => "DSA-NSEC3-SHA1",
        7 => "RSASHA1-NSEC3-SHA1",
        8 => "RSASHA256",
        10 => "RSASHA512",
        12 => "ECC-GOST",
        13 => "ECDSAP256SHA256",
        14 => "ECDSAP384SHA384",
        15 => "ED25519",
        16 => "ED448",
        17 => "SM2SM3",
        23 => "ECC-GOST12",
        252 => "INDIRECT",
        253 => "PRIVATEDNS",
        254 => "PRIVATEOID",
        _ => "unassigned",
    }
}

/// `algorithm 8 (RSASHA256)`, for messages.
pub fn describe_algorithm(a: u8) -> String {
    format!("algorithm {a} ({})", algorithm_name(a))
}

/// True for the algorithms whose signatures this build verifies: RSASHA256, RSASHA512,
/// ECDSAP256SHA256, ECDSAP384SHA384, ED25519. Every other number — the SHA-1 and MD5
/// algorithms, DSA, GOST, ED448, private and unassigned numbers — is refused by name and
/// never treated as valid.
pub fn algorithm_supported(a: u8) -> bool {
    matches!(a, 8 | 10 | 13 | 14 | 15)
}

/// Why one signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigFailure {
    /// The algorithm is not one [`algorithm_supported`] accepts.
    Unsupported,
    /// The DNSKEY's public key is malformed for its algorithm.
    BadKey,
    /// The signature does not match.
    Mismatch,
}

/// Verifies `sig` over `data` with `key` (whose algorithm the caller matched to the RRSIG's).
pub fn verify(key: &Dnskey, data: &[u8], sig: &[u8]) -> Result<(), SigFailure> {
    let rsa = |params: &'static signature::RsaParameters| -> Result<(), SigFailure> {
        let (e, n) = rsa_parts(key.public_key).ok_or(SigFailure::BadKey)?;
        RsaPublicKeyComponents { n, e }
            .verify(params, data, sig)
            .map_err(|_| SigFailure::Mismatch)
    };
    let ec = |alg: &'static dyn signature::VerificationAlgorithm, len: usize| {
        if key.public_key.len() != len {
            return Err(SigFailure::BadKey);
        }
        let mut point = Vec::with_capacity(len + 1);
        point.push(4); // uncompressed point, as ring wants it
        point.extend_from_slice(key.public_key);
        UnparsedPublicKey::new(alg, point)
            .verify(data, sig)
            .map_err(|_| SigFailure::Mismatch)
    };
    match key.algorithm {
        8 => rsa(&signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY),
        10 => rsa(&signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY),
        13 => ec(&signature::ECDSA_P256_SHA256_FIXED, 64),
        14 => ec(&signature::ECDSA_P384_SHA384_FIXED, 96),
        15 => {
            if key.public_key.len() != 32 {
                return Err(SigFailure::BadKey);
            }
            UnparsedPublicKey::new(&signature::ED25519, key.public_key)
                .verify(data, sig)
                .map_err(|_| SigFailure::Mismatch)
        }
        _ => Err(SigFailure::Unsupported),
    }
}

/// Splits an RSA DNSKEY public key (RFC 3110 §2) into exponent and modulus; `None` if it is
/// malformed (the lengths do not add up, leading zero octets).
fn rsa_parts(k: &[u8]) -> Option<(&[u8], &[u8])> {
    let (elen, rest) = match k {
        [0, hi, lo, rest @ ..] => (u16::from_be_bytes([*hi, *lo]) as usize, rest),
        [n, rest @ ..] => (*n as usize, rest),
        [] => return None,
    };
    if elen == 0 || rest.len() <= elen {
        return None;
    }
    let (e, n) = rest.split_at(elen);
    (e[0] != 0 && n[0] != 0).then_some((e, n))
}

/// The data an RRSIG signs (RFC 4034 §3.1.8.1, RFC 4035 §5.3.2): the RRSIG RDATA without
/// the signature, then each RR of the set in canonical order with the original TTL. The
/// RRset must be sorted and free of duplicates, as [`super::zone::Zone`] keeps it. `None`
/// if the RRSIG's Labels field cannot belong to this owner.
pub fn signed_data(sig: &Rrsig, rrset: &[Record]) -> Option<Vec<u8>> {
    let first = rrset.first()?;
    let labels = first.owner.label_count();
    let owner = match (sig.labels as usize).cmp(&labels) {
        std::cmp::Ordering::Equal => first.owner.clone(),
        // A wildcard expansion: the signature was made over "*.<closest labels>".
        std::cmp::Ordering::Less => first
            .owner
            .trim_left(labels - sig.labels as usize)
            .wildcard_of()?,
        std::cmp::Ordering::Greater => return None,
    };
    let mut data = Vec::with_capacity(sig.signed_head.len() + rrset.len() * 300);
    data.extend_from_slice(sig.signed_head);
    for r in rrset {
        data.extend_from_slice(owner.wire());
        r.write_after_owner(&mut data, sig.original_ttl);
    }
    Some(data)
}

/// Whether `key` (owned by `owner`) is the key `ds` describes. `None` when the digest type
/// is one this build does not compute (then the DS can neither confirm nor deny).
pub fn ds_matches(owner: &Name, key: &Dnskey, ds: &Ds) -> Option<bool> {
    let alg = match ds.digest_type {
        1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        2 => &ring::digest::SHA256,
        4 => &ring::digest::SHA384,
        _ => return None,
    };
    if ds.key_tag != key.key_tag() || ds.algorithm != key.algorithm {
        return Some(false);
    }
    let mut ctx = ring::digest::Context::new(alg);
    ctx.update(owner.wire());
    ctx.update(key.rdata);
    Some(ctx.finish().as_ref() == ds.digest)
}

/// The name of a DS digest type.
pub fn digest_type_name(t: u8) -> &'static str {
    match t {
        1 => "SHA-1",
        2 => "SHA-256",
        3 => "GOST R 34.11-94",
        4 => "SHA-384",
        _ => "unassigned",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_key_split() {
        assert_eq!(
            rsa_parts(&[1, 3, 0xc1, 2]),
            Some((&[3u8][..], &[0xc1u8, 2][..]))
        );
        assert_eq!(
            rsa_parts(&[0, 0, 1, 3, 0xc1]),
            Some((&[3u8][..], &[0xc1u8][..]))
        );
        assert_eq!(rsa_parts(&[1, 3]), None, "no modulus");
        assert_eq!(rsa_parts(&[1, 0, 5]), None, "leading zero in the exponent");
        assert_eq!(rsa_parts(&[]), None);
        assert_eq!(rsa_parts(&[5, 1]), None);
    }

    #[test]
    fn unsupported_algorithms_never_verify() {
        for alg in [1u8, 3, 5, 6, 7, 12, 16, 17, 23, 200, 253, 254, 255] {
            assert!(!algorithm_supported(alg));
            let rdata = [1, 1, 3, alg, 1, 3, 0xc1, 0xc2];
            let key = Dnskey::parse(&rdata).unwrap();
            assert_eq!(
                verify(&key, b"x", b"y"),
                Err(SigFailure::Unsupported),
                "{alg}"
            );
        }
        assert_eq!(describe_algorithm(16), "algorithm 16 (ED448)");
        assert_eq!(describe_algorithm(99), "algorithm 99 (unassigned)");
    }

    #[test]
    fn malformed_keys_are_bad_keys() {
        let key = Dnskey::parse(&[1, 1, 3, 13, 1, 2, 3]).unwrap();
        assert_eq!(verify(&key, b"x", b"y"), Err(SigFailure::BadKey));
        let key = Dnskey::parse(&[1, 1, 3, 8, 9]).unwrap();
        assert_eq!(verify(&key, b"x", b"y"), Err(SigFailure::BadKey));
    }
}
