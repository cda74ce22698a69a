//! The receiver's writer thread: while the stream's next batch is read, checked and hashed,
//! the batch before it is saved into the snapback file (when there is one) and written.
//! Batches are written one at a time, in the order they were handed over, so the
//! destination sees exactly the writes, in exactly the order, a single thread would make;
//! at most one batch is being written while the next is gathered.

use super::{Item, Result};
use crate::block::Destination;
use crate::error::Cancelled;
use crate::progress::Progress;
use crate::wire::undo::UndoLog;
use std::sync::mpsc::{Receiver, SyncSender};

/// Gathered data and the ranges it goes to.
#[derive(Default)]
pub(super) struct Batch {
    pub buf: Vec<u8>,
    pub items: Vec<Item>,
}

/// What writing one batch did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Wrote {
    pub writes: u64,
    pub bytes: u64,
    pub discard_bytes: u64,
    pub discard_zeroed_bytes: u64,
}

/// Saves the batch's old data into `undo` (made durable before anything is overwritten),
/// then writes its items in order: adjacent data items with one `pwrite`, discards one by one.
pub(super) fn write_batch(
    dest: &Destination,
    undo: Option<&mut UndoLog>,
    b: &Batch,
    progress: &Progress,
) -> Result<Wrote> {
    let mut wrote = Wrote::default();
    if b.items.is_empty() {
        return Ok(wrote);
    }
    if let Some(u) = undo {
        // Adjacent pieces saved as one range, so the undo file gets one record per run.
        let mut run: Option<(u64, u64)> = None;
        for it in &b.items {
            match run {
                Some((s, l)) if s + l == it.dest => run = Some((s, l + it.len as u64)),
                _ => {
                    if let Some((s, l)) = run {
                        u.save(dest, s, l)?;
                    }
                    run = Some((it.dest, it.len as u64));
                }
            }
        }
        if let Some((s, l)) = run {
            u.save(dest, s, l)?;
        }
        u.commit()?;
    }
    let mut i = 0;
    while i < b.items.len() {
        let first = b.items[i];
        if first.discard {
            let len = first.len as u64;
            let done = dest.discard(first.dest, len)?;
            wrote.discard_bytes += len;
            wrote.discard_zeroed_bytes += done.zeroed;
            progress.add_done(len);
            i += 1;
            continue;
        }
        let mut end = i + 1;
        let mut len = first.len;
        while end < b.items.len()
            && !b.items[end].discard
            && b.items[end].dest == first.dest + len as u64
            && b.items[end].buf == first.buf + len
        {
            len += b.items[end].len;
            end += 1;
        }
        dest.write_all_at(&b.buf[first.buf..first.buf + len], first.dest)?;
        wrote.writes += 1;
        wrote.bytes += len as u64;
        progress.add_done(len as u64);
        i = end;
    }
    // Items are in stream order, not sorted: the span from the lowest to the highest.
    let lo = b.items.iter().map(|it| it.dest).min().unwrap_or(0);
    let hi = b
        .items
        .iter()
        .map(|it| it.dest + it.len as u64)
        .max()
        .unwrap_or(0);
    dest.start_writeback(lo, hi.saturating_sub(lo));
    if progress.is_cancelled() {
        return Err(Cancelled.into());
    }
    Ok(wrote)
}

/// The thread's loop: writes every batch received and sends it back (emptied of its items,
/// its buffer kept for reuse) with what writing it did. Stops after the first failure, or
/// when the applier hangs up; returns the snapback journal, for its end mark.
pub(super) fn serve(
    dest: &Destination,
    mut undo: Option<UndoLog>,
    progress: &Progress,
    batches: Receiver<Batch>,
    back: SyncSender<(Batch, Result<Wrote>)>,
) -> Option<UndoLog> {
    for mut b in batches {
        let r = write_batch(dest, undo.as_mut(), &b, progress);
        let failed = r.is_err();
        b.items.clear();
        if back.send((b, r)).is_err() || failed {
            break;
        }
    }
    undo
}
