//! The journal's pieces: the saved-range set, the identity text and its comparison, the
//! commit tracker. Crash states and resumes are in tests/undo_crash.rs, SIGKILL at dozens of
//! points in tests/undo_kill.rs.

use super::*;
use crate::wire::proto3::{ControlKind, RecordHeader};

#[test]
fn range_set_reports_only_unsaved_parts() {
    let mut s = RangeSet::default();
    assert_eq!(s.missing(10, 20), [(10, 20)]);
    s.insert(10, 20);
    s.insert(30, 40);
    assert_eq!(s.missing(0, 50), [(0, 10), (20, 30), (40, 50)]);
    assert_eq!(s.missing(12, 18), []);
    assert_eq!(s.missing(15, 35), [(20, 30)]);
    s.insert(20, 30);
    assert_eq!(s.0.len(), 1);
    assert_eq!(s.missing(0, 100), [(0, 10), (40, 100)]);
    s.insert(5, 45);
    assert_eq!(s.0.iter().collect::<Vec<_>>(), [(&5, &45)]);
}

fn id(source: Option<&str>, dest_id: &str, size: u64) -> UndoIdentity {
    UndoIdentity {
        tool: "lvmsync".into(),
        source_id: source.map(String::from),
        source: format!("the stream {}", source.unwrap_or("-")),
        dest: DestIdentity {
            kind: "block device".into(),
            size,
            id: dest_id.into(),
            path: "/dev/vg1/web01".into(),
        },
    }
}

#[test]
fn identity_text_round_trips_and_is_line_safe() {
    let mut a = id(
        Some("stream-layout:00ff:3:4096"),
        "dm-uuid:LVM-abc",
        1 << 30,
    );
    a.dest.path = "/dev/odd\nname\u{7}".into();
    let t = a.to_text(0x1234);
    let text = std::str::from_utf8(&t).unwrap();
    assert!(text.starts_with(
        "ironshed undo journal 1\njournal-id 00000000000000000000000000001234\ntool lvmsync\n"
    ));
    assert!(text.contains("\ndestination /dev/odd?name?\n"), "{text}");
    let b = UndoIdentity::from_text(&t).unwrap();
    assert_eq!(b.source_id, a.source_id);
    assert_eq!(b.dest.path, "/dev/odd?name?");
    assert!(b.differences(&a).is_empty());
    // Unidentified sources are stored as "-".
    let u = id(None, "x", 1);
    assert_eq!(
        UndoIdentity::from_text(&u.to_text(1)).unwrap().source_id,
        None
    );
    for (bad, why) in [
        (&b"ironshed undo journal 2\n"[..], "does not start with"),
        (
            b"ironshed undo journal 1\ntool a\ntool b\n",
            "names 'tool' twice",
        ),
        (b"ironshed undo journal 1\ntool a\n", "lacks 'source-id'"),
        (b"\xff\xfe", "not UTF-8"),
    ] {
        let e = UndoIdentity::from_text(bad).unwrap_err();
        assert!(e.contains(why), "{e}");
    }
}

#[test]
fn differences_name_what_differs() {
    let a = id(Some("s1"), "dm-uuid:A", 100);
    assert!(a.differences(&a).is_empty());
    let d = a.differences(&id(Some("s2"), "dm-uuid:A", 100));
    assert_eq!(
        d,
        ["it was started for the stream s1 [s1], this is the stream s2 [s2]"]
    );
    let d = a.differences(&id(Some("s1"), "dm-uuid:B", 200));
    assert_eq!(d, ["it was started for the destination /dev/vg1/web01 (block device, dm-uuid:A, 100 bytes), this is /dev/vg1/web01 (block device, dm-uuid:B, 200 bytes)"]);
    let mut v = a.clone();
    v.tool = "vmdksync".into();
    assert_eq!(
        a.differences(&v),
        ["it was started by lvmsync, this is vmdksync"]
    );
    // A source that cannot be identified before the first write is not compared.
    assert!(a.differences(&id(None, "dm-uuid:A", 100)).is_empty());
    assert!(a.source_unchecked(&id(None, "dm-uuid:A", 100)));
    assert!(!a.source_unchecked(&a));
}

