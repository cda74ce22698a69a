//! Snapshot chains: from the newest descriptor down to the base, following
//! `parentFileNameHint` and checking every `parentCID` → `CID` link and every capacity; and
//! the merged view of all layers, newest first, produced one window of the disk at a time.

use super::descriptor::Descriptor;
use super::error::{Error, Result};
use super::layer::{name_of, peek_descriptor_in, same_file, Files, Layer};
use super::run::{overlay, Run};
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
        if first.descriptor.is_some() && first.parent_cid().is_none() {
            return Err(Error::format(
                &name_of(path),
                "parentCID is ffffffff or missing (no parent): this descriptor is not a snapshot delta",
            ));
        }
        let explicit = match &opts.base {
            Some(b) => Some((
                b.clone(),
                base_descriptor(b, &mut files, "the base descriptor (--base)")?,
            )),
            None => None,
        };
        let mut layers = vec![first];
        let base = loop {
            let top = layers
                .last()
                .ok_or_else(|| Error::format(&name_of(path), "empty chain"))?;
            let Some(pcid) = top.parent_cid() else {
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
                    break BaseCheck::Verified(b.clone());
                }
            }
            let Some(h) = hint else {
                break match &explicit {
                    Some((b, bd)) => return Err(link_error(top, pcid, bd, b)),
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
            break BaseCheck::Verified(h);
        };
        Ok(Chain {
            layers,
            sources: files.sources,
            inputs: files.inputs,
            base,
            warnings,
        })
    }

    /// Disk size in bytes.
    pub fn capacity(&self) -> u64 {
        self.layers.first().map_or(0, |l| l.capacity)
    }

    /// Calls `f` with the merged runs of the whole chain in disk order: where several layers
    /// hold a range, the newest wins, so every byte appears once.
    pub fn for_each_run(&self, f: &mut dyn FnMut(Run) -> Result<()>) -> Result<()> {
        let cap = self.capacity();
        let mut acc: Vec<Run> = Vec::new();
        let mut layer_runs: Vec<Run> = Vec::new();
        let mut merged: Vec<Run> = Vec::new();
        let mut ws = 0u64;
        while ws < cap {
            // Skip stretches no layer has tables for.
            match self.layers.iter().filter_map(|l| l.next_data(ws)).min() {
                None => break,
                Some(next) if next >= ws + WINDOW => {
                    ws = next - next % WINDOW;
                    continue;
                }
                Some(_) => {}
            }
            let we = (ws + WINDOW).min(cap);

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
            for r in acc.drain(..) {
                f(r)?;
            }
            ws = we;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
