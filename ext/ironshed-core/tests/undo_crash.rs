//! Crash safety of the snapback (undo) writer. The writer is driven batch by batch as a tool
//! uses it (save every range of a batch, commit, overwrite); a crash is simulated at every
//! stage by taking the undo file as a crash could leave it (an uncommitted tail kept whole,
//! cut at many byte positions, read back as zeros, or grown with zeros) together with the
//! destination as it was at that moment. Restoring that undo file with `apply` (from a file
//! and from a pipe) must give back the destination's original content every time.

use ironshed_core::block::Destination;
use ironshed_core::wire::{apply, ApplyOptions, Input, UndoLog};
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

fn run_until(dir: &Path, k: usize, in_flight: bool) -> (Vec<u8>, Vec<u8>, UndoLog, Destination) {
    let dest_path = dir.join("dest");
    fs::write(&dest_path, pattern(99, SIZE)).unwrap();
    let dest = Destination::open(&dest_path).unwrap();
    let undo_path = dir.join("undo");
    let _ = fs::remove_file(&undo_path);
    let mut undo = UndoLog::create(&undo_path).unwrap();
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
fn every_crash_point_restores_the_original() {
    let original = pattern(99, SIZE);
    let n = batches().len();
    let mut cases = 0;
    for k in 0..n {
        let dir = tempfile::tempdir().unwrap();
        // Batch k saved but not committed: the destination holds batches 0..k.
        let (committed, dest_now, _undo, _d) = run_until(dir.path(), k, true);
        let full = fs::read(dir.path().join("undo")).unwrap();
        assert!(full.len() > committed.len());
        let tail = full.len() - committed.len();
        // The tail kept whole (crash before the commit marker).
        restore_and_check(
            &full,
            &dest_now,
            &original,
            &format!("batch {k}: whole tail"),
        );
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
            restore_and_check(
                &full[..committed.len() + cut],
                &dest_now,
                &original,
                &format!("batch {k}: tail cut at {cut}"),
            );
            cases += 1;
        }
        // Data that never reached the disk reads back as zeros (size updated, blocks not).
        let mut zeroed = committed.clone();
        zeroed.extend(std::iter::repeat_n(0u8, tail));
        restore_and_check(
            &zeroed,
            &dest_now,
            &original,
            &format!("batch {k}: zeroed tail"),
        );
        zeroed.extend(std::iter::repeat_n(0u8, 4096));
        restore_and_check(
            &zeroed,
            &dest_now,
            &original,
            &format!("batch {k}: zeroed, grown"),
        );
        // Half of the records' bytes zeroed, the rest present.
        let mut half = full.clone();
        for b in half[committed.len() + tail / 3..committed.len() + 2 * tail / 3].iter_mut() {
            *b = 0;
        }
        restore_and_check(
            &half,
            &dest_now,
            &original,
            &format!("batch {k}: holes in tail"),
        );
        cases += 4;
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
            restore_and_check(
                &undo_bytes,
                &now,
                &original,
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
    undo.finish().unwrap();
    let b = fs::read(dir.path().join("undo")).unwrap();
    assert_eq!(&b[..17], b"lvmsync PROTO[3]\n");
    assert_eq!(&b[17..29], &[0u8; 12], "opening marker (0, 0)");
    // Commit markers are zero-length records at offsets 1, 2, ...
    let mut p = 29;
    let mut markers = Vec::new();
    while p < b.len() {
        let off = u64::from_be_bytes(b[p..p + 8].try_into().unwrap());
        let len = u32::from_be_bytes(b[p + 8..p + 12].try_into().unwrap()) as usize;
        if len == 0 {
            markers.push(off);
        }
        p += 12 + len;
    }
    assert_eq!(markers, [1, 2]);
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
