use super::*;
use crate::error::{Kind, Report};

fn br(offset: u64, len: u64) -> ByteRange {
    ByteRange { offset, len }
}

/// `thin_dump -m --dev-id 2 /dev/mapper/vgt-pool_tmeta` on Debian 12 (thin-provisioning-tools
/// 0.9.0, Linux 6.1) in the real-kernel VM: a 32 MiB thin snapshot of an origin written at
/// pool blocks 0, 3, 7-9, 100, 200, 300, 400, 511 (64 KiB each) and 4 KiB at byte 16384000
/// (block 250).
const GUEST_DEV2: &str = r#"<superblock uuid="" time="1" transaction="2" flags="0" version="2" data_block_size="128" nr_data_blocks="0">
  <device dev_id="2" mapped_blocks="11" transaction="1" creation_time="1" snap_time="1">
    <single_mapping origin_block="0" data_block="0" time="0"/>
    <single_mapping origin_block="3" data_block="1" time="0"/>
    <range_mapping origin_begin="7" data_begin="2" length="3" time="0"/>
    <single_mapping origin_block="100" data_block="5" time="0"/>
    <single_mapping origin_block="200" data_block="6" time="0"/>
    <single_mapping origin_block="250" data_block="10" time="0"/>
    <single_mapping origin_block="300" data_block="7" time="0"/>
    <single_mapping origin_block="400" data_block="8" time="0"/>
    <single_mapping origin_block="511" data_block="9" time="0"/>
  </device>
</superblock>
"#;

const K: u64 = 65536;

#[test]
fn a_real_thin_dump_gives_the_mapped_blocks() {
    let m = parse_thin_dump(GUEST_DEV2.as_bytes(), "t", 2).unwrap();
    assert_eq!((m.block_size, m.dev_id, m.mapped_blocks), (K, 2, 11));
    let blocks = [0, 3, 7, 100, 200, 250, 300, 400, 511];
    let lens = [1, 1, 3, 1, 1, 1, 1, 1, 1];
    let want: Vec<ByteRange> = blocks
        .iter()
        .zip(lens)
        .map(|(&b, l)| br(b * K, l * K))
        .collect();
    assert_eq!(m.mapped.ranges(), &want[..]);
    // The whole-volume copy of the 32 MiB device: those as data, the rest discarded.
    let set = m.full_copy(32 << 20).change_set();
    assert_eq!(set.data.total_bytes(), 11 * K);
    assert_eq!(set.discards.total_bytes(), (32 << 20) - 11 * K);
    assert_eq!(set.all().ranges(), [br(0, 32 << 20)]);
    assert_eq!(set.discards.ranges()[0], br(K, 2 * K));
    assert_eq!(set.discards.ranges().last(), Some(&br(401 * K, 110 * K)));
}

#[test]
fn only_the_device_asked_for_is_kept() {
    // thin_dump without --dev-id lists every device: the origin (1) and the snapshot (2).
    let both = GUEST_DEV2.replace(
        "  <device dev_id=\"2\"",
        "  <device dev_id=\"1\" mapped_blocks=\"1\" transaction=\"0\" creation_time=\"0\" snap_time=\"1\">\n    <single_mapping origin_block=\"9\" data_block=\"1\" time=\"0\"/>\n  </device>\n  <device dev_id=\"2\"",
    );
    let two = parse_thin_dump(both.as_bytes(), "t", 2).unwrap();
    assert_eq!(two.mapped_blocks, 11);
    let one = parse_thin_dump(both.as_bytes(), "t", 1).unwrap();
    assert_eq!(one.mapped.ranges(), [br(9 * K, K)]);
    let e = parse_thin_dump(both.as_bytes(), "t", 7).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "t: at byte {}: thin device 7 is not in the metadata",
            both.len()
        )
    );
    assert_eq!(e.kind(), Kind::ThinDelta);
}

fn refuse(xml: &str) -> String {
    parse_thin_dump(xml.as_bytes(), "x", 2)
        .unwrap_err()
        .to_string()
}

