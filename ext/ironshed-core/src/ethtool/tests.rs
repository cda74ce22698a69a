//! The protocol logic against a simulated kernel that follows the behaviour recorded on
//! Linux 6.18: the nwords handshake, "count changed" replies, unsupported commands.

use super::*;
use crate::error::Report;
use byteorder::{ByteOrder, NativeEndian as E};
use std::cell::{Cell, RefCell};
use std::io;

struct FakeKernel {
    /// Words per link-mode mask the kernel wants; `None`: no GLINKSETTINGS (EOPNOTSUPP).
    nwords: Option<u8>,
    supported: Vec<u32>,
    /// Legacy GSET supported.
    gset: bool,
    stats: RefCell<Vec<(String, u64)>>,
    link_modes: Vec<String>,
    /// Calls to GSTRINGS(STATS) after which the statistics set grows by one entry.
    grow_after_strings: Cell<usize>,
    /// Grow on every GSTRINGS call (a driver whose count never settles).
    always_grow: bool,
    log: RefCell<Vec<u32>>,
    /// Ring sizes; `None`: no ring parameters (EOPNOTSUPP). A set rounds sizes up to 8.
    rings: RefCell<Option<RingParam>>,
    /// Channel counts; `None`: no channels (EOPNOTSUPP).
    channels: RefCell<Option<Channels>>,
}

impl FakeKernel {
    fn new() -> Self {
        FakeKernel {
            nwords: Some(4),
            supported: vec![],
            gset: true,
            stats: RefCell::new(vec![
                ("peer_ifindex".into(), 7),
                ("rx_queue_0_xdp_packets".into(), 3),
            ]),
            link_modes: (0..160)
                .map(|b| format!("{}baseZZ{b}/Full", 1000 + b))
                .collect(),
            grow_after_strings: Cell::new(usize::MAX),
            always_grow: false,
            log: RefCell::new(vec![]),
            rings: RefCell::new(None),
            channels: RefCell::new(None),
        }
    }
    fn grow(&self) {
        let mut s = self.stats.borrow_mut();
        let n = s.len();
        s.push((format!("rx_queue_{n}_xdp_packets"), n as u64));
    }
    fn calls(&self, c: u32) -> usize {
        self.log.borrow().iter().filter(|&&x| x == c).count()
    }
}

fn eopnotsupp() -> io::Error {
    io::Error::from_raw_os_error(libc::EOPNOTSUPP)
}

