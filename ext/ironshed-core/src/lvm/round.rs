//! One lvmsync round, planned from the volume group's metadata before anything is read or
//! sent: which snapshot's changes are sent (a classic snapshot's exception store, or
//! `thin_delta` between two thin devices of one pool) and which LV the changed data is read
//! from. Every refusal about the snapshots themselves is made here: a thin and a classic
//! snapshot mixed, snapshots of different volume groups or origins, an LV that is not a
//! snapshot, `--from` naming the newer snapshot, a classic snapshot being merged, a `--from`
//! round over an origin grown between its snapshots. An origin grown since its snapshot was
//! taken (no `--from`) gives the round a [`NewPart`]: nothing records what was written
//! there, so it is sent whole. A thin round also names the external origin the newer device
//! reads where it maps no block, if any (its unmapped ranges are not zeros).
//!
//! What needs the running system (is the exception store's device there, is the newer
//! snapshot active) is for the caller to check, after the plan.

use super::model::{ClassicSnapshot, LogicalVolume, Metadata, SegmentKind, VolumeGroup};
use crate::dns::time::format_utc;

/// A snapshot (or origin) as the user named it and as LVM resolved the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The argument as given ("vg0/web-snap", "/dev/vg0/web-snap"), for messages.
    pub given: String,
    /// Its volume group.
    pub vg: String,
    /// Its LV name.
    pub lv: String,
}

impl Target {
    /// A target from the given argument and the names LVM resolved it to.
    pub fn new(given: impl Into<String>, vg: impl Into<String>, lv: impl Into<String>) -> Self {
        Target {
            given: given.into(),
            vg: vg.into(),
            lv: lv.into(),
        }
    }
}

/// How the round is planned, besides the snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundOptions {
    /// The changed data is read from another device (`--data-source`), not from an LV of the
    /// volume group: the round then names no LV to read.
    pub data_source: bool,
    /// A whole-volume copy (`--full`): the snapshot (or LV) is sent whole, not what changed.
    pub full: bool,
    /// Ranges that read as zeros on the newer side are asked to go as discard records
    /// (`--discards`).
    pub discards: bool,
    /// The original format is asked for (`--plain`): it has no discard records.
    pub plain: bool,
}

/// A thin LV as `thin_delta` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThinDevice {
    /// LV name.
    pub lv: String,
    /// The kernel's thin id (`--snap1`/`--snap2`), when the metadata records it.
    pub device_id: Option<u64>,
}

/// What lists the changes of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// The exception store of the classic snapshot `store` (the older one of a `--from`
    /// round).
    Classic {
        /// The snapshot (COW LV) whose exception store is read.
        store: String,
    },
    /// `thin_delta` from `left` to `right`, both thin devices of `pool`.
    Thin {
        /// The thin pool.
        pool: String,
        /// `--snap1`: the older snapshot of a `--from` round, else the snapshot.
        left: ThinDevice,
        /// `--snap2`: the newer snapshot of a `--from` round, else the origin.
        right: ThinDevice,
        /// The external origin `right` reads where it maps no block (its own, or that of the
        /// thin LV it is a snapshot of), if any: its unmapped blocks then read that LV's
        /// data, not zeros, so they must be sent as data read from `right`, never as discard
        /// records.
        external_origin: Option<String>,
    },
    /// A whole-volume copy of a thin LV: its mapped blocks (`thin_dump` of `device` in
    /// `pool`) are sent, the rest discarded.
    FullThin {
        /// The thin pool.
        pool: String,
        /// The thin LV copied.
        device: ThinDevice,
    },
    /// A whole-volume copy of a classic snapshot or a non-thin LV: the device is read whole,
    /// and its all-zero parts discarded.
    FullScan,
}

