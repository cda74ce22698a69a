//! Typed codecs for the ethtool command structures (`<linux/ethtool.h>`).
//!
//! Each structure is encoded into the byte buffer the kernel reads through `ifr_data` and
//! decoded from what it writes back. All fields are in the machine's byte order. Decoders
//! never trust the kernel's counts: every length is checked against the buffer before it is
//! used, so a short or inconsistent buffer is a [`DecodeError`], never a panic.

use super::error::DecodeError;
use super::link_modes::ModeMask;
use byteorder::{ByteOrder, NativeEndian as E};

/// ethtool command numbers (`ETHTOOL_*`).
pub mod cmd {
    /// Get settings (legacy, 32-bit masks).
    pub const GSET: u32 = 0x01;
    /// Set settings (legacy).
    pub const SSET: u32 = 0x02;
    /// Get driver info.
    pub const GDRVINFO: u32 = 0x03;
    /// Get register dump.
    pub const GREGS: u32 = 0x04;
    /// Get Wake-on-LAN options.
    pub const GWOL: u32 = 0x05;
    /// Set Wake-on-LAN options.
    pub const SWOL: u32 = 0x06;
    /// Get driver message level.
    pub const GMSGLVL: u32 = 0x07;
    /// Set driver message level.
    pub const SMSGLVL: u32 = 0x08;
    /// Restart autonegotiation.
    pub const NWAY_RST: u32 = 0x09;
    /// Get link status.
    pub const GLINK: u32 = 0x0a;
    /// Get EEPROM data.
    pub const GEEPROM: u32 = 0x0b;
    /// Get coalesce config.
    pub const GCOALESCE: u32 = 0x0e;
    /// Set coalesce config.
    pub const SCOALESCE: u32 = 0x0f;
    /// Get ring parameters.
    pub const GRINGPARAM: u32 = 0x10;
    /// Set ring parameters.
    pub const SRINGPARAM: u32 = 0x11;
    /// Get pause parameters.
    pub const GPAUSEPARAM: u32 = 0x12;
    /// Set pause parameters.
    pub const SPAUSEPARAM: u32 = 0x13;
    /// Get a string set.
    pub const GSTRINGS: u32 = 0x1b;
    /// Get NIC statistics.
    pub const GSTATS: u32 = 0x1d;
    /// Get the permanent hardware address.
    pub const GPERMADDR: u32 = 0x20;
    /// Get string set sizes.
    pub const GSSET_INFO: u32 = 0x37;
    /// Get device offload features.
    pub const GFEATURES: u32 = 0x3a;
    /// Get channel counts.
    pub const GCHANNELS: u32 = 0x3c;
    /// Set channel counts.
    pub const SCHANNELS: u32 = 0x3d;
    /// Get time stamping capabilities.
    pub const GET_TS_INFO: u32 = 0x41;
    /// Get link settings (all link-mode words).
    pub const GLINKSETTINGS: u32 = 0x4c;
    /// Set link settings.
    pub const SLINKSETTINGS: u32 = 0x4d;
}

/// String set numbers (`ETH_SS_*`).
pub mod sset {
    /// Self-test names.
    pub const TEST: u32 = 0;
    /// NIC statistics names (`ethtool -S`).
    pub const STATS: u32 = 1;
    /// Private flag names.
    pub const PRIV_FLAGS: u32 = 2;
    /// Feature names.
    pub const FEATURES: u32 = 4;
    /// Link-mode names.
    pub const LINK_MODES: u32 = 9;
}

/// Most strings or statistics accepted from one GSSET_INFO reply (a sanity bound: the largest
/// drivers report a few thousand).
pub const MAX_SET_COUNT: u32 = 1 << 16;
/// `ETH_GSTRING_LEN`: each string's fixed slot.
pub const GSTRING_LEN: usize = 32;
/// `MAX_ADDR_LEN`: the largest hardware address the kernel stores.
pub const MAX_ADDR_LEN: usize = 32;
/// `SPEED_UNKNOWN` as a u32.
pub const SPEED_UNKNOWN: u32 = 0xffff_ffff;

fn need(what: &'static str, buf: &[u8], n: usize) -> Result<(), DecodeError> {
    if buf.len() < n {
        Err(DecodeError::short(what, n, buf.len()))
    } else {
        Ok(())
    }
}

fn check_cmd(what: &'static str, buf: &[u8], expected: u32) -> Result<(), DecodeError> {
    need(what, buf, 4)?;
    let got = E::read_u32(buf);
    if got != expected {
        return Err(DecodeError::new(
            what,
            format!("reply has command {got:#x}, expected {expected:#x}"),
        ));
    }
    Ok(())
}

