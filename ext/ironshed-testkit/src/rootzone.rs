//! Unsigned root-like zones for the rootzone tests and benchmark, shaped like the real root:
//! the 13 root servers with A and AAAA glue, `com.`/`net.` on the shared gtld-servers, and
//! many TLDs with in-bailiwick name servers (A/AAAA glue), name servers shared between
//! TLDs, out-of-bailiwick ones, and DS records for most. The tests sign the result with the
//! real signers (ldns-signzone, knot) and never with ironshed's code.

use crate::pattern::Rng;
use std::collections::BTreeSet;
use std::fmt::Write;

/// What to generate.
#[derive(Debug, Clone)]
pub struct RootZoneSpec {
    /// Number of TLDs besides `com.` and `net.`.
    pub tlds: usize,
    /// SOA serial.
    pub serial: u32,
    /// Seed of the pseudo-random shape.
    pub seed: u64,
}

/// The TLD names a spec generates, in generation order (`com`, `net`, then the others).
pub fn tld_names(spec: &RootZoneSpec) -> Vec<String> {
    let mut rng = Rng::new(spec.seed);
    let mut seen: BTreeSet<String> = ["com", "net", "arpa"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut out = vec!["com".to_string(), "net".to_string()];
    while out.len() < spec.tlds + 2 {
        let len = 2 + rng.below(10) as usize;
        let mut name: String = (0..len)
            .map(|_| (b'a' + rng.below(26) as u8) as char)
            .collect();
        if rng.below(20) == 0 {
            name = format!("xn--{name}");
        }
        if seen.insert(name.clone()) {
            out.push(name);
        }
    }
    out
}

fn ipv6(rng: &mut Rng, prefix: &str) -> String {
    format!(
        "{prefix}:{:x}:{:x}::{:x}",
        rng.below(0xffff),
        rng.below(0xffff),
        1 + rng.below(0xfff)
    )
}

fn ipv4(rng: &mut Rng) -> String {
    format!(
        "{}.{}.{}.{}",
        1 + rng.below(222),
        rng.below(256),
        rng.below(256),
        1 + rng.below(254)
    )
}

fn hex(rng: &mut Rng, bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02X}", rng.below(256)))
        .collect()
}

/// The zone text, one record per line, fully qualified, in the InterNIC file's column style.
pub fn unsigned_root_zone(spec: &RootZoneSpec) -> String {
    let mut rng = Rng::new(spec.seed ^ 0x7200_7a0e);
    let mut z = String::with_capacity(spec.tlds * 700);
    let letters = "abcdefghijklm";
    writeln!(
        z,
        ".\t86400\tIN\tSOA\ta.root-servers.net. nstld.verisign-grs.com. {} 1800 900 604800 86400",
        spec.serial
    )
    .unwrap();
    for c in letters.chars() {
        writeln!(z, ".\t518400\tIN\tNS\t{c}.root-servers.net.").unwrap();
    }
    for (i, c) in letters.chars().enumerate() {
        writeln!(z, "{c}.root-servers.net.\t518400\tIN\tA\t198.41.{i}.4").unwrap();
        writeln!(
            z,
            "{c}.root-servers.net.\t518400\tIN\tAAAA\t2001:503:ba3e::2:{:x}",
            0x30 + i
        )
        .unwrap();
    }
    let names = tld_names(spec);
    // Operators whose name servers serve many TLDs: ns<k>.dns.nic.<provider TLD>.
    let providers: Vec<&String> = names.iter().skip(2).take(24).collect();
    let mut glued: BTreeSet<String> = BTreeSet::new();
    let mut glue = |z: &mut String, rng: &mut Rng, ns: &str| {
        if glued.insert(ns.to_string()) {
            writeln!(z, "{ns}\t172800\tIN\tA\t{}", ipv4(rng)).unwrap();
            if rng.below(20) < 17 {
                writeln!(z, "{ns}\t172800\tIN\tAAAA\t{}", ipv6(rng, "2001:db8")).unwrap();
            }
        }
    };
    for (i, tld) in names.iter().enumerate() {
        let mut ns: Vec<String> = Vec::new();
        if i < 2 {
            ns.extend(letters.chars().map(|c| format!("{c}.gtld-servers.net.")));
        } else {
            let k = 2 + rng.below(8) as usize;
            for j in 0..k {
                let name = match rng.below(10) {
                    0..=3 => format!("ns{j}.nic.{tld}."),
                    4..=7 if !providers.is_empty() => {
                        let p = providers[rng.below(providers.len() as u64) as usize];
                        format!("ns{}.dns.nic.{p}.", rng.below(6))
                    }
                    _ => format!("ns{}.provider{}.net.", rng.below(4), rng.below(40)),
                };
                if !ns.contains(&name) {
                    ns.push(name);
                }
            }
        }
        for n in &ns {
            writeln!(z, "{tld}.\t172800\tIN\tNS\t{n}").unwrap();
        }
        for n in &ns {
            glue(&mut z, &mut rng, n);
        }
        if rng.below(10) != 0 {
            for _ in 0..1 + rng.below(2) {
                let (alg, dt, len) = if rng.below(4) == 0 {
                    (13, 2, 32)
                } else {
                    (8, 2, 32)
                };
                writeln!(
                    z,
                    "{tld}.\t86400\tIN\tDS\t{} {alg} {dt} {}",
                    rng.below(65536),
                    hex(&mut rng, len)
                )
                .unwrap();
            }
        }
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_unique_tlds() {
        let spec = RootZoneSpec {
            tlds: 300,
            serial: 2024120600,
            seed: 3,
        };
        assert_eq!(unsigned_root_zone(&spec), unsigned_root_zone(&spec));
        let names = tld_names(&spec);
        assert_eq!(names.len(), 302);
        let set: BTreeSet<&String> = names.iter().collect();
        assert_eq!(set.len(), 302);
    }
}
