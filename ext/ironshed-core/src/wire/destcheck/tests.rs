//! The destination check end to end: streams sent from OLDER and NEWER files with
//! `expect_from`, applied (from a file and from a pipe) onto destinations that hold OLDER,
//! something else, or partly NEWER; and the `EXPECT` item's codec and placement rules.

use super::*;
use crate::error::{Kind, Report};
use crate::snapshot::{ChangeSet, Changes};
use crate::wire::proto3::{
    marked_stream_expecting, Control, ControlKind, Decoder, RecordHeader, Summary, HANDSHAKE,
};
use crate::wire::{apply, send_changes, ApplyOptions, ApplyStats, Input, SendOptions};
use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

const SIZE: usize = 256 << 10;
/// The round's data ranges (one record each).
const CHANGED: &[(u64, u64)] = &[(4096, 8192), (65536, 4096), (200_704, 12288)];
/// A discarded range (NEWER reads as zeros there).
const DISCARDED: (u64, u64) = (131_072, 8192);

fn older_bytes() -> Vec<u8> {
    (0..SIZE).map(|i| (i % 251) as u8).collect()
}

fn newer_bytes() -> Vec<u8> {
    let mut v = older_bytes();
    for &(o, l) in CHANGED {
        for i in o..o + l {
            v[i as usize] = (i % 13) as u8 ^ 0x5a;
        }
    }
    let (o, l) = DISCARDED;
    v[o as usize..(o + l) as usize].fill(0);
    v
}

fn ranges(list: &[(u64, u64)]) -> Changes {
    Changes::from_ranges(
        list.iter()
            .map(|&(offset, len)| ByteRange { offset, len })
            .collect(),
    )
}

struct Round {
    dir: tempfile::TempDir,
}

impl Round {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("older"), older_bytes()).unwrap();
        fs::write(dir.path().join("newer"), newer_bytes()).unwrap();
        Round { dir }
    }
    fn path(&self, n: &str) -> PathBuf {
        self.dir.path().join(n)
    }
    /// The round's stream, with the `EXPECT` item (unless `checked` is false).
    fn stream(&self, checked: bool, discards: bool) -> (Vec<u8>, u64) {
        let set = ChangeSet {
            data: ranges(CHANGED),
            discards: ranges(&[DISCARDED]),
        };
        let opts = SendOptions {
            discards,
            expect_from: checked.then(|| self.path("older")),
            ..SendOptions::default()
        };
        let mut out = Vec::new();
        let r = send_changes(
            set,
            &self.path("newer"),
            &mut out,
            "out",
            &opts,
            &Progress::new(),
        )
        .unwrap();
        (out, r.stats.expect_ranges)
    }
    fn dest(&self, content: &[u8]) -> PathBuf {
        let p = self.path("dest");
        fs::write(&p, content).unwrap();
        p
    }
    fn apply(&self, s: &[u8], pipe: bool, opts: &ApplyOptions) -> crate::wire::Result<ApplyStats> {
        let input = if pipe {
            Input::Stream(Box::new(Cursor::new(s.to_vec())), "-".into())
        } else {
            fs::write(self.path("stream"), s).unwrap();
            Input::File(self.path("stream"))
        };
        apply(input, &self.path("dest"), opts, &Progress::new())
    }
}

fn read(p: &Path) -> Vec<u8> {
    fs::read(p).unwrap()
}

#[test]
fn a_destination_holding_older_gets_newer() {
    let r = Round::new();
    for discards in [false, true] {
        let (s, listed) = r.stream(true, discards);
        // Plain PROTO[3] merges the discard into the data: 4 ranges either way.
        assert_eq!(listed, 4);
        for pipe in [false, true] {
            let dest = r.dest(&older_bytes());
            let st = r.apply(&s, pipe, &ApplyOptions::default()).unwrap();
            assert_eq!(
                read(&dest),
                newer_bytes(),
                "pipe {pipe} discards {discards}"
            );
            assert_eq!(
                st.destination_check,
                Some(CheckStats {
                    ranges: 4,
                    at_newer: 0,
                    unchecked: 0
                })
            );
            assert!(st.end_mark && !st.destination_check_skipped);
        }
    }
}