/// Bytes the kernel reads and writes for the command at the start of `buf`, derived from the
/// command number and the counts in the header; `None` for a command this library does not
/// issue, or a header that would make the kernel write an unbounded amount (a zero count in
/// GSTRINGS/GSTATS means "all", whatever the buffer holds). The transport refuses a buffer
/// shorter than this, so the kernel can never write past it.
pub fn required_len(buf: &[u8]) -> Option<usize> {
    if buf.len() < 4 {
        return None;
    }
    let u32_at = |off: usize| (buf.len() >= off + 4).then(|| E::read_u32(&buf[off..]) as usize);
    match E::read_u32(buf) {
        cmd::GSET | cmd::SSET => Some(44),
        cmd::GDRVINFO => Some(DRVINFO_LEN),
        cmd::GLINK | cmd::GMSGLVL | cmd::SMSGLVL | cmd::NWAY_RST => Some(8),
        cmd::GWOL | cmd::SWOL => Some(20),
        cmd::GRINGPARAM | cmd::SRINGPARAM => Some(RING_LEN),
        cmd::GCHANNELS | cmd::SCHANNELS => Some(CHANNELS_LEN),
        cmd::GPAUSEPARAM | cmd::SPAUSEPARAM => Some(PAUSE_LEN),
        cmd::GCOALESCE | cmd::SCOALESCE => Some(COALESCE_LEN),
        // The kernel writes the device's address length (at most MAX_ADDR_LEN), and only
        // when `size` (the capacity) is at least that.
        cmd::GPERMADDR => u32_at(4).map(|n| 8 + n.min(MAX_ADDR_LEN)),
        cmd::GSSET_INFO => {
            (buf.len() >= 16).then(|| 16 + 4 * E::read_u64(&buf[8..]).count_ones() as usize)
        }
        cmd::GSTRINGS => u32_at(8)
            .filter(|&n| n > 0 && n <= MAX_SET_COUNT as usize)
            .map(|n| 12 + n * GSTRING_LEN),
        cmd::GSTATS => u32_at(4)
            .filter(|&n| n > 0 && n <= MAX_SET_COUNT as usize)
            .map(|n| 8 + n * 8),
        cmd::GLINKSETTINGS | cmd::SLINKSETTINGS => (buf.len() >= LINK_SETTINGS_HEADER)
            .then(|| LINK_SETTINGS_HEADER + 12 * (buf[15] as i8).max(0) as usize),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// ethtool_value (GLINK and friends)

/// Encodes `struct ethtool_value` (8 bytes).
pub fn encode_value(command: u32, data: u32) -> Vec<u8> {
    let mut b = vec![0u8; 8];
    E::write_u32(&mut b, command);
    E::write_u32(&mut b[4..], data);
    b
}

/// Decodes the `data` of `struct ethtool_value`.
pub fn decode_value(buf: &[u8], command: u32) -> Result<u32, DecodeError> {
    const W: &str = "ethtool_value";
    need(W, buf, 8)?;
    check_cmd(W, buf, command)?;
    Ok(E::read_u32(&buf[4..]))
}

// ---------------------------------------------------------------------------------------------
// Link settings: ethtool_link_settings (GLINKSETTINGS) and the legacy ethtool_cmd (GSET)

/// Size of the fixed part of `struct ethtool_link_settings`.
pub const LINK_SETTINGS_HEADER: usize = 48;
/// Size of `struct ethtool_cmd` (legacy GSET/SSET).
pub const LEGACY_CMD_LEN: usize = 44;

/// Where link settings came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingsSource {
    /// ETHTOOL_GLINKSETTINGS with this many u32 words per mask.
    LinkSettings {
        /// `link_mode_masks_nwords` the kernel accepted.
        nwords: u8,
    },
    /// The legacy ETHTOOL_GSET (masks hold only the first 32 link-mode bits).
    Legacy,
}

impl SettingsSource {
    /// The command's short name: "glinksettings", or "gset" for the legacy one.
    pub fn key(self) -> &'static str {
        match self {
            SettingsSource::LinkSettings { .. } => "glinksettings",
            SettingsSource::Legacy => "gset",
        }
    }
    /// u32 words per link-mode mask (1 for the legacy command).
    pub fn words(self) -> u8 {
        match self {
            SettingsSource::LinkSettings { nwords } => nwords,
            SettingsSource::Legacy => 1,
        }
    }
}

