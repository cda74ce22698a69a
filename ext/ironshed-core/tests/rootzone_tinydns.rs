//! The conversion and the install against djbdns itself: data.cdb must be byte for byte what
//! tinydns-data makes from the same `data`, and tinydns-get must answer every delegation
//! with exactly the NS set and A glue of the zone as generated (not as ironshed parsed it).

mod dns_tools;

use dns_tools::*;
use ironshed_core::dns::install::installed;
use ironshed_core::dns::update::{update, Outcome, UpdateOptions};
use ironshed_core::dns::{parse_zone, tinydns, Error};
use ironshed_core::Progress;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn options(source: &Path, anchor: &Path, root: &Path) -> UpdateOptions {
    UpdateOptions {
        source: source.display().to_string(),
        trust_anchor: anchor.to_path_buf(),
        root: root.to_path_buf(),
        ..UpdateOptions::default()
    }
}

struct Signed {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    unsigned: PathBuf,
    signed: PathBuf,
    keys: KeyPair,
}

fn signed(tlds: usize, serial: u32) -> Signed {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let unsigned = unsigned(&d, tlds, serial, 11);
    let keys = KeyPair::new(&d, "RSASHA256");
    let signed = ldns_sign(
        &d,
        &unsigned,
        &keys,
        &["-z", "1:1"],
        &format!("root-{serial}.signed"),
    );
    Signed {
        _dir: dir,
        dir: d,
        unsigned,
        signed,
        keys,
    }
}

/// NS sets and A records as the generator wrote them: (tld -> NS targets), (name -> IPv4s).
fn expected(
    unsigned: &Path,
) -> (
    BTreeMap<String, BTreeSet<String>>,
    BTreeMap<String, BTreeSet<String>>,
) {
    let mut ns: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut a: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in fs::read_to_string(unsigned).unwrap().lines() {
        let f: Vec<&str> = l.split('\t').collect();
        let strip = |s: &str| s.trim_end_matches('.').to_string();
        match f[3] {
            "NS" if f[0] != "." => ns.entry(strip(f[0])).or_default().insert(strip(f[4])),
            "A" => a.entry(strip(f[0])).or_default().insert(f[4].to_string()),
            _ => false,
        };
    }
    (ns, a)
}

#[test]
fn data_cdb_is_what_tinydns_data_makes_and_tinydns_get_serves_every_delegation() {
    let s = signed(1500, 2024120600);
    let root = s.dir.join("root");
    fs::create_dir(&root).unwrap();
    let r = update(
        fs::read(&s.signed).unwrap(),
        &options(&s.signed, &s.keys.anchor_key(), &root),
        &Progress::new(),
    )
    .unwrap();
    assert_eq!(r.outcome, Outcome::Installed);
    assert_eq!(r.delegations, 1502);

    // tinydns-data on the data file we wrote: the same bytes.
    let oracle = s.dir.join("oracle");
    fs::create_dir(&oracle).unwrap();
    fs::copy(root.join("data"), oracle.join("data")).unwrap();
    run(&oracle, "tinydns-data", &[]);
    let ours = fs::read(root.join("data.cdb")).unwrap();
    assert!(
        ours == fs::read(oracle.join("data.cdb")).unwrap(),
        "data.cdb differs from tinydns-data's"
    );

    // tinydns-get, for every delegation of the generated zone.
    let (ns, a) = expected(&s.unsigned);
    assert_eq!(ns.len(), 1502);
    for (tld, targets) in &ns {
        let out = run(&root, "tinydns-get", &["ns", tld]);
        let text = String::from_utf8_lossy(&out.stdout);
        let mut got_ns = BTreeSet::new();
        let mut got_a: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for l in text.lines() {
            let f: Vec<&str> = l.split(' ').collect();
            match (f[0], f.get(3)) {
                ("authority:", Some(&"NS")) => {
                    assert_eq!(f[1], tld);
                    assert_eq!(f[2], "172800");
                    got_ns.insert(f[4].to_string());
                }
                ("additional:", Some(&"A")) => {
                    got_a
                        .entry(f[1].to_string())
                        .or_default()
                        .insert(f[4].to_string());
                }
                ("answer:", _) => panic!("{tld}: tinydns answered instead of referring: {l}"),
                _ => {}
            }
        }
        assert_eq!(&got_ns, targets, "{tld} NS");
        let want_a: BTreeMap<String, BTreeSet<String>> = targets
            .iter()
            .filter_map(|t| a.get(t).map(|v| (t.clone(), v.clone())))
            .collect();
        assert_eq!(got_a, want_a, "{tld} A glue");
    }
    let out = run(&root, "tinydns-get", &["soa", "."]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("answer: . 86400 SOA a.root-servers.net nstld.verisign-grs.com 2024120600 1800 900 604800 86400"),
        "{text}"
    );
    let inst = installed(&root).unwrap();
    assert_eq!(inst.serial, Some(2024120600));
    assert!(inst.valid_until.unwrap() > now() as i64 + 20 * 86400);
}

