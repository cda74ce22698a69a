//! The sender's refusals, one test each: every check is made before the first byte goes out,
//! so a refused send leaves the output empty.

use super::*;
use crate::snapshot::Changes;
use std::io;

/// A source of `size` bytes, each its offset's low byte.
fn source(size: usize) -> (tempfile::TempDir, SourceDevice) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("origin");
    std::fs::write(&p, (0..size).map(|i| i as u8).collect::<Vec<u8>>()).unwrap();
    let s = SourceDevice::open(&p).unwrap();
    (dir, s)
}

fn ranges(list: &[(u64, u64)]) -> Changes {
    Changes::from_ranges(
        list.iter()
            .map(|&(offset, len)| ByteRange { offset, len })
            .collect(),
    )
}

/// Sends `data` and `discards` from a 64 KiB source into a vector.
fn send_to<W: Write>(
    out: &mut W,
    data: &[(u64, u64)],
    discards: &[(u64, u64)],
    opts: &SendOptions,
    progress: &Progress,
) -> Result<SendStats> {
    let (_dir, src) = source(65536);
    let set = ChangeSet {
        data: ranges(data),
        discards: ranges(discards),
    };
    send(&set, &src, out, "out", opts, progress)
}

fn refused(data: &[(u64, u64)], discards: &[(u64, u64)], opts: &SendOptions) -> Error {
    let mut out = Vec::new();
    let e = send_to(&mut out, data, discards, opts, &Progress::new()).unwrap_err();
    assert!(out.is_empty(), "nothing is sent before the checks pass");
    e
}

const EXTENDED: SendOptions = SendOptions {
    max_record: MAX_SEND_RECORD,
    discards: true,
    digests: false,
    plain: false,
    inputs: Vec::new(),
    expect_from: None,
};

/// The original format, byte for byte.
const PLAIN: SendOptions = SendOptions {
    max_record: MAX_SEND_RECORD,
    discards: false,
    digests: false,
    plain: true,
    inputs: Vec::new(),
    expect_from: None,
};

#[test]
fn data_range_past_the_source() {
    let e = refused(&[(0, 10), (60000, 8192)], &[], &SendOptions::default());
    match &e {
        Error::Source(crate::snapshot::Error::PastSource {
            source_name,
            offset: 65536,
            size: 65536,
        }) => assert!(source_name.ends_with("/origin"), "{source_name}"),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().ends_with("/origin: the snapshot lists a change at byte 65536, but this device is only 65536 bytes: is it the snapshot's origin?"), "{e}");
    // The first byte past the end is named: the range's own start when it starts past it.
    let e = refused(&[(70000, 10)], &[], &SendOptions::default());
    assert!(
        matches!(
            e,
            Error::Source(crate::snapshot::Error::PastSource { offset: 70000, .. })
        ),
        "{e:?}"
    );
}

#[test]
fn discard_range_past_the_source() {
    let e = refused(&[(0, 10)], &[(65536, 4096)], &EXTENDED);
    assert!(
        matches!(
            e,
            Error::Source(crate::snapshot::Error::PastSource {
                offset: 65536,
                size: 65536,
                ..
            })
        ),
        "{e:?}"
    );
}

#[test]
fn discards_for_a_plain_stream() {
    let e = refused(
        &[(0, 10)],
        &[(4096, 4096), (16384, 1)],
        &SendOptions::default(),
    );
    assert!(matches!(e, Error::Internal(_)), "{e:?}");
    assert_eq!(e.to_string(), "internal error: 2 discard ranges given for a plain PROTO[3] stream: merge them into the data ranges (they read as zeros from the source)");
}

#[test]
fn data_and_discard_ranges_that_overlap() {
    let e = refused(
        &[(0, 100), (8192, 4096)],
        &[(1000, 10), (12287, 2)],
        &EXTENDED,
    );
    assert!(matches!(e, Error::Internal(_)), "{e:?}");
    assert_eq!(e.to_string(), "internal error: data range of 4096 bytes at byte 8192 overlaps discard range of 2 bytes at byte 12287");
}

/// Takes `room` bytes, then fails with `error` (or accepts nothing, with `None`).
struct Failing {
    room: usize,
    error: Option<io::ErrorKind>,
}

