//! seSparse refusal rules, one test each, on extents written by ironshed-testkit and patched
//! at the offsets of the format notes (constant header: magic 0, version 8, capacity 16,
//! grain size 24, table size 32, flags 40, reserved 48..80, region (offset, size) pairs from
//! 80: volatile header, journal header, journal, directory 128, tables 144, free bitmap,
//! backmap, grains 192; volatile header: magic 0, replayJournal 24).

use super::*;
use crate::vmdk::fixture::*;
use crate::vmdk::run::ExtentReader;
use ironshed_testkit::cowd::Layout;
use ironshed_testkit::model::Model;
use ironshed_testkit::sesparse::{allocated_entry, SeSparseLayout};
use std::collections::BTreeMap;

const SECTORS: u64 = 131_072;

/// A 64 MiB disk (four grain tables): data in tables 0 and 2, a zeroed and an unmapped range.
fn image() -> (Vec<u8>, SeSparseLayout) {
    let mut m = Model::new(SECTORS * 512, 1);
    m.write(0, 12288)
        .write(40 << 20, 8192)
        .zero(1 << 20, 8192)
        .unmap(2 << 20, 4096);
    sesparse_image(SECTORS, Layout::Shuffled(5), &m)
}

fn refused(img: &[u8], facts: &[&str]) {
    format_error(read(&img, NAME), NAME, facts);
}

fn not_supported(img: &[u8], facts: &[&str]) {
    unsupported(read(&img, NAME), NAME, facts);
}

/// Byte offset of grain `g`'s table entry.
fn gte(lay: &SeSparseLayout, g: u64) -> u64 {
    let t = lay.table_index[&(g / 4096)];
    (lay.tables.0 + t * 64) * 512 + (g % 4096) * 8
}

/// Byte offset of directory entry `i`.
fn gde(lay: &SeSparseLayout, i: u64) -> u64 {
    lay.directory.0 * 512 + i * 8
}

#[test]
fn reads_grains_zeros_and_unmapped_ranges() {
    let (img, lay) = image();
    let s = read(&img, NAME).unwrap();
    assert_eq!((s.grains, s.zero_grains), (5, 3));
    assert_eq!(s.changed_bytes, 8 * 4096);
    assert_eq!(s.header.replay_journal, 0);
    let runs = collect(|f| s.for_each_run(&img, NAME, 0, 0, u64::MAX, f));
    let mut want: BTreeMap<u64, Option<u64>> = lay
        .grain_index
        .iter()
        .map(|(&g, &i)| (g, Some((lay.grains_region.0 + i * 8) * 512)))
        .collect();
    for g in [256, 257, 512] {
        want.insert(g, None);
    }
    assert_eq!(grains_of(&runs, 4096), want);
}

#[test]
fn shorter_than_the_header() {
    let (img, _) = image();
    refused(
        &img[..100],
        &["file is 100 bytes, shorter than the 512-byte seSparse header"],
    );
}

#[test]
fn bad_constant_header_magic() {
    let (mut img, _) = image();
    put_u64(&mut img, 0, 0xcafe);
    refused(
        &img,
        &["bad constant header magic 0x000000000000cafe at byte 0"],
    );
}

#[test]
fn unknown_header_values() {
    for (at, v, fact) in [
        (
            8,
            0x1_0000_0001u64,
            "seSparse version 0x0000000100000001 at byte 8",
        ),
        (24, 16, "grain size 16 sectors at byte 24 (only 8 is known)"),
        (
            32,
            32,
            "grain table size 32 sectors at byte 32 (only 64 is known)",
        ),
        (40, 1, "flags 0x1 at byte 40 (only 0 is known)"),
        (56, 7, "reserved field at byte 56 is 0x7, not 0"),
    ] {
        let (mut img, _) = image();
        put_u64(&mut img, at, v);
        not_supported(&img, &[fact]);
    }
}

#[test]
fn constant_header_padding_not_zero() {
    let (mut img, _) = image();
    img[300] = 1;
    not_supported(
        &img,
        &["constant header padding (bytes 208..511) is not zero"],
    );
}

#[test]
fn unusable_capacity() {
    let (mut img, _) = image();
    put_u64(&mut img, 16, 0);
    refused(&img, &["capacity 0 sectors at byte 16 is not usable"]);
}

#[test]
fn volatile_header_outside_the_file() {
    let (mut img, lay) = image();
    put_u64(&mut img, 80, lay.end_sector);
    refused(
        &img,
        &[&format!(
            "volatile header at sector {0} lies outside the file ({0} sectors)",
            lay.end_sector
        )],
    );
}

#[test]
fn volatile_magic_0xcafebabe() {
    // Some tools document the volatile magic as the constant header's.
    let (mut img, lay) = image();
    put_u64(&mut img, lay.volatile * 512, 0xcafe_babe);
    refused(
        &img,
        &["bad volatile header magic 0x00000000cafebabe at byte 512 (seSparse: 0xcafecafe)"],
    );
}

#[test]
fn volatile_header_padding_not_zero() {
    let (mut img, lay) = image();
    img[(lay.volatile * 512 + 100) as usize] = 1;
    not_supported(&img, &["volatile header padding is not zero"]);
}

#[test]
fn region_that_overflows() {
    let (mut img, _) = image();
    put_u64(&mut img, 120, u64::MAX);
    refused(
        &img,
        &["journal region (sector 3, 18446744073709551615 sectors) overflows"],
    );
}

