//! A whole-volume copy (`lvmsync --full`): what to send so that a destination ends up holding
//! a snapshot's (or an LV's) whole content, without filling a thin destination.
//!
//! * A thin LV (a thin snapshot, or a thin LV nobody writes) says which of its blocks are
//!   mapped: `thin_dump -m --dev-id ID META_DEV` on the pool's reserved metadata snapshot
//!   ([`parse_thin_dump`], [`run_thin_dump`]). Only those are read and sent as data; every
//!   other byte reads as zeros and is sent as a discard range.
//! * A classic snapshot or a plain LV has no mapping: [`scan_zeros`] reads the device and
//!   sends every [`ZERO_GRAIN`] that is all zeros as a discard range, the rest as data.
//!
//! Either way the result is a [`FullCopy`] (the data ranges and the size; everything else is
//! discarded), whose change set [`crate::wire::send_changes`] sends like any other. Memory
//! follows the number of data ranges, which is capped at [`MAX_RANGES`]: past it, the data
//! ranges closest together are merged across the gap between them (the gap is then read and
//! sent as the zeros it holds), so any volume size stays within a few tens of MiB.

use super::thin::{run_tool, shown, tool_args};
use super::xml::{self, name_of, Element};
use super::{ByteRange, ChangeSet, ChangeSource, Changes, Error, Result};
use crate::io::{AlignedBuf, SourceDevice};
use crate::progress::Progress;
use quick_xml::events::BytesStart;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Granule of [`scan_zeros`]: a run of whole all-zero granules (aligned to byte 0) is sent as
/// a discard range.
pub const ZERO_GRAIN: u64 = 64 << 10;
/// Most data ranges kept (16 bytes each); past it, the closest ranges are merged.
pub const MAX_RANGES: usize = 1 << 20;
/// Bytes read per request by [`scan_zeros`].
const SCAN_READ: usize = 4 << 20;

/// A whole-volume copy: `data` is read and sent; every other byte of `[0, size)` reads as
/// zeros and is sent as a discard range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FullCopy {
    /// Ranges whose data is sent.
    pub data: Changes,
    /// The volume's size in bytes.
    pub size: u64,
}

impl ChangeSource for FullCopy {
    /// The data ranges, and the rest of the volume as discards.
    fn change_set(&self) -> ChangeSet {
        ChangeSet {
            data: self.data.clone(),
            discards: self.data.complement(self.size),
        }
    }
}

impl Changes {
    /// The ranges of `[0, size)` these ranges do not cover.
    pub fn complement(&self, size: u64) -> Changes {
        let mut out = Vec::with_capacity(self.ranges.len() + 1);
        let mut at = 0u64;
        for r in &self.ranges {
            if r.offset >= size {
                break;
            }
            if r.offset > at {
                out.push(ByteRange {
                    offset: at,
                    len: r.offset - at,
                });
            }
            at = at.max(r.end());
        }
        if at < size {
            out.push(ByteRange {
                offset: at,
                len: size - at,
            });
        }
        Changes::from_sorted_ranges(out)
    }
}

/// Collects ranges in ascending order into [`Changes`], merging adjacent ones, and keeping
/// at most `cap` ranges by merging those whose gap is smallest (gaps below a threshold that
/// doubles each time the cap is reached).
#[derive(Debug)]
pub struct RangeBuilder {
    ranges: Vec<ByteRange>,
    cap: usize,
    min_gap: u64,
}

impl RangeBuilder {
    /// A builder keeping at most `cap` (≥ 2) ranges.
    pub fn new(cap: usize) -> Self {
        RangeBuilder {
            ranges: Vec::new(),
            cap: cap.max(2),
            min_gap: 0,
        }
    }

    /// Appends `[offset, offset+len)`; false when it starts before the end of the last
    /// range (input out of order).
    pub fn push(&mut self, offset: u64, len: u64) -> bool {
        if len == 0 {
            return true;
        }
        let end = offset.saturating_add(len);
        if let Some(last) = self.ranges.last_mut() {
            if offset < last.end() {
                return false;
            }
            if offset - last.end() <= self.min_gap {
                last.len = end - last.offset;
                return true;
            }
        }
        self.ranges.push(ByteRange {
            offset,
            len: end - offset,
        });
        if self.ranges.len() > self.cap {
            self.coarsen();
        }
        true
    }

    /// Merges ranges across gaps of up to a doubled threshold until at most half the cap
    /// remain.
    fn coarsen(&mut self) {
        while self.ranges.len() > self.cap / 2 {
            self.min_gap = self.min_gap.max(1).saturating_mul(2).max(ZERO_GRAIN);
            let mut out: Vec<ByteRange> = Vec::with_capacity(self.ranges.len());
            for r in self.ranges.drain(..) {
                match out.last_mut() {
                    Some(last) if r.offset - last.end() <= self.min_gap => {
                        last.len = r.end() - last.offset
                    }
                    _ => out.push(r),
                }
            }
            self.ranges = out;
        }
    }

