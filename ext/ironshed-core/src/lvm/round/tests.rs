//! Rounds planned from the vgcfgbackup files LVM wrote in the test guest (spec/fixtures/lvm),
//! and from copies of them with one key changed.
//!
//! thin.vg (VG vgfix): `lin` (striped), `pool`, `thin1` (thin id 1), `thin-snap` (id 2, of
//! thin1, created 23:08:46) and `thin-snap2` (id 3, of thin1, 23:08:47).
//! classic-hyphen.vg (VG vg-sync): `src-lv`, `dest`, and the classic snapshots `src-snap`
//! (23:08:53) and `tiny` (23:10:15) of src-lv. The times are LVM's own comments in the files.

use super::*;
use crate::error::Kind;
use crate::Report;

const THIN: &str = include_str!("../../../../../spec/fixtures/lvm/thin.vg");
const CLASSIC: &str = include_str!("../../../../../spec/fixtures/lvm/classic-hyphen.vg");

fn meta(text: &str) -> Metadata {
    crate::lvm::parse(text.as_bytes(), "test", None).unwrap()
}

/// `text` with `from` replaced by `to` (which must occur).
fn edited(text: &str, from: &str, to: &str) -> Metadata {
    assert!(text.contains(from), "{from}");
    meta(&text.replacen(from, to, 1))
}

fn t(vg: &str, lv: &str) -> Target {
    Target::new(format!("{vg}/{lv}"), vg, lv)
}

fn plan_of(m: &Metadata, newer: &str, older: Option<&str>) -> Result<Round, RoundError> {
    let vg = m.vg.as_ref().unwrap().name.clone();
    let o = older.map(|o| t(&vg, o));
    plan(m, &t(&vg, newer), o.as_ref(), &RoundOptions::default())
}

fn refusal(m: &Metadata, newer: &str, older: Option<&str>) -> String {
    plan_of(m, newer, older).unwrap_err().to_string()
}

fn dev(lv: &str, id: u64) -> ThinDevice {
    ThinDevice {
        lv: lv.into(),
        device_id: Some(id),
    }
}

#[test]
fn a_classic_snapshot_lists_its_store_and_reads_the_origin() {
    let m = meta(CLASSIC);
    let r = plan_of(&m, "src-snap", None).unwrap();
    assert_eq!(
        r,
        Round {
            vg: "vg-sync".into(),
            origin: Some("src-lv".into()),
            changes: Changes::Classic {
                store: "src-snap".into()
            },
            data_lv: Some("src-lv".into()),
            data_lv_is_snapshot: false,
            live: false,
            new_part: None,
            discards: false,
            notes: Vec::new(),
        }
    );
    assert!(!r.thin());
    let given = Target::new("/dev/vg-sync/src-snap", "vg-sync", "src-snap");
    let opts = RoundOptions {
        data_source: true,
        ..Default::default()
    };
    let r = plan(&m, &given, None, &opts).unwrap();
    assert_eq!(r.data_lv, None);
}

#[test]
fn a_classic_from_round_lists_the_older_store_and_reads_the_newer_snapshot() {
    let m = meta(CLASSIC);
    let r = plan_of(&m, "tiny", Some("src-snap")).unwrap();
    assert_eq!(
        r.changes,
        Changes::Classic {
            store: "src-snap".into()
        }
    );
    assert_eq!(r.data_lv.as_deref(), Some("tiny"));
    assert!(r.data_lv_is_snapshot);
    let opts = RoundOptions {
        data_source: true,
        ..Default::default()
    };
    let r = plan(
        &m,
        &t("vg-sync", "tiny"),
        Some(&t("vg-sync", "src-snap")),
        &opts,
    )
    .unwrap();
    assert_eq!((r.data_lv, r.data_lv_is_snapshot), (None, false));
}

#[test]
fn from_must_name_the_snapshot_taken_first() {
    assert_eq!(
        refusal(&meta(CLASSIC), "src-snap", Some("tiny")),
        "--from vg-sync/tiny was created after vg-sync/src-snap (2026-11-23 23:10:15 UTC > \
         2026-11-23 23:08:53 UTC): give the older snapshot to --from"
    );
    assert_eq!(
        refusal(&meta(THIN), "thin-snap", Some("thin-snap2")),
        "--from vgfix/thin-snap2 was created after vgfix/thin-snap (2026-11-23 23:08:47 UTC > \
         2026-11-23 23:08:46 UTC): give the older snapshot to --from"
    );
    // Without a recorded time, the order cannot be checked: the round is planned.
    let m = edited(CLASSIC, "creation_time = 1795475415", "");
    assert!(plan_of(&m, "src-snap", Some("tiny")).is_ok());
}

