//! Controller errors. Each has one HTTP status and one stable code.

use http::StatusCode;
use std::time::Duration;
use weft_codes::Code;
use weft_manifest::FieldError;
use weft_runtime::{InvokeError, PrepareError};

/// Everything the controller can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No function by that name.
    #[error("function `{0}` not found")]
    FunctionNotFound(String),
    /// A name that is not a valid function name.
    #[error("{0}")]
    InvalidName(FieldError),
    /// A function declaration that does not validate.
    #[error("function `{name}`: {error}")]
    InvalidSpec {
        /// The function.
        name: String,
        /// The field and what is wrong with it.
        error: FieldError,
    },
    /// A deploy that names a module the node does not have.
    #[error("function `{name}`: module sha256:{digest} is not on this node; upload it first")]
    ModuleNotFound {
        /// The function.
        name: String,
        /// The missing digest.
        digest: String,
    },
    /// No such version.
    #[error("function `{name}` has no version {version}")]
    VersionNotFound {
        /// The function.
        name: String,
        /// The version asked for.
        version: u32,
    },
    /// A module that failed validation or compilation.
    #[error("{}{source}", name.as_ref().map(|n| format!("function `{n}`: ")).unwrap_or_default())]
    Prepare {
        /// The function, when known.
        name: Option<String>,
        /// Why.
        source: PrepareError,
    },
    /// The function's wait queue is full.
    #[error("function `{name}` is at its concurrency limit and its queue of {queue} is full")]
    QueueFull {
        /// The function.
        name: String,
        /// Its queue length.
        queue: u32,
    },
    /// The invocation waited in the queue past its timeout.
    #[error("function `{name}`: no free slot within {} ms", waited.as_millis())]
    QueueTimeout {
        /// The function.
        name: String,
        /// How long it waited.
        waited: Duration,
    },
    /// Every sandbox slot of the node is in use.
    #[error("function `{name}`: the node has no free sandbox slot ({max} in use)")]
    NodeAtCapacity {
        /// The function.
        name: String,
        /// The node's slot count.
        max: u32,
    },
    /// The invocation's deadline cannot be met here: the work admitted
    /// before it and its own expected time end after it.
    #[error(
        "function `{name}`: its deadline ({:.1} ms from now) cannot be met here: {:.1} ms of admitted work is due before it, and it is expected to take {:.1} ms",
        ms(within),
        ms(ahead),
        ms(expected)
    )]
    DeadlineUnmeetable {
        /// The function.
        name: String,
        /// Its deadline, from now.
        within: Duration,
        /// The admitted work due before it, per worker.
        ahead: Duration,
        /// What it is expected to take (its profile at its admission
        /// percentile).
        expected: Duration,
    },
    /// The request body could not be taken: too large, aborted, too slow.
    #[error("function `{name}`: {message}")]
    RequestBody {
        /// The function.
        name: String,
        /// `request_too_large`, `request_aborted` or `request_timeout`.
        code: Code,
        /// What happened.
        message: String,
    },
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// An invocation that ran and failed.
    #[error("function `{name}` (invocation {invocation}): {source}")]
    Invoke {
        /// The function.
        name: String,
        /// The invocation's id.
        invocation: String,
        /// What went wrong.
        source: InvokeError,
    },
    /// A deploy that names a key-value store the node does not provide.
    #[error(
        "function `{name}`: key-value store `{label}` is not provided by this node (its config has no [kv.{label}])"
    )]
    UnknownStore {
        /// The function.
        name: String,
        /// The store's label.
        label: String,
    },
    /// State an invocation cannot use or keep: a client state forged,
    /// another key's, stale or too large; a key lost to another writer.
    #[error("function `{name}`: {message}")]
    State {
        /// The function.
        name: String,
        /// `invalid_client_state`, `stale_client_state`,
        /// `client_state_too_large` or `state_conflict`.
        code: Code,
        /// What is wrong.
        message: String,
    },
    /// An operation on state this node does not keep.
    #[error("function `{name}`: {message}")]
    NotKeptHere {
        /// The function.
        name: String,
        /// Why.
        message: String,
    },
    /// A deploy asking for a state model the node cannot provide.
    #[error("function `{name}`: state model `{model}` is not available on this node: {missing}")]
    StateModelUnavailable {
        /// The function.
        name: String,
        /// The model.
        model: weft_manifest::StateModel,
        /// What is missing, and how to provide it.
        missing: String,
    },
    /// A deploy that names a topic the node does not provide.
    #[error(
        "function `{name}`: topic `{topic}` is not provided by this node (see `topics` in its config)"
    )]
    UnknownTopic {
        /// The function.
        name: String,
        /// The topic pattern.
        topic: String,
    },
    /// A deploy whose trigger the node cannot serve (bad cron expression,
    /// MQTT without a broker, bad MQTT filter).
    #[error("function `{name}`: {message}")]
    InvalidTrigger {
        /// The function.
        name: String,
        /// What is wrong, naming the trigger.
        message: String,
    },
    /// A route another function already serves.
    #[error("function `{name}`: route `{route}` is already served by function `{other}`")]
    RouteConflict {
        /// The function.
        name: String,
        /// The route.
        route: String,
        /// The function that has it.
        other: String,
    },
    /// The asynchronous invocation queue refused or failed.
    #[error("{0}")]
    Queue(#[from] weft_queue::QueueError),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] weft_store::Error),
    /// The fabric (NATS) is needed and cannot be reached.
    #[error("fabric unavailable: {0}")]
    FabricUnavailable(String),
    /// Any other internal failure.
    #[error("internal error: {0}")]
    Internal(String),
}

