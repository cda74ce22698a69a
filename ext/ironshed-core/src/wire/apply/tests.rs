//! The receiver's refusals, one test each: the error variant with its fields, the message,
//! and the destination (and any snapback file) exactly as it was before; and what it says
//! when it stops after its first write, how it reads a named pipe, and what `verify` checks.
//! Streams are built with the codec's own header encoder, which proto3's tests check against
//! independent bytes.

use super::*;
use crate::error::{Kind, Report};
use crate::io::{FileError, Written};
use crate::wire::proto3::{HANDSHAKE, HANDSHAKE_DISCARDS};
use std::fs;
use std::io::Cursor;
use std::os::unix::fs::MetadataExt;

const DEST_SIZE: usize = 65536;

/// A record: data, or (with `None`) a discard of `len` bytes.
type Rec<'a> = (u64, u32, Option<&'a [u8]>);

fn stream(handshake: &[u8], recs: &[Rec]) -> Vec<u8> {
    let mut s = handshake.to_vec();
    for &(offset, len, data) in recs {
        let h = RecordHeader { offset, len };
        match data {
            Some(d) => {
                s.extend_from_slice(&h.encode());
                s.extend_from_slice(d);
            }
            None => s.extend_from_slice(&h.encode_discard()),
        }
    }
    s
}

fn plain(recs: &[Rec]) -> Vec<u8> {
    stream(HANDSHAKE, recs)
}

/// A destination of 64 KiB of 'O' and a place for inputs and snapback files.
struct Bench {
    dir: tempfile::TempDir,
    dest: PathBuf,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dest");
        fs::write(&dest, vec![b'O'; DEST_SIZE]).unwrap();
        Bench { dir, dest }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    /// `s` as a regular file (checked whole before the first write).
    fn file(&self, s: &[u8]) -> Input {
        let p = self.path("stream");
        fs::write(&p, s).unwrap();
        Input::File(p)
    }
    fn pipe(&self, s: &[u8]) -> Input {
        Input::Stream(Box::new(Cursor::new(s.to_vec())), "-".into())
    }
    fn apply(&self, input: Input, opts: &ApplyOptions) -> Result<ApplyStats> {
        apply(input, &self.dest, opts, &Progress::new())
    }
    #[track_caller]
    fn untouched(&self) {
        assert!(
            fs::read(&self.dest).unwrap() == vec![b'O'; DEST_SIZE],
            "the destination was written"
        );
    }
    fn name(&self) -> String {
        self.path("stream").display().to_string()
    }
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

/// Eighty good 16 KiB records, more than one batch ([`BATCH`]): a receiver that did not check
/// the whole file first would have written the first four before meeting a fault after them.
const FILLER: usize = 80;
/// Stream bytes of the filler records.
const FILLER_BYTES: u64 = FILLER as u64 * (12 + 16384);
const _: () = assert!(FILLER * 16384 > BATCH);
const FILLER_U64: u64 = FILLER as u64;
/// 16 KiB records that fill one batch.
const PER_BATCH: u64 = (BATCH / 16384) as u64;

fn filler(d: &[u8]) -> Vec<Rec<'_>> {
    (0..FILLER as u64)
        .map(|i| (i * 16384 % DEST_SIZE as u64, 16384, Some(d)))
        .collect()
}

#[test]
fn empty_input() {
    let b = Bench::new();
    let sb = b.path("undo");
    let opts = ApplyOptions {
        undo: Some(sb.clone()),
        ..Default::default()
    };
    let e = b.apply(b.file(b""), &opts).unwrap_err();
    assert!(
        matches!(&e, Error::Empty { name } if *name == b.name()),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "{}: the stream is empty: no handshake (did the sender fail before sending anything?)",
            b.name()
        )
    );
    let e = b.apply(b.pipe(b""), &opts).unwrap_err();
    assert!(matches!(&e, Error::Empty { name } if name == "-"), "{e:?}");
    b.untouched();
    assert!(!sb.exists(), "no snapback file for a refused stream");
}

