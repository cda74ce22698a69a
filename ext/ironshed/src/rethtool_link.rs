//! Link settings (`Rethtool::Handle#link_settings`) and the link-mode table
//! (`Rethtool::Handle.link_mode`), as Hashes and Arrays the Ruby classes turn into objects.

use crate::{
    errors,
    rethtool_handle::{hash_from, ifname, RbHandle},
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
            ruby.sym_new(duplex.key()).as_value(),
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
        ruby.sym_new(m.kind.key()).as_value(),
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
    let int = |v: u8| ruby.integer_from_u64(v as u64).as_value();
    let (source, words) = match ls.source {
        SettingsSource::LinkSettings { nwords } => ("glinksettings", nwords),
        SettingsSource::Legacy => ("gset", 1),
    };
    hash_from(
        ruby,
        &[
            ("speed", ruby.integer_from_u64(ls.speed as u64).as_value()),
            ("duplex", int(ls.duplex)),
            ("port", int(ls.port)),
            ("phy_address", int(ls.phy_address)),
            ("autoneg", int(ls.autoneg)),
            ("mdio_support", int(ls.mdio_support)),
            ("eth_tp_mdix", int(ls.eth_tp_mdix)),
            ("eth_tp_mdix_ctrl", int(ls.eth_tp_mdix_ctrl)),
            ("transceiver", int(ls.transceiver)),
            ("master_slave_cfg", int(ls.master_slave_cfg)),
            ("master_slave_state", int(ls.master_slave_state)),
            ("rate_matching", int(ls.rate_matching)),
            ("source", ruby.sym_new(source).as_value()),
            ("link_mode_words", int(words)),
            ("supported", modes(ruby, &described[0]).as_value()),
            ("advertising", modes(ruby, &described[1]).as_value()),
            ("lp_advertising", modes(ruby, &described[2]).as_value()),
        ],
    )
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