#[test]
fn an_lv_that_is_not_a_snapshot() {
    let m = meta(CLASSIC);
    let given = Target::new("/dev/vg-sync/src-lv", "vg-sync", "src-lv");
    let e = plan(&m, &given, None, &RoundOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/dev/vg-sync/src-lv: not a snapshot (vg-sync/src-lv is a striped LV)"
    );
    assert_eq!(e.kind(), Kind::Lvm);
    assert_eq!(
        refusal(&m, "tiny", Some("src-lv")),
        "--from vg-sync/src-lv: not a classic snapshot, and vg-sync/tiny is one"
    );
    // A thin LV that is no snapshot, as the snapshot or as --from.
    let m = meta(THIN);
    assert_eq!(
        refusal(&m, "thin1", None),
        "vgfix/thin1: not a snapshot (vgfix/thin1 is a thin LV)"
    );
    assert_eq!(
        refusal(&m, "thin-snap", Some("thin1")),
        "vgfix/thin1: not a snapshot (vgfix/thin1 is a thin LV)"
    );
    // An LV without segments.
    let m = meta("vg0 { logical_volumes { lv { status = [\"READ\"] } } }");
    assert_eq!(
        refusal(&m, "lv", None),
        "vg0/lv: not a snapshot (vg0/lv is a plain LV)"
    );
}

#[test]
fn both_snapshots_in_one_volume_group() {
    let m = meta(CLASSIC);
    let e = plan(
        &m,
        &t("vg-sync", "tiny"),
        Some(&Target::new("vg0/snap", "vg0", "snap")),
        &RoundOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "--from vg0/snap is in volume group vg0, vg-sync/tiny in vg-sync: both must be \
         snapshots of one origin"
    );
    // The metadata given is not the snapshot's volume group, or the LV is not in it.
    let e = plan(&m, &t("vg0", "tiny"), None, &RoundOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Logical volume tiny does not exist in volume group vg0"
    );
    assert_eq!(
        refusal(&m, "nope", None),
        "Logical volume nope does not exist in volume group vg-sync"
    );
    let header = meta("contents = \"Text Format Volume Group\"\nversion = 1\n");
    let e = plan(&header, &t("vg0", "x"), None, &RoundOptions::default()).unwrap_err();
    assert_eq!(e, no_such_lv("vg0", "x"));
}

#[test]
fn classic_snapshots_of_different_origins() {
    let m = edited(
        CLASSIC,
        "origin = \"src-lv\"\n\t\t\t\tcow_store = \"tiny\"",
        "origin = \"dest\"\n\t\t\t\tcow_store = \"tiny\"",
    );
    assert_eq!(
        refusal(&m, "tiny", Some("src-snap")),
        "--from vg-sync/src-snap is a snapshot of src-lv, vg-sync/tiny of dest: both must be \
         snapshots of one origin"
    );
}

#[test]
fn a_classic_snapshot_being_merged() {
    let m = edited(
        CLASSIC,
        "cow_store = \"src-snap\"",
        "merging_store = \"src-snap\"",
    );
    let e = plan_of(&m, "src-snap", None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "vg-sync/src-snap: the snapshot is being merged into its origin; its exception store \
         is in flux and cannot be used"
    );
    assert_eq!(e.kind(), Kind::Snapshot);
    // The older snapshot's store is the one read in a --from round.
    assert_eq!(
        plan_of(&m, "tiny", Some("src-snap")).unwrap_err(),
        RoundError::Merging {
            vg: "vg-sync".into(),
            lv: "src-snap".into()
        }
    );
    assert!(plan_of(&m, "tiny", None).is_ok());
    let m = edited(CLASSIC, "cow_store = \"tiny\"", "merging_store = \"tiny\"");
    assert!(plan_of(&m, "tiny", Some("src-snap")).is_ok());
}