#[test]
fn a_destination_holding_something_else_is_refused_with_nothing_written() {
    let r = Round::new();
    let (s, _) = r.stream(true, true);
    // The destination differs from OLDER in two changed ranges (and outside them, which
    // no check can see).
    let mut other = older_bytes();
    other[66_000] ^= 1;
    other[200_704 + 5] ^= 1;
    other[100] ^= 1;
    for pipe in [false, true] {
        let dest = r.dest(&other);
        let undo = r.path("sb");
        let _ = fs::remove_file(&undo);
        let opts = ApplyOptions {
            undo: Some(undo.clone()),
            ..ApplyOptions::default()
        };
        let e = r.apply(&s, pipe, &opts).unwrap_err();
        assert!(
            matches!(&e, Error::DestinationDiffers { differ: 2, total: 4, first, .. }
                if first == &vec![(65536, 4096), (200_704, 12288)]),
            "{e:?}"
        );
        assert_eq!(e.kind(), Kind::Destination);
        assert_eq!(
            e.message(),
            format!(
                "{}: the destination does not hold what this round starts from: 2 of the 4 \
                 ranges it changes hold neither the older snapshot's data nor the newer one's: \
                 bytes 65536..69631, bytes 200704..212991; nothing was written. Is it the right \
                 destination, holding the older snapshot's content (the previous round's \
                 result)? If an interrupted run of this same round left a range partly \
                 written, finish it with --no-destination-check",
                dest.display()
            )
        );
        assert_eq!(read(&dest), other, "written (pipe {pipe})");
        assert!(!undo.exists(), "a snapback file was created (pipe {pipe})");
        // --no-destination-check: applied as it is.
        let opts = ApplyOptions {
            no_destination_check: true,
            ..ApplyOptions::default()
        };
        let st = r.apply(&s, pipe, &opts).unwrap();
        assert!(st.destination_check_skipped && st.destination_check.is_none());
        let mut want = newer_bytes();
        want[100] ^= 1;
        assert_eq!(read(&dest), want);
    }
}

