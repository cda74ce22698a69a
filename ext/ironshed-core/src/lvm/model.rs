//! The volume group described by LVM2 text metadata: physical volumes, logical volumes and
//! their segments, typed where the keys are known and kept raw everywhere.
//!
//! The model is deliberately lenient about the *content* of each LV: one LV with a key of an
//! unexpected type (or a segment type this code has never heard of) must not stop a tool from
//! working with the other LVs of the volume group, as it did for the original lvmsync.
//! Typed fields are `None` when a key is absent or malformed; every malformed key is listed in
//! [`Metadata::problems`]. Only the overall shape (no volume group section at all) is an
//! error. Unknown keys and sections stay available through each object's `raw` section.

use super::text::{Section, Value};
use super::Error;

/// A key whose value was not of the expected type; the typed field was left empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where, as section path and key (`logical_volumes/lv0/segment1/stripe_count`).
    pub path: String,
    /// What was expected and found.
    pub msg: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.msg)
    }
}

/// A whole metadata file: the header keys and the one volume group.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// `contents = "Text Format Volume Group"`.
    pub contents: Option<String>,
    /// Format version (1).
    pub version: Option<i64>,
    /// The command that wrote the file (`vgcfgbackup -f …`, `Created *before* executing …`).
    pub description: Option<String>,
    /// Host that wrote the file.
    pub creation_host: Option<String>,
    /// Unix time the file was written.
    pub creation_time: Option<i64>,
    /// The volume group; `None` for a text holding only the header keys (`contents`,
    /// `version`, `description`...) and no section at all, which the original lvmsync read
    /// as a configuration without a volume group.
    pub vg: Option<VolumeGroup>,
    /// The top-level section as parsed (header keys and the VG section).
    pub raw: Section,
    /// Keys whose values had an unexpected type (their typed fields are `None`).
    pub problems: Vec<Problem>,
}

/// A volume group.
#[derive(Debug, Clone)]
pub struct VolumeGroup {
    /// The VG name (the section's name).
    pub name: String,
    /// UUID.
    pub id: Option<String>,
    /// Metadata sequence number.
    pub seqno: Option<i64>,
    /// `"lvm2"` on current LVM.
    pub format: Option<String>,
    /// `RESIZEABLE`, `READ`, `WRITE`, ...
    pub status: Vec<String>,
    /// `WRITE_LOCKED`, `NOAUTOACTIVATE`, ...
    pub flags: Vec<String>,
    /// VG tags.
    pub tags: Vec<String>,
    /// Extent size in sectors.
    pub extent_size: Option<u64>,
    /// Physical volumes in file order.
    pub physical_volumes: Vec<PhysicalVolume>,
    /// Logical volumes in file order (hidden ones included).
    pub logical_volumes: Vec<LogicalVolume>,
    /// The VG section as parsed.
    pub raw: Section,
}

/// A physical volume (`pv0`, `pv1`...).
#[derive(Debug, Clone)]
pub struct PhysicalVolume {
    /// The name segments refer to (`pv0`).
    pub name: String,
    /// UUID.
    pub id: Option<String>,
    /// Last known device path ("Hint only").
    pub device: Option<String>,
    /// `ALLOCATABLE`, `EXPORTED`, `MISSING`.
    pub status: Vec<String>,
    /// `MISSING`...
    pub flags: Vec<String>,
    /// Device size in sectors.
    pub dev_size: Option<u64>,
    /// First extent's sector.
    pub pe_start: Option<u64>,
    /// Number of extents.
    pub pe_count: Option<u64>,
    /// The PV section as parsed.
    pub raw: Section,
}

/// A logical volume.
#[derive(Debug, Clone)]
pub struct LogicalVolume {
    /// LV name.
    pub name: String,
    /// UUID.
    pub id: Option<String>,
    /// `READ`, `WRITE`, `VISIBLE`...
    pub status: Vec<String>,
    /// `ACTIVATION_SKIP`...
    pub flags: Vec<String>,
    /// LV tags.
    pub tags: Vec<String>,
    /// Unix creation time.
    pub creation_time: Option<i64>,
    /// Creating host.
    pub creation_host: Option<String>,
    /// Read-ahead in sectors; -1 means none; absent means auto.
    pub read_ahead: Option<i64>,
    /// The declared `segment_count`.
    pub segment_count: Option<u64>,
    /// `segment1`…`segmentN`, in number order.
    pub segments: Vec<Segment>,
    /// The LV section as parsed.
    pub raw: Section,
}

