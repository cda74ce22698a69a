//! Raw Ethernet frames written on an AF_PACKET socket, to move a test interface's counters
//! without any IP configuration. Optionally from inside a network namespace (the whole
//! process enters it: this is a one-shot command-line helper).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// What to send.
#[derive(Debug, Clone)]
pub struct FrameSpec {
    /// Interface to send on.
    pub dev: String,
    /// Number of frames.
    pub count: u64,
    /// Frame length in bytes, Ethernet header included (60..=1514).
    pub size: usize,
    /// EtherType (0x0800 reaches IPv4 and is dropped there without touching the device's drop
    /// counter; an EtherType no protocol handles, such as 0x88b5, counts as rx_dropped).
    pub ethertype: u16,
    /// Destination MAC.
    pub dst: [u8; 6],
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Enters the network namespace at `path` (the calling thread; call before starting threads).
pub fn enter_netns(path: &Path) -> io::Result<()> {
    let f = File::open(path)?;
    // SAFETY: plain setns(2) on an open namespace file.
    check(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) })?;
    Ok(())
}

/// Sends the frames; returns the bytes sent.
pub fn send(spec: &FrameSpec) -> io::Result<u64> {
    if !(60..=1514).contains(&spec.size) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame size must be 60..=1514",
        ));
    }
    let name = CString::new(spec.dev.as_str())?;
    // SAFETY: name is a valid C string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: plain socket(2); protocol 0 so the socket receives nothing.
    let fd =
        check(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
    let mut frame = vec![0u8; spec.size];
    frame[..6].copy_from_slice(&spec.dst);
    frame[6..12].copy_from_slice(&[0x02, 0, 0, 0x15, 0x4e, 0xd0]);
    frame[12..14].copy_from_slice(&spec.ethertype.to_be_bytes());
    // SAFETY: sockaddr_ll is plain data; zero is a valid start.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&spec.dst);
    let mut sent = 0u64;
    let result = (|| {
        for _ in 0..spec.count {
            // SAFETY: frame and sll are valid for the call.
            let n = check(unsafe {
                libc::sendto(
                    fd,
                    frame.as_ptr() as *const libc::c_void,
                    frame.len(),
                    0,
                    &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                ) as libc::c_int
            })?;
            sent += n as u64;
        }
        Ok(sent)
    })();
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    result
}
