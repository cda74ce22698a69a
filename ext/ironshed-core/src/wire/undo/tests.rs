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