#[test]
fn a_classic_snapshot_read_from_its_origin_needs_one() {
    let m = edited(
        CLASSIC,
        "origin = \"src-lv\"\n\t\t\t\tcow_store = \"src-snap\"",
        "cow_store = \"src-snap\"",
    );
    assert_eq!(
        refusal(&m, "src-snap", None),
        "vg-sync/src-snap: the metadata names no origin for this snapshot"
    );
    let opts = RoundOptions {
        data_source: true,
        ..Default::default()
    };
    assert!(plan(&m, &t("vg-sync", "src-snap"), None, &opts).is_ok());
    let m = edited(
        CLASSIC,
        "origin = \"src-lv\"\n\t\t\t\tcow_store = \"src-snap\"",
        "origin = \"gone\"\n\t\t\t\tcow_store = \"src-snap\"",
    );
    assert_eq!(
        refusal(&m, "src-snap", None),
        "Logical volume gone does not exist in volume group vg-sync"
    );
    assert!(plan(&m, &t("vg-sync", "src-snap"), None, &opts).is_ok());
}

#[test]
fn a_thin_snapshot_is_compared_with_its_origin() {
    let m = meta(THIN);
    let r = plan_of(&m, "thin-snap", None).unwrap();
    assert_eq!(
        r,
        Round {
            vg: "vgfix".into(),
            origin: Some("thin1".into()),
            changes: Changes::Thin {
                pool: "pool".into(),
                left: dev("thin-snap", 2),
                right: dev("thin1", 1),
                external_origin: None,
            },
            data_lv: Some("thin1".into()),
            data_lv_is_snapshot: false,
            live: false,
            new_part: None,
            discards: false,
            notes: Vec::new(),
        }
    );
    assert!(r.thin());
}

#[test]
fn a_thin_from_round_compares_the_two_snapshots_or_the_older_with_the_origin() {
    let m = meta(THIN);
    let r = plan_of(&m, "thin-snap2", Some("thin-snap")).unwrap();
    assert_eq!(
        r.changes,
        Changes::Thin {
            pool: "pool".into(),
            left: dev("thin-snap", 2),
            right: dev("thin-snap2", 3),
            external_origin: None,
        }
    );
    assert_eq!(
        (
            r.data_lv.as_deref(),
            r.data_lv_is_snapshot,
            r.origin.as_deref()
        ),
        (Some("thin-snap2"), true, Some("thin1"))
    );
    // From a snapshot to its origin: the origin holds what it holds now, though it was
    // created first; the round is the snapshot's own (the origin read as it is).
    let r = plan_of(&m, "thin1", Some("thin-snap2")).unwrap();
    assert!(!r.data_lv_is_snapshot);
    // A snapshot taken after the other is still refused as --from.
    assert_eq!(
        refusal(&m, "thin-snap", Some("thin-snap2")),
        "--from vgfix/thin-snap2 was created after vgfix/thin-snap (2026-11-23 23:08:47 UTC > \
         2026-11-23 23:08:46 UTC): give the older snapshot to --from"
    );
    assert_eq!(
        r.changes,
        Changes::Thin {
            pool: "pool".into(),
            left: dev("thin-snap2", 3),
            right: dev("thin1", 1),
            external_origin: None,
        }
    );
    assert_eq!(r.data_lv.as_deref(), Some("thin1"));
}

#[test]
fn thin_and_classic_do_not_mix() {
    let m = meta(THIN);
    let mixed = "--from vgfix/lin and vgfix/thin-snap: one is a thin LV and the other is not; \
                 both must be snapshots of one origin";
    assert_eq!(refusal(&m, "thin-snap", Some("lin")), mixed);
    assert_eq!(
        refusal(&m, "lin", Some("thin-snap")),
        "--from vgfix/thin-snap and vgfix/lin: one is a thin LV and the other is not; both \
         must be snapshots of one origin"
    );
}

