//! Link settings (`Rethtool::Handle#link_settings`, a `Rethtool::LinkSettingsData`) and the
//! link-mode table (`Rethtool::Handle.link_mode`), which lib/rethtool/link_settings.rb turns
//! into `Rethtool::LinkSettings`.

use crate::{
    errors,
    rethtool_handle::{ifname, RbHandle},
};
use ironshed_core::ethtool::{link_modes, Kind, LinkMode, LinkSettings, SettingsSource};
use magnus::{function, method, prelude::*, Error, RArray, RClass, RString, Ruby, Value};

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

/// `Rethtool::LinkSettingsData`: one GLINKSETTINGS (or GSET) reply, its fields read on demand
/// (a query builds one object rather than a Hash of every field).
#[magnus::wrap(class = "Rethtool::LinkSettingsData", free_immediately, size)]
pub struct RbLinkSettings {
    ls: LinkSettings,
    modes: [Vec<LinkMode>; 3],
}

impl RbLinkSettings {
    fn speed(&self) -> u32 {
        self.ls.speed
    }
    fn duplex(&self) -> u8 {
        self.ls.duplex
    }
    fn port(&self) -> u8 {
        self.ls.port
    }
    fn phy_address(&self) -> u8 {
        self.ls.phy_address
    }
    fn autoneg(&self) -> u8 {
        self.ls.autoneg
    }
    fn mdio_support(&self) -> u8 {
        self.ls.mdio_support
    }
    fn eth_tp_mdix(&self) -> u8 {
        self.ls.eth_tp_mdix
    }
    fn eth_tp_mdix_ctrl(&self) -> u8 {
        self.ls.eth_tp_mdix_ctrl
    }
    fn transceiver(&self) -> u8 {
        self.ls.transceiver
    }
    fn master_slave_cfg(&self) -> u8 {
        self.ls.master_slave_cfg
    }
    fn master_slave_state(&self) -> u8 {
        self.ls.master_slave_state
    }
    fn rate_matching(&self) -> u8 {
        self.ls.rate_matching
    }
    /// :glinksettings, or :gset for the legacy command.
    fn source(ruby: &Ruby, rb_self: &Self) -> magnus::value::StaticSymbol {
        match rb_self.ls.source {
            SettingsSource::LinkSettings { .. } => ruby.sym_new("glinksettings"),
            SettingsSource::Legacy => ruby.sym_new("gset"),
        }
    }
    fn link_mode_words(&self) -> u8 {
        match self.ls.source {
            SettingsSource::LinkSettings { nwords } => nwords,
            SettingsSource::Legacy => 1,
        }
    }
    fn supported(ruby: &Ruby, rb_self: &Self) -> RArray {
        modes(ruby, &rb_self.modes[0])
    }
    fn advertising(ruby: &Ruby, rb_self: &Self) -> RArray {
        modes(ruby, &rb_self.modes[1])
    }
    fn lp_advertising(ruby: &Ruby, rb_self: &Self) -> RArray {
        modes(ruby, &rb_self.modes[2])
    }
}

fn link_settings(ruby: &Ruby, rb_self: &RbHandle, name: RString) -> Result<RbLinkSettings, Error> {
    let ifn = ifname(ruby, name)?;
    let s = rb_self.session(ruby)?;
    let et = s.ethtool();
    let ls = et
        .link_settings(&ifn)
        .map_err(|e| errors::ethtool(ruby, e))?;
    let [a, b, c]: [Vec<LinkMode>; 3] = et
        .describe_modes(&ifn, &[&ls.supported, &ls.advertising, &ls.lp_advertising])
        .map_err(|e| errors::ethtool(ruby, e))?
        .try_into()
        .map_err(|_| {
            Error::new(
                ruby.exception_runtime_error(),
                "internal: three masks expected",
            )
        })?;
    Ok(RbLinkSettings {
        ls,
        modes: [a, b, c],
    })
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
    let reth = ruby.define_class("Rethtool", ruby.class_object())?;
    let d = reth.define_class("LinkSettingsData", ruby.class_object())?;
    d.undef_default_alloc_func();
    d.define_method("speed", method!(RbLinkSettings::speed, 0))?;
    d.define_method("duplex", method!(RbLinkSettings::duplex, 0))?;
    d.define_method("port", method!(RbLinkSettings::port, 0))?;
    d.define_method("phy_address", method!(RbLinkSettings::phy_address, 0))?;
    d.define_method("autoneg", method!(RbLinkSettings::autoneg, 0))?;
    d.define_method("mdio_support", method!(RbLinkSettings::mdio_support, 0))?;
    d.define_method("eth_tp_mdix", method!(RbLinkSettings::eth_tp_mdix, 0))?;
    d.define_method(
        "eth_tp_mdix_ctrl",
        method!(RbLinkSettings::eth_tp_mdix_ctrl, 0),
    )?;
    d.define_method("transceiver", method!(RbLinkSettings::transceiver, 0))?;
    d.define_method(
        "master_slave_cfg",
        method!(RbLinkSettings::master_slave_cfg, 0),
    )?;
    d.define_method(
        "master_slave_state",
        method!(RbLinkSettings::master_slave_state, 0),
    )?;
    d.define_method("rate_matching", method!(RbLinkSettings::rate_matching, 0))?;
    d.define_method("source", method!(RbLinkSettings::source, 0))?;
    d.define_method(
        "link_mode_words",
        method!(RbLinkSettings::link_mode_words, 0),
    )?;
    d.define_method("supported", method!(RbLinkSettings::supported, 0))?;
    d.define_method("advertising", method!(RbLinkSettings::advertising, 0))?;
    d.define_method("lp_advertising", method!(RbLinkSettings::lp_advertising, 0))?;
    c.define_method("link_settings", method!(link_settings, 1))?;
    c.define_method("link_mode_names", method!(link_mode_names, 1))?;
    c.define_singleton_method("link_mode", function!(link_mode, 1))?;
    c.define_singleton_method("classify_link_mode", function!(classify, 1))?;
    c.const_set("KNOWN_LINK_MODES", link_modes::KNOWN.len())?;
    Ok(())
}