impl Transport for FakeKernel {
    fn ethtool(&self, _ifname: &IfName, buf: &mut [u8]) -> io::Result<()> {
        // The simulated kernel trusts the buffer size exactly as the real one would, so the
        // real transport's check is applied first: a test fails if the library ever sends a
        // buffer the kernel could overrun.
        let need = codec::required_len(buf).expect("library sent an unbounded request");
        assert!(buf.len() >= need, "library sent a short buffer");
        let c = E::read_u32(buf);
        self.log.borrow_mut().push(c);
        match c {
            cmd::GLINKSETTINGS => {
                let Some(k) = self.nwords else {
                    return Err(eopnotsupp());
                };
                let sent = buf[15];
                if sent != k {
                    buf[4..].fill(0);
                    buf[15] = (-(k as i8)) as u8;
                    return Ok(());
                }
                E::write_u32(&mut buf[4..], 25000);
                buf[8] = 1;
                let n = k as usize;
                for (i, w) in self.supported.iter().enumerate().take(n) {
                    E::write_u32(&mut buf[48 + 4 * i..], *w);
                    E::write_u32(&mut buf[48 + 4 * (n + i)..], *w);
                }
                Ok(())
            }
            cmd::GSET => {
                if !self.gset {
                    return Err(eopnotsupp());
                }
                E::write_u32(&mut buf[4..], 0x2f);
                E::write_u16(&mut buf[12..], 1000);
                buf[14] = 1;
                Ok(())
            }
            cmd::GSSET_INFO => {
                let asked = E::read_u64(&buf[8..]);
                let mut mask = 0u64;
                let mut counts = vec![];
                if asked & (1 << sset::STATS) != 0 {
                    mask |= 1 << sset::STATS;
                    counts.push(self.stats.borrow().len() as u32);
                }
                if asked & (1 << sset::LINK_MODES) != 0 {
                    mask |= 1 << sset::LINK_MODES;
                    counts.push(self.link_modes.len() as u32);
                }
                E::write_u64(&mut buf[8..], mask);
                for (i, n) in counts.iter().enumerate() {
                    E::write_u32(&mut buf[16 + 4 * i..], *n);
                }
                Ok(())
            }
            cmd::GSTRINGS => {
                let set = E::read_u32(&buf[4..]);
                let len = E::read_u32(&buf[8..]) as usize;
                let names: Vec<String> = match set {
                    sset::STATS => self.stats.borrow().iter().map(|s| s.0.clone()).collect(),
                    sset::LINK_MODES => self.link_modes.clone(),
                    _ => return Err(eopnotsupp()),
                };
                if len != names.len() {
                    E::write_u32(&mut buf[8..], 0);
                } else {
                    for (i, n) in names.iter().enumerate() {
                        let b = n.as_bytes();
                        buf[12 + 32 * i..12 + 32 * i + b.len()].copy_from_slice(b);
                    }
                }
                if set == sset::STATS {
                    let left = self.grow_after_strings.get();
                    if left == 0 || self.always_grow {
                        self.grow();
                    }
                    // usize::MAX after growing once: it grows a single time.
                    self.grow_after_strings.set(left.wrapping_sub(1));
                }
                Ok(())
            }
            cmd::GSTATS => {
                let n = E::read_u32(&buf[4..]) as usize;
                let stats = self.stats.borrow();
                if n != stats.len() {
                    E::write_u32(&mut buf[4..], 0);
                } else {
                    for (i, s) in stats.iter().enumerate() {
                        E::write_u64(&mut buf[8 + 8 * i..], s.1);
                    }
                }
                Ok(())
            }
            cmd::GRINGPARAM => {
                let r = (*self.rings.borrow()).ok_or_else(eopnotsupp)?;
                buf.copy_from_slice(&r.encode(c));
                Ok(())
            }
            cmd::SRINGPARAM => {
                let mut r = RingParam::decode(buf, c).unwrap();
                r.rx_pending = r.rx_pending.div_ceil(8) * 8;
                *self.rings.borrow_mut() = Some(r);
                Ok(())
            }
            cmd::GCHANNELS => {
                let ch = (*self.channels.borrow()).ok_or_else(eopnotsupp)?;
                buf.copy_from_slice(&ch.encode(c));
                Ok(())
            }
            cmd::SCHANNELS => {
                *self.channels.borrow_mut() = Some(Channels::decode(buf, c).unwrap());
                Ok(())
            }
            _ => Err(eopnotsupp()),
        }
    }
}

fn ifn() -> IfName {
    IfName::new(b"vA").unwrap()
}

#[test]
fn handshake_with_the_word_count_the_kernel_asks_for() {
    for k in [1u8, 3, 4, 5, 7, 127] {
        let mut fk = FakeKernel::new();
        fk.nwords = Some(k);
        fk.supported = vec![0; k as usize];
        fk.supported[0] = 1 << 5;
        let s = Ethtool::new(fk).link_settings(&ifn()).unwrap();
        assert_eq!(s.source, SettingsSource::LinkSettings { nwords: k });
        assert_eq!(s.supported.0.len(), k as usize);
        assert_eq!(s.supported.bits().collect::<Vec<_>>(), vec![5]);
        assert_eq!(s.speed, 25000);
    }
}

#[test]
fn unknown_mode_bits_are_named_by_the_kernel() {
    let mut fk = FakeKernel::new();
    fk.nwords = Some(5);
    fk.supported = vec![1 << 5, 0, 0, 1 << 24, 1 << 1]; // bits 5, 120, 129
    let et = Ethtool::new(fk);
    let s = et.link_settings(&ifn()).unwrap();
    let d = et
        .describe_modes(&ifn(), &[&s.supported])
        .unwrap()
        .remove(0);
    let names: Vec<_> = d.iter().map(|m| m.name.as_str()).collect();
    // Bits the library knows keep their table name; bit 129 comes from the kernel's strings.
    assert_eq!(
        names,
        vec!["1000baseT/Full", "800000baseVR4/Full", "1129baseZZ129/Full"]
    );
    assert_eq!(
        d[2].kind,
        Kind::Speed {
            speed: 1129,
            duplex: Duplex::Full,
            media: "ZZ129".into()
        }
    );
    assert_eq!(et.transport().calls(cmd::GSTRINGS), 1);
}

#[test]
fn known_bits_need_no_kernel_strings() {
    let mut fk = FakeKernel::new();
    fk.supported = vec![0b111111, 0, 0, 0];
    let et = Ethtool::new(fk);
    let s = et.link_settings(&ifn()).unwrap();
    let d = et
        .describe_modes(&ifn(), &[&s.supported, &s.advertising])
        .unwrap();
    assert_eq!(d[0].len(), 6);
    assert_eq!(et.transport().calls(cmd::GSTRINGS), 0);
}