#[test]
fn thin_snapshots_of_different_origins() {
    let m = edited(
        THIN,
        "device_id = 3\n\t\t\t\torigin = \"thin1\"",
        "device_id = 3\n\t\t\t\torigin = \"thin9\"",
    );
    assert_eq!(
        refusal(&m, "thin-snap2", Some("thin-snap")),
        "--from vgfix/thin-snap is a snapshot of thin1, vgfix/thin-snap2 of thin9: both must \
         be snapshots of one origin"
    );
    let m = edited(
        THIN,
        "device_id = 3\n\t\t\t\torigin = \"thin1\"",
        "device_id = 3",
    );
    assert_eq!(
        refusal(&m, "thin-snap2", Some("thin-snap")),
        "--from vgfix/thin-snap is a snapshot of thin1, vgfix/thin-snap2 is not its origin: \
         both must be snapshots of one origin"
    );
}

#[test]
fn a_thin_snapshots_origin_must_be_a_thin_lv_of_the_same_pool() {
    let m = edited(
        THIN,
        "device_id = 2\n\t\t\t\torigin = \"thin1\"",
        "device_id = 2\n\t\t\t\torigin = \"lin\"",
    );
    assert_eq!(refusal(&m, "thin-snap", None), "vgfix/lin: not a thin LV");
    let m = edited(
        THIN,
        "device_id = 2\n\t\t\t\torigin = \"thin1\"",
        "device_id = 2\n\t\t\t\torigin = \"gone\"",
    );
    assert_eq!(
        refusal(&m, "thin-snap", None),
        "Logical volume gone does not exist in volume group vgfix"
    );
    // thin_delta needs the origin's thin id even when the data comes from elsewhere.
    let opts = RoundOptions {
        data_source: true,
        ..Default::default()
    };
    assert!(plan(&m, &t("vgfix", "thin-snap"), None, &opts).is_err());
    let m = edited(THIN, "thin_pool = \"pool\"", "thin_pool = \"pool2\"");
    let e = "vgfix/thin-snap and vgfix/thin1 are not thin LVs of the same pool: thin_delta can \
             only compare devices of one pool";
    assert_eq!(refusal(&m, "thin-snap", None), e);
    let m = edited(
        THIN,
        "thin_pool = \"pool\"\n\t\t\t\ttransaction_id = 2\n\t\t\t\tdevice_id = 3",
        "thin_pool = \"pool2\"\n\t\t\t\ttransaction_id = 2\n\t\t\t\tdevice_id = 3",
    );
    assert_eq!(
        refusal(&m, "thin-snap2", Some("thin-snap")),
        "vgfix/thin-snap and vgfix/thin-snap2 are not thin LVs of the same pool: thin_delta \
         can only compare devices of one pool"
    );
}

#[test]
fn times_print_as_ruby_prints_them() {
    // Expected strings: Ruby's Time.at(t).utc.to_s, which the message used before.
    for (t, s) in [
        (0, "1970-01-01 00:00:00 UTC"),
        (1_795_475_415, "2026-11-23 23:10:15 UTC"),
        (-40_000_000_000, "0702-06-15 00:53:20 UTC"),
        (-62_198_755_200, "-0001-01-01 00:00:00 UTC"),
        (-62_167_219_201, "-0001-12-31 23:59:59 UTC"),
        (-99_999_999_999, "-1199-02-15 14:13:21 UTC"),
        (1 << 62, "146138514283-06-19 07:45:04 UTC"),
        (253_402_300_800, "10000-01-01 00:00:00 UTC"),
    ] {
        assert_eq!(format_utc(t), s, "{t}");
    }
    // Never a panic, whatever the metadata says.
    let _ = (format_utc(i64::MIN), format_utc(i64::MAX));
}

fn full_of(m: &Metadata, lv: &str, older: Option<&str>) -> Result<Round, RoundError> {
    let vg = m.vg.as_ref().unwrap().name.clone();
    let o = older.map(|o| t(&vg, o));
    let opts = RoundOptions {
        full: true,
        ..Default::default()
    };
    plan(m, &t(&vg, lv), o.as_ref(), &opts)
}

