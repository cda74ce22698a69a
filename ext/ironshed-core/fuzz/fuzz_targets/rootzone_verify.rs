//! The verifier's input: a trust anchor, a line `---`, then a zone (seeds are small zones
//! signed by ldns-signzone for a fixed time). Any input gives a verdict, never a panic; an
//! accepted zone has a matching SHA-384 ZONEMD and a validity end after `NOW`.
#![no_main]
use ironshed_core::dns::{parse_zone, verify, TrustAnchor};
use libfuzzer_sys::fuzz_target;

/// 2025-01-01 00:00:00 UTC: inside the validity of the seeds bin/fuzz signs.
const NOW: u64 = 1_735_689_600;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.windows(5).position(|w| w == b"\n---\n") else { return };
    let Ok(anchor) = TrustAnchor::parse("anchor", &data[..split + 1]) else { return };
    let Ok(zone) = parse_zone("zone", data[split + 5..].to_vec()) else { return };
    if let Ok(v) = verify(&zone, &anchor, NOW) {
        assert!(v.zonemd.iter().any(|m| m.hash == 1));
        assert!(v.valid_until >= NOW as i64);
        assert_eq!(v.serial, zone.serial());
    }
});
