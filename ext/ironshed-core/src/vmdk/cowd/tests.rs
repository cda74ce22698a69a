//! COWD refusal rules, one test each, on extents written by ironshed-testkit and patched at
//! the offsets of the format notes (header fields: version 4, flags 8, numSectors 12,
//! grainSize 16, gdOffset 20, numGDEntries 24, freeSector 28).

use super::*;
use crate::vmdk::fixture::*;
use crate::vmdk::run::ExtentReader;
use ironshed_testkit::cowd::{CowdLayout, Layout};
use ironshed_testkit::model::Model;
use std::collections::BTreeMap;

/// A 4 MiB disk in 4 KiB grains (one grain table): grains 0-1, 256-259 and 768 written,
/// stored in virtual order.
fn image() -> (Vec<u8>, CowdLayout) {
    let mut m = Model::new(4 << 20, 1);
    m.write(0, 8192).write(1 << 20, 16384).write(3 << 20, 4096);
    cowd_image(8192, 8, Layout::Sequential, &m)
}

/// Byte offset of grain `g`'s table entry.
fn gte(lay: &CowdLayout, g: u64) -> u64 {
    lay.gte_offset(g).unwrap()
}

fn refused(img: &[u8], facts: &[&str]) {
    format_error(read(&img, NAME), NAME, facts);
}

#[test]
fn reads_every_grain_where_the_tables_put_it() {
    let (img, lay) = image();
    let c = read(&img, NAME).unwrap();
    assert_eq!((c.grains, c.changed_bytes), (7, 7 * 4096));
    assert_eq!(c.header.capacity_bytes(), 4 << 20);
    let runs = collect(|f| c.for_each_run(&img, NAME, 3, 0, u64::MAX, f));
    assert!(runs
        .iter()
        .all(|r| matches!(r.src, Src::Data { file: 3, .. })));
    let want: BTreeMap<u64, Option<u64>> = lay
        .grains
        .iter()
        .map(|(&g, &s)| (g, Some(s * 512)))
        .collect();
    assert_eq!(grains_of(&runs, 4096), want);
    // Physically contiguous neighbours come as one run: 0-1, 256-259, 768.
    assert_eq!(runs.len(), 3);
}

#[test]
fn a_window_clips_the_runs() {
    let (img, lay) = image();
    let c = read(&img, NAME).unwrap();
    let runs = collect(|f| c.for_each_run(&img, NAME, 0, 4096 + 100, (1 << 20) + 5000, f));
    let first = lay.grains[&1] * 512 + 100;
    assert_eq!(
        runs,
        vec![
            Run {
                virt: 4196,
                len: 3996,
                src: Src::Data {
                    file: 0,
                    offset: first
                },
            },
            Run {
                virt: 1 << 20,
                len: 5000,
                src: Src::Data {
                    file: 0,
                    offset: lay.grains[&256] * 512,
                },
            },
        ]
    );
}

#[test]
fn a_partial_last_grain_is_clipped_to_the_disk() {
    // 16387 sectors: the last 4 KiB grain holds 3 sectors of the disk.
    let cap = 16387 * 512;
    let mut m = Model::new(cap, 2);
    m.write(cap - 1536, 1536);
    let (img, _) = cowd_image(16387, 8, Layout::Sequential, &m);
    let c = read(&img, NAME).unwrap();
    assert_eq!(c.changed_bytes, 1536);
    let runs = collect(|f| c.for_each_run(&img, NAME, 0, 0, u64::MAX, f));
    assert_eq!((runs[0].virt, runs[0].len), (cap - 1536, 1536));
}

#[test]
fn shorter_than_the_header() {
    let (img, _) = image();
    refused(
        &img[..1000],
        &["file is 1000 bytes, shorter than the 2048-byte COWD header"],
    );
}

#[test]
fn bad_magic() {
    let (mut img, _) = image();
    img[..4].copy_from_slice(b"XXXX");
    refused(&img, &["bad magic 58 58 58 58 at byte 0"]);
}

#[test]
fn unknown_version() {
    let (mut img, _) = image();
    put_u32(&mut img, 4, 2);
    refused(&img, &["header version is 2 at byte 4"]);
}

#[test]
fn flags_other_than_3() {
    let (mut img, _) = image();
    put_u32(&mut img, 8, 0);
    refused(&img, &["header flags are 0x0 at byte 8"]);
}

#[test]
fn grain_size_zero_not_a_power_of_two_or_too_large() {
    for (v, fact) in [
        (0, "grainSize is 0 at byte 16".to_string()),
        (3, "grainSize 3 at byte 16 is not a power of two".into()),
        (
            4096,
            "grainSize 4096 at byte 16 is not a power of two between 1 and 2048".into(),
        ),
    ] {
        let (mut img, _) = image();
        put_u32(&mut img, 16, v);
        refused(&img, &[&fact]);
    }
}

#[test]
fn no_capacity() {
    let (mut img, _) = image();
    put_u32(&mut img, 12, 0);
    refused(&img, &["numSectors (capacity) is 0 at byte 12"]);
}

