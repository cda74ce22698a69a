//! Fixture writers for ironshed's tests, benchmarks and demo, and a raw-frame sender for
//! the network tests.
//!
//! Written from the format notes, independently of `ironshed-core`'s readers (this crate does
//! not depend on the core), so that a test which writes with one and reads with the other
//! checks both against the format, and `qemu-img` checks them against the world.

pub mod chain;
pub mod cow;
pub mod cowd;
pub mod descriptor;
pub mod frames;
pub mod model;
pub mod pattern;
pub mod rootzone;
pub mod sesparse;
pub mod sparse;
