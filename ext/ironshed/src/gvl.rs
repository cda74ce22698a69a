//! Running native work without the GVL, with an unblock function that cancels it.
//!
//! While the closure runs, other Ruby threads (a progress poller) run, and Ruby's Ctrl-C or
//! `Thread#kill` calls the unblock function, which sets the job's cancel flag; the copy loop
//! sees it between writes and returns `Interrupted`. The closure must not touch any Ruby
//! object. A panic inside it is caught here and reported as `None`.

use ironshed_core::Progress;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

struct Call<F, R> {
    f: Option<F>,
    out: Option<std::thread::Result<R>>,
}

unsafe extern "C" fn trampoline<F: FnOnce() -> R, R>(data: *mut c_void) -> *mut c_void {
    // SAFETY: `data` is the `Call` owned by `without_gvl`'s frame, alive for the whole call.
    let call = unsafe { &mut *(data as *mut Call<F, R>) };
    if let Some(f) = call.f.take() {
        call.out = Some(catch_unwind(AssertUnwindSafe(f)));
    }
    std::ptr::null_mut()
}

unsafe extern "C" fn unblock(data: *mut c_void) {
    // SAFETY: `data` points at the `Progress` borrowed by `without_gvl`, alive for the call.
    let p = unsafe { &*(data as *const Progress) };
    p.cancel();
}

/// Runs `f` with the GVL released; `progress` is cancelled if Ruby interrupts the thread.
/// Returns `None` if `f` panicked.
pub fn without_gvl<F, R>(progress: &Progress, f: F) -> Option<R>
where
    F: FnOnce() -> R,
{
    let mut call = Call::<F, R> {
        f: Some(f),
        out: None,
    };
    // SAFETY: both pointers outlive the call; the trampoline matches the data type.
    unsafe {
        rb_sys::rb_thread_call_without_gvl(
            Some(trampoline::<F, R>),
            &mut call as *mut Call<F, R> as *mut c_void,
            Some(unblock),
            progress as *const Progress as *mut c_void,
        );
    }
    match call.out {
        Some(Ok(r)) => Some(r),
        _ => None,
    }
}