#[test]
fn full_copies_of_a_thin_snapshot_a_thin_lv_a_classic_snapshot_and_a_plain_lv() {
    let m = meta(THIN);
    // A thin snapshot: its own mapping, read from itself (it must be active), not live.
    let r = full_of(&m, "thin-snap", None).unwrap();
    assert_eq!(
        r,
        Round {
            vg: "vgfix".into(),
            origin: Some("thin1".into()),
            changes: Changes::FullThin {
                pool: "pool".into(),
                device: dev("thin-snap", 2)
            },
            data_lv: Some("thin-snap".into()),
            data_lv_is_snapshot: true,
            live: false,
            new_part: None,
            discards: true,
            notes: Vec::new(),
        }
    );
    assert!(r.full() && r.thin());
    // A thin LV that is no snapshot: live (its writer must be stopped).
    let r = full_of(&m, "thin1", None).unwrap();
    assert_eq!(
        (r.changes, r.live, r.data_lv_is_snapshot),
        (
            Changes::FullThin {
                pool: "pool".into(),
                device: dev("thin1", 1)
            },
            true,
            false
        )
    );
    // A striped LV: scanned for zeros, live.
    let r = full_of(&m, "lin", None).unwrap();
    assert_eq!(
        (&r.changes, r.live, r.origin.as_deref()),
        (&Changes::FullScan, true, None)
    );
    assert!(r.full() && !r.thin());
    // A pool holds no volume.
    assert_eq!(
        full_of(&m, "pool", None).unwrap_err().to_string(),
        "vgfix/pool: vgfix/pool is a thin-pool LV, not a volume whose content can be copied"
    );
    // A classic snapshot: read from the snapshot device, scanned for zeros, not live.
    let c = meta(CLASSIC);
    let r = full_of(&c, "src-snap", None).unwrap();
    assert_eq!(
        r,
        Round {
            vg: "vg-sync".into(),
            origin: Some("src-lv".into()),
            changes: Changes::FullScan,
            data_lv: Some("src-snap".into()),
            data_lv_is_snapshot: true,
            live: false,
            new_part: None,
            discards: true,
            notes: Vec::new(),
        }
    );
    // --data-source: no LV is read.
    let opts = RoundOptions {
        full: true,
        data_source: true,
        ..Default::default()
    };
    let r = plan(&c, &t("vg-sync", "src-snap"), None, &opts).unwrap();
    assert_eq!((r.data_lv, r.data_lv_is_snapshot), (None, false));
}

#[test]
fn full_refuses_from_and_a_merging_snapshot() {
    let m = meta(THIN);
    let e = full_of(&m, "thin-snap2", Some("thin-snap")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "--full sends the whole of vgfix/thin-snap2: it cannot be used with --from vgfix/thin-snap (a round from an older snapshot sends only what changed)"
    );
    assert_eq!(e.kind(), Kind::Lvm);
    let c = edited(
        CLASSIC,
        "cow_store = \"src-snap\"",
        "merging_store = \"src-snap\"",
    );
    assert!(matches!(
        full_of(&c, "src-snap", None).unwrap_err(),
        RoundError::Merging { .. }
    ));
    assert!(matches!(
        full_of(&m, "nothere", None).unwrap_err(),
        RoundError::NoSuchLv { .. }
    ));
}

#[test]
fn a_thin_round_over_an_external_origin_names_it() {
    // thin1 reads the external origin "lin" where it maps no block, and so does every thin
    // snapshot of it: what thin_delta reports unmapped in the newer device reads lin's data
    // there, not zeros, and must not go as discard records.
    let m = edited(
        THIN,
        "thin_pool = \"pool\"\n\t\t\t\ttransaction_id = 0\n\t\t\t\tdevice_id = 1",
        "thin_pool = \"pool\"\n\t\t\t\texternal_origin = \"lin\"\n\t\t\t\ttransaction_id = 0\n\t\t\t\tdevice_id = 1",
    );
    let external = |r: Round| match r.changes {
        Changes::Thin {
            external_origin, ..
        } => external_origin,
        other => panic!("not a thin round: {other:?}"),
    };
    // A snapshot's changes (the newer device is the origin itself)...
    assert_eq!(
        external(plan_of(&m, "thin-snap", None).unwrap()).as_deref(),
        Some("lin")
    );
    // ...and a --from round between two snapshots of it.
    assert_eq!(
        external(plan_of(&m, "thin-snap2", Some("thin-snap")).unwrap()).as_deref(),
        Some("lin")
    );
    // Without it, nothing is named.
    assert_eq!(
        external(plan_of(&meta(THIN), "thin-snap", None).unwrap()),
        None
    );
}

