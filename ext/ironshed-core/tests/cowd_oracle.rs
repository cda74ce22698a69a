//! vmdksync's COWD apply against the oracle: for several grain sizes, capacities and physical
//! layouts, applying the delta onto a raw copy of the base must give exactly what
//! `qemu-img convert -O raw` reads from the child descriptor.

mod common;

use common::*;
use ironshed_core::vmdk::{ApplyOptions, BaseCheck, Delta, OpenOptions};
use ironshed_core::{Progress, Report};
use ironshed_testkit::{cowd::Layout, model::Model};
use std::fs;

fn apply(delta_path: &std::path::Path, dest: &std::path::Path) -> ironshed_core::vmdk::ApplyStats {
    let d = Delta::open(delta_path, &OpenOptions::default()).unwrap();
    d.apply(dest, &ApplyOptions::default(), &Progress::new())
        .unwrap()
}

fn check(set: &EsxSet) {
    let expected = set.qemu_raw();
    // Through the descriptor (parent CID checked via parentFileNameHint)...
    let dest = set.dest("dest-desc.raw");
    let d = Delta::open(&set.child(), &OpenOptions::default()).unwrap();
    assert_eq!(d.base, BaseCheck::Verified(set.base()));
    assert_eq!(d.grains, set.layout.grains.len() as u64);
    d.apply(&dest, &ApplyOptions::default(), &Progress::new())
        .unwrap();
    assert_same(
        &fs::read(&dest).unwrap(),
        &expected,
        "apply via descriptor vs qemu-img",
    );
    // ... and through the bare extent, as the original tool was used.
    let dest2 = set.dest("dest-extent.raw");
    apply(&set.extent(), &dest2);
    assert_same(
        &fs::read(&dest2).unwrap(),
        &expected,
        "apply via extent vs qemu-img",
    );
}

#[test]
fn grain_size_1_shuffled_across_tables() {
    let mut m = Model::new(8 << 20, 11);
    m.write(0, 512)
        .write(5 << 10, 3 << 10)
        .write((2 << 20) - 1024, 2048) // crosses from table 0 into table 1
        .write((8 << 20) - 512, 512) // last sector
        .random_writes(200, 4096, 5);
    check(&esx_set(m, 1, Layout::Shuffled(3)));
}

#[test]
fn grain_size_8_partial_last_grain_interleaved() {
    // 16387 sectors: the last 4 KiB grain holds only 3 sectors of disk.
    let cap = 16387 * 512;
    let mut m = Model::new(cap, 12);
    m.write(cap - 1536, 1536)
        .write(4096, 100)
        .write(1 << 20, 70_000);
    check(&esx_set(m, 8, Layout::Interleaved(9)));
}

#[test]
fn grain_size_128_reverse_order() {
    let mut m = Model::new(40 << 20, 13);
    m.write(0, 1)
        .write(17 << 20, 200_000)
        .random_writes(50, 65536, 2);
    check(&esx_set(m, 128, Layout::Reverse));
}

#[test]
fn grain_size_2048_sequential_partial_last() {
    let cap = (10 << 20) + 512;
    let mut m = Model::new(cap, 14);
    m.write(cap - 512, 512).write(3 << 20, 10).write(0, 5 << 20);
    check(&esx_set(m, 2048, Layout::Sequential));
}

#[test]
fn grain_size_16_many_random_writes_several_tables() {
    let mut m = Model::new(160 << 20, 15);
    m.random_writes(3000, 4096, 77);
    check(&esx_set(m, 16, Layout::Shuffled(4)));
}

#[test]
fn empty_delta_changes_nothing() {
    let m = Model::new(4 << 20, 16);
    let set = esx_set(m, 8, Layout::Sequential);
    let dest = set.dest("d.raw");
    let stats = apply(&set.child(), &dest);
    assert_eq!((stats.grains, stats.bytes, stats.writes), (0, 0, 0));
    assert_same(&fs::read(&dest).unwrap(), &set.qemu_raw(), "empty delta");
}