#[test]
fn tracker_takes_commits_in_sequence_with_their_digest_only() {
    let data = Record {
        header: RecordHeader { offset: 0, len: 4 },
        kind: RecordKind::Data,
        index: 1,
        at: 0,
    };
    let ctl = Record {
        header: RecordHeader {
            offset: ControlKind::Commit.tag(),
            len: 16,
        },
        kind: RecordKind::Control,
        index: 2,
        at: 0,
    };
    let commit = |seq, digest, before| ControlItem {
        control: Control::Commit { seq, digest },
        digest_before: before,
    };
    let end = ControlItem {
        control: Control::End(Summary::default()),
        digest_before: 0,
    };
    let mut t = JournalTracker::default();
    // A discard record (old zeros) is old data too: it needs a commit like a data record.
    let discard = Record {
        kind: RecordKind::Discard,
        ..data
    };
    let mut d = t;
    assert_eq!(d.classify(&discard, None), Mark::Data);
    assert_eq!(d.classify(&ctl, Some(&end)), Mark::Tail);
    assert_eq!(t.classify(&data, None), Mark::Data);
    // END with data pending: not complete.
    assert_eq!(t.clone().classify(&ctl, Some(&end)), Mark::Tail);
    assert_eq!(t.clone().classify(&ctl, Some(&commit(2, 7, 7))), Mark::Tail);
    assert_eq!(t.clone().classify(&ctl, Some(&commit(1, 7, 8))), Mark::Tail);
    assert_eq!(t.classify(&ctl, Some(&commit(1, 7, 7))), Mark::Commit);
    assert_eq!(t.clone().classify(&ctl, Some(&commit(1, 9, 9))), Mark::Tail);
    assert_eq!(t.classify(&ctl, Some(&end)), Mark::Complete);
    // A zero-length record (what zeroed blocks read as) is no data and no commit.
    let zero = Record {
        header: RecordHeader { offset: 0, len: 0 },
        ..data
    };
    assert_eq!(JournalTracker::default().classify(&zero, None), Mark::Tail);
}

#[test]
fn zero_runs_follow_whole_blocks_of_the_destination() {
    let b = ZERO_BLOCK as usize;
    let mut d = vec![0u8; 4 * b];
    d[b + 7] = 1; // block 1 is not zero
    assert_eq!(
        zero_runs(0, &d),
        [(0, b, true), (b, b, false), (2 * b, 2 * b, true)]
    );
    // From an unaligned offset, the first block is partial: 100 bytes up to the boundary.
    let at = ZERO_BLOCK - 100;
    let mut d = vec![0u8; 100 + 2 * b];
    d[99] = 5;
    assert_eq!(zero_runs(at, &d), [(0, 100, false), (100, 2 * b, true)]);
    // A non-zero byte anywhere in a block keeps the whole block as data.
    let mut d = vec![0u8; 2 * b];
    d[2 * b - 1] = 1;
    assert_eq!(zero_runs(0, &d), [(0, b, true), (b, b, false)]);
    assert_eq!(zero_runs(0, &[]), []);
}

/// A journal's items as the decoder reads them: (offset, len, discard) of each record,
/// and whether it has the extended handshake.
fn items(path: &Path) -> (bool, Vec<(u64, u32, bool)>) {
    let mut dec = Decoder::new(File::open(path).unwrap(), "j").unwrap();
    let mut out = Vec::new();
    while let Some(r) = dec.next_record().unwrap() {
        if !r.is_control() {
            out.push((r.header.offset, r.header.len, r.is_discard()));
        }
    }
    (dec.discards(), out)
}

fn restore(undo: &Path, dest: &Path) {
    use crate::wire::{apply, ApplyOptions, Input};
    apply(
        Input::File(undo.to_path_buf()),
        dest,
        &ApplyOptions::default(),
        &crate::Progress::new(),
    )
    .unwrap();
}

