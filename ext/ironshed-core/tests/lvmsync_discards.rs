//! The two extensions of the lvmsync wire layer, on real files (and a real block device, a
//! loop device, when the tests run as root):
//!
//! * discard records: a stream with the handshake "lvmsync PROTO[3] discards\n" whose record
//!   headers with the length's top bit set are discards of `len & 0x7fff_ffff` bytes, with no
//!   data — checked here with an encoder and a decoder written from that description, not
//!   with the core's codec;
//! * digests for `--verify`: XXH3-64 of each record's range, computed here directly with
//!   `xxhash_rust` from the source bytes (or zeros), compared with the sender's and the
//!   receiver's.

use ironshed_core::block::Destination;
use ironshed_core::io::SourceDevice;
use ironshed_core::snapshot::{ByteRange, ChangeSet, Changes};
use ironshed_core::wire::{self, apply, ApplyOptions, Digest, Input, MismatchKind, SendOptions};
use ironshed_core::Progress;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use xxhash_rust::xxh3::xxh3_64;

const KIB: u64 = 1024;
const MIB: u64 = 1 << 20;

/// Bytes that are never zero, different for each seed.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(31).wrapping_add(u32::from(seed)) % 255) as u8 + 1)
        .collect()
}

/// A record as the independent decoder sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rec {
    Data(u64, Vec<u8>),
    Discard(u64, u64),
}

impl Rec {
    fn offset(&self) -> u64 {
        match self {
            Rec::Data(o, _) | Rec::Discard(o, _) => *o,
        }
    }
    fn end(&self) -> u64 {
        match self {
            Rec::Data(o, d) => o + d.len() as u64,
            Rec::Discard(o, l) => o + l,
        }
    }
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |a, &x| a << 8 | u64::from(x))
}

/// Independent decoder of a complete stream, from the format description. Returns whether
/// the handshake was the extended one, and the records.
fn decode(s: &[u8]) -> (bool, Vec<Rec>) {
    let (ext, mut p) = if s.starts_with(b"lvmsync PROTO[3] discards\n") {
        (true, 26)
    } else if s.starts_with(b"lvmsync PROTO[3]\n") {
        (false, 17)
    } else {
        panic!("no handshake");
    };
    let mut out = Vec::new();
    while p < s.len() {
        let off = be(&s[p..p + 8]);
        let len = be(&s[p + 8..p + 12]);
        p += 12;
        if off >= 1 << 63 {
            // A control item (BEGIN, END): its length is its payload's.
            p += len as usize;
        } else if ext && len & 0x8000_0000 != 0 {
            out.push(Rec::Discard(off, len & 0x7fff_ffff));
        } else {
            out.push(Rec::Data(off, s[p..p + len as usize].to_vec()));
            p += len as usize;
        }
    }
    assert_eq!(p, s.len(), "stream ends inside a record");
    (ext, out)
}

/// Independent encoder: an extended stream of these records.
fn encode_ext(recs: &[Rec]) -> Vec<u8> {
    let mut v = b"lvmsync PROTO[3] discards\n".to_vec();
    for r in recs {
        match r {
            Rec::Data(o, d) => {
                v.extend_from_slice(&o.to_be_bytes());
                v.extend_from_slice(&(d.len() as u32).to_be_bytes());
                v.extend_from_slice(d);
            }
            Rec::Discard(o, l) => {
                v.extend_from_slice(&o.to_be_bytes());
                v.extend_from_slice(&(*l as u32 | 0x8000_0000).to_be_bytes());
            }
        }
    }
    v
}

/// What a destination holds after the records are applied in order.
fn model(before: &[u8], recs: &[Rec]) -> Vec<u8> {
    let mut m = before.to_vec();
    for r in recs {
        match r {
            Rec::Data(o, d) => m[*o as usize..*o as usize + d.len()].copy_from_slice(d),
            Rec::Discard(o, l) => m[*o as usize..(*o + *l) as usize].fill(0),
        }
    }
    m
}

fn ranges(list: &[(u64, u64)]) -> Changes {
    Changes::from_ranges(
        list.iter()
            .map(|&(offset, len)| ByteRange { offset, len })
            .collect(),
    )
}

fn send(
    changes: &Changes,
    discards: &Changes,
    source: &Path,
    opts: SendOptions,
) -> wire::Result<(Vec<u8>, wire::SendStats)> {
    let src = SourceDevice::open(source).unwrap();
    let mut out = Vec::new();
    let st = wire::send(
        &pair(changes, discards),
        &src,
        &mut out,
        "out",
        &opts,
        &Progress::new(),
    )?;
    Ok((out, st))
}

fn ext_opts(max_record: u32) -> SendOptions {
    SendOptions {
        max_record,
        discards: true,
        digests: true,
        ..Default::default()
    }
}

