//! The dm-snapshot exception store reader against stores written by ironshed-testkit (which
//! fills them the way the kernel does, independently of the reader), against the real header
//! and area bytes recorded from a kernel run, and on a loop device through O_DIRECT.

use ironshed_core::io::{ReadMode, SourceDevice};
use ironshed_core::snapshot::{self, ByteRange, CowStore};
use ironshed_testkit::cow::{self, CowSpec, Order};
use ironshed_testkit::model::Model;
use std::fs;
use std::path::Path;
use std::process::Command;

fn spec(chunk: u64, cow_size: u64) -> CowSpec {
    CowSpec {
        chunk_size: chunk,
        cow_size,
        order: Order::FirstWrite,
        magic: cow::MAGIC,
        version: 1,
        valid: None,
        write_data: true,
        duplicates: 0,
    }
}

/// The oracle: chunks any write touched, computed from the model, not from the store.
fn touched(model: &Model, chunk: u64) -> Vec<u64> {
    model.touched_grains(chunk)
}

fn read(path: &Path) -> snapshot::Result<CowStore> {
    CowStore::open(path)
}

#[test]
fn reads_every_exception_for_several_chunk_sizes_and_orders() {
    let dir = tempfile::tempdir().unwrap();
    for (chunk, order) in [
        (512, Order::FirstWrite),
        (4096, Order::FirstWrite),
        (4096, Order::Shuffled(7)),
        (8192, Order::Reverse),
        (65536, Order::FirstWrite),
        (524288, Order::Shuffled(3)),
    ] {
        let mut m = Model::new(64 << 20, 5);
        m.write(0, 512)
            .write(5120, 512)
            .write(1_052_160, 512)
            .write(8 << 20, 1_228_800)
            .write(20_971_008, 8192)
            .write((64 << 20) - 512, 512)
            .write(0, 512);
        m.random_writes(200, 4096, 11);
        // Big enough for every chunk; big-chunk stores stay sparse (no data written).
        let mut s = spec(chunk, 256 << 20);
        s.order = order;
        s.write_data = chunk <= 65536;
        let p = dir.path().join(format!("cow-{chunk}"));
        let lay = cow::write(&p, &s, &m).unwrap();
        assert!(!lay.overflowed);
        let st = read(&p).unwrap();
        let want = touched(&m, chunk);
        assert_eq!(st.chunks(), &want[..], "chunk {chunk} {order:?}");
        assert_eq!(st.exceptions, lay.records.len() as u64);
        assert_eq!(st.areas, lay.areas.len() as u64);
        assert_eq!(st.chunk_size, chunk);
        // Coalesced: sorted, disjoint, never adjacent, covering exactly the chunks.
        let ch = st.changes();
        let r = ch.ranges();
        assert!(r.windows(2).all(|w| w[0].end() < w[1].offset));
        assert_eq!(ch.total_bytes(), want.len() as u64 * chunk);
        for c in &want {
            assert!(r
                .iter()
                .any(|x| x.offset <= c * chunk && c * chunk + chunk <= x.end()));
        }
    }
}

#[test]
fn repeated_exceptions_are_merged() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Model::new(8 << 20, 1);
    m.random_writes(300, 4096, 2);
    let mut s = spec(4096, 4 << 20);
    s.duplicates = 40;
    let p = dir.path().join("cow");
    let lay = cow::write(&p, &s, &m).unwrap();
    assert_eq!(lay.records.len(), 340);
    let st = read(&p).unwrap();
    assert_eq!(st.exceptions, 340);
    assert_eq!(st.chunks(), &touched(&m, 4096)[..]);
}

#[test]
fn table_ending_exactly_at_an_area_boundary() {
    // 256 exceptions fill area 0; area 1 is present and zeroed, and ends the table.
    let dir = tempfile::tempdir().unwrap();
    let mut m = Model::new(4 << 20, 1);
    for c in 0..256u64 {
        m.write(c * 4096 * 2, 4096);
    }
    let p = dir.path().join("cow");
    let lay = cow::write(&p, &spec(4096, 4 << 20), &m).unwrap();
    assert_eq!(lay.areas, [(1, 256), (258, 0)]);
    let st = read(&p).unwrap();
    assert_eq!(st.chunks().len(), 256);
    assert_eq!(st.areas, 2);
}