/// Link settings of an interface: speed, duplex, port, autonegotiation, and the
/// supported/advertised/link-partner link-mode masks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSettings {
    /// Mb/s; [`SPEED_UNKNOWN`] (or 0, or 0xffff from GSET) when unknown.
    pub speed: u32,
    /// DUPLEX_HALF 0, DUPLEX_FULL 1, DUPLEX_UNKNOWN 0xff.
    pub duplex: u8,
    /// PORT_* (TP 0, AUI 1, MII 2, FIBRE 3, BNC 4, DA 5, NONE 0xef, OTHER 0xff).
    pub port: u8,
    /// MDIO address of the PHY.
    pub phy_address: u8,
    /// AUTONEG_DISABLE 0 / AUTONEG_ENABLE 1.
    pub autoneg: u8,
    /// ETH_MDIO_SUPPORTS_* bits.
    pub mdio_support: u8,
    /// ETH_TP_MDI_* status.
    pub eth_tp_mdix: u8,
    /// ETH_TP_MDI_* control.
    pub eth_tp_mdix_ctrl: u8,
    /// XCVR_INTERNAL 0 / XCVR_EXTERNAL 1.
    pub transceiver: u8,
    /// MASTER_SLAVE_CFG_* (0 with GSET).
    pub master_slave_cfg: u8,
    /// MASTER_SLAVE_STATE_* (0 with GSET).
    pub master_slave_state: u8,
    /// RATE_MATCH_* (0 with GSET).
    pub rate_matching: u8,
    /// Link modes the interface supports.
    pub supported: ModeMask,
    /// Link modes it advertises.
    pub advertising: ModeMask,
    /// Link modes the link partner advertises.
    pub lp_advertising: ModeMask,
    /// Which command produced these settings.
    pub source: SettingsSource,
}

/// What a GLINKSETTINGS reply says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkSettingsReply {
    /// The handshake: the kernel wants this many words per mask (it wrote `-n`).
    NeedWords(u32),
    /// The full settings.
    Settings(LinkSettings),
}

/// Encodes a GLINKSETTINGS request carrying `nwords` words per mask (0 starts the handshake).
pub fn encode_link_settings_request(nwords: u8) -> Vec<u8> {
    let mut b = vec![0u8; LINK_SETTINGS_HEADER + 12 * nwords as usize];
    E::write_u32(&mut b, cmd::GLINKSETTINGS);
    b[15] = nwords;
    b
}

/// Decodes a GLINKSETTINGS reply to a request that carried `sent_nwords` words per mask.
pub fn decode_link_settings(buf: &[u8], sent_nwords: u8) -> Result<LinkSettingsReply, DecodeError> {
    const W: &str = "ethtool_link_settings";
    need(W, buf, LINK_SETTINGS_HEADER)?;
    check_cmd(W, buf, cmd::GLINKSETTINGS)?;
    let nwords = buf[15] as i8;
    if nwords < 0 {
        return Ok(LinkSettingsReply::NeedWords(-(nwords as i32) as u32));
    }
    if nwords == 0 || nwords as u8 != sent_nwords {
        return Err(DecodeError::new(
            W,
            format!("reply has link_mode_masks_nwords {nwords}, request had {sent_nwords}"),
        ));
    }
    let n = nwords as usize;
    need(W, buf, LINK_SETTINGS_HEADER + 12 * n)?;
    let words = |k: usize| {
        let start = LINK_SETTINGS_HEADER + 4 * n * k;
        ModeMask((0..n).map(|i| E::read_u32(&buf[start + 4 * i..])).collect())
    };
    Ok(LinkSettingsReply::Settings(LinkSettings {
        speed: E::read_u32(&buf[4..]),
        duplex: buf[8],
        port: buf[9],
        phy_address: buf[10],
        autoneg: buf[11],
        mdio_support: buf[12],
        eth_tp_mdix: buf[13],
        eth_tp_mdix_ctrl: buf[14],
        transceiver: buf[16],
        master_slave_cfg: buf[17],
        master_slave_state: buf[18],
        rate_matching: buf[19],
        supported: words(0),
        advertising: words(1),
        lp_advertising: words(2),
        source: SettingsSource::LinkSettings {
            nwords: nwords as u8,
        },
    }))
}

/// Encodes a legacy GSET request.
pub fn encode_legacy_request() -> Vec<u8> {
    let mut b = vec![0u8; LEGACY_CMD_LEN];
    E::write_u32(&mut b, cmd::GSET);
    b
}