#[test]
fn old_zeros_become_discard_records_and_restore_as_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let (dest_path, undo) = (dir.path().join("dest"), dir.path().join("undo"));
    // 8 MiB of zeros with data in three places, one of them not block-aligned.
    let size = 8usize << 20;
    let mut before = vec![0u8; size];
    let data = [
        (4096usize, 8192usize),
        (3 << 20, 100),
        ((5 << 20) + 10, 5000),
    ];
    for (i, &(o, l)) in data.iter().enumerate() {
        for (k, b) in before[o..o + l].iter_mut().enumerate() {
            *b = (k as u8) ^ (i as u8 + 1) | 1;
        }
    }
    std::fs::write(&dest_path, &before).unwrap();
    let dest = Destination::open(&dest_path).unwrap();
    let mut log = UndoLog::create(&undo, &id(Some("s"), "file:t", size as u64)).unwrap();
    // Saved in pieces as an apply does, one of them from an unaligned offset.
    log.save(&dest, 0, 1000).unwrap();
    log.save(&dest, 1000, size as u64 - 1000).unwrap();
    log.commit().unwrap();
    dest.write_all_at(&vec![0xeeu8; size], 0).unwrap();
    let st = log.finish().unwrap();
    assert_eq!(st.bytes, size as u64);
    // Blocks holding data: 4096..12288 (2 blocks), 3 MiB (1 block), 5 MiB + 10 .. + 5010 (2).
    let nonzero = 5 * ZERO_BLOCK;
    assert_eq!(st.zero_bytes, size as u64 - nonzero);
    let (discards, recs) = items(&undo);
    assert!(discards, "a new journal has the extended handshake");
    let data_bytes: u64 = recs.iter().filter(|r| !r.2).map(|r| u64::from(r.1)).sum();
    assert_eq!(data_bytes, nonzero, "{recs:?}");
    let file = std::fs::metadata(&undo).unwrap().len();
    assert!(file < nonzero + 4096 + 40 * 12, "{file} bytes: {recs:?}");
    assert_eq!(st.file_bytes, file);
    // The records cover the range once, in order.
    let mut at = 0u64;
    for &(o, l, _) in &recs {
        assert_eq!(o, at, "{recs:?}");
        at += u64::from(l);
    }
    assert_eq!(at, size as u64);
    restore(&undo, &dest_path);
    assert!(
        std::fs::read(&dest_path).unwrap() == before,
        "restored byte for byte"
    );
}

#[test]
fn nonzero_old_data_is_kept_as_data_records() {
    let dir = tempfile::tempdir().unwrap();
    let (dest_path, undo) = (dir.path().join("dest"), dir.path().join("undo"));
    let size = 3usize << 20;
    let before: Vec<u8> = (0..size).map(|i| (i % 251) as u8 | 1).collect();
    std::fs::write(&dest_path, &before).unwrap();
    let dest = Destination::open(&dest_path).unwrap();
    let mut log = UndoLog::create(&undo, &id(Some("s"), "file:t", size as u64)).unwrap();
    log.before_write(&dest, 0, size as u64).unwrap();
    dest.write_all_at(&vec![0u8; size], 0).unwrap();
    let st = log.finish().unwrap();
    assert_eq!((st.bytes, st.zero_bytes), (size as u64, 0));
    let (_, recs) = items(&undo);
    assert!(recs.iter().all(|r| !r.2), "{recs:?}");
    assert_eq!(
        recs.len(),
        3,
        "records of {MAX_UNDO_RECORD} bytes: {recs:?}"
    );
    assert!(std::fs::metadata(&undo).unwrap().len() > size as u64);
    restore(&undo, &dest_path);
    assert!(std::fs::read(&dest_path).unwrap() == before);
}

#[test]
fn a_long_zero_run_is_cut_into_discard_records_of_at_most_a_gibibyte() {
    let dir = tempfile::tempdir().unwrap();
    let (dest_path, undo) = (dir.path().join("dest"), dir.path().join("undo"));
    // Sparse: 2.5 GiB of zeros cost no disk space.
    let size = (5u64 << 30) / 2;
    let f = File::create(&dest_path).unwrap();
    f.set_len(size).unwrap();
    let dest = Destination::open(&dest_path).unwrap();
    let mut log = UndoLog::create(&undo, &id(Some("s"), "file:t", size)).unwrap();
    log.before_write(&dest, 0, size).unwrap();
    log.finish().unwrap();
    let (_, recs) = items(&undo);
    assert_eq!(
        recs,
        [
            (0, 1 << 30, true),
            (1 << 30, 1 << 30, true),
            (2 << 30, 1 << 29, true)
        ]
    );
}

