//! `rootzone update`: from the downloaded bytes to an installed, verified data.cdb.
//!
//! Order: OpenPGP signature (when asked) over the bytes as downloaded; gunzip; parse;
//! DNSSEC and ZONEMD verification; the serial against the installed one; conversion; the
//! atomic install. Every check comes before the first write.

use super::anchor::TrustAnchor;
use super::error::Error;
use super::install::{self, Instance, HEADER_SERIAL, HEADER_VALID_UNTIL};
use super::time::{format_utc, serial_diff};
use super::tinydns;
use super::verify::{verify, Verified};
use super::zonemd::hash_name;
use super::{parse_zone, pgp};
use crate::error::Cancelled;
use crate::Progress;
use std::path::PathBuf;

/// What `update` is asked to do.
#[derive(Debug, Clone)]
pub struct UpdateOptions {
    /// The source as the user named it (URL, path, `-`), for messages and the data header.
    pub source: String,
    /// Trust-anchor file (DNSKEY or DS records).
    pub trust_anchor: PathBuf,
    /// The tinydns instance's root directory (where data and data.cdb live).
    pub root: PathBuf,
    /// Verify and report, write nothing.
    pub dry_run: bool,
    /// Install even if the serial is older than the installed one.
    pub allow_older: bool,
    /// The time signatures are checked against (seconds since 1970; `None`: now).
    pub now: Option<u64>,
    /// A detached OpenPGP signature file to check with gpgv.
    pub signature: Option<PathBuf>,
    /// How messages name the signature (its URL when it was downloaded).
    pub signature_name: Option<String>,
    /// The keyring gpgv checks the signature against.
    pub keyring: Option<PathBuf>,
    /// The gpgv program.
    pub gpgv: PathBuf,
}

