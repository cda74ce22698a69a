//! COWD header, grain directory and grain tables: any input gives Ok or a clean error.
#![no_main]
use ironshed_core::vmdk::run::ExtentReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = ironshed_core::vmdk::cowd::read(&data, "fuzz") {
        // Every run the parser accepts lies inside the input and the capacity, in order, and
        // the runs add up to what the validation pass counted.
        let cap = c.header.capacity_bytes();
        let mut end = 0u64;
        let mut total = 0u64;
        let res = c.for_each_run(&data, "fuzz", 0, 0, u64::MAX, &mut |r| {
            assert!(r.virt >= end && r.end() <= cap);
            if let ironshed_core::vmdk::run::Src::Data { offset, .. } = r.src {
                assert!(offset + r.len <= data.len() as u64);
            }
            end = r.end();
            total += r.len;
            Ok(())
        });
        assert!(res.is_ok());
        assert_eq!(total, c.changed_bytes);
    }
});
