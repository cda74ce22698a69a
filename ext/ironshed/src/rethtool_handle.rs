//! `Rethtool::Handle`: an ethtool session (a socket, and `/proc/net/dev`) in the caller's
//! network namespace or another one, and every query on it. The plain-Ruby classes in
//! lib/rethtool/ open one per query and close it; without a namespace they all share the
//! calling thread's session (one socket, see `Session::current`).

use crate::convert::{fields_hash, keyword_pairs, kwargs, options, symbol_lists};
use crate::errors::OrRaise;
use crate::rethtool_driver_info::RbDrvInfo;
use crate::rethtool_link_settings::{mode_hash, RbLinkSettings};
use ironshed_core::ethtool::{self, link_modes, Channels, IfName, LinkMode};
use ironshed_core::ethtool::{Netns, RingParam, Session};
use magnus::scan_args::scan_args;
use magnus::{function, method, prelude::*, Error, RHash, RString, Ruby, Value};
use std::cell::{Ref, RefCell};
use std::path::PathBuf;
use std::sync::Arc;

#[magnus::wrap(class = "Rethtool::Handle", free_immediately, size)]
pub struct RbHandle(RefCell<Option<Arc<Session>>>);

/// The namespace keywords of `Handle._open` (see `Netns::select`).
#[derive(Default)]
struct NetnsSpec {
    name: Option<String>,
    pid: Option<u32>,
    path: Option<PathBuf>,
}
kwargs!(NetnsSpec { name, pid, path });

/// Copies a Ruby String's bytes into a checked interface name.
fn ifname(ruby: &Ruby, name: RString) -> Result<IfName, Error> {
    // SAFETY: IfName::new copies the bytes; no Ruby code runs while the slice is borrowed.
    let checked = IfName::new(unsafe { name.as_slice() });
    checked.or_raise(ruby)
}

/// Defines one method per entry, taking the interface name: `"name" => |session, ifname|
/// query, |ruby, reply| conversion;`.
macro_rules! queries {
    ($c:expr; $($name:literal => |$s:ident, $i:ident| $q:expr, |$r:ident, $x:ident| $conv:expr;)+) => {
        $(
            $c.define_method(
                $name,
                method!(
                    |$r: &Ruby, h: &RbHandle, n: RString| {
                        let $x = h.query($r, n, |$s: &Session, $i: &IfName| $q)?;
                        $conv
                    },
                    1
                ),
            )?;
        )+
    };
}

impl RbHandle {
    /// `_open(name:, pid:, path:)`: at most one; none for the caller's namespace.
    fn open(ruby: &Ruby, args: &[Value]) -> Result<Self, Error> {
        let a = scan_args::<(), (), (), (), RHash, ()>(args)?;
        let spec: NetnsSpec = options(ruby, a.keywords)?;
        let ns = Netns::select(spec.name.as_deref(), spec.pid, spec.path).or_raise(ruby)?;
        let session = Session::in_netns(ns).or_raise(ruby)?;
        Ok(RbHandle(RefCell::new(Some(session))))
    }

    /// `_current`: the calling thread's session in its own namespace (no keywords to parse:
    /// the common case, one per query).
    fn current(ruby: &Ruby) -> Result<Self, Error> {
        Ok(RbHandle(RefCell::new(Some(
            Session::current().or_raise(ruby)?,
        ))))
    }

    /// The open session, or IOError if closed.
    fn session(&self, ruby: &Ruby) -> Result<Ref<'_, Arc<Session>>, Error> {
        Ref::filter_map(self.0.borrow(), Option::as_ref)
            .map_err(|_| Error::new(ruby.exception_io_error(), "closed Rethtool::Handle"))
    }

    /// Runs one query of interface `name`.
    fn query<R>(
        &self,
        ruby: &Ruby,
        name: RString,
        f: impl FnOnce(&Session, &IfName) -> ethtool::Result<R>,
    ) -> Result<R, Error> {
        let ifn = ifname(ruby, name)?;
        let s = self.session(ruby)?;
        f(&s, &ifn).or_raise(ruby)
    }
}

