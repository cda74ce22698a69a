//! LVM2 text metadata: any input gives a model or a clean error, never a panic; so does
//! planning an lvmsync round on any LV of it, alone or with any other as --from.
#![no_main]
use ironshed_core::lvm::{self, RoundOptions, Target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = lvm::parse(data, "fuzz", None) else {
        return;
    };
    let Some(vg) = &m.vg else {
        return;
    };
    for lv in &vg.logical_volumes {
        let _ = vg.lv_size(lv);
        let _ = lv.segtype();
    }
    for s in vg.classic_snapshots() {
        assert!(vg.classic_snapshot(&s.cow_store).is_some());
    }
    let target = |lv: &str| Target::new(lv, vg.name.as_str(), lv);
    for newer in vg.logical_volumes.iter().take(8) {
        for (data_source, discards, plain) in [
            (false, false, false),
            (true, false, false),
            (false, true, false),
            (true, false, true),
        ] {
            // A whole-volume copy (--full) of any LV: planned or refused, never with --from;
            // discard records unless the original format is asked for.
            let full = RoundOptions {
                data_source,
                full: true,
                discards,
                plain,
            };
            if let Ok(r) = lvm::plan_round(&m, &target(&newer.name), None, &full) {
                assert!(r.full());
                assert_eq!(r.data_lv.is_some(), !data_source);
                assert_eq!(r.discards, !plain);
                assert!(r.new_part.is_none());
            }
            let o = target(&newer.name);
            assert!(lvm::plan_round(&m, &target(&newer.name), Some(&o), &full).is_err());
            let opts = RoundOptions {
                data_source,
                full: false,
                discards,
                plain,
            };
            let check = |r: &lvm::Round, from: bool| {
                assert_eq!(r.data_lv.is_some(), !data_source);
                // Discard records only when asked; a new part only past the snapshot's end,
                // and never in a --from round.
                assert!(discards || !r.discards);
                if let Some(p) = &r.new_part {
                    assert!(p.offset < p.end && !from);
                    let _ = p.note(&r.vg);
                }
            };
            if let Ok(r) = lvm::plan_round(&m, &target(&newer.name), None, &opts) {
                check(&r, false);
            }
            for older in vg.logical_volumes.iter().take(8) {
                let o = target(&older.name);
                if let Ok(r) = lvm::plan_round(&m, &target(&newer.name), Some(&o), &opts) {
                    check(&r, true);
                }
            }
        }
    }
});
