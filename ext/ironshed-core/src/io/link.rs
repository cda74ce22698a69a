//! An in-process byte stream from one thread to another: what a local lvmsync sends its
//! receiver through. It carries the same PROTO[3] bytes a pipe would, so the receiver checks
//! them the same way, but the bytes cross in 1 MiB buffers handed from one thread to the
//! other, not through the kernel: a pipe costs two more copies of every byte, page
//! allocations and a system call per record.
//!
//! The halves behave like a pipe's ends, with one difference: the reader sees end of file
//! only once the writer said it finished ([`LinkWriter::finish`]) and everything it wrote was
//! read. A writer dropped without finishing (its sender failed) makes the reader fail after
//! the last bytes it wrote, so a receiver never takes a stream cut between two records for a
//! whole plain stream. A write after the reader is gone fails with `BrokenPipe` (at the
//! latest when it fills the next buffer). Waits are slices of at most 200 ms that look at the
//! half's cancel flag, so Ctrl-C is seen however the other side stalls. At most [`DEPTH`] buffers are in flight, so
//! the memory is bounded whatever the stream's size.

use crate::Progress;
use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Bytes of one buffer handed over.
pub const CHUNK: usize = 1 << 20;
/// Buffers written and not yet read, at most.
pub const DEPTH: usize = 4;
const SLICE: Duration = Duration::from_millis(200);
/// What the reader fails with when the writer was dropped without finishing.
pub const SENDER_STOPPED: &str = "the sender stopped before the end of the stream";

#[derive(Default)]
struct State {
    /// Written buffers, oldest first.
    full: VecDeque<Vec<u8>>,
    /// Read buffers, for the writer to fill again.
    free: Vec<Vec<u8>>,
    writer_gone: bool,
    /// The writer finished the stream (else its end is an error).
    finished: bool,
    reader_gone: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: go on with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a change (at most one slice); fails once `cancel` is set.
    fn wait<'a>(
        &self,
        g: MutexGuard<'a, State>,
        cancel: Option<&Progress>,
    ) -> io::Result<MutexGuard<'a, State>> {
        let (g, _) = self
            .changed
            .wait_timeout(g, SLICE)
            .unwrap_or_else(|p| p.into_inner());
        if cancel.is_some_and(|c| c.is_cancelled()) {
            return Err(io::Error::other("interrupted"));
        }
        Ok(g)
    }
}

/// A new link: what is written to the first half is read from the second.
pub fn link() -> (LinkWriter, LinkReader) {
    let shared = Arc::new(Shared::default());
    (
        LinkWriter {
            shared: shared.clone(),
            cur: Vec::new(),
            cancel: None,
        },
        LinkReader {
            shared,
            cur: Vec::new(),
            at: 0,
            cancel: None,
        },
    )
}

/// The writing half. Dropping it ends the stream (after what was written is read).
pub struct LinkWriter {
    shared: Arc<Shared>,
    /// The buffer being filled.
    cur: Vec<u8>,
    cancel: Option<Arc<Progress>>,
}

impl LinkWriter {
    /// Makes every wait fail once `progress` is cancelled.
    pub fn cancelled_by(mut self, progress: Arc<Progress>) -> Self {
        self.cancel = Some(progress);
        self
    }

    /// Ends the stream: hands over what was written and lets the reader see end of file.
    pub fn finish(mut self) -> io::Result<()> {
        io::Write::flush(&mut self)?;
        self.shared.lock().finished = true;
        Ok(())
    }

    /// Hands the filled buffer over, waiting while [`DEPTH`] buffers are unread; takes a
    /// free buffer (or a new one) to fill next.
    fn hand_over(&mut self) -> io::Result<()> {
        let mut g = self.shared.lock();
        loop {
            if g.reader_gone {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the receiver stopped reading",
                ));
            }
            if g.full.len() < DEPTH {
                break;
            }
            g = self.shared.wait(g, self.cancel.as_deref())?;
        }
        let next = g.free.pop().unwrap_or_default();
        g.full.push_back(std::mem::replace(&mut self.cur, next));
        drop(g);
        self.shared.changed.notify_all();
        self.cur.clear();
        Ok(())
    }
}

impl io::Write for LinkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        // A reader gone is seen at the next hand-over (at most one buffer later), so a
        // write takes no lock.
        if self.cur.len() >= CHUNK {
            self.hand_over()?;
        }
        if self.cur.capacity() < CHUNK {
            self.cur.reserve_exact(CHUNK - self.cur.len());
        }
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(CHUNK - self.cur.len());
            self.cur.extend_from_slice(&b[..take]);
            n += take;
            if take < b.len() {
                break;
            }
        }
        Ok(n)
    }

    /// Hands over what was written so far.
    fn flush(&mut self) -> io::Result<()> {
        if self.cur.is_empty() {
            return Ok(());
        }
        self.hand_over()
    }
}

impl Drop for LinkWriter {
    fn drop(&mut self) {
        let mut g = self.shared.lock();
        if !self.cur.is_empty() && !g.reader_gone {
            // One buffer past DEPTH at most: the end of the stream, never waited for.
            g.full.push_back(std::mem::take(&mut self.cur));
        }
        g.writer_gone = true;
        drop(g);
        self.shared.changed.notify_all();
    }
}

