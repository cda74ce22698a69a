//! What a snapshot says changed: byte ranges of the origin that may differ from the snapshot.
//!
//! Ranges are kept as [`Changes`] (sorted, non-overlapping, adjacent ranges coalesced). Every
//! change source ([`ChangeSource`]) says what to send as a [`ChangeSet`]: data ranges and
//! discard ranges, which the sender ([`crate::wire::send_changes`]) streams. The sources are a
//! classic LVM snapshot's dm-snapshot exception store ([`cow_store::CowStore`]: data only) and
//! what `thin_delta` reports between two thin devices ([`thin::ThinDelta`]: data, and blocks
//! the newer device no longer maps as discards). A whole-volume copy ([`full::FullCopy`]: a
//! thin device's mapped blocks from `thin_dump`, or a device's non-zero parts) sends the rest
//! of the volume as discards.

pub mod cow_store;
pub mod full;
pub mod thin;
mod xml;

pub use cow_store::CowStore;
pub use thin::{ThinDelta, ThinDeltaCommand};

use crate::error::{Cancelled, IoContext, Kind, Report};

/// Why a snapshot's change list was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The header is all zero.
    #[error("{name}: the exception store header is all zero (magic 0 at byte 0): the snapshot was never activated, or this is not a snapshot's -cow device")]
    Uninitialised {
        /// The store read.
        name: String,
    },
    /// Not a dm-snapshot store.
    #[error("{name}: not a device-mapper exception store: magic at byte 0 is 0x{magic:08x}, expected 0x70416e53 (\"SnAp\")")]
    BadMagic {
        /// The store read.
        name: String,
        /// What was found.
        magic: u32,
    },
    /// A store version other than 1.
    #[error("{name}: exception store version {version} (header byte 8) is not supported; the kernel only writes version 1")]
    UnsupportedVersion {
        /// The store read.
        name: String,
        /// What was found.
        version: u32,
    },
    /// `valid == 0`: the snapshot overflowed or failed.
    #[error("{name}: the snapshot is invalid (header field 'valid' at byte 4 is 0): it overflowed (its COW space filled up) or failed, so its list of changes is incomplete; take a new snapshot and copy the whole volume again")]
    Invalid {
        /// The store read.
        name: String,
    },
    /// Structurally impossible content.
    #[error("{name}: {msg}")]
    Corrupt {
        /// The store read.
        name: String,
        /// What is wrong and where.
        msg: String,
    },
    /// A changed range lies past the end of the device the data is read from.
    #[error("{source_name}: the snapshot lists a change at byte {offset}, but this device is only {size} bytes: is it the snapshot's origin?")]
    PastSource {
        /// The origin or data source.
        source_name: String,
        /// Start of the first range past the end.
        offset: u64,
        /// The device's size.
        size: u64,
    },
    /// The device the data is read from ends before the origin's new part does.
    #[error("{source_name}: this device is only {size} bytes, but the origin's new part, sent whole, reaches byte {end}: it must be read from a device of the origin's new size (is it the grown origin, or an up-to-date copy of it?)")]
    ShortForNewPart {
        /// The origin or data source.
        source_name: String,
        /// The device's size.
        size: u64,
        /// One past the new part's last byte.
        end: u64,
    },
    /// `thin_delta`'s output is not what it should be.
    #[error("{name}: at byte {at}: {msg}")]
    ThinDelta {
        /// What was read ("output of thin_delta ...").
        name: String,
        /// Byte of the output where the problem is.
        at: u64,
        /// What is wrong.
        msg: String,
    },
    /// `thin_dump`'s output is not what it should be.
    #[error("{name}: at byte {at}: {msg}")]
    ThinDump {
        /// What was read ("output of thin_dump ...").
        name: String,
        /// Byte of the output where the problem is.
        at: u64,
        /// What is wrong.
        msg: String,
    },
    /// `thin_delta` (or `thin_dump`) could not be run, or failed.
    #[error("{command}: {msg}")]
    ThinTool {
        /// The command line.
        command: String,
        /// Why (with the tool's own message).
        msg: String,
    },
    /// The caller cancelled the job.
    #[error("{0}")]
    Cancelled(#[from] Cancelled),
    /// Reading failed.
    #[error("{0}")]
    Io(#[from] IoContext),
    /// The device or image to read cannot be opened safely (a FIFO, a character device...).
    #[error("{0}")]
    File(#[from] crate::io::FileError),
}

impl Report for Error {
    fn kind(&self) -> Kind {
        match self {
            Error::Io(ctx) => ctx.kind(),
            Error::File(f) => f.kind(),
            Error::Cancelled(c) => c.kind(),
            Error::Invalid { .. } => Kind::SnapshotInvalid,
            Error::ThinDelta { .. } | Error::ThinDump { .. } | Error::ThinTool { .. } => {
                Kind::ThinDelta
            }
            Error::Uninitialised { .. }
            | Error::BadMagic { .. }
            | Error::UnsupportedVersion { .. }
            | Error::Corrupt { .. }
            | Error::PastSource { .. }
            | Error::ShortForNewPart { .. } => Kind::Snapshot,
        }
    }
    fn message(&self) -> String {
        match self {
            Error::Io(ctx) => ctx.message(),
            Error::File(f) => f.message(),
            other => other.to_string(),
        }
    }
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, Error>;

/// `len` bytes at byte `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteRange {
    /// First byte.
    pub offset: u64,
    /// Length in bytes (> 0).
    pub len: u64,
}

impl ByteRange {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// Changed byte ranges: sorted, non-overlapping, adjacent ones merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    ranges: Vec<ByteRange>,
}

impl Changes {
    /// From sorted, distinct chunk numbers of `chunk_size` bytes.
    pub fn from_sorted_chunks(chunks: &[u64], chunk_size: u64) -> Self {
        let mut ranges: Vec<ByteRange> = Vec::new();
        for &c in chunks {
            let off = c * chunk_size;
            match ranges.last_mut() {
                Some(last) if last.end() == off => last.len += chunk_size,
                _ => ranges.push(ByteRange {
                    offset: off,
                    len: chunk_size,
                }),
            }
        }
        Changes { ranges }
    }

    /// From ranges already sorted, non-overlapping and with adjacent ones merged (as
    /// [`Changes::ranges`] returns them); checked in debug builds.
    pub fn from_sorted_ranges(ranges: Vec<ByteRange>) -> Self {
        debug_assert!(ranges.iter().all(|r| r.len > 0));
        debug_assert!(ranges.windows(2).all(|w| w[0].end() < w[1].offset));
        Changes { ranges }
    }

    /// From any ranges (unsorted, overlapping, empty ones allowed): sorts and merges them.
    /// Ranges whose end would overflow a u64 are cut at `u64::MAX`.
    pub fn from_ranges(mut input: Vec<ByteRange>) -> Self {
        input.retain(|r| r.len > 0);
        input.sort_unstable();
        let mut ranges: Vec<ByteRange> = Vec::with_capacity(input.len());
        for r in input {
            let end = r.offset.saturating_add(r.len);
            match ranges.last_mut() {
                Some(last) if last.end() >= r.offset => {
                    let new_end = last.end().max(end);
                    last.len = new_end - last.offset;
                }
                _ => ranges.push(ByteRange {
                    offset: r.offset,
                    len: end - r.offset,
                }),
            }
        }
        Changes { ranges }
    }

    /// The ranges.
    pub fn ranges(&self) -> &[ByteRange] {
        &self.ranges
    }
    /// Total changed bytes.
    pub fn total_bytes(&self) -> u64 {
        self.ranges.iter().map(|r| r.len).sum()
    }
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Checks the ranges against the size of the device the data will be read from: a range
    /// that starts at or past `size` is an error (wrong device); the part of a range past
    /// `size` (a last chunk sticking out of an origin that is not a whole number of chunks)
    /// is cut off.
    pub fn clip_to(&mut self, size: u64, source_name: &str) -> Result<()> {
        if let Some(bad) = self.ranges.iter().find(|r| r.offset >= size) {
            return Err(Error::PastSource {
                source_name: source_name.to_string(),
                offset: bad.offset,
                size,
            });
        }
        if let Some(last) = self.ranges.last_mut() {
            if last.end() > size {
                last.len = size - last.offset;
            }
        }
        Ok(())
    }

    /// The ranges before byte `size`: those starting at or past it left out, one reaching
    /// past it cut there.
    pub fn cut_at(&self, size: u64) -> Changes {
        let kept = self
            .ranges
            .iter()
            .filter(|r| r.offset < size)
            .map(|r| ByteRange {
                offset: r.offset,
                len: r.len.min(size - r.offset),
            })
            .collect();
        Changes::from_sorted_ranges(kept)
    }

    /// The ranges cut into pieces of at most `max` bytes (`max` > 0), in order.
    pub fn pieces(&self, max: u64) -> impl Iterator<Item = ByteRange> + '_ {
        let max = max.max(1);
        self.ranges.iter().flat_map(move |r| {
            let n = r.len.div_ceil(max);
            (0..n).map(move |i| {
                let off = r.offset + i * max;
                ByteRange {
                    offset: off,
                    len: max.min(r.end() - off),
                }
            })
        })
    }

    /// Number of pieces [`Changes::pieces`] yields.
    pub fn piece_count(&self, max: u64) -> u64 {
        let max = max.max(1);
        self.ranges.iter().map(|r| r.len.div_ceil(max)).sum()
    }
}

/// What a change source says to send: the ranges whose data is read from the source, and the
/// ranges that must read as zeros on the destination (never read). The two never overlap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// Ranges whose data is sent.
    pub data: Changes,
    /// Ranges that read as zeros on the newer side (a thin snapshot's unmapped blocks).
    pub discards: Changes,
}

