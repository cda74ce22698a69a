//! `Rethtool::LinkSettingsData`: one GLINKSETTINGS (or GSET) reply, its fields and what
//! they mean (`ethtool::settings`) read on demand (a query builds one object rather than a
//! Hash of every field and mode), which lib/rethtool/link_settings.rb turns into
//! `Rethtool::LinkSettings`; the link modes, one Hash each; and the tables of meanings as
//! constants.

use crate::convert::{calls, hash, readers};
use ironshed_core::ethtool::settings::{self, PORTS, UNKNOWN_SPEEDS};
use ironshed_core::ethtool::{
    self, link_modes, Ethtool, IfName, LinkMode, LinkSettings, Transport,
};
use magnus::{method, prelude::*, Error, RArray, RClass, RHash, Ruby, StaticSymbol};

#[magnus::wrap(class = "Rethtool::LinkSettingsData", free_immediately, size)]
pub struct RbLinkSettings(LinkSettings, [Vec<LinkMode>; 3]);

impl RbLinkSettings {
    /// The settings of `ifname` and the descriptions of their three link-mode masks.
    pub fn query<T: Transport>(e: &Ethtool<T>, ifname: &IfName) -> ethtool::Result<Self> {
        let ls = e.link_settings(ifname)?;
        let mut d = e
            .describe_modes(
                ifname,
                &[&ls.supported, &ls.advertising, &ls.lp_advertising],
            )?
            .into_iter();
        let mut next = || d.next().unwrap_or_default();
        let modes = [next(), next(), next()];
        Ok(RbLinkSettings(ls, modes))
    }
    /// :glinksettings, or :gset for the legacy command.
    fn source(ruby: &Ruby, rb_self: &Self) -> StaticSymbol {
        ruby.sym_new(rb_self.0.source.key())
    }
    fn modes(ruby: &Ruby, rb_self: &Self, i: usize) -> Result<RArray, Error> {
        let out = ruby.ary_new_capa(rb_self.1[i].len());
        for m in &rb_self.1[i] {
            out.push(mode_hash(ruby, m)?)?;
        }
        Ok(out)
    }
}

/// The tables of `ethtool::settings` as frozen constants of `class` (`{value => :key}`;
/// `PORTS` `{value => [:key, name]}`, `PORT_MEDIA` `{value => media}`).
fn tables(ruby: &Ruby, class: RClass) -> Result<(), Error> {
    for (name, t) in [
        ("DUPLEX", &settings::DUPLEX[..]),
        ("MDIX", &settings::MDIX),
        ("MASTER_SLAVE_CFG", &settings::MASTER_SLAVE_CFG),
        ("MASTER_SLAVE_STATE", &settings::MASTER_SLAVE_STATE),
        ("RATE_MATCHING", &settings::RATE_MATCHING),
    ] {
        let h = ruby.hash_new();
        for (v, k) in t {
            h.aset(*v, ruby.sym_new(*k))?;
        }
        h.freeze();
        class.const_set(name, h)?;
    }
    let (ports, media) = (ruby.hash_new(), ruby.hash_new());
    for p in &PORTS {
        ports.aset(p.value, (ruby.sym_new(p.key), p.name))?;
        media.aset(p.value, p.media)?;
    }
    let speeds = ruby.ary_from_iter(UNKNOWN_SPEEDS);
    for v in [ports.as_value(), media.as_value(), speeds.as_value()] {
        v.freeze();
    }
    class.const_set("PORTS", ports)?;
    class.const_set("PORT_MEDIA", media)?;
    class.const_set("UNKNOWN_SPEEDS", speeds)
}

/// `{bit:, name:, kind:, speed:, duplex:, media:}`; speed, duplex and media are nil unless
/// kind is :speed.
pub fn mode_hash(ruby: &Ruby, m: &LinkMode) -> Result<RHash, Error> {
    let sp = m.kind.speed();
    Ok(hash!(ruby, m; bit, name; kind = ruby.sym_new(m.kind.key()),
        speed = sp.map(|x| x.0), duplex = sp.map(|x| ruby.sym_new(x.1.key())),
        media = sp.map(|x| x.2)))
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let reth = ruby.define_class("Rethtool", ruby.class_object())?;
    let d = reth.define_class("LinkSettingsData", ruby.class_object())?;
    d.undef_default_alloc_func();
    readers!(d, RbLinkSettings; speed, duplex, port, phy_address, autoneg, mdio_support,
        eth_tp_mdix, eth_tp_mdix_ctrl, transceiver, master_slave_cfg, master_slave_state,
        rate_matching);
    calls!(d, RbLinkSettings; speed_mbps, port_name, port_media, autoneg_on);
    calls!(d, RbLinkSettings; duplex_key, port_key, mdix_key, mdix_ctrl_key,
        master_slave_cfg_key, master_slave_state_key, rate_matching_key, transceiver_key as Symbol);
    d.define_method(
        "best_advertised",
        method!(
            |r: &Ruby, s: &RbLinkSettings| link_modes::best(&s.1[1])
                .map(|m| mode_hash(r, m))
                .transpose(),
            0
        ),
    )?;
    tables(ruby, d)?;
    d.define_method("source", method!(RbLinkSettings::source, 0))?;
    d.define_method(
        "link_mode_words",
        method!(|s: &RbLinkSettings| s.0.source.words(), 0),
    )?;
    d.define_method(
        "supported",
        method!(
            |r: &Ruby, s: &RbLinkSettings| RbLinkSettings::modes(r, s, 0),
            0
        ),
    )?;
    d.define_method(
        "advertising",
        method!(
            |r: &Ruby, s: &RbLinkSettings| RbLinkSettings::modes(r, s, 1),
            0
        ),
    )?;
    d.define_method(
        "lp_advertising",
        method!(
            |r: &Ruby, s: &RbLinkSettings| RbLinkSettings::modes(r, s, 2),
            0
        ),
    )?;
    Ok(())
}
