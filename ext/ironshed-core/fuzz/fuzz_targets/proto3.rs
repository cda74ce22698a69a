//! PROTO[3] decoder and receiver, plain and extended (discard records): any stream is applied
//! or refused cleanly, never writes past the destination, a refused file input leaves the
//! destination untouched, a file and a stream give the same result, `verify` reads back what
//! is there (and finds it equal to what arrived), a snapback file restores the destination
//! exactly, the input is never its own destination or snapback file, and a plain stream whose
//! first record is (0, 0) is never taken for a journal.
//!
//! The same bytes, read as the text form of --verify digests (one per line), parse into
//! digests that print back as the same lines, or are refused cleanly.
//!
//! Input: taken as a whole stream when it starts with "lvmsync" (the seeds); otherwise its
//! first byte chooses the handshake put before the rest (bit 0: extended "discards" one, else
//! plain) and bit 1 makes discard records take the read-back-and-zero fallback. With bit 2,
//! the records the rest frames are made a marked stream (BEGIN, records, END with the right
//! counts and digests), and with bit 3 also cut one byte short: a marked stream is applied from
//! a file only when whole, and its cut form is refused with the destination untouched; with
//! bit 4 they are made a journal (JOURNAL, records, a valid COMMIT after every third record;
//! with bit 0, a journal with the extended handshake, whose discard records stand for old zeros).
//! With bits 2 and 5 the marked stream carries an EXPECT item (the destination check) listing
//! the records' ranges with the hashes of what the destination holds before: it is applied
//! like the same stream without it; with bit 6 too, the hashes are wrong, and every apply is
//! refused with the destination untouched.
#![no_main]
use ironshed_core::wire::{
    apply, proto3, ApplyOptions, Control, Decoder, Digest, Expected, Input, RecordHeader,
    HANDSHAKE, HANDSHAKE_DISCARDS,
};
use ironshed_core::Progress;
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|input: &[u8]| {
    if let Ok(ds) = ironshed_core::wire::digest::parse_lines(input.split(|&b| b == b'\n')) {
        let lines: Vec<String> = ds.iter().map(Digest::to_line).collect();
        assert_eq!(
            ironshed_core::wire::digest::parse_lines(&lines).ok(),
            Some(ds),
            "digest lines round trip"
        );
    }
    let mut marked_cut: Option<Vec<u8>> = None;
    // The stream carries an EXPECT item that the destination does not match.
    let mut expect_wrong = false;
    let (data, fallback): (Vec<u8>, Option<u64>) = if input.starts_with(b"lvmsync") {
        (input.to_vec(), None)
    } else if let Some((&sel, rest)) = input.split_first() {
        let hs = if sel & 1 == 1 {
            HANDSHAKE_DISCARDS
        } else {
            HANDSHAKE
        };
        let v = if sel & 4 == 4 {
            let recs = framed(rest, sel & 1 == 1);
            let m = if sel & 32 == 32 {
                let e = expected(&recs, sel & 1 == 1, sel & 64 == 64);
                expect_wrong = sel & 64 == 64 && e.iter().any(|x| x.offset + x.len <= 65536);
                let recs: Vec<_> = recs.iter().map(|(h, d)| (*h, d.as_slice())).collect();
                proto3::marked_stream_expecting(hs, (!e.is_empty()).then_some(&e[..]), &recs)
            } else {
                marked(hs, &recs)
            };
            if sel & 8 == 8 {
                marked_cut = Some(m[..m.len() - 1].to_vec());
            }
            m
        } else if sel & 16 == 16 {
            journal(hs, &framed(rest, sel & 1 == 1))
        } else {
            let mut v = hs.to_vec();
            v.extend_from_slice(rest);
            v
        };
        (v, (sel & 2 == 2).then_some(4096))
    } else {
        (Vec::new(), None)
    };
    let data = &data[..];
    // The decoder alone.
    if let Ok(mut d) = Decoder::new(data, "fuzz") {
        let mut buf = vec![0u8; 4096];
        while let Ok(Some(r)) = d.next_record() {
            assert!(
                !(r.is_discard() && r.header.len == 0),
                "zero-length discard passed"
            );
            let n = (r.data_len() as usize).min(buf.len());
            if d.read_data(&mut buf[..n]).is_err() {
                break;
            }
        }
    }
    // The receiver, from a file (checked first) and from a stream, onto a small file.
    // tmpfs when there is one: the receiver fdatasyncs the destination on every run.
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("ironshed-fuzz-proto3-{}", std::process::id()));
    let input = dir.join("in");
    let dest = dir.join("dest");
    let undo = dir.join("undo");
    let written = std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::File::create(&input))
        .and_then(|mut f| f.write_all(data));
    if written.is_err() {
        return; // no scratch space this run: nothing to check
    }
    // The input as its own destination (by name, and as standard input would be) or as the
    // snapback file: refused, nothing written.
    let progress = Progress::new();
    let opts = ApplyOptions::default();
    assert!(apply(Input::File(input.clone()), &input, &opts, &progress).is_err());
    if let Ok(f) = std::fs::File::open(&input) {
        assert!(apply(Input::Fd(f, "stdin".into()), &input, &opts, &progress).is_err());
    }
    assert!(!progress.written());
    let _ = std::fs::write(&dest, b"dest");
    let as_undo = ApplyOptions {
        undo: Some(input.clone()),
        ..Default::default()
    };
    assert!(apply(Input::File(input.clone()), &dest, &as_undo, &progress).is_err());
    assert_eq!(
        std::fs::read(&input).ok().as_deref(),
        Some(data),
        "the input was written"
    );
    // A plain stream whose first record is (0, 0) is a plain stream like any other: only an
    // explicit JOURNAL item makes a journal, whose uncommitted tail would be skipped.
    let zero_first = data.starts_with(HANDSHAKE)
        && data.get(HANDSHAKE.len()..HANDSHAKE.len() + 12) == Some(&[0u8; 12][..]);
    let before = before();
    let mut results: Vec<Option<Vec<u8>>> = Vec::new();
    for (short, from_file) in [(false, true), (true, true), (false, false)] {
        if std::fs::write(&dest, &before).is_err() {
            return;
        }
        let opts = ApplyOptions {
            allow_short_destination: short,
            verify: true,
            force_discard_fallback: fallback,
            ..Default::default()
        };
        let inp = if from_file {
            Input::File(input.clone())
        } else {
            Input::Stream(Box::new(std::io::Cursor::new(data.to_vec())), "fuzz".into())
        };
        let r = apply(inp, &dest, &opts, &Progress::new());
        let Ok(after) = std::fs::read(&dest) else {
            return;
        };
        assert_eq!(after.len(), 65536, "destination size changed");
        if expect_wrong {
            assert!(r.is_err(), "a destination that fails the check was written");
            assert!(after == before, "a refused destination check wrote");
        }
        if r.is_err() && from_file {
            assert!(
                after == before,
                "refused file input wrote to the destination"
            );
        }
        if let Ok(st) = &r {
            if zero_first {
                assert!(
                    !st.journaled && st.ignored_records == 0,
                    "a plain stream starting with (0, 0) was taken for a journal"
                );
            }
            assert_eq!(
                st.digests.len() as u64,
                st.records + st.discard_records,
                "one digest per record applied"
            );
            let v = st.verified.as_ref().expect("verify ran");
            assert_eq!(v.mismatches, 0, "read back differs from what arrived: {v:?}");
            assert_eq!(
                v.matched + v.superseded,
                st.digests.len() as u64,
                "every record compared or overwritten later"
            );
            for d in &st.digests {
                let (o, l) = (d.offset as usize, d.len as usize);
                assert!(o + l <= after.len() || l == 0, "digest range past the end");
                if l > 0 {
                    assert_eq!(
                        *d,
                        Digest::of(d.offset, &after[o..o + l]),
                        "read-back digest"
                    );
                }
            }
        }
        if !short {
            results.push(r.is_ok().then_some(after));
        }
    }
    if let [Some(a), Some(b)] = &results[..] {
        assert!(a == b, "a file and a stream applied differently");
    }
    // With a snapback file: applying it afterwards restores the destination exactly.
    if std::fs::write(&dest, &before).is_err() {
        return;
    }
    let _ = std::fs::remove_file(&undo);
    let opts = ApplyOptions {
        undo: Some(undo.clone()),
        force_discard_fallback: fallback,
        ..Default::default()
    };
    if apply(Input::File(input.clone()), &dest, &opts, &Progress::new()).is_ok() {
        let restored = apply(
            Input::File(undo.clone()),
            &dest,
            &ApplyOptions::default(),
            &Progress::new(),
        );
        assert!(restored.is_ok(), "snapback file refused: {restored:?}");
        let Ok(after) = std::fs::read(&dest) else {
            return;
        };
        assert!(after == before, "snapback did not restore the destination");
    }
    let _ = std::fs::remove_file(&undo);
    // A marked stream cut short: refused from a file, the destination untouched.
    if let Some(cut) = marked_cut {
        if std::fs::write(&input, &cut).is_err() || std::fs::write(&dest, &before).is_err() {
            return;
        }
        let r = apply(
            Input::File(input.clone()),
            &dest,
            &ApplyOptions::default(),
            &Progress::new(),
        );
        assert!(r.is_err(), "a cut marked stream was applied");
        assert!(
            std::fs::read(&dest).is_ok_and(|a| a == before),
            "a cut marked stream wrote"
        );
    }
});

