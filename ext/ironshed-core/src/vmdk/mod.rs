//! VMware delta disks and how to apply them onto a raw copy of the base.
//!
//! [`Delta::open`] takes what the user names — a text descriptor (`vm-000003.vmdk`), a KDMV
//! file with an embedded descriptor, or a bare extent — validates it, follows
//! `parentFileNameHint` down the snapshot chain checking every CID link and capacity, and
//! validates every layer's extents. [`Delta::apply`] checks the destination and writes the
//! merged chain (newest layer wins; every destination byte written once) through the shared
//! copy loop. Nothing is written before every check has passed.
//!
//! Formats: ESX COWD (vmfsSparse), hosted sparse VMDK4 (monolithicSparse,
//! twoGbMaxExtentSparse, streamOptimized incl. the footer layout), and ESX seSparse; a chain
//! may mix them.

pub mod chain;
pub mod cowd;
pub mod descriptor;
mod error;
#[cfg(test)]
mod fixture;
pub mod flat;
pub mod layer;
pub mod run;
pub mod sesparse;
pub mod sparse;

pub use error::{Error, Result};

use crate::block::{BatchWriter, CopyStats, Destination, Segment, SegmentSource};
use crate::error::Report;
use crate::io::Written;
use crate::progress::Progress;
use crate::wire::{UndoIdentity, UndoLog, UndoOpen, UndoState};
use chain::Chain;
use descriptor::Descriptor;
use layer::{name_of, Layer};
use run::{DeflateRef, Run, Src};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Formats a delta extent can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ESX vmfsSparse redo log (`COWD` magic).
    Cowd,
    /// Hosted sparse extent (`KDMV`), uncompressed: monolithicSparse, twoGbMaxExtentSparse.
    Sparse,
    /// Hosted sparse extent with zlib-compressed grains.
    StreamOptimized,
    /// ESX space-efficient sparse.
    SeSparse,
    /// Raw bytes of a base disk (`VMFS`, `FLAT` extents), read only by whole-disk chains.
    Flat,
}

impl Format {
    /// Short name used by the Ruby API (`:cowd`, `:sparse`, `:stream_optimized`, `:sesparse`,
    /// `:flat`).
    pub fn key(self) -> &'static str {
        match self {
            Format::Cowd => "cowd",
            Format::Sparse => "sparse",
            Format::StreamOptimized => "stream_optimized",
            Format::SeSparse => "sesparse",
            Format::Flat => "flat",
        }
    }
    /// Human description.
    pub fn describe(self) -> &'static str {
        match self {
            Format::Cowd => "COWD (ESX vmfsSparse)",
            Format::Sparse => "hosted sparse VMDK4",
            Format::StreamOptimized => "streamOptimized VMDK4 (compressed)",
            Format::SeSparse => "seSparse (ESX)",
            Format::Flat => "flat (raw base disk)",
        }
    }
}

/// How to open a delta.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The disk the destination holds (`vm.vmdk`, or a snapshot already applied): the chain is
    /// followed down to the layer whose parentCID is this descriptor's CID. Without it, the
    /// chain is followed to its base through `parentFileNameHint`, as far as files exist.
    pub base: Option<PathBuf>,
    /// Accept deltas whose headers say they were not closed cleanly.
    pub allow_unclean: bool,
    /// Compare hosted sparse extents' redundant grain tables with the primary ones.
    pub check_redundant: bool,
    /// Accept a descriptor whose parent file is missing (the destination is taken to hold
    /// exactly that parent); without it such a chain is refused, since the missing file
    /// could be another snapshot whose changes would be lost.
    pub no_parent_check: bool,
    /// The whole disk, not only what the deltas changed: the chain must end at a base disk
    /// (a parentless monolithicSparse, twoGbMaxExtentSparse or streamOptimized image, named
    /// itself or reached through the chain), which becomes the oldest layer, and every range
    /// no layer allocates is written as zeros, so every destination byte in
    /// `[0, capacity)` is written once, in ascending order.
    pub full: bool,
    /// Check every structure of compressed (streamOptimized) extents, grain markers
    /// included, but inflate no grain yet: the apply inflates each compressed grain exactly
    /// once, as it writes. A grain that does not decode then stops the apply with
    /// [`Error::Stopped`] after the batches before it were written (the batch holding it is
    /// not). Without it every grain is inflated once when the delta is opened, to refuse a
    /// bad one before the first write, and once more by the apply. A dry run of a delta
    /// opened so inflates every grain itself, single-threaded. An apply of a delta opened so
    /// needs [`OpenOptions::full`] or [`ApplyOptions::undo`] ([`inflate_once_refusal`]).
    pub inflate_once: bool,
}

