//! ethtool queries over the SIOCETHTOOL ioctl: driver info, link settings with every link
//! mode, link state, rings, channels, pause, coalescing, the permanent address, string sets
//! and NIC statistics, plus the standard interface counters.
//!
//! * [`codec`]: typed encoders/decoders of the ethtool structures (never panic on a reply).
//! * [`link_modes`]: the link-mode table and the classification of mode names.
//! * [`settings`]: what the numeric fields of link settings mean (ports, duplex, MDI-X...).
//! * [`transport`]: the ioctl socket ([`IoctlSocket`]) behind the [`Transport`] seam.
//! * [`netns`]: queries into another network namespace without moving the calling thread.
//! * [`netdev`]: `/proc/net/dev` counters.
//!
//! [`Ethtool`] holds the protocol logic (the `link_mode_masks_nwords` handshake, the GSET
//! fallback, re-reading a string set whose size changed between calls) over any transport;
//! [`Session`] is an `Ethtool` on a real socket in a chosen namespace.

pub mod codec;
mod error;
mod ifname;
pub mod link_modes;
pub mod netdev;
pub mod netns;
pub mod settings;
pub mod transport;

pub use codec::{Channels, Coalesce, DrvInfo, LinkSettings, PauseParam, RingParam, SettingsSource};
pub use error::{DecodeError, Error, Result};
pub use ifname::{IfName, IFNAMSIZ};
pub use link_modes::{Duplex, Kind, LinkMode, ModeMask};
pub use netdev::Counters;
pub use netns::{Netns, OpenNetns};
pub use transport::{IoctlSocket, NetDevFile, Transport};

use codec::{cmd, sset};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

/// How many times a read is retried when the kernel says a count changed under it.
pub const MAX_ATTEMPTS: usize = 5;

/// An operation, for messages: "get ring parameters (ETHTOOL_GRINGPARAM)".
fn op(what: &str, name: &str) -> String {
    format!("{what} ({name})")
}

/// ethtool commands over a [`Transport`].
#[derive(Debug)]
pub struct Ethtool<T> {
    transport: T,
    /// The link-mode word count the kernel asked for last (0: not known yet). The first
    /// GLINKSETTINGS of a later query starts with it; if the kernel wants another count it
    /// says so and the handshake runs again.
    nwords_hint: AtomicU8,
}

impl<T: Transport> Ethtool<T> {
    /// Wraps a transport.
    pub fn new(transport: T) -> Self {
        Ethtool {
            transport,
            nwords_hint: AtomicU8::new(0),
        }
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    fn call(&self, ifname: &IfName, what: &str, name: &str, buf: &mut [u8]) -> Result<()> {
        self.transport
            .ethtool(ifname, buf)
            .map_err(|source| Error::Ioctl {
                iface: ifname.to_string(),
                op: op(what, name),
                source,
            })
    }

    fn decode_err(ifname: &IfName, what: &str, name: &str, e: DecodeError) -> Error {
        Error::kernel(
            &ifname.to_string(),
            &op(what, name),
            format!("unexpected reply: {e}"),
        )
    }

    /// Driver information (ETHTOOL_GDRVINFO).
    pub fn drvinfo(&self, ifname: &IfName) -> Result<DrvInfo> {
        const W: (&str, &str) = ("get driver information", "ETHTOOL_GDRVINFO");
        let mut b = codec::encode_drvinfo_request();
        self.call(ifname, W.0, W.1, &mut b)?;
        codec::decode_drvinfo(&b).map_err(|e| Self::decode_err(ifname, W.0, W.1, e))
    }

    /// Whether the link is up (ETHTOOL_GLINK).
    pub fn link_up(&self, ifname: &IfName) -> Result<bool> {
        const W: (&str, &str) = ("get link status", "ETHTOOL_GLINK");
        let mut b = codec::encode_value(cmd::GLINK, 0);
        self.call(ifname, W.0, W.1, &mut b)?;
        codec::decode_value(&b, cmd::GLINK)
            .map(|v| v != 0)
            .map_err(|e| Self::decode_err(ifname, W.0, W.1, e))
    }

    /// Link settings: ETHTOOL_GLINKSETTINGS with the word-count handshake, or the legacy
    /// ETHTOOL_GSET when the kernel or driver does not support the former.
    pub fn link_settings(&self, ifname: &IfName) -> Result<LinkSettings> {
        match self.glinksettings(ifname) {
            Err(Error::Ioctl { source, .. }) if source.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                const W: (&str, &str) = (
                    "get link settings",
                    "ETHTOOL_GLINKSETTINGS, then ETHTOOL_GSET",
                );
                let mut b = codec::encode_legacy_request();
                self.call(ifname, W.0, W.1, &mut b)?;
                codec::decode_legacy(&b).map_err(|e| Self::decode_err(ifname, W.0, W.1, e))
            }
            other => other,
        }
    }

