//! The one place where core errors become Ruby exceptions.
//!
//! Hierarchy (defined here at load time):
//! ```text
//! Ironshed::Error < StandardError
//!   Ironshed::DestinationError        destination is not a file/device, is busy, too small...
//!   VMDKSync::Error
//!     VMDKSync::FormatError           damaged or inconsistent delta/descriptor
//!       VMDKSync::UnsupportedFormat   well-formed, but a kind this version does not handle
//!     VMDKSync::BaseMismatch          delta does not belong to this base/destination
//!   Rethtool::Error
//!     Rethtool::InvalidInterfaceName  empty, 16+ bytes, or cut by the kernel (eth0:1)
//!     Rethtool::InvalidNamespaceName  a network namespace name with '/' or the like
//!     Rethtool::KernelReplyError      the kernel's reply made no sense (count never settled)
//! ```
//! System call failures become `SystemCallError` (`Errno::ENOENT`, `Errno::EOPNOTSUPP`...)
//! with a message naming the file or interface and the operation; a cancelled job becomes
//! `Interrupt`. `Rethtool` is a class, as in rethtool 0.0.8.

use ironshed_core::{block, ethtool, vmdk, IoContext};
use magnus::{prelude::*, Error, ExceptionClass, Ruby};

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let ironshed = ruby.define_module("Ironshed")?;
    let base = ironshed.define_error("Error", ruby.exception_standard_error())?;
    ironshed.define_error("DestinationError", base)?;
    let vmdk = ruby.define_module("VMDKSync")?;
    let verr = vmdk.define_error("Error", base)?;
    let fmt = vmdk.define_error("FormatError", verr)?;
    vmdk.define_error("UnsupportedFormat", fmt)?;
    vmdk.define_error("BaseMismatch", verr)?;
    let reth = ruby.define_class("Rethtool", ruby.class_object())?;
    let rerr = reth.define_error("Error", base)?;
    reth.define_error("InvalidInterfaceName", rerr)?;
    reth.define_error("InvalidNamespaceName", rerr)?;
    reth.define_error("KernelReplyError", rerr)?;
    Ok(())
}

/// Looks up an exception class by its constant path; falls back to RuntimeError so that an
/// error is always raised, never lost.
fn class(ruby: &Ruby, path: &str) -> ExceptionClass {
    ruby.class_object()
        .funcall::<_, _, ExceptionClass>("const_get", (path,))
        .unwrap_or_else(|_| ruby.exception_runtime_error())
}

fn raise(ruby: &Ruby, path: &str, msg: String) -> Error {
    Error::new(class(ruby, path), msg)
}

/// `SystemCallError.new(message, errno)`: the `Errno::` subclass for `errno` (or a plain
/// SystemCallError for a number Ruby has no name for, such as the kernel's ETOOSMALL 525).
fn syscall(ruby: &Ruby, msg: String, errno: i32) -> Error {
    let cls = ruby.exception_system_call_error();
    match cls.funcall::<_, _, magnus::Exception>("new", (msg, errno)) {
        Ok(exc) => Error::from(exc),
        Err(e) => e,
    }
}

/// `SystemCallError.new(message, errno)`, i.e. an `Errno::` instance naming the file.
pub fn io(ruby: &Ruby, ctx: IoContext) -> Error {
    let msg = format!("{}: {}", ctx.path.display(), ctx.op);
    match ctx.errno() {
        Some(errno) => syscall(ruby, msg, errno),
        None => raise(ruby, "Ironshed::Error", ctx.to_string()),
    }
}

/// ethtool errors: failed system calls stay `SystemCallError` ("Operation not supported -
/// eth0: get ring parameters (ETHTOOL_GRINGPARAM)"), our own refusals are `Rethtool::*`.
pub fn ethtool(ruby: &Ruby, e: ethtool::Error) -> Error {
    use ethtool::Error as E;
    match (&e, e.errno()) {
        (E::InvalidName { .. }, _) => raise(ruby, "Rethtool::InvalidInterfaceName", e.to_string()),
        (E::InvalidNetns { .. }, _) => raise(ruby, "Rethtool::InvalidNamespaceName", e.to_string()),
        (E::Kernel { .. }, _) => raise(ruby, "Rethtool::KernelReplyError", e.to_string()),
        (_, Some(errno)) => syscall(ruby, e.context(), errno),
        (_, None) => raise(ruby, "Rethtool::Error", e.to_string()),
    }
}

pub fn block(ruby: &Ruby, e: block::Error) -> Error {
    match e {
        block::Error::Interrupted => Error::new(ruby.exception_interrupt(), "interrupted"),
        block::Error::Io(ctx) => io(ruby, ctx),
        other => raise(ruby, "Ironshed::DestinationError", other.to_string()),
    }
}

pub fn vmdk(ruby: &Ruby, e: vmdk::Error) -> Error {
    let msg = e.to_string();
    match e {
        vmdk::Error::Format { .. } => raise(ruby, "VMDKSync::FormatError", msg),
        vmdk::Error::Unsupported { .. } => raise(ruby, "VMDKSync::UnsupportedFormat", msg),
        vmdk::Error::BaseMismatch { .. } => raise(ruby, "VMDKSync::BaseMismatch", msg),
        vmdk::Error::Destination(b) => block(ruby, b),
        vmdk::Error::Io(ctx) => io(ruby, ctx),
    }
}

/// A Rust panic caught at the GVL boundary: reported as Ironshed::Error, never a crash.
pub fn panic(ruby: &Ruby, what: &str) -> Error {
    raise(
        ruby,
        "Ironshed::Error",
        format!("internal error in {what} (a bug in ironshed; please report it)"),
    )
}