impl ChangeSet {
    /// Every range that differs (data and discards), coalesced.
    pub fn all(&self) -> Changes {
        let mut v = self.data.ranges().to_vec();
        v.extend_from_slice(self.discards.ranges());
        Changes::from_ranges(v)
    }

    /// Records of at most `max` bytes needed to send both lists.
    pub fn record_count(&self, max: u64) -> u64 {
        self.data.piece_count(max) + self.discards.piece_count(max)
    }

    /// The set as a stream can carry it: unchanged when the receiver takes discard records;
    /// otherwise the discard ranges become data ranges, read from the source, where they read
    /// as zeros (the original PROTO[3] has no discard records).
    pub fn for_stream(self, discard_records: bool) -> ChangeSet {
        if discard_records || self.discards.is_empty() {
            return self;
        }
        ChangeSet {
            data: self.all(),
            discards: Changes::default(),
        }
    }

    /// The set with bytes `offset..end` added to the data (an origin's new part, which its
    /// snapshot records nothing about: read whole from the origin); no discard range
    /// reaches into it.
    pub fn with_new_part(&self, offset: u64, end: u64) -> ChangeSet {
        let mut data = self.data.ranges().to_vec();
        data.push(ByteRange {
            offset,
            len: end.saturating_sub(offset),
        });
        ChangeSet {
            data: Changes::from_ranges(data),
            discards: self.discards.cut_at(offset),
        }
    }