/// One round, planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    /// The volume group of every LV named here.
    pub vg: String,
    /// The origin the snapshots belong to, as the metadata names it.
    pub origin: Option<String>,
    /// What lists the changes.
    pub changes: Changes,
    /// The LV the changed data is read from: the newer snapshot of a `--from` round (as it
    /// was taken), else the origin; `None` with [`RoundOptions::data_source`].
    pub data_lv: Option<String>,
    /// True when `data_lv` is the newer snapshot of a `--from` round, whose device must be
    /// active (thin snapshots skip activation by default).
    pub data_lv_is_snapshot: bool,
    /// True when the data is read from an LV that may be written meanwhile (a whole-volume
    /// copy of an LV that is no snapshot): its writer must be stopped for a consistent copy.
    pub live: bool,
    /// The part of the origin past the end of the snapshot whose changes are listed (the
    /// origin was extended after the snapshot was taken): nothing records what was written
    /// there, so all of it is sent, read from the origin.
    pub new_part: Option<NewPart>,
    /// The ranges that read as zeros on the newer side (a thin snapshot's unmapped blocks, the
    /// unmapped or all-zero parts of a whole-volume copy) go as discard records, where there
    /// are any and the receiver takes them; otherwise as data read from the device.
    pub discards: bool,
    /// What the user is told about how the round sends them (a `--discards` that does not
    /// apply, and why).
    pub notes: Vec<String>,
}

/// The part of an origin extended after its snapshot was taken: bytes `offset..end` of the
/// LV the data is read from, past the end of the snapshot, which records no change there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPart {
    /// The LV the data is read from (the origin).
    pub read: String,
    /// The snapshot whose changes are listed.
    pub snapshot: String,
    /// The snapshot's size (the origin's when it was taken): the new part's first byte.
    pub offset: u64,
    /// The size of the LV read: one past the new part's last byte.
    pub end: u64,
}

impl NewPart {
    /// What the user is told about it, `vg` being the volume group.
    pub fn note(&self, vg: &str) -> String {
        format!(
            "{vg}/{read} grew from {} to {} after {vg}/{snap} was taken, and nothing records \
             what was written to its last {}: they are sent whole, read from {vg}/{read} (the \
             destination must hold at least {})",
            size_text(self.offset),
            size_text(self.end),
            size_text(self.end - self.offset),
            size_text(self.end),
            read = self.read,
            snap = self.snapshot,
        )
    }
}

impl Round {
    /// True for a round of thin snapshots.
    pub fn thin(&self) -> bool {
        matches!(
            self.changes,
            Changes::Thin { .. } | Changes::FullThin { .. }
        )
    }
    /// True for a whole-volume copy (`--full`).
    pub fn full(&self) -> bool {
        matches!(self.changes, Changes::FullThin { .. } | Changes::FullScan)
    }

    /// Decides [`Round::discards`] and its notes: by default for a whole-volume copy (not in
    /// the original format); for a thin round when asked, unless the newer device reads an
    /// external origin where it maps no block (its unmapped ranges hold that origin's data,
    /// not zeros: they go as data read from it); never for a classic round (a dm-snapshot
    /// store records no unmapped ranges).
    fn decide_discards(&mut self, opts: &RoundOptions) {
        let (vg, notes) = (&self.vg, &mut self.notes);
        self.discards = match &self.changes {
            Changes::FullThin { .. } | Changes::FullScan => !opts.plain,
            _ if !opts.discards => false,
            Changes::Classic { .. } => {
                notes.push(
                    "--discards: a classic snapshot has no unmapped ranges; nothing to discard"
                        .into(),
                );
                false
            }
            Changes::Thin {
                external_origin: Some(ext),
                right,
                ..
            } => {
                notes.push(format!(
                    "--discards: {vg}/{} reads its external origin {vg}/{ext} where it maps no \
                     block, so its unmapped ranges are sent as data read from it, not as \
                     discard records",
                    right.lv
                ));
                false
            }
            Changes::Thin { .. } => true,
        };
    }
}

