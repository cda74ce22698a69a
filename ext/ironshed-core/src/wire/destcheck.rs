//! The destination check of a `--from OLDER NEWER` round: before anything is written, the
//! destination must hold OLDER's bytes in every range the round changes.
//!
//! A `--from` round sends only what differs between two snapshots, so it is right only on a
//! destination that holds OLDER; applied anywhere else, the result is silently corrupt. The
//! sender reads OLDER (and NEWER) in every range it is going to send — one record each, the
//! granularity of the `--verify` digests — and puts the XXH3-64 hashes into an `EXPECT`
//! control item right after `BEGIN` ([`super::proto3`]). The receiver, whichever it is
//! (a local one, `--apply` of a file or a pipe, one over SSH), reads those ranges of its
//! destination, hashes them itself, and refuses the stream before its first write when a
//! range holds neither OLDER's nor NEWER's bytes, naming the first such ranges.
//!
//! A range that holds NEWER's bytes passes: an earlier run of the same round wrote it (a run
//! that was interrupted, or one that finished), and writing it again changes nothing, so a
//! rerun finishes the round. A range that an interrupted run left partly written holds
//! neither: the refusal names `--no-destination-check` for that case.
//!
//! The cost is one more read of the changed ranges on each side (OLDER and NEWER on the
//! sender's, the destination on the receiver's), measured in BENCHMARKS.md.

use super::apply::{hash_ranges, read_digests};
use super::digest::{Digest, ZeroHashes};
use super::proto3::{Expected, EXPECT_ENTRY, MAX_EXPECT_LEN};
use super::{Error, Result};
use crate::block::Destination;
use crate::io::SourceDevice;
use crate::progress::Progress;
use crate::snapshot::ByteRange;

/// Ranges a refusal names (the rest are counted).
pub const SHOWN_RANGES: usize = 5;

/// What the check found on a destination that passed it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckStats {
    /// Ranges read and compared.
    pub ranges: u64,
    /// Of those, ranges that already held NEWER's bytes (an earlier run of the round wrote
    /// them).
    pub at_newer: u64,
    /// Ranges not compared because they lie (partly) past the end of the destination (a
    /// record there is refused, or with `--allow-short-destination` clipped).
    pub unchecked: u64,
}

/// The `EXPECT` entries for `pieces` (ranges in ascending order, each with whether it is
/// a discard): OLDER's bytes read from `older`, NEWER's from `newer` (zeros for a discard,
/// which is what the receiver makes of it). Refuses a list that does not fit an `EXPECT`
/// item, and a range past the end of `older`.
pub fn expected(
    pieces: impl Iterator<Item = (ByteRange, bool)>,
    older: &SourceDevice,
    newer: &SourceDevice,
    progress: &Progress,
) -> Result<Vec<Expected>> {
    let pieces: Vec<(ByteRange, bool)> = pieces.collect();
    if pieces.len() as u64 > u64::from(MAX_EXPECT_LEN) / EXPECT_ENTRY as u64 {
        return Err(Error::Digests(format!(
            "{} ranges are more than the destination check can list ({}): run this round with --no-destination-check",
            pieces.len(),
            u64::from(MAX_EXPECT_LEN) / EXPECT_ENTRY as u64
        )));
    }
    if let Some((r, _)) = pieces.iter().find(|(r, _)| r.end() > older.len()) {
        return Err(Error::Source(crate::snapshot::Error::PastSource {
            source_name: older.path().display().to_string(),
            offset: r.offset.max(older.len()),
            size: older.len(),
        }));
    }
    let all: Vec<(u64, u64)> = pieces.iter().map(|(r, _)| (r.offset, r.len)).collect();
    let data: Vec<(u64, u64)> = pieces
        .iter()
        .filter(|(_, d)| !d)
        .map(|(r, _)| (r.offset, r.len))
        .collect();
    let read = |dev: &SourceDevice, ranges: &[(u64, u64)]| {
        let name = dev.path().to_path_buf();
        hash_ranges(
            &|buf, at| {
                dev.read_at(buf, at).map_err(|e| {
                    Error::Io(crate::error::IoContext::new(
                        &name,
                        format!("read {} bytes at byte {at}", buf.len()),
                        e,
                    ))
                })
            },
            &|_, _| {},
            ranges,
            progress,
        )
    };
    let old = read(older, &all)?;
    let mut new = read(newer, &data)?.into_iter();
    let mut zeros = ZeroHashes::default();
    let mut out = Vec::with_capacity(pieces.len());
    for ((r, discard), o) in pieces.iter().zip(old) {
        let n = if *discard {
            zeros.digest(r.offset, r.len)
        } else {
            new.next()
                .ok_or_else(|| Error::Internal("fewer NEWER digests than data ranges".into()))?
        };
        out.push(Expected {
            offset: r.offset,
            len: r.len,
            older: o.hash,
            newer: n.hash,
        });
    }
    Ok(out)
}

/// Reads the ranges of `expect` from `dest` (its cached pages dropped first, so the device's
/// own bytes are read) and compares each with OLDER's and NEWER's hash. Ranges wholly past
/// the destination's end are left out (counted; nothing is written there); a range that
/// crosses the end refuses the stream ([`Error::ShortForCheck`]: its written part could not
/// be checked). A range that matches neither refuses the stream:
/// [`Error::DestinationDiffers`], naming the first [`SHOWN_RANGES`].
pub fn check(dest: &Destination, expect: &[Expected], progress: &Progress) -> Result<CheckStats> {
    let size = dest.size();
    if let Some(e) = expect
        .iter()
        .find(|e| e.offset < size && e.offset.checked_add(e.len).is_none_or(|end| end > size))
    {
        return Err(Error::ShortForCheck {
            dest: dest.path().to_path_buf(),
            offset: e.offset,
            len: e.len,
            size,
        });
    }
    let (inside, outside): (Vec<&Expected>, Vec<&Expected>) = expect
        .iter()
        .partition(|e| e.offset.checked_add(e.len).is_some_and(|end| end <= size));
    let ranges: Vec<(u64, u64)> = inside.iter().map(|e| (e.offset, e.len)).collect();
    let got: Vec<Digest> = read_digests(dest, &ranges, progress)?;
    let mut stats = CheckStats {
        ranges: inside.len() as u64,
        unchecked: outside.len() as u64,
        ..CheckStats::default()
    };
    let mut differ = 0u64;
    let mut first = Vec::new();
    for (e, g) in inside.iter().zip(&got) {
        if g.hash == e.older {
            continue;
        }
        if g.hash == e.newer {
            stats.at_newer += 1;
            continue;
        }
        differ += 1;
        if first.len() < SHOWN_RANGES {
            first.push((e.offset, e.len));
        }
    }
    if differ > 0 {
        return Err(Error::DestinationDiffers {
            dest: dest.path().to_path_buf(),
            differ,
            total: stats.ranges,
            first,
        });
    }
    Ok(stats)
}

/// The ranges of a refusal as "bytes 0..4095, bytes 1048576..2097151, ..." (`more`: ranges
/// not shown).
pub fn describe(first: &[(u64, u64)], more: u64) -> String {
    let mut s: Vec<String> = first
        .iter()
        .map(|(o, l)| format!("bytes {}..{}", o, o + l - 1))
        .collect();
    if more > 0 {
        s.push(format!("and {more} more"));
    }
    s.join(", ")
}

#[cfg(test)]
mod tests;
