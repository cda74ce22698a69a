//! Snapshot chains: from the newest descriptor down to the base, following
//! `parentFileNameHint` and checking every `parentCID` → `CID` link and every capacity; and
//! the merged view of all layers, newest first, produced one window of the disk at a time.

use super::descriptor::{Descriptor, CID_NONE};
use super::error::{Error, Result};
use super::layer::{name_of, peek_descriptor_in, same_file, Files, Layer};
use super::run::{overlay, push_merged, Run, Src};
use super::{BaseCheck, OpenOptions};
use crate::block::SourceFile;
use crate::io::Inputs;
use std::path::Path;

/// Most layers followed before giving up (ESX allows 32 snapshots).
pub const MAX_DEPTH: usize = 64;
/// Bytes of disk merged at a time; bounds memory whatever the disk size.
pub const WINDOW: u64 = 64 << 20;

/// The resolved chain.
#[derive(Debug)]
pub struct Chain {
    /// Layers, newest first.
    pub layers: Vec<Layer>,
    /// Every extent file of every layer.
    pub sources: Vec<SourceFile>,
    /// Every file read (descriptors, extents, the base descriptor): what a destination or an
    /// undo file must not be.
    pub inputs: Inputs,
    /// What was checked about the base.
    pub base: BaseCheck,
    /// Non-fatal observations.
    pub warnings: Vec<String>,
    /// The base disk is the oldest layer, and every range no layer allocates reads as zeros
    /// ([`OpenOptions::full`]): the runs cover the whole disk.
    pub full: bool,
}

fn base_descriptor(p: &Path, files: &mut Files, role: &str) -> Result<Descriptor> {
    let name = name_of(p);
    match peek_descriptor_in(p, files, role) {
        Ok(Some(d)) => Ok(d),
        Ok(None) => Err(Error::BaseMismatch {
            msg: format!("{name}: a bare extent has no CID; the base must be a descriptor (vm.vmdk)"),
        }),
        Err(Error::Format { .. }) => Err(Error::BaseMismatch {
            msg: format!("{name}: the base must be the text descriptor of the base disk (vm.vmdk), not its -flat.vmdk data"),
        }),
        Err(e) => Err(e),
    }
}

fn check_capacity(child: &Layer, parent: &Descriptor, parent_path: &Path) -> Result<()> {
    let sectors = parent.total_sectors().unwrap_or(0);
    if sectors.checked_mul(512) != Some(child.capacity) {
        return Err(Error::BaseMismatch {
            msg: format!(
                "{}: capacity is {} sectors but its parent {} has {sectors}",
                child.path.display(),
                child.capacity / 512,
                parent_path.display()
            ),
        });
    }
    Ok(())
}

/// The error for a parent whose CID is not the child's parentCID.
fn link_error(child: &Layer, pcid: u32, parent: &Descriptor, parent_path: &Path) -> Error {
    match parent.cid {
        None => Error::BaseMismatch {
            msg: format!("{}: descriptor has no CID to check {}'s parentCID against", parent_path.display(), child.path.display()),
        },
        Some(cid) => Error::BaseMismatch {
            msg: format!(
                "{}: parentCID is {pcid:08x} but the base {} has CID {cid:08x}: the delta was not taken from this base (or the base changed after the snapshot)",
                child.path.display(),
                parent_path.display()
            ),
        },
    }
}

/// The base disk `p` (descriptor `d`, already read and linked to the chain) opened as the
/// oldest layer of a `--full` chain: it must have no parent.
fn full_base(p: &Path, d: &Descriptor, files: &mut Files, opts: &OpenOptions) -> Result<Layer> {
    if d.has_parent() {
        return Err(Error::BaseMismatch {
            msg: format!(
                "{}: --full needs the base disk, but this descriptor has a parent (parentCID {:08x}): name the disk at the bottom of the chain",
                p.display(),
                d.parent_cid.unwrap_or(CID_NONE)
            ),
        });
    }
    Layer::open(p, files, opts)
}

fn check_link(child: &Layer, pcid: u32, parent: &Descriptor, parent_path: &Path) -> Result<()> {
    if parent.cid != Some(pcid) {
        return Err(link_error(child, pcid, parent, parent_path));
    }
    check_capacity(child, parent, parent_path)
}