/// Decodes a legacy `struct ethtool_cmd` (GSET) into [`LinkSettings`] with one-word masks.
pub fn decode_legacy(buf: &[u8]) -> Result<LinkSettings, DecodeError> {
    const W: &str = "ethtool_cmd";
    need(W, buf, LEGACY_CMD_LEN)?;
    check_cmd(W, buf, cmd::GSET)?;
    let lo = E::read_u16(&buf[12..]) as u32;
    let hi = E::read_u16(&buf[28..]) as u32;
    let speed = (hi << 16) | lo;
    Ok(LinkSettings {
        speed,
        duplex: buf[14],
        port: buf[15],
        phy_address: buf[16],
        transceiver: buf[17],
        autoneg: buf[18],
        mdio_support: buf[19],
        eth_tp_mdix: buf[30],
        eth_tp_mdix_ctrl: buf[31],
        master_slave_cfg: 0,
        master_slave_state: 0,
        rate_matching: 0,
        supported: ModeMask(vec![E::read_u32(&buf[4..])]),
        advertising: ModeMask(vec![E::read_u32(&buf[8..])]),
        lp_advertising: ModeMask(vec![E::read_u32(&buf[32..])]),
        source: SettingsSource::Legacy,
    })
}

// ---------------------------------------------------------------------------------------------
// ethtool_drvinfo

const DRVINFO_LEN: usize = 196;

/// Driver information (`ethtool -i`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DrvInfo {
    /// Driver (kernel module) name.
    pub driver: String,
    /// Driver version.
    pub version: String,
    /// Firmware version.
    pub fw_version: String,
    /// Bus address, e.g. "0000:00:03.0".
    pub bus_info: String,
    /// Expansion ROM version.
    pub erom_version: String,
    /// Number of private flags.
    pub n_priv_flags: u32,
    /// Number of statistics (as of this call).
    pub n_stats: u32,
    /// Number of self-test results.
    pub testinfo_len: u32,
    /// EEPROM size in bytes.
    pub eedump_len: u32,
    /// Register dump size in bytes.
    pub regdump_len: u32,
}

/// Encodes a GDRVINFO request.
pub fn encode_drvinfo_request() -> Vec<u8> {
    let mut b = vec![0u8; DRVINFO_LEN];
    E::write_u32(&mut b, cmd::GDRVINFO);
    b
}

/// A NUL-terminated string in a fixed field (lossy UTF-8; no NUL means the whole field).
fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Decodes `struct ethtool_drvinfo`.
pub fn decode_drvinfo(buf: &[u8]) -> Result<DrvInfo, DecodeError> {
    const W: &str = "ethtool_drvinfo";
    need(W, buf, DRVINFO_LEN)?;
    check_cmd(W, buf, cmd::GDRVINFO)?;
    Ok(DrvInfo {
        driver: cstr(&buf[4..36]),
        version: cstr(&buf[36..68]),
        fw_version: cstr(&buf[68..100]),
        bus_info: cstr(&buf[100..132]),
        erom_version: cstr(&buf[132..164]),
        n_priv_flags: E::read_u32(&buf[176..]),
        n_stats: E::read_u32(&buf[180..]),
        testinfo_len: E::read_u32(&buf[184..]),
        eedump_len: E::read_u32(&buf[188..]),
        regdump_len: E::read_u32(&buf[192..]),
    })
}

// ---------------------------------------------------------------------------------------------
// Fixed arrays of u32 after the command: ringparam, channels, pauseparam, coalesce

fn encode_u32s(command: u32, values: &[u32]) -> Vec<u8> {
    let mut b = vec![0u8; 4 + 4 * values.len()];
    E::write_u32(&mut b, command);
    for (i, v) in values.iter().enumerate() {
        E::write_u32(&mut b[4 + 4 * i..], *v);
    }
    b
}

fn decode_u32s<const N: usize>(
    what: &'static str,
    buf: &[u8],
    command: u32,
) -> Result<[u32; N], DecodeError> {
    need(what, buf, 4 + 4 * N)?;
    check_cmd(what, buf, command)?;
    let mut out = [0u32; N];
    for (i, v) in out.iter_mut().enumerate() {
        *v = E::read_u32(&buf[4 + 4 * i..]);
    }
    Ok(out)
}

const RING_LEN: usize = 36;
const CHANNELS_LEN: usize = 36;
const PAUSE_LEN: usize = 16;
const COALESCE_LEN: usize = 92;