#[test]
fn a_resumed_journal_knows_its_discard_records() {
    let dir = tempfile::tempdir().unwrap();
    let (dest_path, undo) = (dir.path().join("dest"), dir.path().join("undo"));
    let size = 1u64 << 20;
    let mut before = vec![0u8; size as usize];
    before[..4096].fill(9);
    std::fs::write(&dest_path, &before).unwrap();
    let dest = Destination::open(&dest_path).unwrap();
    let ident = id(Some("s"), "file:t", size);
    let mut log = UndoLog::create(&undo, &ident).unwrap();
    log.before_write(&dest, 0, 65536).unwrap();
    // The range is overwritten; then the run is interrupted.
    dest.write_all_at(&[7u8; 65536], 0).unwrap();
    drop(log);
    let mut log = match UndoLog::open(&undo, &ident).unwrap() {
        UndoOpen::Ready(l) => *l,
        UndoOpen::Complete(_) => panic!("complete"),
    };
    let st = log.stats();
    assert_eq!(
        (st.state, st.bytes, st.zero_bytes),
        (UndoState::Resumed, 65536, 61440)
    );
    // The rerun saves nothing of what the discard record holds, only what is new.
    let len_before = std::fs::metadata(&undo).unwrap().len();
    log.before_write(&dest, 0, 65536).unwrap();
    assert_eq!(std::fs::metadata(&undo).unwrap().len(), len_before);
    log.before_write(&dest, 0, 2 * 65536).unwrap();
    dest.write_all_at(&[7u8; 2 * 65536], 0).unwrap();
    let st = log.finish().unwrap();
    assert_eq!((st.bytes, st.zero_bytes), (2 * 65536, 2 * 65536 - 4096));
    assert!(matches!(
        UndoLog::open(&undo, &ident).unwrap(),
        UndoOpen::Complete(s) if s.zero_bytes == 2 * 65536 - 4096
    ));
    restore(&undo, &dest_path);
    assert!(std::fs::read(&dest_path).unwrap() == before);
}

/// A journal in the form written before discard records existed, made here from the format
/// description (not by [`UndoLog`]): plain handshake, `JOURNAL`, data records, `COMMIT`s, and
/// `END` when `finished`.
fn old_journal(ident: &UndoIdentity, batches: &[&[(u64, &[u8])]], finished: bool) -> Vec<u8> {
    let mut f = b"lvmsync PROTO[3]\n".to_vec();
    let text = ident.to_text(42);
    let tag = |name: &[u8]| {
        let mut t = [0u8; 8];
        t[0] = 0xff;
        t[1..1 + name.len()].copy_from_slice(name);
        t
    };
    let head = |f: &mut Vec<u8>, off: [u8; 8], len: usize| {
        f.extend_from_slice(&off);
        f.extend_from_slice(&(len as u32).to_be_bytes());
    };
    head(&mut f, tag(b"JOURNAL"), text.len());
    f.extend_from_slice(&text);
    let (mut items, mut data) = (1u64, 0u64);
    for (seq, b) in batches.iter().enumerate() {
        for (o, d) in b.iter() {
            head(&mut f, o.to_be_bytes(), d.len());
            f.extend_from_slice(d);
            items += 1;
            data += d.len() as u64;
        }
        let digest = xxhash_rust::xxh3::xxh3_64(&f);
        head(&mut f, tag(b"COMMIT"), 16);
        f.extend_from_slice(&(seq as u64 + 1).to_be_bytes());
        f.extend_from_slice(&digest.to_be_bytes());
        items += 1;
    }
    if finished {
        let digest = xxhash_rust::xxh3::xxh3_64(&f);
        head(&mut f, tag(b"END"), 24);
        for x in [items, data, digest] {
            f.extend_from_slice(&x.to_be_bytes());
        }
    }
    f
}

