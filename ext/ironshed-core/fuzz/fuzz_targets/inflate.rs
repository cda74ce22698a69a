//! Grain inflation: arbitrary compressed bytes never panic and never produce more than the
//! grain size asked for.
#![no_main]
use ironshed_core::vmdk::sparse::Inflater;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let max = 1 + (data.first().copied().unwrap_or(0) as usize) * 512;
    let mut inf = Inflater::new();
    if let Ok(out) = inf.inflate(data.get(1..).unwrap_or(&[]), max) {
        assert!(out.len() <= max);
    }
});
