//! The PROTO[3] sender and receiver against an encoder and a decoder written here from the
//! format description (handshake line, big-endian u64 offset, big-endian u32 length, data;
//! control items at offsets of 2^63 and more: BEGIN and END marks, whose digests are computed
//! here with the XXH3 reference implementation), independently of the core's codec; and the
//! whole send → apply path on images written by ironshed-testkit.

use ironshed_core::io::SourceDevice;
use ironshed_core::snapshot::{ByteRange, ChangeSet, Changes, CowStore};
use ironshed_core::wire::{self, apply, ApplyOptions, Input, SendOptions};
use ironshed_core::Progress;
use ironshed_testkit::cow::{self, CowSpec, Order};
use ironshed_testkit::model::Model;
use std::fs;
use std::path::Path;
use xxhash_rust::xxh3::xxh3_64;

/// An independent PROTO[3] encoder: what the original sender writes.
fn encode(records: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut v = b"lvmsync PROTO[3]\n".to_vec();
    for (off, data) in records {
        for i in (0..8).rev() {
            v.push((off >> (8 * i)) as u8);
        }
        let len = data.len() as u32;
        for i in (0..4).rev() {
            v.push((len >> (8 * i)) as u8);
        }
        v.extend_from_slice(data);
    }
    v
}

/// The 8 offset bytes of a control item: 0xff and its name, zero padded.
fn tag(name: &str) -> u64 {
    let mut b = [0u8; 8];
    b[0] = 0xff;
    b[1..1 + name.len()].copy_from_slice(name.as_bytes());
    u64::from_be_bytes(b)
}