/// Declares an ethtool structure made of `u32` fields after `cmd`, in the kernel's order:
/// the struct, its field names ([`RingParam::FIELDS`]...), the fields a set command may change
/// (`SETTABLE`), its codec, and `fields()` / `set()` to read and change fields by name. Each
/// field is spelled once, here.
macro_rules! u32_struct {
    (
        $(#[$meta:meta])*
        $name:ident ($what:literal), settable [$($set:ident),* $(,)?] {
            $( $(#[$fmeta:meta])* $field:ident ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: u32, )+
        }

        impl $name {
            /// Field names, in the kernel's order.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($field)),+];
            /// The fields a set command may change.
            pub const SETTABLE: &'static [&'static str] = &[$(stringify!($set)),*];

            fn values(&self) -> Vec<u32> {
                vec![$(self.$field),+]
            }
            /// Encodes with `command` (the get or the set command).
            pub fn encode(&self, command: u32) -> Vec<u8> {
                encode_u32s(command, &self.values())
            }
            /// Decodes a reply to `command`.
            pub fn decode(buf: &[u8], command: u32) -> Result<Self, DecodeError> {
                const N: usize = [$(stringify!($field)),+].len();
                let mut v = decode_u32s::<N>($what, buf, command)?.into_iter();
                Ok($name {
                    $( $field: v.next().unwrap_or_default(), )+
                })
            }
            /// (name, value) pairs in [`Self::FIELDS`] order.
            pub fn fields(&self) -> impl Iterator<Item = (&'static str, u32)> {
                Self::FIELDS.iter().copied().zip(self.values())
            }
            /// Sets the field `name`; refuses a name that is not in [`Self::SETTABLE`].
            pub fn set(&mut self, name: &str, value: u32) -> Result<(), FieldError> {
                $( if name == stringify!($set) {
                    self.$set = value;
                    return Ok(());
                } )*
                let _ = value;
                Err(FieldError {
                    name: name.to_string(),
                    settable: Self::SETTABLE,
                })
            }
        }
    };
}

/// A field name that is not one of a structure's settable fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The name given.
    pub name: String,
    /// The settable fields.
    pub settable: &'static [&'static str],
}

u32_struct! {
    /// Ring sizes (`ethtool -g`; the current sizes are set with `ethtool -G`).
    RingParam("ethtool_ringparam"),
    settable [rx_pending, rx_mini_pending, rx_jumbo_pending, tx_pending] {
        /// Largest RX ring the driver allows.
        rx_max_pending,
        /// Largest RX mini ring.
        rx_mini_max_pending,
        /// Largest RX jumbo ring.
        rx_jumbo_max_pending,
        /// Largest TX ring.
        tx_max_pending,
        /// Current RX ring size.
        rx_pending,
        /// Current RX mini ring size.
        rx_mini_pending,
        /// Current RX jumbo ring size.
        rx_jumbo_pending,
        /// Current TX ring size.
        tx_pending,
    }
}

u32_struct! {
    /// Channel (queue) counts (`ethtool -l`; the current counts are set with `ethtool -L`).
    Channels("ethtool_channels"),
    settable [rx_count, tx_count, other_count, combined_count] {
        /// Most RX-only channels.
        max_rx,
        /// Most TX-only channels.
        max_tx,
        /// Most other channels.
        max_other,
        /// Most combined channels.
        max_combined,
        /// Current RX-only channels.
        rx_count,
        /// Current TX-only channels.
        tx_count,
        /// Current other channels.
        other_count,
        /// Current combined channels.
        combined_count,
    }
}

u32_struct! {
    /// Pause frame settings (`ethtool -a`); each field is non-zero when on.
    PauseParam("ethtool_pauseparam"),
    settable [] {
        /// Pause autonegotiation.
        autoneg,
        /// RX pause.
        rx_pause,
        /// TX pause.
        tx_pause,
    }
}

impl PauseParam {
    /// (name, on) pairs in [`PauseParam::FIELDS`] order.
    pub fn flags(&self) -> impl Iterator<Item = (&'static str, bool)> {
        self.fields().map(|(k, v)| (k, v != 0))
    }
}

/// Names of the 22 fields of `struct ethtool_coalesce` after `cmd`, in order.
pub const COALESCE_FIELDS: [&str; 22] = [
    "rx_coalesce_usecs",
    "rx_max_coalesced_frames",
    "rx_coalesce_usecs_irq",
    "rx_max_coalesced_frames_irq",
    "tx_coalesce_usecs",
    "tx_max_coalesced_frames",
    "tx_coalesce_usecs_irq",
    "tx_max_coalesced_frames_irq",
    "stats_block_coalesce_usecs",
    "use_adaptive_rx_coalesce",
    "use_adaptive_tx_coalesce",
    "pkt_rate_low",
    "rx_coalesce_usecs_low",
    "rx_max_coalesced_frames_low",
    "tx_coalesce_usecs_low",
    "tx_max_coalesced_frames_low",
    "pkt_rate_high",
    "rx_coalesce_usecs_high",
    "rx_max_coalesced_frames_high",
    "tx_coalesce_usecs_high",
    "tx_max_coalesced_frames_high",
    "rate_sample_interval",
];

/// Interrupt coalescing settings (`ethtool -c`), field values in [`COALESCE_FIELDS`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Coalesce(pub [u32; 22]);