#[test]
fn wrong_handshake() {
    let b = Bench::new();
    let s = stream(b"lvmsync PROTO[2]\n", &[(0, 4, Some(b"abcd"))]);
    for input in [b.file(&s), b.pipe(&s)] {
        let e = b.apply(input, &ApplyOptions::default()).unwrap_err();
        assert!(
            matches!(&e, Error::Handshake { saw, .. } if saw == "lvmsync PROTO[2]"),
            "{e:?}"
        );
        assert!(e.to_string().ends_with(": handshake failed: saw 'lvmsync PROTO[2]', expected 'lvmsync PROTO[3]' (protocol mismatch, or not an lvmsync stream)"), "{e}");
    }
    b.untouched();
}

#[test]
fn file_cut_inside_a_header_writes_nothing() {
    let b = Bench::new();
    let d = data(16384, 1);
    let mut recs = filler(&d);
    recs.push((8192, 4096, Some(&d[..4096])));
    let s = plain(&recs);
    let at = 17 + FILLER_BYTES;
    let e = b
        .apply(b.file(&s[..at as usize + 5]), &ApplyOptions::default())
        .unwrap_err();
    assert!(
        matches!(
            &e,
            Error::TruncatedHeader { name, index: FILLER_U64, at: a, got: 5 } if *name == b.name() && *a == at
        ),
        "{e:?}"
    );
    assert_eq!(e.to_string(), format!("{}: stream ends inside the header of record {FILLER} at stream byte {at} (5 of 12 bytes): the sender stopped or the file is truncated", b.name()));
    b.untouched();
}

#[test]
fn file_cut_inside_data_writes_nothing() {
    let b = Bench::new();
    let d = data(16384, 1);
    let mut recs = filler(&d);
    recs.push((8192, 4096, Some(&d[..4096])));
    let s = plain(&recs);
    let e = b
        .apply(b.file(&s[..s.len() - 1]), &ApplyOptions::default())
        .unwrap_err();
    let at = 17 + FILLER_BYTES;
    assert!(
        matches!(
            &e,
            Error::TruncatedData { index: FILLER_U64, at: a, offset: 8192, len: 4096, got: 4095, .. } if *a == at
        ),
        "{e:?}"
    );
    b.untouched();
}

