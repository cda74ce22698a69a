//! `Rethtool::LinkSettingsData`: one GLINKSETTINGS (or GSET) reply, its fields read on
//! demand (a query builds one object rather than a Hash of every field and mode), which
//! lib/rethtool/link_settings.rb turns into `Rethtool::LinkSettings`; and the link modes, one
//! Hash each.

use crate::convert::{hash, readers};
use ironshed_core::ethtool::{self, Ethtool, IfName, LinkMode, LinkSettings, Transport};
use magnus::{method, prelude::*, Error, RArray, RHash, Ruby, StaticSymbol};

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