fn ms(d: &Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Result of controller operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The stable, machine-readable error code; it fixes the HTTP status
    /// and `Retry-After`.
    pub fn code(&self) -> Code {
        match self {
            Error::FunctionNotFound(_) => Code::FunctionNotFound,
            Error::InvalidName(_) => Code::InvalidName,
            Error::InvalidSpec { error, .. } => error.code(),
            Error::ModuleNotFound { .. } => Code::ModuleNotFound,
            Error::VersionNotFound { .. } => Code::VersionNotFound,
            Error::Prepare { source, .. } => source.code(),
            Error::QueueFull { .. } => Code::QueueFull,
            Error::QueueTimeout { .. } => Code::QueueTimeout,
            Error::NodeAtCapacity { .. } => Code::NodeAtCapacity,
            Error::DeadlineUnmeetable { .. } => Code::DeadlineUnmeetable,
            Error::ShuttingDown => Code::ShuttingDown,
            Error::RequestBody { code, .. } => *code,
            Error::Invoke { source, .. } => source.code(),
            Error::UnknownStore { .. } => Code::UnknownStore,
            Error::UnknownTopic { .. } => Code::UnknownTopic,
            Error::StateModelUnavailable { .. } => Code::StateModelUnavailable,
            Error::State { code, .. } => *code,
            Error::NotKeptHere { .. } => Code::InvalidRequest,
            Error::InvalidTrigger { .. } => Code::InvalidTrigger,
            Error::RouteConflict { .. } => Code::RouteConflict,
            Error::Queue(e) => e.code(),
            Error::Store(weft_store::Error::FunctionNotFound(_)) => Code::FunctionNotFound,
            Error::Store(
                weft_store::Error::VersionNotFound { .. }
                | weft_store::Error::NoEarlierVersion { .. },
            ) => Code::VersionNotFound,
            Error::FabricUnavailable(_) => Code::FabricUnavailable,
            Error::Store(_) | Error::Internal(_) => Code::Internal,
        }
    }

    /// The HTTP status this error is answered with: its code's.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Seconds a client should wait before retrying: its code's, or, for
    /// an unmeetable deadline, when the work ahead should have drained.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Error::DeadlineUnmeetable { ahead, .. } => {
                Some(u32::try_from(ahead.as_secs().saturating_add(1)).unwrap_or(u32::MAX))
            }
            _ => self.code().retry_after(),
        }
    }

    /// The function the error concerns, when there is one.
    pub fn function(&self) -> Option<&str> {
        match self {
            Error::FunctionNotFound(n)
            | Error::InvalidSpec { name: n, .. }
            | Error::ModuleNotFound { name: n, .. }
            | Error::VersionNotFound { name: n, .. }
            | Error::QueueFull { name: n, .. }
            | Error::RequestBody { name: n, .. }
            | Error::QueueTimeout { name: n, .. }
            | Error::NodeAtCapacity { name: n, .. }
            | Error::DeadlineUnmeetable { name: n, .. }
            | Error::UnknownStore { name: n, .. }
            | Error::UnknownTopic { name: n, .. }
            | Error::StateModelUnavailable { name: n, .. }
            | Error::State { name: n, .. }
            | Error::NotKeptHere { name: n, .. }
            | Error::InvalidTrigger { name: n, .. }
            | Error::RouteConflict { name: n, .. }
            | Error::Invoke { name: n, .. } => Some(n),
            Error::Prepare { name, .. } => name.as_deref(),
            _ => None,
        }
    }

    /// The field of a spec at fault, for `invalid_spec`.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::InvalidSpec { error, .. } => Some(error.field()).filter(|f| !f.is_empty()),
            Error::StateModelUnavailable { .. } => Some("state.model"),
            _ => None,
        }
    }

    /// The exit code of a command that exited non-zero.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Error::Invoke {
                source: InvokeError::Exit(c),
                ..
            } => Some(*c),
            _ => None,
        }
    }

    /// The invocation id, for errors of an invocation that ran.
    pub fn invocation(&self) -> Option<&str> {
        match self {
            Error::Invoke { invocation, .. } => Some(invocation),
            _ => None,
        }
    }
}