    fn glinksettings(&self, ifname: &IfName) -> Result<LinkSettings> {
        const W: (&str, &str) = ("get link settings", "ETHTOOL_GLINKSETTINGS");
        // First request: the count learnt earlier, or 0 words, which the kernel answers with
        // -N (N = the words it wants); any other wrong count gets the same answer.
        let mut nwords: u8 = self.nwords_hint.load(Ordering::Relaxed);
        for _ in 0..MAX_ATTEMPTS {
            let mut b = codec::encode_link_settings_request(nwords);
            self.call(ifname, W.0, W.1, &mut b)?;
            match codec::decode_link_settings(&b, nwords)
                .map_err(|e| Self::decode_err(ifname, W.0, W.1, e))?
            {
                codec::LinkSettingsReply::Settings(s) => {
                    self.nwords_hint.store(nwords, Ordering::Relaxed);
                    return Ok(s);
                }
                codec::LinkSettingsReply::NeedWords(n) => {
                    if n == 0 || n > i8::MAX as u32 {
                        return Err(Error::kernel(
                            &ifname.to_string(),
                            &op(W.0, W.1),
                            format!(
                                "kernel asks for {n} link-mode words per mask (1..=127 possible)"
                            ),
                        ));
                    }
                    nwords = n as u8;
                }
            }
        }
        Err(Error::kernel(
            &ifname.to_string(),
            &op(W.0, W.1),
            format!(
                "the link_mode_masks_nwords handshake did not settle in {MAX_ATTEMPTS} requests"
            ),
        ))
    }

    fn fixed<S>(
        &self,
        ifname: &IfName,
        what: &str,
        name: &str,
        mut buf: Vec<u8>,
        decode: impl Fn(&[u8]) -> std::result::Result<S, DecodeError>,
    ) -> Result<S> {
        self.call(ifname, what, name, &mut buf)?;
        decode(&buf).map_err(|e| Self::decode_err(ifname, what, name, e))
    }

    /// Ring sizes (ETHTOOL_GRINGPARAM).
    pub fn rings(&self, ifname: &IfName) -> Result<RingParam> {
        self.fixed(
            ifname,
            "get ring parameters",
            "ETHTOOL_GRINGPARAM",
            RingParam::default().encode(cmd::GRINGPARAM),
            |b| RingParam::decode(b, cmd::GRINGPARAM),
        )
    }

    /// Sets ring sizes (ETHTOOL_SRINGPARAM; needs CAP_NET_ADMIN).
    pub fn set_rings(&self, ifname: &IfName, r: &RingParam) -> Result<()> {
        let mut b = r.encode(cmd::SRINGPARAM);
        self.call(ifname, "set ring parameters", "ETHTOOL_SRINGPARAM", &mut b)
    }

    /// Changes the ring sizes named in `changes` (only [`RingParam::SETTABLE`] fields; any
    /// other name is refused before a system call): reads the current sizes, issues
    /// SRINGPARAM with the given ones changed (nothing when none differs), and returns the
    /// sizes read back, which drivers may have rounded.
    pub fn update_rings(&self, ifname: &IfName, changes: &[(String, u32)]) -> Result<RingParam> {
        self.update(
            ifname,
            changes,
            RingParam::SETTABLE,
            Self::rings,
            RingParam::set,
            Self::set_rings,
        )
    }

    /// Channel counts (ETHTOOL_GCHANNELS).
    pub fn channels(&self, ifname: &IfName) -> Result<Channels> {
        self.fixed(
            ifname,
            "get channels",
            "ETHTOOL_GCHANNELS",
            Channels::default().encode(cmd::GCHANNELS),
            |b| Channels::decode(b, cmd::GCHANNELS),
        )
    }

    /// Sets channel counts (ETHTOOL_SCHANNELS; needs CAP_NET_ADMIN).
    pub fn set_channels(&self, ifname: &IfName, c: &Channels) -> Result<()> {
        let mut b = c.encode(cmd::SCHANNELS);
        self.call(ifname, "set channels", "ETHTOOL_SCHANNELS", &mut b)
    }

