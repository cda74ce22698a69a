//! The one way values cross the boundary.
//!
//! * Options come in as Ruby keyword arguments and fill a core options struct
//!   ([`Kwargs`], implemented with [`kwargs!`]): the keywords are checked against one list by
//!   `rb_get_kwargs` (an unknown one raises `ArgumentError`), absent ones keep the core's
//!   default.
//! * Results go out as wrapped objects, or as one Hash per core struct ([`hash!`]): Symbol
//!   keys named after the struct's fields, each field listed once.
//! * Byte ranges go out as `[offset, length]` pairs, the form every `#extents` returns.

use ironshed_core::snapshot::Changes;
use magnus::r_hash::ForEach;
use magnus::{
    prelude::*, Error, IntoValue, RArray, RHash, RString, Ruby, Symbol, TryConvert, Value,
};

/// `(name, value)` of every keyword, for a core operation that checks the names itself.
pub fn keyword_pairs<T: TryConvert>(ruby: &Ruby, kw: RHash) -> Result<Vec<(String, T)>, Error> {
    let mut out = Vec::new();
    kw.foreach(|k: Symbol, v: Value| {
        let name = k.name()?.into_owned();
        let v = keyword(ruby, &name, v)?;
        out.push((name, v));
        Ok(ForEach::Continue)
    })?;
    Ok(out)
}

/// A core options struct filled from Ruby keyword arguments.
pub trait Kwargs {
    /// The keywords accepted, in order.
    const KEYWORDS: &'static [&'static str];
    /// Sets the fields whose keywords `kw` holds; raises `ArgumentError` for any other key.
    fn set_from(&mut self, ruby: &Ruby, kw: RHash) -> Result<(), Error>;
}

/// Converts the value of keyword `key`, naming the keyword when it has the wrong type.
pub fn keyword<T: TryConvert>(ruby: &Ruby, key: &str, v: Value) -> Result<T, Error> {
    T::try_convert(v).map_err(|e| Error::new(ruby.exception_type_error(), format!("{key}: {e}")))
}

/// `Option<Value>`, once per keyword of a [`kwargs!`] list.
macro_rules! kw_slot {
    ($key:ident) => {
        Option<magnus::Value>
    };
}

/// Assigns a keyword's value to its field (the field named like the keyword unless given).
macro_rules! kw_assign {
    ($out:ident, $v:expr, $key:ident) => {
        $out.$key = $v
    };
    ($out:ident, $v:expr, $key:ident, $field:ident) => {
        $out.$field = $v
    };
}

/// Implements [`Kwargs`] for a core options struct: `kwargs!(Type { key, key => field })`.
macro_rules! kwargs {
    ($ty:ty { $( $key:ident $(=> $field:ident)? ),+ $(,)? }) => {
        impl $crate::convert::Kwargs for $ty {
            const KEYWORDS: &'static [&'static str] = &[$(stringify!($key)),+];
            fn set_from(&mut self, ruby: &magnus::Ruby, kw: magnus::RHash) -> Result<(), magnus::Error> {
                let args = magnus::scan_args::get_kwargs::<_, (), ($($crate::convert::kw_slot!($key),)+), ()>(
                    kw, &[], Self::KEYWORDS,
                )?;
                let ($($key,)+) = args.optional;
                $(
                    if let Some(v) = $key {
                        let v = $crate::convert::keyword(ruby, stringify!($key), v)?;
                        $crate::convert::kw_assign!(self, v, $key $(, $field)?);
                    }
                )+
                Ok(())
            }
        }
    };
}

/// A Hash with a Symbol key per listed field of `$v` (`$v.field`, converted with
/// `IntoValue`), and per `key = expression` pair after a `;`. Without `$v`
/// (`hash!(ruby; a, b)`), the listed names are local variables (bound by a pattern).
macro_rules! hash {
    ($ruby:expr; $($f:ident),* $(; $($k:ident = $e:expr),+ )? $(,)?) => {{
        let h = $ruby.hash_new();
        $( h.aset($ruby.sym_new(stringify!($f)), $crate::convert::own($f))?; )*
        $( $( h.aset($ruby.sym_new(stringify!($k)), $e)?; )+ )?
        h
    }};
    ($ruby:expr, $v:expr; $($f:ident),* $(; $($k:ident = $e:expr),+ )? $(,)?) => {{
        let h = $ruby.hash_new();
        $( h.aset($ruby.sym_new(stringify!($f)), $crate::convert::own(&$v.$f))?; )*
        $( $( h.aset($ruby.sym_new(stringify!($k)), $e)?; )+ )?
        h
    }};
}

