//! The read seam: parsers read through [`ReadAt`], so they run unchanged on files, block
//! devices and in-memory images (unit tests and fuzz targets); every path a user names is
//! opened through [`open_path`] (never blocking in the open, refusing FIFOs, sockets and
//! character devices where a file is needed) and told apart by [`FileId`] ([`Inputs`]: a job
//! never writes to a file it reads).

mod files;
pub mod link;

pub use files::{
    file_ids, open_path, path_ids, read_capped, read_file_capped, same_file, type_name, FileError,
    FileId, FileKind, Inputs, OpenMode, Opened, Written,
};

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Positioned reads from something of known length.
pub trait ReadAt: Sync {
    /// Fills `buf` from byte `offset`; fails with `UnexpectedEof` when the source is too short.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Total length in bytes.
    fn size(&self) -> io::Result<u64>;
}

impl ReadAt for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        crate::block::file_size(self)
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| eof())?;
        let end = start.checked_add(buf.len()).ok_or_else(eof)?;
        let src = self.get(start..end).ok_or_else(eof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

impl ReadAt for &[u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

fn eof() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "read past end of data")
}

/// How a [`SourceDevice`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// A block device opened with `O_DIRECT`: every read goes to the device, never to a
    /// possibly stale page-cache copy.
    Direct,
    /// A block device that refused `O_DIRECT`: buffered reads, each preceded by
    /// `posix_fadvise(POSIX_FADV_DONTNEED)` over its range, which drops this device's cached
    /// pages for that range (and nothing else) so the read goes to the device.
    DropCachedRange,
    /// A regular file: buffered reads (the page cache is the file's current content).
    Buffered,
}

impl ReadMode {
    /// Short description for verbose output.
    pub fn describe(self) -> &'static str {
        match self {
            ReadMode::Direct => "O_DIRECT",
            ReadMode::DropCachedRange => "buffered, dropping the range's cached pages first",
            ReadMode::Buffered => "buffered (regular file)",
        }
    }
}

/// An input (a snapshot's `-cow` device, an origin LV, a data source) opened so that reads see
/// what is on the device now.
///
/// Why: device-mapper writes a snapshot's exception store (and a mounted filesystem writes its
/// data) with bios that bypass the block device's page cache, so pages cached from an earlier
/// read of the device node can be stale. The original lvmsync wrote `3` to
/// `/proc/sys/vm/drop_caches` (every cache of the machine) to get around it; this reads block
/// devices with `O_DIRECT` instead, falling back to dropping only the range about to be read.
#[derive(Debug)]
pub struct SourceDevice {
    path: std::path::PathBuf,
    file: File,
    size: u64,
    mode: ReadMode,
    /// Alignment `O_DIRECT` needs for offsets, lengths and buffers (the logical block size).
    align: usize,
}

nix::ioctl_read_bad!(blksszget, 0x1268, libc::c_int);

/// Alignment used for direct-I/O buffers: a multiple of every logical block size met in
/// practice (512 and 4096).
pub const DIRECT_ALIGN: usize = 4096;

impl SourceDevice {
    /// Opens `path` read-only ([`open_path`]: a regular file or block device, never a FIFO
    /// or character device); a block device with `O_DIRECT` when it allows it.
    pub fn open(path: &std::path::Path) -> Result<Self, FileError> {
        let ctx = |op: &str, e| crate::IoContext::new(path, op, e);
        let opened = open_path(
            path,
            OpenMode {
                direct: true,
                ..OpenMode::READ
            },
        )?;
        let is_dev = opened.kind == FileKind::BlockDevice;
        let file = opened.file;
        let mode = match (is_dev, opened.direct) {
            (false, _) => ReadMode::Buffered,
            (true, true) => ReadMode::Direct,
            (true, false) => ReadMode::DropCachedRange,
        };
        let size = crate::block::file_size(&file).map_err(|e| ctx("get size", e))?;
        let mut align = 1usize;
        if is_dev {
            use std::os::fd::AsRawFd;
            let mut lbs: libc::c_int = 0;
            // SAFETY: BLKSSZGET writes one int through the pointer, valid for the call.
            if unsafe { blksszget(file.as_raw_fd(), &mut lbs) }.is_ok() && lbs > 0 {
                align = lbs as usize;
            } else {
                align = 512;
            }
        }
        Ok(SourceDevice {
            path: path.to_path_buf(),
            file,
            size,
            mode,
            align,
        })
    }

