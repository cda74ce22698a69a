//! VMware delta disks and how to apply them onto a raw copy of the base.
//!
//! [`Delta::open`] takes what the user names (a text descriptor such as `vm-000001.vmdk`, or
//! the bare extent `vm-000001-delta.vmdk`), validates the descriptor, the extent and, where
//! one can be found, the parent descriptor, and turns the delta into a sorted list of
//! destination segments. [`Delta::apply`] checks the destination and writes the segments with
//! the shared copy loop. Nothing is written before every check has passed.

pub mod cowd;
pub mod descriptor;
mod error;

pub use error::{Error, Result};

use crate::block::{BatchWriter, CopyStats, Destination, Segment, SegmentSource, SourceFile};
use crate::error::IoContext;
use crate::io::ReadAt;
use crate::progress::Progress;
use descriptor::{Descriptor, ExtentType, CID_NONE};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Formats a delta extent can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ESX vmfsSparse redo log (`COWD` magic).
    Cowd,
}

impl Format {
    /// Short name used by the Ruby API (`:cowd`).
    pub fn key(self) -> &'static str {
        match self {
            Format::Cowd => "cowd",
        }
    }
    /// Human description.
    pub fn describe(self) -> &'static str {
        match self {
            Format::Cowd => "COWD (ESX vmfsSparse)",
        }
    }
}

/// How to open a delta.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The base disk's descriptor (`vm.vmdk`): its CID must equal the delta's parentCID and its
    /// size the delta's capacity. Without it, the descriptor's `parentFileNameHint` is used
    /// when that file exists next to the delta.
    pub base: Option<PathBuf>,
    /// Accept a delta whose header says it was not closed cleanly.
    pub allow_unclean: bool,
}

/// How to apply a delta.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Accept a destination larger than the virtual disk (only the disk's part is written).
    pub allow_larger_destination: bool,
}

/// What the parent check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseCheck {
    /// A parent descriptor was read and its CID and size match.
    Verified(PathBuf),
    /// No parent descriptor was available; only the destination size can be checked.
    NotChecked(String),
}

/// A validated delta, ready to apply.
#[derive(Debug)]
pub struct Delta {
    /// What the user named.
    pub path: PathBuf,
    /// The extent file holding the grains.
    pub extent_path: PathBuf,
    /// Extent format.
    pub format: Format,
    /// Virtual disk size in bytes.
    pub capacity: u64,
    /// Grain size in bytes.
    pub grain_size: u64,
    /// Number of grains present in the delta.
    pub grains: u64,
    /// The text descriptor, when the user named one.
    pub descriptor: Option<Descriptor>,
    /// The parent check.
    pub base: BaseCheck,
    /// The header's uncleanShutdown flag.
    pub unclean: bool,
    /// Non-fatal observations worth telling the user.
    pub warnings: Vec<String>,
    changed_bytes: u64,
    extent: cowd::Cowd,
    sources: Vec<SourceFile>,
}

/// What an apply (or a dry run) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Grains written.
    pub grains: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Contiguous destination ranges written.
    pub extents: u64,
    /// `pwrite` calls made (0 for a dry run).
    pub writes: u64,
}

fn name_of(p: &Path) -> String {
    p.display().to_string()
}

fn open_file(p: &Path) -> Result<File> {
    File::open(p).map_err(|e| Error::Io(IoContext::new(p, "open", e)))
}

fn read_head(f: &File, p: &Path, max: usize) -> Result<Vec<u8>> {
    let len = f.size().map_err(|e| IoContext::new(p, "get size", e))?;
    let n = (len.min(max as u64)) as usize;
    let mut buf = vec![0u8; n];
    ReadAt::read_exact_at(f, &mut buf, 0).map_err(|e| IoContext::new(p, "read", e))?;
    Ok(buf)
}

