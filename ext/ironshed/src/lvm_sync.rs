//! `LVMSync::Native`: the send and apply loops, run without the GVL. lib/lvmsync.rb gives
//! them their keyword arguments and result structs.
//!
//! File descriptors handed in (a pipe, standard input or output) are duplicated, so the
//! native loop owns its copy and Ruby may close its IO object independently.

use crate::lvm_cow_store::RbCowStore;
use crate::{errors, gvl, progress::RbProgress};
use ironshed_core::io::{SourceDevice, WaitingFile};
use ironshed_core::wire::{self, ApplyOptions, Input, SendOptions};
use magnus::{function, prelude::*, Error, RHash, Ruby};
use std::fs::File;
use std::os::fd::FromRawFd;
use std::path::PathBuf;

fn dup_fd(ruby: &Ruby, fd: i32, what: &str) -> Result<File, Error> {
    // SAFETY: fcntl on a caller-provided descriptor; a bad one just fails with EBADF.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        let e = std::io::Error::last_os_error();
        return Err(errors::io(
            ruby,
            ironshed_core::IoContext::new(std::path::Path::new(what), "duplicate descriptor", e),
        ));
    }
    // SAFETY: `new` is a fresh descriptor we own.
    Ok(unsafe { File::from_raw_fd(new) })
}

fn send(
    ruby: &Ruby,
    store: &RbCowStore,
    source: PathBuf,
    out_fd: i32,
    out_name: String,
    max_record: u32,
    progress: &RbProgress,
) -> Result<RHash, Error> {
    let src = SourceDevice::open(&source).map_err(|e| errors::wire(ruby, wire::Error::Io(e)))?;
    let mut changes = store.changes.clone();
    changes
        .clip_to(src.len(), &source.display().to_string())
        .map_err(|e| errors::snapshot(ruby, e))?;
    let out_file = dup_fd(ruby, out_fd, &out_name)?;
    let prog = progress.0.clone();
    let opts = SendOptions {
        max_record,
        ..Default::default()
    };
    let result = gvl::without_gvl(&progress.0, || {
        let mut out = WaitingFile::new(out_file).cancelled_by(&prog);
        let none = ironshed_core::snapshot::Changes::default();
        wire::send(&changes, &none, &src, &mut out, &out_name, &opts, &prog)
    })
    .ok_or_else(|| errors::panic(ruby, "LVMSync.send"))?;
    let st = result.map_err(|e| errors::wire(ruby, e))?;
    let h = ruby.hash_new();
    h.aset(ruby.to_symbol("records"), st.records)?;
    h.aset(ruby.to_symbol("bytes"), st.bytes)?;
    h.aset(ruby.to_symbol("stream_bytes"), st.stream_bytes)?;
    h.aset(ruby.to_symbol("ranges"), changes.ranges().len())?;
    h.aset(ruby.to_symbol("source_size"), src.len())?;
    h.aset(ruby.to_symbol("read_mode"), src.mode().describe())?;
    Ok(h)
}

#[allow(clippy::too_many_arguments)]
fn apply(
    ruby: &Ruby,
    input_path: Option<PathBuf>,
    input_fd: Option<i32>,
    input_name: String,
    dest: PathBuf,
    snapback: Option<PathBuf>,
    allow_short: bool,
    progress: &RbProgress,
) -> Result<RHash, Error> {
    let input = match (input_path, input_fd) {
        (Some(p), _) => Input::File(p),
        (None, Some(fd)) => Input::Fd(dup_fd(ruby, fd, &input_name)?, input_name),
        (None, None) => {
            return Err(Error::new(
                ruby.exception_arg_error(),
                "apply needs an input path or descriptor",
            ))
        }
    };
    let opts = ApplyOptions {
        snapback,
        allow_short_destination: allow_short,
        ..Default::default()
    };
    let prog = progress.0.clone();
    let result = gvl::without_gvl(&progress.0, move || wire::apply(input, &dest, &opts, &prog))
        .ok_or_else(|| errors::panic(ruby, "LVMSync.apply"))?;
    let st = result.map_err(|e| errors::wire(ruby, e))?;
    let h = ruby.hash_new();
    let s = |k: &str| ruby.to_symbol(k);
    h.aset(s("records"), st.records)?;
    h.aset(s("bytes"), st.bytes)?;
    h.aset(s("writes"), st.writes)?;
    h.aset(s("skipped_records"), st.skipped_records)?;
    h.aset(s("skipped_bytes"), st.skipped_bytes)?;
    h.aset(s("journaled"), st.journaled)?;
    h.aset(s("ignored_records"), st.ignored_records)?;
    h.aset(s("ignored_bytes"), st.ignored_bytes)?;
    h.aset(s("checked_first"), st.checked_first)?;
    h.aset(s("dest_size"), st.dest_size)?;
    match st.undo {
        Some(u) => {
            let uh = ruby.hash_new();
            uh.aset(s("records"), u.records)?;
            uh.aset(s("bytes"), u.bytes)?;
            uh.aset(s("commits"), u.commits)?;
            uh.aset(s("file_bytes"), u.file_bytes)?;
            h.aset(s("snapback"), uh)?;
        }
        None => h.aset(s("snapback"), ruby.qnil())?,
    }
    Ok(h)
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let m = ruby.define_module("LVMSync")?;
    let n = m.define_module("Native")?;
    n.define_singleton_method("send", function!(send, 6))?;
    n.define_singleton_method("apply", function!(apply, 7))?;
    n.const_set("PROTOCOL", wire::HANDSHAKE_LINE)?;
    n.const_set("MAX_SEND_RECORD", wire::MAX_SEND_RECORD)?;
    Ok(())
}
