//! The destination side: opening a file or block device safely, and the copy loop that writes
//! a sorted list of segments onto it with large positioned writes.
//!
//! Rules this module enforces for every tool:
//! * a destination is opened read-write without `O_CREAT`, `O_TRUNC` or `O_APPEND`, and a
//!   block device additionally with `O_EXCL` (the kernel then refuses a device that is mounted
//!   or held by device-mapper);
//! * nothing is ever written past the destination's current size, so a file never grows;
//! * the whole segment list is checked before the first write.

mod copy;

pub use copy::{write_segments, BatchWriter, CopyStats, Segment, SegmentSource, SourceFile, BATCH};

use crate::error::IoContext;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Errors of the destination side.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The path is neither a regular file nor a block device.
    #[error("{}: not a regular file or block device ({kind}); refusing to write to it", path.display())]
    NotFileOrDevice {
        /// The destination given.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// `O_EXCL` on a block device failed with EBUSY.
    #[error("{}: block device is in use (mounted, part of an active LV/RAID, or opened exclusively by another program); refusing to write to it", path.display())]
    Busy {
        /// The device.
        path: PathBuf,
    },
    /// A write would go past the end of the destination.
    #[error("{}: write of {len} bytes at byte {offset} would go past the end of the destination ({size} bytes)", path.display())]
    PastEnd {
        /// The destination.
        path: PathBuf,
        /// Where the write starts.
        offset: u64,
        /// How long it is.
        len: u64,
        /// The destination size.
        size: u64,
    },
    /// The segment list handed to the copy loop is not sorted or overlaps (a bug upstream).
    #[error("internal error: segment list not sorted or overlapping at byte {offset}")]
    UnsortedSegments {
        /// Where the fault was found.
        offset: u64,
    },
    /// A system call failed.
    #[error("{0}")]
    Io(#[from] IoContext),
    /// The caller cancelled the job (Ctrl-C, Thread#kill).
    #[error("interrupted")]
    Interrupted,
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, Error>;

/// What kind of object a destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestKind {
    /// A regular file.
    File,
    /// A block device, opened with `O_EXCL`.
    BlockDevice,
}

/// An opened destination of fixed size.
#[derive(Debug)]
pub struct Destination {
    path: PathBuf,
    file: File,
    size: u64,
    kind: DestKind,
    writable: bool,
}

nix::ioctl_read!(blkgetsize64, 0x12, 114, u64);
nix::ioctl_write_ptr_bad!(blkzeroout, nix::request_code_none!(0x12, 127), [u64; 2]);

/// Size in bytes of an open regular file or block device.
pub fn file_size(file: &File) -> io::Result<u64> {
    let meta = file.metadata()?;
    if meta.file_type().is_block_device() {
        use std::os::fd::AsRawFd;
        let mut size: u64 = 0;
        // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which is valid for the call.
        unsafe { blkgetsize64(file.as_raw_fd(), &mut size) }.map_err(io::Error::from)?;
        Ok(size)
    } else {
        Ok(meta.len())
    }
}

fn kind_of(path: &Path) -> Result<DestKind> {
    let meta = std::fs::metadata(path).map_err(|e| IoContext::new(path, "stat", e))?;
    let ft = meta.file_type();
    if ft.is_file() {
        Ok(DestKind::File)
    } else if ft.is_block_device() {
        Ok(DestKind::BlockDevice)
    } else {
        let kind = if ft.is_dir() {
            "a directory"
        } else if ft.is_char_device() {
            "a character device"
        } else if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "an unknown file type"
        };
        Err(Error::NotFileOrDevice {
            path: path.to_path_buf(),
            kind,
        })
    }
}

