//! ironshed-core: the native engine behind the `ironshed` Ruby gem.
//!
//! Nothing in this crate knows about Ruby. Each domain lives in its own module and has its
//! own error enum; the Ruby binding (`ext/ironshed`) converts them in one place.
//!
//! * [`vmdk`]: VMware delta disks (descriptors, COWD) and the plan of what to write.
//! * [`ethtool`]: SIOCETHTOOL queries (link settings, driver info, rings, statistics...).
//! * [`block`]: the destination (file or block device) and the copy loop that writes a plan.
//! * [`io`]: the read seam every parser uses, so the same code runs on files and in-memory
//!   images (tests, fuzzing).
//! * [`progress`]: counters and the cancel flag shared between the copy loop and its caller.

pub mod block;
pub mod error;
pub mod ethtool;
pub mod io;
pub mod progress;
pub mod sectormap;
pub mod vmdk;

pub use error::IoContext;
pub use progress::Progress;