#[test]
fn directory_size_does_not_match_the_capacity() {
    let (mut img, _) = image();
    put_u32(&mut img, 24, 2);
    refused(
        &img,
        &["numGDEntries is 2 at byte 24, but 8192 sectors in grains of 8 need 1"],
    );
}

#[test]
fn directory_inside_the_header() {
    let (mut img, _) = image();
    put_u32(&mut img, 20, 2);
    refused(
        &img,
        &["gdOffset 2 at byte 20 points inside the 4-sector header"],
    );
}

#[test]
fn directory_past_the_end_of_the_file() {
    let (mut img, _) = image();
    put_u32(&mut img, 20, 100_000);
    let len = img.len();
    refused(
        &img,
        &[&format!(
            "grain directory (sector 100000, 1 entries) runs past the end of the file (51200004 > {len} bytes)"
        )],
    );
}

#[test]
fn directory_entry_into_the_header() {
    let (mut img, lay) = image();
    put_u32(&mut img, lay.gd_sector * 512, 2);
    refused(
        &img,
        &["grain directory entry 0 points at sector 2, inside the header or the directory (which ends at sector 5)"],
    );
}

#[test]
fn grain_table_past_the_end_of_the_file() {
    let (mut img, lay) = image();
    let at = lay.end_sector as u32 - 8;
    put_u32(&mut img, lay.gd_sector * 512, at);
    refused(
        &img,
        &[&format!(
            "grain directory entry 0: grain table at sector {at} runs past the end of the file ({} > {} sectors)",
            at + 32,
            lay.end_sector
        )],
    );
}

#[test]
fn grain_past_the_end_of_the_file() {
    let (mut img, lay) = image();
    let at = lay.end_sector as u32 + 10;
    put_u32(&mut img, gte(&lay, 256), at);
    refused(
        &img,
        &[&format!(
            "grain table 0 entry 256 (grain 256) points past the end of the file (sector {at} + 8 > {})",
            lay.end_sector
        )],
    );
}

#[test]
fn grain_inside_the_metadata() {
    let (mut img, lay) = image();
    put_u32(&mut img, gte(&lay, 0), 4);
    refused(
        &img,
        &["grain table 0 entry 0 (grain 0) points at sector 4, inside the header or the grain directory (which ends at sector 5)"],
    );
}

#[test]
fn grain_entry_1_is_ambiguous() {
    let (mut img, lay) = image();
    put_u32(&mut img, gte(&lay, 1), 1);
    refused(
        &img,
        &[
            "grain table 0 entry 1 (grain 1) is 1",
            "refusing an ambiguous delta",
        ],
    );
}

#[test]
fn grain_past_free_sector() {
    let (mut img, lay) = image();
    // freeSector just after grain 0: grain 1, stored next, was never allocated.
    let free = lay.grains[&0] + 8;
    put_u32(&mut img, 28, free as u32);
    refused(
        &img,
        &[&format!(
            "grain table 0 entry 1 (grain 1) at sector {} ends past freeSector {free}",
            lay.grains[&1]
        )],
    );
}

#[test]
fn entry_beyond_the_capacity() {
    let (mut img, lay) = image();
    // 1024 grains make the disk; entry 2000 of the table lies beyond it.
    let s = lay.grains[&0];
    put_u32(&mut img, gte(&lay, 2000), s as u32);
    refused(
        &img,
        &[&format!(
            "grain table 0 entry 2000 (grain 2000) is set (sector {s}) but lies beyond the disk's 8192 sectors"
        )],
    );
}

#[test]
fn grain_overlapping_a_grain_table() {
    let (mut img, lay) = image();
    let t = lay.tables[&0];
    put_u32(&mut img, gte(&lay, 0), t as u32 + 15);
    refused(
        &img,
        &[&format!(
            "grain 0 (file sectors {}..{}) overlaps grain table 0 (file sectors {t}..{}) at file sector {}",
            t + 15,
            t + 23,
            t + 32,
            t + 15
        )],
    );
}

#[test]
fn two_entries_on_one_grain() {
    let (mut img, lay) = image();
    let s = lay.grains[&0];
    put_u32(&mut img, gte(&lay, 768), s as u32);
    refused(
        &img,
        &[&format!(
            "grain 768 (file sectors {s}..{}) overlaps grain 0 (file sectors {s}..{}) at file sector {s}",
            s + 8,
            s + 8
        )],
    );
}

#[test]
fn two_directory_entries_on_one_table() {
    // 32 MiB in 4 KiB grains: two grain tables.
    let mut m = Model::new(32 << 20, 3);
    m.write(0, 4096).write(20 << 20, 4096);
    let (mut img, lay) = cowd_image(65536, 8, Layout::Sequential, &m);
    let t0 = lay.tables[&0];
    put_u32(&mut img, lay.gd_sector * 512 + 4, t0 as u32);
    refused(
        &img,
        &[&format!(
            "grain table 1 (file sectors {t0}..{}) overlaps grain table 0 (file sectors {t0}..{}) at file sector {t0}",
            t0 + 32,
            t0 + 32
        )],
    );
}
