//! PROTO[3] decoder and receiver, plain and extended (discard records): any stream is applied
//! or refused cleanly, never writes past the destination, a refused file input leaves the
//! destination untouched, a file and a stream give the same result, `verify` reads back what
//! is there (and finds it equal to what arrived), a snapback file restores the destination
//! exactly, and the input is never its own destination or snapback file.
//!
//! The same bytes, read as the text form of --verify digests (one per line), parse into
//! digests that print back as the same lines, or are refused cleanly.
//!
//! Input: taken as a whole stream when it starts with "lvmsync" (the seeds); otherwise its
//! first byte chooses the handshake put before the rest (bit 0: extended "discards" one, else
//! plain) and bit 1 makes discard records take the read-back-and-zero fallback.
#![no_main]
use ironshed_core::wire::{
    apply, ApplyOptions, Decoder, Digest, Input, HANDSHAKE, HANDSHAKE_DISCARDS,
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
    let (data, fallback): (Vec<u8>, Option<u64>) = if input.starts_with(b"lvmsync") {
        (input.to_vec(), None)
    } else if let Some((&sel, rest)) = input.split_first() {
        let hs = if sel & 1 == 1 {
            HANDSHAKE_DISCARDS
        } else {
            HANDSHAKE
        };
        let mut v = hs.to_vec();
        v.extend_from_slice(rest);
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
    let before: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8 | 1).collect();
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
        if r.is_err() && from_file {
            assert!(
                after == before,
                "refused file input wrote to the destination"
            );
        }
        if let Ok(st) = &r {
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
});
