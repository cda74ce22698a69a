//! The resumable undo journal. From the input, an apply in batches (ranges of a 64 KiB
//! destination) is run with a journal, "crashes" (the journal cut at a point the input
//! chooses, optionally followed by garbage, the destination holding what had been written by
//! then: every batch whose commit the cut kept, the last of them maybe half), and is run again
//! with the same journal, as a rerun of the same command does. Then:
//! * the rerun resumes (or starts afresh when the cut left no journal), never fails;
//! * the destination is what the whole apply writes;
//! * a third run finds the journal complete and writes nothing;
//! * restoring the journal, from a file and from a pipe, gives the destination before the
//!   first run.
//!
//! With the first byte's bit 3 set, the destination holds runs of zeros, which the journal
//! keeps as discard records.
//!
//! With the first byte's bit 0 set, the rest of the input is taken as an existing journal file
//! instead: opening it never panics, a refusal leaves it byte for byte, a resume only cuts it.
#![no_main]
use ironshed_core::block::Destination;
use ironshed_core::wire::{
    apply, ApplyOptions, DestIdentity, Input, UndoIdentity, UndoLog, UndoOpen, UndoState,
};
use ironshed_core::Progress;
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};

const SIZE: usize = 65536;

fn identity() -> UndoIdentity {
    UndoIdentity {
        tool: "fuzz".into(),
        source_id: Some("ops".into()),
        source: "the fuzzer's ops".into(),
        dest: DestIdentity {
            kind: "file".into(),
            size: SIZE as u64,
            id: "file:fuzz".into(),
            path: "dest".into(),
        },
    }
}

/// Batches of (offset, length, fill byte).
fn batches(input: &[u8]) -> Vec<Vec<(u64, u64, u8)>> {
    let mut out = vec![Vec::new()];
    for c in input.chunks_exact(5).take(64) {
        let off = u64::from(u16::from_le_bytes([c[0], c[1]]));
        let len = u64::from(u16::from_le_bytes([c[2], c[3]]) % 8192 + 1).min(SIZE as u64 - off);
        if len == 0 {
            continue;
        }
        out.last_mut().unwrap().push((off, len, c[4] | 1));
        if c[4] & 0x80 != 0 {
            out.push(Vec::new());
        }
    }
    out.retain(|b| !b.is_empty());
    out
}

fn before(sel: u8) -> Vec<u8> {
    let mut d: Vec<u8> = (0..SIZE).map(|i| (i % 253) as u8).collect();
    if sel & 8 != 0 {
        // Zeros: whole blocks, a run starting and ending inside blocks, the end.
        for (s, e) in [(4096, 16384), (20000, 33333), (49152, SIZE)] {
            d[s..e].fill(0);
        }
    }
    d
}

/// One run of the whole apply with `undo`. Returns the journal's size after each commit.
fn run(undo: &mut UndoLog, dest: &Destination, all: &[Vec<(u64, u64, u8)>]) -> Vec<u64> {
    let mut ends = Vec::new();
    for b in all {
        for &(o, l, _) in b {
            undo.save(dest, o, l).unwrap();
        }
        undo.commit().unwrap();
        ends.push(undo.stats().file_bytes);
        for &(o, l, f) in b {
            dest.write_all_at(&vec![f; l as usize], o).unwrap();
        }
    }
    ends
}

fn restore_both(undo: &Path, dest: &Path, from: &[u8], want: &[u8]) {
    for pipe in [false, true] {
        std::fs::write(dest, from).unwrap();
        let input = if pipe {
            Input::Stream(
                Box::new(std::io::Cursor::new(std::fs::read(undo).unwrap())),
                "-".into(),
            )
        } else {
            Input::File(undo.to_path_buf())
        };
        let st = apply(input, dest, &ApplyOptions::default(), &Progress::new());
        assert!(st.is_ok(), "restore failed: {st:?}");
        assert!(std::fs::read(dest).unwrap() == want, "restore (pipe: {pipe})");
    }
}

