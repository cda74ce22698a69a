//! User-named files: opened so that the open itself never blocks, refused when they are not
//! the kind of file a job needs, and told apart by identity so that a job never writes to a
//! file it reads.
//!
//! * [`open_path`] is how the core opens every path a user names (a delta, an extent, a
//!   parent descriptor, a stream, a device to read, a destination). It looks at the path
//!   before opening it (a character device or socket is never opened: opening one may have
//!   effects), opens it with `O_NONBLOCK` (opening a FIFO without it waits for a writer,
//!   inside a system call no signal ends), checks what was opened with `fstat` (the path may
//!   have been swapped in between), and then clears `O_NONBLOCK` for files and devices.
//! * [`FileId`] is what makes two paths one file: device and inode after following links, the
//!   device number for block devices (two nodes of one device), and for a loop device also the
//!   file behind it.
//! * [`Inputs`] collects the identities of everything a job reads; [`Inputs::check`] refuses
//!   a file to be written that is one of them ([`FileError::SameFile`]).

use crate::error::{IoContext, Kind, Report};
use std::fs::{File, FileType, Metadata, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How [`open_path`] opens a path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenMode {
    /// Read-write (a destination); never created, truncated or appended to.
    pub write: bool,
    /// `O_EXCL` on a block device: the kernel refuses a device that is mounted or held.
    pub exclusive: bool,
    /// `O_DIRECT` on a block device, when the device allows it.
    pub direct: bool,
    /// A named pipe (FIFO) is accepted too, as a stream: it stays non-blocking, and reads
    /// wait in `poll` ([`crate::io::WaitingFile`]), where a cancel flag is seen.
    pub pipes: bool,
}

impl OpenMode {
    /// A regular file or block device, read-only.
    pub const READ: OpenMode = OpenMode {
        write: false,
        exclusive: false,
        direct: false,
        pipes: false,
    };
    /// A regular file, block device or named pipe, read-only (a stream).
    pub const STREAM: OpenMode = OpenMode {
        pipes: true,
        ..OpenMode::READ
    };
    /// A regular file or block device, read-write; a block device exclusively.
    pub const WRITE: OpenMode = OpenMode {
        write: true,
        exclusive: true,
        ..OpenMode::READ
    };
}

/// What an opened path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A block device.
    BlockDevice,
    /// A named pipe (only with [`OpenMode::pipes`]); its descriptor stays non-blocking.
    Pipe,
}

/// A path opened by [`open_path`].
#[derive(Debug)]
pub struct Opened {
    /// The open file.
    pub file: File,
    /// What it is.
    pub kind: FileKind,
    /// It was opened with `O_DIRECT`.
    pub direct: bool,
}

/// What a file being written is, in [`FileError::SameFile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The destination of an apply.
    Destination,
    /// The undo (snapback) file.
    UndoFile,
    /// The output a stream is sent to (standard output, a pipe).
    Output,
}

impl Written {
    fn name(self) -> &'static str {
        match self {
            Written::Destination => "destination",
            Written::UndoFile => "undo file",
            Written::Output => "output",
        }
    }
}

/// Why a user-named file was refused.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Not a kind of file the job can use; it was not opened (or was closed at once).
    #[error("{}: not a regular file{} or block device ({what}); refusing to {}", path.display(), if *pipes { ", named pipe" } else { "" }, if *write { "write to it" } else { "read it" })]
    WrongType {
        /// The path.
        path: PathBuf,
        /// What it is ("a FIFO", "a character device"...).
        what: &'static str,
        /// It was to be written.
        write: bool,
        /// Named pipes were accepted.
        pipes: bool,
    },
    /// A file to be written is one the job reads.
    #[error("{}: the {} is the same file as {} ({role}); refusing to write to it", path.display(), written.name(), other.display())]
    SameFile {
        /// The file to be written, as named.
        path: PathBuf,
        /// What it was to be.
        written: Written,
        /// The input it is, as that was named.
        other: PathBuf,
        /// What the input is to the job ("an extent of the chain"...).
        role: String,
    },
    /// A system call failed.
    #[error("{0}")]
    Io(#[from] IoContext),
}

impl Report for FileError {
    fn kind(&self) -> Kind {
        match self {
            FileError::WrongType { write: true, .. } => Kind::Destination,
            FileError::WrongType { .. } => Kind::Input,
            FileError::SameFile {
                written: Written::UndoFile,
                ..
            } => Kind::Undo,
            FileError::SameFile { .. } => Kind::Destination,
            FileError::Io(ctx) => ctx.kind(),
        }
    }
    fn message(&self) -> String {
        match self {
            FileError::Io(ctx) => ctx.message(),
            other => other.to_string(),
        }
    }
}