fn apply_file(stream: &Path, dest: &Path, opts: &ApplyOptions) -> wire::Result<wire::ApplyStats> {
    apply(
        Input::File(stream.to_path_buf()),
        dest,
        opts,
        &Progress::new(),
    )
}

fn apply_stream(s: &[u8], dest: &Path, opts: &ApplyOptions) -> wire::Result<wire::ApplyStats> {
    apply(
        Input::Stream(Box::new(std::io::Cursor::new(s.to_vec())), "-".into()),
        dest,
        opts,
        &Progress::new(),
    )
}

/// Through a real pipe (the receiver splices large records from it).
fn apply_pipe(s: &[u8], dest: &Path, opts: &ApplyOptions) -> wire::Result<wire::ApplyStats> {
    let (r, w) = nix::unistd::pipe().unwrap();
    let bytes = s.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = fs::File::from(w).write_all(&bytes);
    });
    let res = apply(
        Input::Fd(fs::File::from(r), "pipe".into()),
        dest,
        opts,
        &Progress::new(),
    );
    writer.join().unwrap();
    res
}

fn verify() -> ApplyOptions {
    ApplyOptions {
        verify: true,
        ..Default::default()
    }
}

/// The digests the records should have, computed here.
fn expected_digests(recs: &[Rec]) -> Vec<Digest> {
    recs.iter()
        .map(|r| match r {
            Rec::Data(o, d) => Digest {
                offset: *o,
                len: d.len() as u64,
                hash: xxh3_64(d),
            },
            Rec::Discard(o, l) => Digest {
                offset: *o,
                len: *l,
                hash: xxh3_64(&vec![0u8; *l as usize]),
            },
        })
        .collect()
}

/// True when `[off, off+len)` of the file holds no data extent (a hole).
fn is_hole(path: &Path, off: u64, len: u64) -> bool {
    let f = fs::File::open(path).unwrap();
    match nix::unistd::lseek(&f, off as i64, nix::unistd::Whence::SeekData) {
        Ok(next) => next as u64 >= off + len,
        Err(nix::errno::Errno::ENXIO) => true,
        Err(e) => panic!("SEEK_DATA: {e}"),
    }
}