#[test]
fn more_differing_ranges_than_are_named_are_counted() {
    let set: Vec<(u64, u64)> = (0..8).map(|i| (i * 16384, 4096)).collect();
    let expect: Vec<Expected> = set
        .iter()
        .map(|&(offset, len)| Expected {
            offset,
            len,
            older: 1,
            newer: 2,
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d");
    fs::write(&p, vec![7u8; 131072]).unwrap();
    let dest = Destination::open(&p).unwrap();
    let e = check(&dest, &expect, &Progress::new()).unwrap_err();
    assert!(
        e.message()
            .contains("8 of the 8 ranges it changes hold neither")
            && e.message().contains(
                "bytes 0..4095, bytes 16384..20479, bytes 32768..36863, bytes 49152..53247, \
                 bytes 65536..69631, and 3 more; nothing was written"
            ),
        "{}",
        e.message()
    );
}

#[test]
fn a_rerun_after_an_interrupted_round_passes_ranges_already_at_newer() {
    // An earlier run wrote the first two ranges (whole records), then stopped.
    let r = Round::new();
    let (s, _) = r.stream(true, false);
    let mut half = older_bytes();
    let newer = newer_bytes();
    for &(o, l) in &CHANGED[..2] {
        half[o as usize..(o + l) as usize].copy_from_slice(&newer[o as usize..(o + l) as usize]);
    }
    r.dest(&half);
    let st = r.apply(&s, true, &ApplyOptions::default()).unwrap();
    assert_eq!(st.destination_check.unwrap().at_newer, 2);
    assert_eq!(read(&r.path("dest")), newer);
    // Once finished, a rerun passes too (every range at NEWER) and changes nothing.
    let st = r.apply(&s, false, &ApplyOptions::default()).unwrap();
    assert_eq!(st.destination_check.unwrap().at_newer, 4);
    assert_eq!(read(&r.path("dest")), newer);
    // A record left partly written holds neither: refused, naming the way out.
    let mut partial = older_bytes();
    let (o, _) = CHANGED[0];
    partial[o as usize..o as usize + 4096].copy_from_slice(&newer[o as usize..o as usize + 4096]);
    r.dest(&partial);
    let e = r.apply(&s, true, &ApplyOptions::default()).unwrap_err();
    assert!(
        matches!(&e, Error::DestinationDiffers { differ: 1, first, .. } if first == &vec![(4096, 8192)]),
        "{e:?}"
    );
    assert_eq!(read(&r.path("dest")), partial);
}

#[test]
fn a_rerun_with_a_finished_snapback_passes_and_the_snapback_restores_older() {
    // A run with a snapback file finishes; the rerun with the same file writes nothing; the
    // snapback file then restores OLDER.
    let r = Round::new();
    let (s, _) = r.stream(true, false);
    r.dest(&older_bytes());
    let undo = r.path("sb");
    let opts = ApplyOptions {
        undo: Some(undo.clone()),
        ..ApplyOptions::default()
    };
    r.apply(&s, false, &opts).unwrap();
    let st = r.apply(&s, false, &opts).unwrap();
    assert_eq!(st.destination_check.unwrap().at_newer, 4);
    assert_eq!(st.bytes, 0, "a finished journal writes nothing");
    apply(
        Input::File(undo),
        &r.path("dest"),
        &ApplyOptions::default(),
        &Progress::new(),
    )
    .unwrap();
    assert_eq!(read(&r.path("dest")), older_bytes());
}

#[test]
fn ranges_past_a_short_destination_are_left_to_the_record_checks() {
    let r = Round::new();
    let (s, _) = r.stream(true, false);
    // 128 KiB: the last range (200704) is outside.
    r.dest(&older_bytes()[..131_072]);
    let e = r.apply(&s, false, &ApplyOptions::default()).unwrap_err();
    assert!(matches!(e, Error::PastEnd { .. }), "{e:?}");
    let opts = ApplyOptions {
        allow_short_destination: true,
        ..ApplyOptions::default()
    };
    let st = r.apply(&s, true, &opts).unwrap();
    let c = st.destination_check.unwrap();
    assert_eq!((c.ranges, c.unchecked), (2, 2));
    assert_eq!(read(&r.path("dest")), newer_bytes()[..131_072]);
}

#[test]
fn a_range_crossing_the_end_of_a_short_destination_refuses_the_round_unwritten() {
    let r = Round::new();
    let (s, _) = r.stream(true, false);
    // 200 KiB: the last range (200704..212991) is only partly inside.
    let before = older_bytes()[..204_800].to_vec();
    r.dest(&before);
    let opts = ApplyOptions {
        allow_short_destination: true,
        ..ApplyOptions::default()
    };
    for pipe in [false, true] {
        let e = r.apply(&s, pipe, &opts).unwrap_err();
        assert!(
            matches!(
                e,
                Error::ShortForCheck {
                    offset: 200_704,
                    len: 12288,
                    size: 204_800,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.kind(), Kind::Destination);
        assert!(
            e.message()
                .contains("bytes 200704..212991, which cross the end"),
            "{}",
            e.message()
        );
        assert_eq!(read(&r.path("dest")), before, "written (pipe {pipe})");
    }
    // Unchecked, the part inside is written.
    let unchecked = ApplyOptions {
        no_destination_check: true,
        ..opts
    };
    r.apply(&s, false, &unchecked).unwrap();
    assert_eq!(read(&r.path("dest")), newer_bytes()[..204_800]);
}

#[test]
fn the_sender_refuses_a_plain_stream_and_an_older_too_small() {
    let r = Round::new();
    let set = || ChangeSet {
        data: ranges(CHANGED),
        discards: Changes::default(),
    };
    let mut out = Vec::new();
    let mut refused = |opts: SendOptions| {
        let e = send_changes(
            set(),
            &r.path("newer"),
            &mut out,
            "o",
            &opts,
            &Progress::new(),
        )
        .unwrap_err();
        assert!(out.is_empty(), "sent before refusing: {e:?}");
        e
    };
    let e = refused(SendOptions {
        plain: true,
        expect_from: Some(r.path("older")),
        ..SendOptions::default()
    });
    assert!(matches!(e, Error::Internal(_)), "{e:?}");
    fs::write(r.path("small"), vec![0u8; 65536]).unwrap();
    let e = refused(SendOptions {
        expect_from: Some(r.path("small")),
        ..SendOptions::default()
    });
    assert!(e.message().contains("small"), "{}", e.message());
    // Nothing changed: no EXPECT item (it would be empty).
    let empty = ChangeSet {
        data: Changes::default(),
        discards: Changes::default(),
    };
    let opts = SendOptions {
        expect_from: Some(r.path("older")),
        ..SendOptions::default()
    };
    let rep = send_changes(
        empty,
        &r.path("newer"),
        &mut out,
        "o",
        &opts,
        &Progress::new(),
    )
    .unwrap();
    assert_eq!(rep.stats.expect_ranges, 0);
}

fn entries() -> Vec<Expected> {
    vec![
        Expected {
            offset: 0,
            len: 4096,
            older: 0x0102_0304_0506_0708,
            newer: 9,
        },
        Expected {
            offset: 8192,
            len: 1,
            older: 10,
            newer: u64::MAX,
        },
    ]
}

#[test]
fn the_expect_item_round_trips_and_its_payload_is_checked() {
    let e = entries();
    let enc = Control::Expect(e.clone()).encode();
    assert_eq!(&enc[..12], b"\xffEXPECT\0\0\0\0\x40");
    assert_eq!(
        &enc[12..28],
        &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0]
    );
    assert_eq!(&enc[28..36], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(Expected::decode_all(&enc[12..]), Ok(e.clone()));
    let s = marked_stream_expecting(
        HANDSHAKE,
        Some(&e),
        &[(RecordHeader { offset: 0, len: 2 }.encode(), b"ab")],
    );
    let mut d = Decoder::new(&s[..], "s").unwrap();
    d.next_record().unwrap();
    let r = d.next_record().unwrap().unwrap();
    assert!(r.is_control() && r.index == 1);
    assert_eq!(d.control().unwrap().control, Control::Expect(e.clone()));
    while d.next_record().unwrap().is_some() {}
    assert!(d.ended(), "BEGIN and END count the EXPECT item");
    // Payloads that are no list of ranges.
    let bad = |v: Vec<Expected>| Expected::decode_all(&Expected::encode_all(&v)).unwrap_err();
    assert!(Expected::decode_all(&[])
        .unwrap_err()
        .contains("0 payload bytes"));
    assert!(Expected::decode_all(&[0u8; 33])
        .unwrap_err()
        .contains("33 payload bytes"));
    let mut z = entries();
    z[1].len = 0;
    assert!(bad(z).contains("range 1"));
    let mut far = entries();
    far[1].offset = u64::MAX - 1;
    assert!(bad(far).contains("which no destination has"));
    let mut overlap = entries();
    overlap[1].offset = 4095;
    assert!(bad(overlap).contains("must ascend without overlapping"));
}

/// Decodes `s` to its end; the first error.
fn decode_err(s: &[u8]) -> Error {
    let mut d = Decoder::new(s, "s").unwrap();
    loop {
        match d.next_record() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("decoded"),
            Err(e) => return e,
        }
    }
}

#[test]
fn a_cut_garbled_or_misplaced_expect_item_is_refused_before_any_write() {
    let e = entries();
    let rec = [(RecordHeader { offset: 0, len: 2 }.encode(), &b"ab"[..])];
    let s = marked_stream_expecting(HANDSHAKE, Some(&e), &rec);
    let item_at = 17 + 36;
    // Cut inside the item.
    let err = decode_err(&s[..item_at + 12 + 40]);
    assert!(
        err.to_string()
            .contains("EXPECT cut short: only 40 of its 64 bytes"),
        "{err}"
    );
    // A garbled payload (overlapping ranges).
    let mut g = s.clone();
    g[item_at + 12 + 32 + 6] = 0; // the second range's offset, 8192, becomes 0
    let err = decode_err(&g);
    assert!(
        err.to_string().contains("EXPECT that lists range 1"),
        "{err}"
    );
    // A payload size that is no whole number of ranges.
    let mut odd = HANDSHAKE.to_vec();
    odd.extend(Control::Begin(Summary::default()).encode());
    odd.extend(RecordHeader::encode_raw(ControlKind::Expect.tag(), 33));
    odd.extend([0u8; 33]);
    assert!(decode_err(&odd).to_string().contains("33 payload bytes"));
    // After the first record: refused.
    let mut late = HANDSHAKE.to_vec();
    late.extend(Control::Begin(Summary::default()).encode());
    late.extend(rec[0].0);
    late.extend(rec[0].1);
    late.extend(Control::Expect(e.clone()).encode());
    let err = decode_err(&late);
    assert!(
        err.to_string()
            .contains("record 2 (stream byte 67) is a control item EXPECT, which may only come right after BEGIN"),
        "{err}"
    );
    // In a plain stream (no BEGIN): refused.
    let mut plain = HANDSHAKE.to_vec();
    plain.extend(Control::Expect(e.clone()).encode());
    assert!(decode_err(&plain)
        .to_string()
        .contains("which may only come right after BEGIN"));
    // Applied, each of them writes nothing, from a file or a pipe.
    let r = Round::new();
    for s in [&s[..item_at + 12 + 40], &g[..], &late[..]] {
        for pipe in [false, true] {
            r.dest(&older_bytes());
            assert!(r.apply(s, pipe, &ApplyOptions::default()).is_err());
            assert_eq!(read(&r.path("dest")), older_bytes());
        }
    }
}

#[test]
fn a_header_announcing_a_huge_expect_item_allocates_nothing_up_front() {
    let mut s = HANDSHAKE.to_vec();
    s.extend(Control::Begin(Summary::default()).encode());
    s.extend(RecordHeader::encode_raw(
        ControlKind::Expect.tag(),
        crate::wire::proto3::MAX_EXPECT_LEN,
    ));
    s.extend([0u8; 64]);
    assert!(decode_err(&s)
        .to_string()
        .contains("cut short: only 64 of its"));
    let mut s = HANDSHAKE.to_vec();
    s.extend(Control::Begin(Summary::default()).encode());
    s.extend(RecordHeader::encode_raw(
        ControlKind::Expect.tag(),
        crate::wire::proto3::MAX_EXPECT_LEN + 32,
    ));
    assert!(decode_err(&s).to_string().contains("which is not its size"));
}
