//! Whole snapshot chains on disk: a raw base with its `vmfs` descriptor, then one delta per
//! model layer in any format, each naming its parent through `parentFileNameHint` with the
//! parent's CID as its `parentCID`, as ESX, Workstation and QEMU lay them out.

use crate::cowd::{self, CowdSpec, Layout};
use crate::descriptor;
use crate::model::Model;
use crate::sesparse;
use crate::sparse::{self, SparseSpec};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// CID of the base disk.
pub const BASE_CID: u32 = 0x5a17_b9ae;

/// The format of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerFormat {
    /// ESX vmfsSparse: descriptor + `-delta.vmdk`.
    Cowd {
        /// Sectors per grain.
        grain_size: u32,
    },
    /// monolithicSparse: one KDMV file with an embedded descriptor.
    Sparse {
        /// Sectors per grain.
        grain_size: u64,
        /// Zeroed-grain flag and entries.
        zeroed: bool,
        /// Redundant directory.
        redundant: bool,
    },
    /// streamOptimized: one compressed KDMV file.
    Stream {
        /// Sectors per grain.
        grain_size: u64,
        /// Directory only in a footer (GD_AT_END).
        footer: bool,
        /// Zeroed-grain flag and entries.
        zeroed: bool,
    },
    /// twoGbMaxExtentSparse: descriptor + KDMV extents of at most `extent_bytes`.
    TwoGb {
        /// Sectors per grain.
        grain_size: u64,
        /// Extent size limit in bytes (2 GiB for real files; smaller in tests).
        extent_bytes: u64,
    },
    /// ESX seSparse: descriptor + `-sesparse.vmdk`.
    SeSparse,
}

