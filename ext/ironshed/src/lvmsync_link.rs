//! `LVMSync::Native::Link`: the in-process stream from a local lvmsync's sender to its
//! receiver thread (`io::link`). `Native.send_link` takes the writing half, `Native.apply_link`
//! the reading half; each half ends when its call returns (the stream finished only when the
//! send succeeded; else the receiver fails), or when Ruby closes a half no call took.

use crate::convert::options;
use crate::{gvl, lvm_change_set::RbChangeSet, lvmsync_native, progress::RbProgress};
use ironshed_core::io::link::{self, LinkReader, LinkWriter};
use ironshed_core::wire::{self, Input, SendOptions};
use magnus::scan_args::scan_args;
use magnus::{function, method, prelude::*, Error, RHash, Ruby, Value};
use std::path::PathBuf;
use std::sync::Mutex;

#[magnus::wrap(class = "LVMSync::Native::Link", free_immediately, size)]
pub struct RbLink {
    writer: Mutex<Option<LinkWriter>>,
    reader: Mutex<Option<LinkReader>>,
}

/// Takes a half out of its slot, once.
fn take<T>(ruby: &Ruby, slot: &Mutex<Option<T>>, what: &str) -> Result<T, Error> {
    slot.lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .ok_or_else(|| {
            Error::new(
                ruby.exception_arg_error(),
                format!("the link's {what} was taken or closed already"),
            )
        })
}

impl RbLink {
    fn new() -> Self {
        let (w, r) = link::link();
        RbLink {
            writer: Mutex::new(Some(w)),
            reader: Mutex::new(Some(r)),
        }
    }
    /// Ends the writing half if no send took it (the receiver then sees the stream end).
    fn close_writer(&self) {
        drop(self.writer.lock().unwrap_or_else(|p| p.into_inner()).take());
    }
    /// Ends the reading half if no apply took it (the sender's next write then fails).
    fn close_reader(&self) {
        drop(self.reader.lock().unwrap_or_else(|p| p.into_inner()).take());
    }
}

/// `send_link(change_set, source, link, name, job, **SendOptions)`: `Native.send` into the
/// link's writing half.
fn send_link(ruby: &Ruby, args: &[Value]) -> Result<RHash, Error> {
    let a =
        scan_args::<(&RbChangeSet, PathBuf, &RbLink, String, &RbProgress), (), (), (), RHash, ()>(
            args,
        )?;
    let (set, source, link, name, job) = a.required;
    let opts: SendOptions = options(ruby, a.keywords)?;
    let digests = opts.digests;
    let w = take(ruby, &link.writer, "writing half")?.cancelled_by(job.0.clone());
    let (set, prog) = ((*set.0).clone(), job.0.clone());
    let result = gvl::without_gvl(&job.0, move || {
        wire::send_changes_to_link(set, &source, w, &name, &opts, &prog)
    });
    lvmsync_native::sent(ruby, result, digests)
}

/// `apply_link(link, name, dest, job, **ApplyOptions)`: `Native.apply_fd` from the link's
/// reading half.
fn apply_link(ruby: &Ruby, args: &[Value]) -> Result<RHash, Error> {
    let a = scan_args::<(&RbLink, String, PathBuf, &RbProgress), (), (), (), RHash, ()>(args)?;
    let (link, name, dest, job) = a.required;
    let r = take(ruby, &link.reader, "reading half")?.cancelled_by(job.0.clone());
    lvmsync_native::apply(
        ruby,
        Input::Stream(Box::new(r), name),
        dest,
        job,
        a.keywords,
    )
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let n = ruby.define_module("LVMSync")?.define_module("Native")?;
    let c = n.define_class("Link", ruby.class_object())?;
    c.define_singleton_method("new", function!(RbLink::new, 0))?;
    c.define_method("close_writer", method!(RbLink::close_writer, 0))?;
    c.define_method("close_reader", method!(RbLink::close_reader, 0))?;
    c.const_set("SENDER_STOPPED", link::SENDER_STOPPED)?;
    n.define_singleton_method("send_link", function!(send_link, -1))?;
    n.define_singleton_method("apply_link", function!(apply_link, -1))?;
    Ok(())
}
