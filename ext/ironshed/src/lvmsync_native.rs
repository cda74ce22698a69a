//! `LVMSync::Native`: the send and apply loops (without the GVL), `--verify`'s digests and
//! `negotiate`; lib/lvmsync.rb documents the options and adds timing and progress. Descriptors
//! handed in are duplicated (the native loop owns its copy; Ruby may close its IO); digests
//! cross packed, 24 bytes each (`wire::digest::pack`).

use crate::convert::{bytes, hash, kwargs, options, strings};
use crate::errors::{self, OrRaise};
use crate::{gvl, lvm_change_set::RbChangeSet, progress::RbProgress};
use ironshed_core::wire::{
    self, digest, negotiate, ApplyOptions, ApplyStats, Digest, DigestReport, Input, Peer,
    SendOptions, Wanted,
};
use ironshed_core::IoContext;
use magnus::scan_args::scan_args;
use magnus::{function, prelude::*, Error, RArray, RHash, RString, Ruby, Symbol, Value};
use std::fs::File;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

kwargs!(SendOptions {
    max_record,
    discards,
    digests,
    plain,
    inputs,
    expect_from
});
kwargs!(Wanted {
    discards,
    verify,
    plain,
    destcheck
});
kwargs!(ApplyOptions {
    snapback => undo,
    allow_short_destination,
    verify,
    inputs,
    no_destination_check
});

fn dup_fd(ruby: &Ruby, fd: i32, name: &str) -> Result<File, Error> {
    // SAFETY: the descriptor is only borrowed for the duplication; a bad one fails with EBADF.
    let owned: std::io::Result<OwnedFd> =
        unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned();
    owned
        .map(File::from)
        .map_err(|e| IoContext::new(Path::new(name), "duplicate descriptor", e))
        .or_raise(ruby)
}

/// `nil`, or the packed digests when they were asked for.
fn packed(ruby: &Ruby, on: bool, digests: &[Digest]) -> Option<RString> {
    on.then(|| ruby.str_from_slice(&digest::pack(digests)))
}

/// `send(change_set, source, fd, name, job, **SendOptions)`
fn send(ruby: &Ruby, args: &[Value]) -> Result<RHash, Error> {
    let a = scan_args::<(&RbChangeSet, PathBuf, i32, String, &RbProgress), (), (), (), RHash, ()>(
        args,
    )?;
    let (set, source, fd, name, job) = a.required;
    let opts: SendOptions = options(ruby, a.keywords)?;
    let (set, file, prog) = ((*set.0).clone(), dup_fd(ruby, fd, &name)?, job.0.clone());
    let result = gvl::without_gvl(&job.0, || {
        wire::send_changes_to_file(set, &source, file, &name, &opts, &prog)
    });
    sent(ruby, result, opts.digests)
}

/// The result of a send (`None`: it panicked) as a Hash.
pub(crate) fn sent(
    ruby: &Ruby,
    result: Option<wire::Result<wire::SendReport>>,
    digests: bool,
) -> Result<RHash, Error> {
    let result = result.ok_or_else(|| errors::panic(ruby, "LVMSync.send"))?;
    let r = result.or_raise(ruby)?;
    let s = &r.stats;
    Ok(
        hash!(ruby, s; records, bytes, stream_bytes, discard_records, discard_bytes, end_mark, expect_ranges;
        ranges = r.ranges, source_size = r.source_size, read_mode = r.read_mode.describe(),
        digests = packed(ruby, digests, &s.digests)),
    )
}

/// Applies `input` with the options of `kw`, without the GVL.
pub(crate) fn apply(
    ruby: &Ruby,
    input: Input,
    dest: PathBuf,
    job: &RbProgress,
    kw: RHash,
) -> Result<RHash, Error> {
    let opts: ApplyOptions = options(ruby, kw)?;
    let prog = job.0.clone();
    let verify = opts.verify;
    let result = gvl::without_gvl(&job.0, move || wire::apply(input, &dest, &opts, &prog))
        .ok_or_else(|| errors::panic(ruby, "LVMSync.apply"))?;
    let st: ApplyStats = result.or_raise(ruby)?;
    Ok(
        hash!(ruby, st; records, bytes, writes, skipped_records, skipped_bytes, journaled,
        journal_complete, ignored_records, ignored_bytes, checked_first, dest_size,
        discard_records, discard_bytes, discard_zeroed_bytes, discards_in_stream, end_mark,
        destination_check_skipped; snapback = st.undo.as_ref().map(|u| Ok::<_, Error>(hash!(ruby, u;
        records, bytes, zero_bytes, commits, file_bytes, earlier_bytes, source_unchecked;
        state = u.state.as_str()))).transpose()?, destination_check = st
        .destination_check.map(|c| Ok::<_, Error>(hash!(ruby, c; ranges, at_newer, unchecked)))
        .transpose()?, digests = packed(ruby, verify, &st.digests),
        verified = st.verified.as_ref().map(|r| report(ruby, r)).transpose()?),
    )
}