/// One segment of an LV.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Section name (`segment1`).
    pub name: String,
    /// The number in the name.
    pub number: u64,
    /// First logical extent.
    pub start_extent: Option<u64>,
    /// Length in extents.
    pub extent_count: Option<u64>,
    /// Segment type without flags (`striped`, `snapshot`, `thin-pool`, `raid5`...).
    pub segtype: Option<String>,
    /// `+FLAG` suffixes of the type (`RESHAPE`...).
    pub type_flags: Vec<String>,
    /// Typed view of the type-specific keys.
    pub kind: SegmentKind,
    /// The segment section as parsed.
    pub raw: Section,
}

/// A (PV or LV name, first extent) pair from `stripes`, `mirrors`...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Area {
    /// `pvN` for stripes, an LV name for mirrors.
    pub name: String,
    /// First extent in it.
    pub start: u64,
}

/// The type-specific keys of a segment.
#[derive(Debug, Clone)]
pub enum SegmentKind {
    /// `striped` (linear is one stripe).
    Striped {
        /// Number of stripes.
        stripe_count: Option<u64>,
        /// Stripe size in sectors (only with more than one stripe).
        stripe_size: Option<u64>,
        /// (PV, first PE) per stripe.
        stripes: Vec<Area>,
    },
    /// The hidden `snapshotN` LV of a classic snapshot.
    Snapshot {
        /// Chunk size in sectors.
        chunk_size: Option<u64>,
        /// Origin LV name.
        origin: Option<String>,
        /// The COW LV (the user's snapshot name): `cow_store`, or `merging_store` while a merge
        /// is pending.
        store: Option<String>,
        /// True when the store is named by `merging_store`.
        merging: bool,
    },
    /// A thin pool.
    ThinPool {
        /// Metadata LV (`pool_tmeta`).
        metadata: Option<String>,
        /// Data LV (`pool_tdata`).
        pool: Option<String>,
        /// Pool transaction id.
        transaction_id: Option<i64>,
        /// Data block size in sectors.
        chunk_size: Option<u64>,
        /// `passdown`, `nopassdown`, `ignore`.
        discards: Option<String>,
        /// Whether new blocks are zeroed.
        zero_new_blocks: Option<i64>,
    },
    /// A thin volume.
    Thin {
        /// Pool LV name.
        thin_pool: Option<String>,
        /// Pool transaction id when this LV was created.
        transaction_id: Option<i64>,
        /// The kernel's 24-bit thin id.
        device_id: Option<u64>,
        /// Origin of a thin snapshot.
        origin: Option<String>,
        /// Pending merge target.
        merge: Option<String>,
        /// External (read-only) origin LV.
        external_origin: Option<String>,
    },
    /// A `mirror` segment.
    Mirror {
        /// Number of images.
        mirror_count: Option<u64>,
        /// Log LV, if any.
        mirror_log: Option<String>,
        /// Region size in sectors.
        region_size: Option<u64>,
        /// (image LV, first LE) per image.
        mirrors: Vec<Area>,
    },
    /// `raid0`, `raid1`, `raid4`, `raid5*`, `raid6*`, `raid10`.
    Raid {
        /// Number of devices.
        device_count: Option<u64>,
        /// Stripe size in sectors (striped levels).
        stripe_size: Option<u64>,
        /// Region size in sectors.
        region_size: Option<u64>,
        /// `raids` (metadata/image LV pairs, or images alone) or `raid0_lvs`.
        lvs: Vec<String>,
    },
    /// Any other type (cache, cache-pool, writecache, integrity, vdo, error, zero...):
    /// everything is in the segment's `raw` section.
    Other,
}

struct Reader<'a> {
    problems: &'a mut Vec<Problem>,
}

