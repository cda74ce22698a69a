//! Hosted sparse (KDMV) header/footer, directories, tables and grain markers: any input gives
//! Ok or a clean error; accepted runs stay inside the extent and the file.
#![no_main]
use ironshed_core::vmdk::run::{ExtentReader, Src};
use ironshed_core::vmdk::sparse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = sparse::Options {
        check_redundant: data.len() % 2 == 0,
        inflate_once: data.len() % 3 == 0,
    };
    if let Ok(s) = sparse::read(&data, "fuzz", opts) {
        let cap = s.header.capacity_bytes();
        let mut end = 0u64;
        let mut total = 0u64;
        let res = s.for_each_run(&data, "fuzz", 0, 0, u64::MAX, &mut |r| {
            assert!(r.virt >= end && r.end() <= cap && r.len > 0);
            if let Src::Data { offset, .. } = r.src {
                assert!(offset + r.len <= data.len() as u64);
            }
            end = r.end();
            total += r.len;
            Ok(())
        });
        assert!(res.is_ok());
        assert_eq!(total, s.changed_bytes);
    }
});