    /// [`ChangeSet::with_new_part`], after checking that `source`, the device the data will
    /// be read from, holds the whole new part ([`Changes::clip_to`] would cut a last range
    /// that sticks out, which is right only for a last chunk past an origin's end).
    pub fn with_new_part_from(
        &self,
        offset: u64,
        end: u64,
        source: &std::path::Path,
    ) -> Result<ChangeSet> {
        let size = crate::io::SourceDevice::open(source)?.len();
        if size < end {
            return Err(Error::ShortForNewPart {
                source_name: source.display().to_string(),
                size,
                end,
            });
        }
        Ok(self.with_new_part(offset, end))
    }

    /// Checks both lists against the size of the device the data is read from, as
    /// [`Changes::clip_to`] does.
    pub fn clip_to(&mut self, size: u64, source_name: &str) -> Result<()> {
        self.data.clip_to(size, source_name)?;
        self.discards.clip_to(size, source_name)
    }
}

/// Anything that knows what changed between a snapshot and its origin (or two snapshots).
pub trait ChangeSource {
    /// What to send.
    fn change_set(&self) -> ChangeSet;
}

impl ChangeSource for CowStore {
    /// The changed chunks; no discards (a dm-snapshot store does not record them).
    fn change_set(&self) -> ChangeSet {
        ChangeSet {
            data: self.changes(),
            discards: Changes::default(),
        }
    }
}

