//! What the readers' unit tests share: extents written by `ironshed-testkit` (whose writers
//! follow the format notes, independently of the readers) and read back into memory, patches
//! at the byte offsets the format notes give, and assertions on the error a reader returns.

use super::error::Error;
use super::run::Run;
use ironshed_testkit::cowd::{self, CowdLayout, CowdSpec, Layout};
use ironshed_testkit::model::Model;
use ironshed_testkit::sesparse::{self, SeSparseLayout};
use ironshed_testkit::sparse::{self, SparseLayout, SparseSpec};
use std::collections::BTreeMap;
use std::fmt::Debug;

/// The file name every in-memory extent is read under.
pub const NAME: &str = "d.vmdk";

fn written<L>(write: impl FnOnce(&std::path::Path) -> std::io::Result<L>) -> (Vec<u8>, L) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("extent");
    let layout = write(&p).unwrap();
    (std::fs::read(&p).unwrap(), layout)
}

/// A COWD extent of `sectors` sectors in grains of `grain` sectors, holding `model`'s layer 0.
pub fn cowd_image(
    sectors: u32,
    grain: u32,
    layout: Layout,
    model: &Model,
) -> (Vec<u8>, CowdLayout) {
    let spec = CowdSpec {
        capacity_sectors: sectors,
        grain_size: grain,
        layout,
        unclean: 0,
    };
    written(|p| cowd::write(p, &spec, model))
}

/// A hosted sparse extent as `spec` says, holding `model`'s layer 0.
pub fn sparse_image(spec: &SparseSpec, model: &Model) -> (Vec<u8>, SparseLayout) {
    written(|p| sparse::write_layer(p, spec, model, 0))
}

/// A plain (uncompressed, no descriptor) sparse spec of `sectors` sectors.
pub fn sparse_spec(sectors: u64, grain: u64) -> SparseSpec {
    SparseSpec {
        capacity_sectors: sectors,
        extent_start: 0,
        grain_size: grain,
        layout: Layout::Sequential,
        zeroed_grains: false,
        redundant: false,
        compressed: false,
        footer: false,
        descriptor: None,
    }
}

/// A seSparse extent of `sectors` sectors holding `model`'s layer 0.
pub fn sesparse_image(sectors: u64, layout: Layout, model: &Model) -> (Vec<u8>, SeSparseLayout) {
    written(|p| sesparse::write_layer(p, sectors, layout, model, 0))
}

/// Little-endian u32 at byte `at`.
pub fn get_u32(b: &[u8], at: u64) -> u32 {
    let at = at as usize;
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Little-endian u64 at byte `at`.
pub fn get_u64(b: &[u8], at: u64) -> u64 {
    let at = at as usize;
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Writes little-endian u32 `v` at byte `at`.
pub fn put_u32(b: &mut [u8], at: u64, v: u32) {
    b[at as usize..at as usize + 4].copy_from_slice(&v.to_le_bytes());
}

/// Writes little-endian u64 `v` at byte `at`.
pub fn put_u64(b: &mut [u8], at: u64, v: u64) {
    b[at as usize..at as usize + 8].copy_from_slice(&v.to_le_bytes());
}

fn check<T: Debug>(r: Result<T, Error>, unsupported: bool, file: &str, facts: &[&str]) {
    let (f, msg) = match r {
        Err(Error::Format { file, msg }) if !unsupported => (file, msg),
        Err(Error::Unsupported { file, msg }) if unsupported => (file, msg),
        other => panic!(
            "expected {} error, got {other:?}",
            if unsupported {
                "an Unsupported"
            } else {
                "a Format"
            }
        ),
    };
    assert_eq!(f, file, "the message names the file ({msg})");
    for fact in facts {
        assert!(msg.contains(fact), "'{msg}' does not say '{fact}'");
    }
}

/// Asserts `r` is [`Error::Format`] naming `file` and saying every one of `facts`.
#[track_caller]
pub fn format_error<T: Debug>(r: Result<T, Error>, file: &str, facts: &[&str]) {
    check(r, false, file, facts)
}

/// Asserts `r` is [`Error::Unsupported`] naming `file` and saying every one of `facts`.
#[track_caller]
pub fn unsupported<T: Debug>(r: Result<T, Error>, file: &str, facts: &[&str]) {
    check(r, true, file, facts)
}

/// The runs cut back into grains of `grain` bytes: grain index → where its first byte comes
/// from (`None` for a zero run, else `(file, offset)` or the compressed grain's offset).
pub fn grains_of(runs: &[Run], grain: u64) -> BTreeMap<u64, Option<u64>> {
    use super::run::Src;
    let mut out = BTreeMap::new();
    for r in runs {
        let mut at = r.virt;
        while at < r.end() {
            let g = at / grain;
            let src = match r.src {
                Src::Data { offset, .. } => Some(offset + (at - r.virt)),
                Src::Zero => None,
                Src::Deflate(d) => Some(d.offset),
            };
            out.insert(g, src);
            at = (g + 1) * grain;
        }
    }
    out
}

/// Collects a reader's runs.
pub fn collect(
    each: impl FnOnce(&mut dyn FnMut(Run) -> super::Result<()>) -> super::Result<()>,
) -> Vec<Run> {
    let mut v = Vec::new();
    each(&mut |r| {
        v.push(r);
        Ok(())
    })
    .unwrap();
    v
}