#[test]
fn full_copies_of_a_thin_lv_over_an_external_origin_read_the_device() {
    // thin1's unmapped blocks read its external origin's data: its mapping would send them
    // as discards (zeros), so the device itself is read, for thin1 and its snapshot alike.
    let m = edited(
        THIN,
        "thin_pool = \"pool\"\n\t\t\t\ttransaction_id = 0\n\t\t\t\tdevice_id = 1",
        "thin_pool = \"pool\"\n\t\t\t\texternal_origin = \"lin\"\n\t\t\t\ttransaction_id = 0\n\t\t\t\tdevice_id = 1",
    );
    for lv in ["thin1", "thin-snap"] {
        assert_eq!(
            full_of(&m, lv, None).unwrap().changes,
            Changes::FullScan,
            "{lv}"
        );
    }
    // Without the external origin, the mapping is used.
    assert!(matches!(
        full_of(&meta(THIN), "thin-snap", None).unwrap().changes,
        Changes::FullThin { .. }
    ));
}

/// `text` with the first `from` after `anchor` replaced by `to`.
fn edited_after(text: &str, anchor: &str, from: &str, to: &str) -> Metadata {
    let at = text.find(anchor).expect(anchor);
    let rel = text[at..].find(from).expect(from);
    let mut s = text.to_string();
    s.replace_range(at + rel..at + rel + from.len(), to);
    meta(&s)
}

#[test]
fn an_origin_grown_after_the_snapshot_is_sent_whole_past_its_end_and_refused_with_from() {
    // src-lv extended from 8 to 10 extents of 4 MiB after src-snap was taken: src-snap's
    // exception store covers only the first 32 MiB of it; the rest goes whole.
    let m = edited_after(CLASSIC, "src-lv {", "extent_count = 8", "extent_count = 10");
    let r = plan_of(&m, "src-snap", None).unwrap();
    let part = r.new_part.clone().unwrap();
    assert_eq!(
        part,
        NewPart {
            read: "src-lv".into(),
            snapshot: "src-snap".into(),
            offset: 32 << 20,
            end: 40 << 20,
        }
    );
    assert_eq!(
        part.note(&r.vg),
        "vg-sync/src-lv grew from 32.0 MiB to 40.0 MiB after vg-sync/src-snap was taken, and \
         nothing records what was written to its last 8.0 MiB: they are sent whole, read from \
         vg-sync/src-lv (the destination must hold at least 40.0 MiB)"
    );
    assert_eq!(r.data_lv.as_deref(), Some("src-lv"));
    // The same with --data-source (the sizes still come from the metadata).
    let ds = RoundOptions {
        data_source: true,
        ..Default::default()
    };
    let r = plan(&m, &t("vg-sync", "src-snap"), None, &ds).unwrap();
    assert_eq!(
        r.new_part.map(|p| (p.offset, p.end)),
        Some((32 << 20, 40 << 20))
    );
    // Thin: the origin grew after its snapshot.
    let m = edited_after(THIN, "thin1 {", "extent_count = 8", "extent_count = 10");
    let r = plan_of(&m, "thin-snap", None).unwrap();
    assert_eq!(
        r.new_part,
        Some(NewPart {
            read: "thin1".into(),
            snapshot: "thin-snap".into(),
            offset: 32 << 20,
            end: 40 << 20,
        })
    );
    // Between two classic snapshots: tiny (the newer) was taken after the origin grew. The
    // destination check has no older bytes past src-snap's end: refused.
    let m = edited_after(
        CLASSIC,
        "snapshot1 {",
        "extent_count = 8",
        "extent_count = 9",
    );
    assert!(refusal(&m, "tiny", Some("src-snap")).starts_with(
        "vg-sync/tiny is 36.0 MiB but vg-sync/src-snap records changes only in its first 32.0 \
         MiB: vg-sync/src-lv grew after vg-sync/src-snap was taken"
    ));
    assert_eq!(
        plan_of(&m, "tiny", Some("src-snap")).unwrap_err().kind(),
        Kind::Lvm
    );
    let m = edited_after(THIN, "thin-snap2 {", "extent_count = 8", "extent_count = 9");
    assert_eq!(
        refusal(&m, "thin-snap2", Some("thin-snap")),
        "vgfix/thin-snap2 is 36.0 MiB but vgfix/thin-snap records changes only in its first 32.0 \
         MiB: vgfix/thin1 grew after vgfix/thin-snap was taken, and a --from round's \
         destination check has no older bytes to compare in the last 4.0 MiB; on a destination \
         of at least 36.0 MiB, send vgfix/thin-snap's own round instead (lvmsync \
         vgfix/thin-snap DESTINATION, which sends that part whole, read from vgfix/thin1), or \
         copy the volume whole (a new snapshot sent with --full)"
    );
    // --from a snapshot to its grown origin: the origin is read past the older snapshot's end.
    let m = edited_after(THIN, "thin1 {", "extent_count = 8", "extent_count = 10");
    assert!(refusal(&m, "thin1", Some("thin-snap")).starts_with(
        "vgfix/thin1 is 40.0 MiB but vgfix/thin-snap records changes only in its first 32.0 MiB"
    ));
    // Nothing grown: no new part. A snapshot larger than what it is compared with (the
    // snapshot itself was extended) has none either, and a whole-volume copy of the grown
    // origin's snapshot is planned as before.
    assert_eq!(
        plan_of(&meta(THIN), "thin-snap", None).unwrap().new_part,
        None
    );
    assert_eq!(
        plan_of(&meta(CLASSIC), "src-snap", None).unwrap().new_part,
        None
    );
    let m = edited_after(THIN, "thin-snap {", "extent_count = 8", "extent_count = 10");
    assert_eq!(plan_of(&m, "thin-snap", None).unwrap().new_part, None);
    let m = edited_after(CLASSIC, "src-lv {", "extent_count = 8", "extent_count = 10");
    let full = RoundOptions {
        full: true,
        ..Default::default()
    };
    let r = plan(&m, &t("vg-sync", "src-snap"), None, &full).unwrap();
    assert_eq!(r.new_part, None);
}