fn item(off: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = off.to_be_bytes().to_vec();
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn u64s(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

/// An independent encoder of a marked stream: BEGIN (records, data bytes, XXH3-64 of the
/// handshake and their headers), the records, END (items before it, data bytes, XXH3-64 of
/// every byte before it).
fn encode_marked(records: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let plain = encode(records);
    let body = &plain[17..];
    let mut layout = b"lvmsync PROTO[3]\n".to_vec();
    let mut p = 0;
    for (_, d) in records {
        layout.extend_from_slice(&body[p..p + 12]);
        p += 12 + d.len();
    }
    let bytes: u64 = records.iter().map(|(_, d)| d.len() as u64).sum();
    let n = records.len() as u64;
    let mut v = b"lvmsync PROTO[3]\n".to_vec();
    v.extend(item(tag("BEGIN"), &u64s(&[n, bytes, xxh3_64(&layout)])));
    v.extend_from_slice(body);
    let digest = xxh3_64(&v);
    v.extend(item(tag("END"), &u64s(&[n + 1, bytes, digest])));
    v
}

/// An independent decoder: the records of a complete stream, plain or marked (whose marks
/// are checked here); control items are not records.
fn decode(s: &[u8]) -> Vec<(u64, Vec<u8>)> {
    assert!(s.starts_with(b"lvmsync PROTO[3]\n"), "handshake");
    let mut p = 17;
    let mut out = Vec::new();
    let mut begin = None;
    let mut layout = b"lvmsync PROTO[3]\n".to_vec();
    let mut items = 0u64;
    let be = |b: &[u8]| b.iter().fold(0u64, |a, &x| a << 8 | u64::from(x));
    while p < s.len() {
        let off = be(&s[p..p + 8]);
        let len = be(&s[p + 8..p + 12]) as usize;
        let at = p;
        p += 12;
        let payload = &s[p..p + len];
        if off == tag("BEGIN") {
            assert_eq!((items, len), (0, 24), "BEGIN first");
            begin = Some((be(&payload[..8]), be(&payload[8..16]), be(&payload[16..])));
        } else if off == tag("END") {
            let (n, bytes, l) = begin.expect("END after BEGIN");
            let data: u64 = out
                .iter()
                .map(|(_, d): &(u64, Vec<u8>)| d.len() as u64)
                .sum();
            assert_eq!(
                (n, bytes, l),
                (out.len() as u64, data, xxh3_64(&layout)),
                "BEGIN"
            );
            assert_eq!(
                (be(&payload[..8]), be(&payload[8..16]), be(&payload[16..])),
                (items, data, xxh3_64(&s[..at])),
                "END"
            );
            assert_eq!(p + len, s.len(), "END is last");
        } else {
            assert!(off < 1 << 63, "no other control item");
            layout.extend_from_slice(&s[at..at + 12]);
            out.push((off, payload.to_vec()));
        }
        items += 1;
        p += len;
    }
    assert_eq!(p, s.len(), "stream ends inside a record");
    out
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn apply_file(stream: &Path, dest: &Path, opts: &ApplyOptions) -> wire::Result<wire::ApplyStats> {
    apply(
        Input::File(stream.to_path_buf()),
        dest,
        opts,
        &Progress::new(),
    )
}

fn apply_pipe(stream: &[u8], dest: &Path, opts: &ApplyOptions) -> wire::Result<wire::ApplyStats> {
    let data = stream.to_vec();
    apply(
        Input::Stream(Box::new(std::io::Cursor::new(data)), "-".into()),
        dest,
        opts,
        &Progress::new(),
    )
}

/// Applies `stream` onto a fresh 64 KiB destination of `O`s in `dir`, from a file and from
/// a pipe; returns each result with the destination's content after it.
fn apply_both_ways(dir: &Path, stream: &[u8]) -> Vec<(wire::ApplyStats, Vec<u8>)> {
    let (f, dest) = (dir.join("stream"), dir.join("dest"));
    fs::write(&f, stream).unwrap();
    [true, false]
        .into_iter()
        .map(|from_file| {
            fs::write(&dest, vec![b'O'; 65536]).unwrap();
            let st = if from_file {
                apply_file(&f, &dest, &ApplyOptions::default())
            } else {
                apply_pipe(stream, &dest, &ApplyOptions::default())
            };
            let st = st.unwrap_or_else(|e| panic!("from a file: {from_file}: {e}"));
            (st, fs::read(&dest).unwrap())
        })
        .collect()
}

#[test]
fn applies_a_stream_from_the_original_sender_format() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    fs::write(&dest, vec![b'O'; 1 << 20]).unwrap();
    // Unsorted, one record per chunk, two adjacent pairs (as the original sends them).
    let recs = vec![
        (0u64, pattern(1, 4096)),
        (1_048_576 - 8192, pattern(2, 4096)),
        (1_048_576 - 4096, pattern(3, 4096)),
        (4096, pattern(4, 4096)),
        (500_000, pattern(5, 100)),
    ];
    let mut expected = vec![b'O'; 1 << 20];
    for (o, d) in &recs {
        expected[*o as usize..*o as usize + d.len()].copy_from_slice(d);
    }
    let s = encode(&recs);
    let f = dir.path().join("stream");
    fs::write(&f, &s).unwrap();
    let st = apply_file(&f, &dest, &ApplyOptions::default()).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), expected);
    assert_eq!((st.records, st.bytes), (5, 4 * 4096 + 100));
    assert_eq!(
        st.writes, 4,
        "the adjacent pair that arrived together is written at once"
    );
    assert!(st.checked_first);
    fs::write(&dest, vec![b'O'; 1 << 20]).unwrap();
    let st = apply_pipe(&s, &dest, &ApplyOptions::default()).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), expected);
    assert!(!st.checked_first);
}

fn fixture(dir: &Path, chunk: u64, model: &Model, order: Order) -> CowStore {
    let s = CowSpec {
        chunk_size: chunk,
        cow_size: 64 << 20,
        order,
        magic: cow::MAGIC,
        version: 1,
        valid: None,
        write_data: true,
        duplicates: 0,
    };
    cow::write(&dir.join("cow.img"), &s, model).unwrap();
    let mut buf = vec![0u8; model.capacity as usize];
    model.base_at(0, &mut buf);
    fs::write(dir.join("before.img"), &buf).unwrap();
    model.disk_at(0, &mut buf);
    fs::write(dir.join("origin.img"), &buf).unwrap();
    CowStore::open(&dir.join("cow.img")).unwrap()
}