/// Why a round cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoundError {
    /// The LV is not in the volume group's metadata.
    #[error("Logical volume {lv} does not exist in volume group {vg}")]
    NoSuchLv {
        /// Volume group.
        vg: String,
        /// LV name.
        lv: String,
    },
    /// `--from` and the snapshot are in different volume groups.
    #[error(
        "--from {older} is in volume group {older_vg}, {newer} in {newer_vg}: both must be \
         snapshots of one origin"
    )]
    DifferentGroups {
        /// `--from` as given.
        older: String,
        /// Its volume group.
        older_vg: String,
        /// The snapshot as given.
        newer: String,
        /// Its volume group.
        newer_vg: String,
    },
    /// One of the two is a thin LV, the other is not.
    #[error(
        "--from {older} and {newer}: one is a thin LV and the other is not; both must be \
         snapshots of one origin"
    )]
    Mixed {
        /// `--from` as given.
        older: String,
        /// The snapshot as given.
        newer: String,
    },
    /// The LV is not a snapshot.
    #[error("{given}: not a snapshot ({vg}/{lv} is a {segtype} LV)")]
    NotASnapshot {
        /// The name as given.
        given: String,
        /// Volume group.
        vg: String,
        /// LV name.
        lv: String,
        /// Its first segment's type ("striped"), or "plain" when it has none.
        segtype: String,
    },
    /// `--from` is not a classic snapshot while the snapshot is one.
    #[error("--from {older}: not a classic snapshot, and {newer} is one")]
    NotClassic {
        /// `--from` as given.
        older: String,
        /// The snapshot as given.
        newer: String,
    },
    /// The two are snapshots of different origins (and the newer is not the older's
    /// origin).
    #[error(
        "--from {older} is a snapshot of {older_origin}, {newer} {}: both must be snapshots \
         of one origin",
        newer_origin.as_ref().map_or("is not its origin".to_string(), |o| format!("of {o}"))
    )]
    DifferentOrigins {
        /// `--from` as given.
        older: String,
        /// Its origin.
        older_origin: String,
        /// The snapshot as given.
        newer: String,
        /// Its origin (`None`: it is no snapshot).
        newer_origin: Option<String>,
    },
    /// `--from` was created after the snapshot.
    #[error(
        "--from {older} was created after {vg}/{lv} ({} > {}): give the older snapshot to --from",
        format_utc(*older_time),
        format_utc(*newer_time)
    )]
    WrongOrder {
        /// `--from` as given.
        older: String,
        /// The snapshot's volume group.
        vg: String,
        /// The snapshot's LV name.
        lv: String,
        /// `--from`'s creation time (unix seconds).
        older_time: i64,
        /// The snapshot's creation time.
        newer_time: i64,
    },
    /// The classic snapshot whose store would be read is being merged into its origin.
    #[error(
        "{vg}/{lv}: the snapshot is being merged into its origin; its exception store is in \
         flux and cannot be used"
    )]
    Merging {
        /// Volume group.
        vg: String,
        /// The snapshot (COW LV).
        lv: String,
    },
    /// The origin of a thin snapshot is not a thin LV.
    #[error("{vg}/{lv}: not a thin LV")]
    NotThin {
        /// Volume group.
        vg: String,
        /// LV name.
        lv: String,
    },
    /// The two thin devices are in different pools.
    #[error(
        "{vg}/{left} and {vg}/{right} are not thin LVs of the same pool: thin_delta can only \
         compare devices of one pool"
    )]
    DifferentPools {
        /// Volume group.
        vg: String,
        /// `--snap1`'s LV.
        left: String,
        /// `--snap2`'s LV.
        right: String,
    },
    /// `--full` sends a whole snapshot: there is nothing to compare with an older one.
    #[error("--full sends the whole of {newer}: it cannot be used with --from {older} (a round from an older snapshot sends only what changed)")]
    FullWithFrom {
        /// `--from` as given.
        older: String,
        /// The snapshot as given.
        newer: String,
    },
    /// `--full` of an LV that holds no volume data (a thin pool, its metadata...).
    #[error("{given}: {vg}/{lv} is a {segtype} LV, not a volume whose content can be copied")]
    NotCopyable {
        /// The name as given.
        given: String,
        /// Volume group.
        vg: String,
        /// LV name.
        lv: String,
        /// Its first segment's type.
        segtype: String,
    },
    /// The data would be read from the origin, which the metadata does not name.
    #[error("{vg}/{lv}: the metadata names no origin for this snapshot")]
    NoOrigin {
        /// Volume group.
        vg: String,
        /// The snapshot.
        lv: String,
    },
    /// In a `--from` round, the device the data is read from is larger than the snapshot
    /// whose changes are listed: the origin grew after that snapshot was taken, nothing
    /// records what was written to its new part, and the destination check has no older
    /// bytes to compare there. (Without `--from`, the new part is sent whole: [`NewPart`].)
    #[error(
        "{vg}/{read} is {} but {vg}/{tracked} records changes only in its first {}: {vg}/{origin} \
         grew after {vg}/{tracked} was taken, and a --from round's destination check has no \
         older bytes to compare in the last {}; on a destination of at least {}, send \
         {vg}/{tracked}'s own round instead (lvmsync {vg}/{tracked} DESTINATION, which sends \
         that part whole, read from {vg}/{origin}), or copy the volume whole (a new snapshot \
         sent with --full)",
        size_text(*read_bytes), size_text(*tracked_bytes), size_text(read_bytes - tracked_bytes),
        size_text(*read_bytes)
    )]
    Grown {
        /// Volume group.
        vg: String,
        /// The LV the data is read from (the origin, or the newer snapshot of `--from`).
        read: String,
        /// Its size in bytes.
        read_bytes: u64,
        /// The snapshot whose changes are listed (the snapshot, or `--from`'s).
        tracked: String,
        /// Its size in bytes: the origin's size when it was taken.
        tracked_bytes: u64,
        /// The origin.
        origin: String,
    },
}

