//! Router errors: the controller's, and the decisions only the router makes
//! (the chain, placement, another node's answer). Each names one
//! [`Code`](weft_codes::Code), which fixes its status.

use weft_codes::Code;

/// Why an invocation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Admission, execution or lifecycle, on this node.
    #[error(transparent)]
    Controller(#[from] weft_controller::Error),
    /// A call to a function already on the synchronous call stack.
    #[error("call cycle refused: {chain}")]
    Cycle {
        /// The chain, the refused callee last.
        chain: String,
    },
    /// A chain deeper than the node allows.
    #[error("chain too deep: {chain} exceeds the node's max_call_depth of {max}")]
    TooDeep {
        /// The chain, the refused step last.
        chain: String,
        /// The bound.
        max: usize,
    },
    /// The caller's deadline passed before the invocation could start.
    #[error("function `{name}`: no time left ({why})")]
    NoTimeLeft {
        /// The function.
        name: String,
        /// What was waited for.
        why: String,
    },
    /// Queued work whose deadline passed before it could start.
    #[error("function `{name}`: its deadline passed {late_ms} ms before it could start; not run")]
    Expired {
        /// The function.
        name: String,
        /// How long ago, ms.
        late_ms: u128,
    },
    /// A request's deadline looser than the function's.
    #[error("function `{name}`: {message}")]
    InvalidDeadline {
        /// The function.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A stateful function's invocation without a key where the function
    /// takes it from, or with a malformed one.
    #[error("function `{name}`: state key from `{from}` {message}")]
    InvalidStateKey {
        /// The function.
        name: String,
        /// Where the key was looked for (`header:x-weft-key`).
        from: String,
        /// What is wrong.
        message: String,
    },
    /// An asynchronous invocation of a function that can only answer its
    /// caller (its state goes back with the response).
    #[error(
        "function `{name}` keeps its state with the client, which gets it back with the response: invoke it synchronously"
    )]
    NotQueueable {
        /// The function.
        name: String,
    },
    /// A function that is not public, asked for without the node's token.
    #[error(
        "this node requires `Authorization: Bearer <token>` for function `{name}` (set WEFT_TOKEN or --token)"
    )]
    Unauthorized {
        /// The function.
        name: String,
    },
    /// No node of the fabric meets the function's placement and
    /// declarations.
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
        /// The function.
        name: String,
        /// Its code ([`Code::RemoteError`] for one this node does not know).
        code: Code,
        /// Its message.
        message: String,
    },
    /// The fabric (NATS) is needed and cannot be reached.
    #[error("fabric unavailable: {0}")]
    FabricUnavailable(String),
    /// Another node of the fabric answers to this node's name.
    #[error("{0}")]
    NameTaken(String),
}

/// Result of router operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The stable code; it fixes the HTTP status and `Retry-After`.
    pub fn code(&self) -> Code {
        match self {
            Error::Controller(e) => e.code(),
            Error::Cycle { .. } => Code::CallCycle,
            Error::TooDeep { .. } => Code::ChainTooDeep,
            Error::NoTimeLeft { .. } => Code::DeadlineExceeded,
            Error::InvalidDeadline { .. } => Code::InvalidDeadline,
            Error::InvalidStateKey { .. } => Code::InvalidStateKey,
            Error::NotQueueable { .. } => Code::InvalidRequest,
            Error::Expired { .. } => Code::DeadlineExpired,
            Error::Unauthorized { .. } => Code::Unauthorized,
            Error::NoEligibleNode { .. } => Code::NoEligibleNode,
            Error::NodeUnreachable { .. } => Code::NodeUnreachable,
            Error::Remote { code, .. } => *code,
            Error::FabricUnavailable(_) => Code::FabricUnavailable,
            Error::NameTaken(_) => Code::NodeNameTaken,
        }
    }

    /// Seconds a client should wait before retrying (`Retry-After`).
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Error::Controller(e) => e.retry_after(),
            other => other.code().retry_after(),
        }
    }

    /// The function the error concerns, when there is one.
    pub fn function(&self) -> Option<&str> {
        match self {
            Error::Controller(e) => e.function(),
            Error::NoTimeLeft { name, .. }
            | Error::InvalidDeadline { name, .. }
            | Error::InvalidStateKey { name, .. }
            | Error::NotQueueable { name }
            | Error::Expired { name, .. }
            | Error::Unauthorized { name }
            | Error::NoEligibleNode { name, .. }
            | Error::NodeUnreachable { name, .. }
            | Error::Remote { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The spec's field at fault, for `invalid_spec`.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Controller(e) => e.field(),
            Error::InvalidDeadline { .. } => Some("x-weft-deadline"),
            _ => None,
        }
    }

    /// The invocation id, for errors of an invocation that ran here.
    pub fn invocation(&self) -> Option<&str> {
        match self {
            Error::Controller(e) => e.invocation(),
            _ => None,
        }
    }

    /// The exit code of a command that exited non-zero here.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Error::Controller(e) => e.exit_code(),
            _ => None,
        }
    }

    /// Whether another attempt may succeed: faults of the request itself
    /// (no such function, a body too large, a bad spec, a deadline that
    /// already passed) will not go away. Queued work and workflow steps
    /// are retried by this.
    pub fn retryable(&self) -> bool {
        !matches!(
            self.code(),
            Code::FunctionNotFound
                | Code::RequestTooLarge
                | Code::InvalidSpec
                | Code::DeadlineExpired
        )
    }

    /// Whether the invocation did not run for want of a node (none
    /// eligible, the chosen one gone, the fabric down): queued work then
    /// waits without spending an attempt.
    pub fn found_no_node(&self) -> bool {
        matches!(
            self,
            Error::NodeUnreachable { .. }
                | Error::FabricUnavailable(_)
                | Error::NoEligibleNode { .. }
        )
    }
}