fn send_to_vec(changes: &Changes, origin: &Path, max: u32) -> (Vec<u8>, wire::SendStats) {
    let src = SourceDevice::open(origin).unwrap();
    let mut out = Vec::new();
    let st = wire::send(
        &pair(changes, &Changes::default()),
        &src,
        &mut out,
        "out",
        &SendOptions {
            max_record: max,
            ..Default::default()
        },
        &Progress::new(),
    )
    .unwrap();
    (out, st)
}

#[test]
fn sends_coalesced_bounded_records_furthest_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Model::new(16 << 20, 3);
    m.write(0, 3 << 20) // 768 adjacent chunks: 3 records of 1 MiB
        .write(5 << 20, 4096)
        .write((5 << 20) + 8192, 4096)
        .write((16 << 20) - 4096, 100);
    m.random_writes(50, 4096, 8);
    let st = fixture(dir.path(), 4096, &m, Order::Shuffled(1));
    let mut ch = st.changes();
    ch.clip_to(16 << 20, "origin").unwrap();
    let (stream, stats) = send_to_vec(&ch, &dir.path().join("origin.img"), 1 << 20);
    let recs = decode(&stream);
    assert_eq!(stats.records, recs.len() as u64);
    assert_eq!(stats.stream_bytes, stream.len() as u64);
    // Marked: BEGIN first, END last (both checked by the decoder above).
    assert!(stats.end_mark);
    assert_eq!(&stream[17..26], b"\xffBEGIN\0\0\0");
    assert_eq!(
        &stream[stream.len() - 36..stream.len() - 24],
        &item(tag("END"), &[0; 24])[..12]
    );
    // Furthest first, then ascending; none longer than 1 MiB; all data equal the origin now.
    let origin = fs::read(dir.path().join("origin.img")).unwrap();
    assert_eq!(recs[0].0, (16 << 20) - 4096);
    assert!(recs[1..]
        .windows(2)
        .all(|w| w[0].0 + w[0].1.len() as u64 <= w[1].0));
    assert!(recs.iter().all(|(_, d)| d.len() <= 1 << 20));
    for (o, d) in &recs {
        assert_eq!(
            &origin[*o as usize..*o as usize + d.len()],
            &d[..],
            "record at {o}"
        );
    }
    assert_eq!(&recs[1].0, &0);
    assert_eq!(recs[1].1.len(), 1 << 20);
    let total: usize = recs.iter().map(|(_, d)| d.len()).sum();
    assert_eq!(total as u64, ch.total_bytes());
    assert_eq!(stats.bytes, ch.total_bytes());

    // Apply onto the pre-snapshot copy: the destination becomes the origin.
    let dest = dir.path().join("dest");
    fs::copy(dir.path().join("before.img"), &dest).unwrap();
    let a = apply_pipe(&stream, &dest, &ApplyOptions::default()).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), origin);
    assert_eq!(a.records, recs.len() as u64);
}

#[test]
fn send_and_apply_for_several_chunk_sizes_and_record_limits() {
    for (chunk, max) in [
        (512u64, 4096u32),
        (4096, 1 << 20),
        (65536, 65536),
        (65536, 100_000),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Model::new(32 << 20, chunk);
        m.random_writes(120, 4096, chunk + 1)
            .write(1 << 20, 3 << 20);
        let st = fixture(dir.path(), chunk, &m, Order::FirstWrite);
        let mut ch = st.changes();
        ch.clip_to(32 << 20, "o").unwrap();
        let (stream, _) = send_to_vec(&ch, &dir.path().join("origin.img"), max);
        assert!(decode(&stream).iter().all(|(_, d)| d.len() <= max as usize));
        let dest = dir.path().join("dest");
        fs::copy(dir.path().join("before.img"), &dest).unwrap();
        let f = dir.path().join("stream");
        fs::write(&f, &stream).unwrap();
        apply_file(&f, &dest, &ApplyOptions::default()).unwrap();
        assert_eq!(
            fs::read(&dest).unwrap(),
            fs::read(dir.path().join("origin.img")).unwrap(),
            "chunk {chunk} max {max}"
        );
    }
}

