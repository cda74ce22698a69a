//! Writes dm-snapshot persistent exception stores (the `-cow` device of a classic LVM
//! snapshot) the way the kernel fills them, from a [`Model`] of the origin's writes.
//!
//! Written from the format notes: header in chunk 0 (magic "SnAp", valid, version 1, chunk
//! size in sectors), metadata areas of `chunk/16` little-endian (old, new) u64 pairs at chunks
//! `1 + i(E+1)`, data chunks allocated from chunk 2 upward skipping area locations, the first
//! zero `new` ending the table. When the store runs out of space the header's `valid` drops
//! to 0 and the records already committed stay on disk, as the kernel leaves them.

use crate::model::Model;
use crate::pattern::Rng;
use byteorder::{ByteOrder, LittleEndian as LE};
use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Header magic, "SnAp" on disk.
pub const MAGIC: u32 = 0x7041_6E53;

/// Order of the exception records in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// The order chunks were first written (what the kernel produces).
    FirstWrite,
    /// Reverse of that.
    Reverse,
    /// A seeded shuffle.
    Shuffled(u64),
}

impl Order {
    /// Parses `first-write`, `reverse`, `shuffled`.
    pub fn parse(s: &str, seed: u64) -> Option<Order> {
        Some(match s {
            "first-write" => Order::FirstWrite,
            "reverse" => Order::Reverse,
            "shuffled" => Order::Shuffled(seed),
            _ => return None,
        })
    }
}

/// What to write.
#[derive(Debug, Clone)]
pub struct CowSpec {
    /// Chunk size in bytes (a power of two, at least 512).
    pub chunk_size: u64,
    /// Size of the store in bytes.
    pub cow_size: u64,
    /// Record order.
    pub order: Order,
    /// Header magic to write (normally [`MAGIC`]).
    pub magic: u32,
    /// Header version to write (normally 1).
    pub version: u32,
    /// Force the `valid` field to this value (normally it is 1, or 0 after an overflow).
    pub valid: Option<u32>,
    /// Also write the old data into the data chunks (skip for huge benchmark stores).
    pub write_data: bool,
    /// Repeat this many records (a second exception for an already listed chunk, as after an
    /// unclean shutdown); they point at fresh data chunks.
    pub duplicates: u64,
}

/// What was written, for tests that check the reader against it.
#[derive(Debug, Clone, Default)]
pub struct CowLayout {
    /// Exceptions per metadata area.
    pub per_area: u64,
    /// (chunk, records used) per metadata area written.
    pub areas: Vec<(u64, u64)>,
    /// (old, new) in table order.
    pub records: Vec<(u64, u64)>,
    /// The header's `valid` field.
    pub valid: u32,
    /// True when the store ran out of space.
    pub overflowed: bool,
}

/// Origin chunks the model's writes touch, in first-write order.
pub fn first_write_chunks(model: &Model, chunk: u64) -> Vec<u64> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for w in &model.writes {
        if w.len == 0 {
            continue;
        }
        for c in w.offset / chunk..=(w.offset + w.len - 1) / chunk {
            if seen.insert(c) {
                out.push(c);
            }
        }
    }
    out
}

/// Writes the store for `model` (the origin at snapshot time is `model`'s base; the data
/// chunks hold the base's bytes) to `path`.
pub fn write(path: &Path, spec: &CowSpec, model: &Model) -> io::Result<CowLayout> {
    let c = spec.chunk_size;
    assert!(c >= 512 && c.is_power_of_two(), "chunk size");
    let mut chunks = first_write_chunks(model, c);
    match spec.order {
        Order::FirstWrite => {}
        Order::Reverse => chunks.reverse(),
        Order::Shuffled(seed) => Rng::new(seed).shuffle(&mut chunks),
    }
    let dups: Vec<u64> = chunks
        .iter()
        .take(spec.duplicates as usize)
        .copied()
        .collect();
    chunks.extend(dups);

    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    f.set_len(spec.cow_size)?;
    let total = spec.cow_size / c;
    let per_area = c / 16;
    let is_area = |n: u64| n >= 1 && (n - 1).is_multiple_of(per_area + 1);

    let mut layout = CowLayout {
        per_area,
        ..Default::default()
    };
    let mut next_free = 2u64;
    let mut area_index = 0u64;
    let mut area = vec![0u8; c as usize];
    let mut used = 0u64;
    let mut data = vec![0u8; c as usize];
    let flush =
        |f: &File, idx: u64, buf: &[u8]| f.write_all_at(buf, (1 + idx * (per_area + 1)) * c);
    for &old in &chunks {
        if next_free >= total {
            layout.overflowed = true;
            break;
        }
        let new = next_free;
        next_free += 1;
        if is_area(next_free) {
            next_free += 1;
        }
        LE::write_u64(&mut area[(used * 16) as usize..], old);
        LE::write_u64(&mut area[(used * 16 + 8) as usize..], new);
        used += 1;
        layout.records.push((old, new));
        if spec.write_data {
            model.base_at(old * c, &mut data);
            f.write_all_at(&data, new * c)?;
        }
        if used == per_area {
            flush(&f, area_index, &area)?;
            layout.areas.push((1 + area_index * (per_area + 1), used));
            area.fill(0);
            used = 0;
            area_index += 1;
        }
    }
    let loc = 1 + area_index * (per_area + 1);
    if loc < total {
        // The current (partly filled or empty) area; the kernel zeroes it before use.
        flush(&f, area_index, &area)?;
        layout.areas.push((loc, used));
    }
    let valid = spec.valid.unwrap_or(if layout.overflowed { 0 } else { 1 });
    layout.valid = valid;
    let mut hdr = [0u8; 16];
    LE::write_u32(&mut hdr[0..], spec.magic);
    LE::write_u32(&mut hdr[4..], valid);
    LE::write_u32(&mut hdr[8..], spec.version);
    LE::write_u32(&mut hdr[12..], (c / 512) as u32);
    f.write_all_at(&hdr, 0)?;
    Ok(layout)
}
