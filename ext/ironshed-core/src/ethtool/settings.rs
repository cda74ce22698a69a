//! What the numeric fields of [`LinkSettings`] mean: the tables of ports, duplex, MDI/MDI-X,
//! master/slave and rate matching values, the speeds that mean "unknown", and the names
//! ethtool prints for them. Keys are the short lower-case names rethtool's Ruby API gives
//! (`:tp`, `:full`, `:mdi_x`); a value a table does not know reads as its fallback.

use super::codec::{LinkSettings, SPEED_UNKNOWN};

/// Speeds that mean "unknown": 0, and `SPEED_UNKNOWN` as the 16-bit GSET field and as 32 bits.
pub const UNKNOWN_SPEEDS: [u32; 3] = [0, 0xffff, SPEED_UNKNOWN];

/// A `PORT_*` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    /// The kernel's value.
    pub value: u8,
    /// Short name (`tp`, `fibre`...).
    pub key: &'static str,
    /// What ethtool prints after "Port:".
    pub name: &'static str,
    /// The medium rethtool 0.0.8's `current_mode` gave this port ("T", "F"...).
    pub media: &'static str,
}

/// Every `PORT_*` value (<linux/ethtool.h>) with its names.
pub const PORTS: [Port; 8] = [
    port(0x00, "tp", "Twisted Pair", "T"),
    port(0x01, "aui", "AUI", "AUI"),
    port(0x02, "mii", "MII", "MII"),
    port(0x03, "fibre", "FIBRE", "F"),
    port(0x04, "bnc", "BNC", "BNC"),
    port(0x05, "da", "Direct Attach Copper", "DA"),
    port(0xef, "none", "None", "None"),
    port(0xff, "other", "Other", "Other"),
];

const fn port(value: u8, key: &'static str, name: &'static str, media: &'static str) -> Port {
    Port {
        value,
        key,
        name,
        media,
    }
}

/// `DUPLEX_*` (anything else, 0xff included, is unknown).
pub const DUPLEX: [(u8, &str); 2] = [(0, "half"), (1, "full")];
/// `ETH_TP_MDI_*`: MDI/MDI-X status and control.
pub const MDIX: [(u8, &str); 4] = [(0, "unknown"), (1, "mdi"), (2, "mdi_x"), (3, "auto")];
/// `MASTER_SLAVE_CFG_*`.
pub const MASTER_SLAVE_CFG: [(u8, &str); 6] = [
    (0, "unsupported"),
    (1, "unknown"),
    (2, "master_preferred"),
    (3, "slave_preferred"),
    (4, "master_force"),
    (5, "slave_force"),
];
/// `MASTER_SLAVE_STATE_*`.
pub const MASTER_SLAVE_STATE: [(u8, &str); 5] = [
    (0, "unsupported"),
    (1, "unknown"),
    (2, "master"),
    (3, "slave"),
    (4, "error"),
];
/// `RATE_MATCH_*`.
pub const RATE_MATCHING: [(u8, &str); 4] =
    [(0, "none"), (1, "pause"), (2, "crs"), (3, "open_loop")];