#[test]
fn send_refuses_ranges_past_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("small");
    fs::write(&src, vec![0u8; 8192]).unwrap();
    let ch = Changes::from_ranges(vec![ByteRange {
        offset: 4096,
        len: 8192,
    }]);
    let s = SourceDevice::open(&src).unwrap();
    let mut out = Vec::new();
    let e = wire::send(
        &pair(&ch, &Changes::default()),
        &s,
        &mut out,
        "out",
        &SendOptions::default(),
        &Progress::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.ends_with("small: the snapshot lists a change at byte 8192, but this device is only 8192 bytes: is it the snapshot's origin?"), "{e}");
    assert!(out.is_empty(), "nothing sent");
}

#[test]
fn refusals_before_the_first_write() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    fs::write(&dest, vec![b'O'; 65536]).unwrap();
    let f = dir.path().join("stream");
    let check = |bytes: &[u8], want: &str| {
        fs::write(&f, bytes).unwrap();
        let e = apply_file(&f, &dest, &ApplyOptions::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e.replace(&f.display().to_string(), "IN")
                .replace(&dest.display().to_string(), "DEST"),
            want
        );
        assert_eq!(
            fs::read(&dest).unwrap(),
            vec![b'O'; 65536],
            "destination untouched"
        );
    };
    let good = encode(&[(0, pattern(1, 4096)), (8192, pattern(2, 4096))]);
    check(b"lvmsync PROTO[2]\n", "IN: handshake failed: saw 'lvmsync PROTO[2]', expected 'lvmsync PROTO[3]' (protocol mismatch, or not an lvmsync stream)");
    check(
        b"",
        "IN: the stream is empty: no handshake (did the sender fail before sending anything?)",
    );
    check(&good[..good.len() - 1], "IN: stream ends inside record 1 (stream byte 4125: 4096 bytes for offset 8192): only 4095 data bytes arrived; the sender stopped or the file is truncated");
    check(&good[..17 + 4108 + 5], "IN: stream ends inside the header of record 1 at stream byte 4125 (5 of 12 bytes): the sender stopped or the file is truncated");
    let past = encode(&[
        (0, pattern(1, 4096)),
        (65536 - 512, pattern(2, 4096)),
        (1 << 40, pattern(3, 10)),
    ]);
    check(&past, "DEST: record 1 (stream byte 4125) writes 4096 bytes at byte 65024, past the end of the destination (65536 bytes), and 1 more records do too; the destination is smaller than the volume the stream was made from (--allow-short-destination writes only what fits)");
    let huge = encode(&[((1 << 63) - 10, pattern(1, 100))]);
    check(&huge, "DEST: record 0 (stream byte 17) writes 100 bytes at byte 9223372036854775798, past the end of the destination (65536 bytes); the destination is smaller than the volume the stream was made from (--allow-short-destination writes only what fits)");
    let beyond = encode(&[(u64::MAX - 10, pattern(1, 100))]);
    check(&beyond, "IN: record 0 (stream byte 17) has offset 0xfffffffffffffff5 (2^63 or more), which no device has, and is no control item this lvmsync knows ('\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xf5'): the stream is corrupt, or was made by a newer lvmsync");

    // Marked streams: cut anywhere before END, END not matching, items out of place.
    let recs = [(0, pattern(1, 4096)), (8192, pattern(2, 4096))];
    let m = encode_marked(&recs);
    assert_eq!(decode(&m), recs, "the independent decoder agrees");
    let end = m.len() - 36;
    check(&m[..end], "IN: the stream ends at stream byte 8269, before its end-of-stream mark: 2 of its 2 records and 8192 of its 8192 data bytes arrived; the sender stopped, the connection broke, or the file is truncated");
    check(&m[..53 + 4108], "IN: the stream ends at stream byte 4161, before its end-of-stream mark: 1 of its 2 records and 4096 of its 8192 data bytes arrived; the sender stopped, the connection broke, or the file is truncated");
    check(&m[..53], "IN: the stream ends at stream byte 53, before its end-of-stream mark: 0 of its 2 records and 0 of its 8192 data bytes arrived; the sender stopped, the connection broke, or the file is truncated");
    check(&m[..53 + 4108 + 7], "IN: stream ends inside the header of record 2 at stream byte 4161 (7 of 12 bytes): the sender stopped or the file is truncated");
    check(&m[..end - 1], "IN: stream ends inside record 2 (stream byte 4161: 4096 bytes for offset 8192): only 4095 data bytes arrived; the sender stopped or the file is truncated");
    check(&m[..end + 20], "IN: record 3 (stream byte 8269) is a control item END cut short: only 8 of its 24 bytes arrived; the sender stopped or the file is truncated");
    let mut flipped = m.clone();
    flipped[53 + 12 + 100] ^= 1;
    check(
        &flipped,
        &format!("IN: record 3 (stream byte 8269) is the end-of-stream mark, and the stream does not match it: the stream's digest is {:016x}, the mark says {:016x}; the stream was altered or assembled from pieces", xxh3_64(&flipped[..end]), xxh3_64(&m[..end])),
    );
    // A record dropped from the middle, END recomputed over what is left: BEGIN disagrees.
    let mut dropped = m[..53].to_vec();
    dropped.extend_from_slice(&m[53 + 4108..end]);
    let d = xxh3_64(&dropped);
    dropped.extend(item(tag("END"), &u64s(&[2, 4096, d])));
    check(&dropped, "IN: record 2 (stream byte 4161) is the end-of-stream mark, and the stream does not match it: its BEGIN announced 2 records with 8192 data bytes, 1 records with 4096 arrived; the stream was altered or assembled from pieces");
    let mut twice = m.clone();
    twice.extend_from_slice(&m);
    check(&twice, "IN: record 4 (stream byte 8305) data follows the end-of-stream mark (two streams joined together?)");
    let mut no_begin = encode(&recs);
    let d = xxh3_64(&no_begin);
    no_begin.extend(item(tag("END"), &u64s(&[2, 8192, d])));
    check(&no_begin, "IN: record 2 (stream byte 8233) is an end-of-stream mark in a stream that did not start with BEGIN: the stream is corrupt");
    let mut late = encode(&recs);
    late.extend(item(tag("BEGIN"), &u64s(&[0, 0, 0])));
    check(&late, "IN: record 2 (stream byte 8233) is a control item BEGIN, which may only be the first item: the stream is corrupt");
    let mut commit = encode(&recs);
    commit.extend(item(tag("COMMIT"), &u64s(&[1, 0])));
    check(&commit, "IN: record 2 (stream byte 8233) is a control item COMMIT, which belongs in an undo journal, not in this stream: the stream is corrupt");
    let mut odd = encode(&recs);
    odd.extend(item(tag("END"), &[0; 23]));
    check(&odd, "IN: record 2 (stream byte 8233) is a control item END with a payload of 23 bytes, which is not its size: the stream is corrupt");
}

