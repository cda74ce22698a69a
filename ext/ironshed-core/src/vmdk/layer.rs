//! One level of a snapshot chain: a delta disk named by its descriptor (text, or embedded in
//! a KDMV file) or by a bare extent, with its extents laid end to end.

use super::descriptor::{self, Access, Descriptor, ExtentType, CID_NONE};
use super::error::{Error, Result};
use super::run::{ExtentReader, Run};
use super::{cowd, flat, sesparse, sparse, Format, OpenOptions};
use crate::block::SourceFile;
use crate::error::IoContext;
use crate::io::{open_path, Inputs, OpenMode, ReadAt};
use std::fs::File;
use std::path::{Path, PathBuf};

/// The reader of one extent file.
#[derive(Debug)]
enum Reader {
    Cowd(cowd::Cowd),
    Sparse(sparse::Sparse),
    SeSparse(sesparse::SeSparse),
    Flat(flat::Flat),
}

impl Reader {
    fn extent(&self) -> &dyn ExtentReader {
        match self {
            Reader::Cowd(c) => c,
            Reader::Sparse(s) => s,
            Reader::SeSparse(s) => s,
            Reader::Flat(x) => x,
        }
    }
}

/// One extent of a layer: `len` bytes of the disk from byte `start`, read from source `file`.
#[derive(Debug)]
pub struct LayerExtent {
    /// First disk byte it covers.
    pub start: u64,
    /// Bytes it covers.
    pub len: u64,
    /// Index into the chain's source files.
    pub file: u32,
    reader: Reader,
}

/// One delta disk of a chain.
#[derive(Debug)]
pub struct Layer {
    /// The file that names it (descriptor or extent).
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// Its descriptor, if it has one (text file or embedded).
    pub descriptor: Option<Descriptor>,
    /// Disk size in bytes.
    pub capacity: u64,
    /// Grain size in bytes (of its first extent).
    pub grain_size: u64,
    /// Grains with data.
    pub grains: u64,
    /// Grains that read as zeros.
    pub zero_grains: u64,
    /// Bytes of the disk its grains cover.
    pub changed_bytes: u64,
    /// Set when a header says the delta was not closed cleanly: which field, in which file.
    pub unclean: Option<String>,
    /// A non-fatal observation about the layer's files, for the user.
    pub note: Option<String>,
    /// Its extents, in disk order.
    pub extents: Vec<LayerExtent>,
}

/// The first bytes of a file, to tell formats apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `COWD`
    Cowd,
    /// `KDMV`
    Kdmv,
    /// seSparse constant header magic.
    SeSparse,
    /// Anything else: maybe a text descriptor.
    Other,
}

/// Classifies a file by its first 8 bytes.
pub fn kind_of(head: &[u8]) -> Kind {
    if head.starts_with(cowd::MAGIC) {
        Kind::Cowd
    } else if head.starts_with(sparse::MAGIC) {
        Kind::Kdmv
    } else if head.len() >= 8
        && u64::from_le_bytes(head[..8].try_into().unwrap_or([0; 8])) == sesparse::CONST_MAGIC
    {
        Kind::SeSparse
    } else {
        Kind::Other
    }
}

pub(crate) fn name_of(p: &Path) -> String {
    p.display().to_string()
}

/// The files a chain is read from.
#[derive(Debug, Default)]
pub struct Files {
    /// Every extent file, read while applying.
    pub sources: Vec<SourceFile>,
    /// Every file opened (descriptors too), which a destination must not be.
    pub inputs: Inputs,
}

impl Files {
    /// Opens `p` ([`open_path`]: a regular file or block device, never blocking) and notes it
    /// as an input read as `role`.
    pub(crate) fn open(&mut self, p: &Path, role: &str) -> Result<File> {
        let f = open_path(p, OpenMode::READ)?.file;
        self.inputs.add(&f, p, role)?;
        Ok(f)
    }
}

pub(crate) fn read_head(f: &File, p: &Path, max: usize) -> Result<Vec<u8>> {
    let len = f.size().map_err(|e| IoContext::new(p, "get size", e))?;
    let n = len.min(max as u64) as usize;
    let mut buf = vec![0u8; n];
    ReadAt::read_exact_at(f, &mut buf, 0).map_err(|e| IoContext::new(p, "read", e))?;
    Ok(buf)
}