    /// The ranges.
    pub fn finish(self) -> Changes {
        Changes::from_sorted_ranges(self.ranges)
    }
}

/// What `thin_dump` says one thin device maps, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThinMapping {
    /// The pool's data block size in bytes.
    pub block_size: u64,
    /// The thin device id.
    pub dev_id: u64,
    /// The device's mapped blocks, as byte ranges (coalesced, capped at [`MAX_RANGES`]).
    pub mapped: Changes,
    /// Mapped blocks counted.
    pub mapped_blocks: u64,
}

impl ThinMapping {
    /// The whole-volume copy of a device of `size` bytes: its mapped ranges as data (cut at
    /// `size`), the rest discarded.
    pub fn full_copy(&self, size: u64) -> FullCopy {
        FullCopy {
            data: self.mapped.cut_at(size),
            size,
        }
    }
}

/// Where the parser is in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Top,
    Superblock,
    /// Inside a `<device>`: the one asked for (true) or another one.
    Device(bool),
    Done,
}

struct DumpParser<'n> {
    name: &'n str,
    dev_id: u64,
    at: At,
    found: bool,
    map: ThinMapping,
    ranges: RangeBuilder,
}

fn thin_dump_error(name: &str, at: u64, msg: String) -> Error {
    Error::ThinDump {
        name: name.to_string(),
        at,
        msg,
    }
}

impl DumpParser<'_> {
    fn err(&self, at: u64, msg: impl Into<String>) -> Error {
        thin_dump_error(self.name, at, msg.into())
    }

    fn attr(&self, e: &BytesStart<'_>, key: &str, pos: u64) -> Result<u64> {
        xml::need_u64(e, key, pos, self.name, thin_dump_error)
    }

    /// A run of `length` mapped blocks from block `begin`.
    fn mapped(&mut self, begin: u64, length: u64, pos: u64) -> Result<()> {
        let bs = self.map.block_size;
        let (off, len) = match (begin.checked_mul(bs), length.checked_mul(bs)) {
            (Some(o), Some(l)) if o.checked_add(l).is_some() => (o, l),
            _ => {
                return Err(self.err(
                    pos,
                    format!(
                        "mapping of {length} blocks at block {begin} (blocks of {bs} bytes) lies past 2^64 bytes"
                    ),
                ))
            }
        };
        if !self.ranges.push(off, len) {
            return Err(self.err(
                pos,
                format!("mapping at block {begin} is out of order (thin_dump lists a device's mappings in ascending order)"),
            ));
        }
        self.map.mapped_blocks += length;
        Ok(())
    }

    fn open(&mut self, e: &BytesStart<'_>, empty: bool, pos: u64) -> Result<()> {
        let n = name_of(e);
        match (self.at, n.as_str()) {
            (At::Top, "superblock") => {
                let bs = self.attr(e, "data_block_size", pos)?;
                if bs == 0 {
                    return Err(self.err(pos, "<superblock> data_block_size is 0"));
                }
                self.map.block_size = bs.checked_mul(512).ok_or_else(|| {
                    self.err(
                        pos,
                        format!("<superblock> data_block_size {bs} is too large"),
                    )
                })?;
                self.at = if empty { At::Done } else { At::Superblock };
            }
            (At::Superblock, "device") => {
                let id = self.attr(e, "dev_id", pos)?;
                let ours = id == self.dev_id;
                if ours {
                    if self.found {
                        return Err(self.err(pos, format!("device {id} is listed twice")));
                    }
                    self.found = true;
                }
                if !empty {
                    self.at = At::Device(ours);
                }
            }
            (At::Device(ours), "range_mapping") if empty => {
                let begin = self.attr(e, "origin_begin", pos)?;
                let length = self.attr(e, "length", pos)?;
                if ours {
                    self.mapped(begin, length, pos)?;
                }
            }
            (At::Device(ours), "single_mapping") if empty => {
                let block = self.attr(e, "origin_block", pos)?;
                if ours {
                    self.mapped(block, 1, pos)?;
                }
            }
            (At::Top, _) => {
                return Err(self.err(
                    pos,
                    format!("expected <superblock> first, found <{n}>: not thin_dump output"),
                ))
            }
            (_, _) => {
                return Err(self.err(
                    pos,
                    format!(
                        "unexpected <{n}> {}: not thin_dump XML this version understands",
                        describe(self.at)
                    ),
                ))
            }
        }
        Ok(())
    }

    fn close(&mut self, n: &str, pos: u64) -> Result<()> {
        self.at = match (self.at, n) {
            (At::Superblock, "superblock") => At::Done,
            (At::Device(_), "device") => At::Superblock,
            (where_, _) => {
                return Err(self.err(pos, format!("unexpected </{n}> {}", describe(where_))))
            }
        };
        Ok(())
    }
}