/// The receiver, given a plain stream whose first record is (offset 0, length 0), applies it
/// as the plain stream it is: every later record, also zero-length ones at 1, 2, 3 (what an
/// earlier snapback format used as markers).
#[test]
fn a_zero_length_first_record_is_just_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let recs = vec![
        (0u64, vec![]),
        (4096, pattern(1, 4096)),
        (1, vec![]),
        (8192, pattern(2, 100)),
        (2, vec![]),
    ];
    let s = encode(&recs);
    let mut want = vec![b'O'; 65536];
    want[4096..8192].copy_from_slice(&pattern(1, 4096));
    want[8192..8292].copy_from_slice(&pattern(2, 100));
    for (st, got) in apply_both_ways(dir.path(), &s) {
        assert!(got == want);
        assert!(!st.journaled && !st.end_mark);
        assert_eq!((st.records, st.bytes, st.ignored_records), (2, 4196, 0));
    }
}

/// A marked stream written here is applied, from a file and from a pipe; the receiver says it
/// was marked.
#[test]
fn applies_a_marked_stream_written_from_the_format_description() {
    let dir = tempfile::tempdir().unwrap();
    let recs = vec![
        (60000u64, pattern(1, 5000)),
        (0, pattern(2, 4096)),
        (4096, pattern(3, 1)),
    ];
    let s = encode_marked(&recs);
    let mut want = vec![b'O'; 65536];
    for (o, d) in &recs {
        want[*o as usize..*o as usize + d.len()].copy_from_slice(d);
    }
    for (st, got) in apply_both_ways(dir.path(), &s) {
        assert!(got == want);
        assert!(st.end_mark);
        assert_eq!((st.records, st.bytes), (3, 9097));
    }
}

