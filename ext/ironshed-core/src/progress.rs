//! Progress counters and the cancel flag, shared (through an `Arc`) between a long-running
//! native loop and whoever watches it: the Ruby binding polls them from another Ruby thread
//! while the loop runs without the GVL, and its unblock function sets the cancel flag.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Bytes done out of a total, a cancel request, and whether the job has changed its
/// destination. All methods are lock-free.
#[derive(Debug, Default)]
pub struct Progress {
    total: AtomicU64,
    done: AtomicU64,
    cancelled: AtomicBool,
    written: AtomicBool,
    written_bytes: AtomicU64,
}

impl Progress {
    /// A fresh counter: nothing done, total unknown (0), not cancelled.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the number of bytes the job will handle.
    pub fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }
    /// Adds `n` bytes to the amount done.
    pub fn add_done(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
    /// Bytes done so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
    /// Bytes the job will handle (0 until known).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
    /// Asks the loop to stop at its next check; safe to call from a signal or unblock context.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }
    /// True once [`Progress::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
    /// Records that the job has changed its destination, by `bytes` bytes so far (see
    /// [`crate::block::Destination::watched_by`]).
    pub fn note_written(&self, bytes: u64) {
        self.written_bytes.store(bytes, Ordering::SeqCst);
        self.written.store(true, Ordering::SeqCst);
    }
    /// True once the job has started changing its destination: a job that fails or is
    /// interrupted after that has left it partly updated; before that, untouched.
    pub fn written(&self) -> bool {
        self.written.load(Ordering::SeqCst)
    }
    /// Bytes the job wrote (or discarded) into its destination, as its system calls reported
    /// them; a write cut short counts what it wrote.
    pub fn written_bytes(&self) -> u64 {
        self.written_bytes.load(Ordering::SeqCst)
    }
}