#[test]
fn writes_only_changed_grains() {
    // A destination whose every byte differs from the base: after the apply, the changed
    // grains hold the delta's data and every other byte is still the filler.
    let mut m = Model::new(8 << 20, 17);
    m.write(100_000, 5000)
        .write(3 << 20, 1 << 20)
        .write((8 << 20) - 4096, 4096);
    let set = esx_set(m, 8, Layout::Shuffled(1));
    let expected = set.qemu_raw();
    let dest = set.path("filler.raw");
    fs::write(&dest, vec![0xee; 8 << 20]).unwrap();
    let d = Delta::open(&set.child(), &OpenOptions::default()).unwrap();
    d.apply(&dest, &ApplyOptions::default(), &Progress::new())
        .unwrap();
    let got = fs::read(&dest).unwrap();
    let extents = d.extents().unwrap();
    let mut pos = 0usize;
    for (off, len) in &extents {
        let (off, len) = (*off as usize, *len as usize);
        assert!(
            got[pos..off].iter().all(|&b| b == 0xee),
            "bytes {pos}..{off} were touched"
        );
        assert_same(
            &got[off..off + len],
            &expected[off..off + len],
            "changed range",
        );
        pos = off + len;
    }
    assert!(got[pos..].iter().all(|&b| b == 0xee), "tail was touched");
    // grain-aligned ranges covering exactly the written bytes
    assert_eq!(
        extents,
        vec![(98_304, 8192), (3 << 20, 1 << 20), ((8 << 20) - 4096, 4096)]
    );
}

#[test]
fn adjacent_grains_are_coalesced_into_large_writes() {
    // 4 MiB written contiguously but stored in reverse physical order: still one write.
    let mut m = Model::new(16 << 20, 18);
    m.write(1 << 20, 4 << 20);
    let set = esx_set(m, 1, Layout::Reverse);
    let dest = set.dest("d.raw");
    let stats = apply(&set.child(), &dest);
    assert_eq!(stats.extents, 1);
    assert_eq!(stats.writes, 1);
    assert_eq!(stats.bytes, 4 << 20);
    assert_same(&fs::read(&dest).unwrap(), &set.qemu_raw(), "coalesced");
}

#[test]
fn never_extends_or_creates_the_destination() {
    let mut m = Model::new(4 << 20, 19);
    m.write(0, 4096);
    let set = esx_set(m, 8, Layout::Sequential);
    let d = Delta::open(&set.child(), &OpenOptions::default()).unwrap();
    let missing = set.path("does-not-exist.raw");
    let err = d
        .apply(&missing, &ApplyOptions::default(), &Progress::new())
        .unwrap_err();
    assert!(err.to_string().contains("No such file"), "{err}");
    assert!(!missing.exists());
    // a larger destination is refused unless allowed, and then not extended
    let big = set.path("big.raw");
    fs::write(&big, vec![0u8; (4 << 20) + 4096]).unwrap();
    let err = d
        .apply(&big, &ApplyOptions::default(), &Progress::new())
        .unwrap_err();
    assert!(
        err.to_string().contains("--allow-larger-destination"),
        "{err}"
    );
    let opts = ApplyOptions {
        allow_larger_destination: true,
        ..Default::default()
    };
    d.apply(&big, &opts, &Progress::new()).unwrap();
    assert_eq!(fs::metadata(&big).unwrap().len(), (4 << 20) + 4096);
}

#[test]
fn cancelled_progress_stops_before_writing() {
    let mut m = Model::new(4 << 20, 20);
    m.write(0, 1 << 20);
    let set = esx_set(m, 8, Layout::Sequential);
    let dest = set.dest("d.raw");
    let before = fs::read(&dest).unwrap();
    let d = Delta::open(&set.child(), &OpenOptions::default()).unwrap();
    let p = Progress::new();
    p.cancel();
    let err = d.apply(&dest, &ApplyOptions::default(), &p).unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(fs::read(&dest).unwrap(), before);
}