#[test]
fn stream_errors_say_what_was_already_applied() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    fs::write(&dest, vec![b'O'; 65536]).unwrap();
    // A record, then a record past the end: a pipe cannot be checked up front, but the bad
    // record is in the same batch, so nothing is written.
    let s = encode(&[(0, pattern(1, 4096)), (70000, pattern(2, 16))]);
    let e = apply_pipe(&s, &dest, &ApplyOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "{}: record 1 (stream byte 4125) writes 16 bytes at byte 70000",
            dest.display()
        )),
        "{e}"
    );
    assert_eq!(fs::read(&dest).unwrap(), vec![b'O'; 65536]);
    // A truncated pipe stream: what was written before is reported.
    let big = dir.path().join("big");
    fs::write(&big, vec![b'O'; 16 << 20]).unwrap();
    let recs: Vec<(u64, Vec<u8>)> = (0..9)
        .map(|i| (i << 20, pattern(i as u8, 1 << 20)))
        .collect();
    let s = encode(&recs);
    let e = apply_pipe(&s[..s.len() - 10], &big, &ApplyOptions::default())
        .unwrap_err()
        .to_string();
    // Whole batches are written: the eight complete records, none of the cut one.
    assert!(e.ends_with("only 1048566 data bytes arrived; the sender stopped or the file is truncated; by then 8 records were complete and 8388608 bytes had been written"), "{e}");
    let got = fs::read(&big).unwrap();
    assert!(got[..8 << 20] == s_data(&recs)[..8 << 20]);
    assert!(
        got[(9 << 20) - 10..(9 << 20)] == [b'O'; 10],
        "the missing bytes are not written"
    );
}

fn s_data(recs: &[(u64, Vec<u8>)]) -> Vec<u8> {
    recs.iter().flat_map(|(_, d)| d.clone()).collect()
}

#[test]
fn short_destination_writes_what_fits_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    fs::write(&dest, vec![b'O'; 10000]).unwrap();
    let s = encode(&[
        (0, pattern(1, 100)),
        (9000, pattern(2, 2000)),
        (20000, pattern(3, 50)),
    ]);
    let f = dir.path().join("s");
    fs::write(&f, &s).unwrap();
    let opts = ApplyOptions {
        allow_short_destination: true,
        ..Default::default()
    };
    let st = apply_file(&f, &dest, &opts).unwrap();
    let mut want = vec![b'O'; 10000];
    want[..100].copy_from_slice(&pattern(1, 100));
    want[9000..].copy_from_slice(&pattern(2, 2000)[..1000]);
    assert_eq!(fs::read(&dest).unwrap(), want);
    assert_eq!(fs::metadata(&dest).unwrap().len(), 10000, "never extended");
    assert_eq!(
        (st.records, st.bytes, st.skipped_records, st.skipped_bytes),
        (3, 1100, 2, 1050)
    );
}