#[test]
fn falls_back_to_gset_without_glinksettings() {
    let mut fk = FakeKernel::new();
    fk.nwords = None;
    let et = Ethtool::new(fk);
    let s = et.link_settings(&ifn()).unwrap();
    assert_eq!(s.source, SettingsSource::Legacy);
    assert_eq!((s.speed, s.duplex), (1000, 1));
    assert_eq!(s.supported.bits().collect::<Vec<_>>(), vec![0, 1, 2, 3, 5]);

    let mut fk = FakeKernel::new();
    fk.nwords = None;
    fk.gset = false;
    let e = Ethtool::new(fk).link_settings(&ifn()).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EOPNOTSUPP));
    assert!(e.to_string().contains("ETHTOOL_GSET"), "{e}");
    assert!(
        e.message().starts_with("vA: get link settings"),
        "{}",
        e.message()
    );
}

#[test]
fn stats_reread_when_the_count_changes_between_strings_and_values() {
    let fk = FakeKernel::new();
    fk.grow_after_strings.set(0); // grows right after the first GSTRINGS
    let et = Ethtool::new(fk);
    let st = et.stats(&ifn()).unwrap();
    assert_eq!(st.len(), 3);
    assert_eq!(st[2], ("rx_queue_2_xdp_packets".to_string(), 2));
    // First round: GSTATS saw the changed count and wrote nothing; second round succeeded.
    assert_eq!(et.transport().calls(cmd::GSTATS), 2);
    assert_eq!(et.transport().calls(cmd::GSSET_INFO), 2);
}

#[test]
fn stats_give_up_when_the_count_never_settles() {
    let mut fk = FakeKernel::new();
    fk.always_grow = true;
    let e = Ethtool::new(fk).stats(&ifn()).unwrap_err();
    assert!(matches!(e, Error::Kernel { .. }), "{e:?}");
    assert!(e.to_string().contains("kept changing"), "{e}");
}

#[test]
fn unsupported_commands_keep_their_errno_and_name_the_operation() {
    let et = Ethtool::new(FakeKernel::new());
    let e = et.rings(&ifn()).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EOPNOTSUPP));
    assert_eq!(e.message(), "vA: get ring parameters (ETHTOOL_GRINGPARAM)");
}

#[test]
fn later_queries_start_with_the_learnt_word_count_and_recover_if_it_changes() {
    let mut fk = FakeKernel::new();
    fk.nwords = Some(4);
    fk.supported = vec![1, 0, 0, 0];
    let mut et = Ethtool::new(fk);
    et.link_settings(&ifn()).unwrap();
    assert_eq!(et.transport().calls(cmd::GLINKSETTINGS), 2); // handshake + real request
    et.link_settings(&ifn()).unwrap();
    assert_eq!(et.transport().calls(cmd::GLINKSETTINGS), 3); // one request

    // A kernel that now wants 5 words answers the remembered 4 with -5: handshake again.
    et.transport.nwords = Some(5);
    et.transport.supported = vec![1, 0, 0, 0, 1];
    let s = et.link_settings(&ifn()).unwrap();
    assert_eq!(s.source, SettingsSource::LinkSettings { nwords: 5 });
    assert_eq!(s.supported.bits().collect::<Vec<_>>(), vec![0, 128]);
    assert_eq!(et.transport().calls(cmd::GLINKSETTINGS), 5);
}

#[test]
fn ring_updates_read_modify_write_and_read_back() {
    let fk = FakeKernel::new();
    let start = RingParam {
        rx_max_pending: 4096,
        tx_max_pending: 4096,
        rx_pending: 256,
        tx_pending: 256,
        ..Default::default()
    };
    *fk.rings.borrow_mut() = Some(start);
    let et = Ethtool::new(fk);
    // Only the named field changes; the driver's rounding shows in what is returned.
    let r = et
        .update_rings(&ifn(), &[("rx_pending".into(), 509)])
        .unwrap();
    assert_eq!(
        r,
        RingParam {
            rx_pending: 512,
            ..start
        }
    );
    assert_eq!(et.transport().calls(cmd::SRINGPARAM), 1);
    // Nothing differs: no set command at all.
    let r = et
        .update_rings(
            &ifn(),
            &[("rx_pending".into(), 512), ("tx_pending".into(), 256)],
        )
        .unwrap();
    assert_eq!(r.rx_pending, 512);
    assert_eq!(et.transport().calls(cmd::SRINGPARAM), 1);
    // A field that cannot be set is refused before any system call.
    let calls = et.transport().log.borrow().len();
    let e = et
        .update_rings(
            &ifn(),
            &[("tx_pending".into(), 1), ("rx_max_pending".into(), 1)],
        )
        .unwrap_err();
    assert_eq!(e.kind(), crate::error::Kind::Argument);
    assert_eq!(
        e.message(),
        "cannot set rx_max_pending (settable: rx_pending, rx_mini_pending, rx_jumbo_pending, tx_pending)"
    );
    assert_eq!(et.transport().log.borrow().len(), calls);
}

