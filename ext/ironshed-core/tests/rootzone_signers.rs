//! The verifier against real signers: zones signed by ldns-signzone (with `-z`), Knot DNS
//! (zonemd-generate) and BIND's dnssec-signzone (no ZONEMD) must get the verdict
//! ldns-verify-zone gives them, with the refusal naming the RRset, key tag, digest or serial.

mod dns_tools;

use dns_tools::*;
use ironshed_core::dns::{parse_zone, verify, Error, TrustAnchor, Zone};
use std::fs;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn load(path: &Path) -> Zone {
    parse_zone(&path.display().to_string(), fs::read(path).unwrap()).unwrap()
}

fn anchor(path: &Path) -> TrustAnchor {
    TrustAnchor::load(path).unwrap()
}

fn refused(zone: &Path, anchor_path: &Path) -> Error {
    let z = parse_zone("z", fs::read(zone).unwrap());
    match z {
        Err(e) => e,
        Ok(z) => verify(&z, &anchor(anchor_path), now()).expect_err("must be refused"),
    }
}

/// The RRsets the signer signed, counted from its output: distinct (owner, covered type)
/// over the RRSIG lines.
fn signed_rrsets(signed: &Path) -> usize {
    let text = fs::read_to_string(signed).unwrap();
    let mut sets = std::collections::BTreeSet::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() > 4 && f[3] == "RRSIG" {
            sets.insert((f[0].to_string(), f[4].to_string()));
        }
    }
    sets.len()
}

#[test]
fn rsasha256_root_of_real_size_verifies_like_ldns() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zone = unsigned(d, 1500, 2024120600, 1);
    let keys = KeyPair::new(d, "RSASHA256");
    let signed = ldns_sign(d, &zone, &keys, &["-z", "1:1", "-z", "1:2"], "root.signed");
    let (ok, why) = ldns_verify(&signed, &keys.anchor_key());
    assert!(ok, "ldns-verify-zone: {why}");

    let z = load(&signed);
    assert_eq!(z.serial(), 2024120600);
    assert_eq!(z.delegations().len(), 1502);
    for a in [keys.anchor_key(), keys.anchor_ds()] {
        let v = verify(&z, &anchor(&a), now()).unwrap();
        assert_eq!(v.zonemd.len(), 2, "SHA-384 and SHA-512 both checked");
        assert_eq!(
            v.rrsets,
            signed_rrsets(&signed),
            "every signed RRset was checked"
        );
        assert!(
            v.valid_until > now() as i64 + 20 * 86400,
            "ldns signs for 4 weeks"
        );
    }
}

#[test]
fn ecdsa_and_ed25519_zones_verify() {
    for alg in ["ECDSAP256SHA256", "ED25519", "ECDSAP384SHA384", "RSASHA512"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let zone = unsigned(d, 60, 7, 2);
        let keys = KeyPair::new(d, alg);
        let signed = ldns_sign(d, &zone, &keys, &["-z", "1:1"], "root.signed");
        assert!(ldns_verify(&signed, &keys.anchor_key()).0);
        verify(&load(&signed), &anchor(&keys.anchor_ds()), now())
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
    }
}

#[test]
fn unsupported_algorithms_are_refused_by_name() {
    for (alg, num) in [
        ("RSASHA1", "algorithm 5 (RSASHA1)"),
        ("ED448", "algorithm 16 (ED448)"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let zone = unsigned(d, 20, 7, 3);
        let keys = KeyPair::new(d, alg);
        let signed = ldns_sign(d, &zone, &keys, &["-z", "1:1"], "root.signed");
        assert!(
            ldns_verify(&signed, &keys.anchor_key()).0,
            "ldns itself accepts {alg}"
        );
        let e = refused(&signed, &keys.anchor_key());
        assert!(matches!(e, Error::Unsupported(_)), "{alg}: {e}");
        assert!(e.to_string().contains(num), "{e}");

        // An RSASHA256-anchored zone whose ZSK is of the unsupported algorithm: the SOA is
        // signed only with it.
        let rsa = ldns_key(d, "RSASHA256", true);
        let mixed = KeyPair {
            ksk: rsa.clone(),
            zsk: keys.zsk.clone(),
        };
        let signed = ldns_sign(d, &zone, &mixed, &["-z", "1:1"], "mixed.signed");
        let e = refused(&signed, &mixed.anchor_key());
        assert!(matches!(e, Error::Unsupported(_)), "{alg}: {e}");
        assert!(
            e.to_string()
                .contains(&format!(". SOA: signed only with {num}")),
            "{e}"
        );
    }
}

#[test]
fn knot_signed_zone_with_zonemd_verifies_from_its_axfr_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zone = unsigned(d, 400, 2024120601, 4);
    for (alg, addr) in [
        ("rsasha256", "127.53.53.91"),
        ("ecdsap256sha256", "127.53.53.92"),
    ] {
        let (axfr, ds) = knot_sign(d, &zone, alg, addr);
        let z = load(&axfr);
        assert_eq!(z.serial(), 2024120601);
        let v = verify(&z, &anchor(&ds), now()).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(v.zonemd.len(), 1);
        fs::remove_dir_all(d.join("knot")).unwrap();
    }
}

