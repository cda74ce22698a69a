//! Every delta format, alone and in chains of mixed formats, against the oracle: applying the
//! chain onto a raw copy of the base must give exactly what `qemu-img convert -O raw` reads
//! from the newest descriptor. Files come from two independent writers: the project's
//! testkit (seSparse, streamOptimized with a footer, chains) and QEMU itself (monolithicSparse,
//! twoGbMaxExtentSparse, streamOptimized, zeroed grains).

mod common;

use common::*;
use ironshed_core::vmdk::{ApplyOptions, BaseCheck, Delta, Format, OpenOptions};
use ironshed_core::Progress;
use ironshed_testkit::chain::{write_chain, LayerFormat, LayerSpec};
use ironshed_testkit::cowd::Layout;
use ironshed_testkit::model::{GrainKind, Model};
use std::fs;
use std::path::Path;
use std::process::Command;

fn spec(format: LayerFormat, layout: Layout) -> LayerSpec {
    LayerSpec { format, layout }
}

const SPARSE: LayerFormat = LayerFormat::Sparse {
    grain_size: 128,
    zeroed: false,
    redundant: true,
};
const SPARSE_ZEROED: LayerFormat = LayerFormat::Sparse {
    grain_size: 16,
    zeroed: true,
    redundant: false,
};
const STREAM: LayerFormat = LayerFormat::Stream {
    grain_size: 128,
    footer: false,
    zeroed: false,
};
const STREAM_FOOTER: LayerFormat = LayerFormat::Stream {
    grain_size: 128,
    footer: true,
    zeroed: true,
};
const TWOGB: LayerFormat = LayerFormat::TwoGb {
    grain_size: 64,
    extent_bytes: 3 << 20,
};
const COWD1: LayerFormat = LayerFormat::Cowd { grain_size: 1 };

/// Writes the chain, applies it with vmdksync onto a copy of the base and compares with
/// qemu-img's reading of the newest descriptor. Returns the apply's bytes written.
fn check_chain(model: &Model, layers: &[LayerSpec], expect_format: Format) -> (u64, Delta) {
    let dir = tempfile::tempdir().unwrap();
    let files = write_chain(dir.path(), "vm", model, layers).unwrap();
    let expected = dir.path().join("qemu.raw");
    qemu_convert(files.newest(), &expected);
    let dest = dir.path().join("dest.raw");
    fs::copy(&files.flat, &dest).unwrap();
    let d = Delta::open(files.newest(), &OpenOptions::default()).unwrap();
    assert_eq!(d.format, expect_format);
    assert_eq!(d.base, BaseCheck::Verified(files.base.clone()));
    assert_eq!(d.layers().len(), layers.len());
    let stats = d
        .apply(&dest, &ApplyOptions::default(), &Progress::new())
        .unwrap();
    assert_same(
        &fs::read(&dest).unwrap(),
        &fs::read(&expected).unwrap(),
        "vmdksync vs qemu-img",
    );
    // Idempotent: a second apply changes nothing.
    d.apply(&dest, &ApplyOptions::default(), &Progress::new())
        .unwrap();
    assert_same(
        &fs::read(&dest).unwrap(),
        &fs::read(&expected).unwrap(),
        "second apply",
    );
    (stats.bytes, d)
}

fn writes(seed: u64) -> Model {
    let mut m = Model::new(10 << 20, seed);
    m.write(0, 512)
        .write(70_000, 5000)
        .write((10 << 20) - 4096, 4096)
        .random_writes(40, 8192, seed);
    m
}

#[test]
fn monolithic_sparse_with_redundant_directory() {
    check_chain(
        &writes(1),
        &[spec(SPARSE, Layout::Shuffled(2))],
        Format::Sparse,
    );
}

#[test]
fn monolithic_sparse_zeroed_grains_read_as_zeros() {
    let mut m = writes(2);
    m.zero(1 << 20, 64 << 10).zero(3 << 20, 8192);
    let (_, d) = check_chain(&m, &[spec(SPARSE_ZEROED, Layout::Reverse)], Format::Sparse);
    // 8 grains of the first range, 1 of the second.
    assert!(d.layers()[0].zero_grains >= 9);
}

#[test]
fn stream_optimized_with_gd_in_header() {
    check_chain(
        &writes(3),
        &[spec(STREAM, Layout::Sequential)],
        Format::StreamOptimized,
    );
}

#[test]
fn stream_optimized_with_footer_and_zeroed_grains() {
    let mut m = writes(4);
    m.zero(5 << 20, 128 << 10);
    check_chain(
        &m,
        &[spec(STREAM_FOOTER, Layout::Shuffled(5))],
        Format::StreamOptimized,
    );
}

