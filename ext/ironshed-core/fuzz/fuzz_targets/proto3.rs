//! PROTO[3] decoder and receiver: any stream is applied or refused cleanly, never writes past
//! the destination, and a refused file input leaves the destination untouched.
#![no_main]
use ironshed_core::wire::{apply, ApplyOptions, Decoder, Input};
use ironshed_core::Progress;
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    // The decoder alone.
    if let Ok(mut d) = Decoder::new(data, "fuzz") {
        let mut buf = vec![0u8; 4096];
        while let Ok(Some(r)) = d.next_record() {
            let n = (r.header.len as usize).min(buf.len());
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
    let written = std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::File::create(&input))
        .and_then(|mut f| f.write_all(data));
    if written.is_err() {
        return; // no scratch space this run: nothing to check
    }
    for (short, from_file) in [(false, true), (true, true), (false, false)] {
        let before = vec![0xa5u8; 65536];
        if std::fs::write(&dest, &before).is_err() {
            return;
        }
        let opts = ApplyOptions {
            allow_short_destination: short,
            snapback: None,
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
    }
});