/// Why an apply with [`OpenOptions::inflate_once`] is refused, or `None` when it may go on.
/// Such an apply can stop part-way, on a grain that does not decode, so it needs `full` (the
/// destination is rewritten whole: a good image finishes it) or an `undo` file (which takes
/// it back). The one rule for the library's apply and the command line's usage check; the
/// reason reads after the option's name ("inflate_once ...", "--inflate-once ...").
pub fn inflate_once_refusal(inflate_once: bool, full: bool, undo: bool) -> Option<&'static str> {
    (inflate_once && !full && !undo).then_some(
        "can stop part-way, on a grain that does not decode: it needs a full apply (the \
         destination is rewritten whole) or an undo file (which takes it back)",
    )
}

/// How to apply a delta.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Accept a destination larger than the virtual disk (only the disk's part is written).
    pub allow_larger_destination: bool,
    /// Punch holes (files) or zero-out (block devices) instead of writing zero grains.
    pub discard_zeros: bool,
    /// Save the bytes about to be overwritten to this undo journal (PROTO[3], restorable with
    /// `lvmsync --apply FILE DEST`), each batch durable before it is overwritten: a new file,
    /// or the journal an interrupted apply of the same chain to the same destination left,
    /// which is resumed ([`crate::wire::undo`]).
    pub undo: Option<PathBuf>,
}

/// Bytes of runs whose old contents are saved to the undo file, and committed, before any of
/// them is written.
const UNDO_BATCH: u64 = 32 << 20;

/// What the parent check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseCheck {
    /// A parent descriptor was read and its CID and size match.
    Verified(PathBuf),
    /// No parent descriptor was available; the reason.
    NotChecked(String),
}

impl BaseCheck {
    /// The parent descriptor that was checked, if one was.
    pub fn verified(&self) -> Option<&Path> {
        match self {
            BaseCheck::Verified(p) => Some(p),
            BaseCheck::NotChecked(_) => None,
        }
    }
    /// Why no parent descriptor was checked, if none was.
    pub fn note(&self) -> Option<&str> {
        match self {
            BaseCheck::Verified(_) => None,
            BaseCheck::NotChecked(why) => Some(why),
        }
    }
}

/// One layer of an opened chain, as reported to users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// The file that names the layer.
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// Its extent files.
    pub extents: Vec<PathBuf>,
    /// Grain size in bytes.
    pub grain_size: u64,
    /// Grains with data.
    pub grains: u64,
    /// Grains reading as zeros.
    pub zero_grains: u64,
    /// Disk bytes its grains cover.
    pub changed_bytes: u64,
    /// CID, parentCID from its descriptor.
    pub cid: Option<u32>,
    /// parentCID.
    pub parent_cid: Option<u32>,
}