impl Delta {
    /// Opens and validates a delta named by descriptor or extent file.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Delta> {
        let file = open_file(path)?;
        let head = read_head(&file, path, 4)?;
        let name = name_of(path);
        if head.starts_with(cowd::MAGIC) {
            let base = BaseCheck::NotChecked(match &opts.base {
                Some(b) => format!(
                    "a bare -delta.vmdk extent carries no parentCID: only the size of {} was checked; name the descriptor (vm-000001.vmdk) to have the chain checked",
                    b.display()
                ),
                None => "a bare -delta.vmdk extent carries no parentCID; name the descriptor (vm-000001.vmdk) to have the chain checked".into(),
            });
            let warnings = Vec::new();
            let mut d =
                Self::from_cowd(path, path.to_path_buf(), file, None, base, warnings, opts)?;
            if let Some(b) = &opts.base {
                let bd = read_base_descriptor(b)?;
                check_base_size(&bd, b, d.capacity, &name)?;
            }
            d.path = path.to_path_buf();
            return Ok(d);
        }
        let text = read_head(&file, path, descriptor::MAX_DESCRIPTOR + 1)?;
        if !descriptor::looks_like_descriptor(&text) {
            if head.starts_with(b"KDMV") {
                return Err(Error::unsupported(
                    &name,
                    "hosted sparse VMDK (KDMV) deltas are not supported by this version; only ESX COWD (vmfsSparse) deltas are",
                ));
            }
            return Err(Error::format(
                &name,
                format!(
                    "neither a VMDK text descriptor nor a COWD delta extent (first bytes: {})",
                    head.iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            ));
        }
        let desc = descriptor::parse(&text, &name)?;
        Self::from_descriptor(path, desc, opts)
    }

    fn from_descriptor(path: &Path, desc: Descriptor, opts: &OpenOptions) -> Result<Delta> {
        let name = name_of(path);
        let ct = desc
            .create_type
            .clone()
            .ok_or_else(|| Error::format(&name, "descriptor has no createType"))?;
        if ct != "vmfsSparse" {
            return Err(Error::unsupported(
                &name,
                format!("createType \"{ct}\" is not a delta this version can apply (supported: vmfsSparse)"),
            ));
        }
        if desc.extents.len() != 1 {
            return Err(Error::format(
                &name,
                format!(
                    "a vmfsSparse descriptor must have exactly one extent line, found {}",
                    desc.extents.len()
                ),
            ));
        }
        let ext = &desc.extents[0];
        if ext.kind != ExtentType::VmfsSparse && ext.kind != ExtentType::Sparse {
            return Err(Error::format(
                &name,
                format!("line {}: extent type {} does not match createType vmfsSparse (expected VMFSSPARSE)", ext.line, ext.kind.name()),
            ));
        }
        if ext.access == descriptor::Access::NoAccess {
            return Err(Error::format(
                &name,
                format!("line {}: extent is NOACCESS", ext.line),
            ));
        }
        if ext.sectors == 0 {
            return Err(Error::format(
                &name,
                format!("line {}: extent has 0 sectors", ext.line),
            ));
        }
        if ext.offset.is_some() {
            return Err(Error::format(
                &name,
                format!("line {}: a VMFSSPARSE extent takes no offset", ext.line),
            ));
        }
        let extent_path = ext.resolve(path).ok_or_else(|| {
            Error::format(
                &name,
                format!("line {}: extent line names no file", ext.line),
            )
        })?;
        if same_file(&extent_path, path) {
            return Err(Error::format(
                &name,
                format!("line {}: the extent names the descriptor itself", ext.line),
            ));
        }
        let parent_cid =
            match desc.parent_cid {
                None => {
                    return Err(Error::format(
                        &name,
                        "descriptor has no parentCID: not a snapshot delta",
                    ))
                }
                Some(CID_NONE) => return Err(Error::format(
                    &name,
                    "parentCID is ffffffff (no parent): this descriptor is not a snapshot delta",
                )),
                Some(c) => c,
            };
        let mut warnings = Vec::new();
        let hint_path = desc
            .parent_hint
            .as_ref()
            .map(|h| descriptor::resolve_relative(path, h));
        if let Some(hp) = &hint_path {
            if same_file(hp, path) || same_file(hp, &extent_path) {
                return Err(Error::format(
                    &name,
                    "parentFileNameHint points back at the delta itself",
                ));
            }
        } else {
            warnings.push(format!("{name}: descriptor has no parentFileNameHint"));
        }
        let capacity = ext.sectors.checked_mul(512).ok_or_else(|| {
            Error::format(&name, format!("line {}: extent size overflows", ext.line))
        })?;
        // The parent: explicit --base, else the hint when it exists.
        let base = match (&opts.base, &hint_path) {
            (Some(b), _) => {
                let bd = read_base_descriptor(b)?;
                check_base(&bd, b, parent_cid, capacity, &name)?;
                if let Some(hp) = &hint_path {
                    if hp.file_name() != b.file_name() {
                        warnings.push(format!(
                            "{name}: parentFileNameHint names {} but the base given is {} (CID matches, continuing)",
                            hp.display(),
                            b.display()
                        ));
                    }
                }
                BaseCheck::Verified(b.clone())
            }
            (None, Some(hp)) if hp.exists() => {
                let bd = read_base_descriptor(hp)?;
                check_base(&bd, hp, parent_cid, capacity, &name)?;
                BaseCheck::Verified(hp.clone())
            }
            (None, Some(hp)) => BaseCheck::NotChecked(format!(
                "parent descriptor {} not found; parentCID {parent_cid:08x} not checked (use --base to check it)",
                hp.display()
            )),
            (None, None) => BaseCheck::NotChecked("descriptor names no parent; parentCID not checked".into()),
        };
        let file = open_file(&extent_path)?;
        let head = read_head(&file, &extent_path, 4)?;
        let ename = name_of(&extent_path);
        if !head.starts_with(cowd::MAGIC) {
            if head.starts_with(b"KDMV") {
                return Err(Error::unsupported(
                    &ename,
                    "hosted sparse (KDMV) extents are not supported by this version",
                ));
            }
            return Err(Error::format(
                &ename,
                format!(
                    "bad magic {} at byte 0: the descriptor says VMFSSPARSE but the file is not a COWD delta",
                    head.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
                ),
            ));
        }
        let mut d = Self::from_cowd(path, extent_path, file, Some(desc), base, warnings, opts)?;
        if d.capacity != capacity {
            return Err(Error::format(
                &name,
                format!(
                    "extent line says {} sectors but the delta header of {} says {}",
                    capacity / 512,
                    d.extent_path.display(),
                    d.capacity / 512
                ),
            ));
        }
        d.path = path.to_path_buf();
        Ok(d)
    }