impl Chain {
    /// Opens the chain that ends at `path`.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Chain> {
        let mut files = Files::default();
        let mut warnings = Vec::new();
        let first = Layer::open(path, &mut files, opts)?;
        let explicit = match &opts.base {
            Some(b) => Some((
                b.clone(),
                base_descriptor(b, &mut files, "the base descriptor (--base)")?,
            )),
            None => None,
        };
        if first.descriptor.is_some() && first.parent_cid().is_none() {
            if !opts.full {
                return Err(Error::format(
                    &name_of(path),
                    "parentCID is ffffffff or missing (no parent): this descriptor is not a snapshot delta (to write the whole disk it describes, use --full)",
                ));
            }
            // A base disk named itself: the whole chain is this one layer.
            if let Some((b, _)) = &explicit {
                if !same_file(b, path) {
                    return Err(Error::BaseMismatch {
                        msg: format!(
                            "{}: this is a base disk (no parent), so no other base can be below it, but --base names {}",
                            path.display(),
                            b.display()
                        ),
                    });
                }
            }
            return Ok(Chain {
                layers: vec![first],
                sources: files.sources,
                inputs: files.inputs,
                base: BaseCheck::NotChecked(format!(
                    "{} has no parent: it is the base disk, written whole",
                    path.display()
                )),
                warnings,
                full: true,
            });
        }
        let mut layers = vec![first];
        let base = loop {
            let top = layers
                .last()
                .ok_or_else(|| Error::format(&name_of(path), "empty chain"))?;
            let Some(pcid) = top.parent_cid() else {
                if opts.full {
                    return Err(Error::BaseMismatch {
                        msg: format!(
                            "{}: a bare extent carries no parent information, so --full cannot know the disk below it; name the descriptor (vm-000001.vmdk) of a chain that ends at a base disk",
                            top.path.display()
                        ),
                    });
                }
                // A bare extent: nothing names its parent.
                break match &explicit {
                    Some((b, bd)) => {
                        check_capacity(top, bd, b)?;
                        BaseCheck::NotChecked(format!(
                            "a bare extent carries no parentCID: only the size of {} was checked; name the descriptor (vm-000001.vmdk) to have the chain checked",
                            b.display()
                        ))
                    }
                    None => BaseCheck::NotChecked(
                        "a bare extent carries no parentCID; name the descriptor (vm-000001.vmdk) to have the chain checked".into(),
                    ),
                };
            };
            let hint = top.parent_path();
            if let Some(h) = &hint {
                if same_file(h, &top.path)
                    || top
                        .extents
                        .iter()
                        .any(|x| same_file(h, &files.sources[x.file as usize].path))
                {
                    return Err(Error::format(
                        &name_of(&top.path),
                        "parentFileNameHint points back at the delta itself",
                    ));
                }
            }
            if let Some((b, bd)) = &explicit {
                if bd.cid == Some(pcid) {
                    check_capacity(top, bd, b)?;
                    if let Some(h) = &hint {
                        if h.file_name() != b.file_name() {
                            warnings.push(format!(
                                "{}: parentFileNameHint names {} but the base given is {} (CID matches, continuing)",
                                top.path.display(),
                                h.display(),
                                b.display()
                            ));
                        }
                    }
                    if opts.full {
                        let base = full_base(b, bd, &mut files, opts)?;
                        layers.push(base);
                    }
                    break BaseCheck::Verified(b.clone());
                }
            }
            let Some(h) = hint else {
                break match &explicit {
                    Some((b, bd)) => return Err(link_error(top, pcid, bd, b)),
                    None if opts.full => {
                        return Err(Error::BaseMismatch {
                            msg: format!(
                                "{}: the descriptor names no parent file (no parentFileNameHint), and --full needs every layer down to the base disk; name the base disk's descriptor with --base",
                                top.path.display()
                            ),
                        })
                    }
                    None if opts.no_parent_check => BaseCheck::NotChecked(format!(
                        "{} names no parent; parentCID not checked (--no-parent-check)",
                        top.path.display()
                    )),
                    None => {
                        return Err(Error::BaseMismatch {
                            msg: format!(
                                "{}: the descriptor names no parent file (no parentFileNameHint), so the chain cannot be checked; name the disk the destination holds with --base, or pass --no-parent-check if the destination holds exactly this snapshot's parent",
                                top.path.display()
                            ),
                        })
                    }
                };
            };
            if !h.exists() {
                break match &explicit {
                    Some((b, bd)) => return Err(link_error(top, pcid, bd, b)),
                    None if opts.full => {
                        return Err(Error::BaseMismatch {
                            msg: format!(
                                "{}: parent {} not found, and --full needs every layer down to the base disk; copy it next to the delta, or name the base disk's descriptor with --base",
                                top.path.display(),
                                h.display()
                            ),
                        })
                    }
                    None if opts.no_parent_check => BaseCheck::NotChecked(format!(
                        "parent {} not found; parentCID {pcid:08x} not checked (--no-parent-check)",
                        h.display()
                    )),
                    None => {
                        return Err(Error::BaseMismatch {
                            msg: format!(
                                "{}: parent {} not found: it may be another snapshot whose changes would be missing; copy it (and the base descriptor) next to the delta, name the disk the destination holds with --base, or pass --no-parent-check if the destination holds exactly this snapshot's parent",
                                top.path.display(),
                                h.display()
                            ),
                        })
                    }
                };
            }

            let pd = base_descriptor(&h, &mut files, "a descriptor of the chain")?;
            if pd.has_parent() {
                // Another delta: the link must hold, then it joins the chain.
                check_link(top, pcid, &pd, &h)?;
                if layers.iter().any(|l| same_file(&l.path, &h)) {
                    return Err(Error::format(
                        &name_of(&h),
                        "the chain of parentFileNameHint loops back on itself",
                    ));
                }
                if layers.len() >= MAX_DEPTH {
                    return Err(Error::unsupported(
                        &name_of(path),
                        format!("chain deeper than {MAX_DEPTH} snapshots"),
                    ));
                }
                let layer = Layer::open(&h, &mut files, opts)?;
                layers.push(layer);
                continue;
            }
            if let Some((b, bd)) = &explicit {
                // The chain reached its base without meeting the one given.
                return Err(link_error(top, pcid, bd, b));
            }
            check_link(top, pcid, &pd, &h)?;
            if opts.full {
                let base = full_base(&h, &pd, &mut files, opts)?;
                layers.push(base);
            }
            break BaseCheck::Verified(h);
        };
        Ok(Chain {
            layers,
            sources: files.sources,
            inputs: files.inputs,
            base,
            warnings,
            full: opts.full,
        })
    }

    /// Disk size in bytes.
    pub fn capacity(&self) -> u64 {
        self.layers.first().map_or(0, |l| l.capacity)
    }

    /// Calls `f` with the merged runs of the whole chain in disk order: where several layers
    /// hold a range, the newest wins, so every byte appears once. For a `full` chain the
    /// ranges no layer allocates come as zero runs, so the runs cover `[0, capacity)`.
    pub fn for_each_run(&self, f: &mut dyn FnMut(Run) -> Result<()>) -> Result<()> {
        let cap = self.capacity();
        let mut acc: Vec<Run> = Vec::new();
        let mut layer_runs: Vec<Run> = Vec::new();
        let mut merged: Vec<Run> = Vec::new();
        let mut ws = 0u64;
        while ws < cap {
            // Skip stretches no layer has tables for (a full chain writes zeros there, one
            // window at a time).
            let next = self.layers.iter().filter_map(|l| l.next_data(ws)).min();
            if !self.full {
                match next {
                    None => break,
                    Some(next) if next >= ws + WINDOW => {
                        ws = next - next % WINDOW;
                        continue;
                    }
                    Some(_) => {}
                }
            }
            let we = (ws + WINDOW).min(cap);
            if next.is_none_or(|n| n >= we) {
                // Only a full chain gets here: nothing allocated in this window.
                f(Run {
                    virt: ws,
                    len: we - ws,
                    src: Src::Zero,
                })?;
                ws = we;
                continue;
            }

            acc.clear();
            for layer in self.layers.iter().rev() {
                layer_runs.clear();
                layer.for_each_run(&self.sources, ws, we, &mut |r| {
                    layer_runs.push(r);
                    Ok(())
                })?;
                if layer_runs.is_empty() {
                    continue;
                }
                if acc.is_empty() {
                    std::mem::swap(&mut acc, &mut layer_runs);
                } else {
                    overlay(&acc, &layer_runs, &mut merged);
                    std::mem::swap(&mut acc, &mut merged);
                }
            }
            if self.full {
                fill_gaps(&mut acc, ws, we, &mut merged);
                std::mem::swap(&mut acc, &mut merged);
            }
            for r in acc.drain(..) {
                f(r)?;
            }
            ws = we;
        }
        Ok(())
    }
}

/// The runs of `runs` (sorted, non-overlapping, inside `[start, end)`) with zero runs in
/// every gap between them, into `out`: together they cover `[start, end)`.
pub fn fill_gaps(runs: &mut Vec<Run>, start: u64, end: u64, out: &mut Vec<Run>) {
    out.clear();
    let mut at = start;
    let zero = |virt, len| Run {
        virt,
        len,
        src: Src::Zero,
    };
    for r in runs.drain(..) {
        if r.virt > at {
            push_merged(out, zero(at, r.virt - at));
        }
        at = r.end();
        push_merged(out, r);
    }
    if end > at {
        push_merged(out, zero(at, end - at));
    }
}

#[cfg(test)]
mod tests;
