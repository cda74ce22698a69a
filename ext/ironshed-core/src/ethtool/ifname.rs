//! Interface names, checked before they reach the kernel.

use super::error::{Error, Result};
use std::fmt;

/// Size of `ifr_name` in `struct ifreq`, including the terminating NUL.
pub const IFNAMSIZ: usize = 16;

/// A network interface name that the kernel will look up exactly as written.
///
/// SIOCETHTOOL copies 16 bytes into `ifr_name` and forces the last one to NUL, so a name of 16
/// bytes or more is silently cut to 15 and may query a *different* interface; it also cuts the
/// name at the first `:` (an old-style address label such as `eth0:1` queries `eth0`). Such
/// names, and names the kernel would never give a device (empty, `.`, `..`, containing `/` or
/// whitespace), are refused here.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IfName {
    bytes: [u8; IFNAMSIZ],
    len: usize,
}

impl IfName {
    /// Validates `name` (raw bytes, as from a Ruby String).
    pub fn new(name: &[u8]) -> Result<Self> {
        let refuse = |reason: String| Error::InvalidName {
            name: String::from_utf8_lossy(name).into_owned(),
            reason,
        };
        if name.is_empty() {
            return Err(refuse("empty".into()));
        }
        if name.len() >= IFNAMSIZ {
            return Err(refuse(format!(
                "{} bytes; interface names have at most {} (the kernel would silently query \
                 the interface named by the first {})",
                name.len(),
                IFNAMSIZ - 1,
                IFNAMSIZ - 1
            )));
        }
        if name == b"." || name == b".." {
            return Err(refuse("not a device name".into()));
        }
        if let Some(&c) = name
            .iter()
            .find(|&&c| c == 0 || c == b'/' || c == b':' || c.is_ascii_whitespace())
        {
            let why = match c {
                0 => "contains a NUL byte".to_string(),
                b':' => "contains ':' (an address label such as eth0:1 is not a device; the \
                         kernel would query the part before the ':')"
                    .to_string(),
                b'/' => "contains '/'".to_string(),
                _ => "contains whitespace".to_string(),
            };
            return Err(refuse(why));
        }
        let mut bytes = [0u8; IFNAMSIZ];
        bytes[..name.len()].copy_from_slice(name);
        Ok(IfName {
            bytes,
            len: name.len(),
        })
    }

    /// The name's bytes (no NUL).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The 16-byte, NUL-padded `ifr_name` field.
    pub fn ifr_name(&self) -> [u8; IFNAMSIZ] {
        self.bytes
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IfName({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in [
            "eth0",
            "lo",
            "enp0s31f6",
            "vethABCDEFGHIJK",
            "br-lan.100",
            "wlp2s0",
        ] {
            let i = IfName::new(n.as_bytes()).unwrap();
            assert_eq!(i.as_bytes(), n.as_bytes());
            assert_eq!(i.ifr_name()[n.len()], 0);
        }
    }

    #[test]
    fn refuses_names_the_kernel_would_truncate_or_cut() {
        let long = IfName::new(b"vethABCDEFGHIJKZ").unwrap_err().to_string();
        assert!(long.contains("16 bytes"), "{long}");
        assert!(IfName::new(b"").is_err());
        assert!(IfName::new(b"eth0:1")
            .unwrap_err()
            .to_string()
            .contains("':'"));
        assert!(IfName::new(b"a/b").is_err());
        assert!(IfName::new(b"a b").is_err());
        assert!(IfName::new(b"a\0b").is_err());
        assert!(IfName::new(b"..").is_err());
    }
}