    fn from_cowd(
        path: &Path,
        extent_path: PathBuf,
        file: File,
        descriptor: Option<Descriptor>,
        base: BaseCheck,
        warnings: Vec<String>,
        opts: &OpenOptions,
    ) -> Result<Delta> {
        let ename = name_of(&extent_path);
        let c = cowd::read(&file, &ename)?;
        if c.header.unclean_shutdown != 0 && !opts.allow_unclean {
            return Err(Error::format(
                &ename,
                format!(
                    "uncleanShutdown is {} at byte 1648: the delta was not closed cleanly (VM still running, or the host crashed); power the VM off cleanly first, or pass --allow-unclean to accept a possibly inconsistent delta",
                    c.header.unclean_shutdown
                ),
            ));
        }
        Ok(Delta {
            path: path.to_path_buf(),
            extent_path: extent_path.clone(),
            format: Format::Cowd,
            capacity: c.header.capacity_bytes(),
            grain_size: c.header.grain_bytes(),
            grains: c.grains,
            descriptor,
            base,
            unclean: c.header.unclean_shutdown != 0,
            warnings,
            changed_bytes: c.changed_bytes,
            extent: c,
            sources: vec![SourceFile {
                path: extent_path,
                file,
            }],
        })
    }

    /// Bytes the delta changes.
    pub fn changed_bytes(&self) -> u64 {
        self.changed_bytes
    }

    /// Calls `f` with every segment to write, in destination order; grain tables are read
    /// one at a time, so memory does not grow with the delta.
    pub fn for_each_segment<F>(&self, mut f: F) -> Result<()>
    where
        F: FnMut(Segment) -> Result<()>,
    {
        let src = &self.sources[0];
        let name = name_of(&src.path);
        self.extent
            .for_each_run(&src.file, &name, 0, self.capacity, |dest, len, offset| {
                f(Segment {
                    dest,
                    len,
                    source: SegmentSource::Read { file: 0, offset },
                })
            })
    }

