//! Driver info (a `Rethtool::DriverInfoData`), and rings, channels, pause, coalescing and the
//! permanent address as Hashes (`Rethtool::Handle#driver_info`, `#rings`, `#set_rings`, ...).

use crate::{
    errors,
    rethtool_handle::{hash_from, ifname, RbHandle},
};
use ironshed_core::ethtool::{Channels, DrvInfo, RingParam};
use magnus::{
    method, prelude::*, Error, IntoValue, RArray, RClass, RHash, RString, Ruby, Symbol, Value,
};

fn hash_of<I: IntoIterator<Item = (&'static str, u64)>>(
    ruby: &Ruby,
    it: I,
) -> Result<RHash, Error> {
    let pairs: Vec<(&str, Value)> = it
        .into_iter()
        .map(|(k, v)| (k, ruby.integer_from_u64(v).as_value()))
        .collect();
    hash_from(ruby, &pairs)
}

/// Reads `key` (a Symbol) from `h` as a u32; missing keys keep `current`.
fn get_u32(ruby: &Ruby, h: RHash, key: &str, current: u32) -> Result<u32, Error> {
    match h.get(ruby.sym_new(key)) {
        None => Ok(current),
        Some(v) if v.is_nil() => Ok(current),
        Some(v) => u32::try_convert(v).map_err(|_| {
            Error::new(
                ruby.exception_arg_error(),
                format!("{key}: expected an integer 0..4294967295"),
            )
        }),
    }
}