#[test]
fn full_last_area_at_the_end_of_the_device() {
    // The original's bug #1: after a full last area it seeks to where the next area would be,
    // past the end of the device, and fails. Here: 515 chunks = header, area 0, 256 data,
    // area 1, 256 data. 512 exceptions fill both areas; there is no room for area 2.
    let dir = tempfile::tempdir().unwrap();
    let mut m = Model::new(8 << 20, 1);
    m.random_writes(512, 4096, 9);
    let p = dir.path().join("cow");
    let lay = cow::write(&p, &spec(4096, 515 * 4096), &m).unwrap();
    assert!(!lay.overflowed);
    assert_eq!(lay.areas, [(1, 256), (258, 256)]);
    let st = read(&p).unwrap();
    assert_eq!(st.chunks(), &touched(&m, 4096)[..]);
    assert_eq!(st.areas, 2);
}

#[test]
fn empty_store_has_no_changes() {
    let dir = tempfile::tempdir().unwrap();
    let m = Model::new(8 << 20, 1);
    let p = dir.path().join("cow");
    cow::write(&p, &spec(8192, 4 << 20), &m).unwrap();
    let st = read(&p).unwrap();
    assert!(st.changes().is_empty());
    assert_eq!((st.exceptions, st.areas), (0, 1));
}

/// The header and first records of `snap-4k-cow` as dumped from a real kernel run
/// (snapshot-formats.md §1.3): chunk size 8 sectors, area 0 holding 0→2, 1→3, 256→4,
/// 2048→5, then more; area 1 at chunk 258 starting 2301→259, 2302→260.
#[test]
fn decodes_the_bytes_a_real_kernel_wrote() {
    let mut img = vec![0u8; 16384 * 512];
    let hdr = [
        0x53, 0x6e, 0x41, 0x70, 0x01, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
    ];
    img[..16].copy_from_slice(&hdr);
    let recs: [[u8; 16]; 4] = [
        [0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0],
        [1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0],
        [0, 1, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0],
        [0, 8, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0],
    ];
    // Fill area 0 (256 records) like the run: the four dumped ones, then other chunks.
    for (i, r) in recs.iter().enumerate() {
        img[0x1000 + 16 * i..0x1000 + 16 * (i + 1)].copy_from_slice(r);
    }
    for (i, new) in (4..256u64).zip(6u64..) {
        let off = 0x1000 + 16 * i as usize;
        img[off..off + 8].copy_from_slice(&(3000 + i).to_le_bytes());
        img[off + 8..off + 16].copy_from_slice(&new.to_le_bytes());
    }
    let a1 = [
        [0xfd, 0x08, 0, 0, 0, 0, 0, 0, 0x03, 0x01, 0, 0, 0, 0, 0, 0],
        [0xfe, 0x08, 0, 0, 0, 0, 0, 0, 0x04, 0x01, 0, 0, 0, 0, 0, 0],
    ];
    img[0x102000..0x102010].copy_from_slice(&a1[0]);
    img[0x102010..0x102020].copy_from_slice(&a1[1]);
    let st = CowStore::read(&img[..], "snap-4k-cow").unwrap();
    assert_eq!(st.header.chunk_sectors, 8);
    assert_eq!(st.chunk_size, 4096);
    assert_eq!(st.exceptions, 258);
    assert_eq!(st.areas, 2);
    let ch = st.chunks();
    for c in [0, 1, 256, 2048, 2301, 2302] {
        assert!(ch.binary_search(&c).is_ok(), "chunk {c}");
    }
    let r = st.changes();
    assert_eq!(
        r.ranges()[..3],
        [
            ByteRange {
                offset: 0,
                len: 8192
            },
            ByteRange {
                offset: 256 * 4096,
                len: 4096
            },
            ByteRange {
                offset: 2048 * 4096,
                len: 4096
            },
        ]
    );
}

