//! The real DNS software the rootzone tests are checked against: ldns-keygen/ldns-signzone
//! and ldns-verify-zone (ldnsutils), Knot DNS (knotd, keymgr, kdig), dnssec-keygen and
//! dnssec-signzone (bind9-utils), tinydns-data and tinydns-get (djbdns). A missing tool is a
//! failed test, never a skipped one: bin/setup installs them all.
#![allow(dead_code)]

use ironshed_testkit::rootzone::{unsigned_root_zone, RootZoneSpec};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `cmd` in `dir`; panics with its output if it fails or is missing.
pub fn run(dir: &Path, cmd: &str, args: &[&str]) -> Output {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (bin/setup installs the DNS test tools)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Writes an unsigned root-like zone with `tlds` TLDs and returns its path.
pub fn unsigned(dir: &Path, tlds: usize, serial: u32, seed: u64) -> PathBuf {
    let p = dir.join(format!("root-{serial}.unsigned"));
    fs::write(&p, unsigned_root_zone(&RootZoneSpec { tlds, serial, seed })).unwrap();
    p
}

/// One ldns key: `ldns-keygen -a ALG [-b BITS] [-k] .`; returns the base path (no suffix).
pub fn ldns_key(dir: &Path, alg: &str, ksk: bool) -> PathBuf {
    let mut args = vec!["-a", alg];
    if alg.starts_with("RSA") {
        args.extend(["-b", "2048"]);
    }
    if ksk {
        args.push("-k");
    }
    args.push(".");
    let out = run(dir, "ldns-keygen", &args);
    dir.join(String::from_utf8_lossy(&out.stdout).trim())
}

/// A KSK and a ZSK of `alg`.
pub struct KeyPair {
    pub ksk: PathBuf,
    pub zsk: PathBuf,
}

impl KeyPair {
    pub fn new(dir: &Path, alg: &str) -> KeyPair {
        KeyPair {
            ksk: ldns_key(dir, alg, true),
            zsk: ldns_key(dir, alg, false),
        }
    }
    /// The KSK's DNSKEY record file (a trust anchor).
    pub fn anchor_key(&self) -> PathBuf {
        self.ksk.with_extension(format!("{}.key", ext(&self.ksk)))
    }
    /// The KSK's DS record file (a trust anchor).
    pub fn anchor_ds(&self) -> PathBuf {
        self.ksk.with_extension(format!("{}.ds", ext(&self.ksk)))
    }
}

/// `K.+008+12345` has the "extension" `12345` for Path; keep it.
fn ext(p: &Path) -> String {
    p.extension().unwrap().to_string_lossy().into_owned()
}

/// `ldns-signzone [extra] -o . -f OUT ZONE KSK ZSK`; returns OUT.
pub fn ldns_sign(dir: &Path, zone: &Path, keys: &KeyPair, extra: &[&str], out: &str) -> PathBuf {
    let outp = dir.join(out);
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    args.extend(["-o", ".", "-f"].map(String::from));
    args.push(outp.display().to_string());
    args.push(zone.display().to_string());
    args.push(keys.ksk.display().to_string());
    args.push(keys.zsk.display().to_string());
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    run(dir, "ldns-signzone", &a);
    outp
}

/// ldns-verify-zone's verdict (with -Z: ZONEMD too) against the KSK.
pub fn ldns_verify(zone: &Path, ksk_key: &Path) -> (bool, String) {
    let out = Command::new("ldns-verify-zone")
        .args(["-Z", "-k"])
        .arg(ksk_key)
        .arg(zone)
        .output()
        .expect("ldns-verify-zone (ldnsutils)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Signs `zone` with a fresh Knot DNS instance (policy: `alg`, ZONEMD SHA-384 generated),
/// fetches the signed zone by AXFR with kdig (a dig-style transcript, SOA at both ends),
/// and returns (transcript path, KSK DS trust-anchor path).
pub fn knot_sign(dir: &Path, zone: &Path, alg: &str, addr: &str) -> (PathBuf, PathBuf) {
    let kdir = dir.join("knot");
    fs::create_dir_all(&kdir).unwrap();
    let conf = kdir.join("knot.conf");
    fs::write(
        &conf,
        format!(
            "server:\n    rundir: \"{k}\"\n    listen: {addr}@5353\n\
             database:\n    storage: \"{k}\"\n\
             acl:\n  - id: xfr\n    address: 127.0.0.0/8\n    action: transfer\n\
             policy:\n  - id: p\n    algorithm: {alg}\n{sizes}\
             zone:\n  - domain: .\n    file: \"{z}\"\n    storage: \"{k}\"\n    dnssec-signing: on\n\
             \x20   dnssec-policy: p\n    zonemd-generate: zonemd-sha384\n    zonefile-sync: -1\n\
             \x20   journal-content: none\n    acl: xfr\n",
            k = kdir.display(),
            sizes = if alg.starts_with("rsa") { "    ksk-size: 2048\n    zsk-size: 2048\n" } else { "" },
            z = zone.display()
        ),
    )
    .unwrap();
    let mut knotd = Command::new("knotd")
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("knotd (package knot)");
    let mut transcript = Vec::new();
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let out = Command::new("kdig")
            .args([&format!("@{addr}"), "-p", "5353", "+noidn", ".", "AXFR"])
            .output()
            .expect("kdig (package knot-dnsutils)");
        if String::from_utf8_lossy(&out.stdout).contains("ZONEMD") {
            transcript = out.stdout;
            break;
        }
    }
    let ds = run(&kdir, "keymgr", &["-c", conf.to_str().unwrap(), ".", "ds"]);
    let _ = Command::new("knotc")
        .arg("-c")
        .arg(&conf)
        .arg("stop")
        .output();
    let _ = knotd.kill();
    let _ = knotd.wait();
    assert!(
        !transcript.is_empty(),
        "knotd did not serve a signed zone with ZONEMD"
    );
    let axfr = dir.join("knot.axfr");
    fs::write(&axfr, transcript).unwrap();
    let anchor = dir.join("knot-ksk.ds");
    fs::write(&anchor, ds.stdout).unwrap();
    (axfr, anchor)
}

/// Signs `zone` with BIND's dnssec-signzone (no ZONEMD: BIND 9.18 cannot make one);
/// returns (signed zone, KSK DS trust-anchor path).
pub fn bind_sign(dir: &Path, zone: &Path) -> (PathBuf, PathBuf) {
    let bdir = dir.join("bind");
    fs::create_dir_all(&bdir).unwrap();
    let ksk = run(
        &bdir,
        "dnssec-keygen",
        &["-q", "-a", "RSASHA256", "-b", "2048", "-f", "KSK", "."],
    );
    let ksk = String::from_utf8_lossy(&ksk.stdout).trim().to_string();
    run(
        &bdir,
        "dnssec-keygen",
        &["-q", "-a", "RSASHA256", "-b", "2048", "."],
    );
    let out = bdir.join("root.signed");
    run(
        &bdir,
        "dnssec-signzone",
        &[
            "-q",
            "-S",
            "-K",
            ".",
            "-o",
            ".",
            "-O",
            "full",
            "-f",
            out.to_str().unwrap(),
            zone.to_str().unwrap(),
        ],
    );
    let ds = run(&bdir, "dnssec-dsfromkey", &["-2", &format!("{ksk}.key")]);
    let anchor = dir.join("bind-ksk.ds");
    fs::write(&anchor, ds.stdout).unwrap();
    (out, anchor)
}