    /// Changes the channel counts named in `changes`, like [`Ethtool::update_rings`].
    pub fn update_channels(&self, ifname: &IfName, changes: &[(String, u32)]) -> Result<Channels> {
        self.update(
            ifname,
            changes,
            Channels::SETTABLE,
            Self::channels,
            Channels::set,
            Self::set_channels,
        )
    }

    /// The read-modify-write of [`Ethtool::update_rings`] for a structure read with `get`,
    /// changed field by field with `change`, and written with `put`.
    fn update<S: Copy + PartialEq>(
        &self,
        ifname: &IfName,
        changes: &[(String, u32)],
        settable: &'static [&'static str],
        get: impl Fn(&Self, &IfName) -> Result<S>,
        change: impl Fn(&mut S, &str, u32) -> std::result::Result<(), codec::FieldError>,
        put: impl Fn(&Self, &IfName, &S) -> Result<()>,
    ) -> Result<S> {
        if let Some((name, _)) = changes
            .iter()
            .find(|(k, _)| !settable.contains(&k.as_str()))
        {
            return Err(Error::Field {
                name: name.clone(),
                settable,
            });
        }
        let current = get(self, ifname)?;
        let mut wanted = current;
        for (name, value) in changes {
            change(&mut wanted, name, *value)?;
        }
        if wanted == current {
            return Ok(current);
        }
        put(self, ifname, &wanted)?;
        get(self, ifname)
    }

    /// Issues a caller-built ethtool command (rethtool 0.0.8's `Rethtool.ioctl`): `buf`
    /// starts with the command number and holds the reply afterwards. The transport refuses
    /// commands whose reply size it cannot bound, and buffers shorter than the reply.
    pub fn raw(&self, ifname: &IfName, buf: &mut [u8]) -> Result<()> {
        let command = buf
            .get(..4)
            .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        self.transport
            .ethtool(ifname, buf)
            .map_err(|source| Error::Ioctl {
                iface: ifname.to_string(),
                op: format!("ioctl SIOCETHTOOL (command {command:#x})"),
                source,
            })
    }

    /// Pause frame settings (ETHTOOL_GPAUSEPARAM).
    pub fn pause(&self, ifname: &IfName) -> Result<PauseParam> {
        self.fixed(
            ifname,
            "get pause parameters",
            "ETHTOOL_GPAUSEPARAM",
            PauseParam::default().encode(cmd::GPAUSEPARAM),
            |b| PauseParam::decode(b, cmd::GPAUSEPARAM),
        )
    }

    /// Interrupt coalescing (ETHTOOL_GCOALESCE).
    pub fn coalesce(&self, ifname: &IfName) -> Result<Coalesce> {
        self.fixed(
            ifname,
            "get coalescing parameters",
            "ETHTOOL_GCOALESCE",
            Coalesce::default().encode(cmd::GCOALESCE),
            |b| Coalesce::decode(b, cmd::GCOALESCE),
        )
    }

    /// The permanent hardware address (ETHTOOL_GPERMADDR); all zeros for devices without
    /// one (veth, lo).
    pub fn perm_addr(&self, ifname: &IfName) -> Result<Vec<u8>> {
        self.fixed(
            ifname,
            "get permanent address",
            "ETHTOOL_GPERMADDR",
            codec::encode_perm_addr_request(),
            codec::decode_perm_addr,
        )
    }

    /// Sizes of the string sets in `mask` (ETHTOOL_GSSET_INFO): (set, count) for each set the
    /// driver supports.
    pub fn sset_counts(&self, ifname: &IfName, mask: u64) -> Result<Vec<(u32, u32)>> {
        const W: (&str, &str) = ("get string set sizes", "ETHTOOL_GSSET_INFO");
        let mut b = codec::encode_sset_info_request(mask);
        self.call(ifname, W.0, W.1, &mut b)?;
        codec::decode_sset_info(&b, mask).map_err(|e| Self::decode_err(ifname, W.0, W.1, e))
    }

    /// Size of one string set; `None` if the driver does not have it. Falls back to the
    /// driver info's `n_stats` for the statistics set on kernels without GSSET_INFO.
    pub fn sset_count(&self, ifname: &IfName, set: u32) -> Result<Option<u32>> {
        if set >= 64 {
            return Err(Error::kernel(
                &ifname.to_string(),
                "get string set sizes (ETHTOOL_GSSET_INFO)",
                format!("string set {set} cannot be asked for (0..=63)"),
            ));
        }
        match self.sset_counts(ifname, 1 << set) {
            Ok(v) => Ok(v.first().map(|&(_, n)| n)),
            Err(Error::Ioctl { source, .. })
                if set == sset::STATS && source.raw_os_error() == Some(libc::EOPNOTSUPP) =>
            {
                Ok(Some(self.drvinfo(ifname)?.n_stats))
            }
            Err(e) => Err(e),
        }
    }

    fn checked_count(ifname: &IfName, what: &str, name: &str, n: u32) -> Result<u32> {
        if n > codec::MAX_SET_COUNT {
            return Err(Error::kernel(
                &ifname.to_string(),
                &op(what, name),
                format!(
                    "kernel reports {n} entries (more than {} accepted)",
                    codec::MAX_SET_COUNT
                ),
            ));
        }
        Ok(n)
    }

    fn strings_once(&self, ifname: &IfName, set: u32, n: u32) -> Result<Option<Vec<String>>> {
        const W: (&str, &str) = ("get strings", "ETHTOOL_GSTRINGS");
        let mut b = codec::encode_gstrings_request(set, n);
        self.call(ifname, W.0, W.1, &mut b)?;
        codec::decode_gstrings(&b, set, n).map_err(|e| Self::decode_err(ifname, W.0, W.1, e))
    }

    fn stats_once(&self, ifname: &IfName, n: u32) -> Result<Option<Vec<u64>>> {
        const W: (&str, &str) = ("get statistics", "ETHTOOL_GSTATS");
        let mut b = codec::encode_stats_request(n);
        self.call(ifname, W.0, W.1, &mut b)?;
        codec::decode_stats(&b, n).map_err(|e| Self::decode_err(ifname, W.0, W.1, e))
    }

    fn count_changed(ifname: &IfName, what: &str) -> Error {
        Error::kernel(
            &ifname.to_string(),
            what,
            format!("the number of entries kept changing between calls ({MAX_ATTEMPTS} attempts)"),
        )
    }

    /// The strings of set `set` (ETHTOOL_GSSET_INFO + ETHTOOL_GSTRINGS), re-read if the
    /// count changes in between. Empty if the driver does not have the set.
    pub fn strings(&self, ifname: &IfName, set: u32) -> Result<Vec<String>> {
        for _ in 0..MAX_ATTEMPTS {
            let n = match self.sset_count(ifname, set)? {
                None | Some(0) => return Ok(Vec::new()),
                Some(n) => Self::checked_count(ifname, "get strings", "ETHTOOL_GSTRINGS", n)?,
            };
            if let Some(v) = self.strings_once(ifname, set, n)? {
                return Ok(v);
            }
        }
        Err(Self::count_changed(
            ifname,
            &op("get strings", "ETHTOOL_GSTRINGS"),
        ))
    }

    /// NIC statistics (`ethtool -S`): names (ETH_SS_STATS strings) paired with values
    /// (ETHTOOL_GSTATS), read so that names and values come from the same count; if the count
    /// changes between the calls (the driver added queues), everything is read again.
    /// Empty when the driver has no statistics.
    pub fn stats(&self, ifname: &IfName) -> Result<Vec<(String, u64)>> {
        for _ in 0..MAX_ATTEMPTS {
            let n = match self.sset_count(ifname, sset::STATS)? {
                None | Some(0) => return Ok(Vec::new()),
                Some(n) => Self::checked_count(ifname, "get statistics", "ETHTOOL_GSSET_INFO", n)?,
            };
            let Some(names) = self.strings_once(ifname, sset::STATS, n)? else {
                continue;
            };
            let Some(values) = self.stats_once(ifname, n)? else {
                continue;
            };
            return Ok(names.into_iter().zip(values).collect());
        }
        Err(Self::count_changed(
            ifname,
            &op("get statistics", "ETHTOOL_GSTATS"),
        ))
    }

    /// The kernel's own link-mode names (ETH_SS_LINK_MODES), indexed by bit.
    pub fn link_mode_names(&self, ifname: &IfName) -> Result<Vec<String>> {
        self.strings(ifname, sset::LINK_MODES)
    }

    /// Names and classifies every bit of `mask`; bits beyond this library's table are named
    /// from the kernel's ETH_SS_LINK_MODES strings (fetched only when such a bit is set).
    pub fn describe_modes(
        &self,
        ifname: &IfName,
        masks: &[&ModeMask],
    ) -> Result<Vec<Vec<LinkMode>>> {
        let names = if masks.iter().any(|m| m.has_unknown_bits()) {
            Some(self.link_mode_names(ifname)?)
        } else {
            None
        };
        Ok(masks.iter().map(|m| m.describe(names.as_deref())).collect())
    }
}

