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
//!     VMDKSync::UndoError             the undo file exists already, or clashes
//!   LVM::Error
//!     LVM::MetadataError              LVM text metadata that cannot be parsed
//!     LVM::SnapshotError              exception store unusable (bad magic, version, corrupt)
//!       LVM::InvalidSnapshot          the snapshot overflowed or failed (valid = 0)
//!       LVM::ThinDeltaError           thin_delta missing, failed, or printed what we can't read
//!     LVM::MetadataSnapshotError      a thin pool's metadata snapshot can't be reserved/released
//!   LVMSync::Error
//!     LVMSync::ProtocolError          not a PROTO[3] stream, or a truncated one
//!     LVMSync::SnapbackError          snapback file exists, clashes, or cannot be held
//!   Rethtool::Error
//!     Rethtool::InvalidInterfaceName  empty, 16+ bytes, or cut by the kernel (eth0:1)
//!     Rethtool::InvalidNamespaceName  a network namespace name with '/' or the like
//!     Rethtool::KernelReplyError      the kernel's reply made no sense (count never settled)
//! ```
//! A stream record past the end of the destination is an `Ironshed::DestinationError`.
//! System call failures become `SystemCallError` (`Errno::ENOENT`, `Errno::EOPNOTSUPP`...)
//! with a message naming the file or interface and the operation; a cancelled job becomes
//! `Interrupt`. `Rethtool` is a class, as in rethtool 0.0.8.

use ironshed_core::{block, ethtool, lvm, snapshot, vmdk, wire, IoContext};
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
    vmdk.define_error("UndoError", verr)?;
    let lvm = ruby.define_module("LVM")?;
    let lerr = lvm.define_error("Error", base)?;
    lvm.define_error("MetadataError", lerr)?;
    let serr = lvm.define_error("SnapshotError", lerr)?;
    lvm.define_error("InvalidSnapshot", serr)?;
    lvm.define_error("ThinDeltaError", serr)?;
    lvm.define_error("MetadataSnapshotError", lerr)?;
    let sync = ruby.define_module("LVMSync")?;
    let serr = sync.define_error("Error", base)?;
    sync.define_error("ProtocolError", serr)?;
    sync.define_error("SnapbackError", serr)?;
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
        vmdk::Error::UndoExists { .. } => raise(ruby, "VMDKSync::UndoError", msg),
        vmdk::Error::Undo(w) => match w {
            wire::Error::SnapbackClash { .. } => raise(ruby, "VMDKSync::UndoError", msg),
            other => wire(ruby, other),
        },
    }
}

pub fn lvm(ruby: &Ruby, e: lvm::Error) -> Error {
    raise(ruby, "LVM::MetadataError", e.to_string())
}

pub fn snapshot(ruby: &Ruby, e: snapshot::Error) -> Error {
    let msg = e.to_string();
    match e {
        snapshot::Error::Io(ctx) => io(ruby, ctx),
        snapshot::Error::Invalid { .. } => raise(ruby, "LVM::InvalidSnapshot", msg),
        snapshot::Error::Interrupted => Error::new(ruby.exception_interrupt(), "interrupted"),
        snapshot::Error::ThinDelta { .. } | snapshot::Error::ThinTool { .. } => {
            raise(ruby, "LVM::ThinDeltaError", msg)
        }
        _ => raise(ruby, "LVM::SnapshotError", msg),
    }
}

/// Maps by the underlying cause, keeping the whole message (which may say how much of the
/// stream was applied before the error).
pub fn wire(ruby: &Ruby, e: wire::Error) -> Error {
    let msg = e.to_string();
    let cause = match e {
        wire::Error::Stopped { cause, .. } => *cause,
        other => other,
    };
    match cause {
        wire::Error::Interrupted => Error::new(ruby.exception_interrupt(), "interrupted"),
        wire::Error::Empty { .. }
        | wire::Error::Handshake { .. }
        | wire::Error::TruncatedHeader { .. }
        | wire::Error::TruncatedData { .. }
        | wire::Error::ZeroDiscard { .. } => raise(ruby, "LVMSync::ProtocolError", msg),
        wire::Error::SnapbackExists { .. }
        | wire::Error::SnapbackClash { .. }
        | wire::Error::JournalBatch { .. } => raise(ruby, "LVMSync::SnapbackError", msg),
        wire::Error::PastEnd { .. } => raise(ruby, "Ironshed::DestinationError", msg),
        wire::Error::Source(s) => match s {
            snapshot::Error::Io(ctx) => io_with(ruby, ctx, &msg),
            other => snapshot(ruby, other),
        },
        wire::Error::Destination(block::Error::Interrupted) => {
            Error::new(ruby.exception_interrupt(), "interrupted")
        }
        wire::Error::Destination(block::Error::Io(ctx)) | wire::Error::Io(ctx) => {
            io_with(ruby, ctx, &msg)
        }
        wire::Error::Destination(_) => raise(ruby, "Ironshed::DestinationError", msg),
        wire::Error::Internal(_) => raise(ruby, "Ironshed::Error", msg),
        wire::Error::Stopped { .. } => raise(ruby, "LVMSync::Error", msg),
    }
}

/// Like [`io`], but the message is `full` (the error's whole text) minus the ": <OS reason>"
/// that SystemCallError adds back itself.
fn io_with(ruby: &Ruby, ctx: IoContext, full: &str) -> Error {
    let reason = format!(": {}", ctx.source);
    let msg = full
        .contains(&reason)
        .then(|| full.replacen(&reason, "", 1));
    match (ctx.errno(), msg) {
        (Some(errno), Some(m)) => {
            let cls = ruby.exception_system_call_error();
            match cls.funcall::<_, _, magnus::Exception>("new", (m, errno)) {
                Ok(exc) => Error::from(exc),
                Err(e) => e,
            }
        }
        _ => io(ruby, ctx),
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