/// One layer to write.
#[derive(Debug, Clone, Copy)]
pub struct LayerSpec {
    /// Its format.
    pub format: LayerFormat,
    /// Physical order of its grains.
    pub layout: Layout,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct ChainFiles {
    /// The raw base (`NAME-flat.vmdk`).
    pub flat: PathBuf,
    /// The base descriptor (`NAME.vmdk`).
    pub base: PathBuf,
    /// Each layer's descriptor (or KDMV file), oldest first.
    pub layers: Vec<PathBuf>,
    /// Each layer's extent files.
    pub extents: Vec<Vec<PathBuf>>,
    /// Each layer's CID.
    pub cids: Vec<u32>,
}

impl ChainFiles {
    /// The newest layer's descriptor.
    pub fn newest(&self) -> &Path {
        self.layers
            .last()
            .map(PathBuf::as_path)
            .unwrap_or(&self.base)
    }
}

/// Writes the raw base of `model` to `path`.
pub fn write_base(path: &Path, model: &Model) -> io::Result<()> {
    let f = File::create(path)?;
    let mut buf = vec![0u8; 4 << 20];
    let mut off = 0;
    while off < model.capacity {
        let n = (model.capacity - off).min(buf.len() as u64) as usize;
        model.base_at(off, &mut buf[..n]);
        f.write_all_at(&buf[..n], off)?;
        off += n as u64;
    }
    Ok(())
}

fn sparse_descriptor(
    cid: u32,
    parent_cid: u32,
    create_type: &str,
    extents: &[(u64, String)],
    hint: &str,
) -> String {
    let mut s = format!(
        "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID={cid:08x}\nparentCID={parent_cid:08x}\ncreateType=\"{create_type}\"\nparentFileNameHint=\"{hint}\"\n\n# Extent description\n"
    );
    for (sectors, file) in extents {
        s.push_str(&format!("RW {sectors} SPARSE \"{file}\"\n"));
    }
    s.push_str("\n# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\n");
    s
}

/// Writes `NAME-flat.vmdk`, `NAME.vmdk` and one delta per layer of `model` (layer k as
/// `NAME-00000{k+1}.vmdk` plus its extents) into `dir`.
pub fn write_chain(
    dir: &Path,
    name: &str,
    model: &Model,
    layers: &[LayerSpec],
) -> io::Result<ChainFiles> {
    fs::create_dir_all(dir)?;
    let sectors = model.capacity / 512;
    let flat = dir.join(format!("{name}-flat.vmdk"));
    write_base(&flat, model)?;
    let base = dir.join(format!("{name}.vmdk"));
    fs::write(
        &base,
        descriptor::vmfs_base(BASE_CID, sectors, &format!("{name}-flat.vmdk")),
    )?;
    let mut out = ChainFiles {
        flat,
        base,
        layers: Vec::new(),
        extents: Vec::new(),
        cids: Vec::new(),
    };
    let mut parent_cid = BASE_CID;
    let mut parent_name = format!("{name}.vmdk");
    for (k, spec) in layers.iter().enumerate() {
        let cid = 0x1000_0000 + k as u32 * 0x111;
        let stem = format!("{name}-{:06}", k + 1);
        let desc_name = format!("{stem}.vmdk");
        let desc_path = dir.join(&desc_name);
        let mut extents = Vec::new();
        match spec.format {
            LayerFormat::Cowd { grain_size } => {
                let ext = format!("{stem}-delta.vmdk");
                let cspec = CowdSpec {
                    capacity_sectors: sectors as u32,
                    grain_size,
                    layout: spec.layout,
                    unclean: 0,
                };
                cowd::write_layer(&dir.join(&ext), &cspec, model, k)?;
                fs::write(
                    &desc_path,
                    descriptor::vmfs_sparse(cid, parent_cid, sectors, &ext, &parent_name),
                )?;
                extents.push(dir.join(ext));
            }
            LayerFormat::SeSparse => {
                let ext = format!("{stem}-sesparse.vmdk");
                sesparse::write_layer(&dir.join(&ext), sectors, spec.layout, model, k)?;
                fs::write(
                    &desc_path,
                    descriptor::se_sparse(cid, parent_cid, sectors, &ext, &parent_name),
                )?;
                extents.push(dir.join(ext));
            }
            LayerFormat::Sparse {
                grain_size,
                zeroed,
                redundant,
            } => {
                let text = sparse_descriptor(
                    cid,
                    parent_cid,
                    "monolithicSparse",
                    &[(sectors, desc_name.clone())],
                    &parent_name,
                );
                let sspec = SparseSpec {
                    capacity_sectors: sectors,
                    extent_start: 0,
                    grain_size,
                    layout: spec.layout,
                    zeroed_grains: zeroed,
                    redundant,
                    compressed: false,
                    footer: false,
                    descriptor: Some(text),
                };
                sparse::write_layer(&desc_path, &sspec, model, k)?;
                extents.push(desc_path.clone());
            }
            LayerFormat::Stream {
                grain_size,
                footer,
                zeroed,
            } => {
                let text = sparse_descriptor(
                    cid,
                    parent_cid,
                    "streamOptimized",
                    &[(sectors, desc_name.clone())],
                    &parent_name,
                );
                let sspec = SparseSpec {
                    capacity_sectors: sectors,
                    extent_start: 0,
                    grain_size,
                    layout: spec.layout,
                    zeroed_grains: zeroed,
                    redundant: false,
                    compressed: true,
                    footer,
                    descriptor: Some(text),
                };
                sparse::write_layer(&desc_path, &sspec, model, k)?;
                extents.push(desc_path.clone());
            }
            LayerFormat::TwoGb {
                grain_size,
                extent_bytes,
            } => {
                let mut list = Vec::new();
                let mut start = 0u64;
                let mut i = 1;
                while start < model.capacity {
                    let len = extent_bytes.min(model.capacity - start);
                    let ext = format!("{stem}-s{i:03}.vmdk");
                    let sspec = SparseSpec {
                        capacity_sectors: len / 512,
                        extent_start: start,
                        grain_size,
                        layout: spec.layout,
                        zeroed_grains: false,
                        redundant: true,
                        compressed: false,
                        footer: false,
                        descriptor: None,
                    };
                    sparse::write_layer(&dir.join(&ext), &sspec, model, k)?;
                    list.push((len / 512, ext.clone()));
                    extents.push(dir.join(ext));
                    start += len;
                    i += 1;
                }
                fs::write(
                    &desc_path,
                    sparse_descriptor(cid, parent_cid, "twoGbMaxExtentSparse", &list, &parent_name),
                )?;
            }
        }
        out.layers.push(desc_path);
        out.extents.push(extents);
        out.cids.push(cid);
        parent_cid = cid;
        parent_name = desc_name;
    }
    Ok(out)
}
