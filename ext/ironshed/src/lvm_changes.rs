//! What a change source says to send: its data ranges and its discard ranges. The sender
//! (`LVMSync::Native.send`) accepts any Ruby object this module knows; each kind of change
//! source is one arm of [`extract`].

use crate::lvm_cow_store::RbCowStore;
use crate::lvm_thin_delta::RbThinDelta;
use ironshed_core::snapshot::Changes;
use magnus::{prelude::*, Error, Ruby, TryConvert, Value};

/// The (data ranges, discard ranges) of a change source:
/// * `LVM::CowStore` (a classic snapshot's exception store): its changed chunks; no discards
///   (a dm-snapshot store does not record them).
/// * `LVM::ThinDelta` (thin_delta between two thin devices): the blocks mapped differently
///   or only on the newer side; discards are the blocks only the older side maps (they read
///   as zeros on the newer one).
///
/// Anything else is a `TypeError` naming its class.
pub fn extract(ruby: &Ruby, v: Value) -> Result<(Changes, Changes), Error> {
    if let Ok(store) = <&RbCowStore>::try_convert(v) {
        return Ok((store.changes.clone(), Changes::default()));
    }
    if let Ok(d) = <&RbThinDelta>::try_convert(v) {
        return Ok((d.delta.changed.clone(), d.delta.unmapped.clone()));
    }
    Err(Error::new(
        ruby.exception_type_error(),
        format!(
            "no change list in a {}: expected an LVM::CowStore or LVM::ThinDelta",
            v.class().inspect()
        ),
    ))
}