/// The reading half. Dropping it makes the writer's next write fail.
pub struct LinkReader {
    shared: Arc<Shared>,
    /// The buffer being read, from `at`.
    cur: Vec<u8>,
    at: usize,
    cancel: Option<Arc<Progress>>,
}

impl LinkReader {
    /// Makes every wait fail once `progress` is cancelled.
    pub fn cancelled_by(mut self, progress: Arc<Progress>) -> Self {
        self.cancel = Some(progress);
        self
    }
}

impl io::Read for LinkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.at == self.cur.len() {
            let mut g = self.shared.lock();
            let next = loop {
                if let Some(b) = g.full.pop_front() {
                    break b;
                }
                if g.writer_gone && g.finished {
                    return Ok(0);
                }
                if g.writer_gone {
                    return Err(io::Error::other(SENDER_STOPPED));
                }
                g = self.shared.wait(g, self.cancel.as_deref())?;
            };
            let mut done = std::mem::replace(&mut self.cur, next);
            if done.capacity() >= CHUNK && g.free.len() < DEPTH {
                done.clear();
                g.free.push(done);
            }
            drop(g);
            self.shared.changed.notify_all();
            self.at = 0;
        }
        let n = buf.len().min(self.cur.len() - self.at);
        buf[..n].copy_from_slice(&self.cur[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Drop for LinkReader {
    fn drop(&mut self) {
        let mut g = self.shared.lock();
        g.reader_gone = true;
        g.full.clear();
        drop(g);
        self.shared.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{IoSlice, Read, Write};

    /// A deterministic byte pattern that differs at every offset of a chunk.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
            .collect()
    }

    #[test]
    fn what_is_written_is_read_in_order_across_many_buffers() {
        let data = pattern(CHUNK * 9 + 12345);
        let (mut w, mut r) = link();
        let sent = data.clone();
        let t = std::thread::spawn(move || {
            // Odd write sizes and vectored writes, crossing every buffer boundary.
            let mut at = 0;
            let mut step = 1;
            while at < sent.len() {
                let end = (at + step).min(sent.len());
                let mid = at + (end - at) / 2;
                let mut slices = [IoSlice::new(&sent[at..mid]), IoSlice::new(&sent[mid..end])];
                let mut s: &mut [IoSlice<'_>] = &mut slices;
                while !s.is_empty() {
                    let n = w.write_vectored(s).unwrap();
                    IoSlice::advance_slices(&mut s, n);
                }
                at = end;
                step = step * 3 % 300_007 + 1;
            }
            w.finish().unwrap();
        });
        let mut got = Vec::new();
        let mut buf = vec![0u8; 70_001];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        t.join().unwrap();
        assert_eq!(got.len(), data.len());
        assert!(got == data, "the bytes read differ from those written");
    }

    #[test]
    fn a_finished_writer_ends_the_stream_after_its_last_bytes() {
        let (mut w, mut r) = link();
        w.write_all(b"last words").unwrap();
        w.finish().unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"last words");
        assert_eq!(r.read(&mut [0u8; 8]).unwrap(), 0);
    }

    #[test]
    fn a_writer_dropped_unfinished_fails_the_reader_after_its_last_bytes() {
        let (mut w, mut r) = link();
        w.write_all(b"cut here").unwrap();
        drop(w);
        let mut got = [0u8; 8];
        r.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"cut here");
        let e = r.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the sender stopped before the end of the stream"
        );
    }

    #[test]
    fn a_reader_gone_fails_the_writer_even_when_it_waits_for_room() {
        let (mut w, r) = link();
        let t = std::thread::spawn(move || {
            let big = vec![7u8; CHUNK];
            // More than DEPTH buffers: the writer must wait, then fail.
            for _ in 0..DEPTH + 3 {
                w.write_all(&big)?;
            }
            w.flush()
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(r);
        let e = t.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_cancelled_reader_stops_waiting_for_a_stalled_writer() {
        let (w, r) = link();
        let p = Arc::new(Progress::default());
        let mut r = r.cancelled_by(p.clone());
        let t = std::thread::spawn(move || r.read(&mut [0u8; 16]));
        std::thread::sleep(Duration::from_millis(30));
        p.cancel();
        let e = t.join().unwrap().unwrap_err();
        assert_eq!(e.to_string(), "interrupted");
        drop(w);
    }

    #[test]
    fn a_cancelled_writer_stops_waiting_for_a_stalled_reader() {
        let (w, r) = link();
        let p = Arc::new(Progress::default());
        let mut w = w.cancelled_by(p.clone());
        let t = std::thread::spawn(move || {
            let big = vec![1u8; CHUNK];
            for _ in 0..DEPTH + 2 {
                w.write_all(&big)?;
            }
            Ok::<_, io::Error>(())
        });
        std::thread::sleep(Duration::from_millis(30));
        p.cancel();
        let e = t.join().unwrap().unwrap_err();
        assert_eq!(e.to_string(), "interrupted");
        drop(r);
    }

    #[test]
    fn memory_stays_bounded_while_the_reader_lags() {
        let (mut w, r) = link();
        let shared = r.shared.clone();
        let t = std::thread::spawn(move || {
            let big = vec![3u8; CHUNK / 3];
            for _ in 0..40 {
                w.write_all(&big)?;
            }
            Ok::<_, io::Error>(())
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(shared.lock().full.len() <= DEPTH);
        drop(r);
        assert_eq!(
            t.join().unwrap().unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
    }
}