fn check_keys(ruby: &Ruby, h: RHash, allowed: &[&str]) -> Result<(), Error> {
    for k in h.funcall::<_, _, RArray>("keys", ())?.into_iter() {
        let Some(sym) = Symbol::from_value(k) else {
            return Err(Error::new(
                ruby.exception_arg_error(),
                format!("keys must be Symbols (allowed: {})", allowed.join(", ")),
            ));
        };
        let name = sym.name()?;
        if !allowed.contains(&name.as_ref()) {
            return Err(Error::new(
                ruby.exception_arg_error(),
                format!("unknown key :{name} (allowed: {})", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

/// `Rethtool::DriverInfoData`: one GDRVINFO reply, fields read on demand.
#[magnus::wrap(class = "Rethtool::DriverInfoData", free_immediately, size)]
pub struct RbDrvInfo(DrvInfo);

impl RbDrvInfo {
    fn driver(&self) -> String {
        self.0.driver.clone()
    }
    fn version(&self) -> String {
        self.0.version.clone()
    }
    fn fw_version(&self) -> String {
        self.0.fw_version.clone()
    }
    fn bus_info(&self) -> String {
        self.0.bus_info.clone()
    }
    fn erom_version(&self) -> String {
        self.0.erom_version.clone()
    }
    fn n_priv_flags(&self) -> u32 {
        self.0.n_priv_flags
    }
    fn n_stats(&self) -> u32 {
        self.0.n_stats
    }
    fn testinfo_len(&self) -> u32 {
        self.0.testinfo_len
    }
    fn eedump_len(&self) -> u32 {
        self.0.eedump_len
    }
    fn regdump_len(&self) -> u32 {
        self.0.regdump_len
    }
}

fn driver_info(ruby: &Ruby, rb_self: &RbHandle, name: RString) -> Result<RbDrvInfo, Error> {
    let ifn = ifname(ruby, name)?;
    let s = rb_self.session(ruby)?;
    let d = s
        .ethtool()
        .drvinfo(&ifn)
        .map_err(|e| errors::ethtool(ruby, e))?;
    Ok(RbDrvInfo(d))
}

const RING_KEYS: [&str; 8] = [
    "rx_max_pending",
    "rx_mini_max_pending",
    "rx_jumbo_max_pending",
    "tx_max_pending",
    "rx_pending",
    "rx_mini_pending",
    "rx_jumbo_pending",
    "tx_pending",
];

fn ring_hash(ruby: &Ruby, r: &RingParam) -> Result<RHash, Error> {
    let v = [
        r.rx_max_pending,
        r.rx_mini_max_pending,
        r.rx_jumbo_max_pending,
        r.tx_max_pending,
        r.rx_pending,
        r.rx_mini_pending,
        r.rx_jumbo_pending,
        r.tx_pending,
    ];
    hash_of(
        ruby,
        RING_KEYS.iter().copied().zip(v.iter().map(|&x| x as u64)),
    )
}

fn rings(ruby: &Ruby, rb_self: &RbHandle, name: RString) -> Result<RHash, Error> {
    let ifn = ifname(ruby, name)?;
    let s = rb_self.session(ruby)?;
    let r = s
        .ethtool()
        .rings(&ifn)
        .map_err(|e| errors::ethtool(ruby, e))?;
    ring_hash(ruby, &r)
}

/// `set_rings(name, {rx_pending: 512, ...})`: reads the current sizes, changes the given
/// ones (only the four *_pending may be set), issues SRINGPARAM, and returns the sizes read
/// back (drivers may round).
fn set_rings(ruby: &Ruby, rb_self: &RbHandle, name: RString, want: RHash) -> Result<RHash, Error> {
    check_keys(ruby, want, &RING_KEYS[4..])?;
    let ifn = ifname(ruby, name)?;
    let s = rb_self.session(ruby)?;
    let et = s.ethtool();
    let mut r = et.rings(&ifn).map_err(|e| errors::ethtool(ruby, e))?;
    r.rx_pending = get_u32(ruby, want, "rx_pending", r.rx_pending)?;
    r.rx_mini_pending = get_u32(ruby, want, "rx_mini_pending", r.rx_mini_pending)?;
    r.rx_jumbo_pending = get_u32(ruby, want, "rx_jumbo_pending", r.rx_jumbo_pending)?;
    r.tx_pending = get_u32(ruby, want, "tx_pending", r.tx_pending)?;
    et.set_rings(&ifn, &r)
        .map_err(|e| errors::ethtool(ruby, e))?;
    let back = et.rings(&ifn).map_err(|e| errors::ethtool(ruby, e))?;
    ring_hash(ruby, &back)
}

const CHANNEL_KEYS: [&str; 8] = [
    "max_rx",
    "max_tx",
    "max_other",
    "max_combined",
    "rx_count",
    "tx_count",
    "other_count",
    "combined_count",
];

fn channel_hash(ruby: &Ruby, c: &Channels) -> Result<RHash, Error> {
    let v = [
        c.max_rx,
        c.max_tx,
        c.max_other,
        c.max_combined,
        c.rx_count,
        c.tx_count,
        c.other_count,
        c.combined_count,
    ];
    hash_of(
        ruby,
        CHANNEL_KEYS
            .iter()
            .copied()
            .zip(v.iter().map(|&x| x as u64)),
    )
}

fn channels(ruby: &Ruby, rb_self: &RbHandle, name: RString) -> Result<RHash, Error> {
    let ifn = ifname(ruby, name)?;
    let s = rb_self.session(ruby)?;
    let c = s
        .ethtool()
        .channels(&ifn)
        .map_err(|e| errors::ethtool(ruby, e))?;
    channel_hash(ruby, &c)
}

/// `set_channels(name, {rx_count: 2, ...})`, like `set_rings`.
fn set_channels(
    ruby: &Ruby,
    rb_self: &RbHandle,
    name: RString,
    want: RHash,
) -> Result<RHash, Error> {
    check_keys(ruby, want, &CHANNEL_KEYS[4..])?;
    let ifn = ifname(ruby, name)?;
    let s = rb_self.session(ruby)?;
    let et = s.ethtool();
    let mut c = et.channels(&ifn).map_err(|e| errors::ethtool(ruby, e))?;
    c.rx_count = get_u32(ruby, want, "rx_count", c.rx_count)?;
    c.tx_count = get_u32(ruby, want, "tx_count", c.tx_count)?;
    c.other_count = get_u32(ruby, want, "other_count", c.other_count)?;
    c.combined_count = get_u32(ruby, want, "combined_count", c.combined_count)?;
    et.set_channels(&ifn, &c)
        .map_err(|e| errors::ethtool(ruby, e))?;
    let back = et.channels(&ifn).map_err(|e| errors::ethtool(ruby, e))?;
    channel_hash(ruby, &back)
}

fn pause(ruby: &Ruby, rb_self: &RbHandle, name: RString) -> Result<RHash, Error> {
    let ifn = ifname(ruby, name)?;
    let s = rb_self.session(ruby)?;
    let p = s
        .ethtool()
        .pause(&ifn)
        .map_err(|e| errors::ethtool(ruby, e))?;
    hash_from(
        ruby,
        &[
            ("autoneg", (p.autoneg != 0).into_value_with(ruby)),
            ("rx_pause", (p.rx_pause != 0).into_value_with(ruby)),
            ("tx_pause", (p.tx_pause != 0).into_value_with(ruby)),
        ],
    )
}

fn coalesce(ruby: &Ruby, rb_self: &RbHandle, name: RString) -> Result<RHash, Error> {
    let ifn = ifname(ruby, name)?;
    let s = rb_self.session(ruby)?;
    let c = s
        .ethtool()
        .coalesce(&ifn)
        .map_err(|e| errors::ethtool(ruby, e))?;
    hash_of(ruby, c.fields().map(|(k, v)| (k, v as u64)))
}

fn perm_addr(ruby: &Ruby, rb_self: &RbHandle, name: RString) -> Result<RString, Error> {
    let ifn = ifname(ruby, name)?;
    let s = rb_self.session(ruby)?;
    let a = s
        .ethtool()
        .perm_addr(&ifn)
        .map_err(|e| errors::ethtool(ruby, e))?;
    Ok(ruby.str_from_slice(&a))
}

pub fn init(ruby: &Ruby, c: RClass) -> Result<(), Error> {
    let reth = ruby.define_class("Rethtool", ruby.class_object())?;
    let d = reth.define_class("DriverInfoData", ruby.class_object())?;
    d.undef_default_alloc_func();
    d.define_method("driver", method!(RbDrvInfo::driver, 0))?;
    d.define_method("version", method!(RbDrvInfo::version, 0))?;
    d.define_method("fw_version", method!(RbDrvInfo::fw_version, 0))?;
    d.define_method("bus_info", method!(RbDrvInfo::bus_info, 0))?;
    d.define_method("erom_version", method!(RbDrvInfo::erom_version, 0))?;
    d.define_method("n_priv_flags", method!(RbDrvInfo::n_priv_flags, 0))?;
    d.define_method("n_stats", method!(RbDrvInfo::n_stats, 0))?;
    d.define_method("testinfo_len", method!(RbDrvInfo::testinfo_len, 0))?;
    d.define_method("eedump_len", method!(RbDrvInfo::eedump_len, 0))?;
    d.define_method("regdump_len", method!(RbDrvInfo::regdump_len, 0))?;
    c.define_method("driver_info", method!(driver_info, 1))?;
    c.define_method("rings", method!(rings, 1))?;
    c.define_method("set_rings", method!(set_rings, 2))?;
    c.define_method("channels", method!(channels, 1))?;
    c.define_method("set_channels", method!(set_channels, 2))?;
    c.define_method("pause", method!(pause, 1))?;
    c.define_method("coalesce", method!(coalesce, 1))?;
    c.define_method("perm_addr", method!(perm_addr, 1))?;
    Ok(())
}