impl Destination {
    /// Opens `path` for writing: read-write, never creating, truncating or appending; a block
    /// device is opened with `O_EXCL`.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_mode(path, true)
    }

    /// Opens `path` read-only, for dry runs and verification: same checks, no `O_EXCL`.
    pub fn open_readonly(path: &Path) -> Result<Self> {
        Self::open_mode(path, false)
    }

    fn open_mode(path: &Path, write: bool) -> Result<Self> {
        let kind = kind_of(path)?;
        let mut opts = OpenOptions::new();
        opts.read(true).write(write);
        let mut flags = libc::O_CLOEXEC;
        if write && kind == DestKind::BlockDevice {
            flags |= libc::O_EXCL;
        }
        opts.custom_flags(flags);
        let file = opts.open(path).map_err(|e| {
            if e.raw_os_error() == Some(libc::EBUSY) && kind == DestKind::BlockDevice {
                Error::Busy {
                    path: path.to_path_buf(),
                }
            } else {
                let op = if write { "open for writing" } else { "open" };
                Error::Io(IoContext::new(path, op, e))
            }
        })?;
        let size = file_size(&file).map_err(|e| IoContext::new(path, "get size", e))?;
        Ok(Destination {
            path: path.to_path_buf(),
            file,
            size,
            kind,
            writable: write,
        })
    }

    /// The path it was opened as.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Size in bytes (fixed: writes never extend it).
    pub fn size(&self) -> u64 {
        self.size
    }
    /// File or block device.
    pub fn kind(&self) -> DestKind {
        self.kind
    }
    /// The open file, for reads.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Checks that `[offset, offset+len)` lies inside the destination.
    pub fn check_range(&self, offset: u64, len: u64) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(Error::PastEnd {
                path: self.path.clone(),
                offset,
                len,
                size: self.size,
            }),
        }
    }

    /// Writes all of `buf` at `offset`, refusing anything that would go past the end.
    pub fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.check_range(offset, buf.len() as u64)?;
        self.file.write_all_at(buf, offset).map_err(|e| {
            IoContext::new(
                &self.path,
                format!("write {} bytes at byte {offset}", buf.len()),
                e,
            )
        })?;
        Ok(())
    }

    /// Reads exactly `buf.len()` bytes at `offset`.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.check_range(offset, buf.len() as u64)?;
        self.file.read_exact_at(buf, offset).map_err(|e| {
            IoContext::new(
                &self.path,
                format!("read {} bytes at byte {offset}", buf.len()),
                e,
            )
        })?;
        Ok(())
    }

    /// Makes `[offset, offset+len)` read as zeros without writing them: a punched hole in a
    /// file (`FALLOC_FL_PUNCH_HOLE`), `BLKZEROOUT` on a block device (which the kernel turns
    /// into an unmap or write-zeroes command where the device guarantees zeros). Returns
    /// false, having done nothing, when the destination does not support it; the caller then
    /// writes zeros.
    pub fn discard_zeroes(&self, offset: u64, len: u64) -> Result<bool> {
        use std::os::fd::AsRawFd;
        self.check_range(offset, len)?;
        let fd = self.file.as_raw_fd();
        let res = match self.kind {
            DestKind::File => {
                let mode = nix::fcntl::FallocateFlags::FALLOC_FL_PUNCH_HOLE
                    | nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
                nix::fcntl::fallocate(&self.file, mode, offset as i64, len as i64).map(|_| ())
            }
            DestKind::BlockDevice => {
                let range = [offset, len];
                // SAFETY: BLKZEROOUT reads two u64 (start, length) through the pointer.
                unsafe { blkzeroout(fd, &range) }.map(|_| ())
            }
        };
        match res {
            Ok(()) => Ok(true),
            Err(nix::errno::Errno::EOPNOTSUPP)
            | Err(nix::errno::Errno::EINVAL)
            | Err(nix::errno::Errno::ENOTTY) => Ok(false),
            Err(e) => Err(Error::Io(IoContext::new(
                &self.path,
                format!("discard {len} bytes at byte {offset}"),
                std::io::Error::from(e),
            ))),
        }
    }

    /// Asks the kernel to drop this file's clean cached pages, so that later reads come from
    /// the device (used by verification after an `fdatasync`). Only this file is affected.
    pub fn drop_cache(&self) {
        let _ = nix::fcntl::posix_fadvise(
            &self.file,
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        );
    }

    /// Flushes written data to stable storage (`fdatasync`).
    pub fn sync(&self) -> Result<()> {
        if self.writable {
            self.file
                .sync_data()
                .map_err(|e| IoContext::new(&self.path, "fdatasync", e))?;
        }
        Ok(())
    }
}