impl Coalesce {
    /// Encodes with `command` (GCOALESCE or SCOALESCE).
    pub fn encode(&self, command: u32) -> Vec<u8> {
        encode_u32s(command, &self.0)
    }
    /// Decodes a reply to `command`.
    pub fn decode(buf: &[u8], command: u32) -> Result<Self, DecodeError> {
        Ok(Coalesce(decode_u32s::<22>(
            "ethtool_coalesce",
            buf,
            command,
        )?))
    }
    /// (name, value) pairs.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, u32)> + '_ {
        COALESCE_FIELDS.iter().copied().zip(self.0.iter().copied())
    }
}

// ---------------------------------------------------------------------------------------------
// ethtool_perm_addr

/// Encodes a GPERMADDR request with room for `MAX_ADDR_LEN` bytes.
pub fn encode_perm_addr_request() -> Vec<u8> {
    let mut b = vec![0u8; 8 + MAX_ADDR_LEN];
    E::write_u32(&mut b, cmd::GPERMADDR);
    E::write_u32(&mut b[4..], MAX_ADDR_LEN as u32);
    b
}

/// Decodes the address bytes of a GPERMADDR reply.
pub fn decode_perm_addr(buf: &[u8]) -> Result<Vec<u8>, DecodeError> {
    const W: &str = "ethtool_perm_addr";
    need(W, buf, 8)?;
    check_cmd(W, buf, cmd::GPERMADDR)?;
    let n = E::read_u32(&buf[4..]) as usize;
    if n > MAX_ADDR_LEN {
        return Err(DecodeError::new(
            W,
            format!("address length {n} exceeds {MAX_ADDR_LEN}"),
        ));
    }
    need(W, buf, 8 + n)?;
    Ok(buf[8..8 + n].to_vec())
}

// ---------------------------------------------------------------------------------------------
// ethtool_sset_info, ethtool_gstrings, ethtool_stats

/// Encodes a GSSET_INFO request for the string sets in `mask` (bit n = set n).
pub fn encode_sset_info_request(mask: u64) -> Vec<u8> {
    let mut b = vec![0u8; 16 + 4 * mask.count_ones() as usize];
    E::write_u32(&mut b, cmd::GSSET_INFO);
    E::write_u64(&mut b[8..], mask);
    b
}

/// Decodes a GSSET_INFO reply to a request for `asked`: (set, count) for each set the kernel
/// kept in the mask (sets it does not support are cleared and absent).
pub fn decode_sset_info(buf: &[u8], asked: u64) -> Result<Vec<(u32, u32)>, DecodeError> {
    const W: &str = "ethtool_sset_info";
    need(W, buf, 16)?;
    check_cmd(W, buf, cmd::GSSET_INFO)?;
    let mask = E::read_u64(&buf[8..]);
    if mask & !asked != 0 {
        return Err(DecodeError::new(
            W,
            format!("reply mask {mask:#x} has sets that were not asked for ({asked:#x})"),
        ));
    }
    need(W, buf, 16 + 4 * mask.count_ones() as usize)?;
    let mut out = Vec::with_capacity(mask.count_ones() as usize);
    let mut i = 0;
    for set in 0..64u32 {
        if mask & (1 << set) != 0 {
            out.push((set, E::read_u32(&buf[16 + 4 * i..])));
            i += 1;
        }
    }
    Ok(out)
}

/// Encodes a GSTRINGS request for `count` strings of `set` (`count` must be the kernel's
/// current count and non-zero: zero would make the kernel write every string it has).
pub fn encode_gstrings_request(set: u32, count: u32) -> Vec<u8> {
    let mut b = vec![0u8; 12 + GSTRING_LEN * count as usize];
    E::write_u32(&mut b, cmd::GSTRINGS);
    E::write_u32(&mut b[4..], set);
    E::write_u32(&mut b[8..], count);
    b
}

/// Decodes a GSTRINGS reply to a request for `count` strings of `set`. `Ok(None)` means the
/// kernel wrote nothing because the count changed since it was read (it sets `len` to 0).
pub fn decode_gstrings(
    buf: &[u8],
    set: u32,
    count: u32,
) -> Result<Option<Vec<String>>, DecodeError> {
    const W: &str = "ethtool_gstrings";
    need(W, buf, 12)?;
    check_cmd(W, buf, cmd::GSTRINGS)?;
    let got_set = E::read_u32(&buf[4..]);
    if got_set != set {
        return Err(DecodeError::new(
            W,
            format!("reply is for string set {got_set}, asked for {set}"),
        ));
    }
    let len = E::read_u32(&buf[8..]);
    if len == 0 && count != 0 {
        return Ok(None);
    }
    if len != count {
        return Err(DecodeError::new(
            W,
            format!("reply has {len} strings, asked for {count}"),
        ));
    }
    let n = len as usize;
    let end = n
        .checked_mul(GSTRING_LEN)
        .and_then(|b| b.checked_add(12))
        .ok_or_else(|| DecodeError::new(W, format!("string count {len} overflows")))?;
    need(W, buf, end)?;
    Ok(Some(
        buf[12..end].chunks_exact(GSTRING_LEN).map(cstr).collect(),
    ))
}

