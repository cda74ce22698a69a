//! Text descriptor parser: any input gives Ok or a clean error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ironshed_core::vmdk::descriptor::looks_like_descriptor(data);
    if let Ok(d) = ironshed_core::vmdk::descriptor::parse(data, "fuzz") {
        let _ = d.total_sectors();
    }
});
