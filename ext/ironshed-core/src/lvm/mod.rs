//! LVM2 text metadata: the generic syntax ([`text`]) and the volume group model built on it
//! ([`model`]). The input is what `vgcfgbackup -f FILE VG` writes, or the copy LVM keeps in a
//! PV's metadata area (same syntax, keys in another order).

pub mod lvs;
pub mod model;
pub mod pool_status;
pub mod round;
pub mod text;

pub use model::{
    dm_name, parse, Area, ClassicSnapshot, LogicalVolume, Metadata, PhysicalVolume, Problem,
    Segment, SegmentKind, VolumeGroup,
};
pub use round::{
    plan as plan_round, Changes, NewPart, Round, RoundError, RoundOptions, Target, ThinDevice,
};
pub use text::{Node, Section, Value};

/// Why metadata text was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text does not follow the LVM2 configuration syntax.
    #[error("{source_name}: line {line}, column {column}: {msg}")]
    Parse {
        /// The file (or command) the text came from.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (in bytes).
        column: usize,
        /// What was expected and found.
        msg: String,
    },
    /// The syntax is fine but there is no (single) volume group in it.
    #[error("{source_name}: {msg}")]
    Structure {
        /// The file the text came from.
        source_name: String,
        /// What is missing.
        msg: String,
    },
}

impl crate::Report for Error {
    fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::LvmMetadata
    }
    fn message(&self) -> String {
        self.to_string()
    }
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, Error>;
