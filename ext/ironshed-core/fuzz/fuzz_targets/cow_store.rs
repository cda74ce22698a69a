//! dm-snapshot exception store: any input gives a change list or a clean error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = ironshed_core::snapshot::CowStore::read(data, "fuzz") {
        let c = s.changes();
        // Sorted, disjoint, non-adjacent, and exactly the chunks listed.
        let r = c.ranges();
        assert!(r.windows(2).all(|w| w[0].end() < w[1].offset));
        assert_eq!(c.total_bytes(), s.chunks().len() as u64 * s.chunk_size);
        assert!(s.exceptions >= s.chunks().len() as u64);
        let pieces: u64 = c.pieces(1 << 20).map(|p| p.len).sum();
        assert_eq!(pieces, c.total_bytes());
    }
});