fn allocated(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn send_interleaves_data_and_discards_furthest_first() {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("origin");
    let data = pattern(7, (8 * MIB) as usize);
    fs::write(&origin, &data).unwrap();
    let changes = ranges(&[(0, 64 * KIB), (MIB, 300 * KIB), (5 * MIB, 4 * KIB)]);
    let discards = ranges(&[(64 * KIB, 64 * KIB), (2 * MIB, MIB), (7 * MIB, MIB)]);
    let (s, st) = send(&changes, &discards, &origin, ext_opts(128 << 10)).unwrap();
    let (ext, recs) = decode(&s);
    assert!(ext);
    // The furthest-reaching record (a discard here) first, then ascending, never overlapping.
    assert_eq!(recs[0], Rec::Discard(7 * MIB, MIB));
    assert!(recs[1..].windows(2).all(|w| w[0].end() <= w[1].offset()));
    let offsets: Vec<(u64, bool)> = recs
        .iter()
        .map(|r| (r.offset(), matches!(r, Rec::Discard(..))))
        .collect();
    assert_eq!(
        offsets,
        [
            (7 * MIB, true),
            (0, false),
            (64 * KIB, true),
            (MIB, false),
            (MIB + 128 * KIB, false),
            (MIB + 256 * KIB, false),
            (2 * MIB, true),
            (5 * MIB, false),
        ]
    );
    for r in &recs {
        if let Rec::Data(o, d) = r {
            assert!(d.len() <= 128 << 10);
            assert!(
                data[*o as usize..*o as usize + d.len()] == d[..],
                "data at {o}"
            );
        }
    }
    assert_eq!((st.records, st.bytes), (5, 64 * KIB + 300 * KIB + 4 * KIB));
    assert_eq!(
        (st.discard_records, st.discard_bytes),
        (3, 64 * KIB + 2 * MIB)
    );
    assert_eq!(st.stream_bytes, s.len() as u64);
    assert_eq!(st.digests, expected_digests(&recs));

    // When a data record reaches furthest, it goes first.
    let (s, st) = send(
        &changes,
        &ranges(&[(64 * KIB, 64 * KIB)]),
        &origin,
        ext_opts(1 << 20),
    )
    .unwrap();
    let (_, recs) = decode(&s);
    assert_eq!(recs[0].offset(), 5 * MIB);
    assert!(matches!(recs[0], Rec::Data(..)));
    assert_eq!(recs[2], Rec::Discard(64 * KIB, 64 * KIB));
    assert_eq!(st.digests, expected_digests(&recs));

    // A destination too small for the furthest record refuses the stream at its first record.
    let dest = dir.path().join("small");
    fs::write(&dest, vec![9u8; (6 * MIB) as usize]).unwrap();
    let (s, _) = send(&changes, &discards, &origin, ext_opts(1 << 20)).unwrap();
    let e = apply_stream(&s, &dest, &ApplyOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("record 1 (stream byte 62) discards 1048576 bytes at byte 7340032, past the end of the destination (6291456 bytes)"),
        "{e}"
    );
    assert!(fs::read(&dest).unwrap() == vec![9u8; (6 * MIB) as usize]);
}

#[test]
fn plain_streams_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("origin");
    let data = pattern(3, (4 * MIB) as usize);
    fs::write(&origin, &data).unwrap();
    let changes = ranges(&[(0, 3 * MIB), (3 * MIB + 4096, 8192)]);
    let none = Changes::default();
    let (plain, st) = send(&changes, &none, &origin, SendOptions::default()).unwrap();
    let (with_digests, st2) = send(
        &changes,
        &none,
        &origin,
        SendOptions {
            digests: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(plain == with_digests, "digests do not change the stream");
    assert!(st.digests.is_empty());
    let (ext, recs) = decode(&plain);
    assert!(!ext);
    assert!(recs.iter().all(|r| matches!(r, Rec::Data(..))));
    assert_eq!(st2.digests, expected_digests(&recs));
    assert_eq!(st2.discard_records, 0);
    // Our receiver applies it; discards_in_stream says it was plain.
    let dest = dir.path().join("dest");
    fs::write(&dest, vec![0u8; (4 * MIB) as usize]).unwrap();
    let a = apply_pipe(&plain, &dest, &verify()).unwrap();
    assert!(!a.discards_in_stream);
    assert_eq!(a.digests, st2.digests);
}

#[test]
fn send_refuses_bad_range_lists_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("origin");
    fs::write(&origin, vec![1u8; (MIB) as usize]).unwrap();
    let ch = ranges(&[(0, 8192)]);
    let e = send(
        &ch,
        &ranges(&[(65536, 4096)]),
        &origin,
        SendOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, wire::Error::Internal(_)), "{e}");
    assert!(e.to_string().contains("merge them into the data ranges"));
    let e = send(&ch, &ranges(&[(4096, 8192)]), &origin, ext_opts(1 << 20)).unwrap_err();
    assert_eq!(e.to_string(), "internal error: data range of 8192 bytes at byte 0 overlaps discard range of 8192 bytes at byte 4096");
    let e = send(
        &ch,
        &ranges(&[(MIB - 4096, 8192)]),
        &origin,
        ext_opts(1 << 20),
    )
    .unwrap_err()
    .to_string();
    assert!(e.ends_with("the snapshot lists a change at byte 1048576, but this device is only 1048576 bytes: is it the snapshot's origin?"), "{e}");
    // Nothing was written in any case: the checks come before the handshake.
    let src = SourceDevice::open(&origin).unwrap();
    let mut out = Vec::new();
    let _ = wire::send(
        &pair(&ch, &ranges(&[(4096, 8192)])),
        &src,
        &mut out,
        "out",
        &ext_opts(1 << 20),
        &Progress::new(),
    );
    assert!(out.is_empty());
}

/// Checks an extended stream as it is written, without keeping it: every data record below
/// 2^31 bytes, discards as expected.
struct Checker {
    buf: Vec<u8>,
    skip: u64,
    handshake: bool,
    data: Vec<(u64, u64)>,
    discards: Vec<(u64, u64)>,
}

