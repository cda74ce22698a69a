//! thin_dump XML: any input gives one device's mapped ranges or a clean error.
#![no_main]
use ironshed_core::snapshot::ChangeSource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the device asked for.
    let (id, xml) = data
        .split_first()
        .map_or((0, data), |(a, b)| (u64::from(*a % 4), b));
    if let Ok(m) = ironshed_core::snapshot::full::parse_thin_dump(xml, "fuzz", id) {
        let r = m.mapped.ranges();
        // Sorted, non-adjacent, whole blocks.
        assert!(r.windows(2).all(|w| w[0].end() < w[1].offset));
        assert!(r
            .iter()
            .all(|x| x.len > 0 && x.offset % m.block_size == 0 && x.len % m.block_size == 0));
        assert!(m.block_size >= 512 && m.block_size % 512 == 0);
        assert_eq!(m.dev_id, id);
        // The whole-volume copy covers every byte once, as data or discard.
        let size = r.last().map_or(m.block_size, |x| x.end() / 2 + 1);
        let set = m.full_copy(size).change_set();
        assert_eq!(set.data.total_bytes() + set.discards.total_bytes(), size);
        assert_eq!(set.all().ranges().len(), 1);
    }
});