#[test]
fn pipe_cut_short_says_what_was_written() {
    let b = Bench::new();
    // PER_BATCH 16 KiB records fill a batch; the next is cut.
    let d = data(16384, 2);
    let recs: Vec<Rec> = (0..=PER_BATCH)
        .map(|i| (i * 16384 % 65536, 16384, Some(&d[..])))
        .collect();
    let s = plain(&recs);
    let e = b
        .apply(b.pipe(&s[..s.len() - 100]), &ApplyOptions::default())
        .unwrap_err();
    match &e {
        Error::Stopped {
            cause,
            records: PER_BATCH,
            bytes,
            discards: 0,
        } if *bytes == BATCH as u64 => assert!(
            matches!(
                **cause,
                Error::TruncatedData {
                    index: PER_BATCH,
                    got: 16284,
                    ..
                }
            ),
            "{cause:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(e.cause(), Error::TruncatedData { .. }));
    assert!(e.to_string().ends_with(&format!(
        "; by then {PER_BATCH} records were complete and {BATCH} bytes had been written"
    )));
    // A short pipe stream whose first batch was never written reports the bare cause.
    let b = Bench::new();
    let e = b
        .apply(b.pipe(&s[..17 + 12 + 100]), &ApplyOptions::default())
        .unwrap_err();
    assert!(matches!(e, Error::TruncatedData { index: 0, .. }), "{e:?}");
    b.untouched();
}

#[test]
fn record_past_the_end_of_the_destination() {
    let b = Bench::new();
    let d = data(16384, 3);
    let mut recs = filler(&d);
    recs.extend([
        (65536 - 512, 4096, Some(&d[..4096])),
        (1 << 40, 10, Some(&d[..10])),
    ]);
    // A file is checked whole: the first offending record, and how many more there are.
    let e = b
        .apply(b.file(&plain(&recs)), &ApplyOptions::default())
        .unwrap_err();
    let at = 17 + FILLER_BYTES;
    match &e {
        Error::PastEnd {
            dest,
            index: FILLER_U64,
            at: a,
            offset: 65024,
            len: 4096,
            discard: false,
            size: 65536,
            others: 1,
        } => assert_eq!((dest, *a), (&b.dest, at)),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.to_string(), format!("{}: record {FILLER} (stream byte {at}) writes 4096 bytes at byte 65024, past the end of the destination (65536 bytes), and 1 more records do too; the destination is smaller than the volume the stream was made from (--allow-short-destination writes only what fits)", b.dest.display()));
    b.untouched();
    // A pipe stops at it; a record before it in the same batch is not written either.
    let s = plain(&[
        (0, 4096, Some(&d[..4096])),
        (65536 - 512, 4096, Some(&d[..4096])),
    ]);
    let e = b.apply(b.pipe(&s), &ApplyOptions::default()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::PastEnd {
                index: 1,
                at: 4125,
                others: 0,
                ..
            }
        ),
        "{e:?}"
    );
    b.untouched();
}

#[test]
fn record_whose_end_overflows() {
    let b = Bench::new();
    let off = (1u64 << 63) - 10;
    let s = plain(&[(off, 100, Some(&data(100, 4)))]);
    let e = b.apply(b.file(&s), &ApplyOptions::default()).unwrap_err();
    assert!(
        matches!(e, Error::PastEnd { index: 0, offset, len: 100, .. } if offset == off),
        "{e:?}"
    );
    b.untouched();
}

#[test]
fn record_at_an_offset_no_device_has() {
    // 2^63 and above: no record, and no control item this lvmsync knows.
    let b = Bench::new();
    let s = plain(&[
        (0, 2, Some(b"ab")),
        (u64::MAX - 10, 100, Some(&data(100, 4))),
    ]);
    for input in [b.file(&s), b.pipe(&s)] {
        let e = b.apply(input, &ApplyOptions::default()).unwrap_err();
        assert!(
            matches!(e.cause(), Error::BadControl { index: 1, at: 31, what, .. } if what.starts_with("has offset 0xfffffffffffffff5 (2^63 or more), which no device has, and is no control item this lvmsync knows ('\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xf5')")),
            "{e:?}"
        );
    }
}

#[test]
fn discard_past_the_end_of_the_destination() {
    let b = Bench::new();
    let d = data(16384, 4);
    let mut recs = filler(&d);
    recs.push((65536 - 4096, 8192, None));
    let s = stream(HANDSHAKE_DISCARDS, &recs);
    let at = 26 + FILLER_BYTES;
    let e = b.apply(b.file(&s), &ApplyOptions::default()).unwrap_err();
    assert!(
        matches!(e, Error::PastEnd { index: FILLER_U64, at: a, offset: 61440, len: 8192, discard: true, .. } if a == at),
        "{e:?}"
    );
    assert!(e.to_string().contains(&format!("record {FILLER} (stream byte {at}) discards 8192 bytes at byte 61440, past the end of the destination")), "{e}");
    b.untouched();
}

#[test]
fn short_destination_clips_when_allowed() {
    let b = Bench::new();
    let d = data(2000, 5);
    let s = stream(
        HANDSHAKE_DISCARDS,
        &[
            (65000, 2000, Some(&d)),
            (100, 50, Some(&d[..50])),
            (60000, 8000, None),
        ],
    );
    let opts = ApplyOptions {
        allow_short_destination: true,
        ..Default::default()
    };
    let st = b.apply(b.file(&s), &opts).unwrap();
    assert_eq!(
        (st.records, st.bytes, st.discard_records, st.discard_bytes),
        (2, 536 + 50, 1, 5536)
    );
    assert_eq!((st.skipped_records, st.skipped_bytes), (2, 1464 + 2464));
    let got = fs::read(&b.dest).unwrap();
    assert_eq!(got.len(), DEST_SIZE, "never extended");
    assert_eq!(&got[100..150], &d[..50]);
    assert!(got[60000..].iter().all(|&x| x == 0), "the discard wins");
}

#[test]
fn zero_length_discard() {
    let b = Bench::new();
    let d = data(16384, 5);
    let mut recs = filler(&d);
    recs.push((4096, 0, None));
    let s = stream(HANDSHAKE_DISCARDS, &recs);
    let at = 26 + FILLER_BYTES;
    // From a file, before anything is written.
    let e = b.apply(b.file(&s), &ApplyOptions::default()).unwrap_err();
    assert!(
        matches!(e, Error::ZeroDiscard { index: FILLER_U64, at: a, .. } if a == at),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!("{}: record {FILLER} (stream byte {at}) is a discard record of length 0, which is invalid: the stream is corrupt", b.name())
    );
    b.untouched();
    // From a pipe, when it arrives, saying what was written before.
    let e = b.apply(b.pipe(&s), &ApplyOptions::default()).unwrap_err();
    match e {
        Error::Stopped {
            cause,
            records: PER_BATCH,
            bytes,
            discards: 0,
        } if bytes == BATCH as u64 => assert!(
            matches!(
                *cause,
                Error::ZeroDiscard {
                    index: FILLER_U64,
                    ..
                }
            ),
            "{cause:?}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn zero_length_data_records_are_no_ops() {
    let b = Bench::new();
    let s = plain(&[
        (9, 0, Some(b"")),
        (1 << 50, 0, Some(b"")),
        (1, 2, Some(b"xy")),
    ]);
    let st = b.apply(b.file(&s), &ApplyOptions::default()).unwrap();
    assert_eq!((st.records, st.bytes), (1, 2));
    assert_eq!(&fs::read(&b.dest).unwrap()[..4], b"OxyO");
}

#[test]
fn snapback_file_that_is_the_destination_or_the_input() {
    let b = Bench::new();
    let s = plain(&[(0, 2, Some(b"ab"))]);
    let link = b.path("link");
    std::os::unix::fs::symlink(&b.dest, &link).unwrap();
    let hard = b.path("hard");
    fs::hard_link(&b.dest, &hard).unwrap();
    for sb in [&link, &hard, &b.dest] {
        let opts = ApplyOptions {
            undo: Some(sb.clone()),
            ..Default::default()
        };
        let e = b.apply(b.file(&s), &opts).unwrap_err();
        assert!(
            matches!(&e, Error::File(FileError::SameFile { path, written: Written::UndoFile, other, .. })
                if path == sb && *other == b.dest),
            "{e:?}"
        );
        assert_eq!(e.kind(), Kind::Undo);
        assert_eq!(
            e.to_string(),
            format!(
                "{}: the undo file is the same file as {} (the destination); refusing to write to it",
                sb.display(),
                b.dest.display()
            )
        );
    }
    let input = b.file(&s);
    let opts = ApplyOptions {
        undo: Some(b.path("stream")),
        ..Default::default()
    };
    let e = b.apply(input, &opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{0}: the undo file is the same file as {0} (the input stream); refusing to write to it",
            b.path("stream").display()
        )
    );
    assert_eq!(
        fs::read(b.path("stream")).unwrap(),
        s,
        "the input is untouched"
    );
    b.untouched();
}

#[test]
fn snapback_file_that_holds_data() {
    let b = Bench::new();
    let sb = b.path("undo");
    fs::write(&sb, b"an earlier snapback").unwrap();
    let opts = ApplyOptions {
        undo: Some(sb.clone()),
        ..Default::default()
    };
    let s = plain(&[(0, 2, Some(b"ab"))]);
    for input in [b.file(&s), b.pipe(&s)] {
        let e = b.apply(input, &opts).unwrap_err();
        assert!(
            matches!(&e, Error::UndoExists { path, size: 19, .. } if *path == sb),
            "{e:?}"
        );
        assert_eq!(e.to_string(), format!("{}: snapback file exists and is not empty (19 bytes), and it is no lvmsync stream (its first line is not 'lvmsync PROTO[3]'); refusing to overwrite an earlier snapback: choose a new file name", sb.display()));
    }
    assert_eq!(fs::read(&sb).unwrap(), b"an earlier snapback");
    b.untouched();
    // An empty file (made ready by the user) is taken.
    fs::write(&sb, b"").unwrap();
    b.apply(b.pipe(&s), &opts).unwrap();
    assert!(fs::metadata(&sb).unwrap().len() > 0);
}

#[test]
fn snapback_path_that_is_no_regular_file() {
    let b = Bench::new();
    let sb = b.path("adir");
    fs::create_dir(&sb).unwrap();
    let opts = ApplyOptions {
        undo: Some(sb.clone()),
        ..Default::default()
    };
    let e = b
        .apply(b.pipe(&plain(&[(0, 2, Some(b"ab"))])), &opts)
        .unwrap_err();
    assert!(
        matches!(&e, Error::Io(_))
            && e.to_string()
                == format!(
                    "{}: create the snapback file: exists and is not a regular file",
                    sb.display()
                ),
        "{e:?}"
    );
    b.untouched();
}

#[test]
fn missing_destination_is_never_created() {
    let b = Bench::new();
    let dest = b.path("nope");
    let e = apply(
        b.pipe(&plain(&[(0, 2, Some(b"ab"))])),
        &dest,
        &ApplyOptions::default(),
        &Progress::new(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Destination(_)), "{e:?}");
    assert!(!dest.exists());
}

#[test]
fn journaled_pipe_batch_larger_than_the_hold_limit() {
    let b = Bench::new();
    let big = b.path("big");
    let f = fs::File::create(&big).unwrap();
    f.set_len(2 * JOURNAL_HOLD_MAX as u64).unwrap();
    // A journal whose first batch never commits.
    let d = vec![7u8; 1 << 20];
    let n = (JOURNAL_HOLD_MAX >> 20) as u64 + 1;
    let recs: Vec<Rec> = (0..n).map(|i| (i << 20, 1 << 20, Some(&d[..]))).collect();
    let journal = crate::wire::Control::Journal(b"ironshed undo journal 1\n".to_vec()).encode();
    let mut s = HANDSHAKE.to_vec();
    s.extend_from_slice(&journal);
    s.extend_from_slice(&plain(&recs)[HANDSHAKE.len()..]);
    let input = Input::Stream(Box::new(Cursor::new(s)), "-".into());
    let e = apply(input, &big, &ApplyOptions::default(), &Progress::new()).unwrap_err();
    let at = 17 + journal.len() as u64 + (n - 1) * (12 + (1 << 20));
    assert!(
        matches!(&e, Error::JournalBatch { name, at: a, limit, .. } if name == "-" && *a == at && *limit == JOURNAL_HOLD_MAX as u64),
        "{e:?}"
    );
    assert_eq!(
        f.metadata().unwrap().blocks(),
        0,
        "nothing of an uncommitted batch is written"
    );
}

#[test]
fn cancelled_apply_is_interrupted_not_stopped() {
    let b = Bench::new();
    let d = data(16384, 6);
    let recs: Vec<Rec> = (0..8)
        .map(|i| (i * 16384 % 65536, 16384, Some(&d[..])))
        .collect();
    let p = Progress::new();
    p.cancel();
    let e = apply(b.pipe(&plain(&recs)), &b.dest, &ApplyOptions::default(), &p).unwrap_err();
    assert!(matches!(e, Error::Cancelled(_)), "{e:?}");
    assert!(crate::error::Report::is_cancelled(&e));
}

#[test]
fn the_destination_may_not_be_the_input() {
    // A file that rewrites itself: its record lands inside its own bytes, where a later
    // read would have taken the written data for records never checked.
    let b = Bench::new();
    let mut s = plain(&[(17, 12, Some(b"\0\0\0\0\0\0\0\0\0\0\0\x04"))]);
    s.resize(4096, b'x');
    let input = b.path("self");
    fs::write(&input, &s).unwrap();
    fs::hard_link(&input, b.path("hard")).unwrap();
    std::os::unix::fs::symlink(&input, b.path("soft")).unwrap();
    for dest in [input.clone(), b.path("hard"), b.path("soft")] {
        let p = Progress::new();
        let e = apply(
            Input::File(input.clone()),
            &dest,
            &ApplyOptions::default(),
            &p,
        )
        .unwrap_err();
        assert_eq!(e.kind(), Kind::Destination);
        assert_eq!(
            e.message(),
            format!(
                "{}: the destination is the same file as {} (the input stream); refusing to write to it",
                dest.display(),
                input.display()
            )
        );
        assert!(!p.written());
        // Standard input redirected from the file: the descriptor is compared.
        let fd = fs::File::open(&input).unwrap();
        let e = apply(
            Input::Fd(fd, "standard input".into()),
            &dest,
            &ApplyOptions::default(),
            &p,
        )
        .unwrap_err();
        assert!(
            e.message().ends_with(
                "is the same file as standard input (the input stream); refusing to write to it"
            ),
            "{}",
            e.message()
        );
    }
    assert_eq!(fs::read(&input).unwrap(), s, "the input is untouched");
}

fn mkfifo(p: &Path) {
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

#[test]
fn a_named_pipe_is_read_as_a_stream() {
    let b = Bench::new();
    let fifo = b.path("fifo");
    mkfifo(&fifo);
    let d = data(100_000, 3);
    let s = plain(&[
        (0, 40_000, Some(&d[..40_000])),
        (50_000, 10_000, Some(&d[..10_000])),
    ]);
    let (w, s2) = (fifo.clone(), s.clone());
    // The writer comes later: the receiver waits for it without blocking in the open.
    let writer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        fs::write(&w, &s2).unwrap();
    });
    let st = b
        .apply(Input::File(fifo.clone()), &ApplyOptions::default())
        .unwrap();
    writer.join().unwrap();
    assert_eq!((st.records, st.bytes, st.checked_first), (2, 50_000, false));
    let after = fs::read(&b.dest).unwrap();
    assert!(after[..40_000] == d[..40_000] && after[50_000..60_000] == d[..10_000]);
}

#[test]
fn waiting_for_a_named_pipe_that_never_gets_a_writer_can_be_cancelled() {
    let b = Bench::new();
    let fifo = b.path("fifo");
    mkfifo(&fifo);
    let p = std::sync::Arc::new(Progress::new());
    let (p2, dest) = (p.clone(), b.dest.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(apply(
            Input::File(fifo),
            &dest,
            &ApplyOptions::default(),
            &p2,
        ));
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    p.cancel();
    let r = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the wait for a writer did not see the cancel flag");
    let e = r.unwrap_err();
    assert!(e.is_cancelled(), "{e:?}");
    assert!(!p.written());
    b.untouched();
}

#[test]
fn a_stream_cut_inside_its_first_record_says_what_was_written() {
    // The first record is written in batches as it arrives; cut before it is complete, the
    // destination is partly written although no record is.
    let b = Bench::new();
    let dest = b.path("big");
    fs::write(&dest, vec![b'O'; 4 * BATCH]).unwrap();
    let d = data(3 * BATCH, 9);
    let s = plain(&[(0, d.len() as u32, Some(&d))]);
    let cut = &s[..s.len() - 100];
    let p = Progress::new();
    let e = apply(b.pipe(cut), &dest, &ApplyOptions::default(), &p).unwrap_err();
    match &e {
        Error::Stopped { records, bytes, .. } => {
            assert_eq!(*records, 0);
            assert!(*bytes >= BATCH as u64, "{bytes}");
        }
        other => panic!("expected Stopped, got {other:?}"),
    }
    assert!(p.written());
    assert!(e
        .message()
        .contains("; by then 0 records were complete and"));
}

#[test]
fn verify_compares_what_is_read_back_with_what_arrived() {
    let b = Bench::new();
    let d = data(65536, 5);
    // The third record overwrites part of the first: the first is not compared.
    let s = plain(&[
        (0, 8192, Some(&d[..8192])),
        (16384, 4096, Some(&d[..4096])),
        (4096, 2048, Some(&d[100..2148])),
        (0, 0, Some(b"")),
    ]);
    let opts = ApplyOptions {
        verify: true,
        ..Default::default()
    };
    for input in [b.file(&s), b.pipe(&s)] {
        let st = b.apply(input, &opts).unwrap();
        let v = st.verified.unwrap();
        assert_eq!((v.matched, v.mismatches, v.superseded), (2, 0, 1));
        assert_eq!(st.digests.len(), 3);
        assert_eq!(
            v.to_string(),
            format!(
                "verify: all 2 records read back from {} match the stream (XXH3) (1 records \
                 overwritten by later ones not compared)",
                b.dest.display()
            )
        );
    }
    // Discard records are expected to read back as zeros.
    let s = stream(
        HANDSHAKE_DISCARDS,
        &[(8192, 8192, None), (0, 100, Some(&d[..100]))],
    );
    let st = b.apply(b.file(&s), &opts).unwrap();
    let v = st.verified.unwrap();
    assert_eq!((v.matched, v.mismatches), (2, 0));
}

#[test]
fn a_read_back_that_differs_from_what_arrived_is_a_mismatch() {
    let arrived = [
        Digest::of(0, b"abcd"),
        Digest::of(4, b"efgh"),
        Digest::of(0, b"ab"),
    ];
    // Read back: the first is overwritten by the third (not compared), the second differs.
    let read = [
        Digest::of(0, b"abcd"),
        Digest::of(4, b"efgX"),
        Digest::of(0, b"ab"),
    ];
    let r = check_read_back(&arrived, &read, "/dev/x");
    assert_eq!((r.matched, r.mismatches, r.superseded), (1, 1, 1));
    assert_eq!((r.examples[0].offset, r.examples[0].len), (4, 4));
    assert_eq!(
        r.to_string(),
        "verify FAILED: 1 of 2 records read back from /dev/x differ from what the stream carried \
         (1 records overwritten by later ones not compared): bytes 4..7 (differs)"
    );
}

#[test]
fn which_ranges_a_later_one_overwrites() {
    let d = |offset, len| Digest {
        offset,
        len,
        hash: 0,
    };
    let ranges = [
        d(0, 10),   // touched by (5, 1)
        d(20, 10),  // touched by (25, 100)
        d(10, 10),  // adjacent to others only: kept
        d(5, 1),    // later: (0, 6)
        d(200, 5),  // nothing later
        d(25, 100), // nothing later
        d(0, 6),    // last
        d(7, 0),    // empty
    ];
    assert_eq!(
        overwritten_later(&ranges),
        vec![true, true, false, true, false, false, false, false]
    );
}

/// Applies the snapback file `undo` to `dest` (from the file, checked whole first).
fn restore(undo: &Path, dest: &Path) {
    apply(
        Input::File(undo.to_path_buf()),
        dest,
        &ApplyOptions::default(),
        &Progress::new(),
    )
    .unwrap();
}

/// The stream's records applied one after the other, in memory: what the destination must
/// hold afterwards.
fn model(start: &[u8], recs: &[Rec]) -> Vec<u8> {
    let mut m = start.to_vec();
    for &(off, len, d) in recs {
        let r = off as usize..off as usize + len as usize;
        match d {
            Some(d) => m[r].copy_from_slice(d),
            None => m[r].fill(0),
        }
    }
    m
}

#[test]
fn batches_written_while_the_next_is_gathered_keep_the_stream_order() {
    // Records that overwrite what earlier ones wrote, several batches back and in the batch
    // being written, data and discards, from a pipe and from a file, with and without a
    // snapback file: the destination ends as the records applied one by one would leave it,
    // and the snapback file restores what it held.
    let b = Bench::new();
    let size = 6 * BATCH;
    let start = data(size, 77);
    let dest = b.path("big");
    let blocks: Vec<Vec<u8>> = (0..7).map(|i| data(48 << 10, i)).collect();
    let mut recs: Vec<Rec> = Vec::new();
    let mut x: u64 = 12345;
    for i in 0..400u64 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = 512 * (1 + (x >> 33) % 96);
        let off = 512 * ((x >> 13) % ((size as u64 - len) / 512));
        let d = (i % 9 != 4).then(|| &blocks[(i % 7) as usize][..len as usize]);
        recs.push((off, len as u32, d));
    }
    let want = model(&start, &recs);
    let s = stream(HANDSHAKE_DISCARDS, &recs);
    for (n, snapback) in [(0, false), (1, true), (2, false), (3, true)] {
        fs::write(&dest, &start).unwrap();
        let undo = b.path(&format!("undo{n}"));
        let opts = ApplyOptions {
            undo: snapback.then(|| undo.clone()),
            verify: true,
            ..Default::default()
        };
        let input = if n < 2 { b.pipe(&s) } else { b.file(&s) };
        let st = apply(input, &dest, &opts, &Progress::new()).unwrap();
        assert_eq!(st.records + st.discard_records, recs.len() as u64);
        assert!(st.verified.as_ref().unwrap().ok());
        assert!(
            fs::read(&dest).unwrap() == want,
            "run {n}: not the stream's result"
        );
        if snapback {
            restore(&undo, &dest);
            assert!(fs::read(&dest).unwrap() == start, "run {n}: not restored");
        }
    }
}

#[test]
fn a_local_sender_that_stops_between_records_fails_the_apply_even_for_a_plain_stream() {
    // A plain stream has no end mark: from a pipe, its end between two records looks whole.
    // From the in-process link of a local sync, a sender that stops without finishing makes
    // the receiver fail after the last bytes it got, so a snapback journal is never marked
    // complete for a round that did not arrive whole (its rerun resumes it and finishes).
    let b = Bench::new();
    let size = 12 * BATCH;
    let dest = b.path("big");
    fs::write(&dest, vec![b'O'; size]).unwrap();
    let d = data(BATCH, 3);
    let recs: Vec<Rec> = (0..12)
        .map(|i| (i * BATCH as u64, BATCH as u32, Some(&d[..])))
        .collect();
    let s = plain(&recs);
    let undo = b.path("undo");
    let opts = ApplyOptions {
        undo: Some(undo.clone()),
        ..Default::default()
    };
    let run = |bytes: Vec<u8>, finish: bool| {
        let (mut w, r) = crate::io::link::link();
        let t = std::thread::spawn(move || {
            use std::io::Write;
            w.write_all(&bytes).unwrap();
            if finish {
                w.finish().unwrap();
            }
        });
        let res = apply(
            Input::Stream(Box::new(r), "the local sender".into()),
            &dest,
            &opts,
            &Progress::new(),
        );
        t.join().unwrap();
        res
    };
    // Cut after the tenth record: the first snapback batch (8 MiB) was written, the rest
    // never is.
    const _: () = assert!(SNAPBACK_BATCH == 8 * BATCH);
    let cut = HANDSHAKE.len() + 10 * (12 + BATCH);
    let e = run(s[..cut].to_vec(), false).unwrap_err();
    assert!(matches!(e, Error::Stopped { .. }), "{e:?}");
    assert!(
        e.to_string().contains(crate::io::link::SENDER_STOPPED),
        "{e}"
    );
    assert!(fs::read(&dest).unwrap()[8 * BATCH..] == vec![b'O'; 4 * BATCH][..]);
    // The rerun of the whole stream resumes the journal and finishes the round.
    let st = run(s.clone(), true).unwrap();
    assert!(st.undo.is_some());
    let got = fs::read(&dest).unwrap();
    assert!(
        got.chunks(BATCH).all(|c| c == &d[..]),
        "the round is not complete"
    );
    // The journal restores what the destination held before the first, cut run.
    restore(&undo, &dest);
    assert!(fs::read(&dest).unwrap() == vec![b'O'; size]);
}

#[test]
fn a_panic_while_reading_the_stream_does_not_leave_the_writer_waiting() {
    // The reading side panics after a batch went to the writer thread: the panic must come
    // out of apply (where the binding turns it into an error) instead of the writer waiting
    // forever for the next batch, with the process deaf to Ctrl-C.
    struct Bomb(Cursor<Vec<u8>>);
    impl Read for Bomb {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.position() > 2 * BATCH as u64 {
                panic!("a bug in the reading side");
            }
            self.0.read(buf)
        }
    }
    let b = Bench::new();
    let dest = b.path("big");
    fs::write(&dest, vec![b'O'; 4 * BATCH]).unwrap();
    let d = data(BATCH, 6);
    let recs: Vec<Rec> = (0..4)
        .map(|i| (i * BATCH as u64, BATCH as u32, Some(&d[..])))
        .collect();
    let s = plain(&recs);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(|| {
            let input = Input::Stream(Box::new(Bomb(Cursor::new(s))), "-".into());
            apply(input, &dest, &ApplyOptions::default(), &Progress::new())
        });
        let _ = tx.send(r.is_err());
    });
    let panicked = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("apply hung after a panic on its reading side");
    assert!(panicked, "the panic was not passed on");
}
