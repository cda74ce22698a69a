//! `Ironshed::Progress`: byte counters of a running native job, readable from another Ruby
//! thread while the job runs without the GVL, and whether it has changed its destination.

use ironshed_core::Progress;
use magnus::{function, method, prelude::*, Error, Ruby};
use std::sync::Arc;

#[magnus::wrap(class = "Ironshed::Progress", free_immediately, size)]
pub struct RbProgress(pub Arc<Progress>);

impl RbProgress {
    fn new() -> Self {
        RbProgress(Arc::new(Progress::new()))
    }
    fn done(&self) -> u64 {
        self.0.done()
    }
    fn total(&self) -> u64 {
        self.0.total()
    }
    fn cancel(&self) {
        self.0.cancel()
    }
    fn cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
    fn written(&self) -> bool {
        self.0.written()
    }
    fn written_bytes(&self) -> u64 {
        self.0.written_bytes()
    }
}

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let m = ruby.define_module("Ironshed")?;
    let c = m.define_class("Progress", ruby.class_object())?;
    c.define_singleton_method("new", function!(RbProgress::new, 0))?;
    c.define_method("done", method!(RbProgress::done, 0))?;
    c.define_method("total", method!(RbProgress::total, 0))?;
    c.define_method("cancel", method!(RbProgress::cancel, 0))?;
    c.define_method("cancelled?", method!(RbProgress::cancelled, 0))?;
    c.define_method("written?", method!(RbProgress::written, 0))?;
    c.define_method("written_bytes", method!(RbProgress::written_bytes, 0))?;
    Ok(())
}
