//! `dmsetup status` of a thin pool: any bytes give a status or a clean error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match ironshed_core::lvm::pool_status::parse(data, "thin pool vg/pool") {
        Ok(s) => {
            assert!(!s.mode.is_empty());
            if let Some(u) = s.usage {
                let _ = (u.metadata_used, u.data_total, u.held_root);
            }
        }
        Err(e) => assert!(e
            .to_string()
            .starts_with("thin pool vg/pool: unexpected status")),
    }
});