/// An [`Ethtool`] on a real socket, plus the namespace's `/proc/net/dev` (opened on first
/// use), in the calling thread's namespace or a named one.
#[derive(Debug)]
pub struct Session {
    ethtool: Ethtool<IoctlSocket>,
    netdev: OnceLock<NetDevFile>,
    netns: Option<Netns>,
    opened: Option<OpenNetns>,
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Session>>> = const { RefCell::new(None) };
}

impl Session {
    /// Opens a session in `netns` (or the calling thread's namespace). The namespace file is
    /// kept open, so everything this session opens later is in the same namespace.
    pub fn open(netns: Option<Netns>) -> Result<Self> {
        let opened = netns.as_ref().map(Netns::open).transpose()?;
        let sock = transport::open_socket(opened.as_ref())?;
        Ok(Session {
            ethtool: Ethtool::new(sock),
            netdev: OnceLock::new(),
            netns,
            opened,
        })
    }

    /// The session of the calling thread's own namespace, created on first use and then
    /// shared by every later call on this thread (one socket instead of one per query).
    ///
    /// It stays in the namespace the thread was in when it was created: a thread that
    /// switches namespaces itself (setns(2) from other native code) must not use it.
    pub fn current() -> Result<Arc<Session>> {
        CURRENT.with(|c| {
            if let Some(s) = c.borrow().as_ref() {
                return Ok(Arc::clone(s));
            }
            let s = Arc::new(Session::open(None)?);
            *c.borrow_mut() = Some(Arc::clone(&s));
            Ok(s)
        })
    }