/// What a file of type `ft` is called in messages ("a FIFO", "a character device"...).
pub fn type_name(ft: FileType) -> &'static str {
    if ft.is_file() {
        "a regular file"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "an unknown file type"
    }
}

/// The kind of `meta`, or the refusal of `path` for `mode`.
fn kind_of(path: &Path, meta: &Metadata, mode: OpenMode) -> Result<FileKind, FileError> {
    let ft = meta.file_type();
    if ft.is_file() {
        return Ok(FileKind::File);
    } else if ft.is_block_device() {
        return Ok(FileKind::BlockDevice);
    } else if ft.is_fifo() && mode.pipes {
        return Ok(FileKind::Pipe);
    }
    Err(FileError::WrongType {
        path: path.to_path_buf(),
        what: type_name(ft),
        write: mode.write,
        pipes: mode.pipes,
    })
}

/// Opens a path a user named, as `mode` says, without ever blocking in the open: see the
/// module documentation. A refused path is not opened at all when it is refused by its
/// `stat`, and closed at once when its `fstat` refuses it.
pub fn open_path(path: &Path, mode: OpenMode) -> Result<Opened, FileError> {
    let op = if mode.write {
        "open for writing"
    } else {
        "open"
    };
    let ctx = |e| FileError::Io(IoContext::new(path, op, e));
    let meta = std::fs::metadata(path).map_err(ctx)?;
    let before = kind_of(path, &meta, mode)?;
    let mut flags = libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
    if mode.exclusive && before == FileKind::BlockDevice {
        flags |= libc::O_EXCL;
    }
    let open = |extra: libc::c_int| {
        OpenOptions::new()
            .read(true)
            .write(mode.write)
            .custom_flags(flags | extra)
            .open(path)
    };
    let (file, direct) = if mode.direct && before == FileKind::BlockDevice {
        match open(libc::O_DIRECT) {
            Ok(f) => (f, true),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (open(0).map_err(ctx)?, false),
            Err(e) => return Err(ctx(e)),
        }
    } else {
        (open(0).map_err(ctx)?, false)
    };
    let meta = file
        .metadata()
        .map_err(|e| IoContext::new(path, "stat", e))?;
    let kind = kind_of(path, &meta, mode)?;
    if kind != FileKind::Pipe {
        clear_nonblock(&file).map_err(|e| IoContext::new(path, "clear O_NONBLOCK", e))?;
    }
    Ok(Opened { file, kind, direct })
}

fn clear_nonblock(file: &File) -> std::io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; F_GETFL/F_SETFL take and return plain ints.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Reads a user-named input whole, opened by [`open_path`] for `mode`, keeping at most
/// `cap + 1` bytes (so that a caller can tell "more than `cap`" from "exactly `cap`"). With
/// [`OpenMode::pipes`], a named pipe is read as data arrives: no writer yet is a wait, not an
/// end, and every wait ends when `progress` is cancelled (the read then fails, and
/// `progress.is_cancelled()` says why).
pub fn read_capped(
    path: &Path,
    mode: OpenMode,
    cap: u64,
    progress: &crate::Progress,
) -> Result<Vec<u8>, FileError> {
    let opened = open_path(path, mode)?;
    read_file_capped(opened.file, path, cap, progress)
}

/// [`read_capped`] of a file already open (standard input's descriptor, duplicated): reads
/// that would block wait in `poll`, where `progress`'s cancel flag is seen.
pub fn read_file_capped(
    file: File,
    path: &Path,
    cap: u64,
    progress: &crate::Progress,
) -> Result<Vec<u8>, FileError> {
    use std::io::Read;
    let mut out = Vec::new();
    crate::io::WaitingFile::new(file)
        .cancelled_by(progress)
        .take(cap.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| IoContext::new(path, "read", e))?;
    Ok(out)
}

/// One identity of a file: two paths with a common identity are one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileId {
    /// A file by its device and inode (after following links: hard links share it).
    Inode {
        /// `st_dev`.
        dev: u64,
        /// `st_ino`.
        ino: u64,
    },
    /// A block device by its device number (every node of one device shares it).
    Device {
        /// `st_rdev`.
        rdev: u64,
    },
}

/// Major number of loop devices.
const LOOP_MAJOR: u64 = 7;

/// `struct loop_info64` of `<linux/loop.h>` (only the first two fields are read).
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

nix::ioctl_read_bad!(loop_get_status64, 0x4C05, LoopInfo64);

