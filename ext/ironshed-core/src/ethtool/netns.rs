//! Network namespaces: which one a query targets, and running a short piece of work inside it.
//!
//! The kernel looks an interface name up in the namespace of the *socket* the ioctl is issued
//! on, and a socket belongs to the namespace of the thread that created it. So a query into a
//! namespace creates its socket (and opens that namespace's `/proc/net/dev`) on a short-lived
//! thread that has entered the namespace with `setns(2)`; the thread then exits. The calling
//! thread never changes namespace.

use super::error::{Error, Result};
use crate::io::type_name;
use nix::sys::statfs::{FsType, NSFS_MAGIC};
use std::fs::{File, FileType, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// Where named namespaces live (`ip netns add NAME` bind-mounts them here).
pub const NETNS_RUN_DIR: &str = "/var/run/netns";

/// A network namespace to query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Netns {
    /// A named namespace, as `ip netns` manages them (`/var/run/netns/NAME`).
    Name(String),
    /// The namespace of a process (`/proc/PID/ns/net`).
    Pid(u32),
    /// A namespace file (a bind mount or `/proc/PID/ns/net`).
    Path(PathBuf),
}

impl Netns {
    /// Validates a namespace name the way `ip netns` would accept it.
    pub fn name(name: &str) -> Result<Self> {
        let bad = |reason| {
            Err(Error::InvalidNetns {
                ns: name.to_string(),
                reason,
            })
        };
        if name.is_empty() {
            return bad("empty");
        }
        if name == "." || name == ".." || name.contains('/') || name.contains('\0') {
            return bad("a namespace name cannot be '.', '..' or contain '/' or NUL");
        }
        Ok(Netns::Name(name.to_string()))
    }

    /// The namespace a caller names: `text` is a name as `ip netns` manages them ("blue"), or
    /// a namespace file's path when it contains a `/` ("/proc/1234/ns/net"); `pid` a process
    /// whose namespace to use; `path` a namespace file. At most one may be given; none means
    /// the caller's own namespace.
    pub fn select(
        text: Option<&str>,
        pid: Option<u32>,
        path: Option<PathBuf>,
    ) -> Result<Option<Self>> {
        match (text, pid, path) {
            (None, None, None) => Ok(None),
            (Some(t), None, None) if t.contains('/') => Ok(Some(Netns::Path(PathBuf::from(t)))),
            (Some(t), None, None) => Netns::name(t).map(Some),
            (None, Some(p), None) => Ok(Some(Netns::Pid(p))),
            (None, None, Some(p)) => Ok(Some(Netns::Path(p))),
            _ => Err(Error::InvalidNetns {
                ns: String::new(),
                reason: "give one of a name, a process id or a path",
            }),
        }
    }

    /// The file to open.
    pub fn path(&self) -> PathBuf {
        match self {
            Netns::Name(n) => PathBuf::from(NETNS_RUN_DIR).join(n),
            Netns::Pid(p) => PathBuf::from(format!("/proc/{p}/ns/net")),
            Netns::Path(p) => p.clone(),
        }
    }

    /// Human description for messages: "network namespace blue (/var/run/netns/blue)".
    pub fn describe(&self) -> String {
        match self {
            Netns::Name(n) => format!("network namespace {n} ({})", self.path().display()),
            Netns::Pid(p) => format!(
                "network namespace of process {p} ({})",
                self.path().display()
            ),
            Netns::Path(p) => format!("network namespace {}", p.display()),
        }
    }