impl Write for Failing {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.room > 0 {
            let n = b.len().min(self.room);
            self.room -= n;
            return Ok(n);
        }
        match self.error {
            Some(k) => Err(io::Error::from(k)),
            None => Ok(0),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn output_that_fails_or_stops_taking_bytes() {
    for (error, why) in [
        (Some(io::ErrorKind::BrokenPipe), "broken pipe"),
        (None, "wrote nothing"),
    ] {
        let mut out = Failing { room: 20, error };
        let e = send_to(
            &mut out,
            &[(0, 4096)],
            &[],
            &SendOptions::default(),
            &Progress::new(),
        )
        .unwrap_err();
        assert!(matches!(e, Error::Io(_)), "{e:?}");
        let m = e.to_string();
        assert!(m.starts_with("out: write the stream: "), "{m}");
        assert!(m.contains(why), "{m}");
    }
}

#[test]
fn output_interrupted_by_a_signal_is_retried() {
    /// Fails every other call with EINTR.
    struct Eintr(Vec<u8>, bool);
    impl Write for Eintr {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.1 = !self.1;
            if self.1 {
                return Err(io::Error::from(io::ErrorKind::Interrupted));
            }
            self.0.extend_from_slice(&b[..b.len().min(7)]);
            Ok(b.len().min(7))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut out = Eintr(Vec::new(), false);
    let st = send_to(&mut out, &[(5, 3)], &[], &PLAIN, &Progress::new()).unwrap();
    let mut want = HANDSHAKE.to_vec();
    want.extend_from_slice(&RecordHeader { offset: 5, len: 3 }.encode());
    want.extend_from_slice(&[5, 6, 7]);
    assert_eq!(out.0, want);
    assert_eq!(st.stream_bytes, want.len() as u64);
}

#[test]
fn cancelled_send_is_interrupted() {
    let p = Progress::new();
    p.cancel();
    let mut out = Vec::new();
    let e = send_to(&mut out, &[(0, 4096)], &[], &SendOptions::default(), &p).unwrap_err();
    assert!(matches!(e, Error::Cancelled(_)), "{e:?}");
}

/// The change set's preparation (merge, clip) as send_changes does it.
mod change_set {
    use super::*;
    use crate::error::{Kind, Report};

    fn set(data: &[(u64, u64)], discards: &[(u64, u64)]) -> ChangeSet {
        let c = |v: &[(u64, u64)]| {
            Changes::from_ranges(
                v.iter()
                    .map(|&(offset, len)| ByteRange { offset, len })
                    .collect(),
            )
        };
        ChangeSet {
            data: c(data),
            discards: c(discards),
        }
    }

    /// A record as sent: offset, length field, data.
    type Sent = (u64, u32, Vec<u8>);

    /// (handshake, records) of a stream.
    fn records(s: &[u8]) -> (&[u8], Vec<Sent>) {
        let nl = s.iter().position(|&b| b == b'\n').unwrap() + 1;
        let (hs, mut rest) = s.split_at(nl);
        let mut out = Vec::new();
        while !rest.is_empty() {
            let off = u64::from_be_bytes(rest[..8].try_into().unwrap());
            let len = u32::from_be_bytes(rest[8..12].try_into().unwrap());
            let data = if len & 0x8000_0000 != 0 {
                0
            } else {
                len as usize
            };
            out.push((off, len, rest[12..12 + data].to_vec()));
            rest = &rest[12 + data..];
        }
        (hs, out)
    }

    #[test]
    fn send_changes_merges_discards_for_a_plain_stream_and_clips_to_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("origin");
        let bytes: Vec<u8> = (0..10000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &bytes).unwrap();
        let s = set(&[(0, 4096)], &[(8192, 4096)]);

        let mut out = Vec::new();
        let r = send_changes(s.clone(), &src, &mut out, "out", &PLAIN, &Progress::new()).unwrap();
        let (hs, recs) = records(&out);
        assert_eq!(hs, HANDSHAKE);
        // The discarded range went out as data read from the source, cut at its end.
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].0, recs[0].1), (8192, 1808));
        assert_eq!(recs[0].2, bytes[8192..]);
        assert_eq!(recs[1].2, bytes[..4096]);
        assert_eq!(
            (r.ranges, r.source_size, r.read_mode),
            (2, 10000, ReadMode::Buffered)
        );
        assert_eq!((r.stats.records, r.stats.discard_records), (2, 0));