/// The whole records `rest` frames: (header bytes, data), offsets kept below 2^63.
fn framed(rest: &[u8], discards: bool) -> Vec<([u8; 12], Vec<u8>)> {
    let mut out = Vec::new();
    let mut p = 0;
    while p + 12 <= rest.len() && out.len() < 64 {
        let mut h = [0u8; 12];
        h.copy_from_slice(&rest[p..p + 12]);
        h[0] &= 0x7f;
        let len = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
        let n = if discards && len & 0x8000_0000 != 0 {
            0
        } else {
            len as usize
        };
        if p + 12 + n > rest.len() {
            break;
        }
        out.push((h, rest[p + 12..p + 12 + n].to_vec()));
        p += 12 + n;
    }
    out
}

/// What the destination holds before each apply.
fn before() -> Vec<u8> {
    (0..65536u32).map(|i| (i % 251) as u8 | 1).collect()
}

/// EXPECT entries for the records' ranges (their union, ascending), with the hashes of
/// [`before`] there (of zeros past its end); all wrong with `wrong`.
fn expected(recs: &[([u8; 12], Vec<u8>)], discards: bool, wrong: bool) -> Vec<Expected> {
    let mut r: Vec<(u64, u64)> = recs
        .iter()
        .map(|(h, _)| {
            let h = RecordHeader::decode(h);
            let len = if discards { h.len & 0x7fff_ffff } else { h.len };
            (h.offset, u64::from(len))
        })
        .filter(|&(_, l)| l > 0)
        .collect();
    r.sort_unstable();
    let mut union: Vec<(u64, u64)> = Vec::new();
    for (o, l) in r {
        match union.last_mut() {
            Some((po, pl)) if o <= *po + *pl => *pl = (*pl).max(o + l - *po),
            _ => union.push((o, l)),
        }
    }
    let b = before();
    union
        .into_iter()
        .map(|(offset, len)| {
            let hash = match b.get(offset as usize..(offset + len) as usize) {
                Some(s) => xxhash_rust::xxh3::xxh3_64(s),
                None => 0,
            };
            Expected {
                offset,
                len,
                older: hash ^ u64::from(wrong),
                newer: hash ^ u64::from(wrong),
            }
        })
        .collect()
}

