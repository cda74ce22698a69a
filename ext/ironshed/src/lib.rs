//! Ruby bindings for ironshed-core: a thin mirror of the Ruby API, one file per Ruby class.
//! All real work happens in `ironshed_core`; this crate converts arguments and results in the
//! one way [`convert`] describes, releases the GVL around long native work ([`gvl`]), and
//! turns core errors into the exceptions of `lib/ironshed/errors.rb` in one place
//! ([`errors`]).

mod convert;
mod errors;
mod gvl;
mod lvm_change_set;
mod lvm_cow_store;
mod lvm_metadata;
mod lvm_native;
mod lvm_thin_delta;
mod lvm_thin_mapping;
mod lvmsync_link;
mod lvmsync_native;
mod progress;
mod rethtool_driver_info;
mod rethtool_handle;
mod rethtool_link_settings;
mod rootzone_installed;
mod rootzone_update;
mod rootzone_verification;
mod rootzone_zone;
mod vmdk_delta;

use magnus::{Error, Ruby, TypedData};

#[magnus::init]
fn init(ruby: &Ruby) -> Result<(), Error> {
    errors::init(ruby)?;
    progress::init(ruby)?;
    vmdk_delta::init(ruby)?;
    lvm_metadata::init(ruby)?;
    lvm_native::init(ruby)?;
    lvm_change_set::init(ruby)?;
    lvm_cow_store::init(ruby)?;
    lvm_thin_delta::init(ruby)?;
    lvm_thin_mapping::init(ruby)?;
    lvmsync_native::init(ruby)?;
    lvmsync_link::init(ruby)?;
    rethtool_handle::init(ruby)?;
    rethtool_driver_info::init(ruby)?;
    rethtool_link_settings::init(ruby)?;
    rootzone_verification::init(ruby)?;
    rootzone_zone::init(ruby)?;
    rootzone_update::init(ruby)?;
    rootzone_installed::init(ruby)?;
    resolve_wrapped_classes(ruby);
    Ok(())
}

/// Looks up the class of every wrapped type now, while the extension loads (lib/ironshed.rb
/// loads it with interrupts deferred). magnus looks a wrapped type's class up on its first
/// use and panics if that lookup raises; left to first use, a Ctrl-C arriving just as the
/// first job starts (`Ironshed::Progress.new`) would turn into a fatal panic instead of an
/// `Interrupt`. spec/ruby_boundary_spec.rb checks that every wrapped type is listed here.
fn resolve_wrapped_classes(ruby: &Ruby) {
    progress::RbProgress::class(ruby);
    vmdk_delta::RbDelta::class(ruby);
    lvm_metadata::RbMetadata::class(ruby);
    lvm_change_set::RbChangeSet::class(ruby);
    lvm_cow_store::RbCowStore::class(ruby);
    lvm_thin_delta::RbThinDelta::class(ruby);
    lvm_thin_mapping::RbThinMapping::class(ruby);
    lvmsync_link::RbLink::class(ruby);
    rethtool_handle::RbHandle::class(ruby);
    rethtool_driver_info::RbDrvInfo::class(ruby);
    rethtool_link_settings::RbLinkSettings::class(ruby);
    rootzone_verification::RbVerification::class(ruby);
    rootzone_zone::RbZone::class(ruby);
    rootzone_update::RbUpdateReport::class(ruby);
    rootzone_installed::RbInstalled::class(ruby);
}
