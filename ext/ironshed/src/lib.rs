//! Ruby bindings for ironshed-core: a thin mirror of the Ruby API, one file per Ruby class.
//! All real work happens in `ironshed_core`; this crate converts arguments, releases the GVL
//! around long native work, and converts errors in one place ([`errors`]).

mod errors;
mod gvl;
mod lvm_changes;
mod lvm_cow_store;
mod lvm_metadata;
mod lvm_sync;
mod lvm_thin_delta;
mod progress;
mod rethtool_handle;
mod rethtool_link;
mod rethtool_params;
mod rethtool_stats;
mod vmdk_delta;

use magnus::{Error, Ruby};

#[magnus::init]
fn init(ruby: &Ruby) -> Result<(), Error> {
    errors::init(ruby)?;
    progress::init(ruby)?;
    vmdk_delta::init(ruby)?;
    lvm_metadata::init(ruby)?;
    lvm_cow_store::init(ruby)?;
    lvm_sync::init(ruby)?;
    lvm_thin_delta::init(ruby)?;
    let handle = rethtool_handle::init(ruby)?;
    rethtool_link::init(ruby, handle)?;
    rethtool_params::init(ruby, handle)?;
    rethtool_stats::init(ruby, handle)?;
    Ok(())
}
