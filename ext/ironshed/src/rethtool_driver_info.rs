//! `Rethtool::DriverInfoData`: one GDRVINFO reply (`Rethtool::Handle#driver_info`), its fields
//! read on demand (a query builds one object, not a String per field), which
//! lib/rethtool/driver_settings.rb turns into `Rethtool::DriverSettings`.

use crate::convert::readers;
use ironshed_core::ethtool::DrvInfo;
use magnus::{prelude::*, Error, Ruby};

#[magnus::wrap(class = "Rethtool::DriverInfoData", free_immediately, size)]
pub struct RbDrvInfo(pub DrvInfo);

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let reth = ruby.define_class("Rethtool", ruby.class_object())?;
    let d = reth.define_class("DriverInfoData", ruby.class_object())?;
    d.undef_default_alloc_func();
    readers!(d, RbDrvInfo; driver, version, fw_version, bus_info, erom_version, n_priv_flags,
        n_stats, testinfo_len, eedump_len, regdump_len => ruby);
    Ok(())
}