impl Write for Checker {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut b = bytes;
        while !b.is_empty() {
            if self.skip > 0 {
                let n = (self.skip as usize).min(b.len());
                self.skip -= n as u64;
                b = &b[n..];
                continue;
            }
            self.buf.push(b[0]);
            b = &b[1..];
            if !self.handshake {
                if self.buf.ends_with(b"\n") {
                    assert_eq!(self.buf, b"lvmsync PROTO[3] discards\n");
                    self.handshake = true;
                    self.buf.clear();
                }
            } else if self.buf.len() == 12 {
                let off = be(&self.buf[..8]);
                let len = be(&self.buf[8..]);
                if len & 0x8000_0000 != 0 {
                    self.discards.push((off, len & 0x7fff_ffff));
                } else {
                    self.data.push((off, len));
                    self.skip = len;
                }
                self.buf.clear();
            }
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn long_records_are_cut_below_2_31_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("sparse");
    let size = 5u64 << 30;
    fs::File::create(&origin).unwrap().set_len(size).unwrap();
    // Data: a little more than 2 GiB with no record limit but the format's; discards: the
    // rest (never read).
    let data_len = (2u64 << 30) + 8192;
    let changes = ranges(&[(0, data_len)]);
    let discards = ranges(&[(data_len, size - data_len)]);
    let src = SourceDevice::open(&origin).unwrap();
    let mut c = Checker {
        buf: Vec::new(),
        skip: 0,
        handshake: false,
        data: Vec::new(),
        discards: Vec::new(),
    };
    let st = wire::send(
        &pair(&changes, &discards),
        &src,
        &mut c,
        "checker",
        &SendOptions {
            max_record: u32::MAX,
            discards: true,
            plain: true,
            ..Default::default()
        },
        &Progress::new(),
    )
    .unwrap();
    let max = 0x7fff_ffffu64;
    assert_eq!(c.data, [(0, max), (max, data_len - max)]);
    let rest = size - data_len;
    assert_eq!(
        c.discards,
        [(data_len + max, rest - max), (data_len, max)],
        "sent first (reaching furthest), then in order"
    );
    assert_eq!((st.records, st.bytes), (2, data_len));
    assert_eq!((st.discard_records, st.discard_bytes), (2, rest));
    assert_eq!(c.skip, 0);
}

/// A source, a destination with the old content, and the change lists between them.
struct Sync {
    dir: tempfile::TempDir,
    origin: Vec<u8>,
    before: Vec<u8>,
    changes: Changes,
    discards: Changes,
}

impl Sync {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let size = 16 * MIB as usize;
        let before = pattern(1, size);
        let mut origin = before.clone();
        // 3 MiB contiguous (1 MiB records, each over several arena fills), scattered chunks,
        // and discarded ranges (zeros in the origin).
        let changes = ranges(&[
            (0, 3 * MIB),
            (4 * MIB + 4096, 4096),
            (5 * MIB, 600 * KIB),
            (11 * MIB + 512, 1000),
        ]);
        let discards = ranges(&[(3 * MIB, 512 * KIB), (8 * MIB, 2 * MIB), (15 * MIB, MIB)]);
        for (i, r) in changes.ranges().iter().enumerate() {
            let (o, l) = (r.offset as usize, r.len as usize);
            origin[o..o + l].copy_from_slice(&pattern(100 + i as u8, l));
        }
        for r in discards.ranges() {
            origin[r.offset as usize..r.end() as usize].fill(0);
        }
        fs::write(dir.path().join("origin"), &origin).unwrap();
        Sync {
            dir,
            origin,
            before,
            changes,
            discards,
        }
    }
    fn path(&self, n: &str) -> std::path::PathBuf {
        self.dir.path().join(n)
    }
    fn fresh_dest(&self) -> std::path::PathBuf {
        let p = self.path("dest");
        fs::write(&p, &self.before).unwrap();
        p
    }
    fn send(&self) -> (Vec<u8>, wire::SendStats) {
        send(
            &self.changes,
            &self.discards,
            &self.path("origin"),
            ext_opts(1 << 20),
        )
        .unwrap()
    }
}

#[test]
fn file_to_file_digests_match_and_corruption_is_detected() {
    let t = Sync::new();
    let (s, sent) = t.send();
    let (_, recs) = decode(&s);
    assert_eq!(sent.digests, expected_digests(&recs));
    assert_eq!(sent.digests.len(), recs.len());
    let stream = t.path("stream");
    fs::write(&stream, &s).unwrap();

    // From a file (checked first), from a reader, from a pipe: the destination
    // becomes the origin and the read-back digests equal the sent ones.
    for how in 0..3 {
        let dest = t.fresh_dest();
        let a = match how {
            0 => apply_file(&stream, &dest, &verify()),
            1 => apply_stream(&s, &dest, &verify()),
            _ => apply_pipe(&s, &dest, &verify()),
        }
        .unwrap();
        assert!(fs::read(&dest).unwrap() == t.origin, "path {how}");
        assert!(a.discards_in_stream);
        assert_eq!(
            (a.records, a.discard_records),
            (sent.records, sent.discard_records)
        );
        assert_eq!((a.bytes, a.discard_bytes), (sent.bytes, sent.discard_bytes));
        let r = wire::compare_digests(&sent.digests, &a.digests, "dest");
        assert_eq!(
            (r.matched, r.mismatches),
            (recs.len() as u64, 0),
            "path {how}"
        );
    }

    // One flipped byte of the destination, inside a data record, then inside a discarded
    // range: re-reading the ranges finds exactly that record.
    let dest = t.path("dest");
    let ranges: Vec<(u64, u64)> = sent.digests.iter().map(|d| (d.offset, d.len)).collect();
    let f = fs::OpenOptions::new().write(true).open(&dest).unwrap();
    f.write_all_at(&[0x5a], 5 * MIB + 1234).unwrap();
    f.write_all_at(&[0x01], 9 * MIB).unwrap();
    f.sync_data().unwrap();
    let d = Destination::open_readonly(&dest).unwrap();
    let again = wire::read_digests(&d, &ranges, &Progress::new()).unwrap();
    let r = wire::compare_digests(&sent.digests, &again, "dest");
    assert_eq!((r.matched, r.mismatches), (recs.len() as u64 - 2, 2));
    assert_eq!(
        r.to_string(),
        format!(
            "verify FAILED: 2 of {} ranges of dest do not match the source: bytes 5242880..5857279 \
             (differs), bytes 8388608..10485759 (differs)",
            recs.len()
        )
    );
    let bad: Vec<(u64, u64, MismatchKind)> = r
        .examples
        .iter()
        .map(|m| (m.offset, m.len, m.kind))
        .collect();
    assert_eq!(
        bad,
        [
            (5 * MIB, 600 * KIB, MismatchKind::Differs),
            (8 * MIB, 2 * MIB, MismatchKind::Differs)
        ]
    );

    // A byte changed in transit (inside the 1 MiB record at 1 MiB). In a marked stream the
    // end-of-stream mark's digest no longer matches: refused from a file before anything is
    // written, and from a pipe at the end.
    let at = recs
        .iter()
        .take_while(|r| r.offset() != MIB)
        .map(|r| 12 + if let Rec::Data(_, d) = r { d.len() } else { 0 })
        .sum::<usize>()
        + 26
        + 12
        + 777;
    let mut bent = s.clone();
    bent[at + 36] ^= 0xff; // after BEGIN
    fs::write(&stream, &bent).unwrap();
    let dest = t.fresh_dest();
    let e = apply_file(&stream, &dest, &verify()).unwrap_err();
    assert!(
        e.to_string().contains(
            "is the end-of-stream mark, and the stream does not match it: the stream's digest is"
        ),
        "{e}"
    );
    assert!(fs::read(&dest).unwrap() == t.before, "nothing written");
    let e = apply_pipe(&bent, &dest, &verify()).unwrap_err();
    assert!(matches!(e.cause(), wire::Error::BadControl { .. }), "{e}");
    // In a plain stream nothing can tell, but the receiver's digests disagree for that
    // record only.
    let (plain, _) = send(
        &t.changes,
        &t.discards,
        &t.path("origin"),
        SendOptions {
            plain: true,
            ..ext_opts(1 << 20)
        },
    )
    .unwrap();
    let mut bent = plain.clone();
    bent[at] ^= 0xff;
    let dest = t.fresh_dest();
    let a = apply_pipe(&bent, &dest, &verify()).unwrap();
    assert!(!a.end_mark);
    let r = wire::compare_digests(&sent.digests, &a.digests, "dest");
    assert_eq!(r.mismatches, 1);
    assert_eq!(
        (r.examples[0].offset, r.examples[0].len, r.examples[0].kind),
        (MIB, MIB, MismatchKind::Differs)
    );
}

