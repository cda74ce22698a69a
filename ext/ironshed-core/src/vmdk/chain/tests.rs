//! How a chain is followed and what breaks it: every parentCID → CID link and capacity, a
//! missing or unnamed parent, loops, depth, and a base named by the user. The files are
//! written by ironshed-testkit (base CID 5a17b9ae, layer k's CID 10000000 + k·111), then
//! edited.

use super::*;
use crate::vmdk::fixture::{format_error, unsupported};
use crate::vmdk::{Format, OpenOptions};
use ironshed_testkit::chain::{write_chain, ChainFiles, LayerFormat, LayerSpec};
use ironshed_testkit::cowd::Layout;
use ironshed_testkit::model::Model;
use std::fs;
use std::os::unix::fs::FileExt;
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
    full: false,
    inflate_once: false,
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
        &["parentCID is ffffffff or missing (no parent): this descriptor is not a snapshot delta (to write the whole disk it describes, use --full)"],
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

/// Replaces `from` by `to` (same length) in a binary file: a KDMV file's embedded descriptor.
fn patch(p: &Path, from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let mut b = fs::read(p).unwrap();
    let at = b
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("{from} not in {}", p.display()));
    b[at..at + from.len()].copy_from_slice(to.as_bytes());
    fs::write(p, b).unwrap();
}

fn full() -> OpenOptions {
    OpenOptions {
        full: true,
        ..Default::default()
    }
}

/// A 200 MiB disk (its second 64 MiB window empty): a monolithicSparse layer made parentless —
/// a base disk — with 4 KiB writes, and a COWD delta over it with 512-byte ones, some over
/// the base's grains. The model's writes are grain-aligned, so what the layers allocate is
/// exactly what was written.
fn sparse_base_chain() -> (Set, Model) {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Model::new(200 << 20, 3);
    m.write(0, 8192)
        .write(1 << 20, 64 << 10)
        .write((128 << 20) + 4096, 4096)
        .write((200 << 20) - 4096, 4096);
    m.next_layer();
    m.write(512, 512)
        .write((1 << 20) + 1024, 2048)
        .write((130 << 20) + 512, 512);
    let specs = [
        LayerSpec {
            format: LayerFormat::Sparse {
                grain_size: 8,
                zeroed: false,
                redundant: true,
            },
            layout: Layout::Shuffled(7),
        },
        LayerSpec {
            format: LayerFormat::Cowd { grain_size: 1 },
            layout: Layout::Sequential,
        },
    ];
    let files = write_chain(dir.path(), "vm", &m, &specs).unwrap();
    let s = Set { _dir: dir, files };
    patch(s.layer(0), "parentCID=5a17b9ae", "parentCID=ffffffff");
    (s, m)
}

/// The disk a full chain of `m`'s layers up to `k` holds: the model's bytes where one of them
/// wrote, zeros elsewhere.
fn expected(m: &Model, k: usize, virt: u64, len: u64) -> Vec<u8> {
    let mut want = vec![0u8; len as usize];
    m.disk_at_layer(k, virt, &mut want);
    let mut covered = vec![false; len as usize];
    for w in m.writes.iter().filter(|w| w.layer <= k) {
        let (s, e) = (w.offset.max(virt), (w.offset + w.len).min(virt + len));
        if s < e {
            covered[(s - virt) as usize..(e - virt) as usize].fill(true);
        }
    }
    for (b, c) in want.iter_mut().zip(covered) {
        if !c {
            *b = 0;
        }
    }
    want
}

/// Checks that the runs of `c` cover `[0, capacity)` in ascending order without overlap, and
/// hold what `m` says the whole disk of its layers up to `k` holds; returns the runs.
fn check_whole(c: &Chain, m: &Model, k: usize) -> Vec<Run> {
    let mut runs = Vec::new();
    c.for_each_run(&mut |r| {
        runs.push(r);
        Ok(())
    })
    .unwrap();
    let mut end = 0u64;
    for r in &runs {
        assert_eq!(r.virt, end, "gap or overlap before {r:?}");
        assert!(r.len > 0 && r.len <= WINDOW);
        end = r.end();
        let got = match r.src {
            Src::Zero => vec![0u8; r.len as usize],
            Src::Data { file, offset } => {
                let mut b = vec![0u8; r.len as usize];
                c.sources[file as usize]
                    .file
                    .read_exact_at(&mut b, offset)
                    .unwrap();
                b
            }
            Src::Deflate(_) => panic!("no compressed layer here"),
        };
        assert!(got == expected(m, k, r.virt, r.len), "content of {r:?}");
    }
    assert_eq!(end, c.capacity());
    runs
}