/// A validated delta (the chain ending at the file the user named), ready to apply.
#[derive(Debug)]
pub struct Delta {
    /// What the user named.
    pub path: PathBuf,
    /// The extent file of the newest layer's first extent.
    pub extent_path: PathBuf,
    /// Format of the newest layer.
    pub format: Format,
    /// Virtual disk size in bytes.
    pub capacity: u64,
    /// Grain size of the newest layer, in bytes.
    pub grain_size: u64,
    /// Grains in all layers (data and zeroed).
    pub grains: u64,
    /// The newest layer's descriptor.
    pub descriptor: Option<Descriptor>,
    /// The parent check.
    pub base: BaseCheck,
    /// Some layer's header says it was not closed cleanly (and that was allowed).
    pub unclean: bool,
    /// Non-fatal observations worth telling the user.
    pub warnings: Vec<String>,
    /// Opened with [`OpenOptions::full`]: the runs cover the whole disk.
    pub full: bool,
    /// Opened with [`OpenOptions::inflate_once`]: compressed grains were not inflated yet.
    pub inflate_once: bool,
    changed_bytes: u64,
    chain: Chain,
}

/// What an apply (or a dry run) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Grains in the chain's layers.
    pub grains: u64,
    /// Destination bytes written (or discarded).
    pub bytes: u64,
    /// Contiguous destination ranges written.
    pub extents: u64,
    /// `pwrite` calls made (0 for a dry run).
    pub writes: u64,
    /// Bytes discarded instead of written (with `discard_zeros`).
    pub discarded: u64,
    /// Compressed grains the apply inflated, each counted once per batch holding a piece of
    /// it (0 for a dry run).
    pub inflated: u64,
    /// Destination bytes the undo file holds (0 without one), saved by this run and by the
    /// interrupted runs it resumed.
    pub undo_bytes: u64,
    /// How the undo file came to be open: created, resumed, or found complete (then nothing
    /// was written: this apply had finished).
    pub undo_state: Option<UndoState>,
    /// Of `undo_bytes`, the bytes earlier (interrupted) runs had saved.
    pub undo_earlier_bytes: u64,
    /// Of `undo_bytes`, the bytes that were zeros: kept as discard records, they take no
    /// room in the undo file.
    pub undo_zero_bytes: u64,
}

/// What a verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Bytes compared.
    pub bytes: u64,
    /// Bytes that differ.
    pub mismatched_bytes: u64,
    /// The first differing ranges `(offset, length)` (at most [`MAX_REPORTED`]).
    pub mismatches: Vec<(u64, u64)>,
}

/// Most mismatching ranges listed in a [`VerifyReport`].
pub const MAX_REPORTED: usize = 100;

/// Inflates compressed grains, keeping the last one for the next piece of it.
struct GrainCache {
    key: Option<(u32, u64)>,
    inf: sparse::Inflater,
}

impl GrainCache {
    fn new() -> Self {
        GrainCache {
            key: None,
            inf: sparse::Inflater::new(),
        }
    }

    /// The bytes `[skip, skip+len)` of the grain `d`.
    fn slice(&mut self, chain: &Chain, d: DeflateRef, len: u64) -> Result<&[u8]> {
        let src = &chain.sources[d.file as usize];
        let name = name_of(&src.path);
        if self.key != Some((d.file, d.offset)) {
            self.key = None;
            let mut data = vec![0u8; d.clen as usize];
            src.file.read_exact_at(&mut data, d.offset).map_err(|e| {
                crate::IoContext::new(
                    &src.path,
                    format!("read compressed grain at byte {}", d.offset),
                    e,
                )
            })?;
            self.inf.inflate(&data, d.glen as usize).map_err(|why| {
                Error::format(&name, format!("grain at byte {}: {why}", d.offset))
            })?;
            self.key = Some((d.file, d.offset));
        }
        let out = self.inf.inflate_output();
        let (a, b) = (d.skip as usize, d.skip as usize + len as usize);
        out.get(a..b).ok_or_else(|| {
            Error::format(
                &name,
                format!(
                    "grain at byte {} inflates to {} bytes, too short for bytes {a}..{b}",
                    d.offset,
                    out.len()
                ),
            )
        })
    }
}