#[test]
fn bind_signed_zone_without_zonemd_is_refused_for_that_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zone = unsigned(d, 200, 5, 5);
    let (signed, ds) = bind_sign(d, &zone);
    let e = refused(&signed, &ds);
    assert!(matches!(e, Error::Digest(_)), "{e}");
    assert!(e.to_string().contains("no ZONEMD record at ."), "{e}");
}

/// Writes `text` with `f` applied to it and returns the path.
fn altered(
    dir: &Path,
    signed: &Path,
    name: &str,
    f: impl Fn(&str) -> String,
) -> std::path::PathBuf {
    let text = fs::read_to_string(signed).unwrap();
    let new = f(&text);
    assert_ne!(new, text, "{name}: the alteration changed nothing");
    let p = dir.join(name);
    fs::write(&p, new).unwrap();
    p
}

#[test]
fn tampering_and_staleness_are_refused_as_ldns_refuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zone = unsigned(d, 300, 2024120602, 6);
    let keys = KeyPair::new(d, "RSASHA256");
    let signed = ldns_sign(d, &zone, &keys, &["-z", "1:1"], "root.signed");
    let text = fs::read_to_string(&signed).unwrap();
    let key = keys.anchor_key();

    // Glue changed after signing: only ZONEMD can see it.
    let glue = text
        .lines()
        .find(|l| l.contains("\tA\t") && l.starts_with("ns0.nic."))
        .unwrap();
    let moved = format!("{}\t192.0.2.99", glue.rsplit_once('\t').unwrap().0);
    let p = altered(d, &signed, "glue", |t| t.replacen(glue, &moved, 1));
    let e = refused(&p, &key);
    assert!(matches!(e, Error::Digest(_)), "{e}");
    assert!(
        e.to_string()
            .contains("ZONEMD SHA-384 digest does not match the zone"),
        "{e}"
    );
    assert!(!ldns_verify(&p, &key).0);

    // A delegation removed (its NS records).
    let tld = glue.split('.').nth(2).unwrap().to_string();
    let p = altered(d, &signed, "deleg", |t| {
        t.lines()
            .filter(|l| !(l.starts_with(&format!("{tld}.\t")) && l.contains("\tNS\t")))
            .map(|l| format!("{l}\n"))
            .collect()
    });
    assert!(matches!(refused(&p, &key), Error::Digest(_)));
    assert!(!ldns_verify(&p, &key).0);

    // The ZONEMD digest altered: its RRSIG no longer verifies.
    let zmd = text.lines().find(|l| l.contains("\tZONEMD\t")).unwrap();
    let last = zmd.chars().last().unwrap();
    let flipped = format!(
        "{}{}",
        &zmd[..zmd.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let p = altered(d, &signed, "zonemd", |t| t.replacen(zmd, &flipped, 1));
    let e = refused(&p, &key);
    assert!(matches!(e, Error::Signature(_)), "{e}");
    assert!(e.to_string().contains(". ZONEMD: RRSIG by key"), "{e}");
    assert!(e.to_string().contains("does not verify"), "{e}");
    assert!(!ldns_verify(&p, &key).0);

    // Signed by another key than the trust anchor's.
    let other = KeyPair::new(d, "RSASHA256");
    let e = refused(&signed, &other.anchor_key());
    assert!(matches!(e, Error::TrustAnchor(_)), "{e}");
    assert!(e.to_string().contains("matches the trust anchor"), "{e}");
    assert!(!ldns_verify(&signed, &other.anchor_key()).0);

    // RRsets signed by a key that is not in the DNSKEY RRset: the zone publishes the KSK
    // and its ZSK, a stranger signed the rest (-d: the signing keys are not added).
    let stranger = ldns_key(d, "RSASHA256", false);
    let mut published = fs::read_to_string(&zone).unwrap();
    for k in [
        keys.anchor_key(),
        keys.zsk.with_extension(format!(
            "{}.key",
            keys.zsk.extension().unwrap().to_string_lossy()
        )),
    ] {
        published.push_str(&fs::read_to_string(k).unwrap());
    }
    let published_path = d.join("published.unsigned");
    fs::write(&published_path, published).unwrap();
    let re = KeyPair {
        ksk: keys.ksk.clone(),
        zsk: stranger,
    };
    let resigned = ldns_sign(
        d,
        &published_path,
        &re,
        &["-d", "-z", "1:1"],
        "stranger.signed",
    );
    let e = refused(&resigned, &key);
    assert!(matches!(e, Error::Signature(_)), "{e}");
    assert!(
        e.to_string()
            .contains("which is not in the zone's DNSKEY RRset"),
        "{e}"
    );
    assert!(!ldns_verify(&resigned, &key).0);

    // A revoked KSK (RFC 5011: flag 0x80) is no anchor, even when it signed the DNSKEY RRset.
    let revoked = ldns_key(d, "RSASHA256", true);
    let key_file = revoked.with_extension(format!(
        "{}.key",
        revoked.extension().unwrap().to_string_lossy()
    ));
    let text_key = fs::read_to_string(&key_file).unwrap();
    fs::write(
        &key_file,
        text_key.replacen("DNSKEY\t257 ", "DNSKEY\t385 ", 1),
    )
    .unwrap();
    let rk = KeyPair {
        ksk: revoked,
        zsk: keys.zsk.clone(),
    };
    let signed_revoked = ldns_sign(d, &zone, &rk, &["-z", "1:1"], "revoked.signed");
    assert!(fs::read_to_string(&signed_revoked)
        .unwrap()
        .contains("DNSKEY\t385 3 8"));
    let e = refused(&signed_revoked, &key_file);
    assert!(matches!(e, Error::TrustAnchor(_)), "{e}");
    assert!(e.to_string().contains("is revoked (flags 385)"), "{e}");

    // Expired and not yet valid signatures.
    let expired = ldns_sign(
        d,
        &zone,
        &keys,
        &["-z", "1:1", "-i", "20200101000000", "-e", "20200201000000"],
        "old.signed",
    );
    let e = refused(&expired, &key);
    assert!(matches!(e, Error::Expired(_)), "{e}");
    assert!(
        e.to_string().contains("expired at 2020-02-01 00:00:00 UTC"),
        "{e}"
    );
    assert!(!ldns_verify(&expired, &key).0);
    let future = ldns_sign(
        d,
        &zone,
        &keys,
        &["-z", "1:1", "-i", "20300101000000", "-e", "20300201000000"],
        "new.signed",
    );
    let e = refused(&future, &key);
    assert!(matches!(e, Error::Expired(_)), "{e}");
    assert!(
        e.to_string()
            .contains("not valid before 2030-01-01 00:00:00 UTC"),
        "{e}"
    );

    // Signed without ZONEMD.
    let plain = ldns_sign(d, &zone, &keys, &[], "plain.signed");
    assert!(matches!(refused(&plain, &key), Error::Digest(_)));

    // Truncated in the middle of a record, and garbage.
    let cut = dir.path().join("cut");
    fs::write(&cut, &text.as_bytes()[..text.len() * 2 / 3 + 17]).unwrap();
    let e = refused(&cut, &key);
    assert!(
        e.is_verification() || matches!(e, Error::Source { .. }),
        "{e}"
    );
    let garbage = dir.path().join("garbage");
    fs::write(&garbage, b"<html><body>404 Not Found</body></html>\n").unwrap();
    assert!(matches!(refused(&garbage, &key), Error::Source { .. }));
}