#[test]
fn a_whole_chain_is_its_layers_over_zeros() {
    let (s, m) = sparse_base_chain();
    let c = open(s.newest(), &full()).unwrap();
    assert!(c.full);
    let paths: Vec<&Path> = c.layers.iter().map(|l| l.path.as_path()).collect();
    assert_eq!(paths, [s.layer(1), s.layer(0)]);
    assert_eq!(c.base, BaseCheck::Verified(s.layer(0).to_path_buf()));
    let runs = check_whole(&c, &m, 1);
    // A window no layer has a table for is one zero run.
    assert!(runs.contains(&Run {
        virt: WINDOW,
        len: WINDOW,
        src: Src::Zero
    }));
    // Without --full the same chain is the delta alone, its parent the base it was taken from.
    let c = open(s.newest(), &OpenOptions::default()).unwrap();
    assert!(!c.full);
    assert_eq!(c.layers.len(), 1);
    assert_eq!(c.base, BaseCheck::Verified(s.layer(0).to_path_buf()));
}

#[test]
fn a_base_disk_named_itself_is_written_whole() {
    let (s, m) = sparse_base_chain();
    let c = open(s.layer(0), &full()).unwrap();
    assert_eq!(c.layers.len(), 1);
    assert_eq!(
        c.base,
        BaseCheck::NotChecked(format!(
            "{} has no parent: it is the base disk, written whole",
            s.layer(0).display()
        ))
    );
    check_whole(&c, &m, 0);
    // --base naming the disk itself is the same; naming another is refused.
    open(
        s.layer(0),
        &OpenOptions {
            base: Some(s.layer(0).to_path_buf()),
            ..full()
        },
    )
    .unwrap();
    mismatch(
        open(s.layer(0), &OpenOptions { base: Some(s.layer(1).to_path_buf()), ..full() }),
        &format!(
            "{}: this is a base disk (no parent), so no other base can be below it, but --base names {}",
            s.layer(0).display(),
            s.layer(1).display()
        ),
    );
}

#[test]
fn full_with_base_includes_the_base_named() {
    let (s, m) = sparse_base_chain();
    let copy = s.path("base-copy.vmdk");
    fs::hard_link(s.layer(0), &copy).unwrap();
    let c = open(
        s.newest(),
        &OpenOptions {
            base: Some(copy.clone()),
            ..full()
        },
    )
    .unwrap();
    assert_eq!(c.layers.len(), 2);
    assert_eq!(c.layers[1].path, copy);
    assert_eq!(c.base, BaseCheck::Verified(copy));
    check_whole(&c, &m, 1);
}