#[test]
fn read_back_digests_of_any_range_list() {
    // Ranges in any order: overlapping, repeated, scattered with small and large gaps (read
    // together or apart), longer than the read buffer, empty, ending at the last byte.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d");
    let data = pattern(12, (8 * MIB) as usize);
    fs::write(&p, &data).unwrap();
    let mut list: Vec<(u64, u64)> = vec![(8 * MIB - 100, 100), (0, 4096)];
    list.extend((0..300u64).map(|i| (8192 + i * 8192, 4096)));
    list.extend([
        (3 * MIB, 1),
        (3 * MIB + 64 * KIB + 1, 10),
        (3 * MIB + 200 * KIB, 2 * MIB + 3),
        (3 * MIB + 100, 0),
        (100, 5000),
        (100, 5000),
        (6 * MIB, MIB),
        (7 * MIB, MIB - 100),
        (8 * MIB - 100, 100),
    ]);
    let d = Destination::open_readonly(&p).unwrap();
    let got = wire::read_digests(&d, &list, &Progress::new()).unwrap();
    let want: Vec<Digest> = list
        .iter()
        .map(|&(o, l)| Digest::of(o, &data[o as usize..(o + l) as usize]))
        .collect();
    assert_eq!(got, want);
    assert!(wire::read_digests(&d, &[(8 * MIB - 1, 2)], &Progress::new()).is_err());
}

#[test]
fn discards_punch_holes_in_a_file() {
    let t = Sync::new();
    let (s, _) = t.send();
    let dest = t.fresh_dest();
    fs::File::open(&dest).unwrap().sync_all().unwrap();
    let full = allocated(&dest);
    assert!(full >= 16 * MIB, "destination allocated ({full})");
    let a = apply_file(
        &{
            let p = t.path("stream");
            fs::write(&p, &s).unwrap();
            p
        },
        &dest,
        &ApplyOptions::default(),
    )
    .unwrap();
    assert!(fs::read(&dest).unwrap() == t.origin);
    assert_eq!(
        (a.discard_records, a.discard_bytes),
        (3, 3 * MIB + 512 * KIB)
    );
    assert_eq!(a.discard_zeroed_bytes, 0, "a regular file punches holes");
    for r in t.discards.ranges() {
        assert!(is_hole(&dest, r.offset, r.len), "hole at {}", r.offset);
    }
    assert!(!is_hole(&dest, 0, 4096));
    assert!(
        allocated(&dest) <= full - (3 * MIB + 512 * KIB),
        "blocks freed: {} of {full} left",
        allocated(&dest)
    );
}

