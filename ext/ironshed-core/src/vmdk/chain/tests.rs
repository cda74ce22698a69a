//! How a chain is followed and what breaks it: every parentCID → CID link and capacity, a
//! missing or unnamed parent, loops, depth, and a base named by the user. The files are
//! written by ironshed-testkit (base CID 5a17b9ae, layer k's CID 10000000 + k·111), then
//! edited.

use super::*;
use crate::vmdk::fixture::{format_error, unsupported};
use crate::vmdk::OpenOptions;
use ironshed_testkit::chain::{write_chain, ChainFiles, LayerFormat, LayerSpec};
use ironshed_testkit::cowd::Layout;
use ironshed_testkit::model::Model;
use std::fs;
use std::path::PathBuf;

struct Set {
    _dir: tempfile::TempDir,
    files: ChainFiles,
}

impl Set {
    fn layer(&self, k: usize) -> &Path {
        &self.files.layers[k]
    }
    fn newest(&self) -> &Path {
        self.files.newest()
    }
    fn path(&self, name: &str) -> PathBuf {
        self.files.base.with_file_name(name)
    }
}

/// A chain of `n` COWD deltas over a 64 KiB disk, each writing one sector.
fn chain(n: usize) -> Set {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Model::new(65536, 1);
    for k in 0..n {
        if k > 0 {
            m.next_layer();
        }
        m.write(512 * k as u64 % 65536, 512);
    }
    let spec = LayerSpec {
        format: LayerFormat::Cowd { grain_size: 1 },
        layout: Layout::Sequential,
    };
    let files = write_chain(dir.path(), "vm", &m, &vec![spec; n]).unwrap();
    Set { _dir: dir, files }
}

fn edit(p: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(p).unwrap();
    assert!(text.contains(from), "{from} not in {}", p.display());
    fs::write(p, text.replacen(from, to, 1)).unwrap();
}

fn open(p: &Path, opts: &OpenOptions) -> Result<Chain> {
    Chain::open(p, opts)
}

fn mismatch(r: Result<Chain>, want: &str) {
    match r {
        Err(Error::BaseMismatch { msg }) => assert_eq!(msg, want),
        other => panic!("expected BaseMismatch, got {other:?}"),
    }
}

fn with_base(b: &Path) -> OpenOptions {
    OpenOptions {
        base: Some(b.to_path_buf()),
        ..Default::default()
    }
}

const NO_CHECK: OpenOptions = OpenOptions {
    base: None,
    allow_unclean: false,
    check_redundant: false,
    no_parent_check: true,
};

#[test]
fn follows_the_hints_down_to_the_base() {
    let s = chain(3);
    let c = open(s.newest(), &OpenOptions::default()).unwrap();
    let paths: Vec<&Path> = c.layers.iter().map(|l| l.path.as_path()).collect();
    assert_eq!(paths, [s.layer(2), s.layer(1), s.layer(0)]);
    assert_eq!(c.base, BaseCheck::Verified(s.files.base.clone()));
    assert_eq!((c.capacity(), c.sources.len()), (65536, 3));
    assert!(c.warnings.is_empty());
}

#[test]
fn a_descriptor_without_a_parent_is_no_delta() {
    let s = chain(1);
    edit(s.newest(), "parentCID=5a17b9ae", "parentCID=ffffffff");
    format_error(
        open(s.newest(), &OpenOptions::default()),
        &name_of(s.newest()),
        &["parentCID is ffffffff or missing (no parent): this descriptor is not a snapshot delta"],
    );
}

#[test]
fn parent_cid_differs_from_the_base() {
    let s = chain(1);
    edit(s.newest(), "parentCID=5a17b9ae", "parentCID=deadbeef");
    mismatch(
        open(s.newest(), &OpenOptions::default()),
        &format!(
            "{}: parentCID is deadbeef but the base {} has CID 5a17b9ae: the delta was not taken from this base (or the base changed after the snapshot)",
            s.newest().display(),
            s.files.base.display()
        ),
    );
}

#[test]
fn a_middle_snapshot_changed_after_its_child_was_taken() {
    let s = chain(2);
    edit(s.layer(0), "CID=10000000", "CID=0badf00d");
    mismatch(
        open(s.newest(), &OpenOptions::default()),
        &format!(
            "{}: parentCID is 10000000 but the base {} has CID 0badf00d: the delta was not taken from this base (or the base changed after the snapshot)",
            s.newest().display(),
            s.layer(0).display()
        ),
    );
}

#[test]
fn parent_without_a_cid() {
    let s = chain(1);
    edit(&s.files.base, "CID=5a17b9ae\n", "");
    mismatch(
        open(s.newest(), &OpenOptions::default()),
        &format!(
            "{}: descriptor has no CID to check {}'s parentCID against",
            s.files.base.display(),
            s.newest().display()
        ),
    );
}

#[test]
fn layers_of_different_sizes() {
    let s = chain(2);
    edit(s.layer(0), "RW 128 VMFSSPARSE", "RW 120 VMFSSPARSE");
    mismatch(
        open(s.newest(), &OpenOptions::default()),
        &format!(
            "{}: capacity is 128 sectors but its parent {} has 120",
            s.newest().display(),
            s.layer(0).display()
        ),
    );
}

#[test]
fn hint_pointing_back_at_the_delta() {
    for target in ["vm-000001.vmdk", "vm-000001-delta.vmdk"] {
        let s = chain(1);
        edit(
            s.newest(),
            "parentFileNameHint=\"vm.vmdk\"",
            &format!("parentFileNameHint=\"{target}\""),
        );
        format_error(
            open(s.newest(), &OpenOptions::default()),
            &name_of(s.newest()),
            &["parentFileNameHint points back at the delta itself"],
        );
    }
}

