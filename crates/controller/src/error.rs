//! Controller errors. Each has one HTTP status and one stable code.

use http::StatusCode;
use std::time::Duration;
use weft_runtime::{InvokeError, PrepareError};

/// Everything the controller can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No function by that name.
    #[error("function `{0}` not found")]
    FunctionNotFound(String),
    /// A name that is not a valid function name.
    #[error("{0}")]
    InvalidName(String),
    /// A function declaration that does not validate.
    #[error("function `{name}`: {message}")]
    InvalidSpec {
        /// The function.
        name: String,
        /// The field and what is wrong with it.
        message: String,
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
    /// The request body could not be taken: too large, aborted, too slow.
    #[error("function `{name}`: {message}")]
    RequestBody {
        /// The function.
        name: String,
        /// `request_too_large`, `request_aborted` or `request_timeout`.
        code: &'static str,
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
    /// No node of the fabric meets the function's placement.
    #[error("function `{name}`: {message}")]
    NoEligibleNode {
        /// The function.
        name: String,
        /// The constraints that ruled the nodes out.
        message: String,
    },
    /// The node chosen to run it could not be reached, or died.
    #[error("function `{name}`: {message}")]
    NodeUnreachable {
        /// The function.
        name: String,
        /// What happened.
        message: String,
    },
    /// The node that ran it answered an error.
    #[error("{message} (on node `{node}`)")]
    Remote {
        /// The node.
        node: String,
        /// Its stable code.
        code: String,
        /// Its HTTP status.
        status: u16,
        /// Its message.
        message: String,
    },
    /// Any other internal failure.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result of controller operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The stable, machine-readable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::FunctionNotFound(_) => "function_not_found",
            Error::InvalidName(_) => "invalid_name",
            Error::InvalidSpec { .. } => "invalid_spec",
            Error::ModuleNotFound { .. } => "module_not_found",
            Error::VersionNotFound { .. } => "version_not_found",
            Error::Prepare { source, .. } => source.code(),
            Error::QueueFull { .. } => "queue_full",
            Error::QueueTimeout { .. } => "queue_timeout",
            Error::NodeAtCapacity { .. } => "node_at_capacity",
            Error::ShuttingDown => "shutting_down",
            Error::RequestBody { code, .. } => code,
            Error::Invoke { source, .. } => source.code(),
            Error::UnknownStore { .. } => "unknown_store",
            Error::UnknownTopic { .. } => "unknown_topic",
            Error::InvalidTrigger { .. } => "invalid_trigger",
            Error::RouteConflict { .. } => "route_conflict",
            Error::Queue(e) => e.code(),
            Error::Store(weft_store::Error::FunctionNotFound(_)) => "function_not_found",
            Error::Store(weft_store::Error::VersionNotFound { .. }) => "version_not_found",
            Error::FabricUnavailable(_) => "fabric_unavailable",
            Error::NoEligibleNode { .. } => "no_eligible_node",
            Error::NodeUnreachable { .. } => "node_unreachable",
            Error::Remote { code, .. } => remote_code(code),
            Error::Store(_) | Error::Internal(_) => "internal",
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::FunctionNotFound(_) | Error::VersionNotFound { .. } => StatusCode::NOT_FOUND,
            Error::Store(weft_store::Error::FunctionNotFound(_))
            | Error::Store(weft_store::Error::VersionNotFound { .. }) => StatusCode::NOT_FOUND,
            Error::InvalidName(_) | Error::InvalidSpec { .. } | Error::ModuleNotFound { .. } => {
                StatusCode::BAD_REQUEST
            }
            Error::Prepare { source, .. } => match source {
                PrepareError::Io(_) | PrepareError::Internal(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
                _ => StatusCode::BAD_REQUEST,
            },
            Error::QueueFull { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::UnknownStore { .. }
            | Error::UnknownTopic { .. }
            | Error::InvalidTrigger { .. } => StatusCode::BAD_REQUEST,
            Error::RouteConflict { .. } => StatusCode::CONFLICT,
            Error::Queue(e) => {
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Error::RequestBody { code, .. } => match *code {
                "request_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
                "request_timeout" => StatusCode::REQUEST_TIMEOUT,
                _ => StatusCode::BAD_REQUEST,
            },
            Error::QueueTimeout { .. } | Error::NodeAtCapacity { .. } | Error::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Invoke { source, .. } => match source {
                InvokeError::Deadline { .. } => StatusCode::GATEWAY_TIMEOUT,
                InvokeError::RequestTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                InvokeError::ResponseTooLarge { .. } | InvokeError::Handler(_) => {
                    StatusCode::BAD_GATEWAY
                }
                InvokeError::NoCapacity => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Error::FabricUnavailable(_) | Error::NoEligibleNode { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::NodeUnreachable { .. } => StatusCode::BAD_GATEWAY,
            Error::Remote { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            Error::Store(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Seconds a client should wait before retrying, for overload errors.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::QueueFull { .. } | Error::QueueTimeout { .. } | Error::NodeAtCapacity { .. } => {
                Some(1)
            }
            Error::Invoke {
                source: InvokeError::NoCapacity,
                ..
            } => Some(1),
            Error::ShuttingDown => Some(5),
            Error::Queue(weft_queue::QueueError::Full { .. }) => Some(1),
            _ => None,
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
            | Error::UnknownStore { name: n, .. }
            | Error::UnknownTopic { name: n, .. }
            | Error::InvalidTrigger { name: n, .. }
            | Error::RouteConflict { name: n, .. }
            | Error::Invoke { name: n, .. } => Some(n),
            Error::Prepare { name, .. } => name.as_deref(),
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

/// A peer's error code, if it is one of ours (codes are `snake_case`
/// words); anything else is reported as `remote_error`.
fn remote_code(code: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "function_not_found",
        "invalid_spec",
        "module_not_found",
        "invalid_module",
        "unsupported_world",
        "import_not_granted",
        "queue_full",
        "queue_timeout",
        "node_at_capacity",
        "shutting_down",
        "request_too_large",
        "request_timeout",
        "invalid_request",
        "function_exit",
        "function_trap",
        "stack_overflow",
        "memory_limit_exceeded",
        "fuel_exhausted",
        "deadline_exceeded",
        "response_too_large",
        "handler_error",
        "internal",
        "fabric_unavailable",
        "no_eligible_node",
        "node_unreachable",
        "invalid_call",
    ];
    KNOWN
        .iter()
        .find(|k| **k == code)
        .copied()
        .unwrap_or("remote_error")
}