    /// Opens the namespace file, so that later work enters exactly this namespace even if
    /// the name is re-pointed meanwhile.
    ///
    /// The path must name a regular file, looked at before it is opened (opening a device
    /// may have effects; opening a FIFO waits for a writer, where no timeout or signal could
    /// end it); it is then opened non-blocking (it may have been swapped meanwhile) and must be
    /// a namespace file (nsfs).
    pub fn open(&self) -> Result<OpenNetns> {
        let sys = |op: &str, source| Error::System {
            what: self.describe(),
            op: op.to_string(),
            source,
        };
        let refuse = |why: String| sys("open", io::Error::new(io::ErrorKind::InvalidInput, why));
        let before = std::fs::metadata(self.path()).map_err(|e| sys("open", e))?;
        if let Some(why) = not_a_file(before.file_type()) {
            return Err(refuse(why));
        }
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(self.path())
            .map_err(|e| sys("open", e))?;
        let meta = file.metadata().map_err(|e| sys("stat", e))?;
        let fs = nix::sys::statfs::fstatfs(&file).map_err(|e| sys("statfs", e.into()))?;
        if let Some(why) = not_a_namespace(meta.file_type(), fs.filesystem_type()) {
            return Err(refuse(why));
        }
        Ok(OpenNetns {
            file,
            what: self.describe(),
        })
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns its result.
    /// `f` reports failures as `(operation, io::Error)`.
    pub fn run<R, F>(&self, f: F) -> Result<R>
    where
        R: Send,
        F: FnOnce() -> std::result::Result<R, (String, io::Error)> + Send,
    {
        self.open()?.run(f)
    }
}

/// Why a file of this kind cannot be a namespace file, or None for a regular file.
fn not_a_file(kind: FileType) -> Option<String> {
    (!kind.is_file()).then(|| format!("not a network namespace file: {}", type_name(kind)))
}

/// Why a file opened as a namespace is not one, or None when it is a namespace file (a
/// regular file on nsfs, as `/proc/PID/ns/net` and the bind mounts of `ip netns` are).
fn not_a_namespace(kind: FileType, fs: FsType) -> Option<String> {
    if let Some(why) = not_a_file(kind) {
        return Some(why);
    }
    (fs != NSFS_MAGIC).then(|| {
        "not a network namespace file: a file outside the namespace filesystem (nsfs)".into()
    })
}

/// An opened network namespace.
#[derive(Debug)]
pub struct OpenNetns {
    file: File,
    what: String,
}

impl OpenNetns {
    /// Human description for messages.
    pub fn describe(&self) -> &str {
        &self.what
    }

    /// Runs `f` on a new, short-lived thread that has entered this namespace (the calling
    /// thread never changes namespace) and returns its result.
    pub fn run<R, F>(&self, f: F) -> Result<R>
    where
        R: Send,
        F: FnOnce() -> std::result::Result<R, (String, io::Error)> + Send,
    {
        let sys = |op: &str, source| Error::System {
            what: self.what.clone(),
            op: op.to_string(),
            source,
        };
        let file = &self.file;
        let out = std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| ("enter (setns)".to_string(), io::Error::from(e)))?;
                f()
            })
            .join()
        });
        match out {
            Ok(Ok(r)) => Ok(r),
            Ok(Err((op, e))) => Err(sys(&op, e)),
            Err(_) => Err(sys(
                "run",
                io::Error::other("the namespace thread panicked"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert_eq!(
            Netns::name("blue").unwrap().path(),
            PathBuf::from("/var/run/netns/blue")
        );
        assert!(Netns::name("../etc").is_err());
        assert!(Netns::name("").is_err());
        assert!(Netns::name("..").is_err());
        assert_eq!(Netns::Pid(1).path(), PathBuf::from("/proc/1/ns/net"));
    }

    #[test]
    fn missing_namespace_is_enoent_naming_it() {
        let e = Netns::name("ironshed-no-such-ns")
            .unwrap()
            .run(|| Ok(()))
            .unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOENT));
        assert!(e.to_string().contains("ironshed-no-such-ns"), "{e}");
    }

    #[test]
    fn a_fifo_or_plain_file_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("ns");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // No writer: a blocking open would never return.
        let e = Netns::Path(fifo.clone()).open().unwrap_err();
        assert_eq!(e.errno(), None);
        assert_eq!(
            e.to_string(),
            format!(
                "network namespace {}: open: not a network namespace file: a FIFO",
                fifo.display()
            )
        );
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"").unwrap();
        let e = Netns::Path(plain).open().unwrap_err();
        assert!(
            e.to_string()
                .ends_with("a file outside the namespace filesystem (nsfs)"),
            "{e}"
        );
        let e = Netns::Path("/dev/null".into()).open().unwrap_err();
        assert!(e.to_string().ends_with("a character device"), "{e}");
        // A device is refused by its stat, never opened: /dev/tty without a controlling
        // terminal (as here under the test harness) would fail to open with ENXIO.
        let e = Netns::Path("/dev/tty".into()).open().unwrap_err();
        assert_eq!(e.errno(), None, "{e}");
        assert!(e.to_string().ends_with("a character device"), "{e}");
        let e = Netns::Path(dir.path().into()).open().unwrap_err();
        assert!(e.to_string().ends_with("a directory"), "{e}");
    }

    #[test]
    fn own_namespace_via_pid_runs_the_closure() {
        let me = std::process::id();
        assert_eq!(Netns::Pid(me).run(|| Ok(42)).unwrap(), 42);
    }
}
