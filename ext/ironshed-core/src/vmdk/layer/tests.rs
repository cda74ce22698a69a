//! What a layer refuses: files that are no VMDK, deltas not closed cleanly, descriptors whose
//! createType, extent lines or embedded copy do not fit the extents they name. Every set of
//! files is written by ironshed-testkit, then edited.

use super::*;
use crate::vmdk::fixture::{format_error, put_u32, put_u64, unsupported};
use ironshed_testkit::chain::{write_chain, ChainFiles, LayerFormat, LayerSpec};
use ironshed_testkit::cowd::{self as tk_cowd, CowdSpec, Layout};
use ironshed_testkit::model::Model;
use std::fs;

struct Set {
    _dir: tempfile::TempDir,
    files: ChainFiles,
}

impl Set {
    fn desc(&self) -> &Path {
        &self.files.layers[0]
    }
    fn extent(&self, i: usize) -> &Path {
        &self.files.extents[0][i]
    }
    fn name(&self) -> String {
        name_of(self.desc())
    }
}

/// One delta of a 4 MiB disk in `format`.
fn set(format: LayerFormat) -> Set {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Model::new(4 << 20, 1);
    m.write(0, 8192).write(3 << 20, 65536);
    let spec = LayerSpec {
        format,
        layout: Layout::Sequential,
    };
    let files = write_chain(dir.path(), "vm", &m, &[spec]).unwrap();
    Set { _dir: dir, files }
}

fn cowd() -> Set {
    set(LayerFormat::Cowd { grain_size: 8 })
}

fn open_with(p: &Path, opts: &OpenOptions) -> Result<Layer> {
    Layer::open(p, &mut Files::default(), opts)
}

fn open(p: &Path) -> Result<Layer> {
    open_with(p, &OpenOptions::default())
}

/// Replaces the first `from` in the file at `p` by `to`.
fn edit(p: &Path, from: &str, to: &str) {
    let mut b = fs::read(p).unwrap();
    let at = b
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("{from} not in {}", p.display()));
    b.splice(at..at + from.len(), to.bytes());
    fs::write(p, b).unwrap();
}

fn patch(p: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut b = fs::read(p).unwrap();
    f(&mut b);
    fs::write(p, b).unwrap();
}

#[test]
fn opens_a_descriptor_and_its_extent() {
    let s = cowd();
    let mut files = Files::default();
    let l = Layer::open(s.desc(), &mut files, &OpenOptions::default()).unwrap();
    let sources = files.sources;
    assert_eq!(
        (l.format, l.capacity, l.grain_size),
        (Format::Cowd, 4 << 20, 4096)
    );
    assert_eq!((l.grains, l.changed_bytes), (18, 18 * 4096));
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].path, s.extent(0));
    assert_eq!(l.parent_path(), Some(s.files.base.clone()));
}

#[test]
fn neither_a_descriptor_nor_an_extent() {
    let s = cowd();
    fs::write(s.desc(), "hello world, this is text\n").unwrap();
    format_error(
        open(s.desc()),
        &s.name(),
        &["neither a VMDK descriptor nor a VMDK extent (first bytes: 68 65 6c 6c 6f 20 77 6f)"],
    );
}

#[test]
fn unclean_deltas_are_refused_unless_allowed() {
    let allow = OpenOptions {
        allow_unclean: true,
        ..Default::default()
    };
    // COWD uncleanShutdown (u32 at 1648), KDMV uncleanShutdown (byte 72), seSparse
    // replayJournal (u64 at 24 of the volatile header, sector 1).
    type Poke = fn(&mut Vec<u8>);
    let cases: [(Set, Poke, &str); 3] = [
        (
            cowd(),
            |b| put_u32(b, 1648, 1),
            "uncleanShutdown is 1 at byte 1648",
        ),
        (
            set(LayerFormat::Sparse {
                grain_size: 8,
                zeroed: false,
                redundant: false,
            }),
            |b| b[72] = 1,
            "uncleanShutdown is 1 at byte 72",
        ),
        (
            set(LayerFormat::SeSparse),
            |b| put_u64(b, 512 + 24, 1),
            "the volatile header's replayJournal is 1 (journal not replayed)",
        ),
    ];
    for (s, poke, why) in cases {
        patch(s.extent(0), poke);
        let reason = format!("{}: {why}", name_of(s.extent(0)));
        format_error(
            open(s.desc()),
            &s.name(),
            &[
                &reason,
                "the delta was not closed cleanly",
                "--allow-unclean",
            ],
        );
        let l = open_with(s.desc(), &allow).unwrap();
        assert_eq!(l.unclean, Some(reason));
    }
}

