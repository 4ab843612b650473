//! How a step's attempts ended: what the driver records, for a step of a
//! graph, an item of a map, or an orchestrator's durable call.

use crate::journal::Failure;
use bytes::Bytes;

/// How a step's attempts ended.
pub(crate) type StepOutcome = std::result::Result<Ran, Failed>;

/// A step that failed its last attempt.
pub(crate) struct Failed {
    pub(crate) failure: Failure,
    pub(crate) attempts: u32,
    pub(crate) started_ms: u64,
}

/// A step that ran well.
pub(crate) struct Ran {
    pub(crate) output: Bytes,
    pub(crate) node: String,
    pub(crate) attempts: u32,
    pub(crate) started_ms: u64,
    /// Items recorded one by one (a map step's), removed with its record.
    pub(crate) items: usize,
}
