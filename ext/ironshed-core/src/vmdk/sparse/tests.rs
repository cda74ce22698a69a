//! Hosted sparse (KDMV) refusal rules, one test each, on extents written by ironshed-testkit
//! and patched at the offsets of the format notes (header: version 4, flags 8, capacity 12,
//! grainSize 20, descriptorOffset 28, descriptorSize 36, numGTEsPerGT 44, rgdOffset 48,
//! gdOffset 56, overHead 64, newline bytes 73, compressAlgorithm 77; grain markers: lba u64,
//! size u32, then the zlib data).

use super::*;
use crate::vmdk::fixture::*;
use crate::vmdk::run::ExtentReader;
use ironshed_testkit::model::Model;
use ironshed_testkit::sparse::{SparseLayout, SparseSpec};
use std::collections::BTreeMap;

/// A 4 MiB disk in 4 KiB grains (two grain tables): grains 0-1, 256-259 and 768 written.
fn model() -> Model {
    let mut m = Model::new(4 << 20, 1);
    m.write(0, 8192).write(1 << 20, 16384).write(3 << 20, 4096);
    m
}

fn plain() -> (Vec<u8>, SparseLayout) {
    sparse_image(&sparse_spec(8192, 8), &model())
}

/// streamOptimized in 64 KiB grains, grains 0, 16 and 48 written (one table), with an
/// embedded descriptor as every real one has (without it the first grain would be at sector
/// 1, whose table entry reads as a zeroed grain).
fn stream(footer: bool) -> (Vec<u8>, SparseLayout) {
    let spec = SparseSpec {
        compressed: true,
        footer,
        descriptor: Some("# Disk DescriptorFile\nversion=1\n".into()),
        ..sparse_spec(8192, 128)
    };
    sparse_image(&spec, &model())
}

fn read_plain(img: &[u8]) -> Result<Sparse> {
    read(&img, NAME, Options::default())
}

fn refused(img: &[u8], facts: &[&str]) {
    format_error(read_plain(img), NAME, facts);
}

fn not_supported(img: &[u8], facts: &[&str]) {
    unsupported(read_plain(img), NAME, facts);
}

/// Byte offset of grain `g`'s entry in the primary tables.
fn gte(lay: &SparseLayout, g: u64) -> u64 {
    lay.tables[&(g / 512)] * 512 + (g % 512) * 4
}

fn runs(s: &Sparse, img: &[u8]) -> Vec<Run> {
    collect(|f| s.for_each_run(&img, NAME, 0, 0, u64::MAX, f))
}

#[test]
fn reads_every_grain_where_the_tables_put_it() {
    let (img, lay) = plain();
    let s = read_plain(&img).unwrap();
    assert_eq!((s.grains, s.zero_grains, s.changed_bytes), (7, 0, 7 * 4096));
    let want: BTreeMap<u64, Option<u64>> = lay
        .grains
        .iter()
        .map(|(&g, &s)| (g, Some(s * 512)))
        .collect();
    assert_eq!(grains_of(&runs(&s, &img), 4096), want);
}

#[test]
fn zeroed_grains_read_as_zeros() {
    let mut m = model();
    m.zero(2 << 20, 8192);
    let spec = SparseSpec {
        zeroed_grains: true,
        ..sparse_spec(8192, 8)
    };
    let (img, lay) = sparse_image(&spec, &m);
    let s = read_plain(&img).unwrap();
    assert_eq!((s.grains, s.zero_grains), (7, 2));
    let got = grains_of(&runs(&s, &img), 4096);
    assert_eq!((got[&512], got[&513]), (None, None));
    assert_eq!(got[&768], Some(lay.grains[&768] * 512));
}

#[test]
fn streams_list_compressed_grains_with_their_markers() {
    for footer in [false, true] {
        let (img, lay) = stream(footer);
        let s = read_plain(&img).unwrap();
        assert!(s.header.compressed());
        assert_eq!(s.grains, 3);
        let want: BTreeMap<u64, Option<u64>> = lay
            .grains
            .iter()
            .map(|(&g, &s)| (g, Some(s * 512 + 12)))
            .collect();
        assert_eq!(grains_of(&runs(&s, &img), 65536), want, "footer {footer}");
    }
}

#[test]
fn shorter_than_the_header() {
    let (img, _) = plain();
    refused(
        &img[..100],
        &["file is 100 bytes, shorter than the 512-byte sparse header"],
    );
}

#[test]
fn bad_magic() {
    let (mut img, _) = plain();
    img[..4].copy_from_slice(b"XXXX");
    refused(&img, &["bad magic 58 58 58 58 at byte 0"]);
}