#[test]
fn channel_updates_and_their_refusals() {
    let fk = FakeKernel::new();
    let start = Channels {
        max_combined: 8,
        combined_count: 1,
        ..Default::default()
    };
    *fk.channels.borrow_mut() = Some(start);
    let et = Ethtool::new(fk);
    let c = et
        .update_channels(&ifn(), &[("combined_count".into(), 4)])
        .unwrap();
    assert_eq!(c.combined_count, 4);
    assert_eq!(c.max_combined, 8);
    let e = et
        .update_channels(&ifn(), &[("max_rx".into(), 1)])
        .unwrap_err();
    assert!(e
        .message()
        .starts_with("cannot set max_rx (settable: rx_count, "));
    // A driver without channels: the read fails with its errno, nothing is set.
    *et.transport().channels.borrow_mut() = None;
    let e = et
        .update_channels(&ifn(), &[("rx_count".into(), 1)])
        .unwrap_err();
    assert_eq!(e.kind(), crate::error::Kind::Os(libc::EOPNOTSUPP));
    assert_eq!(e.message(), "vA: get channels (ETHTOOL_GCHANNELS)");
    assert_eq!(et.transport().calls(cmd::SCHANNELS), 1);
}

#[test]
fn structures_name_their_fields_once_in_kernel_order() {
    let r = RingParam {
        rx_max_pending: 1,
        tx_pending: 8,
        ..Default::default()
    };
    let f: Vec<_> = r.fields().collect();
    assert_eq!(f.len(), 8);
    assert_eq!(f[0], ("rx_max_pending", 1));
    assert_eq!(f[7], ("tx_pending", 8));
    assert!(RingParam::SETTABLE
        .iter()
        .all(|k| RingParam::FIELDS.contains(k)));
    assert_eq!(Channels::FIELDS[4], "rx_count");
    let p = PauseParam {
        autoneg: 0,
        rx_pause: 1,
        tx_pause: 2,
    };
    assert_eq!(
        p.flags().collect::<Vec<_>>(),
        [("autoneg", false), ("rx_pause", true), ("tx_pause", true)]
    );
    assert!(PauseParam::default().set("autoneg", 1).is_err());
    let s = SettingsSource::LinkSettings { nwords: 4 };
    assert_eq!((s.key(), s.words()), ("glinksettings", 4));
    assert_eq!(
        (SettingsSource::Legacy.key(), SettingsSource::Legacy.words()),
        ("gset", 1)
    );
    let k = link_modes::classify("25000baseCR/Full");
    assert_eq!(k.speed(), Some((25000, Duplex::Full, "CR")));
    assert_eq!(link_modes::classify("Autoneg").speed(), None);
}

#[test]
fn raw_commands_name_the_command_in_errors() {
    let et = Ethtool::new(FakeKernel::new());
    let mut b = RingParam::default().encode(cmd::GRINGPARAM);
    let e = et.raw(&ifn(), &mut b).unwrap_err();
    assert_eq!(e.kind(), crate::error::Kind::Os(libc::EOPNOTSUPP));
    assert_eq!(e.message(), "vA: ioctl SIOCETHTOOL (command 0x10)");
}

#[test]
fn namespaces_are_selected_by_name_path_or_process() {
    assert_eq!(Netns::select(None, None, None).unwrap(), None);
    assert_eq!(
        Netns::select(Some("blue"), None, None).unwrap(),
        Some(Netns::Name("blue".into()))
    );
    assert_eq!(
        Netns::select(Some("/proc/1/ns/net"), None, None).unwrap(),
        Some(Netns::Path("/proc/1/ns/net".into()))
    );
    assert_eq!(
        Netns::select(None, Some(7), None).unwrap(),
        Some(Netns::Pid(7))
    );
    let e = Netns::select(Some(".."), None, None).unwrap_err();
    assert_eq!(e.kind(), crate::error::Kind::NamespaceName);
    assert!(Netns::select(Some("a"), Some(1), None).is_err());
}