#[test]
fn descriptor_without_create_type() {
    let s = cowd();
    edit(s.desc(), "createType=\"vmfsSparse\"\n", "");
    format_error(open(s.desc()), &s.name(), &["descriptor has no createType"]);
}

#[test]
fn base_disk_descriptor() {
    let s = cowd();
    edit(s.desc(), "createType=\"vmfsSparse\"", "createType=\"vmfs\"");
    edit(s.desc(), "parentCID=5a17b9ae", "parentCID=ffffffff");
    format_error(
        open(s.desc()),
        &s.name(),
        &["createType \"vmfs\" with no parent: this is a base disk, not a snapshot delta"],
    );
}

#[test]
fn create_type_that_is_no_delta() {
    let s = cowd();
    edit(s.desc(), "\"vmfsSparse\"", "\"vmfsThin\"");
    unsupported(
        open(s.desc()),
        &s.name(),
        &["createType \"vmfsThin\" is not a delta this version can apply"],
    );
}

#[test]
fn descriptor_without_extent_lines() {
    let s = cowd();
    let text = fs::read_to_string(s.desc()).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.starts_with("RW "))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(s.desc(), kept).unwrap();
    format_error(
        open(s.desc()),
        &s.name(),
        &["descriptor has no extent lines"],
    );
}

#[test]
fn two_extent_lines_in_a_vmfs_sparse_descriptor() {
    let s = cowd();
    edit(
        s.desc(),
        "# Extent description\n",
        "# Extent description\nRW 8 ZERO\n",
    );
    format_error(
        open(s.desc()),
        &s.name(),
        &["a vmfsSparse descriptor must have exactly one extent line, found 2"],
    );
}

#[test]
fn extent_lines_that_do_not_fit() {
    let cases = [
        (
            "VMFSSPARSE",
            "VMFS",
            "line 10: extent type VMFS does not match createType vmfsSparse (expected VMFSSPARSE)",
        ),
        ("RW 8192", "NOACCESS 8192", "line 10: extent is NOACCESS"),
        ("RW 8192", "RW 0", "line 10: extent has 0 sectors"),
        (
            "-delta.vmdk\"",
            "-delta.vmdk\" 0",
            "line 10: a VMFSSPARSE extent takes no offset",
        ),
        (
            " \"vm-000001-delta.vmdk\"",
            "",
            "line 10: extent line names no file",
        ),
        (
            "vm-000001-delta.vmdk",
            "vm-000001.vmdk",
            "line 10: the extent names the descriptor itself",
        ),
    ];
    for (from, to, want) in cases {
        let s = cowd();
        edit(s.desc(), from, to);
        format_error(open(s.desc()), &s.name(), &[want]);
    }
}

#[test]
fn extent_file_of_another_format() {
    let s = cowd();
    patch(s.extent(0), |b| b[..4].copy_from_slice(b"KDMV"));
    format_error(
        open(s.desc()),
        &name_of(s.extent(0)),
        &[&format!(
            "bad magic 4b 44 4d 56 at byte 0: line 10 of {} says VMFSSPARSE (a COWD delta, starting with 'COWD')",
            s.name()
        )],
    );
    let s = set(LayerFormat::SeSparse);
    patch(s.extent(0), |b| b[..4].copy_from_slice(b"COWD"));
    format_error(
        open(s.desc()),
        &name_of(s.extent(0)),
        &["says SESPARSE (a seSparse extent, starting with the 0xcafebabe header magic)"],
    );
}

