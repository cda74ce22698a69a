//! LVM2 text metadata: any input gives a model or a clean error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ironshed_core::lvm::Metadata { vg: Some(vg), .. }) =
        ironshed_core::lvm::parse(data, "fuzz", None)
    {
        for lv in &vg.logical_volumes {
            let _ = vg.lv_size(lv);
            let _ = lv.segtype();
        }
        for s in vg.classic_snapshots() {
            assert!(vg.classic_snapshot(&s.cow_store).is_some());
        }
    }
});