/// `inflate_once` on a delta (not `full`): the apply is refused, before the destination is
/// opened, unless it keeps an undo file; with one it applies as qemu-img reads the chain.
#[test]
fn inflate_once_on_a_delta_needs_an_undo_file() {
    use ironshed_core::error::{Kind, Report};
    use ironshed_core::vmdk::inflate_once_refusal;
    assert_eq!(inflate_once_refusal(false, false, false), None);
    assert_eq!(inflate_once_refusal(true, true, false), None);
    assert_eq!(inflate_once_refusal(true, false, true), None);
    let why = inflate_once_refusal(true, false, false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = write_chain(
        dir.path(),
        "vm",
        &writes(6),
        &[spec(STREAM_FOOTER, Layout::Shuffled(6))],
    )
    .unwrap();
    let expected = dir.path().join("qemu.raw");
    qemu_convert(files.newest(), &expected);
    let dest = dir.path().join("dest.raw");
    fs::copy(&files.flat, &dest).unwrap();
    let before = fs::read(&dest).unwrap();
    let opts = OpenOptions {
        inflate_once: true,
        ..Default::default()
    };
    let d = Delta::open(files.newest(), &opts).unwrap();
    let e = d
        .apply(&dest, &ApplyOptions::default(), &Progress::new())
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Argument);
    assert_eq!(e.to_string(), format!("inflate_once {why}"));
    assert_eq!(fs::read(&dest).unwrap(), before, "nothing written");
    let undo = ApplyOptions {
        undo: Some(dir.path().join("undo")),
        ..Default::default()
    };
    let st = d.apply(&dest, &undo, &Progress::new()).unwrap();
    assert!(st.inflated > 0);
    assert_same(
        &fs::read(&dest).unwrap(),
        &fs::read(&expected).unwrap(),
        "inflate_once with an undo file vs qemu-img",
    );
}

#[test]
fn two_gb_max_extent_sparse_several_extents() {
    // 10 MiB in extents of 3 MiB: four extents, writes crossing extent boundaries.
    let mut m = writes(5);
    m.write((3 << 20) - 1000, 3000).write((9 << 20) - 10, 20);
    let (_, d) = check_chain(&m, &[spec(TWOGB, Layout::Shuffled(1))], Format::Sparse);
    assert_eq!(d.layers()[0].extents.len(), 4);
}

#[test]
fn sesparse_zero_unmapped_and_split_grain_indexes() {
    // 6000 4 KiB grains: indexes above 4095 use the split encoding.
    let mut m = Model::new(64 << 20, 6);
    m.random_writes(6000, 4096, 9)
        .zero(40 << 20, 64 << 10)
        .unmap(50 << 20, 32 << 10)
        .write(63 << 20, 100);
    let (_, d) = check_chain(
        &m,
        &[spec(LayerFormat::SeSparse, Layout::Shuffled(3))],
        Format::SeSparse,
    );
    let zeroed = m
        .layer_grains(0, 4096)
        .values()
        .filter(|k| **k != GrainKind::Data)
        .count() as u64;
    assert!(zeroed >= 8, "the model has {zeroed} zeroed grains");
    assert_eq!(d.layers()[0].zero_grains, zeroed);
}

#[test]
fn chain_of_four_mixed_formats_writes_each_byte_once() {
    let mut m = Model::new(24 << 20, 7);
    m.random_writes(300, 4096, 1).write(0, 1 << 20); // layer 0: COWD
    m.next_layer()
        .random_writes(200, 8192, 2)
        .write(512 << 10, 1 << 20)
        .zero(20 << 20, 1 << 20); // layer 1: seSparse
    m.next_layer().random_writes(50, 65536, 3).write(0, 4096); // layer 2: stream + footer
    m.next_layer().write(100, 2 << 20).unmap(22 << 20, 4096); // layer 3: monolithicSparse zeroed
    let layers = [
        spec(COWD1, Layout::WriteOrder),
        spec(LayerFormat::SeSparse, Layout::Shuffled(4)),
        spec(STREAM_FOOTER, Layout::Shuffled(5)),
        spec(SPARSE_ZEROED, Layout::Reverse),
    ];
    let (bytes, d) = check_chain(&m, &layers, Format::Sparse);
    let per_layer: u64 = d.layers().iter().map(|l| l.changed_bytes).sum();
    assert_eq!(bytes, d.changed_bytes());
    assert!(
        bytes < per_layer,
        "the merged chain ({bytes}) must be smaller than the sum of its layers ({per_layer})"
    );
}