#[test]
fn discard_records_by_default_for_full_copies_when_asked_for_thin_rounds_never_for_classic() {
    let opts = |full, discards, plain| RoundOptions {
        full,
        discards,
        plain,
        ..Default::default()
    };
    let decide = |text: &str, lv: &str, o: RoundOptions| {
        let m = meta(text);
        let vg = m.vg.as_ref().unwrap().name.clone();
        let r = plan(&m, &t(&vg, lv), None, &o).unwrap();
        (r.discards, r.notes)
    };
    // (metadata, LV, --full, --discards, --plain) → discard records, no note: thin only when
    // asked; whole-volume copies by default, never in the original format; classic not asked.
    let quiet = [
        (THIN, "thin-snap", false, false, false, false),
        (THIN, "thin-snap", false, true, false, true),
        (THIN, "thin-snap", true, false, false, true),
        (CLASSIC, "src-snap", true, false, false, true),
        (THIN, "thin-snap", true, false, true, false),
        (CLASSIC, "src-snap", false, false, false, false),
    ];
    for (text, lv, full, discards, plain, want) in quiet {
        assert_eq!(
            decide(text, lv, opts(full, discards, plain)),
            (want, vec![]),
            "{lv} full {full} discards {discards} plain {plain}"
        );
    }
    // Classic: nothing is unmapped; asking is answered with a note.
    assert_eq!(
        decide(CLASSIC, "src-snap", opts(false, true, false)),
        (
            false,
            vec![
                "--discards: a classic snapshot has no unmapped ranges; nothing to discard"
                    .to_string()
            ]
        )
    );
    // A thin LV over an external origin reads that origin where it maps no block: its
    // unmapped ranges go as data, with a note saying why.
    let from = "thin_pool = \"pool\"\n\t\t\t\ttransaction_id = 0\n\t\t\t\tdevice_id = 1";
    assert!(THIN.contains(from));
    let ext = THIN.replacen(
        from,
        "thin_pool = \"pool\"\n\t\t\t\texternal_origin = \"lin\"\n\t\t\t\ttransaction_id = 0\n\t\t\t\tdevice_id = 1",
        1,
    );
    assert_eq!(
        decide(&ext, "thin-snap", opts(false, true, false)),
        (
            false,
            vec![
                "--discards: vgfix/thin1 reads its external origin vgfix/lin where it maps no \
                 block, so its unmapped ranges are sent as data read from it, not as discard \
                 records"
                    .to_string()
            ]
        )
    );
}