impl Reader<'_> {
    fn problem(&mut self, path: &str, key: &str, msg: String) {
        self.problems.push(Problem {
            path: format!("{path}/{key}"),
            msg,
        });
    }
    fn int(&mut self, s: &Section, path: &str, key: &str) -> Option<i64> {
        match s.value(key)? {
            Value::Int(i) => Some(*i),
            other => {
                self.problem(
                    path,
                    key,
                    format!("expected an integer, found {}", other.kind()),
                );
                None
            }
        }
    }
    fn uint(&mut self, s: &Section, path: &str, key: &str) -> Option<u64> {
        let i = self.int(s, path, key)?;
        match u64::try_from(i) {
            Ok(u) => Some(u),
            Err(_) => {
                self.problem(
                    path,
                    key,
                    format!("expected a non-negative integer, found {i}"),
                );
                None
            }
        }
    }
    fn string(&mut self, s: &Section, path: &str, key: &str) -> Option<String> {
        match s.value(key)? {
            Value::Str(v) => Some(v.clone()),
            other => {
                self.problem(
                    path,
                    key,
                    format!("expected a string, found {}", other.kind()),
                );
                None
            }
        }
    }
    fn strings(&mut self, s: &Section, path: &str, key: &str) -> Vec<String> {
        match s.value(key) {
            None => Vec::new(),
            Some(Value::List(l)) => {
                let mut out = Vec::with_capacity(l.len());
                for v in l {
                    match v {
                        Value::Str(x) => out.push(x.clone()),
                        other => {
                            self.problem(
                                path,
                                key,
                                format!("expected a list of strings, found {} in it", other.kind()),
                            );
                            return Vec::new();
                        }
                    }
                }
                out
            }
            Some(other) => {
                self.problem(
                    path,
                    key,
                    format!("expected a list, found {}", other.kind()),
                );
                Vec::new()
            }
        }
    }
    /// `[ "name", N, "name", N ... ]`
    fn areas(&mut self, s: &Section, path: &str, key: &str) -> Vec<Area> {
        let Some(v) = s.value(key) else {
            return Vec::new();
        };
        let Some(l) = v.as_list() else {
            self.problem(path, key, format!("expected a list, found {}", v.kind()));
            return Vec::new();
        };
        if l.len() % 2 != 0 {
            self.problem(
                path,
                key,
                format!("expected (name, extent) pairs, found {} elements", l.len()),
            );
            return Vec::new();
        }
        let mut out = Vec::with_capacity(l.len() / 2);
        for pair in l.chunks(2) {
            match (&pair[0], &pair[1]) {
                (Value::Str(n), Value::Int(e)) if *e >= 0 => out.push(Area {
                    name: n.clone(),
                    start: *e as u64,
                }),
                (a, b) => {
                    self.problem(
                        path,
                        key,
                        format!(
                            "expected (name, extent) pairs, found ({}, {})",
                            a.kind(),
                            b.kind()
                        ),
                    );
                    return Vec::new();
                }
            }
        }
        out
    }
}

/// Parses metadata text and builds the model. `vg_name` picks the volume group section when
/// the file has several top-level sections (it never has in LVM's own output).
pub fn parse(text: &[u8], source: &str, vg_name: Option<&str>) -> Result<Metadata, Error> {
    let root = super::text::parse(text, source)?;
    Metadata::from_section(root, source, vg_name)
}

impl Metadata {
    /// Builds the model from a parsed top-level section.
    pub fn from_section(root: Section, source: &str, vg_name: Option<&str>) -> Result<Self, Error> {
        // Only the header keys and no section: the original read this as a configuration
        // without a volume group (its VGConfig gave the header and a nil volume_group).
        let header_only = root.sections().next().is_none()
            && (root.value("contents").is_some() || root.value("version").is_some());
        let chosen = if header_only {
            None
        } else {
            Some(vg_section(&root, source, vg_name)?)
        };
        let mut problems = Vec::new();
        let mut r = Reader {
            problems: &mut problems,
        };
        let contents = r.string(&root, "", "contents");
        let version = r.int(&root, "", "version");
        let description = r.string(&root, "", "description");
        let creation_host = r.string(&root, "", "creation_host");
        let creation_time = r.int(&root, "", "creation_time");
        let vg = chosen.map(|(name, sec)| build_vg(&mut r, &name, sec));
        for p in problems.iter_mut() {
            if let Some(rest) = p.path.strip_prefix('/') {
                p.path = rest.to_string();
            }
        }
        Ok(Metadata {
            contents,
            version,
            description,
            creation_host,
            creation_time,
            vg,
            raw: root,
            problems,
        })
    }
}

