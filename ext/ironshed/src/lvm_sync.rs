//! `LVMSync::Native`: the send and apply loops, run without the GVL. lib/lvmsync.rb gives
//! them their keyword arguments and result structs.
//!
//! File descriptors handed in (a pipe, standard input or output) are duplicated, so the
//! native loop owns its copy and Ruby may close its IO object independently.
//!
//! Digests (`--verify`) cross into Ruby packed: a binary String of 24 bytes per digest
//! (big-endian u64 offset, u64 length, u64 XXH3-64 hash), in stream order.

use crate::{errors, gvl, lvm_changes, progress::RbProgress};
use ironshed_core::io::{SourceDevice, WaitingFile};
use ironshed_core::snapshot::Changes;
use ironshed_core::wire::{self, digest, ApplyOptions, Digest, Input, SendOptions};
use magnus::{function, prelude::*, Error, RHash, RString, Ruby, Value};
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

/// `nil` without digests, else the packed binary String.
fn packed(ruby: &Ruby, on: bool, digests: &[Digest]) -> Value {
    if on {
        ruby.str_from_slice(&digest::pack(digests)).as_value()
    } else {
        ruby.qnil().as_value()
    }
}

/// `Native.send(changes_obj, source, out_fd, out_name, max_record, discards, digests, job)`:
/// `changes_obj` is any change source [`lvm_changes::extract`] knows. Without `discards`, its
/// discard ranges are merged into the data ranges (sent as data: they read as zeros from the
/// source).
#[allow(clippy::too_many_arguments)]
fn send(
    ruby: &Ruby,
    changes_obj: Value,
    source: PathBuf,
    out_fd: i32,
    out_name: String,
    max_record: u32,
    discards_on: bool,
    digests_on: bool,
    progress: &RbProgress,
) -> Result<RHash, Error> {
    let (mut changes, mut discards) = lvm_changes::extract(ruby, changes_obj)?;
    if !discards_on && !discards.is_empty() {
        let all = changes.ranges().iter().chain(discards.ranges()).copied();
        changes = Changes::from_ranges(all.collect());
        discards = Changes::default();
    }
    let src = SourceDevice::open(&source).map_err(|e| errors::wire(ruby, wire::Error::Io(e)))?;
    let source_name = source.display().to_string();
    changes
        .clip_to(src.len(), &source_name)
        .map_err(|e| errors::snapshot(ruby, e))?;
    discards
        .clip_to(src.len(), &source_name)
        .map_err(|e| errors::snapshot(ruby, e))?;
    let out_file = dup_fd(ruby, out_fd, &out_name)?;
    let prog = progress.0.clone();
    let opts = SendOptions {
        max_record,
        discards: discards_on,
        digests: digests_on,
    };
    let result = gvl::without_gvl(&progress.0, || {
        let mut out = WaitingFile::new(out_file).cancelled_by(&prog);
        wire::send(&changes, &discards, &src, &mut out, &out_name, &opts, &prog)
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
    h.aset(ruby.to_symbol("discard_records"), st.discard_records)?;
    h.aset(ruby.to_symbol("discard_bytes"), st.discard_bytes)?;
    h.aset(
        ruby.to_symbol("digests"),
        packed(ruby, digests_on, &st.digests),
    )?;
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
    verify: bool,
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
        verify,
        force_discard_fallback: None,
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
    h.aset(s("discard_records"), st.discard_records)?;
    h.aset(s("discard_bytes"), st.discard_bytes)?;
    h.aset(s("discard_zeroed_bytes"), st.discard_zeroed_bytes)?;
    h.aset(s("discards_in_stream"), st.discards_in_stream)?;
    h.aset(s("digests"), packed(ruby, verify, &st.digests))?;
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

fn unpack(ruby: &Ruby, s: RString, what: &str) -> Result<Vec<Digest>, Error> {
    // SAFETY: the bytes are copied before any other Ruby call.
    let bytes = unsafe { s.as_slice() }.to_vec();
    digest::unpack(&bytes).ok_or_else(|| {
        Error::new(
            ruby.exception_arg_error(),
            format!(
                "{what} digests: {} bytes is not a whole number of {}-byte digests",
                bytes.len(),
                digest::DIGEST_BYTES
            ),
        )
    })
}

/// `Native.compare_digests(sent, received)` → `{matched:, mismatches:, examples: [[offset,
/// len, "differs"|"missing"|"unexpected"], ...]}` (at most 20 examples).
fn compare_digests(ruby: &Ruby, sent: RString, received: RString) -> Result<RHash, Error> {
    let a = unpack(ruby, sent, "sent")?;
    let b = unpack(ruby, received, "received")?;
    let r = wire::compare_digests(&a, &b);
    let h = ruby.hash_new();
    h.aset(ruby.to_symbol("matched"), r.matched)?;
    h.aset(ruby.to_symbol("mismatches"), r.mismatches)?;
    let ex = ruby.ary_new_capa(r.examples.len());
    for m in &r.examples {
        ex.push(ruby.ary_new_from_values(&[
            ruby.integer_from_u64(m.offset).as_value(),
            ruby.integer_from_u64(m.len).as_value(),
            ruby.str_new(m.kind.as_str()).as_value(),
        ]))?;
    }
    h.aset(ruby.to_symbol("examples"), ex)?;
    Ok(h)
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let m = ruby.define_module("LVMSync")?;
    let n = m.define_module("Native")?;
    n.define_singleton_method("send", function!(send, 8))?;
    n.define_singleton_method("apply", function!(apply, 8))?;
    n.define_singleton_method("compare_digests", function!(compare_digests, 2))?;
    n.const_set("PROTOCOL", wire::HANDSHAKE_LINE)?;
    n.const_set("PROTOCOL_DISCARDS", wire::HANDSHAKE_DISCARDS_LINE)?;
    n.const_set("MAX_SEND_RECORD", wire::MAX_SEND_RECORD)?;
    Ok(())
}