    /// The path it was opened as.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
    /// How reads are done.
    pub fn mode(&self) -> ReadMode {
        self.mode
    }
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.size
    }
    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Reads `buf.len()` bytes at `offset` into `buf`. With `O_DIRECT`, reads straight into
    /// `buf` when buffer, offset and length are aligned to the device's logical block size,
    /// and through an aligned bounce buffer otherwise.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size)
            .ok_or_else(eof)?;
        match self.mode {
            ReadMode::Buffered => FileExt::read_exact_at(&self.file, buf, offset),
            ReadMode::DropCachedRange => {
                use std::os::fd::AsRawFd;
                // SAFETY: plain syscall on an fd we own; advisory, failure is harmless.
                unsafe {
                    libc::posix_fadvise(
                        self.file.as_raw_fd(),
                        offset as libc::off_t,
                        buf.len() as libc::off_t,
                        libc::POSIX_FADV_DONTNEED,
                    );
                }
                FileExt::read_exact_at(&self.file, buf, offset)
            }
            ReadMode::Direct => {
                let a = self.align as u64;
                if (buf.as_ptr() as usize).is_multiple_of(self.align)
                    && offset.is_multiple_of(a)
                    && (buf.len() as u64).is_multiple_of(a)
                {
                    return FileExt::read_exact_at(&self.file, buf, offset);
                }
                let start = offset / a * a;
                let stop = end.div_ceil(a) * a;
                let stop = stop.min(self.size.div_ceil(a) * a);
                let mut bounce = AlignedBuf::new((stop - start) as usize);
                let want = (end - start) as usize;
                // The device size is a multiple of the logical block size, so `stop` is
                // inside the device unless the size is odd (then the tail read is short).
                let mut got = 0usize;
                while got < want {
                    let n = FileExt::read_at(&self.file, &mut bounce[got..], start + got as u64)?;
                    if n == 0 {
                        return Err(eof());
                    }
                    got += n;
                }
                let skip = (offset - start) as usize;
                buf.copy_from_slice(&bounce[skip..skip + buf.len()]);
                Ok(())
            }
        }
    }
}

impl ReadAt for SourceDevice {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_at(buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }
}

/// A zeroed byte buffer aligned to [`DIRECT_ALIGN`], as `O_DIRECT` reads need.
pub struct AlignedBuf {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: AlignedBuf owns its allocation exclusively, like a Vec<u8>.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only hands out &[u8].
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes (at least one alignment unit is allocated).
    pub fn new(len: usize) -> Self {
        let layout = Self::layout(len);
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr =
            std::ptr::NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        AlignedBuf { ptr, len }
    }
    fn layout(len: usize) -> std::alloc::Layout {
        let size = len.max(1).div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
        std::alloc::Layout::from_size_align(size, DIRECT_ALIGN)
            .unwrap_or_else(|_| std::alloc::handle_alloc_error(std::alloc::Layout::new::<u8>()))
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True when the length is 0.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr is valid for len bytes (the allocation is at least that big) and zeroed.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and we hold &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this same layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.len)) }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} bytes)", self.len)
    }
}

