use super::*;
use std::os::unix::fs::PermissionsExt;
use std::sync::mpsc;
use std::time::Duration;

fn mkfifo(p: &Path) {
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

/// Runs `f` on a thread and fails if it has not returned within 10 s (an open that blocks).
fn within_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the open blocked")
}

fn flags(f: &File) -> libc::c_int {
    // SAFETY: F_GETFL on an open descriptor.
    unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) }
}

#[test]
fn a_fifo_is_refused_without_waiting_for_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    for mode in [OpenMode::READ, OpenMode::WRITE] {
        let p = fifo.clone();
        let e = within_seconds(move || open_path(&p, mode).unwrap_err());
        let verb = if mode.write { "write to it" } else { "read it" };
        assert_eq!(
            e.message(),
            format!(
                "{}: not a regular file or block device (a FIFO); refusing to {verb}",
                fifo.display()
            )
        );
        let kind = if mode.write {
            Kind::Destination
        } else {
            Kind::Input
        };
        assert_eq!(e.kind(), kind);
    }
}

#[test]
fn a_fifo_opens_as_a_nonblocking_stream_when_pipes_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let p = fifo.clone();
    let o = within_seconds(move || open_path(&p, OpenMode::STREAM).unwrap());
    assert_eq!(o.kind, FileKind::Pipe);
    assert_ne!(flags(&o.file) & libc::O_NONBLOCK, 0, "left non-blocking");
    // No writer yet: a read returns at once instead of waiting.
    let mut buf = [0u8; 4];
    let n = within_seconds(move || std::io::Read::read(&mut &o.file, &mut buf).unwrap_or(0));
    assert_eq!(n, 0);
}

#[test]
fn character_devices_directories_and_sockets_are_never_opened() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sock");
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    for (p, what) in [
        (PathBuf::from("/dev/null"), "a character device"),
        (dir.path().to_path_buf(), "a directory"),
        (sock.clone(), "a socket"),
    ] {
        for mode in [OpenMode::READ, OpenMode::STREAM, OpenMode::WRITE] {
            match open_path(&p, mode) {
                Err(FileError::WrongType { what: w, .. }) => assert_eq!(w, what, "{p:?}"),
                other => panic!("{p:?} {mode:?}: {other:?}"),
            }
        }
    }
    let e = open_path(&sock, OpenMode::STREAM).unwrap_err();
    assert!(e.message().ends_with(
        "not a regular file, named pipe or block device (a socket); refusing to read it"
    ));
}

#[test]
fn a_regular_file_is_opened_blocking_and_a_missing_one_named() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, b"data").unwrap();
    for mode in [OpenMode::READ, OpenMode::STREAM, OpenMode::WRITE] {
        let o = open_path(&f, mode).unwrap();
        assert_eq!((o.kind, o.direct), (FileKind::File, false));
        assert_eq!(flags(&o.file) & libc::O_NONBLOCK, 0, "{mode:?}");
        let access = if mode.write {
            libc::O_RDWR
        } else {
            libc::O_RDONLY
        };
        assert_eq!(flags(&o.file) & libc::O_ACCMODE, access);
    }
    let missing = dir.path().join("nope");
    let e = open_path(&missing, OpenMode::READ).unwrap_err();
    assert_eq!(e.message(), format!("{}: open", missing.display()));
    assert_eq!(e.kind(), Kind::Os(libc::ENOENT));
    let e = open_path(&missing, OpenMode::WRITE).unwrap_err();
    assert_eq!(
        e.message(),
        format!("{}: open for writing", missing.display())
    );
    assert!(!missing.exists(), "never created");
    // Refused by the open itself: its error, named.
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o200)).unwrap();
    let e = open_path(&f, OpenMode::READ);
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        assert_eq!(e.unwrap_err().kind(), Kind::Os(libc::EACCES));
    }
}

#[test]
fn inputs_know_a_file_by_any_of_its_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let delta = d.join("vm-000001-delta.vmdk");
    let other = d.join("other");
    std::fs::write(&delta, b"delta").unwrap();
    std::fs::write(&other, b"delta").unwrap();
    std::fs::hard_link(&delta, d.join("hard")).unwrap();
    std::os::unix::fs::symlink(&delta, d.join("soft")).unwrap();
    std::os::unix::fs::symlink("hard", d.join("soft-to-hard")).unwrap();

    let mut inputs = Inputs::new();
    let f = File::open(&delta).unwrap();
    inputs.add(&f, &delta, "an extent of the chain").unwrap();
    inputs.add(&f, &d.join("soft"), "again").unwrap();
    inputs.add_path(&d.join("missing"), "an undo file").unwrap();
    assert_eq!(
        inputs.len(),
        1,
        "one file, however it is named; a missing one not at all"
    );

    for name in ["vm-000001-delta.vmdk", "hard", "soft", "soft-to-hard"] {
        let p = d.join(name);
        let e = inputs
            .check(&File::open(&p).unwrap(), &p, Written::Destination)
            .unwrap_err();
        assert_eq!(
            e.message(),
            format!(
                "{}: the destination is the same file as {} (an extent of the chain); refusing to write to it",
                p.display(),
                delta.display()
            )
        );
        assert_eq!(e.kind(), Kind::Destination);
        let e = inputs.check_path(&p, Written::UndoFile).unwrap_err();
        assert_eq!(e.kind(), Kind::Undo);
        assert!(e.message().contains(": the undo file is the same file as "));
        assert!(same_file(&p, &delta));
    }
    // A copy with the same bytes is another file.
    inputs
        .check(&File::open(&other).unwrap(), &other, Written::Destination)
        .unwrap();
    inputs
        .check_path(&d.join("missing"), Written::UndoFile)
        .unwrap();
    assert!(!same_file(&other, &delta));
    assert!(same_file(&d.join("missing"), &d.join("missing")));
    assert!(!same_file(&d.join("missing"), &d.join("missing2")));
}

#[test]
fn block_devices_are_known_by_their_device_number() {
    let dir = tempfile::tempdir().unwrap();
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
    let blk = nix::sys::stat::SFlag::S_IFBLK;
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    if nix::sys::stat::mknod(&a, blk, mode, libc::makedev(7, 250)).is_ok() {
        // Two nodes of one device (mknod needs root, as the tools do).
        nix::sys::stat::mknod(&b, blk, mode, libc::makedev(7, 250)).unwrap();
        assert_eq!(
            path_ids(&a).unwrap(),
            vec![FileId::Device {
                rdev: libc::makedev(7, 250)
            }]
        );
        assert!(same_file(&a, &b));
        nix::sys::stat::mknod(&dir.path().join("c"), blk, mode, libc::makedev(7, 251)).unwrap();
        assert!(!same_file(&a, &dir.path().join("c")));
    } else {
        // Not root: a character device is known by its inode, like a file.
        let meta = std::fs::metadata("/dev/null").unwrap();
        assert_eq!(
            path_ids(Path::new("/dev/null")).unwrap(),
            vec![FileId::Inode {
                dev: meta.dev(),
                ino: meta.ino()
            }]
        );
    }
}