fn ids_of(meta: &Metadata) -> Vec<FileId> {
    if meta.file_type().is_block_device() {
        vec![FileId::Device { rdev: meta.rdev() }]
    } else {
        vec![FileId::Inode {
            dev: meta.dev(),
            ino: meta.ino(),
        }]
    }
}

/// Every identity of an open file: its inode, or for a block device its device number and,
/// when it is an attached loop device, the inode of the file behind it.
pub fn file_ids(file: &File) -> std::io::Result<Vec<FileId>> {
    let meta = file.metadata()?;
    let mut ids = ids_of(&meta);
    if meta.file_type().is_block_device() && u64::from(libc::major(meta.rdev())) == LOOP_MAJOR {
        // SAFETY: an all-zero loop_info64 is a valid value of this plain C struct.
        let mut info: LoopInfo64 = unsafe { std::mem::zeroed() };
        // SAFETY: LOOP_GET_STATUS64 writes one loop_info64 through the pointer; a loop
        // device with no file attached fails with ENXIO and writes nothing.
        if unsafe { loop_get_status64(file.as_raw_fd(), &mut info) }.is_ok() {
            ids.push(FileId::Inode {
                dev: info.lo_device,
                ino: info.lo_inode,
            });
        }
    }
    Ok(ids)
}

/// The identities of the file at `path` (links followed), without opening it: its inode, or
/// a block device's number.
pub fn path_ids(path: &Path) -> std::io::Result<Vec<FileId>> {
    std::fs::metadata(path).map(|m| ids_of(&m))
}

/// True when `a` and `b` name one file (see [`FileId`]); when either cannot be looked at,
/// true only when they are the same path.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (path_ids(a), path_ids(b)) {
        (Ok(x), Ok(y)) => x.iter().any(|i| y.contains(i)),
        _ => a == b,
    }
}

/// One file a job reads.
#[derive(Debug, Clone)]
struct Input {
    ids: Vec<FileId>,
    path: PathBuf,
    role: String,
}

/// The files a job reads, so that a file it writes can be checked against every one of them.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    files: Vec<Input>,
}

impl Inputs {
    /// No inputs yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `file`, opened from `path` and read as `role` ("an extent of the chain"...). A
    /// file added twice is kept once, with its first role.
    pub fn add(&mut self, file: &File, path: &Path, role: &str) -> Result<(), FileError> {
        let ids = file_ids(file).map_err(|e| IoContext::new(path, "stat", e))?;
        self.push(ids, path, role);
        Ok(())
    }

    /// Adds each `(role, path)` of `list` with [`Inputs::add_path`].
    pub fn add_paths(&mut self, list: &[(String, PathBuf)]) -> Result<(), FileError> {
        list.iter()
            .try_for_each(|(role, path)| self.add_path(path, role))
    }

    /// Adds the file at `path` if there is one (a file that is read later, like an undo file
    /// that may be reopened).
    pub fn add_path(&mut self, path: &Path, role: &str) -> Result<(), FileError> {
        match path_ids(path) {
            Ok(ids) => {
                self.push(ids, path, role);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(IoContext::new(path, "stat", e).into()),
        }
    }

    fn push(&mut self, ids: Vec<FileId>, path: &Path, role: &str) {
        if self.find(&ids).is_none() {
            self.files.push(Input {
                ids,
                path: path.to_path_buf(),
                role: role.to_string(),
            });
        }
    }

    fn find(&self, ids: &[FileId]) -> Option<&Input> {
        self.files
            .iter()
            .find(|f| f.ids.iter().any(|i| ids.contains(i)))
    }

    /// Number of distinct files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Refuses `file`, opened from `path` to be written as `written`, when it is one of the
    /// inputs.
    pub fn check(&self, file: &File, path: &Path, written: Written) -> Result<(), FileError> {
        let ids = file_ids(file).map_err(|e| IoContext::new(path, "stat", e))?;
        self.refuse(&ids, path, written)
    }

    /// Refuses the file at `path`, to be written as `written`, when it exists and is one of
    /// the inputs.
    pub fn check_path(&self, path: &Path, written: Written) -> Result<(), FileError> {
        match path_ids(path) {
            Ok(ids) => self.refuse(&ids, path, written),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(IoContext::new(path, "stat", e).into()),
        }
    }

    fn refuse(&self, ids: &[FileId], path: &Path, written: Written) -> Result<(), FileError> {
        match self.find(ids) {
            None => Ok(()),
            Some(f) => Err(FileError::SameFile {
                path: path.to_path_buf(),
                written,
                other: f.path.clone(),
                role: f.role.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
