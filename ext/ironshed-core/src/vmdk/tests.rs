//! The files around a delta: a destination or undo file that is one of the chain's files is
//! refused, an input that would block the open (a FIFO) is refused at once, and an apply
//! that fails after its first write says how much it wrote (and `Progress` knows it wrote).

use super::*;
use crate::error::{Kind, Report};
use crate::io::{FileError, Written};
use ironshed_testkit::chain::{write_chain, ChainFiles, LayerFormat, LayerSpec};
use ironshed_testkit::cowd::Layout;
use ironshed_testkit::model::Model;
use std::fs;
use std::sync::mpsc;
use std::time::Duration;

struct Set {
    dir: tempfile::TempDir,
    files: ChainFiles,
}

impl Set {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    /// Every file of the set with its bytes, to prove nothing changed.
    fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut v: Vec<_> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| {
                let b = fs::read(&p).unwrap();
                (p, b)
            })
            .collect();
        v.sort();
        v
    }
}

/// A chain of `formats` over a disk of `capacity` bytes; layer k writes `len` bytes at
/// k * 64 KiB.
fn chain(capacity: u64, len: u64, formats: &[LayerFormat]) -> Set {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Model::new(capacity, 3);
    for k in 0..formats.len() {
        if k > 0 {
            m.next_layer();
        }
        m.write(k as u64 * 65536, len);
    }
    let specs: Vec<LayerSpec> = formats
        .iter()
        .map(|&format| LayerSpec {
            format,
            layout: Layout::Sequential,
        })
        .collect();
    let files = write_chain(dir.path(), "vm", &m, &specs).unwrap();
    Set { dir, files }
}

const COWD: LayerFormat = LayerFormat::Cowd { grain_size: 8 };
const SPARSE: LayerFormat = LayerFormat::Sparse {
    grain_size: 8,
    zeroed: false,
    redundant: false,
};

fn larger() -> ApplyOptions {
    ApplyOptions {
        allow_larger_destination: true,
        ..Default::default()
    }
}

fn same_file(r: Result<ApplyStats>, written: Written) -> (PathBuf, String) {
    let e = match r {
        Err(Error::File(e)) | Err(Error::Destination(crate::block::Error::File(e))) => e,
        other => panic!("expected SameFile {written:?}, got {other:?}"),
    };
    match e {
        FileError::SameFile {
            other,
            role,
            written: w,
            ..
        } if w == written => (other, role),
        other => panic!("expected SameFile {written:?}, got {other:?}"),
    }
}

#[test]
fn a_destination_that_is_a_file_of_the_chain_is_refused() {
    let s = chain(1 << 20, 8192, &[COWD, COWD]);
    let f = &s.files;
    let delta = Delta::open(&f.layers[1], &OpenOptions::default()).unwrap();
    fs::hard_link(&f.extents[0][0], s.path("hard-link")).unwrap();
    std::os::unix::fs::symlink(&f.extents[1][0], s.path("soft-link")).unwrap();
    let before = s.snapshot();
    let cases: Vec<(PathBuf, &Path, String)> = vec![
        (
            f.extents[1][0].clone(),
            &f.extents[1][0],
            format!("an extent of {}", f.layers[1].display()),
        ),
        (
            s.path("hard-link"),
            &f.extents[0][0],
            format!("an extent of {}", f.layers[0].display()),
        ),
        (
            s.path("soft-link"),
            &f.extents[1][0],
            format!("an extent of {}", f.layers[1].display()),
        ),
        (
            f.layers[0].clone(),
            &f.layers[0],
            "a descriptor of the chain".into(),
        ),
        (f.base.clone(), &f.base, "a descriptor of the chain".into()),
    ];
    for (dest, input, role) in cases {
        let p = Progress::new();
        let got = same_file(delta.apply(&dest, &larger(), &p), Written::Destination);
        assert_eq!(got, (input.to_path_buf(), role), "{}", dest.display());
        assert!(!p.written(), "nothing written");
        same_file(delta.dry_run(&dest, &larger()), Written::Destination);
        let e = delta.apply(&dest, &larger(), &p).unwrap_err();
        assert_eq!(e.kind(), Kind::Destination);
        assert!(
            e.message().starts_with(&format!(
                "{}: the destination is the same file as ",
                dest.display()
            )),
            "{}",
            e.message()
        );
    }
    assert!(s.snapshot() == before, "no file changed");
}