#[test]
fn journals_of_the_older_plain_form_apply_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (dest_path, undo) = (dir.path().join("dest"), dir.path().join("undo"));
    let size = 1u64 << 20;
    // Before the first run: zeros, with data at 64 KiB.
    let mut before = vec![0u8; size as usize];
    before[65536..65536 + 4096].fill(3);
    std::fs::write(&dest_path, vec![0xaau8; size as usize]).unwrap();
    let dest = Destination::open(&dest_path).unwrap();
    let ident = UndoIdentity::new("lvmsync", Some("s".into()), "s", &dest).unwrap();
    let zeros = vec![0u8; 8192];
    let first: &[(u64, &[u8])] = &[(0, &zeros), (65536, &before[65536..65536 + 4096])];
    // Finished: restores (file and pipe), and a rerun is a no-op.
    std::fs::write(&undo, old_journal(&ident, &[first], true)).unwrap();
    let st = crate::wire::apply(
        crate::wire::Input::Stream(
            Box::new(std::io::Cursor::new(std::fs::read(&undo).unwrap())),
            "-".into(),
        ),
        &dest_path,
        &Default::default(),
        &crate::Progress::new(),
    )
    .unwrap();
    assert!(st.journaled && st.journal_complete && !st.discards_in_stream);
    let now = std::fs::read(&dest_path).unwrap();
    assert!(now[..8192] == before[..8192] && now[65536..69632] == before[65536..69632]);
    std::fs::write(&dest_path, vec![0xaau8; size as usize]).unwrap();
    restore(&undo, &dest_path);
    let now = std::fs::read(&dest_path).unwrap();
    assert!(now[..8192] == before[..8192] && now[65536..69632] == before[65536..69632]);
    assert!(matches!(
        UndoLog::open(&undo, &ident).unwrap(),
        UndoOpen::Complete(s) if s.bytes == 8192 + 4096 && s.zero_bytes == 0
    ));
    // Interrupted (the destination was overwritten where the journal holds old data): the
    // rerun resumes it in its own form, data records only, zeros included.
    std::fs::write(&undo, old_journal(&ident, &[first], false)).unwrap();
    let mut dest_now = before.clone();
    dest_now[..8192].fill(0xaa);
    dest_now[65536..69632].fill(0xaa);
    std::fs::write(&dest_path, &dest_now).unwrap();
    let mut log = match UndoLog::open(&undo, &ident).unwrap() {
        UndoOpen::Ready(l) => *l,
        UndoOpen::Complete(_) => panic!("complete"),
    };
    assert_eq!(log.stats().state, UndoState::Resumed);
    log.before_write(&dest, 0, 200_000).unwrap();
    dest.write_all_at(&vec![0xaau8; 200_000], 0).unwrap();
    let st = log.finish().unwrap();
    assert_eq!((st.bytes, st.zero_bytes), (200_000, 0));
    let (discards, recs) = items(&undo);
    assert!(!discards && recs.iter().all(|r| !r.2), "{recs:?}");
    restore(&undo, &dest_path);
    assert!(std::fs::read(&dest_path).unwrap() == before);
}

#[test]
fn one_large_save_is_committed_in_groups_a_pipe_receiver_can_hold() {
    // One save of 20 MiB of old data (as under a long discard record): the journal commits
    // every COMMIT_EVERY bytes by itself, so a receiver reading it from a pipe, which holds
    // a commit group in memory, never holds more than about that; restoring it from a pipe
    // gives the old data back.
    let dir = tempfile::tempdir().unwrap();
    let (dest_path, undo) = (dir.path().join("dest"), dir.path().join("undo"));
    let size = 20usize << 20;
    let before: Vec<u8> = (0..size).map(|i| (i % 253) as u8 | 1).collect();
    std::fs::write(&dest_path, &before).unwrap();
    let dest = Destination::open(&dest_path).unwrap();
    let mut log = UndoLog::create(&undo, &id(Some("s"), "file:t", size as u64)).unwrap();
    log.save(&dest, 0, size as u64).unwrap();
    log.commit().unwrap();
    dest.write_all_at(&vec![0u8; size], 0).unwrap();
    let st = log.finish().unwrap();
    assert_eq!(
        st.commits, 3,
        "20 MiB saved: two commits of 8 MiB, then the caller's"
    );
    // The data between two commits stays within COMMIT_EVERY plus one record.
    let mut dec = Decoder::new(File::open(&undo).unwrap(), "j").unwrap();
    let (mut group, mut most) = (0u64, 0u64);
    while let Some(r) = dec.next_record().unwrap() {
        if r.is_control() {
            group = 0;
        } else if !r.is_discard() {
            group += u64::from(r.header.len);
            most = most.max(group);
        }
    }
    assert!(most <= COMMIT_EVERY + MAX_UNDO_RECORD, "{most}");
    use crate::wire::{apply, ApplyOptions, Input};
    let bytes = std::fs::read(&undo).unwrap();
    apply(
        Input::Stream(Box::new(std::io::Cursor::new(bytes)), "-".into()),
        &dest_path,
        &ApplyOptions::default(),
        &crate::Progress::new(),
    )
    .unwrap();
    assert!(std::fs::read(&dest_path).unwrap() == before);
}
