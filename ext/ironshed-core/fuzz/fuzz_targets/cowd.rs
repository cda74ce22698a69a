//! COWD header, grain directory and grain tables: any input gives Ok or a clean error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = ironshed_core::vmdk::cowd::read(data, "fuzz") {
        // Every run the parser accepts must lie inside the input and the capacity.
        let cap = c.header.capacity_bytes();
        for (virt, len, file_off) in c.byte_runs() {
            assert!(virt + len <= cap);
            assert!(file_off + len <= data.len() as u64);
        }
    }
});