        let mut out = Vec::new();
        let opts = SendOptions {
            discards: true,
            ..PLAIN
        };
        let r = send_changes(s, &src, &mut out, "out", &opts, &Progress::new()).unwrap();
        let (hs, recs) = records(&out);
        assert_eq!(hs, HANDSHAKE_DISCARDS);
        assert_eq!((recs[0].0, recs[0].1), (8192, 0x8000_0000 | 1808));
        assert_eq!(
            (r.ranges, r.stats.records, r.stats.discard_bytes),
            (1, 1, 1808)
        );
    }

    #[test]
    fn send_changes_refuses_a_set_past_the_source_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("small");
        std::fs::write(&src, [0u8; 4096]).unwrap();
        let mut out = Vec::new();
        let e = send_changes(
            set(&[(0, 4096)], &[(8192, 4096)]),
            &src,
            &mut out,
            "out",
            &SendOptions::default(),
            &Progress::new(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), Kind::Snapshot);
        assert!(e
            .message()
            .contains("lists a change at byte 8192, but this device is only 4096 bytes"));
        assert!(out.is_empty());
        let e = send_changes(
            ChangeSet::default(),
            &dir.path().join("missing"),
            &mut out,
            "out",
            &SendOptions::default(),
            &Progress::new(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), Kind::Os(libc::ENOENT));
        assert!(out.is_empty());
    }

    /// The reader reads through gaps of up to `gap` bytes (a device's scattered chunks in one
    /// request) yet hands over exactly the chunks' bytes, in order, across several arenas.
    #[test]
    fn reads_through_small_gaps_but_sends_only_the_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("origin");
        let bytes: Vec<u8> = (0..(16u32 << 20))
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        std::fs::write(&path, &bytes).unwrap();
        let source = SourceDevice::open(&path).unwrap();
        // Close chunks, far ones, adjacent ones, one longer than the arena, a discard.
        let mut ranges: Vec<(u64, u64, bool)> = Vec::new();
        let mut at = 0u64;
        for i in 0..300u64 {
            let len = if i == 150 {
                700 << 10
            } else {
                4096 * (1 + i % 3)
            };
            ranges.push((at, len, i % 97 == 5));
            at += len + [0, 4096, 60 << 10, 70 << 10, 512][(i % 5) as usize];
        }
        assert!(at < bytes.len() as u64);
        let pieces: Vec<Piece> = ranges
            .iter()
            .map(|&(offset, len, discard)| Piece {
                range: ByteRange { offset, len },
                discard,
            })
            .collect();
        for gap in [0, READ_THROUGH_GAP] {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Fill>(1);
            let (stx, srx) = std::sync::mpsc::channel::<Fill>();
            let (mut heads, mut data) = (Vec::new(), Vec::new());
            let counts = std::thread::scope(|s| {
                let reader = s.spawn(|| fill_arenas(pieces.iter().copied(), &source, gap, tx, srx));
                for f in rx.iter() {
                    for op in &f.ops {
                        match *op {
                            Op::Header(i) => heads.push((f.headers[i].offset, f.headers[i].len)),
                            Op::Data(a, l) => data.extend_from_slice(&f.arena[a..a + l]),
                        }
                    }
                    let _ = stx.send(f); // refused once the reader is done
                }
                reader.join().unwrap().unwrap()
            });
            let want: Vec<u8> = ranges
                .iter()
                .filter(|r| !r.2)
                .flat_map(|&(o, l, _)| bytes[o as usize..(o + l) as usize].iter().copied())
                .collect();
            assert_eq!(
                heads,
                ranges.iter().map(|&(o, l, _)| (o, l)).collect::<Vec<_>>(),
                "gap {gap}"
            );
            assert!(data == want, "gap {gap}: data differs");
            assert_eq!(
                counts.records,
                ranges.iter().filter(|r| !r.2).count() as u64
            );
            assert_eq!(
                counts.discard_records,
                ranges.iter().filter(|r| r.2).count() as u64
            );
        }
    }
}

#[test]
fn an_output_that_is_the_source_or_another_input_is_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("origin");
    let store = dir.path().join("cow");
    let before: Vec<u8> = (0..65536).map(|i| i as u8).collect();
    std::fs::write(&origin, &before).unwrap();
    std::fs::write(&store, b"exception store").unwrap();
    std::fs::hard_link(&origin, dir.path().join("link")).unwrap();
    let set = || ChangeSet {
        data: ranges(&[(0, 8192)]),
        discards: ranges(&[]),
    };
    let opts = SendOptions {
        inputs: vec![("the exception store".into(), store.clone())],
        ..Default::default()
    };
    for (out, other, role) in [
        (dir.path().join("link"), &origin, "the data source"),
        (store.clone(), &store, "the exception store"),
    ] {
        // Opened for writing without truncating, as a shell's `1<>` or a device would be.
        let f = std::fs::OpenOptions::new().write(true).open(&out).unwrap();
        let e = send_changes_to_file(
            set(),
            &origin,
            f,
            "standard output",
            &opts,
            &Progress::new(),
        )
        .unwrap_err();
        assert_eq!(
            crate::error::Report::kind(&e),
            crate::error::Kind::Destination
        );
        assert_eq!(
            e.to_string(),
            format!(
                "standard output: the output is the same file as {} ({role}); refusing to write to it",
                other.display()
            )
        );
    }
    assert!(std::fs::read(&origin).unwrap() == before);
    assert_eq!(std::fs::read(&store).unwrap(), b"exception store");
    // Any other file takes the stream.
    let f = std::fs::File::create(dir.path().join("changes")).unwrap();
    let r = send_changes_to_file(set(), &origin, f, "changes", &opts, &Progress::new()).unwrap();
    assert_eq!(r.stats.records, 1);
}

