//! ironshed-core: the native engine behind the `ironshed` Ruby gem.
//!
//! Nothing in this crate knows about Ruby. Each domain lives in its own module and has its
//! own error enum; the Ruby binding (`ext/ironshed`) converts them in one place.
//!
//! * [`vmdk`]: VMware delta disks (descriptors, COWD) and the plan of what to write.
//! * [`lvm`]: LVM2 text metadata (what `vgcfgbackup` writes) and the volume group model.
//! * [`snapshot`]: what a snapshot says changed (the dm-snapshot exception store of a classic
//!   LVM snapshot) as coalesced byte ranges.
//! * [`wire`]: the lvmsync PROTO[3] stream: codec, sender, receiver and the snapback writer.
//! * [`ethtool`]: SIOCETHTOOL queries (link settings, driver info, rings, statistics...).
//! * [`dns`]: the DNS root zone for djbdns: zone files, DNSSEC and ZONEMD verification,
//!   tinydns data and CDB, atomic install.
//! * [`block`]: the destination (file or block device) and the copy loop that writes a plan.
//! * [`io`]: the read seam every parser uses, so the same code runs on files and in-memory
//!   images (tests, fuzzing).
//! * [`progress`]: counters and the cancel flag shared between the copy loop and its caller.

pub mod block;
pub mod dns;
pub mod error;
pub mod ethtool;
pub mod io;
pub mod lvm;
pub mod progress;
pub mod sectormap;
pub mod snapshot;
pub mod vmdk;
pub mod wire;

pub use error::{Cancelled, IoContext, Report};
pub use progress::Progress;