#[test]
fn the_base_given_with_base_is_an_input_too() {
    let s = chain(1 << 20, 8192, &[COWD]);
    let opts = OpenOptions {
        base: Some(s.files.base.clone()),
        ..Default::default()
    };
    let delta = Delta::open(&s.files.layers[0], &opts).unwrap();
    let got = same_file(
        delta.apply(&s.files.base, &larger(), &Progress::new()),
        Written::Destination,
    );
    assert_eq!(
        got,
        (s.files.base.clone(), "the base descriptor (--base)".into())
    );
}

#[test]
fn a_monolithic_sparse_file_of_the_disk_size_is_not_its_own_destination() {
    // Padded to exactly the capacity, it would pass the size check without any option.
    let s = chain(1 << 20, 8192, &[SPARSE]);
    let file = &s.files.layers[0];
    let len = fs::metadata(file).unwrap().len();
    assert!(len < 1 << 20);
    fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let delta = Delta::open(file, &OpenOptions::default()).unwrap();
    let before = s.snapshot();
    let got = same_file(
        delta.apply(file, &ApplyOptions::default(), &Progress::new()),
        Written::Destination,
    );
    assert_eq!(got, (file.clone(), "a delta of the chain".into()));
    assert!(s.snapshot() == before);
}

#[test]
fn an_undo_file_that_is_the_destination_or_a_file_of_the_chain_is_refused() {
    let s = chain(1 << 20, 8192, &[COWD]);
    let dest = s.path("dest.raw");
    fs::copy(&s.files.flat, &dest).unwrap();
    std::os::unix::fs::symlink(&dest, s.path("undo-link")).unwrap();
    let delta = Delta::open(&s.files.layers[0], &OpenOptions::default()).unwrap();
    let before = s.snapshot();
    for (undo, input, role) in [
        (
            s.path("undo-link"),
            dest.clone(),
            "the destination".to_string(),
        ),
        (
            s.files.extents[0][0].clone(),
            s.files.extents[0][0].clone(),
            format!("an extent of {}", s.files.layers[0].display()),
        ),
    ] {
        let opts = ApplyOptions {
            undo: Some(undo.clone()),
            ..Default::default()
        };
        let p = Progress::new();
        let r = delta.apply(&dest, &opts, &p);
        assert_eq!(r.as_ref().map_err(|e| e.kind()).unwrap_err(), Kind::Undo);
        assert_eq!(same_file(r, Written::UndoFile), (input, role));
        assert!(!p.written());
    }
    assert!(s.snapshot() == before);
}

/// Runs `f` on a thread; fails if it takes more than 10 s (an open that blocks).
fn within_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10)).expect("blocked")
}