fn scratch() -> Option<PathBuf> {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("ironshed-fuzz-undo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

fuzz_target!(|input: &[u8]| {
    let Some((&sel, rest)) = input.split_first() else {
        return;
    };
    let Some(dir) = scratch() else { return };
    let (undo, dest_path) = (dir.join("undo"), dir.join("dest"));
    let _ = std::fs::remove_file(&undo);
    if std::fs::write(&dest_path, before(sel)).is_err() {
        return;
    }
    let Ok(dest) = Destination::open(&dest_path) else {
        return;
    };
    let id = identity();

    if sel & 1 == 1 {
        // Any bytes as an existing journal.
        if std::fs::write(&undo, rest).is_err() {
            return;
        }
        match UndoLog::open(&undo, &id) {
            Err(_) | Ok(UndoOpen::Complete(_)) => {
                assert_eq!(std::fs::read(&undo).unwrap(), rest, "a refused or complete journal changed");
            }
            Ok(UndoOpen::Ready(log)) => {
                let now = std::fs::read(&undo).unwrap();
                if log.stats().state == UndoState::Resumed {
                    assert!(rest.starts_with(&now), "a resume did more than cut the journal");
                }
                log.finish().unwrap();
                // What it holds restores without error.
                std::fs::write(&dest_path, before(sel)).unwrap();
                let st = apply(Input::File(undo.clone()), &dest_path, &ApplyOptions::default(), &Progress::new());
                assert!(st.is_ok(), "{st:?}");
            }
        }
        return;
    }

    // The apply, run whole once to learn where its commits end and what it writes.
    let (cut_sel, ops) = rest.split_at(rest.len().min(4));
    let all = batches(ops);
    if all.is_empty() {
        return;
    }
    let mut after = before(sel);
    for b in &all {
        for &(o, l, f) in b {
            after[o as usize..(o + l) as usize].fill(f);
        }
    }
    let mut first = UndoLog::create(&undo, &id).unwrap();
    let ends = run(&mut first, &dest, &all);
    drop(first);
    let full = std::fs::read(&undo).unwrap();
    // The crash: the journal cut at `cut`, maybe followed by garbage; the destination as the
    // first run had left it then (committed batches written, the last one maybe half).
    let mut c = [0u8; 4];
    c[..cut_sel.len()].copy_from_slice(cut_sel);
    let cut = (u32::from_le_bytes(c) as usize) % (full.len() + 1);
    let mut crashed = full[..cut].to_vec();
    if sel & 2 != 0 {
        crashed.extend(ops.iter().rev().take(100).map(|b| b ^ 0x5a));
    }
    let committed = ends.iter().filter(|&&e| e as usize <= cut).count();
    let mut now = before(sel);
    for (i, b) in all[..committed].iter().enumerate() {
        let n = if i + 1 == committed && sel & 4 != 0 { b.len() / 2 } else { b.len() };
        for &(o, l, f) in &b[..n] {
            now[o as usize..(o + l) as usize].fill(f);
        }
    }
    if cut == full.len() {
        // END is written once every write of the apply is durable.
        now = after.clone();
    }
    // Where the JOURNAL item ends: a cut before it leaves no journal.
    let hs = full.iter().position(|&b| b == b'\n').unwrap() + 1;
    let text = u32::from_be_bytes([full[hs + 8], full[hs + 9], full[hs + 10], full[hs + 11]]);
    let head = hs + 12 + text as usize;
    std::fs::write(&undo, &crashed).unwrap();
    std::fs::write(&dest_path, &now).unwrap();
    // The rerun.
    let mut log = match UndoLog::open(&undo, &id) {
        Ok(UndoOpen::Ready(l)) => *l,
        Ok(UndoOpen::Complete(_)) => {
            // Only a whole journal is complete, and its apply wrote everything.
            assert!(cut == full.len() && now == after, "an interrupted journal passed for complete");
            restore_both(&undo, &dest_path, &after, &before(sel));
            return;
        }
        Err(e) => {
            // The cut left no JOURNAL item: a file that is no journal, never overwritten.
            assert!(
                !crashed.is_empty() && cut < head,
                "rerun refused: {e} (cut {cut} of {})",
                full.len()
            );
            assert_eq!(std::fs::read(&undo).unwrap(), crashed);
            return;
        }
    };
    run(&mut log, &dest, &all);
    dest.sync().unwrap();
    log.finish().unwrap();
    assert!(std::fs::read(&dest_path).unwrap() == after, "the resumed apply");
    assert!(
        matches!(UndoLog::open(&undo, &id), Ok(UndoOpen::Complete(_))),
        "the finished journal is not complete"
    );
    restore_both(&undo, &dest_path, &after, &before(sel));
    let _ = std::fs::remove_file(&undo);
});