fn hex(head: &[u8]) -> String {
    head.iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The descriptor of any VMDK file: a text descriptor, or the one embedded in a KDMV file.
/// `None` for a bare extent without one.
pub fn peek_descriptor(path: &Path) -> Result<Option<Descriptor>> {
    peek_descriptor_in(path, &mut Files::default(), "a descriptor")
}

/// [`peek_descriptor`], noting the file in `files` as read as `role`.
pub(crate) fn peek_descriptor_in(
    path: &Path,
    files: &mut Files,
    role: &str,
) -> Result<Option<Descriptor>> {
    let name = name_of(path);
    let f = files.open(path, role)?;
    let head = read_head(&f, path, descriptor::MAX_DESCRIPTOR + 1)?;
    match kind_of(&head) {
        Kind::Cowd | Kind::SeSparse => Ok(None),
        Kind::Kdmv => {
            let (h, len) = sparse::read_header(&f, &name)?;
            match sparse::embedded_descriptor(&f, &name, &h, len)? {
                Some(text) => descriptor::parse(&text, &name).map(Some),
                None => Ok(None),
            }
        }
        Kind::Other => {
            if !descriptor::looks_like_descriptor(&head) {
                return Err(Error::format(
                    &name,
                    format!(
                        "neither a VMDK descriptor nor a VMDK extent (first bytes: {})",
                        hex(&head)
                    ),
                ));
            }
            descriptor::parse(&head, &name).map(Some)
        }
    }
}

impl Layer {
    /// Opens the delta named by `path`, adding its extent files to `files`.
    pub fn open(path: &Path, files: &mut Files, opts: &OpenOptions) -> Result<Layer> {
        let name = name_of(path);
        let f = files.open(path, "a delta of the chain")?;
        let head = read_head(&f, path, descriptor::MAX_DESCRIPTOR + 1)?;
        let layer = match kind_of(&head) {
            Kind::Cowd | Kind::SeSparse => Self::single(path, f, None, files, opts)?,
            Kind::Kdmv => {
                let (h, len) = sparse::read_header(&f, &name)?;
                let desc = match sparse::embedded_descriptor(&f, &name, &h, len)? {
                    Some(text) => Some(descriptor::parse(&text, &name)?),
                    None => None,
                };
                let note = match &desc {
                    Some(d) => check_embedded(d, path, h.capacity, &name)?,
                    None => None,
                };
                let mut layer = Self::single(path, f, desc, files, opts)?;
                layer.note = note;
                layer
            }
            Kind::Other => {
                if !descriptor::looks_like_descriptor(&head) {
                    return Err(Error::format(
                        &name,
                        format!(
                            "neither a VMDK descriptor nor a VMDK extent (first bytes: {})",
                            hex(&head)
                        ),
                    ));
                }
                let d = descriptor::parse(&head, &name)?;
                Self::from_descriptor(path, d, files, opts)?
            }
        };
        if let (Some(why), false) = (&layer.unclean, opts.allow_unclean) {
            return Err(Error::format(
                &name,
                format!("{why}: the delta was not closed cleanly (VM still running, or the host crashed); power the VM off cleanly first, or pass --allow-unclean to accept a possibly inconsistent delta"),
            ));
        }
        Ok(layer)
    }

    /// A layer with no extents yet (they are added by `add_extent`).
    fn empty(path: &Path, descriptor: Option<Descriptor>) -> Layer {
        Layer {
            path: path.to_path_buf(),
            format: Format::Cowd,
            descriptor,
            capacity: 0,
            grain_size: 0,
            grains: 0,
            zero_grains: 0,
            changed_bytes: 0,
            unclean: None,
            note: None,
            extents: Vec::new(),
        }
    }

    /// A layer made of one extent file that is also what the user named.
    fn single(
        path: &Path,
        f: File,
        desc: Option<Descriptor>,
        files: &mut Files,
        opts: &OpenOptions,
    ) -> Result<Layer> {
        let mut layer = Layer::empty(path, desc);
        layer.add_extent(path, f, None, &mut files.sources, opts)?;
        Ok(layer)
    }

    fn from_descriptor(
        path: &Path,
        d: Descriptor,
        files: &mut Files,
        opts: &OpenOptions,
    ) -> Result<Layer> {
        let name = name_of(path);
        let ct = d
            .create_type
            .clone()
            .ok_or_else(|| Error::format(&name, "descriptor has no createType"))?;
        let wanted: &[ExtentType] = match ct.as_str() {
            "vmfsSparse" => &[ExtentType::VmfsSparse, ExtentType::Sparse],
            "seSparse" => &[ExtentType::SeSparse],
            "twoGbMaxExtentSparse" | "monolithicSparse" | "streamOptimized" => &[ExtentType::Sparse],
            "vmfs" | "monolithicFlat" | "twoGbMaxExtentFlat" | "vmfsThin" | "vmfsEagerZeroedThick" | "vmfsPreallocated" if !d.has_parent() && opts.full => {
                &[ExtentType::Vmfs, ExtentType::Flat]
            }
            "vmfs" | "monolithicFlat" | "twoGbMaxExtentFlat" | "vmfsThin" | "vmfsEagerZeroedThick" | "vmfsPreallocated" if !d.has_parent() => {
                return Err(Error::format(
                    &name,
                    format!("createType \"{ct}\" with no parent: this is a base disk, not a snapshot delta; give the snapshot's descriptor (vm-000001.vmdk), or use --full to write the whole disk"),
                ))
            }
            other => {
                return Err(Error::unsupported(
                    &name,
                    format!("createType \"{other}\" is not a delta this version can apply (supported: vmfsSparse, seSparse, monolithicSparse, twoGbMaxExtentSparse, streamOptimized)"),
                ))
            }
        };
        if d.extents.is_empty() {
            return Err(Error::format(&name, "descriptor has no extent lines"));
        }
        if matches!(ct.as_str(), "vmfsSparse" | "seSparse") && d.extents.len() != 1 {
            return Err(Error::format(
                &name,
                format!(
                    "a {ct} descriptor must have exactly one extent line, found {}",
                    d.extents.len()
                ),
            ));
        }
        let mut layer = Layer::empty(path, None);
        for e in &d.extents {
            if !wanted.contains(&e.kind) {
                return Err(Error::format(
                    &name,
                    format!(
                        "line {}: extent type {} does not match createType {ct} (expected {})",
                        e.line,
                        e.kind.name(),
                        wanted[0].name()
                    ),
                ));
            }
            if e.access == Access::NoAccess {
                return Err(Error::format(
                    &name,
                    format!("line {}: extent is NOACCESS", e.line),
                ));
            }
            if e.sectors == 0 {
                return Err(Error::format(
                    &name,
                    format!("line {}: extent has 0 sectors", e.line),
                ));
            }
            let is_flat = matches!(e.kind, ExtentType::Vmfs | ExtentType::Flat);
            if e.offset.is_some() && !is_flat {
                return Err(Error::format(
                    &name,
                    format!(
                        "line {}: a {} extent takes no offset",
                        e.line,
                        e.kind.name()
                    ),
                ));
            }
            let p = e.resolve(path).ok_or_else(|| {
                Error::format(&name, format!("line {}: extent line names no file", e.line))
            })?;
            if same_file(&p, path) {
                return Err(Error::format(
                    &name,
                    format!("line {}: the extent names the descriptor itself", e.line),
                ));
            }
            let f = files.open(&p, &format!("an extent of {name}"))?;
            if is_flat {
                // Raw data: no magic to check, only that the file holds the extent.
                let size = f.size().map_err(|e| IoContext::new(&p, "get size", e))?;
                let x = flat::Flat::new(
                    e.sectors,
                    e.offset.unwrap_or(0),
                    size,
                    &name_of(&p),
                    e.line,
                    &name,
                )?;
                layer.push_extent(
                    &p,
                    f,
                    ExtentInfo {
                        format: Format::Flat,
                        capacity: x.len,
                        grain: 0,
                        grains: 0,
                        zeros: 0,
                        bytes: x.len,
                        unclean: None,
                        reader: Reader::Flat(x),
                    },
                    &mut files.sources,
                )?;
                continue;
            }
            let head = read_head(&f, &p, 8)?;
            let kind = kind_of(&head);
            let fits = match e.kind {
                ExtentType::VmfsSparse => kind == Kind::Cowd,
                ExtentType::SeSparse => kind == Kind::SeSparse,
                _ => kind == Kind::Kdmv || kind == Kind::Cowd,
            };
            if !fits {
                let expect = match e.kind {
                    ExtentType::VmfsSparse => "a COWD delta, starting with 'COWD'",
                    ExtentType::SeSparse => {
                        "a seSparse extent, starting with the 0xcafebabe header magic"
                    }
                    _ => "a hosted sparse extent, starting with 'KDMV'",
                };
                return Err(Error::format(
                    &name_of(&p),
                    format!(
                        "bad magic {} at byte 0: line {} of {name} says {} ({expect})",
                        hex(&head[..head.len().min(4)]),
                        e.line,
                        e.kind.name()
                    ),
                ));
            }
            layer.add_extent(
                &p,
                f,
                Some((e.sectors, e.line, &name)),
                &mut files.sources,
                opts,
            )?;
        }
        layer.descriptor = Some(d);
        Ok(layer)
    }

    /// Validates one extent file and appends it. `line` is the extent line (sectors, line
    /// number, descriptor name) when a descriptor names it.
    fn add_extent(
        &mut self,
        p: &Path,
        f: File,
        line: Option<(u64, usize, &str)>,
        sources: &mut Vec<SourceFile>,
        opts: &OpenOptions,
    ) -> Result<()> {
        let ename = name_of(p);
        let head = read_head(&f, p, 8)?;
        let info = match kind_of(&head) {
            Kind::Cowd => {
                let c = cowd::read(&f, &ename)?;
                ExtentInfo {
                    format: Format::Cowd,
                    capacity: c.header.capacity_bytes(),
                    grain: c.header.grain_bytes(),
                    grains: c.grains,
                    zeros: 0,
                    bytes: c.changed_bytes,
                    unclean: (c.header.unclean_shutdown != 0).then(|| {
                        format!(
                            "{ename}: uncleanShutdown is {} at byte 1648",
                            c.header.unclean_shutdown
                        )
                    }),
                    reader: Reader::Cowd(c),
                }
            }
            Kind::Kdmv => {
                let s = sparse::read(
                    &f,
                    &ename,
                    sparse::Options {
                        check_redundant: opts.check_redundant,
                        inflate_once: opts.inflate_once,
                    },
                )?;
                ExtentInfo {
                    format: if s.header.compressed() {
                        Format::StreamOptimized
                    } else {
                        Format::Sparse
                    },
                    capacity: s.header.capacity_bytes(),
                    grain: s.header.grain_bytes(),
                    grains: s.grains,
                    zeros: s.zero_grains,
                    bytes: s.changed_bytes,
                    unclean: (s.header.unclean_shutdown != 0).then(|| {
                        format!(
                            "{ename}: uncleanShutdown is {} at byte 72",
                            s.header.unclean_shutdown
                        )
                    }),
                    reader: Reader::Sparse(s),
                }
            }
            Kind::SeSparse => {
                let s = sesparse::read(&f, &ename)?;
                ExtentInfo {
                    format: Format::SeSparse,
                    capacity: s.header.capacity_bytes(),
                    grain: sesparse::GRAIN_SECTORS * 512,
                    grains: s.grains,
                    zeros: s.zero_grains,
                    bytes: s.changed_bytes,
                    unclean: (s.header.replay_journal != 0)
                        .then(|| format!("{ename}: the volatile header's replayJournal is {} (journal not replayed)", s.header.replay_journal)),
                    reader: Reader::SeSparse(s),
                }
            }
            Kind::Other => {
                return Err(Error::format(
                    &ename,
                    format!("not a VMDK extent (first bytes: {})", hex(&head)),
                ));
            }
        };
        if let Some((sectors, lineno, dname)) = line {
            if sectors.checked_mul(512) != Some(info.capacity) {
                return Err(Error::format(
                    dname,
                    format!("line {lineno}: extent line says {sectors} sectors but the header of {ename} says {}", info.capacity / 512),
                ));
            }
        }
        self.push_extent(p, f, info, sources)
    }

    /// Appends a validated extent file.
    fn push_extent(
        &mut self,
        p: &Path,
        f: File,
        info: ExtentInfo,
        sources: &mut Vec<SourceFile>,
    ) -> Result<()> {
        let ename = name_of(p);
        let ExtentInfo {
            reader,
            format,
            capacity,
            grain,
            grains,
            zeros,
            bytes,
            unclean,
        } = info;
        if self.extents.is_empty() {
            self.format = format;
            self.grain_size = grain;
        } else if self.format != format {
            return Err(Error::unsupported(
                &ename,
                "extents of different formats in one descriptor",
            ));
        }
        let idx = u32::try_from(sources.len())
            .map_err(|_| Error::format(&ename, "too many extent files"))?;
        sources.push(SourceFile {
            path: p.to_path_buf(),
            file: f,
        });
        self.extents.push(LayerExtent {
            start: self.capacity,
            len: capacity,
            file: idx,
            reader,
        });
        self.capacity += capacity;
        self.grains += grains;
        self.zero_grains += zeros;
        self.changed_bytes += bytes;
        if self.unclean.is_none() {
            self.unclean = unclean;
        }
        Ok(())
    }

    /// This layer's CID (from its descriptor).
    pub fn cid(&self) -> Option<u32> {
        self.descriptor.as_ref().and_then(|d| d.cid)
    }
    /// The CID of the parent it was taken from (None for a bare extent or no parent).
    pub fn parent_cid(&self) -> Option<u32> {
        self.descriptor
            .as_ref()
            .and_then(|d| d.parent_cid)
            .filter(|&c| c != CID_NONE)
    }
    /// The parent hint resolved against this layer's directory.
    pub fn parent_path(&self) -> Option<PathBuf> {
        self.descriptor
            .as_ref()
            .and_then(|d| d.parent_hint.as_ref())
            .map(|h| descriptor::resolve_relative(&self.path, h))
    }

    /// The first disk byte at or after `from` where this layer may hold data.
    pub fn next_data(&self, from: u64) -> Option<u64> {
        self.extents
            .iter()
            .filter(|x| x.start + x.len > from)
            .filter_map(|x| {
                let local = from.saturating_sub(x.start);
                x.reader.extent().next_data(local).map(|n| n + x.start)
            })
            .min()
    }

    /// Calls `f` for this layer's runs inside disk bytes `[start, end)`, in order.
    pub fn for_each_run(
        &self,
        sources: &[SourceFile],
        start: u64,
        end: u64,
        f: &mut dyn FnMut(Run) -> Result<()>,
    ) -> Result<()> {
        for x in &self.extents {
            let (xs, xe) = (x.start, x.start + x.len);
            if xe <= start || xs >= end {
                continue;
            }
            let src = &sources[x.file as usize];
            let name = name_of(&src.path);
            let (ls, le) = (start.max(xs) - xs, end.min(xe) - xs);
            let mut shift = |mut r: Run| {
                r.virt += xs;
                f(r)
            };
            x.reader
                .extent()
                .for_each_run(&src.file, &name, x.file, ls, le, &mut shift)?;
        }
        Ok(())
    }
}

struct ExtentInfo {
    reader: Reader,
    format: Format,
    capacity: u64,
    grain: u64,
    grains: u64,
    zeros: u64,
    bytes: u64,
    unclean: Option<String>,
}

/// A KDMV file's embedded descriptor must describe the file itself with the header's size.
/// A file it names that does not exist is taken to be this file under the name it was
/// written with (an OVA's disk renamed after export): returns a note saying so.
fn check_embedded(
    d: &Descriptor,
    path: &Path,
    capacity: u64,
    name: &str,
) -> Result<Option<String>> {
    if d.extents.len() == 1 {
        let e = &d.extents[0];
        if e.sectors != capacity {
            return Err(Error::format(
                name,
                format!("embedded descriptor line {}: extent says {} sectors but the header says {capacity}", e.line, e.sectors),
            ));
        }
        if let Some(p) = e.resolve(path) {
            let gone = matches!(std::fs::symlink_metadata(&p), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
            if p.file_name() != path.file_name() && gone {
                return Ok(Some(format!(
                    "{name}: its embedded descriptor (line {}) names {}, which does not exist: taken to be this file, renamed since it was written",
                    e.line,
                    p.display()
                )));
            }
            if !same_file(&p, path) && p.file_name() != path.file_name() {
                return Err(Error::unsupported(
                    name,
                    format!("embedded descriptor line {} names another file ({}); open that descriptor instead", e.line, p.display()),
                ));
            }
        }
    }
    Ok(None)
}

pub(crate) use crate::io::same_file;

#[cfg(test)]
mod tests;
