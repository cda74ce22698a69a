//! The SIOCETHTOOL transport: an ioctl on a datagram socket, with the buffer checked first.

use super::codec;
use super::error::{Error, Result};
use super::ifname::IfName;
use super::netns::OpenNetns;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

/// Issues ethtool commands. The real one is [`IoctlSocket`]; tests supply a simulated kernel.
pub trait Transport {
    /// Issues SIOCETHTOOL for `ifname` with `buf`, which starts with the command number; the
    /// kernel reads and writes `buf` in place.
    fn ethtool(&self, ifname: &IfName, buf: &mut [u8]) -> io::Result<()>;
}

/// The raw ioctl wrappers (private: only the checked methods below call them).
mod sys {
    nix::ioctl_readwrite_bad!(
        /// SIOCETHTOOL with an `ifreq` whose `ifr_data` points at the command buffer.
        siocethtool,
        libc::SIOCETHTOOL,
        libc::ifreq
    );
    nix::ioctl_readwrite_bad!(
        /// SIOCGIFFLAGS: interface flags into `ifr_flags`.
        siocgifflags,
        libc::SIOCGIFFLAGS,
        libc::ifreq
    );
    nix::ioctl_readwrite_bad!(
        /// SIOCGIFINDEX: interface index into `ifr_ifindex`.
        siocgifindex,
        libc::SIOCGIFINDEX,
        libc::ifreq
    );
}
use sys::{siocethtool, siocgifflags, siocgifindex};

fn ifreq(ifname: &IfName) -> libc::ifreq {
    // SAFETY: ifreq is plain old data (bytes, integers, a pointer); all-zero is valid.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in r.ifr_name.iter_mut().zip(ifname.ifr_name()) {
        *d = s as libc::c_char;
    }
    r
}

/// A datagram socket in some network namespace, on which SIOCETHTOOL (and SIOCGIFFLAGS,
/// SIOCGIFINDEX) are issued.
#[derive(Debug)]
pub struct IoctlSocket {
    fd: OwnedFd,
}

impl IoctlSocket {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2) call; the result is checked before it is owned.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        Ok(IoctlSocket {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Interface flags (`SIOCGIFFLAGS`: IFF_UP 0x1, IFF_RUNNING 0x40...; low 16 bits).
    pub fn if_flags(&self, ifname: &IfName) -> io::Result<u16> {
        let mut r = ifreq(ifname);
        // SAFETY: r is a valid ifreq for the duration of the call; the kernel writes ifr_flags.
        unsafe { siocgifflags(self.fd.as_raw_fd(), &mut r) }.map_err(io::Error::from)?;
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        Ok(unsafe { r.ifr_ifru.ifru_flags } as u16)
    }

    /// Interface index (`SIOCGIFINDEX`).
    pub fn if_index(&self, ifname: &IfName) -> io::Result<u32> {
        let mut r = ifreq(ifname);
        // SAFETY: as above; the kernel writes ifr_ifindex.
        unsafe { siocgifindex(self.fd.as_raw_fd(), &mut r) }.map_err(io::Error::from)?;
        // SAFETY: SIOCGIFINDEX filled the ifindex member of the union.
        Ok(unsafe { r.ifr_ifru.ifru_ifindex } as u32)
    }
}

impl Transport for IoctlSocket {
    fn ethtool(&self, ifname: &IfName, buf: &mut [u8]) -> io::Result<()> {
        // The kernel decides how much to write from the command and the counts in the header;
        // never hand it a buffer shorter than that.
        match codec::required_len(buf) {
            Some(n) if n <= buf.len() => {}
            Some(n) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "buffer of {} bytes is shorter than the {n} this command needs",
                        buf.len()
                    ),
                ))
            }
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "command not issued by this library, or a header with a count of 0",
                ))
            }
        }
        let mut r = ifreq(ifname);
        r.ifr_ifru.ifru_data = buf.as_mut_ptr() as *mut libc::c_char;
        // SAFETY: ifr_data points at `buf`, which is at least as long as the kernel will read
        // or write for this command (checked above) and outlives the call.
        unsafe { siocethtool(self.fd.as_raw_fd(), &mut r) }.map_err(io::Error::from)?;
        Ok(())
    }
}

/// A namespace's `/proc/net/dev`, opened once (from inside the namespace when one is named)
/// and re-read from the start on every call.
#[derive(Debug)]
pub struct NetDevFile {
    file: File,
}

impl NetDevFile {
    /// Opens the calling thread's `/proc/thread-self/net/dev`.
    pub fn open() -> io::Result<Self> {
        Ok(NetDevFile {
            file: File::open("/proc/thread-self/net/dev")?,
        })
    }

    /// Reads the whole file afresh.
    pub fn read(&self) -> io::Result<String> {
        let mut out = Vec::with_capacity(4096);
        let mut chunk = vec![0u8; 16384];
        loop {
            let n = self.file.read_at(&mut chunk, out.len() as u64)?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// Opens a socket in `netns` (or in the calling thread's namespace).
pub fn open_socket(netns: Option<&OpenNetns>) -> Result<IoctlSocket> {
    let open = || IoctlSocket::open().map_err(|e| ("socket".to_string(), e));
    in_netns(netns, open)
}

/// Opens `/proc/net/dev` of `netns` (or of the calling thread's namespace).
pub fn open_netdev(netns: Option<&OpenNetns>) -> Result<NetDevFile> {
    let open = || NetDevFile::open().map_err(|e| ("open /proc/thread-self/net/dev".to_string(), e));
    in_netns(netns, open)
}

fn in_netns<R: Send>(
    netns: Option<&OpenNetns>,
    f: impl FnOnce() -> std::result::Result<R, (String, io::Error)> + Send,
) -> Result<R> {
    match netns {
        Some(ns) => ns.run(f),
        None => f().map_err(|(op, source)| Error::System {
            what: "current network namespace".into(),
            op,
            source,
        }),
    }
}
