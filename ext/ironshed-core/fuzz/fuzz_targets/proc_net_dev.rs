//! /proc/net/dev text: any input gives rows or a clean error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(rows) = ironshed_core::ethtool::netdev::parse(&text) {
        for (name, c) in rows {
            assert!(!name.contains(':'));
            assert_eq!(c.fields().len(), 16);
        }
    }
});