#[test]
fn missing_extent_file() {
    let s = cowd();
    fs::remove_file(s.extent(0)).unwrap();
    match open(s.desc()) {
        Err(Error::File(crate::io::FileError::Io(e))) => {
            let m = e.to_string();
            assert!(
                m.starts_with(&format!("{}: open", name_of(s.extent(0)))),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn extent_line_size_differs_from_the_header() {
    let s = cowd();
    edit(s.desc(), "RW 8192", "RW 4096");
    format_error(
        open(s.desc()),
        &s.name(),
        &[&format!(
            "line 10: extent line says 4096 sectors but the header of {} says 8192",
            name_of(s.extent(0))
        )],
    );
}

#[test]
fn extents_of_different_formats() {
    let s = set(LayerFormat::TwoGb {
        grain_size: 8,
        extent_bytes: 2 << 20,
    });
    // The second 2 MiB extent becomes a COWD file of the same size.
    let spec = CowdSpec {
        capacity_sectors: 4096,
        grain_size: 8,
        layout: Layout::Sequential,
        unclean: 0,
    };
    tk_cowd::write(s.extent(1), &spec, &Model::new(2 << 20, 1)).unwrap();
    unsupported(
        open(s.desc()),
        &name_of(s.extent(1)),
        &["extents of different formats in one descriptor"],
    );
}

fn monolithic() -> Set {
    set(LayerFormat::Sparse {
        grain_size: 8,
        zeroed: false,
        redundant: false,
    })
}

#[test]
fn embedded_descriptor_of_another_size() {
    let s = monolithic();
    edit(s.desc(), "RW 8192 SPARSE", "RW 8191 SPARSE");
    format_error(
        open(s.desc()),
        &s.name(),
        &["embedded descriptor line 10: extent says 8191 sectors but the header says 8192"],
    );
}

#[test]
fn embedded_descriptor_naming_another_file() {
    let s = monolithic();
    edit(
        s.desc(),
        "SPARSE \"vm-000001.vmdk\"",
        "SPARSE \"vm-000009.vmdk\"",
    );
    let other = s.desc().with_file_name("vm-000009.vmdk");
    // A file of that name exists: which one the user meant is unclear.
    fs::write(&other, b"another disk").unwrap();
    unsupported(
        open(s.desc()),
        &s.name(),
        &[&format!(
            "embedded descriptor line 10 names another file ({}); open that descriptor instead",
            other.display()
        )],
    );
}

#[test]
fn a_renamed_monolithic_file_is_opened_with_a_note() {
    // As an OVA's disk renamed after export: the name its descriptor gives is gone.
    let s = monolithic();
    let before = open(s.desc()).unwrap();
    assert_eq!(before.note, None);
    let renamed = s.desc().with_file_name("disk1.vmdk");
    fs::rename(s.desc(), &renamed).unwrap();
    let l = open(&renamed).unwrap();
    assert_eq!(
        (l.format, l.capacity, l.grains, l.changed_bytes),
        (
            before.format,
            before.capacity,
            before.grains,
            before.changed_bytes
        )
    );
    assert_eq!(
        l.note.as_deref(),
        Some(
            format!(
                "{}: its embedded descriptor (line 10) names {}, which does not exist: taken to be this file, renamed since it was written",
                renamed.display(),
                s.desc().display()
            )
            .as_str()
        )
    );
}

#[test]
fn peek_reads_text_and_embedded_descriptors_only() {
    let s = monolithic();
    let d = peek_descriptor(s.desc()).unwrap().unwrap();
    assert_eq!(d.create_type.as_deref(), Some("monolithicSparse"));
    let c = cowd();
    assert_eq!(peek_descriptor(c.extent(0)).unwrap(), None);
    fs::write(c.extent(0), [0xffu8; 16]).unwrap();
    format_error(
        peek_descriptor(c.extent(0)),
        &name_of(c.extent(0)),
        &["neither a VMDK descriptor nor a VMDK extent (first bytes: ff ff ff ff ff ff ff ff)"],
    );
}