/// The key of `value` in `table`, or `fallback`.
pub fn lookup(table: &[(u8, &'static str)], value: u8, fallback: &'static str) -> &'static str {
    table
        .iter()
        .find(|(v, _)| *v == value)
        .map_or(fallback, |(_, k)| k)
}

impl LinkSettings {
    /// Speed in Mb/s; `None` when the driver does not know it (no link, a virtual NIC).
    pub fn speed_mbps(&self) -> Option<u32> {
        (!UNKNOWN_SPEEDS.contains(&self.speed)).then_some(self.speed)
    }
    /// "half", "full" or "unknown".
    pub fn duplex_key(&self) -> &'static str {
        lookup(&DUPLEX, self.duplex, "unknown")
    }
    /// The port, when its value is a known `PORT_*`.
    pub fn port_type(&self) -> Option<&'static Port> {
        PORTS.iter().find(|p| p.value == self.port)
    }
    /// The port's key ("tp", "fibre"...), or "unknown".
    pub fn port_key(&self) -> &'static str {
        self.port_type().map_or("unknown", |p| p.key)
    }
    /// The port as ethtool names it ("Twisted Pair"...; "Unknown! (N)" for another value).
    pub fn port_name(&self) -> String {
        self.port_type().map_or_else(
            || format!("Unknown! ({})", self.port),
            |p| p.name.to_string(),
        )
    }
    /// The medium of rethtool 0.0.8's current mode ("T", "F"...; "Unknown").
    pub fn port_media(&self) -> &'static str {
        self.port_type().map_or("Unknown", |p| p.media)
    }
    /// MDI/MDI-X status: "mdi", "mdi_x" or "unknown".
    pub fn mdix_key(&self) -> &'static str {
        lookup(&MDIX, self.eth_tp_mdix, "unknown")
    }
    /// MDI/MDI-X control: "mdi", "mdi_x", "auto" or "unknown".
    pub fn mdix_ctrl_key(&self) -> &'static str {
        lookup(&MDIX, self.eth_tp_mdix_ctrl, "unknown")
    }
    /// Master/slave configuration ("unsupported" unless the PHY has it; "unknown").
    pub fn master_slave_cfg_key(&self) -> &'static str {
        lookup(&MASTER_SLAVE_CFG, self.master_slave_cfg, "unknown")
    }
    /// Master/slave state.
    pub fn master_slave_state_key(&self) -> &'static str {
        lookup(&MASTER_SLAVE_STATE, self.master_slave_state, "unknown")
    }
    /// Rate matching mode of the PHY ("none" for an unknown value).
    pub fn rate_matching_key(&self) -> &'static str {
        lookup(&RATE_MATCHING, self.rate_matching, "none")
    }
    /// "external" for XCVR_EXTERNAL, else "internal".
    pub fn transceiver_key(&self) -> &'static str {
        if self.transceiver == 1 {
            "external"
        } else {
            "internal"
        }
    }
    /// Whether autonegotiation is on (AUTONEG_ENABLE).
    pub fn autoneg_on(&self) -> bool {
        self.autoneg == 1
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::SettingsSource;
    use super::*;

    fn settings() -> LinkSettings {
        LinkSettings {
            speed: 1000,
            duplex: 1,
            port: 0,
            phy_address: 0,
            autoneg: 1,
            mdio_support: 0,
            eth_tp_mdix: 2,
            eth_tp_mdix_ctrl: 3,
            transceiver: 0,
            master_slave_cfg: 0,
            master_slave_state: 0,
            rate_matching: 0,
            supported: Default::default(),
            advertising: Default::default(),
            lp_advertising: Default::default(),
            source: SettingsSource::Legacy,
        }
    }

    #[test]
    fn an_e1000_link() {
        let s = settings();
        assert_eq!(s.speed_mbps(), Some(1000));
        assert_eq!(
            (s.duplex_key(), s.port_key(), s.port_name(), s.port_media()),
            ("full", "tp", "Twisted Pair".to_string(), "T")
        );
        assert_eq!((s.mdix_key(), s.mdix_ctrl_key()), ("mdi_x", "auto"));
        assert_eq!((s.transceiver_key(), s.autoneg_on()), ("internal", true));
        assert_eq!(
            (
                s.master_slave_cfg_key(),
                s.master_slave_state_key(),
                s.rate_matching_key()
            ),
            ("unsupported", "unsupported", "none")
        );
    }

    #[test]
    fn unknown_values_read_as_their_fallbacks() {
        let mut s = settings();
        for speed in UNKNOWN_SPEEDS {
            s.speed = speed;
            assert_eq!(s.speed_mbps(), None);
        }
        s.speed = 0xfffe;
        assert_eq!(s.speed_mbps(), Some(0xfffe));
        (s.duplex, s.port, s.eth_tp_mdix, s.eth_tp_mdix_ctrl) = (0xff, 0x06, 9, 4);
        (s.master_slave_cfg, s.master_slave_state, s.rate_matching) = (6, 5, 4);
        (s.transceiver, s.autoneg) = (1, 0);
        assert_eq!(
            (s.duplex_key(), s.port_key(), s.port_name(), s.port_media()),
            ("unknown", "unknown", "Unknown! (6)".to_string(), "Unknown")
        );
        assert_eq!((s.mdix_key(), s.mdix_ctrl_key()), ("unknown", "unknown"));
        assert_eq!(
            (
                s.master_slave_cfg_key(),
                s.master_slave_state_key(),
                s.rate_matching_key()
            ),
            ("unknown", "unknown", "none")
        );
        assert_eq!((s.transceiver_key(), s.autoneg_on()), ("external", false));
    }

    #[test]
    fn every_port_as_ethtool_names_it() {
        // ethtool's dump_link_usettings: the names it prints after "Port:".
        let names: Vec<(u8, &str)> = PORTS.iter().map(|p| (p.value, p.name)).collect();
        assert_eq!(
            names,
            [
                (0, "Twisted Pair"),
                (1, "AUI"),
                (2, "MII"),
                (3, "FIBRE"),
                (4, "BNC"),
                (5, "Direct Attach Copper"),
                (0xef, "None"),
                (0xff, "Other")
            ]
        );
        let mut s = settings();
        for p in PORTS {
            s.port = p.value;
            assert_eq!((s.port_key(), s.port_media()), (p.key, p.media));
        }
    }
}