fn make_fifo(p: &Path) {
    let _ = fs::remove_file(p);
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

fn refused_input(path: PathBuf, opts: OpenOptions, fifo: PathBuf) {
    let e = within_seconds(move || Delta::open(&path, &opts).unwrap_err());
    assert_eq!(e.kind(), Kind::Input, "{e:?}");
    assert_eq!(
        e.message(),
        format!(
            "{}: not a regular file or block device (a FIFO); refusing to read it",
            fifo.display()
        )
    );
}

#[test]
fn a_fifo_anywhere_in_the_chain_is_refused_without_blocking() {
    // The snapshot named.
    let s = chain(1 << 20, 8192, &[COWD, COWD]);
    let fifo = s.path("fifo.vmdk");
    make_fifo(&fifo);
    refused_input(fifo.clone(), OpenOptions::default(), fifo);
    // An extent.
    let ext = s.files.extents[1][0].clone();
    make_fifo(&ext);
    refused_input(s.files.layers[1].clone(), OpenOptions::default(), ext);
    // A parent named by parentFileNameHint.
    let s = chain(1 << 20, 8192, &[COWD, COWD]);
    let parent = s.files.layers[0].clone();
    make_fifo(&parent);
    refused_input(s.files.layers[1].clone(), OpenOptions::default(), parent);
    // The base given with --base.
    let s = chain(1 << 20, 8192, &[COWD]);
    let base = s.path("base-fifo.vmdk");
    make_fifo(&base);
    let opts = OpenOptions {
        base: Some(base.clone()),
        ..Default::default()
    };
    refused_input(s.files.layers[0].clone(), opts, base);
}

#[test]
fn a_failure_after_the_first_write_says_what_was_written() {
    // 8 MiB of changes; the extent loses its second half after it was checked, so the
    // apply fails reading it half way, after writing the first part.
    let s = chain(16 << 20, 8 << 20, &[COWD]);
    let dest = s.path("dest.raw");
    fs::copy(&s.files.flat, &dest).unwrap();
    let delta = Delta::open(&s.files.layers[0], &OpenOptions::default()).unwrap();
    let ext = &s.files.extents[0][0];
    let len = fs::metadata(ext).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(ext)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let p = Progress::new();
    let e = delta
        .apply(&dest, &ApplyOptions::default(), &p)
        .unwrap_err();
    let Error::Stopped { bytes, cause, .. } = &e else {
        panic!("expected Stopped, got {e:?}");
    };
    assert!(*bytes > 0 && *bytes < 8 << 20, "{bytes}");
    assert!(!matches!(**cause, Error::Stopped { .. }));
    assert!(p.written(), "the job knows it wrote");
    assert!(
        e.message().ends_with(&format!(
            "; by then {bytes} bytes of {} had been written",
            dest.display()
        )),
        "{}",
        e.message()
    );
    assert_eq!(fs::read(&dest).unwrap().len(), 16 << 20, "size kept");

    // A refusal before the first write is no Stopped, and the job knows it wrote nothing.
    let small = s.path("small.raw");
    fs::write(&small, vec![0u8; 4096]).unwrap();
    let p = Progress::new();
    let e = delta
        .apply(&small, &ApplyOptions::default(), &p)
        .unwrap_err();
    assert!(matches!(e, Error::BaseMismatch { .. }), "{e:?}");
    assert!(!p.written());

    // An interrupted apply stays an interruption; the job says whether it wrote.
    let p = Progress::new();
    p.cancel();
    let e = delta
        .apply(&dest, &ApplyOptions::default(), &p)
        .unwrap_err();
    assert!(e.is_cancelled(), "{e:?}");
    assert_eq!(e.message(), "interrupted");
    assert!(!p.written(), "cancelled before the first write");
}

#[test]
fn a_whole_disk_replaces_every_byte_of_a_garbage_destination() {
    // A monolithicSparse base disk (its parentCID made ffffffff) writing [0, 4 KiB), and a
    // COWD delta over it writing [64 KiB, 68 KiB): the disk is those bytes and zeros.
    let cap = 3 << 20;
    let s = chain(cap, 4096, &[SPARSE, COWD]);
    let base = &s.files.layers[0];
    let mut b = fs::read(base).unwrap();
    let at = b
        .windows(18)
        .position(|w| w == b"parentCID=5a17b9ae")
        .unwrap();
    b[at..at + 18].copy_from_slice(b"parentCID=ffffffff");
    fs::write(base, b).unwrap();
    let mut m = Model::new(cap, 3);
    m.write(0, 4096).next_layer().write(65536, 4096);
    let mut want = vec![0u8; cap as usize];
    m.disk_at(0, &mut want[..4096]);
    m.disk_at(65536, &mut want[65536..69632]);

    let full = OpenOptions {
        full: true,
        ..Default::default()
    };
    let delta = Delta::open(&s.files.layers[1], &full).unwrap();
    assert!(delta.full);
    assert_eq!(delta.changed_bytes(), cap);
    assert_eq!(delta.extents().unwrap(), [(0, cap)]);
    let garbage: Vec<u8> = (0..cap).map(|i| (i * 7 + 1) as u8 | 1).collect();
    for discard_zeros in [false, true] {
        let dest = s.path("dest.raw");
        fs::write(&dest, &garbage).unwrap();
        let opts = ApplyOptions {
            discard_zeros,
            ..Default::default()
        };
        let dry = delta.dry_run(&dest, &opts).unwrap();
        assert_eq!((dry.bytes, dry.extents), (cap, 1));
        let st = delta.apply(&dest, &opts, &Progress::new()).unwrap();
        assert_eq!((st.bytes, st.extents), (cap, 1));
        assert_eq!(st.discarded > 0, discard_zeros);
        assert!(
            fs::read(&dest).unwrap() == want,
            "discard_zeros {discard_zeros}"
        );
        let v = delta.verify(&dest, &Progress::new()).unwrap();
        assert_eq!((v.bytes, v.mismatched_bytes), (cap, 0));
        // A byte changed anywhere, even where no layer allocates, is found.
        fs::OpenOptions::new()
            .write(true)
            .open(&dest)
            .unwrap()
            .write_all_at(b"x", cap - 1)
            .unwrap();
        let v = delta.verify(&dest, &Progress::new()).unwrap();
        assert_eq!(v.mismatches, [(cap - 512, 512)]);
    }
    // The same chain as a delta changes only what the delta wrote.
    let delta = Delta::open(&s.files.layers[1], &OpenOptions::default()).unwrap();
    assert!(!delta.full);
    assert_eq!(delta.extents().unwrap(), [(65536, 4096)]);
}