#[test]
fn chains_of_two_and_three() {
    let mut m = Model::new(8 << 20, 8);
    m.random_writes(100, 4096, 1);
    m.next_layer().random_writes(100, 4096, 2).write(4096, 8192);
    check_chain(
        &m,
        &[
            spec(LayerFormat::SeSparse, Layout::Sequential),
            spec(COWD1, Layout::Shuffled(1)),
        ],
        Format::Cowd,
    );
    m.next_layer().zero(0, 1 << 20);
    check_chain(
        &m,
        &[
            spec(STREAM, Layout::Sequential),
            spec(TWOGB, Layout::Reverse),
            spec(LayerFormat::SeSparse, Layout::Shuffled(7)),
        ],
        Format::SeSparse,
    );
}

fn qemu(args: &[&str], dir: &Path) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .output()
        .expect("qemu tools");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A child made by QEMU over a monolithicFlat base whose data is the model's base pattern.
fn qemu_child(subformat: &str, size: &str, io: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    qemu(
        &[
            "qemu-img",
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "subformat=monolithicFlat",
            "base.vmdk",
            size,
        ],
        d,
    );
    let len = fs::metadata(d.join("base-flat.vmdk")).unwrap().len();
    let m = Model::new(len, 99);
    write_raw(&d.join("base-flat.vmdk"), &m);
    qemu(
        &[
            "qemu-img",
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            subformat,
            "-b",
            "base.vmdk",
            "-F",
            "vmdk",
            "child.vmdk",
        ],
        d,
    );
    for cmd in io {
        qemu(&["qemu-io", "-c", cmd, "child.vmdk"], d);
    }
    qemu(
        &[
            "qemu-img",
            "convert",
            "-O",
            "raw",
            "child.vmdk",
            "expected.raw",
        ],
        d,
    );
    fs::copy(d.join("base-flat.vmdk"), d.join("dest.raw")).unwrap();
    let delta = Delta::open(&d.join("child.vmdk"), &OpenOptions::default()).unwrap();
    assert_eq!(delta.base, BaseCheck::Verified(d.join("base.vmdk")));
    delta
        .apply(
            &d.join("dest.raw"),
            &ApplyOptions::default(),
            &Progress::new(),
        )
        .unwrap();
    assert_same(
        &fs::read(d.join("dest.raw")).unwrap(),
        &fs::read(d.join("expected.raw")).unwrap(),
        subformat,
    );
}

#[test]
fn qemu_monolithic_sparse_child() {
    qemu_child(
        "subformat=monolithicSparse",
        "8M",
        &[
            "write -P 0xab 1M 64k",
            "write -P 0xcd 100k 3k",
            "write -P 0x11 8380416 4096",
        ],
    );
}

#[test]
fn qemu_zeroed_grain_child() {
    qemu_child(
        "subformat=monolithicSparse,zeroed_grain=on",
        "8M",
        &[
            "write -P 0xab 0 256k",
            "write -z 64k 64k",
            "write -z 2M 128k",
            "write -P 0x22 5M 1k",
        ],
    );
}

#[test]
fn qemu_stream_optimized_child() {
    qemu_child(
        "subformat=streamOptimized",
        "8M",
        &[
            "write -P 0xab 0 64k",
            "write -P 0xcd 1M 128k",
            "write -P 0xef 8323072 64k",
        ],
    );
}

#[test]
fn qemu_two_gb_max_extent_sparse_child() {
    // 5 GiB: three 2 GiB extents; writes in the first and last and across a boundary.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    qemu(
        &[
            "qemu-img",
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "subformat=monolithicFlat",
            "base.vmdk",
            "5G",
        ],
        d,
    );
    qemu(
        &[
            "qemu-img",
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "subformat=twoGbMaxExtentSparse",
            "-b",
            "base.vmdk",
            "-F",
            "vmdk",
            "child.vmdk",
        ],
        d,
    );
    for cmd in [
        "write -P 0xab 1M 64k",
        "write -P 0xcd 2147450880 65536",
        "write -P 0xef 5368643584 65536",
    ] {
        qemu(&["qemu-io", "-c", cmd, "child.vmdk"], d);
    }
    let delta = Delta::open(&d.join("child.vmdk"), &OpenOptions::default()).unwrap();
    assert_eq!(delta.layers()[0].extents.len(), 3);
    // 64 KiB grains: the write across the first extent boundary touches two grains.
    assert_eq!(
        delta.extents().unwrap(),
        vec![(1 << 20, 65536), (2147418112, 131072), (5368643584, 65536)]
    );
    qemu(&["cp", "--sparse=always", "base-flat.vmdk", "dest.raw"], d);
    delta
        .apply(
            &d.join("dest.raw"),
            &ApplyOptions::default(),
            &Progress::new(),
        )
        .unwrap();
    qemu(
        &[
            "qemu-img",
            "compare",
            "-q",
            "-f",
            "raw",
            "-F",
            "vmdk",
            "dest.raw",
            "child.vmdk",
        ],
        d,
    );
}