#[test]
fn unknown_version() {
    let (mut img, _) = plain();
    put_u32(&mut img, 4, 4);
    not_supported(
        &img,
        &["sparse header version 4 at byte 4 (known: 1, 2, 3)"],
    );
}

#[test]
fn unknown_incompatible_flag() {
    let (mut img, _) = plain();
    let f = get_u32(&img, 8);
    put_u32(&mut img, 8, f | 0x4_0000);
    not_supported(&img, &["unknown incompatible flags 0x40000 at byte 8"]);
    // An unknown compatible flag (low half) is fine.
    let (mut img, _) = plain();
    put_u32(&mut img, 8, f | 0x100);
    read_plain(&img).unwrap();
}

#[test]
fn newline_bytes_mangled_by_a_text_mode_transfer() {
    let (mut img, _) = plain();
    img[75] = b'\n';
    refused(
        &img,
        &["newline detection bytes at byte 73 are 0a 20 0a 0a, not 0a 20 0d 0a"],
    );
}

#[test]
fn tables_of_other_than_512_entries() {
    let (mut img, _) = plain();
    put_u32(&mut img, 44, 256);
    not_supported(&img, &["numGTEsPerGT is 256 at byte 44"]);
}

#[test]
fn grain_size_zero_not_a_power_of_two_or_too_large() {
    for v in [0u64, 3, 4096] {
        let (mut img, _) = plain();
        put_u64(&mut img, 20, v);
        refused(
            &img,
            &[&format!(
                "grainSize {v} at byte 20 is not a power of two between 1 and 2048 sectors"
            )],
        );
    }
}

#[test]
fn unusable_capacity() {
    for v in [0u64, u64::MAX / 512] {
        let (mut img, _) = plain();
        put_u64(&mut img, 12, v);
        refused(
            &img,
            &[&format!("capacity {v} sectors at byte 12 is not usable")],
        );
    }
}

#[test]
fn unknown_compression() {
    let (mut img, _) = stream(false);
    img[77] = 2;
    not_supported(&img, &["compressAlgorithm 2 at byte 77"]);
}

#[test]
fn compressed_flag_without_an_algorithm() {
    let (mut img, _) = plain();
    let f = get_u32(&img, 8);
    put_u32(&mut img, 8, f | FLAG_COMPRESSED);
    refused(
        &img,
        &["flags say the grains are compressed but compressAlgorithm is 0"],
    );
}

#[test]
fn compressed_grains_without_markers_and_markers_without_compression() {
    let (mut img, _) = stream(false);
    let f = get_u32(&img, 8);
    put_u32(&mut img, 8, f & !FLAG_MARKERS);
    not_supported(&img, &["compressed grains without grain markers"]);
    let (mut img, _) = plain();
    let f = get_u32(&img, 8);
    put_u32(&mut img, 8, f | FLAG_MARKERS);
    not_supported(&img, &["grain markers on uncompressed grains"]);
}

#[test]
fn no_grain_directory() {
    let (mut img, _) = plain();
    put_u64(&mut img, 56, 0);
    refused(&img, &["gdOffset is 0 at byte 56"]);
}

#[test]
fn overhead_past_the_end_of_the_file() {
    let (mut img, lay) = plain();
    put_u64(&mut img, 64, 100_000);
    refused(
        &img,
        &[&format!(
            "file truncated: overHead is 100000 sectors but the file has {}",
            lay.end_sector
        )],
    );
}

#[test]
fn directory_past_the_end_of_the_file() {
    let (mut img, _) = plain();
    put_u64(&mut img, 56, 100_000);
    let len = img.len();
    refused(
        &img,
        &[&format!(
            "grain directory (sector 100000, 2 entries) runs past the end of the file ({len} bytes)"
        )],
    );
}

#[test]
fn embedded_descriptor_past_the_end_of_the_file() {
    let spec = SparseSpec {
        descriptor: Some("# Disk DescriptorFile\nversion=1\n".into()),
        ..sparse_spec(8192, 8)
    };
    let (img, _) = sparse_image(&spec, &model());
    let s = read_plain(&img).unwrap();
    assert_eq!(
        s.embedded_descriptor.as_deref(),
        Some(&b"# Disk DescriptorFile\nversion=1\n"[..])
    );
    let mut img = img;
    put_u64(&mut img, 36, 99_999);
    refused(
        &img,
        &["embedded descriptor (sector 1, 99999 sectors) runs past the end of the file"],
    );
}

#[test]
fn entry_1_without_the_zeroed_grain_flag() {
    let (mut img, lay) = plain();
    put_u32(&mut img, gte(&lay, 1), 1);
    refused(
        &img,
        &["grain table 0 entry 1 (grain 1) is 1 but the zeroed-grain flag (0x4) is not set"],
    );
}