#[test]
fn refusals_name_the_store_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Model::new(8 << 20, 1);
    m.write(0, 4096);
    let e = |s: CowSpec| {
        let p = dir.path().join("bad");
        cow::write(&p, &s, &m).unwrap();
        read(&p)
            .unwrap_err()
            .to_string()
            .replace(&p.display().to_string(), "STORE")
    };
    let mut s = spec(4096, 1 << 20);
    s.magic = 0x12345678;
    assert_eq!(e(s), "STORE: not a device-mapper exception store: magic at byte 0 is 0x12345678, expected 0x70416e53 (\"SnAp\")");
    let mut s = spec(4096, 1 << 20);
    s.magic = 0;
    assert!(e(s).starts_with("STORE: the exception store header is all zero (magic 0 at byte 0)"));
    let mut s = spec(4096, 1 << 20);
    s.version = 2;
    assert_eq!(e(s), "STORE: exception store version 2 (header byte 8) is not supported; the kernel only writes version 1");
    let mut s = spec(4096, 1 << 20);
    s.valid = Some(0);
    assert!(e(s).starts_with(
        "STORE: the snapshot is invalid (header field 'valid' at byte 4 is 0): it overflowed"
    ));
    let mut s = spec(4096, 1 << 20);
    s.valid = Some(7);
    assert_eq!(
        e(s),
        "STORE: header field 'valid' (byte 4) is 7, expected 1 (or 0 for an invalidated snapshot)"
    );

    let p = dir.path().join("raw");
    let mut hdr = vec![0u8; 8192];
    hdr[..16].copy_from_slice(&[0x53, 0x6e, 0x41, 0x70, 1, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0]);
    fs::write(&p, &hdr).unwrap();
    let msg = |p: &Path| {
        read(p)
            .unwrap_err()
            .to_string()
            .replace(&p.display().to_string(), "STORE")
    };
    assert_eq!(
        msg(&p),
        "STORE: chunk size 3 sectors (header byte 12) is not a power of two between 1 and 2097152"
    );
    hdr[12] = 16; // 8 KiB chunks: the 8 KiB file has no room for area 0
    fs::write(&p, &hdr).unwrap();
    assert_eq!(msg(&p), "STORE: 8192 bytes holds fewer than 2 chunks of 8192 bytes: no room for the first metadata area");
    fs::write(&p, &hdr[..10]).unwrap();
    assert_eq!(
        msg(&p),
        "STORE: 10 bytes is too short for an exception store header (16 bytes)"
    );

    // A record pointing past the end, and one pointing at a metadata area.
    let mut img = vec![0u8; 64 * 4096];
    img[..16].copy_from_slice(&[0x53, 0x6e, 0x41, 0x70, 1, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0]);
    img[4096..4104].copy_from_slice(&5u64.to_le_bytes());
    img[4104..4112].copy_from_slice(&64u64.to_le_bytes());
    let e = CowStore::read(&img[..], "S").unwrap_err().to_string();
    assert_eq!(e, "S: metadata area 0 (byte 4096) record 0: data chunk 64 is past the end of the store (64 chunks)");
    img[4104..4112].copy_from_slice(&1u64.to_le_bytes());
    let e = CowStore::read(&img[..], "S").unwrap_err().to_string();
    assert_eq!(e, "S: metadata area 0 (byte 4096) record 0: data chunk 1 is a metadata area, not a data chunk");
}

#[test]
fn an_overflowed_store_is_refused() {
    // 2048 chunks written into a store with room for fewer: the writer drops `valid` to 0,
    // as the kernel does, and keeps the committed records.
    let dir = tempfile::tempdir().unwrap();
    let mut m = Model::new(16 << 20, 1);
    m.write(0, 8 << 20);
    let p = dir.path().join("cow");
    let lay = cow::write(&p, &spec(4096, 4 << 20), &m).unwrap();
    assert!(lay.overflowed);
    assert_eq!(lay.valid, 0);
    assert!(matches!(read(&p), Err(snapshot::Error::Invalid { .. })));
}

fn losetup(file: &Path) -> String {
    let out = Command::new("losetup")
        .args(["--find", "--show"])
        .arg(file)
        .output()
        .expect("losetup (the tests run as root)");
    assert!(
        out.status.success(),
        "losetup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

struct Loop(String);
impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// The O_DIRECT lesson on a loop device: once the device's page cache holds an old copy of
/// the store, a buffered read keeps returning it after the store changed underneath (here:
/// written through the backing file, as dm-snapshot writes through bios), while the reader's
/// O_DIRECT read sees the new records.
#[test]
fn reads_a_block_device_with_o_direct_and_sees_current_data() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cow");
    let empty = Model::new(8 << 20, 1);
    cow::write(&p, &spec(4096, 4 << 20), &empty).unwrap();
    let lo = Loop(losetup(&p));
    let dev = Path::new(&lo.0);
    let src = SourceDevice::open(dev).unwrap();
    assert_eq!(src.mode(), ReadMode::Direct);
    assert!(read(dev).unwrap().changes().is_empty());
    // Fill the loop device's page cache with the empty store.
    let cached = fs::read(dev).unwrap();
    assert_eq!(&cached[..4], b"SnAp");

    let mut m = Model::new(8 << 20, 1);
    m.random_writes(300, 4096, 4);
    cow::write(&p, &spec(4096, 4 << 20), &m).unwrap();

    let mut stale = [0u8; 16];
    std::os::unix::fs::FileExt::read_exact_at(&fs::File::open(dev).unwrap(), &mut stale, 4096)
        .unwrap();
    assert_eq!(stale, [0u8; 16], "expected the buffered read to be stale");
    let st = read(dev).unwrap();
    assert_eq!(st.chunks(), &touched(&m, 4096)[..]);
}