/// A size for messages: whole bytes below 1 KiB, else KiB/MiB/GiB/TiB with one decimal.
fn size_text(bytes: u64) -> String {
    let units = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", units[u])
}

impl crate::Report for RoundError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            RoundError::Merging { .. } => crate::error::Kind::Snapshot,
            _ => crate::error::Kind::Lvm,
        }
    }
    fn message(&self) -> String {
        self.to_string()
    }
}

/// The fields of a thin LV (its first segment is a thin one).
struct Thin<'a> {
    pool: Option<&'a str>,
    device_id: Option<u64>,
    origin: Option<&'a str>,
}

fn thin(lv: &LogicalVolume) -> Option<Thin<'_>> {
    match &lv.segments.first()?.kind {
        SegmentKind::Thin {
            thin_pool,
            device_id,
            origin,
            ..
        } => Some(Thin {
            pool: thin_pool.as_deref(),
            device_id: *device_id,
            origin: origin.as_deref(),
        }),
        _ => None,
    }
}

/// Plans the round that sends what changed in `newer` (since its origin, or since `older`,
/// an older snapshot of the same origin: `--from`), from the metadata of `newer`'s volume
/// group. The checks, in order: one volume group; thin or classic, not mixed; snapshots;
/// one origin; `older` created first (unless the newer side is the origin itself); (classic)
/// not being merged; (thin) one pool; the LV the data is read from no larger than the
/// snapshot whose changes are listed, for a `--from` round (without `--from`, an origin grown
/// since is the round's [`NewPart`]).
pub fn plan(
    meta: &Metadata,
    newer: &Target,
    older: Option<&Target>,
    opts: &RoundOptions,
) -> Result<Round, RoundError> {
    if let Some(o) = older.filter(|o| o.vg != newer.vg) {
        return Err(RoundError::DifferentGroups {
            older: o.given.clone(),
            older_vg: o.vg.clone(),
            newer: newer.given.clone(),
            newer_vg: newer.vg.clone(),
        });
    }
    let vg = meta
        .vg
        .as_ref()
        .filter(|g| g.name == newer.vg)
        .ok_or_else(|| no_such_lv(&newer.vg, &newer.lv))?;
    let planner = Planner {
        vg,
        newer,
        older,
        opts,
    };
    let nlv = planner.lv(&newer.lv)?;
    let mut round = if opts.full {
        if let Some(o) = older {
            return Err(RoundError::FullWithFrom {
                older: o.given.clone(),
                newer: newer.given.clone(),
            });
        }
        planner.full(nlv)?
    } else {
        let olv = older.map(|o| planner.lv(&o.lv)).transpose()?;
        if thin(nlv).is_some() || olv.and_then(thin).is_some() {
            planner.thin(nlv, olv)?
        } else {
            planner.classic(nlv, olv)?
        }
    };
    round.decide_discards(opts);
    Ok(round)
}