    /// A session in `netns`: a new one for another namespace, the calling thread's shared
    /// one ([`Session::current`]) for its own (`None`).
    pub fn in_netns(netns: Option<Netns>) -> Result<Arc<Session>> {
        match netns {
            None => Session::current(),
            Some(ns) => Session::open(Some(ns)).map(Arc::new),
        }
    }

    /// The namespace this session queries (`None`: the caller's).
    pub fn netns(&self) -> Option<&Netns> {
        self.netns.as_ref()
    }

    /// The ethtool commands.
    pub fn ethtool(&self) -> &Ethtool<IoctlSocket> {
        &self.ethtool
    }

    /// Interface flags from SIOCGIFFLAGS (IFF_UP 0x1, IFF_RUNNING 0x40, ...).
    pub fn if_flags(&self, ifname: &IfName) -> Result<u16> {
        self.ethtool
            .transport()
            .if_flags(ifname)
            .map_err(|source| Error::Ioctl {
                iface: ifname.to_string(),
                op: op("get interface flags", "SIOCGIFFLAGS"),
                source,
            })
    }

    /// Interface index from SIOCGIFINDEX.
    pub fn if_index(&self, ifname: &IfName) -> Result<u32> {
        self.ethtool
            .transport()
            .if_index(ifname)
            .map_err(|source| Error::Ioctl {
                iface: ifname.to_string(),
                op: op("get interface index", "SIOCGIFINDEX"),
                source,
            })
    }

    /// The interface's standard counters from `/proc/net/dev`.
    pub fn counters(&self, ifname: &IfName) -> Result<Counters> {
        let what = "read interface counters (/proc/net/dev)";
        let netdev = match self.netdev.get() {
            Some(d) => d,
            None => {
                let d = transport::open_netdev(self.opened.as_ref())?;
                self.netdev.get_or_init(|| d)
            }
        };
        let text = netdev.read().map_err(|source| Error::Ioctl {
            iface: ifname.to_string(),
            op: what.into(),
            source,
        })?;
        netdev::find(&text, &ifname.to_string())
            .map_err(|e| Error::kernel(&ifname.to_string(), what, e.to_string()))?
            .ok_or_else(|| Error::NoCounters {
                iface: ifname.to_string(),
            })
    }
}

#[cfg(test)]
mod tests;
