//! thin_delta XML: any input gives change lists or a clean error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = ironshed_core::snapshot::thin::parse(data, "fuzz") {
        // Both lists sorted, disjoint, non-adjacent, whole blocks, and never overlapping.
        for c in [&d.changed, &d.unmapped] {
            let r = c.ranges();
            assert!(r.windows(2).all(|w| w[0].end() < w[1].offset));
            assert!(r.iter().all(|x| x.len > 0 && x.offset % d.block_size == 0 && x.len % d.block_size == 0));
        }
        let (a, b) = (d.changed.ranges(), d.unmapped.ranges());
        for x in a {
            assert!(b.iter().all(|y| x.end() <= y.offset || y.end() <= x.offset));
        }
        assert!(d.block_size >= 512 && d.block_size % 512 == 0);
    }
});