#[test]
fn overlapping_regions() {
    let (mut img, lay) = image();
    // The tables start where the directory starts.
    put_u64(&mut img, 144, lay.directory.0);
    let (d, t) = (lay.directory, lay.tables);
    refused(
        &img,
        &[&format!(
            "grain tables region (sectors {}..{}) overlaps the grain directory region (sectors {}..{})",
            d.0,
            d.0 + t.1,
            d.0,
            d.0 + d.1
        )],
    );
}

#[test]
fn directory_empty_or_outside_the_file() {
    let (mut img, lay) = image();
    put_u64(&mut img, 128, 100_000);
    refused(
        &img,
        &[&format!(
            "grain directory region (sector 100000, 1 sectors) is empty or lies outside the file ({} sectors)",
            lay.end_sector
        )],
    );
    let (mut img, lay) = image();
    put_u64(&mut img, 152, 0);
    refused(
        &img,
        &[&format!(
            "grain tables region (sector {}, 0 sectors) is empty or lies outside the file",
            lay.tables.0
        )],
    );
}

#[test]
fn directory_too_small_for_the_capacity() {
    let (mut img, _) = image();
    // One directory sector holds 64 entries of 16 MiB each.
    put_u64(&mut img, 16, 65 * 32768);
    refused(
        &img,
        &["grain directory has 64 entries but a disk of 2129920 sectors needs 65"],
    );
}

#[test]
fn grains_region_at_offset_0() {
    let (mut img, _) = image();
    put_u64(&mut img, 192, 0);
    put_u64(&mut img, 200, 0);
    refused(&img, &["grains region offset is 0"]);
}

#[test]
fn directory_entry_beyond_the_disk() {
    let (mut img, lay) = image();
    let e = get_u64(&img, gde(&lay, 0));
    put_u64(&mut img, gde(&lay, 10), e);
    refused(
        &img,
        &["grain directory entry 10 is set but lies beyond the disk's 131072 sectors"],
    );
}

#[test]
fn directory_entry_without_the_valid_marker() {
    let (mut img, lay) = image();
    let e = get_u64(&img, gde(&lay, 0));
    let bad = (0x2000_0000u64 << 32) | (e & 0xffff_ffff);
    put_u64(&mut img, gde(&lay, 0), bad);
    refused(
        &img,
        &[&format!(
            "grain directory entry 0 is {bad:#018x}: the top 32 bits must be 0x10000000"
        )],
    );
}

#[test]
fn directory_entry_naming_a_table_outside_the_region() {
    let (mut img, lay) = image();
    put_u64(&mut img, gde(&lay, 0), (0x1000_0000u64 << 32) | 999);
    refused(
        &img,
        &["grain directory entry 0 names grain table 999, but the tables region holds 4"],
    );
}

#[test]
fn two_directory_entries_sharing_a_table() {
    let (mut img, lay) = image();
    let e = get_u64(&img, gde(&lay, 0));
    put_u64(&mut img, gde(&lay, 3), e);
    refused(
        &img,
        &[&format!(
            "grain directory entry 3 uses grain table {}, which another entry already uses",
            lay.table_index[&0]
        )],
    );
}

#[test]
fn entry_beyond_the_capacity() {
    // 80 sectors short of four whole tables: the last table's final 10 grains lie beyond.
    let sectors = SECTORS - 80;
    let mut m = Model::new(sectors * 512, 2);
    m.write(sectors * 512 - 4096, 4096);
    let (mut img, lay) = sesparse_image(sectors, Layout::Sequential, &m);
    let g = 16383;
    put_u64(&mut img, gte(&lay, g), allocated_entry(0));
    refused(
        &img,
        &[&format!(
            "grain table for directory entry 3, entry 4095 (grain {g}) is set (0x3000000000000000) but lies beyond the disk's {sectors} sectors"
        )],
    );
}

#[test]
fn unallocated_entry_with_bits_set_and_unknown_types() {
    let (mut img, lay) = image();
    put_u64(&mut img, gte(&lay, 1), 5);
    refused(
        &img,
        &["grain 1: unallocated entry (type 0) with other bits set: 0x0000000000000005"],
    );
    let (mut img, lay) = image();
    put_u64(&mut img, gte(&lay, 1), 4 << 60);
    refused(
        &img,
        &["grain 1: entry 0x4000000000000000 has unknown type 0x4"],
    );
}

#[test]
fn grain_index_outside_the_grains_region() {
    let (mut img, lay) = image();
    put_u64(&mut img, gte(&lay, 1), allocated_entry(1 << 28));
    refused(
        &img,
        &[&format!(
            "grain 1 uses grain index {}, but the grains region holds {}",
            1u64 << 28,
            lay.grains_region.1 / 8
        )],
    );
}

#[test]
fn grain_past_the_end_of_the_file() {
    let (mut img, lay) = image();
    // The region says it holds more grains than the file does.
    put_u64(&mut img, 200, lay.grains_region.1 + 64);
    let idx = lay.grains_region.1 / 8 + 1;
    put_u64(&mut img, gte(&lay, 1), allocated_entry(idx));
    let sector = lay.grains_region.0 + idx * 8;
    refused(
        &img,
        &[&format!(
            "grain 1 (index {idx}, sector {sector}) lies past the end of the file ({} sectors)",
            lay.end_sector
        )],
    );
}

#[test]
fn one_grain_index_used_twice() {
    let (mut img, lay) = image();
    let idx = lay.grain_index[&0];
    put_u64(&mut img, gte(&lay, 2), allocated_entry(idx));
    refused(
        &img,
        &[&format!(
            "grain 2 uses grain index {idx}, which another table entry already uses"
        )],
    );
}