#[test]
fn grain_past_the_end_of_the_file() {
    let (mut img, lay) = plain();
    let at = lay.end_sector + 10;
    put_u32(&mut img, gte(&lay, 256), at as u32);
    refused(
        &img,
        &[&format!(
            "grain table 0 entry 256 (grain 256) points past the end of the file (sector {at} + 8 > {})",
            lay.end_sector
        )],
    );
}

#[test]
fn entry_beyond_the_capacity() {
    // 8000 sectors: 1000 grains, the second table's entries from 488 on lie beyond the disk.
    let (mut img, lay) = sparse_image(&sparse_spec(8000, 8), &model());
    let s = lay.grains[&0];
    put_u32(&mut img, gte(&lay, 1010), s as u32);
    refused(
        &img,
        &[&format!(
            "grain table 1 entry 498 (grain 1010) is set ({s}) but lies beyond the extent's 8000 sectors"
        )],
    );
}

#[test]
fn two_entries_on_one_grain() {
    let (mut img, lay) = plain();
    let s = lay.grains[&0];
    put_u32(&mut img, gte(&lay, 768), s as u32);
    refused(
        &img,
        &[&format!(
            "grain 768 (sector {s}) overlaps another structure of the file at sector {s}"
        )],
    );
}

#[test]
fn two_directory_entries_on_one_table() {
    let (mut img, lay) = plain();
    let t = lay.tables[&0];
    put_u32(&mut img, lay.gd_sector * 512 + 4, t as u32);
    refused(
        &img,
        &[&format!(
            "grain table 1 (sector {t}) overlaps another structure of the file at sector {t}"
        )],
    );
}

#[test]
fn grain_table_past_the_end_of_the_file() {
    let (mut img, lay) = plain();
    let t = lay.end_sector - 1;
    put_u32(&mut img, lay.gd_sector * 512, t as u32);
    refused(
        &img,
        &[&format!(
            "grain table 0 (sector {t}) (sectors {t}..{}) runs past the end of the file ({} sectors)",
            t + 4,
            lay.end_sector
        )],
    );
}

fn redundant() -> (Vec<u8>, SparseLayout) {
    let spec = SparseSpec {
        redundant: true,
        ..sparse_spec(8192, 8)
    };
    sparse_image(&spec, &model())
}

#[test]
fn redundant_tables_are_compared_only_when_asked() {
    let (mut img, _) = redundant();
    let rgd = get_u64(&img, 48) * 512;
    let rgt = u64::from(get_u32(&img, rgd)) * 512;
    put_u32(&mut img, rgt + 4 * 511, 12_345);
    read_plain(&img).unwrap();
    let checked = read(
        &img,
        NAME,
        Options {
            check_redundant: true,
            ..Options::default()
        },
    );
    format_error(
        checked,
        NAME,
        &["grain table 0 entry 511 differs from the redundant table's (0 vs 12345)"],
    );
}

#[test]
fn redundant_directory_missing_a_table() {
    let (mut img, lay) = redundant();
    let rgd = get_u64(&img, 48) * 512;
    put_u32(&mut img, rgd + 4, 0);
    let checked = read(
        &img,
        NAME,
        Options {
            check_redundant: true,
            ..Options::default()
        },
    );
    format_error(
        checked,
        NAME,
        &[&format!(
            "grain directory entry 1 is {} but the redundant directory's is 0",
            lay.tables[&1]
        )],
    );
}

#[test]
fn redundant_directory_past_the_end_of_the_file() {
    let (mut img, lay) = redundant();
    put_u64(&mut img, 48, 100_000);
    refused(
        &img,
        &[&format!(
            "the redundant grain directory (sectors 100000..100001) runs past the end of the file ({} sectors)",
            lay.end_sector
        )],
    );
}

/// The marker sector of stream grain `g` and its compressed length.
fn marker(img: &[u8], lay: &SparseLayout, g: u64) -> (u64, u32) {
    let s = lay.grains[&g];
    (s, get_u32(img, s * 512 + 8))
}

#[test]
fn grain_marker_with_the_wrong_lba() {
    let (mut img, lay) = stream(false);
    let (s, _) = marker(&img, &lay, 16);
    put_u64(&mut img, s * 512, 16 * 128 + 128);
    refused(
        &img,
        &[&format!(
            "grain marker at sector {s} says lba 2176 but the grain table puts grain 16 at sector 2048"
        )],
    );
}

