//! Link settings (`Rethtool::Handle#link_settings`) and the link-mode table
//! (`Rethtool::Handle.link_mode`), as Hashes and Arrays the Ruby classes turn into objects.

use crate::{
    errors,
    rethtool_handle::{ifname, RbHandle},
};
use ironshed_core::ethtool::{link_modes, Kind, LinkMode, SettingsSource};
use magnus::{function, method, prelude::*, Error, RArray, RClass, RHash, RString, Ruby, Value};

/// `[bit, name, kind, speed, duplex, media]`; speed/duplex/media are nil unless kind is :speed.
fn mode_array(ruby: &Ruby, m: &LinkMode) -> RArray {
    let (speed, duplex, media): (Value, Value, Value) = match &m.kind {
        Kind::Speed {
            speed,
            duplex,
            media,
        } => (
            ruby.integer_from_u64(*speed as u64).as_value(),
            ruby.to_symbol(duplex.key()).as_value(),
            ruby.str_new(media).as_value(),
        ),
        _ => (
            ruby.qnil().as_value(),
            ruby.qnil().as_value(),
            ruby.qnil().as_value(),
        ),
    };
    ruby.ary_new_from_values(&[
        ruby.integer_from_u64(m.bit as u64).as_value(),
        ruby.str_new(&m.name).as_value(),
        ruby.to_symbol(m.kind.key()).as_value(),
        speed,
        duplex,
        media,
    ])
}

fn modes(ruby: &Ruby, list: &[LinkMode]) -> RArray {
    let a = ruby.ary_new_capa(list.len());
    for m in list {
        let _ = a.push(mode_array(ruby, m));
    }
    a
}

fn link_settings(ruby: &Ruby, rb_self: &RbHandle, name: RString) -> Result<RHash, Error> {
    let ifn = ifname(ruby, name)?;
    let s = rb_self.session(ruby)?;
    let et = s.ethtool();
    let ls = et
        .link_settings(&ifn)
        .map_err(|e| errors::ethtool(ruby, e))?;
    let described = et
        .describe_modes(&ifn, &[&ls.supported, &ls.advertising, &ls.lp_advertising])
        .map_err(|e| errors::ethtool(ruby, e))?;
    let h = ruby.hash_new();
    let sym = |k: &str| ruby.to_symbol(k);
    h.aset(sym("speed"), ls.speed)?;
    h.aset(sym("duplex"), ls.duplex)?;
    h.aset(sym("port"), ls.port)?;
    h.aset(sym("phy_address"), ls.phy_address)?;
    h.aset(sym("autoneg"), ls.autoneg)?;
    h.aset(sym("mdio_support"), ls.mdio_support)?;
    h.aset(sym("eth_tp_mdix"), ls.eth_tp_mdix)?;
    h.aset(sym("eth_tp_mdix_ctrl"), ls.eth_tp_mdix_ctrl)?;
    h.aset(sym("transceiver"), ls.transceiver)?;
    h.aset(sym("master_slave_cfg"), ls.master_slave_cfg)?;
    h.aset(sym("master_slave_state"), ls.master_slave_state)?;
    h.aset(sym("rate_matching"), ls.rate_matching)?;
    match ls.source {
        SettingsSource::LinkSettings { nwords } => {
            h.aset(sym("source"), sym("glinksettings"))?;
            h.aset(sym("link_mode_words"), nwords)?;
        }
        SettingsSource::Legacy => {
            h.aset(sym("source"), sym("gset"))?;
            h.aset(sym("link_mode_words"), 1)?;
        }
    }
    h.aset(sym("supported"), modes(ruby, &described[0]))?;
    h.aset(sym("advertising"), modes(ruby, &described[1]))?;
    h.aset(sym("lp_advertising"), modes(ruby, &described[2]))?;
    Ok(h)
}

fn link_mode_names(ruby: &Ruby, rb_self: &RbHandle, name: RString) -> Result<Vec<String>, Error> {
    let ifn = ifname(ruby, name)?;
    let s = rb_self.session(ruby)?;
    s.ethtool()
        .link_mode_names(&ifn)
        .map_err(|e| errors::ethtool(ruby, e))
}

/// `Rethtool::Handle.link_mode(bit)`: the library's own description of a bit.
fn link_mode(ruby: &Ruby, bit: u32) -> RArray {
    mode_array(ruby, &link_modes::describe(bit, None))
}

/// `Rethtool::Handle.classify_link_mode(name)`: kind, speed, duplex, media parsed from a name.
fn classify(ruby: &Ruby, name: String) -> RArray {
    mode_array(
        ruby,
        &LinkMode {
            bit: 0,
            kind: link_modes::classify(&name),
            name,
        },
    )
}

pub fn init(ruby: &Ruby, c: RClass) -> Result<(), Error> {
    c.define_method("link_settings", method!(link_settings, 1))?;
    c.define_method("link_mode_names", method!(link_mode_names, 1))?;
    c.define_singleton_method("link_mode", function!(link_mode, 1))?;
    c.define_singleton_method("classify_link_mode", function!(classify, 1))?;
    c.const_set("KNOWN_LINK_MODES", link_modes::KNOWN.len())?;
    let _ = ruby;
    Ok(())
}