    /// Changed destination ranges `(offset, length)` in bytes, sorted, adjacent ones merged.
    pub fn extents(&self) -> Result<Vec<(u64, u64)>> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        self.for_each_segment(|s| {
            match out.last_mut() {
                Some((o, l)) if *o + *l == s.dest => *l += s.len,
                _ => out.push((s.dest, s.len)),
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn extent_count(&self) -> Result<u64> {
        let mut n = 0u64;
        let mut end = None;
        self.for_each_segment(|s| {
            if end != Some(s.dest) {
                n += 1;
            }
            end = Some(s.dest + s.len);
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
        self.check_destination(&d, opts)?;
        Ok(ApplyStats {
            grains: self.grains,
            bytes: self.changed_bytes,
            extents: self.extent_count()?,
            writes: 0,
        })
    }

    /// Writes the delta onto `dest`. Every check is done before the first write; the
    /// destination is `fdatasync`ed before this returns.
    pub fn apply(
        &self,
        dest: &Path,
        opts: &ApplyOptions,
        progress: &Progress,
    ) -> Result<ApplyStats> {
        let d = Destination::open(dest)?;
        self.check_destination(&d, opts)?;
        let mut w = BatchWriter::new(&d, &self.sources, progress, self.changed_bytes);
        let mut extents = 0u64;
        let mut end = None;
        self.for_each_segment(|s| {
            if end != Some(s.dest) {
                extents += 1;
            }
            end = Some(s.dest + s.len);
            w.push(s).map_err(Error::from)
        })?;
        let CopyStats { bytes, writes } = w.finish()?;
        Ok(ApplyStats {
            grains: self.grains,
            bytes,
            extents,
            writes,
        })
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn read_base_descriptor(p: &Path) -> Result<Descriptor> {
    let name = name_of(p);
    let f = open_file(p)?;
    let text = read_head(&f, p, descriptor::MAX_DESCRIPTOR + 1)?;
    if !descriptor::looks_like_descriptor(&text) {
        return Err(Error::BaseMismatch {
            msg: format!("{name}: the base must be the text descriptor of the base disk (vm.vmdk), not its -flat.vmdk data"),
        });
    }
    let d = descriptor::parse(&text, &name)?;
    match d.create_type.as_deref() {
        Some("vmfs") | Some("monolithicFlat") => {}
        other => {
            return Err(Error::BaseMismatch {
                msg: format!(
                    "{name}: base descriptor has createType {:?}; a raw base is described by \"vmfs\" or \"monolithicFlat\"",
                    other.unwrap_or("(none)")
                ),
            })
        }
    }
    if d.extents.len() != 1 {
        return Err(Error::BaseMismatch {
            msg: format!(
                "{name}: base descriptor must have exactly one extent, found {}",
                d.extents.len()
            ),
        });
    }
    let e = &d.extents[0];
    if !matches!(e.kind, ExtentType::Vmfs | ExtentType::Flat) || e.offset.unwrap_or(0) != 0 {
        return Err(Error::BaseMismatch {
            msg: format!(
                "{name}: line {}: base extent must be VMFS or FLAT at offset 0",
                e.line
            ),
        });
    }
    Ok(d)
}

fn check_base_size(base: &Descriptor, base_path: &Path, capacity: u64, delta: &str) -> Result<()> {
    let sectors = base.total_sectors().unwrap_or(0);
    if sectors.checked_mul(512) != Some(capacity) {
        return Err(Error::BaseMismatch {
            msg: format!(
                "{delta}: capacity is {} sectors but the base {} has {sectors}",
                capacity / 512,
                base_path.display()
            ),
        });
    }
    Ok(())
}

fn check_base(
    base: &Descriptor,
    base_path: &Path,
    parent_cid: u32,
    capacity: u64,
    delta: &str,
) -> Result<()> {
    let bname = base_path.display();
    let cid = base.cid.ok_or_else(|| Error::BaseMismatch {
        msg: format!("{bname}: base descriptor has no CID to check the delta's parentCID against"),
    })?;
    if cid != parent_cid {
        return Err(Error::BaseMismatch {
            msg: format!(
                "{delta}: parentCID is {parent_cid:08x} but the base {bname} has CID {cid:08x}: the delta was not taken from this base (or the base changed after the snapshot)"
            ),
        });
    }
    check_base_size(base, base_path, capacity, delta)
}