fn no_such_lv(vg: &str, lv: &str) -> RoundError {
    RoundError::NoSuchLv {
        vg: vg.to_string(),
        lv: lv.to_string(),
    }
}

struct Planner<'a> {
    vg: &'a VolumeGroup,
    newer: &'a Target,
    older: Option<&'a Target>,
    opts: &'a RoundOptions,
}

impl<'a> Planner<'a> {
    fn lv(&self, name: &str) -> Result<&'a LogicalVolume, RoundError> {
        self.vg
            .lv(name)
            .ok_or_else(|| no_such_lv(&self.vg.name, name))
    }

    fn not_a_snapshot(&self, t: &Target, lv: &LogicalVolume) -> RoundError {
        RoundError::NotASnapshot {
            given: t.given.clone(),
            vg: self.vg.name.clone(),
            lv: lv.name.clone(),
            segtype: lv.segtype().unwrap_or("plain").to_string(),
        }
    }

    fn different_origins(&self, older: &Target, o: Option<&str>, n: Option<&str>) -> RoundError {
        RoundError::DifferentOrigins {
            older: older.given.clone(),
            older_origin: o.unwrap_or_default().to_string(),
            newer: self.newer.given.clone(),
            newer_origin: n.map(str::to_string),
        }
    }

    /// `--from` must name the snapshot taken first (when both times are recorded).
    fn check_order(
        &self,
        older: &Target,
        olv: &LogicalVolume,
        nlv: &LogicalVolume,
    ) -> Result<(), RoundError> {
        match (olv.creation_time, nlv.creation_time) {
            (Some(t0), Some(t1)) if t0 > t1 => Err(RoundError::WrongOrder {
                older: older.given.clone(),
                vg: self.vg.name.clone(),
                lv: nlv.name.clone(),
                older_time: t0,
                newer_time: t1,
            }),
            _ => Ok(()),
        }
    }

    /// The LV the data is read from, unless another source is given.
    fn data_lv(&self, name: &str) -> Result<Option<String>, RoundError> {
        if self.opts.data_source {
            return Ok(None);
        }
        Ok(Some(self.lv(name)?.name.clone()))
    }

    fn classic(
        &self,
        nlv: &LogicalVolume,
        olv: Option<&LogicalVolume>,
    ) -> Result<Round, RoundError> {
        let newer: ClassicSnapshot = self
            .vg
            .classic_snapshot(&nlv.name)
            .ok_or_else(|| self.not_a_snapshot(self.newer, nlv))?;
        let mut listed = (newer.clone(), nlv);
        if let (Some(older), Some(olv)) = (self.older, olv) {
            let old =
                self.vg
                    .classic_snapshot(&olv.name)
                    .ok_or_else(|| RoundError::NotClassic {
                        older: older.given.clone(),
                        newer: self.newer.given.clone(),
                    })?;
            if old.origin != newer.origin {
                return Err(self.different_origins(
                    older,
                    old.origin.as_deref(),
                    newer.origin.as_deref(),
                ));
            }
            self.check_order(older, olv, nlv)?;
            listed = (old, olv);
        }
        let (info, store) = listed;
        if info.merging {
            return Err(RoundError::Merging {
                vg: self.vg.name.clone(),
                lv: store.name.clone(),
            });
        }
        let data_lv = if self.older.is_some() {
            self.data_lv(&nlv.name)?
        } else if self.opts.data_source {
            None
        } else {
            let origin = info.origin.as_deref().ok_or_else(|| RoundError::NoOrigin {
                vg: self.vg.name.clone(),
                lv: nlv.name.clone(),
            })?;
            self.data_lv(origin)?
        };
        // A classic snapshot's size is its bookkeeping LV's (the origin's size when it was
        // taken); the data is read from the newer snapshot of --from, else from the origin.
        let tracked = self.vg.lv(&info.bookkeeping_lv);
        let read = if self.older.is_some() {
            self.vg
                .lv(&newer.bookkeeping_lv)
                .map(|l| (nlv.name.as_str(), l))
        } else {
            info.origin
                .as_deref()
                .and_then(|o| self.vg.lv(o))
                .map(|l| (l.name.as_str(), l))
        };
        let new_part = match (tracked, read) {
            (Some(t), Some((read_name, r))) => {
                self.check_grown(&store.name, t, read_name, r, info.origin.as_deref())?
            }
            _ => None,
        };
        Ok(Round {
            vg: self.vg.name.clone(),
            origin: info.origin,
            changes: Changes::Classic {
                store: store.name.clone(),
            },
            data_lv_is_snapshot: self.older.is_some() && data_lv.is_some(),
            live: false,
            new_part,
            discards: false,
            notes: Vec::new(),
            data_lv,
        })
    }

    fn thin(&self, nlv: &LogicalVolume, olv: Option<&LogicalVolume>) -> Result<Round, RoundError> {
        let Some(snap) = thin(nlv) else {
            return Err(self.mixed());
        };
        let (origin, left, right, data_lv) = match (self.older, olv) {
            (Some(older), Some(olv)) => {
                let old = thin(olv).ok_or_else(|| self.mixed())?;
                let origin = old.origin.ok_or_else(|| self.not_a_snapshot(older, olv))?;
                if snap.origin != Some(origin) && nlv.name != origin {
                    return Err(self.different_origins(older, Some(origin), snap.origin));
                }
                // The origin itself as the newer side holds what it holds now, whenever it
                // was created.
                if nlv.name != origin {
                    self.check_order(older, olv, nlv)?;
                }
                (origin, (olv, old), (nlv, snap), self.data_lv(&nlv.name)?)
            }
            _ => {
                let origin = snap
                    .origin
                    .ok_or_else(|| self.not_a_snapshot(self.newer, nlv))?;
                let data_lv = self.data_lv(origin)?;
                let olv = self.lv(origin)?;
                let o = thin(olv).ok_or_else(|| RoundError::NotThin {
                    vg: self.vg.name.clone(),
                    lv: olv.name.clone(),
                })?;
                (origin, (nlv, snap), (olv, o), data_lv)
            }
        };
        if left.1.pool != right.1.pool {
            return Err(RoundError::DifferentPools {
                vg: self.vg.name.clone(),
                left: left.0.name.clone(),
                right: right.0.name.clone(),
            });
        }
        let new_part =
            self.check_grown(&left.0.name, left.0, &right.0.name, right.0, Some(origin))?;
        let device = |(lv, t): (&LogicalVolume, Thin)| ThinDevice {
            lv: lv.name.clone(),
            device_id: t.device_id,
        };
        Ok(Round {
            vg: self.vg.name.clone(),
            origin: Some(origin.to_string()),
            changes: Changes::Thin {
                pool: left.1.pool.unwrap_or_default().to_string(),
                external_origin: self.external_origin(right.0),
                left: device(left),
                right: device(right),
            },
            data_lv_is_snapshot: self.older.is_some()
                && data_lv.is_some()
                && data_lv.as_deref() != Some(origin),
            live: false,
            new_part,
            discards: false,
            notes: Vec::new(),
            data_lv,
        })
    }

    /// Compares the LV the data is read from (`read`, named `read_name`) with the snapshot
    /// whose changes are listed (`tracked`, the user's `tracked_name`): when the first is
    /// larger, what was written past the snapshot's end is recorded nowhere. A snapshot's
    /// round then sends that part whole ([`NewPart`]); a `--from` round is refused (its
    /// destination check has no older bytes to compare there). Sizes the metadata does not
    /// give are not compared.
    fn check_grown(
        &self,
        tracked_name: &str,
        tracked: &LogicalVolume,
        read_name: &str,
        read: &LogicalVolume,
        origin: Option<&str>,
    ) -> Result<Option<NewPart>, RoundError> {
        match (self.vg.lv_size(tracked), self.vg.lv_size(read)) {
            (Some(t), Some(r)) if r > t && self.older.is_none() => Ok(Some(NewPart {
                read: read_name.to_string(),
                snapshot: tracked_name.to_string(),
                offset: t,
                end: r,
            })),
            (Some(t), Some(r)) if r > t => Err(RoundError::Grown {
                vg: self.vg.name.clone(),
                read: read_name.to_string(),
                read_bytes: r,
                tracked: tracked_name.to_string(),
                tracked_bytes: t,
                origin: origin.unwrap_or(read_name).to_string(),
            }),
            _ => Ok(None),
        }
    }

    /// The external origin a thin LV's unmapped blocks are read from: the one its own
    /// segment names, or one of the thin LVs it is a snapshot of names.
    fn external_origin(&self, lv: &LogicalVolume) -> Option<String> {
        let mut at = lv;
        // Each step follows a thin snapshot to its origin; a loop in bad metadata ends when
        // the steps outnumber the LVs.
        for _ in 0..=self.vg.logical_volumes.len() {
            let SegmentKind::Thin {
                origin,
                external_origin,
                ..
            } = &at.segments.first()?.kind
            else {
                return None;
            };
            if external_origin.is_some() {
                return external_origin.clone();
            }
            at = self.vg.lv(origin.as_deref()?)?;
        }
        // A loop of snapshots in bad metadata: assume the worst (no discards, no mapping).
        Some(String::from("(a loop of thin snapshots)"))
    }

    /// A whole-volume copy of `lv`, read from `lv` itself (a snapshot as it was taken): a
    /// thin LV by its mapping, anything else by a zero scan. A classic snapshot being merged,
    /// and LVs that hold no volume data (pools, their metadata, exception stores), are
    /// refused; an LV that is no snapshot is `live`. (An exception store is the snapshot LV
    /// the user names; the hidden LV with the `snapshot` segment is refused.)
    fn full(&self, lv: &LogicalVolume) -> Result<Round, RoundError> {
        let data_lv = self.data_lv(&lv.name)?;
        let mut round = Round {
            vg: self.vg.name.clone(),
            origin: None,
            changes: Changes::FullScan,
            data_lv_is_snapshot: false,
            live: false,
            new_part: None,
            discards: false,
            notes: Vec::new(),
            data_lv,
        };
        if let Some(t) = thin(lv) {
            round.origin = t.origin.map(str::to_string);
            round.live = t.origin.is_none();
            round.data_lv_is_snapshot = t.origin.is_some() && round.data_lv.is_some();
            // Where a thin LV (or the thin LV it is a snapshot of) has an external origin,
            // its unmapped blocks read the external origin's data, not zeros: only reading
            // the device itself gives its content.
            if self.external_origin(lv).is_none() {
                round.changes = Changes::FullThin {
                    pool: t.pool.unwrap_or_default().to_string(),
                    device: ThinDevice {
                        lv: lv.name.clone(),
                        device_id: t.device_id,
                    },
                };
            }
        } else if let Some(snap) = self.vg.classic_snapshot(&lv.name) {
            if snap.merging {
                return Err(RoundError::Merging {
                    vg: self.vg.name.clone(),
                    lv: lv.name.clone(),
                });
            }
            round.origin = snap.origin;
            round.data_lv_is_snapshot = round.data_lv.is_some();
        } else {
            let segtype = lv.segtype().unwrap_or("plain");
            if matches!(
                segtype,
                "thin-pool" | "snapshot" | "cache-pool" | "vdo-pool"
            ) {
                return Err(RoundError::NotCopyable {
                    given: self.newer.given.clone(),
                    vg: self.vg.name.clone(),
                    lv: lv.name.clone(),
                    segtype: segtype.to_string(),
                });
            }
            round.live = true;
        }
        Ok(round)
    }

    fn mixed(&self) -> RoundError {
        RoundError::Mixed {
            older: self.older.map(|o| o.given.clone()).unwrap_or_default(),
            newer: self.newer.given.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