/// The volume group section of `root`: the one named `vg_name`, or the only section.
fn vg_section<'a>(
    root: &'a Section,
    source: &str,
    vg_name: Option<&str>,
) -> Result<(String, &'a Section), Error> {
    let structure = |msg: String| Error::Structure {
        source_name: source.to_string(),
        msg,
    };
    let chosen = match vg_name {
        Some(n) => match root.section(n) {
            Some(s) => (n.to_string(), s),
            None => {
                let found: Vec<&str> = root.sections().map(|(k, _)| k).collect();
                return Err(structure(format!(
                    "no volume group section named '{n}' (found: {})",
                    if found.is_empty() {
                        "none".to_string()
                    } else {
                        found.join(", ")
                    }
                )));
            }
        },
        None => {
            let secs: Vec<(&str, &Section)> = root.sections().collect();
            match secs.as_slice() {
                [(n, s)] => (n.to_string(), *s),
                [] => {
                    return Err(structure(
                        "no volume group section: not LVM2 text metadata".to_string(),
                    ))
                }
                many => {
                    return Err(structure(format!(
                        "{} top-level sections ({}); name the volume group to use",
                        many.len(),
                        many.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                    )))
                }
            }
        }
    };
    Ok(chosen)
}

fn build_vg(r: &mut Reader, name: &str, s: &Section) -> VolumeGroup {
    let path = name;
    let mut pvs = Vec::new();
    if let Some(sec) = s.section("physical_volumes") {
        for (pvname, pv) in sec.sections() {
            let p = format!("{path}/physical_volumes/{pvname}");
            pvs.push(PhysicalVolume {
                name: pvname.to_string(),
                id: r.string(pv, &p, "id"),
                device: r.string(pv, &p, "device"),
                status: r.strings(pv, &p, "status"),
                flags: r.strings(pv, &p, "flags"),
                dev_size: r.uint(pv, &p, "dev_size"),
                pe_start: r.uint(pv, &p, "pe_start"),
                pe_count: r.uint(pv, &p, "pe_count"),
                raw: pv.clone(),
            });
        }
    }
    let mut lvs = Vec::new();
    if let Some(sec) = s.section("logical_volumes") {
        for (lvname, lv) in sec.sections() {
            let p = format!("{path}/logical_volumes/{lvname}");
            lvs.push(build_lv(r, lvname, lv, &p));
        }
    }
    VolumeGroup {
        name: name.to_string(),
        id: r.string(s, path, "id"),
        seqno: r.int(s, path, "seqno"),
        format: r.string(s, path, "format"),
        status: r.strings(s, path, "status"),
        flags: r.strings(s, path, "flags"),
        tags: r.strings(s, path, "tags"),
        extent_size: r.uint(s, path, "extent_size"),
        physical_volumes: pvs,
        logical_volumes: lvs,
        raw: s.clone(),
    }
}

fn build_lv(r: &mut Reader, name: &str, s: &Section, path: &str) -> LogicalVolume {
    let mut segments = Vec::new();
    for (sname, seg) in s.sections() {
        let Some(num) = sname
            .strip_prefix("segment")
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        segments.push(build_segment(
            r,
            sname,
            num,
            seg,
            &format!("{path}/{sname}"),
        ));
    }
    segments.sort_by_key(|s| s.number);
    LogicalVolume {
        name: name.to_string(),
        id: r.string(s, path, "id"),
        status: r.strings(s, path, "status"),
        flags: r.strings(s, path, "flags"),
        tags: r.strings(s, path, "tags"),
        creation_time: r.int(s, path, "creation_time"),
        creation_host: r.string(s, path, "creation_host"),
        read_ahead: r.int(s, path, "read_ahead"),
        segment_count: r.uint(s, path, "segment_count"),
        segments,
        raw: s.clone(),
    }
}