fn describe(at: At) -> &'static str {
    match at {
        At::Top => "before <superblock>",
        At::Superblock => "inside <superblock>",
        At::Device(_) => "inside <device>",
        At::Done => "after </superblock>",
    }
}

/// Parses `thin_dump`'s XML from `r` (named `name` in messages) as it arrives, keeping the
/// mappings of thin device `dev_id` only. Refuses output that is cut short, malformed, lists
/// no such device, or lists its mappings out of order.
pub fn parse_thin_dump<R: BufRead>(r: R, name: &str, dev_id: u64) -> Result<ThinMapping> {
    let mut p = DumpParser {
        name,
        dev_id,
        at: At::Top,
        found: false,
        map: ThinMapping {
            dev_id,
            ..Default::default()
        },
        ranges: RangeBuilder::new(MAX_RANGES),
    };
    let end = xml::read_elements(r, name, "thin_dump", thin_dump_error, |el, pos| match el {
        Element::Open(e, empty) => p.open(e, empty, pos),
        Element::Close(n) => p.close(n, pos),
    })?;
    let inside = (p.at != At::Done).then(|| describe(p.at));
    xml::unfinished(
        inside,
        p.at != At::Top,
        end,
        name,
        "thin_dump",
        thin_dump_error,
    )?;
    if !p.found {
        return Err(p.err(end, format!("thin device {dev_id} is not in the metadata")));
    }
    p.map.mapped = p.ranges.finish();
    Ok(p.map)
}

/// How to run `thin_dump`.
#[derive(Debug, Clone)]
pub struct ThinDumpCommand {
    /// The program (`thin_dump`, or a path).
    pub program: String,
    /// The pool's metadata device (`/dev/mapper/VG-POOL_tmeta`) or a metadata file.
    pub metadata: PathBuf,
    /// The thin device id.
    pub dev_id: u64,
    /// Read the reserved metadata snapshot (`-m`): required on a live pool.
    pub metadata_snap: bool,
}

impl ThinDumpCommand {
    /// `thin_dump -m --dev-id ID METADATA`, the program found on `PATH`.
    pub fn new(metadata: PathBuf, dev_id: u64) -> Self {
        ThinDumpCommand {
            program: "thin_dump".to_string(),
            metadata,
            dev_id,
            metadata_snap: true,
        }
    }

    /// The argument vector after the program.
    pub fn args(&self) -> Vec<String> {
        let id = ["--dev-id".to_string(), self.dev_id.to_string()];
        tool_args(self.metadata_snap, id, &self.metadata)
    }

    /// The command as a shell would show it (for messages).
    pub fn display(&self) -> String {
        shown(&self.program, self.args())
    }
}

/// Runs `thin_dump` and parses its output as it arrives. Cancelling `progress` kills it.
pub fn run_thin_dump(cmd: &ThinDumpCommand, progress: &Progress) -> Result<ThinMapping> {
    let id = cmd.dev_id;
    run_tool(&cmd.program, cmd.args(), cmd.display(), progress, |r, n| {
        parse_thin_dump(r, n, id)
    })
}

/// Reads `source` whole and returns its whole-volume copy: every run of all-zero
/// [`ZERO_GRAIN`]s discarded, the rest data. Counts the bytes read on `progress` (its total
/// set to the size) and stops when it is cancelled.
pub fn scan_zeros(source: &SourceDevice, progress: &Progress) -> Result<FullCopy> {
    let size = source.len();
    progress.set_total(size);
    let mut buf = AlignedBuf::new(SCAN_READ);
    let mut ranges = RangeBuilder::new(MAX_RANGES);
    let mut at = 0u64;
    while at < size {
        if progress.is_cancelled() {
            return Err(crate::Cancelled.into());
        }
        let n = (size - at).min(SCAN_READ as u64) as usize;
        source.read_at(&mut buf[..n], at).map_err(|e| {
            Error::Io(crate::IoContext::new(
                source.path(),
                format!("read {n} bytes at byte {at}"),
                e,
            ))
        })?;
        for (i, grain) in buf[..n].chunks(ZERO_GRAIN as usize).enumerate() {
            if !crate::block::is_zero(grain) {
                ranges.push(at + i as u64 * ZERO_GRAIN, grain.len() as u64);
            }
        }
        progress.add_done(n as u64);
        at += n as u64;
    }
    Ok(FullCopy {
        data: ranges.finish(),
        size,
    })
}

/// The change set of a whole-volume copy of `source`: with `mapped` (a thin device's
/// mapping), its mapped ranges as data and the rest as discards, without reading anything;
/// otherwise [`scan_zeros`].
pub fn full_change_set(
    source: &Path,
    mapped: Option<&ThinMapping>,
    progress: &Progress,
) -> Result<ChangeSet> {
    let src = SourceDevice::open(source)?;
    let copy = match mapped {
        Some(m) => m.full_copy(src.len()),
        None => scan_zeros(&src, progress)?,
    };
    Ok(copy.change_set())
}

#[cfg(test)]
mod tests;