#[test]
fn snapback_restores_the_destination_including_overlapping_records() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    let before = pattern(9, 3 << 20);
    fs::write(&dest, &before).unwrap();
    // Overlapping and repeated records across batches (more than 8 MiB in all).
    let mut recs = Vec::new();
    for i in 0..12u64 {
        recs.push(((i % 3) << 20, pattern(i as u8, 1 << 20)));
    }
    recs.push((4096, pattern(77, 10)));
    recs.push((100, pattern(78, 5000)));
    let s = encode(&recs);
    let sb = dir.path().join("undo");
    let opts = ApplyOptions {
        undo: Some(sb.clone()),
        ..Default::default()
    };
    let st = apply_pipe(&s, &dest, &opts).unwrap();
    let undo = st.undo.unwrap();
    assert_eq!(undo.bytes, 3 << 20, "each byte saved once");
    assert_eq!(
        undo.commits, 1,
        "one batch (the second batch saved nothing new)"
    );
    let mut after = before.clone();
    for (o, d) in &recs {
        after[*o as usize..*o as usize + d.len()].copy_from_slice(d);
    }
    assert_eq!(fs::read(&dest).unwrap(), after);
    // The undo file is a PROTO[3] stream with the discards handshake: read with the framing
    // alone (control items are skipped, a discard record is zeros), its records hold the old
    // content.
    let u = fs::read(&sb).unwrap();
    assert!(u.starts_with(b"lvmsync PROTO[3] discards\n"));
    let mut naive = after.clone();
    let mut p = 26;
    while p < u.len() {
        let off = u64::from_be_bytes(u[p..p + 8].try_into().unwrap());
        let len = u32::from_be_bytes(u[p + 8..p + 12].try_into().unwrap()) as usize;
        if off < 1 << 63 && len & 0x8000_0000 != 0 {
            let n = len & 0x7fff_ffff;
            naive[off as usize..off as usize + n].fill(0);
            p += 12;
            continue;
        }
        if off < 1 << 63 {
            naive[off as usize..off as usize + len].copy_from_slice(&u[p + 12..p + 12 + len]);
        }
        p += 12 + len;
    }
    assert_eq!(naive, before);
    // lvmsync --apply of the undo file restores it too (from a file and from a pipe).
    let st = apply_file(&sb, &dest, &ApplyOptions::default()).unwrap();
    assert!(st.journaled);
    assert_eq!(st.ignored_records, 0);
    assert_eq!(fs::read(&dest).unwrap(), before);
    fs::write(&dest, &after).unwrap();
    apply_pipe(&u, &dest, &ApplyOptions::default()).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), before);
    // The apply finished, so a rerun with its snapback file writes nothing at all (here the
    // destination holds the restored content, and keeps it).
    let st = apply_pipe(&s, &dest, &opts).unwrap();
    assert_eq!(st.undo.unwrap().state, wire::UndoState::Complete);
    assert_eq!((st.records, st.bytes, st.writes), (0, 0, 0));
    assert_eq!(fs::read(&dest).unwrap(), before);
    assert_eq!(fs::read(&sb).unwrap(), u);
    // A file that is no journal is never overwritten.
    fs::write(&sb, b"earlier data").unwrap();
    let e = apply_pipe(&s, &dest, &opts).unwrap_err().to_string();
    assert!(e.contains("snapback file exists and is not empty"), "{e}");
    assert_eq!(fs::read(&sb).unwrap(), b"earlier data");
}

#[test]
fn snapback_file_cannot_be_the_destination() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    fs::write(&dest, vec![0u8; 4096]).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&dest, &link).unwrap();
    let opts = ApplyOptions {
        undo: Some(link.clone()),
        ..Default::default()
    };
    let e = apply_pipe(&encode(&[(0, vec![1])]), &dest, &opts)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}: the undo file is the same file as {} (the destination); refusing to write to it",
            link.display(),
            dest.display()
        )
    );
    assert_eq!(fs::read(&dest).unwrap(), vec![0u8; 4096]);
}

