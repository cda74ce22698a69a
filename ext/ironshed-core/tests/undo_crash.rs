//! Crash safety of the undo (snapback) journal. The writer is driven batch by batch as a tool
//! uses it (save every range of a batch, commit, overwrite); a crash is simulated at every
//! stage by taking the journal as a crash could leave it (an uncommitted tail kept whole, cut
//! at many byte positions, read back as zeros, holed, grown with zeros, or followed by stale
//! blocks of an older journal) together with the destination as it was at that moment. From
//! every such state:
//! * restoring the journal with `apply` (from a file and from a pipe) gives back the
//!   destination's original content;
//! * resuming it (`UndoLog::open` with the same identity) and running the whole apply again,
//!   as a rerun of the same command does, gives the applied content, and then restoring the
//!   journal gives back the original content: the state before the first run.

use ironshed_core::block::Destination;
use ironshed_core::wire::{
    apply, ApplyOptions, DestIdentity, Input, UndoIdentity, UndoLog, UndoOpen, UndoState,
};
use ironshed_core::Progress;
use std::fs;
use std::path::Path;

const SIZE: usize = 1 << 20;

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The destination before the apply: data, with runs of zeros (kept in the journal as
/// discard records) where the batches write, one of them not block-aligned.
fn original() -> Vec<u8> {
    let mut d = pattern(99, SIZE);
    for (s, e) in [(0, 16384), (200_000, 600_001), (SIZE - 8192, SIZE)] {
        d[s..e].fill(0);
    }
    d
}

/// Batches of (offset, data); ranges overlap inside and across batches.
fn batches() -> Vec<Vec<(u64, Vec<u8>)>> {
    vec![
        vec![
            (0, pattern(1, 8192)),
            (65536, pattern(2, 100)),
            (4096, pattern(3, 8192)),
        ],
        vec![(2048, pattern(4, 4096)), (500_000, pattern(5, 300_000))],
        vec![
            (SIZE as u64 - 512, pattern(6, 512)),
            (65000, pattern(7, 1000)),
        ],
        vec![(0, pattern(8, SIZE))],
    ]
}

/// The destination after every batch.
fn applied() -> Vec<u8> {
    let mut d = original();
    for b in batches() {
        for (o, data) in b {
            d[o as usize..o as usize + data.len()].copy_from_slice(&data);
        }
    }
    d
}

fn identity(dest: &Destination, source: &str) -> UndoIdentity {
    UndoIdentity::new("crashtest", Some(source.into()), source, dest).unwrap()
}

/// An identity that does not depend on the destination file's inode: the crash states are
/// made on one file and resumed on copies of it.
fn fixed(source: &str) -> UndoIdentity {
    UndoIdentity {
        tool: "crashtest".into(),
        source_id: Some(source.into()),
        source: source.into(),
        dest: DestIdentity {
            kind: "file".into(),
            size: SIZE as u64,
            id: "file:test".into(),
            path: "dest".into(),
        },
    }
}

fn restore_and_check(undo_bytes: &[u8], dest_bytes: &[u8], original: &[u8], what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let undo = dir.path().join("undo");
    let dest = dir.path().join("dest");
    fs::write(&undo, undo_bytes).unwrap();
    // From a file: checked whole first.
    fs::write(&dest, dest_bytes).unwrap();
    let st = apply(
        Input::File(undo.clone()),
        &dest,
        &ApplyOptions::default(),
        &Progress::new(),
    )
    .unwrap_or_else(|e| panic!("{what}: restore from file failed: {e}"));
    assert!(st.journaled, "{what}");
    assert!(
        fs::read(&dest).unwrap() == original,
        "{what}: restore from file"
    );
    // From a pipe: held batch by batch until each commit.
    fs::write(&dest, dest_bytes).unwrap();
    apply(
        Input::Stream(
            Box::new(std::io::Cursor::new(undo_bytes.to_vec())),
            "-".into(),
        ),
        &dest,
        &ApplyOptions::default(),
        &Progress::new(),
    )
    .unwrap_or_else(|e| panic!("{what}: restore from pipe failed: {e}"));
    assert!(
        fs::read(&dest).unwrap() == original,
        "{what}: restore from pipe"
    );
}

/// Runs every batch as a rerun of the same apply does (saves skip what the journal holds).
fn run_all(undo: &mut UndoLog, dest: &Destination) {
    for b in batches() {
        for (o, d) in &b {
            undo.save(dest, *o, d.len() as u64).unwrap();
        }
        undo.commit().unwrap();
        for (o, d) in &b {
            dest.write_all_at(d, *o).unwrap();
        }
    }
    dest.sync().unwrap();
}

/// From a crash state (journal and destination bytes): resume and finish the apply, then
/// restore: the destination must be the applied content, then the original.
fn resume_and_check(undo_bytes: &[u8], dest_bytes: &[u8], original: &[u8], what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let undo = dir.path().join("undo");
    let dest_path = dir.path().join("dest");
    fs::write(&dest_path, dest_bytes).unwrap();
    let dest = Destination::open(&dest_path).unwrap();
    let id = fixed("chain-1");
    fs::write(&undo, undo_bytes).unwrap();
    let mut log = match UndoLog::open(&undo, &id).unwrap() {
        UndoOpen::Ready(l) => *l,
        UndoOpen::Complete(_) => panic!("{what}: an interrupted journal taken for complete"),
    };
    assert_eq!(log.stats().state, UndoState::Resumed, "{what}");
    run_all(&mut log, &dest);
    log.finish().unwrap();
    assert!(
        fs::read(&dest_path).unwrap() == applied(),
        "{what}: the resumed apply"
    );
    // A rerun now is a no-op.
    assert!(
        matches!(UndoLog::open(&undo, &id).unwrap(), UndoOpen::Complete(s) if s.state == UndoState::Complete),
        "{what}: finished journal not complete"
    );
    restore_and_check(
        &fs::read(&undo).unwrap(),
        &applied(),
        original,
        &format!("{what}, resumed and finished"),
    );
}

fn run_until(dir: &Path, k: usize, in_flight: bool) -> (Vec<u8>, Vec<u8>, UndoLog, Destination) {
    let dest_path = dir.join("dest");
    fs::write(&dest_path, original()).unwrap();
    let dest = Destination::open(&dest_path).unwrap();
    let undo_path = dir.join("undo");
    let _ = fs::remove_file(&undo_path);
    let mut undo = UndoLog::create(&undo_path, &fixed("chain-1")).unwrap();
    let all = batches();
    for b in &all[..k] {
        for (o, d) in b {
            undo.save(&dest, *o, d.len() as u64).unwrap();
        }
        undo.commit().unwrap();
        for (o, d) in b {
            dest.write_all_at(d, *o).unwrap();
        }
    }
    let committed = fs::read(&undo_path).unwrap();
    if in_flight {
        for (o, d) in &all[k] {
            undo.save(&dest, *o, d.len() as u64).unwrap();
        }
    }
    (committed, fs::read(&dest_path).unwrap(), undo, dest)
}

#[test]
fn every_crash_point_restores_the_original_and_resumes() {
    let original = original();
    let n = batches().len();
    let mut cases = 0;
    let check = |u: &[u8], d: &[u8], what: &str| {
        restore_and_check(u, d, &original, what);
        resume_and_check(u, d, &original, what);
    };
    for k in 0..n {
        let dir = tempfile::tempdir().unwrap();
        // Batch k saved but not committed: the destination holds batches 0..k.
        let (committed, dest_now, _undo, _d) = run_until(dir.path(), k, true);
        let full = fs::read(dir.path().join("undo")).unwrap();
        assert!(full.len() > committed.len());
        let tail = full.len() - committed.len();
        // The tail kept whole (crash before the commit marker).
        check(&full, &dest_now, &format!("batch {k}: whole tail"));
        // Cut anywhere: inside headers, inside data, at record boundaries.
        let mut cuts: Vec<usize> = (0..=24).collect();
        cuts.extend([
            4096,
            4107,
            4108,
            4109,
            4120,
            8204,
            tail / 2,
            tail - 1,
            tail - 12,
        ]);
        for cut in cuts.into_iter().filter(|&c| c <= tail) {
            check(
                &full[..committed.len() + cut],
                &dest_now,
                &format!("batch {k}: tail cut at {cut}"),
            );
            cases += 1;
        }
        // Data that never reached the disk reads back as zeros (size updated, blocks not).
        let mut zeroed = committed.clone();
        zeroed.extend(std::iter::repeat_n(0u8, tail));
        check(&zeroed, &dest_now, &format!("batch {k}: zeroed tail"));
        zeroed.extend(std::iter::repeat_n(0u8, 4096));
        check(&zeroed, &dest_now, &format!("batch {k}: zeroed, grown"));
        // Half of the records' bytes zeroed, the rest present.
        let mut half = full.clone();
        for b in half[committed.len() + tail / 3..committed.len() + 2 * tail / 3].iter_mut() {
            *b = 0;
        }
        check(&half, &dest_now, &format!("batch {k}: holes in tail"));
        // Stale blocks (of a journal of the whole apply) where the tail should be: its
        // records and commits are well formed, but no commit's digest matches this file.
        let dir2 = tempfile::tempdir().unwrap();
        let (_c, _d, other, _dest) = run_until(dir2.path(), n, false);
        other.finish().unwrap();
        let stale = fs::read(dir2.path().join("undo")).unwrap();
        let mut grafted = committed.clone();
        grafted.extend_from_slice(&stale[committed.len()..]);
        check(&grafted, &dest_now, &format!("batch {k}: stale tail"));
        cases += 5;
    }
    // Crashes after a commit, in the middle of overwriting the batch it covers.
    for k in 0..n {
        let dir = tempfile::tempdir().unwrap();
        let (_c, _d0, mut undo, dest) = run_until(dir.path(), k, false);
        let b = &batches()[k];
        for (o, d) in b {
            undo.save(&dest, *o, d.len() as u64).unwrap();
        }
        undo.commit().unwrap();
        let undo_bytes = fs::read(dir.path().join("undo")).unwrap();
        for (i, (o, d)) in b.iter().enumerate() {
            // Half of this write landed, then the crash.
            dest.write_all_at(&d[..d.len() / 2], *o).unwrap();
            let now = fs::read(dir.path().join("dest")).unwrap();
            check(
                &undo_bytes,
                &now,
                &format!("batch {k}: crash during write {i}"),
            );
            dest.write_all_at(d, *o).unwrap();
            cases += 1;
        }
    }
    // The finished file restores too.
    let dir = tempfile::tempdir().unwrap();
    let (_c, _d, undo, _dest) = run_until(dir.path(), n, false);
    let st = undo.finish().unwrap();
    assert_eq!(st.bytes, SIZE as u64, "every byte saved exactly once");
    restore_and_check(
        &fs::read(dir.path().join("undo")).unwrap(),
        &fs::read(dir.path().join("dest")).unwrap(),
        &original,
        "finished",
    );
    assert!(cases > 100);
}

#[test]
fn undo_file_layout() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, _d, undo, _dest) = run_until(dir.path(), 2, false);
    let id = fixed("chain-1");
    undo.finish().unwrap();
    let b = fs::read(dir.path().join("undo")).unwrap();
    // Read here from the format description, not with the crate's decoder.
    let hs = b"lvmsync PROTO[3] discards\n".len();
    assert_eq!(&b[..hs], b"lvmsync PROTO[3] discards\n");
    let be64 = |p: usize| u64::from_be_bytes(b[p..p + 8].try_into().unwrap());
    let be32 = |p: usize| u32::from_be_bytes(b[p..p + 4].try_into().unwrap()) as usize;
    assert_eq!(&b[hs..hs + 8], b"\xffJOURNAL", "the JOURNAL item first");
    let text_len = be32(hs + 8);
    let text = std::str::from_utf8(&b[hs + 12..hs + 12 + text_len]).unwrap();
    let (head, rest) = text.split_once('\n').unwrap();
    assert_eq!(head, "ironshed undo journal 1");
    let (nonce, rest) = rest.split_once('\n').unwrap();
    assert!(
        nonce.starts_with("journal-id ") && nonce.len() == 11 + 32,
        "{nonce}"
    );
    assert_eq!(
        rest.as_bytes(),
        &id.to_text(0)[id.to_text(0).iter().position(|&c| c == b'\n').unwrap() + 1..]
            [11 + 32 + 1..]
    );
    assert!(rest.starts_with("tool crashtest\nsource-id chain-1\n"));
    assert!(text.contains(&format!("\ndestination-size {SIZE}\n")));
    let mut p = hs + 12 + text_len;
    let mut commits = Vec::new();
    let mut end = None;
    let (mut records, mut discards, mut data) = (0, 0, 0);
    let original = original();
    while p < b.len() {
        let (off, len) = (be64(p), be32(p + 8));
        match &b[p..p + 8] {
            b"\xffCOMMIT\0" => {
                assert_eq!(len, 16);
                assert_eq!(
                    be64(p + 20),
                    xxhash_rust::xxh3::xxh3_64(&b[..p]),
                    "a commit's digest covers the file before it"
                );
                commits.push(be64(p + 12));
            }
            b"\xffEND\0\0\0\0" => {
                assert_eq!(len, 24);
                end = Some((be64(p + 12), be64(p + 20), be64(p + 28), p));
            }
            _ if len & 0x8000_0000 != 0 => {
                // A discard record: old zeros, no data follows.
                let n = len & 0x7fff_ffff;
                assert!(off < 1 << 63 && n > 0);
                let o = off as usize;
                assert!(original[o..o + n].iter().all(|&x| x == 0));
                records += 1;
                discards += 1;
                p += 12;
                continue;
            }
            _ => {
                assert!(off < 1 << 63 && len > 0);
                let o = off as usize;
                assert_eq!(&b[p + 12..p + 12 + len], &original[o..o + len]);
                // No whole 4 KiB block of the destination in it is all zeros.
                for blk in (o.div_ceil(4096) * 4096..(o + len) / 4096 * 4096).step_by(4096) {
                    assert!(original[blk..blk + 4096].iter().any(|&x| x != 0), "{blk}");
                }
                records += 1;
                data += len as u64;
            }
        }
        p += 12 + len;
    }
    assert!(discards > 0, "the zero runs are discard records");
    assert_eq!(commits, [1, 2]);
    let (items, bytes, digest, at) = end.expect("an END mark: the apply finished");
    assert_eq!(at + 36, b.len(), "END is the last item");
    assert_eq!(items, 1 + records + 2);
    assert!(bytes > 0);
    assert_eq!(
        bytes, data,
        "END counts the data bytes of data records only"
    );
    assert_eq!(digest, xxhash_rust::xxh3::xxh3_64(&b[..at]));
    // Private: it holds disk contents.
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(dir.path().join("undo"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // No temporary file left behind.
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn a_journal_is_resumed_only_by_the_apply_that_started_it() {
    let dir = tempfile::tempdir().unwrap();
    let dest_path = dir.path().join("dest");
    fs::write(&dest_path, original()).unwrap();
    let dest = Destination::open(&dest_path).unwrap();
    let path = dir.path().join("undo");
    let mut undo = UndoLog::create(&path, &identity(&dest, "chain-1")).unwrap();
    for (i, b) in batches().iter().take(3).enumerate() {
        for (o, d) in b {
            undo.save(&dest, *o, d.len() as u64).unwrap();
        }
        if i < 2 {
            undo.commit().unwrap();
        }
    }
    drop(undo);
    let before = fs::read(&path).unwrap();
    // Another source.
    let e = UndoLog::open(&path, &identity(&dest, "chain-2")).unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("this undo file was started by another apply (it was started for chain-1 [chain-1], this is chain-2 [chain-2]); refusing to use it"),
        "{m}"
    );
    // Another destination (another file of the same size).
    let other = dir.path().join("other");
    fs::write(&other, vec![0u8; SIZE]).unwrap();
    let od = Destination::open(&other).unwrap();
    let m = UndoLog::open(&path, &identity(&od, "chain-1"))
        .unwrap_err()
        .to_string();
    assert!(m.contains("it was started for the destination "), "{m}");
    assert!(m.contains("/other (file, file:"), "{m}");
    // Another tool.
    let mut id = identity(&dest, "chain-1");
    id.tool = "vmdksync".into();
    let m = UndoLog::open(&path, &id).unwrap_err().to_string();
    assert!(
        m.contains("it was started by crashtest, this is vmdksync"),
        "{m}"
    );
    assert_eq!(
        fs::read(&path).unwrap(),
        before,
        "a refused journal is untouched"
    );
    // The same apply resumes it; an unidentified source is not compared.
    let mut id = identity(&dest, "chain-1");
    id.source_id = None;
    match UndoLog::open(&path, &id).unwrap() {
        UndoOpen::Ready(l) => {
            let st = l.stats();
            assert_eq!(st.state, UndoState::Resumed);
            assert!(st.source_unchecked);
            assert_eq!(st.commits, 2);
            assert!(st.earlier_bytes > 0 && st.earlier_bytes == st.bytes);
        }
        UndoOpen::Complete(_) => panic!("complete"),
    }
    // Resuming cut off the uncommitted tail.
    assert!(fs::read(&path).unwrap().len() < before.len());
}

#[test]
fn a_file_that_is_no_journal_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let dest_path = dir.path().join("dest");
    fs::write(&dest_path, vec![1u8; 4096]).unwrap();
    let dest = Destination::open(&dest_path).unwrap();
    let path = dir.path().join("undo");
    // A plain stream whose first record is (0, 0): no journal, whatever follows.
    let mut plain = b"lvmsync PROTO[3]\n".to_vec();
    plain.extend_from_slice(&[0u8; 12]);
    plain.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
    for content in [&b"text"[..], &plain] {
        fs::write(&path, content).unwrap();
        let e = UndoLog::open(&path, &identity(&dest, "x")).unwrap_err();
        assert!(
            e.to_string()
                .contains("refusing to overwrite an earlier snapback"),
            "{e}"
        );
        assert_eq!(fs::read(&path).unwrap(), content);
    }
    // UndoLog::create never resumes.
    let (_c, _d, undo, _dest) = run_until(dir.path(), 1, false);
    drop(undo);
    let e = UndoLog::create(&path, &identity(&dest, "x")).unwrap_err();
    assert!(e.to_string().contains("resuming was not asked for"), "{e}");
}