/// Defines a reader method on `$class` per listed field of the wrapped core value `$ty.0`;
/// with `=> ruby` at the end, also the class's `FIELDS` constant listing them.
macro_rules! readers {
    ($class:expr, $ty:ty; $($f:ident),+ $(,)? => $ruby:expr) => {
        $crate::convert::readers!($class, $ty; $($f),+);
        $class.const_set("FIELDS", $crate::convert::symbols($ruby, &[$(stringify!($f)),+]))?;
    };
    ($class:expr, $ty:ty; $($f:ident),+ $(,)?) => {
        $( $class.define_method(
            stringify!($f),
            magnus::method!(|s: &$ty| $crate::convert::own(&s.0.$f), 0),
        )?; )+
    };
}

/// Defines a reader method on `$class` per listed method of the wrapped core value
/// (`$ty.0.method()`), named after it; `as Symbol` after the list makes each `&'static str`
/// result a Symbol.
macro_rules! calls {
    ($class:expr, $ty:ty; $($m:ident),+ $(,)?) => {
        $( $class.define_method(stringify!($m), magnus::method!(|s: &$ty| s.0.$m(), 0))?; )+
    };
    ($class:expr, $ty:ty; $($m:ident),+ $(,)? as Symbol) => {
        $( $class.define_method(
            stringify!($m),
            magnus::method!(|r: &magnus::Ruby, s: &$ty| r.sym_new(s.0.$m()), 0),
        )?; )+
    };
}

pub(crate) use {calls, hash, kw_assign, kw_slot, kwargs, readers};

/// The bytes of a Ruby String, copied (binary data, or text that need not be UTF-8).
pub fn bytes(s: magnus::RString) -> Vec<u8> {
    // SAFETY: the bytes are copied before any Ruby code can run again.
    unsafe { s.as_slice() }.to_vec()
}

/// An owned copy of a field, for conversion.
pub fn own<T: Clone>(v: &T) -> T {
    v.clone()
}

/// Options struct `T` (from its `Default`) with the keywords of `kw` applied.
pub fn options<T: Kwargs + Default>(ruby: &Ruby, kw: RHash) -> Result<T, Error> {
    let mut o = T::default();
    o.set_from(ruby, kw)?;
    Ok(o)
}

/// `[[offset, length], ...]` of coalesced ranges.
pub fn extents(ruby: &Ruby, c: &Changes) -> Result<RArray, Error> {
    let out = ruby.ary_new_capa(c.ranges().len());
    for r in c.ranges() {
        out.push((r.offset, r.len))?;
    }
    Ok(out)
}

/// A Hash of Symbol keys built in one call (interned keys, one bulk insert), for replies
/// built on every query of a monitoring loop.
pub fn fields_hash<T: IntoValue>(
    ruby: &Ruby,
    fields: impl Iterator<Item = (&'static str, T)>,
) -> Result<RHash, Error> {
    let h = ruby.hash_new();
    let mut flat = Vec::new();
    for (k, v) in fields {
        flat.push(ruby.sym_new(k).as_value());
        flat.push(v.into_value_with(ruby));
    }
    h.bulk_insert(&flat)?;
    Ok(h)
}

/// The names of a core struct's fields as a frozen Array of Symbols.
pub fn symbols(ruby: &Ruby, names: &[&str]) -> RArray {
    let a = ruby.ary_from_iter(names.iter().map(|n| ruby.sym_new(*n)));
    a.freeze();
    a
}

/// A frozen Array of frozen Strings.
pub fn strings(ruby: &Ruby, list: &[&str]) -> RArray {
    let a = ruby.ary_from_iter(list.iter().map(|s| RString::new_frozen(ruby.str_new(s))));
    a.freeze();
    a
}

/// `{key: [:field, ...], ...}`, frozen: field lists for Ruby classes' readers.
pub fn symbol_lists(ruby: &Ruby, lists: &[(&str, &[&str])]) -> Result<RHash, Error> {
    let h = ruby.hash_new();
    for (k, names) in lists {
        h.aset(ruby.sym_new(*k), symbols(ruby, names))?;
    }
    h.freeze();
    Ok(h)
}