/// `set_rings(name, **sizes)`: the sizes read back afterwards.
fn set_rings(ruby: &Ruby, h: &RbHandle, args: &[Value]) -> Result<RHash, Error> {
    let a = scan_args::<(RString,), (), (), (), RHash, ()>(args)?;
    let c = keyword_pairs(ruby, a.keywords)?;
    let r = h.query(ruby, a.required.0, |s, i| s.ethtool().update_rings(i, &c))?;
    fields_hash(ruby, r.fields())
}
/// `set_channels(name, **counts)`: the counts read back afterwards.
fn set_channels(ruby: &Ruby, h: &RbHandle, args: &[Value]) -> Result<RHash, Error> {
    let a = scan_args::<(RString,), (), (), (), RHash, ()>(args)?;
    let c = keyword_pairs(ruby, a.keywords)?;
    let r = h.query(ruby, a.required.0, |s, i| {
        s.ethtool().update_channels(i, &c)
    })?;
    fields_hash(ruby, r.fields())
}
fn strings(ruby: &Ruby, h: &RbHandle, name: RString, set: u32) -> Result<Vec<String>, Error> {
    h.query(ruby, name, |s, i| s.ethtool().strings(i, set))
}
/// `string_set_counts(name, mask)`: `{set => count}` for the sets of `mask` the driver has.
fn string_set_counts(ruby: &Ruby, h: &RbHandle, name: RString, mask: u64) -> Result<RHash, Error> {
    let list = h.query(ruby, name, |s, i| s.ethtool().sset_counts(i, mask))?;
    Ok(ruby.hash_from_iter(list))
}
/// `raw_ethtool(name, bytes)`: SIOCETHTOOL with a caller-built structure (rethtool 0.0.8's
/// `Rethtool.ioctl`); returns the buffer after the call.
fn raw_ethtool(ruby: &Ruby, h: &RbHandle, name: RString, data: RString) -> Result<RString, Error> {
    // SAFETY: copied before any other Ruby call.
    let mut buf = unsafe { data.as_slice() }.to_vec();
    h.query(ruby, name, |s, i| s.ethtool().raw(i, &mut buf))?;
    Ok(ruby.str_from_slice(&buf))
}
fn classify(ruby: &Ruby, name: String) -> Result<RHash, Error> {
    let kind = link_modes::classify(&name);
    mode_hash(ruby, &LinkMode { bit: 0, kind, name })
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let reth = ruby.define_class("Rethtool", ruby.class_object())?;
    let c = reth.define_class("Handle", ruby.class_object())?;
    c.define_singleton_method("_open", function!(RbHandle::open, -1))?;
    c.define_singleton_method("_current", function!(RbHandle::current, 0))?;
    c.define_singleton_method(
        "check_interface_name",
        function!(|r: &Ruby, n: RString| ifname(r, n).map(|_| true), 1),
    )?;
    c.define_singleton_method(
        "link_mode",
        function!(
            |r: &Ruby, bit: u32| mode_hash(r, &link_modes::describe(bit, None)),
            1
        ),
    )?;
    c.define_singleton_method("classify_link_mode", function!(classify, 1))?;
    c.const_set("KNOWN_LINK_MODES", link_modes::KNOWN.len())?;
    // Field lists of the structures returned as Hashes, for the Ruby classes' readers.
    let fields: [(&str, &[&str]); 4] = [
        ("rings", RingParam::FIELDS),
        ("channels", Channels::FIELDS),
        ("coalesce", &ethtool::codec::COALESCE_FIELDS),
        ("counters", &ethtool::netdev::COUNTER_FIELDS),
    ];
    c.const_set("FIELDS", symbol_lists(ruby, &fields)?)?;
    let settable: [(&str, &[&str]); 2] = [
        ("rings", RingParam::SETTABLE),
        ("channels", Channels::SETTABLE),
    ];
    c.const_set("SETTABLE", symbol_lists(ruby, &settable)?)?;
    c.define_method(
        "close",
        method!(|h: &RbHandle| drop(h.0.borrow_mut().take()), 0),
    )?;
    c.define_method("closed?", method!(|h: &RbHandle| h.0.borrow().is_none(), 0))?;
    queries!(c;
        "link" => |s, i| s.ethtool().link_up(i), |r, x| Ok::<_, Error>(x);
        "if_flags" => |s, i| s.if_flags(i), |r, x| Ok::<_, Error>(x);
        "if_index" => |s, i| s.if_index(i), |r, x| Ok::<_, Error>(x);
        "link_mode_names" => |s, i| s.ethtool().link_mode_names(i), |r, x| Ok::<_, Error>(x);
        "link_settings" => |s, i| RbLinkSettings::query(s.ethtool(), i), |r, x| Ok::<_, Error>(x);
        "driver_info" => |s, i| s.ethtool().drvinfo(i), |r, x| Ok::<_, Error>(RbDrvInfo(x));
        "rings" => |s, i| s.ethtool().rings(i), |r, x| fields_hash(r, x.fields());
        "channels" => |s, i| s.ethtool().channels(i), |r, x| fields_hash(r, x.fields());
        "pause" => |s, i| s.ethtool().pause(i), |r, x| fields_hash(r, x.flags());
        "coalesce" => |s, i| s.ethtool().coalesce(i), |r, x| fields_hash(r, x.fields());
        "counters" => |s, i| s.counters(i), |r, x| fields_hash(r, x.fields().into_iter());
        "perm_addr" => |s, i| s.ethtool().perm_addr(i), |r, x| Ok::<_, Error>(r.str_from_slice(&x));
        // [[name, value], ...] in the driver's order (names may repeat).
        "stats" => |s, i| s.ethtool().stats(i), |r, x| Ok::<_, Error>(x);
    );
    c.define_method("set_rings", method!(set_rings, -1))?;
    c.define_method("set_channels", method!(set_channels, -1))?;
    c.define_method("strings", method!(strings, 2))?;
    c.define_method("string_set_counts", method!(string_set_counts, 2))?;
    c.define_method("raw_ethtool", method!(raw_ethtool, 2))?;
    Ok(())
}