/// Encodes a GSTATS request for `count` values (non-zero; see [`encode_gstrings_request`]).
pub fn encode_stats_request(count: u32) -> Vec<u8> {
    let mut b = vec![0u8; 8 + 8 * count as usize];
    E::write_u32(&mut b, cmd::GSTATS);
    E::write_u32(&mut b[4..], count);
    b
}

/// Decodes a GSTATS reply to a request for `count` values; `Ok(None)` if the count changed.
pub fn decode_stats(buf: &[u8], count: u32) -> Result<Option<Vec<u64>>, DecodeError> {
    const W: &str = "ethtool_stats";
    need(W, buf, 8)?;
    check_cmd(W, buf, cmd::GSTATS)?;
    let n = E::read_u32(&buf[4..]);
    if n == 0 && count != 0 {
        return Ok(None);
    }
    if n != count {
        return Err(DecodeError::new(
            W,
            format!("reply has {n} values, asked for {count}"),
        ));
    }
    let end = (n as usize)
        .checked_mul(8)
        .and_then(|b| b.checked_add(8))
        .ok_or_else(|| DecodeError::new(W, format!("value count {n} overflows")))?;
    need(W, buf, end)?;
    Ok(Some(buf[8..end].chunks_exact(8).map(E::read_u64).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32s(b: &mut [u8], off: usize, v: u32) {
        E::write_u32(&mut b[off..], v);
    }

    #[test]
    fn link_settings_handshake_reply() {
        let mut b = encode_link_settings_request(0);
        assert_eq!(b.len(), 48);
        b[15] = 0xfc; // -4
        assert_eq!(
            decode_link_settings(&b, 0).unwrap(),
            LinkSettingsReply::NeedWords(4)
        );
        b[15] = 0x80; // -128: more than a request can carry, still decoded
        assert_eq!(
            decode_link_settings(&b, 0).unwrap(),
            LinkSettingsReply::NeedWords(128)
        );
    }

    #[test]
    fn link_settings_full_reply() {
        let mut b = encode_link_settings_request(4);
        assert_eq!(b.len(), 96);
        u32s(&mut b, 4, 10000);
        b[8] = 1;
        b[11] = 1;
        u32s(&mut b, 48, 0b100000); // supported word 0: bit 5
        u32s(&mut b, 48 + 12, 1 << 24); // supported word 3: bit 120
        u32s(&mut b, 48 + 16, 1 << 5); // advertising word 0
        u32s(&mut b, 48 + 32 + 4, 1); // lp_advertising word 1: bit 32
        let LinkSettingsReply::Settings(s) = decode_link_settings(&b, 4).unwrap() else {
            panic!("expected settings")
        };
        assert_eq!(s.speed, 10000);
        assert_eq!((s.duplex, s.autoneg), (1, 1));
        assert_eq!(s.supported.bits().collect::<Vec<_>>(), vec![5, 120]);
        assert_eq!(s.advertising.bits().collect::<Vec<_>>(), vec![5]);
        assert_eq!(s.lp_advertising.bits().collect::<Vec<_>>(), vec![32]);
        assert_eq!(s.source, SettingsSource::LinkSettings { nwords: 4 });
        // A reply claiming more words than the buffer holds is an error, not a panic.
        b[15] = 5;
        assert!(decode_link_settings(&b, 5).is_err());
        assert!(decode_link_settings(&b[..40], 4).is_err());
    }

    #[test]
    fn legacy_speed_combines_high_and_low() {
        let mut b = encode_legacy_request();
        b[12..16].copy_from_slice(&[0x10, 0x27, 0x01, 0x00]); // seen on veth
        let s = decode_legacy(&b).unwrap();
        assert_eq!((s.speed, s.duplex, s.port), (10000, 1, 0));
        b[12] = 0xff;
        b[13] = 0xff;
        b[28] = 0xff;
        b[29] = 0xff;
        assert_eq!(decode_legacy(&b).unwrap().speed, SPEED_UNKNOWN);
    }

    #[test]
    fn drvinfo_strings() {
        let mut b = encode_drvinfo_request();
        b[4..8].copy_from_slice(b"veth");
        b[36..39].copy_from_slice(b"1.0");
        b[100..132].copy_from_slice(&[b'x'; 32]); // no NUL: the whole field
        u32s(&mut b, 180, 10);
        let d = decode_drvinfo(&b).unwrap();
        assert_eq!((d.driver.as_str(), d.version.as_str()), ("veth", "1.0"));
        assert_eq!(d.bus_info.len(), 32);
        assert_eq!(d.n_stats, 10);
    }

    #[test]
    fn sset_info_counts_follow_the_returned_mask() {
        let asked = 0xffff_ffffu64;
        let mut b = encode_sset_info_request(asked);
        u32s(&mut b, 8, 0x372);
        for (i, c) in [10, 64, 3, 5, 4, 121].iter().enumerate() {
            u32s(&mut b, 16 + 4 * i, *c);
        }
        assert_eq!(
            decode_sset_info(&b, asked).unwrap(),
            vec![(1, 10), (4, 64), (5, 3), (6, 5), (8, 4), (9, 121)]
        );
        assert!(decode_sset_info(&b, 0x2).is_err());
    }

    #[test]
    fn gstrings_and_stats_count_changed() {
        let mut b = encode_gstrings_request(1, 2);
        b[12..16].copy_from_slice(b"abcd");
        b[44..47].copy_from_slice(b"xyz");
        assert_eq!(
            decode_gstrings(&b, 1, 2).unwrap(),
            Some(vec!["abcd".into(), "xyz".into()])
        );
        u32s(&mut b, 8, 0);
        assert_eq!(decode_gstrings(&b, 1, 2).unwrap(), None);
        u32s(&mut b, 8, 3);
        assert!(decode_gstrings(&b, 1, 2).is_err());

        let mut s = encode_stats_request(2);
        E::write_u64(&mut s[16..], u64::MAX);
        assert_eq!(decode_stats(&s, 2).unwrap(), Some(vec![0, u64::MAX]));
        u32s(&mut s, 4, 0);
        assert_eq!(decode_stats(&s, 2).unwrap(), None);
    }

    #[test]
    fn required_len_bounds_every_request() {
        assert_eq!(required_len(&encode_link_settings_request(4)), Some(96));
        assert_eq!(
            required_len(&encode_gstrings_request(1, 10)),
            Some(12 + 320)
        );
        assert_eq!(required_len(&encode_stats_request(10)), Some(88));
        assert_eq!(required_len(&encode_sset_info_request(0x202)), Some(24));
        assert_eq!(required_len(&encode_perm_addr_request()), Some(40));
        assert_eq!(required_len(&encode_value(cmd::GLINK, 0)), Some(8));
        // A zero count would let the kernel write everything it has: refused.
        let mut g = encode_gstrings_request(1, 1);
        u32s(&mut g, 8, 0);
        assert_eq!(required_len(&g), None);
        assert_eq!(required_len(&encode_value(0xfff0, 0)), None);
        assert_eq!(required_len(&[1, 0]), None);
    }

    #[test]
    fn fixed_structs_round_trip() {
        let r = RingParam {
            rx_max_pending: 4096,
            tx_max_pending: 4096,
            rx_pending: 256,
            tx_pending: 256,
            ..Default::default()
        };
        assert_eq!(
            RingParam::decode(&r.encode(cmd::GRINGPARAM), cmd::GRINGPARAM).unwrap(),
            r
        );
        assert!(RingParam::decode(&r.encode(cmd::SRINGPARAM), cmd::GRINGPARAM).is_err());
        let c = Channels {
            max_rx: 2,
            max_tx: 2,
            rx_count: 1,
            tx_count: 1,
            ..Default::default()
        };
        assert_eq!(
            Channels::decode(&c.encode(cmd::GCHANNELS), cmd::GCHANNELS).unwrap(),
            c
        );
        let p = PauseParam {
            autoneg: 1,
            rx_pause: 0,
            tx_pause: 1,
        };
        assert_eq!(
            PauseParam::decode(&p.encode(cmd::GPAUSEPARAM), cmd::GPAUSEPARAM).unwrap(),
            p
        );
        let mut k = Coalesce::default();
        k.0[21] = 7;
        let enc = k.encode(cmd::GCOALESCE);
        assert_eq!(enc.len(), 92);
        assert_eq!(Coalesce::decode(&enc, cmd::GCOALESCE).unwrap().0[21], 7);
        let mut pa = encode_perm_addr_request();
        u32s(&mut pa, 4, 6);
        pa[8..14].copy_from_slice(&[2, 0xfc, 0, 0, 0, 1]);
        assert_eq!(decode_perm_addr(&pa).unwrap(), vec![2, 0xfc, 0, 0, 0, 1]);
        u32s(&mut pa, 4, 33);
        assert!(decode_perm_addr(&pa).is_err());
    }
}