impl ChangeSource for ThinDelta {
    /// The blocks mapped differently or only on the newer side as data; the blocks only the
    /// older side maps (they read as zeros on the newer one) as discards.
    fn change_set(&self) -> ChangeSet {
        ChangeSet {
            data: self.changed.clone(),
            discards: self.unmapped.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn br(offset: u64, len: u64) -> ByteRange {
        ByteRange { offset, len }
    }

    #[test]
    fn chunks_coalesce_when_adjacent() {
        let c = Changes::from_sorted_chunks(&[0, 1, 2, 5, 7, 8], 4096);
        assert_eq!(c.ranges(), [br(0, 12288), br(20480, 4096), br(28672, 8192)]);
        assert_eq!(c.total_bytes(), 24576);
    }

    #[test]
    fn ranges_sort_and_merge() {
        let c = Changes::from_ranges(vec![
            br(100, 10),
            br(0, 10),
            br(10, 5),
            br(105, 20),
            br(50, 0),
        ]);
        assert_eq!(c.ranges(), [br(0, 15), br(100, 25)]);
    }

    #[test]
    fn a_new_part_joins_the_data_and_cuts_the_discards_before_it() {
        // A thin delta of a 64 KiB snapshot: data at 0 and at 60 KiB (the last block, which
        // the new part continues), an unmapped range at 16 KiB.
        let set = ChangeSet {
            data: Changes::from_ranges(vec![br(0, 4096), br(61440, 4096)]),
            discards: Changes::from_ranges(vec![br(16384, 8192)]),
        };
        let grown = set.with_new_part(65536, 98304);
        assert_eq!(grown.data.ranges(), [br(0, 4096), br(61440, 36864)]);
        assert_eq!(grown.discards.ranges(), [br(16384, 8192)]);
        assert_eq!(grown.data.total_bytes(), 4096 + 4096 + 32768);
        // A discard range reaching past the snapshot's end is cut there, and one wholly past
        // it dropped: the new part is data, never zeros.
        let set = ChangeSet {
            data: Changes::default(),
            discards: Changes::from_ranges(vec![br(0, 4096), br(8192, 16384), br(32768, 4096)]),
        };
        let grown = set.with_new_part(16384, 65536);
        assert_eq!(grown.discards.ranges(), [br(0, 4096), br(8192, 8192)]);
        assert_eq!(grown.data.ranges(), [br(16384, 49152)]);
    }

    #[test]
    fn a_new_part_is_refused_from_a_device_that_ends_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("source");
        let f = std::fs::File::create(&src).unwrap();
        f.set_len(36 << 20).unwrap();
        let set = ChangeSet {
            data: Changes::from_ranges(vec![br(0, 4096)]),
            discards: Changes::default(),
        };
        let e = set
            .with_new_part_from(32 << 20, 40 << 20, &src)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: this device is only 37748736 bytes, but the origin's new part, sent whole, \
                 reaches byte 41943040: it must be read from a device of the origin's new size \
                 (is it the grown origin, or an up-to-date copy of it?)",
                src.display()
            )
        );
        f.set_len(40 << 20).unwrap();
        let grown = set.with_new_part_from(32 << 20, 40 << 20, &src).unwrap();
        assert_eq!(grown, set.with_new_part(32 << 20, 40 << 20));
    }

    #[test]
    fn pieces_are_bounded() {
        let c = Changes::from_ranges(vec![br(0, 10), br(20, 3)]);
        let p: Vec<ByteRange> = c.pieces(4).collect();
        assert_eq!(p, [br(0, 4), br(4, 4), br(8, 2), br(20, 3)]);
        assert_eq!(c.piece_count(4), 4);
    }

    #[test]
    fn clip_cuts_the_tail_and_refuses_ranges_past_the_end() {
        let mut c = Changes::from_sorted_chunks(&[0, 3], 4096);
        c.clip_to(14336, "o").unwrap();
        assert_eq!(c.ranges(), [br(0, 4096), br(12288, 2048)]);
        let mut c = Changes::from_sorted_chunks(&[0, 3], 4096);
        let e = c.clip_to(12288, "o").unwrap_err().to_string();
        assert_eq!(e, "o: the snapshot lists a change at byte 12288, but this device is only 12288 bytes: is it the snapshot's origin?");
    }

    fn set(data: &[(u64, u64)], discards: &[(u64, u64)]) -> ChangeSet {
        let c = |v: &[(u64, u64)]| Changes::from_ranges(v.iter().map(|&(o, l)| br(o, l)).collect());
        ChangeSet {
            data: c(data),
            discards: c(discards),
        }
    }

    #[test]
    fn a_set_merges_its_discards_into_data_for_a_plain_stream() {
        let s = set(&[(0, 4096), (16384, 4096)], &[(4096, 8192), (65536, 4096)]);
        assert_eq!(s.clone().for_stream(true), s);
        let plain = s.clone().for_stream(false);
        assert_eq!(
            plain.data.ranges(),
            [br(0, 12288), br(16384, 4096), br(65536, 4096)]
        );
        assert!(plain.discards.is_empty());
        assert_eq!(plain.data, s.all());
        assert_eq!(s.record_count(4096), 5);
        assert_eq!(s.record_count(1 << 20), 4);
        // Nothing to merge: the set is kept as it is.
        let d = set(&[(0, 10)], &[]);
        assert_eq!(d.clone().for_stream(false), d);
    }

    #[test]
    fn a_set_clips_both_lists_to_the_source() {
        let mut s = set(&[(0, 4096)], &[(8192, 4096)]);
        s.clip_to(10000, "o").unwrap();
        assert_eq!(s.data.ranges(), [br(0, 4096)]);
        assert_eq!(s.discards.ranges(), [br(8192, 1808)]);
        let mut s = set(&[(0, 4096)], &[(8192, 4096)]);
        let e = s.clip_to(8192, "o").unwrap_err();
        assert!(matches!(e, Error::PastSource { offset: 8192, .. }), "{e}");
        assert_eq!(e.kind(), Kind::Snapshot);
    }

    #[test]
    fn sources_say_what_to_send() {
        let d = thin::parse(
            &br#"<superblock uuid="" time="0" transaction="1" data_block_size="128" nr_data_blocks="100">
<diff left="1" right="2">
<different begin="0" length="2"/>
<left_only begin="4" length="1"/>
<right_only begin="6" length="1"/>
</diff></superblock>"#[..],
            "t",
        )
        .unwrap();
        let s = d.change_set();
        assert_eq!(s.data.ranges(), [br(0, 2 << 16), br(6 << 16, 1 << 16)]);
        assert_eq!(s.discards.ranges(), [br(4 << 16, 1 << 16)]);
    }
}