fn build_segment(r: &mut Reader, name: &str, number: u64, s: &Section, path: &str) -> Segment {
    let full_type = r.string(s, path, "type");
    let (segtype, type_flags) = match &full_type {
        Some(t) => {
            let mut parts = t.split('+');
            let base = parts.next().unwrap_or_default().to_string();
            (Some(base), parts.map(str::to_string).collect())
        }
        None => (None, Vec::new()),
    };
    let kind = match segtype.as_deref() {
        Some("striped") => SegmentKind::Striped {
            stripe_count: r.uint(s, path, "stripe_count"),
            stripe_size: r.uint(s, path, "stripe_size"),
            stripes: r.areas(s, path, "stripes"),
        },
        Some("snapshot") => {
            let cow = r.string(s, path, "cow_store");
            let merging = r.string(s, path, "merging_store");
            SegmentKind::Snapshot {
                chunk_size: r.uint(s, path, "chunk_size"),
                origin: r.string(s, path, "origin"),
                merging: cow.is_none() && merging.is_some(),
                store: cow.or(merging),
            }
        }
        Some("thin-pool") => SegmentKind::ThinPool {
            metadata: r.string(s, path, "metadata"),
            pool: r.string(s, path, "pool"),
            transaction_id: r.int(s, path, "transaction_id"),
            chunk_size: r.uint(s, path, "chunk_size"),
            discards: r.string(s, path, "discards"),
            zero_new_blocks: r.int(s, path, "zero_new_blocks"),
        },
        Some("thin") => SegmentKind::Thin {
            thin_pool: r.string(s, path, "thin_pool"),
            transaction_id: r.int(s, path, "transaction_id"),
            device_id: r.uint(s, path, "device_id"),
            origin: r.string(s, path, "origin"),
            merge: r.string(s, path, "merge"),
            external_origin: r.string(s, path, "external_origin"),
        },
        Some("mirror") => SegmentKind::Mirror {
            mirror_count: r.uint(s, path, "mirror_count"),
            mirror_log: r.string(s, path, "mirror_log"),
            region_size: r.uint(s, path, "region_size"),
            mirrors: r.areas(s, path, "mirrors"),
        },
        Some(t) if t.starts_with("raid") => {
            let mut lvs = r.strings(s, path, "raids");
            if lvs.is_empty() {
                lvs = r.strings(s, path, "raid0_lvs");
            }
            SegmentKind::Raid {
                device_count: r.uint(s, path, "device_count"),
                stripe_size: r.uint(s, path, "stripe_size"),
                region_size: r.uint(s, path, "region_size"),
                lvs,
            }
        }
        _ => SegmentKind::Other,
    };
    Segment {
        name: name.to_string(),
        number,
        start_extent: r.uint(s, path, "start_extent"),
        extent_count: r.uint(s, path, "extent_count"),
        segtype,
        type_flags,
        kind,
        raw: s.clone(),
    }
}

/// A classic (dm-snapshot) snapshot as recorded in the metadata: the hidden `snapshotN` LV's
/// segment ties the origin to the COW LV, whose name is the user's snapshot name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicSnapshot {
    /// The hidden bookkeeping LV (`snapshot0`).
    pub bookkeeping_lv: String,
    /// The COW LV: the name users know the snapshot by.
    pub cow_store: String,
    /// The origin LV.
    pub origin: Option<String>,
    /// Chunk size in sectors.
    pub chunk_size: Option<u64>,
    /// True while a merge into the origin is pending or running: the store is in flux.
    pub merging: bool,
}

impl ClassicSnapshot {
    /// Chunk size in bytes.
    pub fn chunk_bytes(&self) -> Option<u64> {
        self.chunk_size?.checked_mul(512)
    }
}

impl VolumeGroup {
    /// The LV named `name`.
    pub fn lv(&self, name: &str) -> Option<&LogicalVolume> {
        self.logical_volumes.iter().find(|l| l.name == name)
    }
    /// The PV named `name` (`pv0`).
    pub fn pv(&self, name: &str) -> Option<&PhysicalVolume> {
        self.physical_volumes.iter().find(|p| p.name == name)
    }
    /// Every classic snapshot in the VG.
    pub fn classic_snapshots(&self) -> Vec<ClassicSnapshot> {
        let mut out = Vec::new();
        for lv in &self.logical_volumes {
            for seg in &lv.segments {
                if let SegmentKind::Snapshot {
                    chunk_size,
                    origin,
                    store: Some(store),
                    merging,
                } = &seg.kind
                {
                    out.push(ClassicSnapshot {
                        bookkeeping_lv: lv.name.clone(),
                        cow_store: store.clone(),
                        origin: origin.clone(),
                        chunk_size: *chunk_size,
                        merging: *merging,
                    });
                }
            }
        }
        out
    }
    /// The classic snapshot whose COW LV (user-visible snapshot name) is `name`.
    pub fn classic_snapshot(&self, name: &str) -> Option<ClassicSnapshot> {
        self.classic_snapshots()
            .into_iter()
            .find(|s| s.cow_store == name)
    }
    /// Size of an LV in bytes (sum of its segments' extents), when known.
    pub fn lv_size(&self, lv: &LogicalVolume) -> Option<u64> {
        let ext = self.extent_size?;
        let extents = lv
            .segments
            .iter()
            .try_fold(0u64, |a, s| a.checked_add(s.extent_count?))?;
        extents.checked_mul(ext)?.checked_mul(512)
    }
}