#[test]
fn snapback_with_discards_restores_the_old_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    let before = pattern(9, (4 * MIB) as usize);
    // Records in stream order, overlapping on purpose (a stream may: later ones win).
    let recs = vec![
        Rec::Data(0, pattern(20, 8192)),
        Rec::Discard(4096, 8192),
        Rec::Data(10 * 1024, pattern(21, 1024)),
        Rec::Discard(MIB, 2 * MIB),
        Rec::Data(2 * MIB, pattern(22, 4096)),
        Rec::Discard(4 * MIB - 1000, 1000),
    ];
    let want = model(&before, &recs);
    let s = encode_ext(&recs);
    let stream = dir.path().join("stream");
    fs::write(&stream, &s).unwrap();
    for (i, fallback) in [None, Some(64 * KIB), None, Some(MIB)]
        .into_iter()
        .enumerate()
    {
        fs::write(&dest, &before).unwrap();
        let sb = dir.path().join(format!("undo{i}"));
        let opts = ApplyOptions {
            undo: Some(sb.clone()),
            force_discard_fallback: fallback,
            verify: true,
            ..Default::default()
        };
        let a = if i < 2 {
            apply_file(&stream, &dest, &opts)
        } else {
            apply_pipe(&s, &dest, &opts)
        }
        .unwrap();
        assert!(fs::read(&dest).unwrap() == want, "run {i}");
        assert_eq!((a.records, a.discard_records), (3, 3));
        if fallback.is_some() {
            assert!(a.discard_zeroed_bytes > 0);
        }
        // Each old byte saved once: the union of the ranges.
        let undo = a.undo.unwrap();
        assert_eq!(undo.bytes, 12 * 1024 + 2 * MIB + 1000, "run {i}");
        // The snapback file has the extended handshake (old zeros would be discard
        // records); the old bytes here hold no zero block, so all its records are data.
        let (ext, urecs) = decode(&fs::read(&sb).unwrap());
        assert!(ext);
        assert!(urecs.iter().all(|r| matches!(r, Rec::Data(..))));
        // Verify read back what the model says.
        let expect: Vec<Digest> = recs
            .iter()
            .map(|r| {
                let (o, l) = (r.offset() as usize, (r.end() - r.offset()) as usize);
                Digest::of(o as u64, &want[o..o + l])
            })
            .collect();
        // Overlapped records were changed by later ones: only the final content is hashed.
        assert_eq!(a.digests, expect);
        // Restoring from the snapback file gives the old bytes back exactly.
        let r = apply_file(&sb, &dest, &ApplyOptions::default()).unwrap();
        assert!(r.journaled);
        assert!(fs::read(&dest).unwrap() == before, "run {i}: restored");
    }
}

#[test]
fn a_snapback_of_zeros_holds_discard_records_and_restores_them() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    // Zeros, but for 12 KiB of data at 1 MiB + 2 KiB (4 blocks) and 1 KiB at the end.
    let size = 4 * MIB as usize;
    let mut before = vec![0u8; size];
    before[(MIB + 2048) as usize..(MIB + 14336) as usize].copy_from_slice(&pattern(5, 12288));
    before[size - 1024..].copy_from_slice(&pattern(6, 1024));
    // The stream overwrites everything with data, and discards a range.
    let recs = vec![
        Rec::Data(0, pattern(30, size - 65536)),
        Rec::Discard(size as u64 - 65536, 65536),
    ];
    let after = model(&before, &recs);
    let stream = dir.path().join("stream");
    fs::write(&stream, encode_ext(&recs)).unwrap();
    fs::write(&dest, &before).unwrap();
    let sb = dir.path().join("sb");
    let opts = |undo: &Path| ApplyOptions {
        undo: Some(undo.to_path_buf()),
        ..Default::default()
    };
    let a = apply_file(&stream, &dest, &opts(&sb)).unwrap();
    let undo = a.undo.unwrap();
    let nonzero = 4 * 4096 + 4096;
    assert_eq!(
        (undo.bytes, undo.zero_bytes),
        (size as u64, size as u64 - nonzero)
    );
    let journal = fs::read(&sb).unwrap();
    // The old data and a few dozen headers: far below the destination's size.
    assert!(
        journal.len() < nonzero as usize + 4096 + 20 * 12,
        "{}",
        journal.len()
    );
    let (ext, urecs) = decode(&journal);
    assert!(ext);
    let zeros: u64 = urecs
        .iter()
        .map(|r| match r {
            Rec::Discard(_, l) => *l,
            Rec::Data(..) => 0,
        })
        .sum();
    assert_eq!(zeros, size as u64 - nonzero);
    // Restored from the file, from a pipe, and with a snapback of its own, which in turn
    // takes the destination back to what the stream made of it.
    for (i, pipe) in [false, true].into_iter().enumerate() {
        fs::write(&dest, &after).unwrap();
        let sb2 = dir.path().join(format!("sb2-{i}"));
        let r = if pipe {
            apply_pipe(&journal, &dest, &opts(&sb2))
        } else {
            apply_file(&sb, &dest, &opts(&sb2))
        }
        .unwrap();
        assert!(r.journaled && r.discards_in_stream, "{r:?}");
        assert!(r.discard_bytes >= size as u64 - nonzero - 65536, "{r:?}");
        assert!(
            fs::read(&dest).unwrap() == before,
            "restored (pipe: {pipe})"
        );
        let back = apply_file(&sb2, &dest, &ApplyOptions::default()).unwrap();
        assert!(back.journaled);
        assert!(fs::read(&dest).unwrap() == after, "undone (pipe: {pipe})");
    }
}