#[test]
fn hints_that_loop() {
    let s = chain(2);
    edit(
        s.layer(0),
        "parentFileNameHint=\"vm.vmdk\"",
        "parentFileNameHint=\"vm-000002.vmdk\"",
    );
    edit(s.layer(0), "parentCID=5a17b9ae", "parentCID=10000111");
    format_error(
        open(s.newest(), &OpenOptions::default()),
        &name_of(s.newest()),
        &["the chain of parentFileNameHint loops back on itself"],
    );
}

#[test]
fn chain_deeper_than_the_limit() {
    let s = chain(MAX_DEPTH + 1);
    unsupported(
        open(s.newest(), &OpenOptions::default()),
        &name_of(s.newest()),
        &["chain deeper than 64 snapshots"],
    );
    open(s.layer(MAX_DEPTH - 1), &OpenOptions::default()).unwrap();
}

#[test]
fn no_parent_named() {
    let s = chain(1);
    edit(s.newest(), "parentFileNameHint=\"vm.vmdk\"\n", "");
    mismatch(
        open(s.newest(), &OpenOptions::default()),
        &format!(
            "{}: the descriptor names no parent file (no parentFileNameHint), so the chain cannot be checked; name the disk the destination holds with --base, or pass --no-parent-check if the destination holds exactly this snapshot's parent",
            s.newest().display()
        ),
    );
    let c = open(s.newest(), &NO_CHECK).unwrap();
    assert_eq!(
        c.base,
        BaseCheck::NotChecked(format!(
            "{} names no parent; parentCID not checked (--no-parent-check)",
            s.newest().display()
        ))
    );
}

#[test]
fn parent_file_missing() {
    let s = chain(2);
    fs::rename(s.layer(0), s.path("moved.vmdk")).unwrap();
    mismatch(
        open(s.newest(), &OpenOptions::default()),
        &format!(
            "{}: parent {} not found: it may be another snapshot whose changes would be missing; copy it (and the base descriptor) next to the delta, name the disk the destination holds with --base, or pass --no-parent-check if the destination holds exactly this snapshot's parent",
            s.newest().display(),
            s.layer(0).display()
        ),
    );
    let c = open(s.newest(), &NO_CHECK).unwrap();
    assert_eq!(c.layers.len(), 1);
    assert_eq!(
        c.base,
        BaseCheck::NotChecked(format!(
            "parent {} not found; parentCID 10000000 not checked (--no-parent-check)",
            s.layer(0).display()
        ))
    );
}

#[test]
fn base_given_stops_the_chain_at_an_ancestor() {
    let s = chain(3);
    let c = open(s.newest(), &with_base(s.layer(0))).unwrap();
    assert_eq!(c.layers.len(), 2);
    assert_eq!(c.base, BaseCheck::Verified(s.layer(0).to_path_buf()));
    // A copy under another name: the CID decides, and the other name is worth a warning.
    let copy = s.path("copy.vmdk");
    fs::copy(s.layer(0), &copy).unwrap();
    let c = open(s.newest(), &with_base(&copy)).unwrap();
    assert_eq!(c.base, BaseCheck::Verified(copy.clone()));
    assert_eq!(
        c.warnings,
        [format!(
            "{}: parentFileNameHint names {} but the base given is {} (CID matches, continuing)",
            s.layer(1).display(),
            s.layer(0).display(),
            copy.display()
        )]
    );
}

#[test]
fn base_given_that_the_chain_never_reaches() {
    let s = chain(2);
    let other = s.path("other.vmdk");
    let text = fs::read_to_string(&s.files.base).unwrap();
    fs::write(&other, text.replace("CID=5a17b9ae", "CID=00000042")).unwrap();
    mismatch(
        open(s.newest(), &with_base(&other)),
        &format!(
            "{}: parentCID is 5a17b9ae but the base {} has CID 00000042: the delta was not taken from this base (or the base changed after the snapshot)",
            s.layer(0).display(),
            other.display()
        ),
    );
}

#[test]
fn base_given_must_be_a_descriptor() {
    let s = chain(1);
    mismatch(
        open(s.newest(), &with_base(&s.files.extents[0][0])),
        &format!(
            "{}: a bare extent has no CID; the base must be a descriptor (vm.vmdk)",
            s.files.extents[0][0].display()
        ),
    );
    mismatch(
        open(s.newest(), &with_base(&s.files.flat)),
        &format!(
            "{}: the base must be the text descriptor of the base disk (vm.vmdk), not its -flat.vmdk data",
            s.files.flat.display()
        ),
    );
}

#[test]
fn a_bare_extent_is_checked_by_size_only() {
    let s = chain(1);
    let extent = &s.files.extents[0][0];
    let c = open(extent, &OpenOptions::default()).unwrap();
    assert!(
        matches!(&c.base, BaseCheck::NotChecked(why) if why.starts_with("a bare extent carries no parentCID"))
    );
    let c = open(extent, &with_base(&s.files.base)).unwrap();
    assert!(
        matches!(&c.base, BaseCheck::NotChecked(why) if why.contains(&format!("only the size of {} was checked", s.files.base.display())))
    );
    edit(&s.files.base, "RW 128 VMFS", "RW 64 VMFS");
    mismatch(
        open(extent, &with_base(&s.files.base)),
        &format!(
            "{}: capacity is 128 sectors but its parent {} has 64",
            extent.display(),
            s.files.base.display()
        ),
    );
}