#[test]
fn refusals_say_what_is_wrong() {
    assert!(refuse("").contains("no <superblock>"));
    assert!(refuse("<device dev_id=\"2\"/>").contains("expected <superblock> first"));
    assert!(
        refuse(r#"<superblock data_block_size="0"></superblock>"#).contains("data_block_size is 0")
    );
    let cut = &GUEST_DEV2[..GUEST_DEV2
        .find("<single_mapping origin_block=\"300\"")
        .unwrap()];
    assert!(
        refuse(cut).contains("thin_dump stopped early"),
        "{}",
        refuse(cut)
    );
    assert!(
        refuse(&GUEST_DEV2.replace("single_mapping origin_block=\"100\"", "def name=\"100\""))
            .contains("unexpected <def>")
    );
    assert!(
        refuse(&GUEST_DEV2.replace("origin_block=\"200\"", "origin_block=\"-2\""))
            .contains("not a non-negative integer")
    );
    assert!(refuse(
        &GUEST_DEV2.replace("origin_block=\"200\"", "origin_block=\"99999999999999999\"")
    )
    .contains("past 2^64"));
    assert!(
        refuse(&GUEST_DEV2.replace("origin_block=\"200\"", "origin_block=\"50\""))
            .contains("out of order")
    );
    assert!(
        refuse(&GUEST_DEV2.replace("origin_begin=\"7\"", "begin=\"7\""))
            .contains("no origin_begin")
    );
    let twice = GUEST_DEV2.replace(
        "</superblock>",
        "<device dev_id=\"2\"></device></superblock>",
    );
    assert!(refuse(&twice).contains("listed twice"));
    assert!(refuse(&GUEST_DEV2.replace(
        "<single_mapping origin_block=\"0\"",
        "x<single_mapping origin_block=\"0\""
    ))
    .contains("unexpected text"));
}

#[test]
fn complement_covers_the_rest() {
    let c = Changes::from_ranges(vec![br(10, 10), br(30, 5)]);
    assert_eq!(
        c.complement(50).ranges(),
        [br(0, 10), br(20, 10), br(35, 15)]
    );
    assert_eq!(c.complement(35).ranges(), [br(0, 10), br(20, 10)]);
    assert_eq!(c.complement(25).ranges(), [br(0, 10), br(20, 5)]);
    assert!(Changes::from_ranges(vec![br(0, 9)])
        .complement(9)
        .is_empty());
    assert_eq!(Changes::default().complement(7).ranges(), [br(0, 7)]);
    // Mapped blocks sticking out of the device are cut at its end.
    let m = ThinMapping {
        block_size: 8,
        dev_id: 1,
        mapped: Changes::from_ranges(vec![br(0, 8), br(16, 8), br(40, 8)]),
        mapped_blocks: 3,
    };
    let f = m.full_copy(20);
    assert_eq!(f.data.ranges(), [br(0, 8), br(16, 4)]);
    assert_eq!(f.change_set().discards.ranges(), [br(8, 8)]);
}

#[test]
fn a_builder_past_its_cap_merges_the_closest_ranges() {
    let mut b = RangeBuilder::new(8);
    // 100 one-byte ranges: gaps of 10 bytes, except a 1 MiB gap in the middle.
    for i in 0..100u64 {
        let off = i * 11 + if i >= 50 { 1 << 20 } else { 0 };
        assert!(b.push(off, 1));
    }
    assert!(!b.push(5, 1), "out of order");
    let c = b.finish();
    assert!(c.ranges().len() <= 8, "{:?}", c.ranges());
    // Everything pushed is still covered.
    for i in 0..100u64 {
        let off = i * 11 + if i >= 50 { 1 << 20 } else { 0 };
        assert!(c.ranges().iter().any(|r| r.offset <= off && off < r.end()));
    }
    // Under the cap, ranges are only merged when adjacent.
    let mut b = RangeBuilder::new(8);
    b.push(0, 4);
    b.push(4, 4);
    b.push(9, 1);
    assert_eq!(b.finish().ranges(), [br(0, 8), br(9, 1)]);
}

#[test]
fn zero_grains_become_discards_and_the_rest_data() {
    use std::io::Write;
    let g = ZERO_GRAIN as usize;
    // 10 grains and a partial one: data in grain 1 (one byte), grains 4-5, and the tail.
    let mut img = vec![0u8; 10 * g + 1000];
    img[g + 17] = 1;
    img[4 * g..6 * g].fill(0xaa);
    img[10 * g + 999] = 2;
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(&img).unwrap();
    let set = full_change_set(f.path(), None, &Progress::new()).unwrap();
    let gg = ZERO_GRAIN;
    assert_eq!(
        set.data.ranges(),
        [br(gg, gg), br(4 * gg, 2 * gg), br(10 * gg, 1000)]
    );
    assert_eq!(
        set.discards.ranges(),
        [br(0, gg), br(2 * gg, 2 * gg), br(6 * gg, 4 * gg)]
    );
    // An all-zero file is one discard; a cancelled scan stops.
    let z = tempfile::NamedTempFile::new().unwrap();
    z.as_file().set_len(3 * gg).unwrap();
    let set = full_change_set(z.path(), None, &Progress::new()).unwrap();
    assert!(set.data.is_empty());
    assert_eq!(set.discards.ranges(), [br(0, 3 * gg)]);
    let p = Progress::new();
    p.cancel();
    assert!(full_change_set(z.path(), None, &p)
        .unwrap_err()
        .is_cancelled());
}

#[test]
fn a_mapping_needs_no_read() {
    let z = tempfile::NamedTempFile::new().unwrap();
    z.as_file().set_len(32 << 20).unwrap();
    let m = parse_thin_dump(GUEST_DEV2.as_bytes(), "t", 2).unwrap();
    let p = Progress::new();
    p.cancel();
    let set = full_change_set(z.path(), Some(&m), &p).unwrap();
    assert_eq!(set, m.full_copy(32 << 20).change_set());
}

#[test]
fn the_thin_dump_command() {
    let c = ThinDumpCommand::new("/dev/mapper/vg-pool_tmeta".into(), 5);
    assert_eq!(
        c.display(),
        "thin_dump -m --dev-id 5 /dev/mapper/vg-pool_tmeta"
    );
    let mut c = c;
    c.program = "/nonexistent/thin_dump".into();
    c.metadata_snap = false;
    let e = run_thin_dump(&c, &Progress::new()).unwrap_err().to_string();
    assert!(e.contains("install thin-provisioning-tools"), "{e}");
    assert!(
        e.contains("/nonexistent/thin_dump --dev-id 5 /dev/mapper/vg-pool_tmeta"),
        "{e}"
    );
}