#[test]
fn discard_records_are_checked_against_the_destination() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    let before = pattern(4, 65536);
    fs::write(&dest, &before).unwrap();
    let f = dir.path().join("stream");
    let recs = vec![
        Rec::Data(0, pattern(1, 4096)),
        Rec::Discard(60 * 1024, 8192),
        Rec::Discard(1 << 40, 10),
        Rec::Data(8192, pattern(2, 100)),
    ];
    fs::write(&f, encode_ext(&recs)).unwrap();
    let e = apply_file(&f, &dest, &ApplyOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!("{}: record 1 (stream byte 4134) discards 8192 bytes at byte 61440, past the end of the destination (65536 bytes), and 1 more records do too; the destination is smaller than the volume the stream was made from (--allow-short-destination writes only what fits)", dest.display())
    );
    assert!(
        fs::read(&dest).unwrap() == before,
        "checked first: untouched"
    );

    // Allowed short: the straddling discard is cut, the one past the end skipped; verify
    // reads back the parts that were applied.
    let opts = ApplyOptions {
        allow_short_destination: true,
        verify: true,
        ..Default::default()
    };
    for from_file in [true, false] {
        fs::write(&dest, &before).unwrap();
        let a = if from_file {
            apply_file(&f, &dest, &opts)
        } else {
            apply_stream(&encode_ext(&recs), &dest, &opts)
        }
        .unwrap();
        let mut want = before.clone();
        want[..4096].copy_from_slice(&pattern(1, 4096));
        want[61440..].fill(0);
        want[8192..8292].copy_from_slice(&pattern(2, 100));
        assert!(fs::read(&dest).unwrap() == want);
        assert_eq!(
            (
                a.discard_records,
                a.discard_bytes,
                a.skipped_records,
                a.skipped_bytes
            ),
            (2, 4096, 2, 4096 + 10)
        );
        let lens: Vec<(u64, u64)> = a.digests.iter().map(|d| (d.offset, d.len)).collect();
        assert_eq!(lens, [(0, 4096), (61440, 4096), (1 << 40, 0), (8192, 100)]);
        assert_eq!(a.digests[1], Digest::of(61440, &[0u8; 4096]));
    }

    // A zero-length discard record is refused before anything is written (file), or where it
    // is met (stream).
    let bad = {
        let mut v = encode_ext(&recs[..1]);
        v.extend_from_slice(&4096u64.to_be_bytes());
        v.extend_from_slice(&0x8000_0000u32.to_be_bytes());
        v
    };
    fs::write(&dest, &before).unwrap();
    fs::write(&f, &bad).unwrap();
    let e = apply_file(&f, &dest, &ApplyOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!("{}: record 1 (stream byte 4134) is a discard record of length 0, which is invalid: the stream is corrupt", f.display())
    );
    assert!(fs::read(&dest).unwrap() == before);
    let e = apply_stream(&bad, &dest, &ApplyOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("-: record 1 (stream byte 4134) is a discard record of length 0"),
        "{e}"
    );
}

#[test]
fn an_extended_stream_is_never_a_journaled_snapback() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    fs::write(&dest, vec![1u8; 65536]).unwrap();
    // (0, 0) first would mark a journaled snapback file in a plain stream; here it is a no-op
    // and every record after it is applied (a journaled reading would stop at the second
    // zero-length record, out of commit sequence).
    let recs = vec![
        Rec::Data(0, vec![]),
        Rec::Data(100, pattern(3, 10)),
        Rec::Data(7, vec![]),
        Rec::Discard(4096, 4096),
    ];
    let f = dir.path().join("s");
    fs::write(&f, encode_ext(&recs)).unwrap();
    let a = apply_file(&f, &dest, &ApplyOptions::default()).unwrap();
    assert!(!a.journaled);
    assert_eq!((a.records, a.discard_records, a.ignored_records), (1, 1, 0));
    assert!(fs::read(&dest).unwrap() == model(&[1u8; 65536], &recs));
}

