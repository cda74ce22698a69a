//! `Rethtool::Handle`: an ethtool session (a socket, and `/proc/net/dev`) in the caller's
//! network namespace or a named one. The plain-Ruby classes in lib/rethtool/ open one per
//! query and close it; without a namespace they all share the calling thread's session
//! (one socket, see `Session::current`). The query methods live in the other
//! `rethtool_*.rs` files.

use crate::errors;
use ironshed_core::ethtool::{IfName, Netns, Session, Transport};
use magnus::{function, method, prelude::*, Error, RClass, RHash, RString, Ruby, Value};
use std::cell::{Ref, RefCell};
use std::path::PathBuf;
use std::sync::Arc;

#[magnus::wrap(class = "Rethtool::Handle", free_immediately, size)]
pub struct RbHandle(RefCell<Option<Arc<Session>>>);

/// A Hash of Symbol keys built in one call (interned keys, one bulk insert): these replies
/// are built on every query, so they avoid a String allocation and a protected call per key.
pub fn hash_from(ruby: &Ruby, pairs: &[(&str, Value)]) -> Result<RHash, Error> {
    let h = ruby.hash_new();
    let mut flat = Vec::with_capacity(pairs.len() * 2);
    for (k, v) in pairs {
        flat.push(ruby.sym_new(*k).as_value());
        flat.push(*v);
    }
    h.bulk_insert(&flat)?;
    Ok(h)
}

/// Copies a Ruby String's bytes into a checked interface name.
pub fn ifname(ruby: &Ruby, name: RString) -> Result<IfName, Error> {
    // SAFETY: the slice is copied before any other Ruby call can move or free the string.
    let bytes = unsafe { name.as_slice() }.to_vec();
    IfName::new(&bytes).map_err(|e| errors::ethtool(ruby, e))
}

impl RbHandle {
    /// `_open(kind, value)`: kind nil (caller's namespace), "name", "pid" or "path".
    fn open(ruby: &Ruby, kind: Option<String>, value: Option<String>) -> Result<Self, Error> {
        let arg = |ruby: &Ruby| {
            value
                .clone()
                .ok_or_else(|| Error::new(ruby.exception_arg_error(), "namespace value missing"))
        };
        let ns = match kind.as_deref() {
            None => None,
            Some("name") => Some(Netns::name(&arg(ruby)?).map_err(|e| errors::ethtool(ruby, e))?),
            Some("pid") => {
                let v = arg(ruby)?;
                let pid = v.parse::<u32>().map_err(|_| {
                    Error::new(ruby.exception_arg_error(), format!("bad process id {v:?}"))
                })?;
                Some(Netns::Pid(pid))
            }
            Some("path") => Some(Netns::Path(PathBuf::from(arg(ruby)?))),
            Some(other) => {
                return Err(Error::new(
                    ruby.exception_arg_error(),
                    format!("unknown namespace kind {other:?}"),
                ))
            }
        };
        let session = match ns {
            None => Session::current(),
            Some(ns) => Session::open(Some(ns)).map(Arc::new),
        };
        session
            .map(|s| RbHandle(RefCell::new(Some(s))))
            .map_err(|e| errors::ethtool(ruby, e))
    }

    /// The open session, or IOError if closed.
    pub fn session(&self, ruby: &Ruby) -> Result<Ref<'_, Session>, Error> {
        let r = self.0.borrow();
        if r.is_none() {
            return Err(Error::new(
                ruby.exception_io_error(),
                "closed Rethtool::Handle",
            ));
        }
        Ok(Ref::map(r, |o| o.as_deref().expect("checked above")))
    }

    fn close(&self) {
        self.0.borrow_mut().take();
    }

    fn closed(&self) -> bool {
        self.0.borrow().is_none()
    }

    fn link(ruby: &Ruby, rb_self: &Self, name: RString) -> Result<bool, Error> {
        let ifn = ifname(ruby, name)?;
        let s = rb_self.session(ruby)?;
        s.ethtool()
            .link_up(&ifn)
            .map_err(|e| errors::ethtool(ruby, e))
    }

    fn if_flags(ruby: &Ruby, rb_self: &Self, name: RString) -> Result<u16, Error> {
        let ifn = ifname(ruby, name)?;
        let s = rb_self.session(ruby)?;
        s.if_flags(&ifn).map_err(|e| errors::ethtool(ruby, e))
    }

    fn if_index(ruby: &Ruby, rb_self: &Self, name: RString) -> Result<u32, Error> {
        let ifn = ifname(ruby, name)?;
        let s = rb_self.session(ruby)?;
        s.if_index(&ifn).map_err(|e| errors::ethtool(ruby, e))
    }

    /// `raw_ethtool(name, bytes)`: SIOCETHTOOL with a caller-built structure (rethtool 0.0.8's
    /// `Rethtool.ioctl`). The transport refuses commands whose reply size it cannot bound
    /// and buffers shorter than the kernel would write. Returns the buffer after the call.
    fn raw_ethtool(
        ruby: &Ruby,
        rb_self: &Self,
        name: RString,
        data: RString,
    ) -> Result<RString, Error> {
        let ifn = ifname(ruby, name)?;
        // SAFETY: copied before any other Ruby call.
        let mut buf = unsafe { data.as_slice() }.to_vec();
        let s = rb_self.session(ruby)?;
        s.ethtool()
            .transport()
            .ethtool(&ifn, &mut buf)
            .map_err(|source| {
                errors::ethtool(
                    ruby,
                    ironshed_core::ethtool::Error::Ioctl {
                        iface: ifn.to_string(),
                        op: format!("ioctl SIOCETHTOOL (command {:#x})", raw_cmd(&buf)),
                        source,
                    },
                )
            })?;
        Ok(ruby.str_from_slice(&buf))
    }

    fn check_name(ruby: &Ruby, name: RString) -> Result<bool, Error> {
        ifname(ruby, name).map(|_| true)
    }
}

fn raw_cmd(buf: &[u8]) -> u32 {
    buf.get(..4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}

/// Defines `Rethtool::Handle` and returns it so the other files can add their methods.
pub fn init(ruby: &Ruby) -> Result<RClass, Error> {
    let reth = ruby.define_class("Rethtool", ruby.class_object())?;
    let c = reth.define_class("Handle", ruby.class_object())?;
    c.define_singleton_method("_open", function!(RbHandle::open, 2))?;
    c.define_singleton_method("check_interface_name", function!(RbHandle::check_name, 1))?;
    c.define_method("close", method!(RbHandle::close, 0))?;
    c.define_method("closed?", method!(RbHandle::closed, 0))?;
    c.define_method("link", method!(RbHandle::link, 1))?;
    c.define_method("if_flags", method!(RbHandle::if_flags, 1))?;
    c.define_method("if_index", method!(RbHandle::if_index, 1))?;
    c.define_method("raw_ethtool", method!(RbHandle::raw_ethtool, 2))?;
    Ok(c)
}