/// `{matched:, mismatches:, superseded:, examples: [[offset, len,
/// "differs"|"missing"|"unexpected"], ...], ok:, message:}` (`message`: the one-line report).
fn report(ruby: &Ruby, r: &DigestReport) -> Result<RHash, Error> {
    let ex = r
        .examples
        .iter()
        .map(|m| (m.offset, m.len, m.kind.as_str()));
    Ok(
        hash!(ruby, r; matched, mismatches, superseded; examples = ruby.ary_from_iter(ex),
        ok = r.ok(), message = r.to_string()),
    )
}

/// `apply_file(path, dest, job, **ApplyOptions)`: a file, checked whole before the first write.
fn apply_file(ruby: &Ruby, args: &[Value]) -> Result<RHash, Error> {
    let a = scan_args::<(PathBuf, PathBuf, &RbProgress), (), (), (), RHash, ()>(args)?;
    let (path, dest, job) = a.required;
    apply(ruby, Input::File(path), dest, job, a.keywords)
}

/// `apply_fd(fd, name, dest, job, **ApplyOptions)`: a descriptor, applied as it arrives.
fn apply_fd(ruby: &Ruby, args: &[Value]) -> Result<RHash, Error> {
    let a = scan_args::<(i32, String, PathBuf, &RbProgress), (), (), (), RHash, ()>(args)?;
    let (fd, name, dest, job) = a.required;
    let input = Input::Fd(dup_fd(ruby, fd, &name)?, name);
    apply(ruby, input, dest, job, a.keywords)
}

/// `compare_digests(sent, received, destination)` → the report (see `report`), its message
/// naming `destination`.
fn compare_digests(
    ruby: &Ruby,
    sent: RString,
    received: RString,
    destination: String,
) -> Result<RHash, Error> {
    let a = digest::unpack_named(&bytes(sent), "sent digests").or_raise(ruby)?;
    let b = digest::unpack_named(&bytes(received), "received digests").or_raise(ruby)?;
    report(ruby, &wire::compare_digests(&a, &b, &destination))
}

/// `digest_lines(packed)`: the text form, one line per digest, without line ends.
fn digest_lines(ruby: &Ruby, packed: RString) -> Result<Vec<String>, Error> {
    let d = digest::unpack_named(&bytes(packed), "digests").or_raise(ruby)?;
    Ok(d.iter().map(Digest::to_line).collect())
}

/// `parse_digest_lines(lines)`: the packed digests of the text form.
fn parse_digest_lines(ruby: &Ruby, lines: RArray) -> Result<RString, Error> {
    let lines: Vec<Vec<u8>> = lines
        .into_iter()
        .map(|l| RString::try_convert(l).map(bytes))
        .collect::<Result<_, _>>()?;
    let d = digest::parse_lines(&lines).or_raise(ruby)?;
    Ok(ruby.str_from_slice(&digest::pack(&d)))
}

/// `negotiate(peer, host, capabilities, **Wanted)` → `{discards:, end_mark:, refusal:,
/// notes: [[:info | :verbose, text], ...]}`, for `peer` `:stdout`, `:local` or `:remote`.
fn negotiate_with(ruby: &Ruby, args: &[Value]) -> Result<RHash, Error> {
    let a = scan_args::<(Symbol, String, Vec<String>), (), (), (), RHash, ()>(args)?;
    let (peer, host, caps) = a.required;
    let peer = Peer::named(&peer.name()?, &host, &caps)
        .ok_or_else(|| Error::new(ruby.exception_arg_error(), format!("no peer {peer}")))?;
    let d = negotiate(&options(ruby, a.keywords)?, &peer);
    let notes = d.notes.iter().map(|n| (ruby.sym_new(n.level()), n.text()));
    Ok(hash!(ruby, d; discards, end_mark, refusal; notes = ruby.ary_from_iter(notes)))
}

/// `must_ask(**Wanted)`: whether a remote receiver's capabilities are needed first.
fn must_ask(ruby: &Ruby, args: &[Value]) -> Result<bool, Error> {
    let a = scan_args::<(), (), (), (), RHash, ()>(args)?;
    Ok(wire::must_ask(&options(ruby, a.keywords)?))
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let n = ruby.define_module("LVMSync")?.define_module("Native")?;
    n.define_singleton_method("send", function!(send, -1))?;
    n.define_singleton_method("apply_file", function!(apply_file, -1))?;
    n.define_singleton_method("apply_fd", function!(apply_fd, -1))?;
    n.define_singleton_method("compare_digests", function!(compare_digests, 3))?;
    n.define_singleton_method("digest_lines", function!(digest_lines, 1))?;
    n.define_singleton_method("parse_digest_lines", function!(parse_digest_lines, 1))?;
    n.define_singleton_method("negotiate", function!(negotiate_with, -1))?;
    n.define_singleton_method("must_ask", function!(must_ask, -1))?;
    n.const_set("CAPABILITIES", strings(ruby, wire::CAPABILITIES))?;
    n.const_set("PROTOCOL", wire::HANDSHAKE_LINE)?;
    n.const_set("PROTOCOL_DISCARDS", wire::HANDSHAKE_DISCARDS_LINE)?;
    n.const_set("MAX_SEND_RECORD", wire::MAX_SEND_RECORD)?;
    n.const_set("DIGEST_BYTES", digest::DIGEST_BYTES)?;
    n.const_set("DIGEST_LINE_PREFIX", digest::LINE_PREFIX)?;
    Ok(())
}
