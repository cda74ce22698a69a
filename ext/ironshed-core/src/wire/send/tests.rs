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
    send(
        &ranges(data),
        &ranges(discards),
        &src,
        out,
        "out",
        opts,
        progress,
    )
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
    let st = send_to(
        &mut out,
        &[(5, 3)],
        &[],
        &SendOptions::default(),
        &Progress::new(),
    )
    .unwrap();
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
    assert!(matches!(e, Error::Interrupted), "{e:?}");
}
