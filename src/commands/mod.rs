//! One module per command.

pub(crate) mod deploy;
pub(crate) mod dlq;
pub(crate) mod explain;
pub(crate) mod invoke;
pub(crate) mod logs;
pub(crate) mod ls;
pub(crate) mod nodes;
pub(crate) mod publish;
pub(crate) mod result;
pub(crate) mod rm;
pub(crate) mod rollback;
pub(crate) mod schema;
pub(crate) mod sim;
pub(crate) mod slo;
pub(crate) mod state;
pub(crate) mod up;
pub(crate) mod usage;
pub(crate) mod workflow;