/// Runs `f` with a loop device over a new file of `size` bytes holding `content`. Loop devices
/// need root (bin/test runs as root): without one the test fails rather than pass unrun.
fn with_loop_device(size: u64, content: &[u8], f: impl FnOnce(&Path, &Path)) {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let backing = dir.path().join("backing");
    let file = fs::File::create(&backing).unwrap();
    file.set_len(size).unwrap();
    file.write_all_at(content, 0).unwrap();
    file.sync_all().unwrap();
    let out = std::process::Command::new("losetup")
        .args(["--find", "--show"])
        .arg(&backing)
        .output();
    let dev = match out {
        Ok(o) if o.status.success() => String::from_utf8(o.stdout).unwrap().trim().to_string(),
        other => panic!("cannot set up a loop device (these tests need root): losetup: {other:?}"),
    };
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = std::process::Command::new("losetup")
                .args(["-d", &self.0])
                .status();
        }
    }
    let _guard = Detach(dev.clone());
    f(Path::new(&dev), &backing);
}

fn read_device(dev: &Path) -> Vec<u8> {
    let d = Destination::open_readonly(dev).unwrap();
    d.drop_cache();
    let mut v = vec![0u8; d.size() as usize];
    d.read_exact_at(&mut v, 0).unwrap();
    v
}

#[test]
fn discards_on_a_block_device_read_back_as_zeros() {
    let size = 8 * MIB;
    let before = pattern(6, size as usize);
    // An aligned range (zeroed with unmap by the device), and one not aligned to the
    // device's 512-byte sectors (its edges read back and zeroed).
    let recs = vec![
        Rec::Discard(MIB, MIB),
        Rec::Discard(3 * MIB + 100, 4900),
        Rec::Data(5 * MIB, pattern(8, 4096)),
    ];
    let want = model(&before, &recs);
    let s = encode_ext(&recs);
    for fallback in [None, Some(512u64)] {
        with_loop_device(size, &before, |dev, backing| {
            let opts = ApplyOptions {
                force_discard_fallback: fallback,
                verify: true,
                ..Default::default()
            };
            let a = apply_stream(&s, dev, &opts).unwrap();
            assert!(read_device(dev) == want, "fallback {fallback:?}");
            assert_eq!((a.discard_records, a.discard_bytes), (2, MIB + 4900));
            // Zeroing with unmap: only the sub-sector edges of the unaligned range were
            // written as zeros, [3 MiB + 100, 3 MiB + 512) and [3 MiB + 4608, 3 MiB + 5000).
            // BLKDISCARD (the fallback) is best effort: the loop driver's discard granularity
            // is its backing filesystem's 4 KiB block, so the unaligned range may be left as
            // it was and then read back and zeroed; the aligned MiB is unmapped either way.
            match fallback {
                None => assert_eq!(a.discard_zeroed_bytes, 412 + 392),
                Some(_) => assert!(
                    (412 + 392..=4900).contains(&a.discard_zeroed_bytes),
                    "{}",
                    a.discard_zeroed_bytes
                ),
            }
            assert_eq!(
                a.digests,
                expected_digests(&[
                    Rec::Discard(MIB, MIB),
                    Rec::Discard(3 * MIB + 100, 4900),
                    Rec::Data(5 * MIB, pattern(8, 4096)),
                ])
            );
            // The loop driver turned the unmap into a hole in its backing file.
            assert!(is_hole(backing, MIB, MIB), "fallback {fallback:?}");
        });
    }
}

/// The change set of data ranges `data` and discard ranges `discards`.
fn pair(data: &Changes, discards: &Changes) -> ChangeSet {
    ChangeSet {
        data: data.clone(),
        discards: discards.clone(),
    }
}

#[test]
fn a_discard_reads_back_the_device_it_opened_not_what_its_path_names_later() {
    // The destination is named by a link to loop device A; after it is opened, the link is
    // pointed at B (all zeros). The unaligned edges of a discard are read back and zeroed
    // where they are not zeros: on A, whatever the link says by then.
    let size = 4 * MIB;
    let before = pattern(9, size as usize);
    with_loop_device(size, &before, |a, _| {
        with_loop_device(size, &vec![0u8; size as usize], |b, _| {
            let dir = tempfile::tempdir().unwrap();
            let link = dir.path().join("dest");
            std::os::unix::fs::symlink(a, &link).unwrap();
            let d = Destination::open(&link).unwrap();
            fs::remove_file(&link).unwrap();
            std::os::unix::fs::symlink(b, &link).unwrap();
            let (off, len) = (MIB + 100, 4900u64);
            let o = d.discard(off, len).unwrap();
            d.sync().unwrap();
            drop(d);
            let got = read_device(a);
            assert!(got[off as usize..(off + len) as usize]
                .iter()
                .all(|&x| x == 0));
            assert!(got[..off as usize] == before[..off as usize]);
            assert!(got[(off + len) as usize..] == before[(off + len) as usize..]);
            // The sub-sector edges were found holding data, and written as zeros.
            assert_eq!(o.zeroed, 412 + 392);
            assert!(read_device(b).iter().all(|&x| x == 0));
        });
    });
}