/// `inflate_once`: a qemu-made streamOptimized image (no parent) written whole onto garbage
/// gives qemu's bytes with every compressed grain inflated exactly once — none when the image
/// is opened, each once by the apply — where the default inflates each when opening (refusing
/// a bad grain before the first write) and again when applying. A grain that does not decode
/// then stops the apply after the batches before it were written, leaving its own batch as
/// it was.
#[test]
fn inflate_once_inflates_each_grain_once_and_a_bad_grain_stops_the_apply_at_its_batch() {
    use ironshed_core::vmdk::run::Src;
    use ironshed_core::vmdk::Error;
    const MIB: u64 = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 20 MiB and 7 sectors: three 8 MiB batches, the last one short; the last grain clipped.
    let len = 20 * MIB + 7 * 512;
    write_raw(&d.join("src.raw"), &Model::new(len, 21));
    qemu(
        &[
            "qemu-img",
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            "src.raw",
            "export.vmdk",
        ],
        d,
    );
    let img = d.join("export.vmdk");
    qemu_convert(&img, &d.join("qemu.raw"));
    let want = fs::read(d.join("qemu.raw")).unwrap();
    let garbage: Vec<u8> = (0..len).map(|i| (i * 13 + 5) as u8 | 1).collect();
    let dest = d.join("dest.raw");
    let full = OpenOptions {
        full: true,
        ..Default::default()
    };
    let once = OpenOptions {
        inflate_once: true,
        ..full.clone()
    };
    let checked = Delta::open(&img, &full).unwrap();
    let grains = checked.layers()[0].grains;
    assert_eq!(
        grains,
        len.div_ceil(64 << 10),
        "qemu stores every grain of this data"
    );
    for (opts, what) in [(&full, "default"), (&once, "inflate_once")] {
        fs::write(&dest, &garbage).unwrap();
        let delta = Delta::open(&img, opts).unwrap();
        assert_eq!(delta.inflate_once, opts.inflate_once);
        let st = delta
            .apply(&dest, &ApplyOptions::default(), &Progress::new())
            .unwrap();
        assert_same(&fs::read(&dest).unwrap(), &want, what);
        assert_eq!(st.inflated, grains, "{what}: grains the apply inflated");
    }

    // Damage the compressed data of the last grain (the marker stays as it was).
    let mut last = None;
    checked
        .for_each_run(|r| {
            if let Src::Deflate(dr) = r.src {
                last = Some(dr.offset);
            }
            Ok(())
        })
        .unwrap();
    let at = last.unwrap();
    let mut b = fs::read(&img).unwrap();
    b[at as usize + 4..at as usize + 36].fill(0xa5);
    fs::write(&img, b).unwrap();
    fs::write(&dest, &garbage).unwrap();
    // The default refuses it when opening.
    let e = Delta::open(&img, &full).unwrap_err().to_string();
    assert!(e.contains("export.vmdk: grain"), "{e}");
    // inflate_once opens it; a dry run inflates every grain itself and refuses it.
    let delta = Delta::open(&img, &once).unwrap();
    let e = delta
        .dry_run(&dest, &ApplyOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("export.vmdk: grain at byte"), "{e}");
    let e = delta
        .apply(&dest, &ApplyOptions::default(), &Progress::new())
        .unwrap_err();
    match &e {
        Error::Stopped { bytes, .. } => assert_eq!(*bytes, 16 * MIB, "{e}"),
        other => panic!("not Stopped: {other}"),
    }
    assert!(
        e.to_string().contains("inflate the compressed grain"),
        "{e}"
    );
    // A damaged image, as when opening refuses it: every rerun stops at the same grain.
    assert_eq!(
        ironshed_core::error::Report::kind(&e),
        ironshed_core::error::Kind::VmdkFormat
    );
    let got = fs::read(&dest).unwrap();
    assert_same(
        &got[..16 * MIB as usize],
        &want[..16 * MIB as usize],
        "batches before the bad one",
    );
    assert_same(
        &got[16 * MIB as usize..],
        &garbage[16 * MIB as usize..],
        "the bad grain's batch",
    );
}