#[test]
fn compressed_size_out_of_bounds() {
    for size in [0u32, 200_000] {
        let (mut img, lay) = stream(false);
        let (s, _) = marker(&img, &lay, 16);
        put_u32(&mut img, s * 512 + 8, size);
        refused(
            &img,
            &[&format!(
                "grain marker at sector {s}: compressed size {size} is not between 1 and 131072"
            )],
        );
    }
}

#[test]
fn compressed_data_past_the_end_of_the_file() {
    let (mut img, lay) = stream(false);
    // Grain 48 is stored last, a few sectors before the end of the file.
    let (s, _) = marker(&img, &lay, 48);
    put_u32(&mut img, s * 512 + 8, 131_072);
    refused(
        &img,
        &[&format!(
            "grain marker at sector {s}: 131072 compressed bytes run past the end of the file"
        )],
    );
}

/// Replaces grain `g`'s compressed data (which must be longer) by `z`.
fn recompress(img: &mut [u8], lay: &SparseLayout, g: u64, z: &[u8]) -> u64 {
    let (s, len) = marker(img, lay, g);
    assert!(z.len() <= len as usize);
    put_u32(img, s * 512 + 8, z.len() as u32);
    let at = (s * 512 + 12) as usize;
    img[at..at + z.len()].copy_from_slice(z);
    s
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut c = libdeflater::Compressor::new(libdeflater::CompressionLvl::default());
    let mut z = vec![0u8; c.zlib_compress_bound(data.len())];
    let n = c.zlib_compress(data, &mut z).unwrap();
    z.truncate(n);
    z
}

#[test]
fn compressed_data_that_is_not_zlib() {
    let (mut img, lay) = stream(false);
    let s = recompress(&mut img, &lay, 16, b"\x00\x01\x02\x03");
    refused(
        &img,
        &[&format!(
            "grain 16 at sector {s}: compressed data is not valid zlib"
        )],
    );
}

#[test]
fn compressed_data_cut_short() {
    let (mut img, lay) = stream(false);
    let (s, len) = marker(&img, &lay, 16);
    put_u32(&mut img, s * 512 + 8, len - 8);
    refused(
        &img,
        &[&format!(
            "grain 16 at sector {s}: compressed data is not valid zlib: corrupt, cut short"
        )],
    );
}

#[test]
fn grain_inflating_to_less_or_more_than_a_grain() {
    let (mut img, lay) = stream(false);
    let s = recompress(&mut img, &lay, 16, &zlib(&[7u8; 100]));
    refused(
        &img,
        &[&format!(
            "grain 16 at sector {s} inflates to 100 bytes, not a grain (65536)"
        )],
    );
    let (mut img, lay) = stream(false);
    let s = recompress(&mut img, &lay, 16, &zlib(&vec![0u8; 65536 + 1]));
    refused(
        &img,
        &[&format!(
            "grain 16 at sector {s}: compressed data inflates to more than a grain (65536 bytes)"
        )],
    );
}

/// Byte offset of the footer's marker (three sectors before the end).
fn footer_marker(img: &[u8]) -> u64 {
    img.len() as u64 - 1536
}

#[test]
fn footer_file_too_short_or_not_whole_sectors() {
    let (img, _) = stream(true);
    let n = img.len() - 1;
    refused(
        &img[..n],
        &[&format!(
            "gdOffset is GD_AT_END but the file ({n} bytes) cannot hold a footer marker, footer and end-of-stream marker"
        )],
    );
}

#[test]
fn footer_marker_damaged() {
    let (mut img, _) = stream(true);
    let at = footer_marker(&img);
    put_u32(&mut img, at + 12, 2);
    refused(
        &img,
        &[&format!(
            "gdOffset is GD_AT_END but the sector at byte {at} is not a footer marker (size 0, type 2)"
        )],
    );
}

#[test]
fn footer_without_magic() {
    let (mut img, _) = stream(true);
    let at = footer_marker(&img) + 512;
    img[at as usize] = b'X';
    refused(
        &img,
        &[&format!("footer at byte {at} does not start with 'KDMV'")],
    );
}

#[test]
fn no_end_of_stream_marker() {
    let (mut img, _) = stream(true);
    let at = footer_marker(&img) + 1024;
    put_u32(&mut img, at + 12, 1);
    refused(
        &img,
        &[&format!(
            "the last sector (byte {at}) is not an end-of-stream marker"
        )],
    );
}

#[test]
fn footer_pointing_at_itself() {
    let (mut img, _) = stream(true);
    let at = footer_marker(&img) + 512;
    put_u64(&mut img, at + 56, GD_AT_END);
    refused(
        &img,
        &[&format!("the footer at byte {at} also says GD_AT_END")],
    );
}