#[test]
fn aaaa_records_are_generic_lines_tinydns_answers() {
    let z = parse_zone(
        "t",
        b". 86400 IN SOA a. b. 3 1 2 3 4\n. 86400 IN NS a.\nv6. 300 IN AAAA 2001:db8::1\n".to_vec(),
    )
    .unwrap();
    let conv = tinydns::convert(&z);
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("data"),
        tinydns::data_file(&[], &conv.lines),
    )
    .unwrap();
    run(dir.path(), "tinydns-data", &[]);
    let out = run(dir.path(), "tinydns-get", &["aaaa", "v6"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("answer: v6 300 28 \\040\\001\\015\\270\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\001"),
        "{text}"
    );
    let recs: Vec<(Vec<u8>, Vec<u8>)> = conv.lines.iter().map(|l| l.cdb_record()).collect();
    let f = tempfile::tempfile().unwrap();
    ironshed_core::dns::cdb::write(&f, &recs).unwrap();
    let ours = fs::read(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&f)
    ))
    .unwrap();
    assert!(ours == fs::read(dir.path().join("data.cdb")).unwrap());
}

#[test]
fn current_dry_run_rollback_and_interrupt() {
    let old = signed(50, 2024120600);
    let root = old.dir.join("root");
    fs::create_dir(&root).unwrap();
    let anchor = old.keys.anchor_key();
    let opts = options(&old.signed, &anchor, &root);
    let zone = fs::read(&old.signed).unwrap();
    assert_eq!(
        update(zone.clone(), &opts, &Progress::new())
            .unwrap()
            .outcome,
        Outcome::Installed
    );
    let before = fs::read(root.join("data.cdb")).unwrap();

    // Again: already current, nothing rewritten.
    let r = update(zone.clone(), &opts, &Progress::new()).unwrap();
    assert_eq!(r.outcome, Outcome::Current);
    assert_eq!(r.previous_serial, Some(2024120600));

    // A newer zone, dry run: verified, nothing written.
    let newer_unsigned = unsigned(&old.dir, 50, 2024120601, 12);
    let newer = ldns_sign(
        &old.dir,
        &newer_unsigned,
        &old.keys,
        &["-z", "1:1"],
        "newer.signed",
    );
    let mut dry = options(&newer, &anchor, &root);
    dry.dry_run = true;
    let r = update(fs::read(&newer).unwrap(), &dry, &Progress::new()).unwrap();
    assert_eq!(r.outcome, Outcome::WouldInstall);
    assert_eq!(fs::read(root.join("data.cdb")).unwrap(), before);

    // Cancelled: nothing replaced, no temporary file left.
    let p = Progress::new();
    p.cancel();
    let e = update(
        fs::read(&newer).unwrap(),
        &options(&newer, &anchor, &root),
        &p,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Cancelled(_)));
    assert_eq!(fs::read(root.join("data.cdb")).unwrap(), before);
    assert_eq!(
        fs::read_dir(&root).unwrap().count(),
        2,
        "data and data.cdb only"
    );

    // Installed, then the old one again: a rollback, refused unless allowed.
    let r = update(
        fs::read(&newer).unwrap(),
        &options(&newer, &anchor, &root),
        &Progress::new(),
    )
    .unwrap();
    assert_eq!(
        (r.outcome, r.previous_serial),
        (Outcome::Installed, Some(2024120600))
    );
    let after = fs::read(root.join("data.cdb")).unwrap();
    let e = update(zone.clone(), &opts, &Progress::new()).unwrap_err();
    assert!(matches!(e, Error::Rollback(_)), "{e}");
    assert!(
        e.to_string()
            .contains("serial 2024120600 is older than the installed 2024120601"),
        "{e}"
    );
    assert_eq!(fs::read(root.join("data.cdb")).unwrap(), after);
    let mut allow = opts.clone();
    allow.allow_older = true;
    assert_eq!(
        update(zone, &allow, &Progress::new()).unwrap().outcome,
        Outcome::Installed
    );
    assert_eq!(fs::read(root.join("data.cdb")).unwrap(), before);
}