impl Default for UpdateOptions {
    fn default() -> Self {
        UpdateOptions {
            source: "-".into(),
            trust_anchor: DEFAULT_TRUST_ANCHOR.into(),
            root: DEFAULT_ROOT.into(),
            dry_run: false,
            allow_older: false,
            now: None,
            signature: None,
            signature_name: None,
            keyring: None,
            gpgv: "gpgv".into(),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The new zone is installed.
    Installed,
    /// The installed copy has this serial already (data.cdb's time stamp was refreshed).
    Current,
    /// Dry run: the zone would be installed.
    WouldInstall,
    /// Dry run: the installed copy is current.
    WouldKeepCurrent,
}

impl Outcome {
    /// The outcome's name as the Ruby API gives it (`installed`, `current`...).
    pub fn key(self) -> &'static str {
        match self {
            Outcome::Installed => "installed",
            Outcome::Current => "current",
            Outcome::WouldInstall => "would_install",
            Outcome::WouldKeepCurrent => "would_keep_current",
        }
    }
}

/// The report of a successful update.
#[derive(Debug, Clone)]
pub struct UpdateReport {
    /// What happened.
    pub outcome: Outcome,
    /// The zone's serial.
    pub serial: u32,
    /// The installed serial before.
    pub previous_serial: Option<u32>,
    /// The verification's findings.
    pub verified: Verified,
    /// Served lines: SOA, NS, A, AAAA.
    pub served: Vec<usize>,
    /// Not served, by type (`1502 NSEC, ...`).
    pub not_served: String,
    /// Number of delegations.
    pub delegations: usize,
    /// Remarks for -v.
    pub notes: Vec<String>,
}

/// Runs the update on `raw` (the zone as read or downloaded, possibly gzip).
pub fn update(
    raw: Vec<u8>,
    opts: &UpdateOptions,
    progress: &Progress,
) -> Result<UpdateReport, Error> {
    let check = || {
        if progress.is_cancelled() {
            Err(Error::Cancelled(Cancelled))
        } else {
            Ok(())
        }
    };
    let mut notes = Vec::new();
    let now = opts.now.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    if let Some(sig_path) = &opts.signature {
        let keyring = opts.keyring.as_deref().ok_or_else(|| {
            Error::OpenPgp("a signature needs a keyring to check it against".into())
        })?;
        let sig = super::zonefile::read_input(sig_path)?;
        let sig_name = opts
            .signature_name
            .clone()
            .unwrap_or_else(|| sig_path.display().to_string());
        let good = pgp::check(&opts.gpgv, keyring, &raw, &sig_name, &sig)?;
        notes.push(format!(
            "OpenPGP signature {sig_name}: good signature from {good}"
        ));
    }
    check()?;
    let anchor = TrustAnchor::load(&opts.trust_anchor)?;
    let zone = parse_zone(&opts.source, raw)?;
    check()?;
    let verified = verify(&zone, &anchor, now)?;
    check()?;
    let serial = zone.serial();
    let installed = install::installed(&opts.root)?;
    notes.extend(installed.notes.iter().cloned());
    if let Some(prev) = installed.serial {
        let diff = serial_diff(prev, serial);
        if diff < 0 && !opts.allow_older {
            return Err(Error::Rollback(format!(
                "{}: serial {serial} is older than the installed {prev} ({}): refusing to roll \
                 back (--allow-older to install it anyway)",
                opts.source,
                opts.root.join("data.cdb").display()
            )));
        }
    }
    let conv = tinydns::convert(&zone);
    let report = |outcome| UpdateReport {
        outcome,
        serial,
        previous_serial: installed.serial,
        served: conv.counts().to_vec(),
        not_served: conv.not_served_text(),
        delegations: zone.delegations().len(),
        verified: verified.clone(),
        notes: notes.clone(),
    };
    let current = installed.serial == Some(serial) && installed.valid_until.is_some();
    if opts.dry_run {
        let o = if current {
            Outcome::WouldKeepCurrent
        } else {
            Outcome::WouldInstall
        };
        return Ok(report(o));
    }
    let inst = Instance::open(&opts.root)?;
    if current {
        inst.touch()?;
        return Ok(report(Outcome::Current));
    }
    let header = header_lines(&opts.source, &anchor, &verified, now, &conv);
    let data = tinydns::data_file(&header, &conv.lines);
    let records: Vec<(Vec<u8>, Vec<u8>)> = conv.lines.iter().map(|l| l.cdb_record()).collect();
    check()?;
    inst.install(&data, &records, &|| progress.is_cancelled())?;
    Ok(report(Outcome::Installed))
}

/// The comment lines at the top of `data`: what was installed, from where, verified how,
/// valid until when. `rootzone` and `check_rootzone` read `serial` and `valid-until` back.
fn header_lines(
    source: &str,
    anchor: &TrustAnchor,
    v: &Verified,
    now: u64,
    conv: &tinydns::Conversion,
) -> Vec<String> {
    let digests: Vec<String> = v
        .zonemd
        .iter()
        .map(|m| format!("{} {}", hash_name(m.hash), m.digest))
        .collect();
    vec![
        "The DNS root zone for tinydns (RFC 8806), written by `rootzone update`: do not edit."
            .into(),
        format!("{HEADER_SERIAL} {}", v.serial),
        format!("source {source}"),
        format!(
            "verified {}: DNSSEC from the trust anchor {} ({}), {} signatures over {} RRsets",
            format_utc(now as i64),
            anchor.source,
            anchor.describe(),
            v.signatures,
            v.rrsets
        ),
        format!("zonemd {}", digests.join(", ")),
        format!(
            "{HEADER_VALID_UNTIL} {} ({}, {})",
            v.valid_until,
            format_utc(v.valid_until),
            v.valid_until_rrset
        ),
        format!(
            "not-served {} (DNSSEC records: tinydns cannot sign answers)",
            conv.not_served_text()
        ),
    ]
}

/// Default trust anchor: Debian's dns-root-data.
pub const DEFAULT_TRUST_ANCHOR: &str = "/usr/share/dns/root.key";
/// Default instance root: the daemontools service of `rootzone setup`.
pub const DEFAULT_ROOT: &str = "/etc/service/tinydns-root/root";