/// A pipe, socket or file descriptor that may be in non-blocking mode (Ruby creates its pipes
/// that way): reads and writes that would block wait in `poll()` and retry, instead of
/// failing with `EAGAIN`. The descriptor's flags are left as they are, since other holders
/// of the same open file may rely on them.
///
/// With [`WaitingFile::cancelled_by`], every wait is a `poll()` of at most 200 ms that checks
/// the job's cancel flag, and writes to a pipe never ask for more than the pipe has room for,
/// so a stalled peer can never keep the job from seeing Ctrl-C: the call then fails (with an
/// error of kind `Other`, which retry loops do not swallow as they would `Interrupted`), and
/// the caller, seeing the cancel flag, reports the interruption.
#[derive(Debug)]
pub struct WaitingFile<'a> {
    file: File,
    pipe: bool,
    cancel: Option<&'a crate::Progress>,
}

const POLL_SLICE_MS: libc::c_int = 200;

fn cancelled() -> io::Error {
    io::Error::other("interrupted")
}

impl<'a> WaitingFile<'a> {
    /// Wraps `file`; when it is a pipe, asks the kernel for a 1 MiB pipe buffer, so a record
    /// fits in the pipe and the two ends switch less often. Best effort: the stream works with
    /// any buffer size.
    pub fn new(file: File) -> Self {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::FileTypeExt;
        let pipe = file.metadata().is_ok_and(|m| m.file_type().is_fifo());
        if pipe {
            // SAFETY: fcntl on an fd we own; failure only leaves the size unchanged.
            unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
        }
        WaitingFile {
            file,
            pipe,
            cancel: None,
        }
    }

    /// Makes every wait check `progress`'s cancel flag (see the type's documentation).
    pub fn cancelled_by(mut self, progress: &'a crate::Progress) -> Self {
        self.cancel = Some(progress);
        self
    }

    /// The file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Waits until `events` are ready; with a cancel flag, in slices that check it.
    fn wait(&self, events: libc::c_short) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        loop {
            let mut p = libc::pollfd {
                fd: self.file.as_raw_fd(),
                events,
                revents: 0,
            };
            let slice = if self.cancel.is_some() {
                POLL_SLICE_MS
            } else {
                1000
            };
            // SAFETY: one valid pollfd; the result only decides when to go on.
            let r = unsafe { libc::poll(&mut p, 1, slice) };
            if self.cancel.is_some_and(|c| c.is_cancelled()) {
                return Err(cancelled());
            }
            // Ready (or an error the next read or write reports), or no cancel flag to
            // watch; a signal (EINTR) or a timeout means: look at the flag again.
            let interrupted =
                r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted;
            if (r > 0 || r < 0 && !interrupted) || self.cancel.is_none() {
                return Ok(());
            }
        }
    }

    /// Bytes a write to this pipe can take without blocking (at least 1).
    fn pipe_room(&self) -> usize {
        use std::os::fd::AsRawFd;
        let fd = self.file.as_raw_fd();
        // SAFETY: plain fcntl/ioctl queries on an fd we own.
        let size = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int through the pointer.
        let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) };
        if size <= 0 || r < 0 {
            return usize::MAX;
        }
        (size as usize)
            .saturating_sub(queued.max(0) as usize)
            .max(1)
    }
}

impl io::Read for WaitingFile<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.cancel.is_some() {
                self.wait(libc::POLLIN)?;
            }
            match io::Read::read(&mut self.file, buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait(libc::POLLIN)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }
}

impl io::Write for WaitingFile<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        loop {
            let mut limited: Vec<io::IoSlice<'_>>;
            let mut slices = bufs;
            if self.cancel.is_some() {
                self.wait(libc::POLLOUT)?;
                if self.pipe {
                    let mut room = self.pipe_room();
                    limited = Vec::with_capacity(bufs.len());
                    for b in bufs {
                        if room == 0 {
                            break;
                        }
                        let n = b.len().min(room);
                        limited.push(io::IoSlice::new(&b[..n]));
                        room -= n;
                    }
                    slices = &limited;
                }
            }
            match io::Write::write_vectored(&mut self.file, slices) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait(libc::POLLOUT)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