/// From a real pipe: same result, and a stream cut inside a record is reported with what was
/// written.
#[test]
fn applies_from_a_real_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    fs::write(&dest, vec![b'O'; 8 << 20]).unwrap();
    let recs: Vec<(u64, Vec<u8>)> = vec![
        (0, pattern(1, 1 << 20)),
        (3 << 20, pattern(2, 100)),
        (4 << 20, pattern(3, (1 << 20) + 512)),
        (2 << 20, pattern(4, 300_000)),
    ];
    let mut want = vec![b'O'; 8 << 20];
    for (o, d) in &recs {
        want[*o as usize..*o as usize + d.len()].copy_from_slice(d);
    }
    let through_pipe = |bytes: Vec<u8>| {
        let (r, w) = nix::unistd::pipe().unwrap();
        let writer = std::thread::spawn(move || {
            let mut f = fs::File::from(w);
            use std::io::Write;
            let _ = f.write_all(&bytes);
        });
        let res = apply(
            Input::Fd(fs::File::from(r), "pipe".into()),
            &dest,
            &ApplyOptions::default(),
            &Progress::new(),
        );
        writer.join().unwrap();
        res
    };
    let st = through_pipe(encode(&recs)).unwrap();
    assert!(fs::read(&dest).unwrap() == want);
    assert_eq!(
        (st.records, st.bytes),
        (4, (1 << 20) + 100 + (1 << 20) + 512 + 300_000)
    );
    // Cut 200 bytes before the end of the third record, after the batch holding the second
    // record and the third's first part was written.
    fs::write(&dest, vec![b'O'; 8 << 20]).unwrap();
    let s = encode(&recs);
    let cut = 17 + (12 + (1 << 20)) + (12 + 100) + 12 + (1 << 20) + 512 - 200;
    let e = through_pipe(s[..cut].to_vec()).unwrap_err();
    let m = e.to_string();
    assert!(m.starts_with("pipe: stream ends inside record 2"), "{m}");
    let wire::Error::Stopped {
        records: 2, bytes, ..
    } = e
    else {
        panic!("{e:?}")
    };
    let got = fs::read(&dest).unwrap();
    assert!(got[..1 << 20] == want[..1 << 20]);
    assert!(got[(4 << 20) + (1 << 20) + 312..(4 << 20) + (1 << 20) + 512] == [b'O'; 200][..]);
    // What was written is what is reported: the bytes that are no longer 'O' (the pattern
    // bytes never are).
    let changed = got.iter().filter(|&&b| b != b'O').count() as u64;
    let o_in_data: u64 = recs
        .iter()
        .map(|(_, d)| d.iter().filter(|&&b| b == b'O').count() as u64)
        .sum();
    assert!(
        changed <= bytes && bytes <= changed + o_in_data,
        "{changed} {bytes}"
    );
}

/// The change set of data ranges `data` and discard ranges `discards`.
fn pair(data: &Changes, discards: &Changes) -> ChangeSet {
    ChangeSet {
        data: data.clone(),
        discards: discards.clone(),
    }
}

/// A local sync's link: a plain stream the sender finished applies whole; a sender that
/// fails (here before its first byte) makes the receiver fail with it, where a pipe would
/// have handed it an empty or seemingly whole stream.
#[test]
fn a_link_ends_cleanly_only_when_the_send_finished() {
    use ironshed_core::io::link::{link, SENDER_STOPPED};
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let data = pattern(7, 3 << 20);
    fs::write(&src, &data).unwrap();
    let dest = dir.path().join("dest");
    let ch = Changes::from_ranges(vec![ByteRange {
        offset: 4096,
        len: 2 << 20,
    }]);
    for (source, ok) in [(src.clone(), true), (dir.path().join("missing"), false)] {
        fs::write(&dest, vec![b'O'; 3 << 20]).unwrap();
        let (w, r) = link();
        let set = pair(&ch, &Changes::default());
        let plain = SendOptions {
            plain: true,
            ..Default::default()
        };
        let sender = std::thread::spawn(move || {
            wire::send_changes_to_link(set, &source, w, "the link", &plain, &Progress::new())
        });
        let applied = apply(
            Input::Stream(Box::new(r), "the local sender".into()),
            &dest,
            &ApplyOptions::default(),
            &Progress::new(),
        );
        let sent = sender.join().unwrap();
        let got = fs::read(&dest).unwrap();
        if ok {
            sent.unwrap();
            applied.unwrap();
            assert!(got[4096..4096 + (2 << 20)] == data[4096..4096 + (2 << 20)]);
        } else {
            assert!(sent.is_err());
            let e = applied.unwrap_err().to_string();
            assert!(e.contains(SENDER_STOPPED), "{e}");
            assert!(got == vec![b'O'; 3 << 20], "nothing is written");
        }
    }
}