/// A marked stream of the records: BEGIN and END with the right counts and digests.
fn marked(hs: &[u8], recs: &[([u8; 12], Vec<u8>)]) -> Vec<u8> {
    let recs: Vec<_> = recs.iter().map(|(h, d)| (*h, d.as_slice())).collect();
    proto3::marked_stream(hs, &recs)
}

/// A journal of the records (after the extended handshake, discard records stay discard
/// records; data records of any length), with a valid COMMIT after every third.
fn journal(hs: &[u8], recs: &[([u8; 12], Vec<u8>)]) -> Vec<u8> {
    let discards = hs == HANDSHAKE_DISCARDS;
    let mut v = hs.to_vec();
    v.extend(Control::Journal(b"ironshed undo journal 1\n".to_vec()).encode());
    let mut seq = 1;
    for (i, (hb, d)) in recs.iter().enumerate() {
        let mut h = RecordHeader::decode(hb);
        if discards && h.len & 0x8000_0000 != 0 {
            v.extend_from_slice(hb);
        } else {
            h.len = d.len() as u32;
            v.extend_from_slice(&h.encode());
            v.extend_from_slice(d);
        }
        if i % 3 == 2 {
            let digest = xxhash_rust::xxh3::xxh3_64(&v);
            v.extend(Control::Commit { seq, digest }.encode());
            seq += 1;
        }
    }
    v
}