impl Delta {
    /// Opens and validates a delta and the chain below it.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Delta> {
        let chain = Chain::open(path, opts)?;
        let newest: &Layer = &chain.layers[0];
        let extent_path = newest
            .extents
            .first()
            .map(|x| chain.sources[x.file as usize].path.clone())
            .unwrap_or_else(|| path.to_path_buf());
        let changed_bytes = if chain.full {
            newest.capacity
        } else if chain.layers.len() == 1 {
            newest.changed_bytes
        } else {
            let mut n = 0u64;
            chain.for_each_run(&mut |r| {
                n += r.len;
                Ok(())
            })?;
            n
        };
        Ok(Delta {
            path: path.to_path_buf(),
            extent_path,
            format: newest.format,
            capacity: newest.capacity,
            grain_size: newest.grain_size,
            grains: chain.layers.iter().map(|l| l.grains + l.zero_grains).sum(),
            descriptor: newest.descriptor.clone(),
            base: chain.base.clone(),
            unclean: chain.layers.iter().any(|l| l.unclean.is_some()),
            warnings: chain
                .warnings
                .iter()
                .cloned()
                .chain(chain.layers.iter().filter_map(|l| l.note.clone()))
                .collect(),
            full: chain.full,
            inflate_once: opts.inflate_once,
            changed_bytes,
            chain,
        })
    }

    /// The chain's layers, newest first.
    pub fn layers(&self) -> Vec<LayerInfo> {
        self.chain
            .layers
            .iter()
            .map(|l| LayerInfo {
                path: l.path.clone(),
                format: l.format,
                extents: l
                    .extents
                    .iter()
                    .map(|x| self.chain.sources[x.file as usize].path.clone())
                    .collect(),
                grain_size: l.grain_size,
                grains: l.grains,
                zero_grains: l.zero_grains,
                changed_bytes: l.changed_bytes,
                cid: l.cid(),
                parent_cid: l.parent_cid(),
            })
            .collect()
    }

    /// Bytes of the disk the chain changes (each byte counted once).
    pub fn changed_bytes(&self) -> u64 {
        self.changed_bytes
    }

    /// The newest layer's descriptor CID, when it has a descriptor.
    pub fn cid(&self) -> Option<u32> {
        self.descriptor.as_ref().and_then(|d| d.cid)
    }

    /// The newest layer's parentCID, when it has a descriptor.
    pub fn parent_cid(&self) -> Option<u32> {
        self.descriptor.as_ref().and_then(|d| d.parent_cid)
    }

    /// The newest layer's parentFileNameHint as shown to users.
    pub fn parent_hint(&self) -> Option<String> {
        self.descriptor
            .as_ref()
            .and_then(|d| d.parent_hint_display())
    }

    /// Calls `f` with the merged runs of the chain in disk order.
    pub fn for_each_run(&self, mut f: impl FnMut(Run) -> Result<()>) -> Result<()> {
        self.chain.for_each_run(&mut f)
    }

    /// Changed destination ranges `(offset, length)` in bytes, sorted, adjacent ones merged.
    pub fn extents(&self) -> Result<Vec<(u64, u64)>> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        self.for_each_run(|r| {
            match out.last_mut() {
                Some((o, l)) if *o + *l == r.virt => *l += r.len,
                _ => out.push((r.virt, r.len)),
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn extent_count(&self) -> Result<u64> {
        let mut n = 0u64;
        let mut end = None;
        self.for_each_run(|r| {
            if end != Some(r.virt) {
                n += 1;
            }
            end = Some(r.end());
            Ok(())
        })?;
        Ok(n)
    }

    /// Checks that `dest` can take this delta: same size as the virtual disk (or larger, when
    /// allowed).
    pub fn check_destination(&self, dest: &Destination, opts: &ApplyOptions) -> Result<()> {
        let size = dest.size();
        if size == self.capacity || (opts.allow_larger_destination && size > self.capacity) {
            return Ok(());
        }
        let hint = if size > self.capacity {
            " (use --allow-larger-destination if the extra space is intended, e.g. an LV rounded up to whole extents)"
        } else {
            ""
        };
        Err(Error::BaseMismatch {
            msg: format!(
                "{}: destination is {size} bytes but the virtual disk of {} is {} bytes{hint}",
                dest.path().display(),
                self.path.display(),
                self.capacity
            ),
        })
    }

    /// What an apply would do, checking the destination read-only.
    pub fn dry_run(&self, dest: &Path, opts: &ApplyOptions) -> Result<ApplyStats> {
        let d = Destination::open_readonly(dest)?;
        d.check_not_input(&self.chain.inputs)?;
        self.check_destination(&d, opts)?;
        if self.inflate_once {
            // Opening left the compressed grains uninflated; a dry run promises every check.
            let mut cache = GrainCache::new();
            self.for_each_run(|r| match r.src {
                Src::Deflate(dr) => cache.slice(&self.chain, dr, r.len).map(|_| ()),
                _ => Ok(()),
            })?;
        }
        Ok(ApplyStats {
            grains: self.grains,
            bytes: self.changed_bytes,
            extents: self.extent_count()?,
            writes: 0,
            discarded: 0,
            ..Default::default()
        })
    }

    /// What identifies this chain in an undo journal: the capacity, and every layer's format,
    /// geometry, CIDs and extent files (their sizes and first 64 KiB: headers, descriptors,
    /// the start of the grain directory); and a description for messages.
    pub fn source_identity(&self) -> Result<(String, String)> {
        let mut h = crate::wire::proto3::StreamHash::default();
        for x in [self.capacity, self.changed_bytes, self.grains] {
            h.update(&x.to_le_bytes());
        }
        if self.full {
            // The whole disk's old content is saved, not only the changed ranges': a journal
            // of one never resumes the other.
            h.update(b"full");
        }
        let layers = self.layers();
        for l in &layers {
            for x in [
                l.grain_size,
                l.grains,
                l.zero_grains,
                l.changed_bytes,
                l.cid.map_or(u64::MAX, u64::from),
                l.parent_cid.map_or(u64::MAX, u64::from),
            ] {
                h.update(&x.to_le_bytes());
            }
            h.update(l.format.key().as_bytes());
        }
        let mut head = vec![0u8; 64 << 10];
        for src in &self.chain.sources {
            let size = crate::block::file_size(&src.file)
                .map_err(|e| crate::IoContext::new(&src.path, "get size", e))?;
            h.update(&size.to_le_bytes());
            let n = size.min(head.len() as u64) as usize;
            src.file
                .read_exact_at(&mut head[..n], 0)
                .map_err(|e| crate::IoContext::new(&src.path, "read", e))?;
            h.update(&head[..n]);
        }
        Ok((
            format!(
                "vmdk-chain:{:016x}:{}:{}",
                h.digest(),
                self.capacity,
                self.changed_bytes
            ),
            format!(
                "the delta {} ({} layers, {} bytes changed)",
                self.path.display(),
                layers.len(),
                self.changed_bytes
            ),
        ))
    }

    /// Writes the chain onto `dest`. Every check is done before the first write: the
    /// destination is none of the chain's files, and has the right size; the undo file is
    /// neither the destination nor one of the chain's files. The destination is
    /// `fdatasync`ed before this returns. An error after the first write is an
    /// [`Error::Stopped`] saying how much was written, and `progress` records that the
    /// destination was changed ([`Progress::written`]) however the apply ends.
    pub fn apply(
        &self,
        dest: &Path,
        opts: &ApplyOptions,
        progress: &Progress,
    ) -> Result<ApplyStats> {
        if let Some(why) = inflate_once_refusal(self.inflate_once, self.full, opts.undo.is_some()) {
            return Err(Error::Options(format!("inflate_once {why}")));
        }
        let d = Destination::open(dest)?;
        d.check_not_input(&self.chain.inputs)?;
        self.check_destination(&d, opts)?;
        if let Some(u) = &opts.undo {
            let mut written = self.chain.inputs.clone();
            written.add(d.file(), dest, "the destination")?;
            written.check_path(u, Written::UndoFile)?;
        }
        let _watch = d.watched_by(progress);
        self.write_to(&d, opts, progress).map_err(|e| {
            // An interruption is reported as such (the caller learns from `progress`
            // whether the destination was changed).
            if d.touched() && !e.is_cancelled() {
                Error::Stopped {
                    cause: Box::new(e),
                    dest: dest.to_path_buf(),
                    bytes: d.written_bytes(),
                }
            } else {
                e
            }
        })
    }

    /// The apply onto the checked destination `d`.
    fn write_to(
        &self,
        d: &Destination,
        opts: &ApplyOptions,
        progress: &Progress,
    ) -> Result<ApplyStats> {
        // Opened only now: a refused apply leaves no undo file behind. An existing one is
        // resumed when an interrupted apply of this chain to this destination left it, and
        // refused otherwise (it may be the only way back from an earlier run).
        let mut undo = match &opts.undo {
            Some(p) => {
                let (source_id, source) = self.source_identity()?;
                let id = UndoIdentity::new("vmdksync", Some(source_id), &source, d)
                    .map_err(Error::Undo)?;
                match UndoLog::open(p, &id).map_err(|e| match e {
                    crate::wire::Error::UndoExists { path, size, why } => {
                        Error::UndoExists { path, size, why }
                    }
                    other => Error::Undo(other),
                })? {
                    UndoOpen::Ready(log) => Some(*log),
                    UndoOpen::Complete(st) => {
                        // This apply finished before: nothing to write.
                        return Ok(ApplyStats {
                            grains: self.grains,
                            extents: self.extent_count()?,
                            undo_bytes: st.bytes,
                            undo_state: Some(st.state),
                            undo_earlier_bytes: st.earlier_bytes,
                            undo_zero_bytes: st.zero_bytes,
                            ..Default::default()
                        });
                    }
                }
            }
            None => None,
        };
        let mut rw = RunWriter {
            w: BatchWriter::new(d, &self.chain.sources, progress, self.changed_bytes),
            discard: opts.discard_zeros,
            discarded: 0,
        };
        let mut held: Vec<Run> = Vec::new();
        let mut held_bytes = 0u64;
        let (mut extents, mut end) = (0u64, None);
        self.for_each_run(|r| {
            if end != Some(r.virt) {
                extents += 1;
            }
            end = Some(r.end());
            match undo.as_mut() {
                None => rw.write(r),
                Some(u) => {
                    held_bytes += r.len;
                    held.push(r);
                    if held_bytes >= UNDO_BATCH {
                        held_bytes = 0;
                        release(u, d, &mut held, &mut rw)?;
                    }
                    Ok(())
                }
            }
        })?;
        if let Some(u) = undo.as_mut() {
            release(u, d, &mut held, &mut rw)?;
        }
        let discarded = rw.discarded;
        let CopyStats {
            bytes,
            writes,
            inflated,
        } = rw.finish()?;
        // Every write is durable now (the copy loop's fdatasync): the journal may say that
        // this apply finished.
        let undo = match undo {
            Some(u) => Some(u.finish()?),
            None => None,
        };
        Ok(ApplyStats {
            grains: self.grains,
            bytes,
            extents,
            writes,
            discarded,
            inflated,
            undo_bytes: undo.as_ref().map_or(0, |u| u.bytes),
            undo_state: undo.as_ref().map(|u| u.state),
            undo_earlier_bytes: undo.as_ref().map_or(0, |u| u.earlier_bytes),
            undo_zero_bytes: undo.as_ref().map_or(0, |u| u.zero_bytes),
        })
    }

    /// Re-reads every changed range of `dest` and compares it with the chain's view. The
    /// destination's cached pages are dropped first, so what is compared comes from the device.
    pub fn verify(&self, dest: &Path, progress: &Progress) -> Result<VerifyReport> {
        let d = Destination::open_readonly(dest)?;
        d.drop_cache();
        progress.set_total(self.changed_bytes);
        let mut report = VerifyReport::default();
        let mut cache = GrainCache::new();
        let mut want = Vec::new();
        let mut got = Vec::new();
        const CHUNK: u64 = 4 << 20;
        self.for_each_run(|r| {
            let mut done = 0u64;
            while done < r.len {
                if progress.is_cancelled() {
                    return Err(Error::Destination(crate::Cancelled.into()));
                }
                let n = (r.len - done).min(CHUNK);
                let piece = r.slice(r.virt + done, r.virt + done + n);
                want.resize(n as usize, 0);
                got.resize(n as usize, 0);
                match piece.src {
                    Src::Data { file, offset } => {
                        let s = &self.chain.sources[file as usize];
                        s.file.read_exact_at(&mut want, offset).map_err(|e| {
                            crate::IoContext::new(
                                &s.path,
                                format!("read {n} bytes at byte {offset}"),
                                e,
                            )
                        })?;
                    }
                    Src::Zero => want.fill(0),
                    Src::Deflate(dr) => want.copy_from_slice(cache.slice(&self.chain, dr, n)?),
                }
                d.read_exact_at(&mut got, piece.virt)?;
                compare(&want, &got, piece.virt, &mut report);
                report.bytes += n;
                progress.add_done(n);
                done += n;
            }
            Ok(())
        })?;
        Ok(report)
    }
}

fn compare(want: &[u8], got: &[u8], at: u64, report: &mut VerifyReport) {
    if want == got {
        return;
    }
    // Find differing 512-byte sectors and record them as ranges.
    for (i, (a, b)) in want.chunks(512).zip(got.chunks(512)).enumerate() {
        if a == b {
            continue;
        }
        let off = at + (i * 512) as u64;
        let len = a.len() as u64;
        report.mismatched_bytes += a.iter().zip(b).filter(|(x, y)| x != y).count() as u64;
        if let Some((o, l)) = report.mismatches.last_mut() {
            if *o + *l == off {
                *l += len;
                continue;
            }
        }
        if report.mismatches.len() < MAX_REPORTED {
            report.mismatches.push((off, len));
        }
    }
}

/// Saves the old contents of every held run to the undo file and commits it, then writes the
/// runs: nothing is overwritten before its old bytes are durable.
fn release(
    undo: &mut UndoLog,
    d: &Destination,
    held: &mut Vec<Run>,
    rw: &mut RunWriter,
) -> Result<()> {
    // Adjacent runs saved as one range: one journal record (of up to 1 MiB) per stretch.
    let mut stretch: Option<(u64, u64)> = None;
    for r in held.iter() {
        match stretch {
            Some((s, l)) if s + l == r.virt => stretch = Some((s, l + r.len)),
            _ => {
                if let Some((s, l)) = stretch {
                    undo.save(d, s, l)?;
                }
                stretch = Some((r.virt, r.len));
            }
        }
    }
    if let Some((s, l)) = stretch {
        undo.save(d, s, l)?;
    }
    undo.commit()?;
    for r in held.drain(..) {
        rw.write(r)?;
    }
    Ok(())
}

/// Writes merged runs through a [`BatchWriter`]: reads, compressed grains (inflated by the
/// copy loop, once per grain, on every core), zeros or discards, in order.
struct RunWriter<'a> {
    w: BatchWriter<'a>,
    discard: bool,
    discarded: u64,
}

impl RunWriter<'_> {
    fn write(&mut self, r: Run) -> Result<()> {
        let source = match r.src {
            Src::Data { file, offset } => SegmentSource::Read { file, offset },
            Src::Deflate(d) => SegmentSource::Deflate {
                file: d.file,
                offset: d.offset,
                clen: d.clen,
                glen: d.glen,
                skip: d.skip,
            },
            Src::Zero if self.discard => {
                self.discarded += self.w.discard(r.virt, r.len)?;
                return Ok(());
            }
            Src::Zero => SegmentSource::Zero,
        };
        self.w.push(Segment {
            dest: r.virt,
            len: r.len,
            source,
        })?;
        Ok(())
    }

    fn finish(self) -> Result<CopyStats> {
        Ok(self.w.finish()?)
    }
}

#[cfg(test)]
mod tests;