/// A marked stream, read here from the format description: `BEGIN` (tag 0xff "BEGIN", 24
/// bytes: records, data bytes, XXH3-64 of the handshake and their headers), the records,
/// `END` (tag 0xff "END", 24 bytes: items before it, data bytes, XXH3-64 of every byte
/// before it).
#[test]
fn a_marked_stream_begins_and_ends_with_its_marks() {
    use xxhash_rust::xxh3::xxh3_64;
    let mut out = Vec::new();
    let st = send_to(
        &mut out,
        &[(100, 3), (60000, 5000)],
        &[(20000, 4096)],
        &EXTENDED,
        &Progress::new(),
    )
    .unwrap();
    assert!(st.end_mark);
    let hs = HANDSHAKE_DISCARDS.len();
    let be = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap());
    let tag = |name: &[u8]| {
        let mut t = [0u8; 8];
        t[0] = 0xff;
        t[1..1 + name.len()].copy_from_slice(name);
        t
    };
    // BEGIN
    assert_eq!(&out[hs..hs + 8], &tag(b"BEGIN"));
    assert_eq!(&out[hs + 8..hs + 12], &24u32.to_be_bytes());
    let begin = &out[hs + 12..hs + 36];
    assert_eq!((be(&begin[..8]), be(&begin[8..16])), (3, 5003));
    // The records, furthest first: 60000+5000, 100+3, the discard at 20000.
    let recs_start = hs + 36;
    let mut headers = Vec::new();
    let mut p = recs_start;
    for (off, len, data) in [
        (60000u64, 5000u32, true),
        (100, 3, true),
        (20000, 4096 | 0x8000_0000, false),
    ] {
        assert_eq!(be(&out[p..p + 8]), off);
        assert_eq!(
            u32::from_be_bytes(out[p + 8..p + 12].try_into().unwrap()),
            len
        );
        headers.extend_from_slice(&out[p..p + 12]);
        p += 12 + if data { len as usize } else { 0 };
    }
    let mut layout = HANDSHAKE_DISCARDS.to_vec();
    layout.extend_from_slice(&headers);
    assert_eq!(be(&begin[16..24]), xxh3_64(&layout));
    // END, then nothing.
    assert_eq!(&out[p..p + 8], &tag(b"END"));
    assert_eq!(&out[p + 8..p + 12], &24u32.to_be_bytes());
    let end = &out[p + 12..p + 36];
    assert_eq!((be(&end[..8]), be(&end[8..16])), (4, 5003));
    assert_eq!(be(&end[16..24]), xxh3_64(&out[..p]));
    assert_eq!(out.len(), p + 36);
    assert_eq!(st.stream_bytes, out.len() as u64);
    // --plain: none of it.
    let mut plain = Vec::new();
    let st = send_to(&mut plain, &[(100, 3)], &[], &PLAIN, &Progress::new()).unwrap();
    assert!(!st.end_mark);
    assert_eq!(plain.len(), HANDSHAKE.len() + 12 + 3);
}

/// A writer that keeps each write call's bytes apart.
#[derive(Default)]
struct Calls(Vec<Vec<u8>>);

impl Write for Calls {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.push(b.to_vec());
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The handshake and `BEGIN` leave in one write, so that on a pipe a cut cannot fall between
/// them (a marked stream cut right after its handshake would read as an empty plain stream);
/// a plain stream's first write is the handshake alone.
#[test]
fn the_handshake_and_begin_go_out_in_one_write() {
    let mut out = Calls::default();
    send_to(
        &mut out,
        &[(0, 4096)],
        &[],
        &SendOptions::default(),
        &Progress::new(),
    )
    .unwrap();
    assert_eq!(out.0[0].len(), HANDSHAKE.len() + HEADER_LEN + 24);
    assert_eq!(&out.0[0][..HANDSHAKE.len()], HANDSHAKE);
    assert_eq!(&out.0[0][HANDSHAKE.len()..][..6], b"\xffBEGIN");
    let mut out = Calls::default();
    send_to(&mut out, &[(0, 4096)], &[], &PLAIN, &Progress::new()).unwrap();
    assert_eq!(out.0[0], HANDSHAKE);
}