impl LogicalVolume {
    /// The first segment's type (what the original lvmsync looked at).
    pub fn segtype(&self) -> Option<&str> {
        self.segments.first().and_then(|s| s.segtype.as_deref())
    }
    /// True when the LV carries the `VISIBLE` status flag.
    pub fn visible_flag(&self) -> bool {
        self.status.iter().any(|s| s == "VISIBLE")
    }
}

/// The device-mapper name of `lv` in `vg` (with an optional layer such as `cow`, `real`,
/// `tpool`, or `_tmeta`): every `-` inside a name is doubled, parts are joined with `-`, and
/// a layer starting with `_` is appended without one.
pub fn dm_name(vg: &str, lv: &str, layer: Option<&str>) -> String {
    let mut s = format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"));
    if let Some(l) = layer {
        if !l.starts_with('_') {
            s.push('-');
        }
        s.push_str(l);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dm_names() {
        assert_eq!(
            dm_name("vg-cls", "snap-4k", Some("cow")),
            "vg--cls-snap--4k-cow"
        );
        assert_eq!(
            dm_name("vgthin", "pool", Some("_tmeta")),
            "vgthin-pool_tmeta"
        );
        assert_eq!(dm_name("vg", "lv", None), "vg-lv");
    }

    #[test]
    fn lenient_about_one_bad_lv() {
        let text = br#"vg { id = "x" extent_size = 8192
            logical_volumes {
              bad { status = "READ" segment_count = 1
                    segment1 { start_extent = 0 extent_count = "four" type = "striped" stripe_count = 1 stripes = ["pv0"] } }
              good { status = ["READ"] segment_count = 1
                     segment1 { start_extent = 0 extent_count = 4 type = "weird+RESHAPE" foo { bar = 1 } } }
            } }"#;
        let m = parse(text, "t", None).unwrap();
        let vg = m.vg.as_ref().unwrap();
        let bad = vg.lv("bad").unwrap();
        assert!(bad.status.is_empty());
        assert_eq!(bad.segments[0].extent_count, None);
        let good = vg.lv("good").unwrap();
        assert_eq!(good.segments[0].segtype.as_deref(), Some("weird"));
        assert_eq!(good.segments[0].type_flags, ["RESHAPE"]);
        assert!(matches!(good.segments[0].kind, SegmentKind::Other));
        assert_eq!(vg.lv_size(good), Some(4 * 8192 * 512));
        let probs: Vec<String> = m.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            probs,
            [
                "vg/logical_volumes/bad/segment1/stripes: expected (name, extent) pairs, found 1 elements",
                "vg/logical_volumes/bad/segment1/extent_count: expected an integer, found a string",
                "vg/logical_volumes/bad/status: expected a list, found a string",
            ]
        );
    }

    #[test]
    fn shape_errors() {
        let e = parse(b"a = 1\n", "t", None).unwrap_err().to_string();
        assert_eq!(e, "t: no volume group section: not LVM2 text metadata");
        let e = parse(b"a { } b { }\n", "t", None).unwrap_err().to_string();
        assert_eq!(
            e,
            "t: 2 top-level sections (a, b); name the volume group to use"
        );
        let e = parse(b"a { }\n", "t", Some("vg0")).unwrap_err().to_string();
        assert_eq!(e, "t: no volume group section named 'vg0' (found: a)");
    }

    #[test]
    fn a_header_without_a_volume_group_is_read_as_the_original_read_it() {
        let text = b"# Generated by LVM2\ncontents = \"Text Format Volume Group\"\nversion = 1\n\ndescription = \"vgcfgbackup -f /tmp/x\"\n";
        for name in [None, Some("trivial")] {
            let m = parse(text, "t", name).unwrap();
            assert!(m.vg.is_none());
            assert_eq!(m.version, Some(1));
            assert_eq!(m.description.as_deref(), Some("vgcfgbackup -f /tmp/x"));
            assert!(m.problems.is_empty());
        }
        // Sections, but not the one asked for: refused as before.
        let e = parse(b"version = 1\nvg0 { }\n", "t", Some("vg1")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t: no volume group section named 'vg1' (found: vg0)"
        );
    }
}