#[test]
fn a_flat_base_disk_is_read_as_its_raw_data() {
    // testkit's base: vm.vmdk (createType vmfs, one VMFS extent) over vm-flat.vmdk.
    let dir = tempfile::tempdir().unwrap();
    let mut m = Model::new(3 << 20, 5);
    m.write(4096, 8192)
        .next_layer()
        .write((2 << 20) + 512, 1024);
    let spec = LayerSpec {
        format: LayerFormat::Cowd { grain_size: 1 },
        layout: Layout::Sequential,
    };
    let files = write_chain(dir.path(), "vm", &m, &[spec, spec]).unwrap();
    let s = Set { _dir: dir, files };
    let check = |c: &Chain| {
        let mut end = 0u64;
        c.for_each_run(&mut |r| {
            assert_eq!(r.virt, end);
            end = r.end();
            let mut got = vec![0u8; r.len as usize];
            let mut want = vec![0u8; r.len as usize];
            let Src::Data { file, offset } = r.src else {
                panic!("a flat base leaves no zeros: {r:?}")
            };
            c.sources[file as usize]
                .file
                .read_exact_at(&mut got, offset)
                .unwrap();
            m.disk_at(r.virt, &mut want);
            assert!(got == want, "{r:?}");
            Ok(())
        })
        .unwrap();
        assert_eq!(end, 3 << 20);
    };
    let c = open(s.newest(), &full()).unwrap();
    let formats: Vec<Format> = c.layers.iter().map(|l| l.format).collect();
    assert_eq!(formats, [Format::Cowd, Format::Cowd, Format::Flat]);
    assert_eq!(c.base, BaseCheck::Verified(s.files.base.clone()));
    check(&c);
    // The base disk named itself, and a FLAT extent at an offset in a larger file.
    let c = open(&s.files.base, &full()).unwrap();
    assert_eq!(c.layers.len(), 1);
    let raw = fs::read(&s.files.flat).unwrap();
    let mut padded = vec![0xa5u8; 2048];
    padded.extend_from_slice(&raw);
    padded.extend_from_slice(&[0x5a; 512]);
    fs::write(s.path("padded.bin"), padded).unwrap();
    edit(
        &s.files.base,
        "RW 6144 VMFS \"vm-flat.vmdk\"",
        "RW 6144 FLAT \"padded.bin\" 4",
    );
    let c = open(s.newest(), &full()).unwrap();
    check(&c);
    // A flat file too short for its extent line.
    edit(&s.files.base, "\"padded.bin\" 4", "\"padded.bin\" 6");
    format_error(
        open(s.newest(), &full()),
        &name_of(&s.path("padded.bin")),
        &[&format!("line 10 of {} needs bytes 3072..3148800 of this flat extent, but it is only 3148288 bytes long", s.files.base.display())],
    );
    // Without --full a flat base disk is no delta.
    format_error(
        open(&s.files.base, &OpenOptions::default()),
        &name_of(&s.files.base),
        &["with no parent: this is a base disk, not a snapshot delta; give the snapshot's descriptor (vm-000001.vmdk), or use --full to write the whole disk"],
    );
    // --base naming a snapshot, which has a parent below it.
    mismatch(
        open(s.newest(), &OpenOptions { base: Some(s.layer(0).to_path_buf()), ..full() }),
        &format!(
            "{}: --full needs the base disk, but this descriptor has a parent (parentCID 5a17b9ae): name the disk at the bottom of the chain",
            s.layer(0).display()
        ),
    );
}

#[test]
fn full_refuses_a_chain_it_cannot_follow_to_its_base() {
    let (s, _) = sparse_base_chain();
    fs::rename(s.layer(0), s.path("moved.vmdk")).unwrap();
    let missing = format!(
        "{}: parent {} not found, and --full needs every layer down to the base disk; copy it next to the delta, or name the base disk's descriptor with --base",
        s.newest().display(),
        s.layer(0).display()
    );
    mismatch(open(s.newest(), &full()), &missing);
    // --no-parent-check cannot stand in for the base's content.
    mismatch(
        open(
            s.newest(),
            &OpenOptions {
                no_parent_check: true,
                ..full()
            },
        ),
        &missing,
    );
    edit(s.newest(), "parentFileNameHint=\"vm-000001.vmdk\"\n", "");
    mismatch(
        open(s.newest(), &full()),
        &format!(
            "{}: the descriptor names no parent file (no parentFileNameHint), and --full needs every layer down to the base disk; name the base disk's descriptor with --base",
            s.newest().display()
        ),
    );
    // A bare extent names no parent at all.
    let bare = s.path("vm-000002-delta.vmdk");
    mismatch(
        open(&bare, &full()),
        &format!(
            "{}: a bare extent carries no parent information, so --full cannot know the disk below it; name the descriptor (vm-000001.vmdk) of a chain that ends at a base disk",
            bare.display()
        ),
    );
}

#[test]
fn gaps_become_zero_runs_merged_with_zeros_beside_them() {
    let data = |virt, len| Run {
        virt,
        len,
        src: Src::Data {
            file: 0,
            offset: virt,
        },
    };
    let zero = |virt, len| Run {
        virt,
        len,
        src: Src::Zero,
    };
    let mut runs = vec![data(10, 5), zero(15, 5), data(30, 10)];
    let mut out = Vec::new();
    fill_gaps(&mut runs, 0, 50, &mut out);
    assert_eq!(
        out,
        [
            zero(0, 10),
            data(10, 5),
            zero(15, 15),
            data(30, 10),
            zero(40, 10)
        ]
    );
    assert!(runs.is_empty());
    fill_gaps(&mut runs, 100, 200, &mut out);
    assert_eq!(out, [zero(100, 100)]);
    let mut runs = vec![data(0, 50)];
    fill_gaps(&mut runs, 0, 50, &mut out);
    assert_eq!(out, [data(0, 50)]);
}
