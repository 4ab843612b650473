//! Errors of the runtime: preparing a module, and running one invocation.

use std::time::Duration;
use weft_codes::Code;

/// Why a module could not be prepared (validated, compiled, cached or loaded).
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The bytes are neither a WebAssembly binary nor WAT text that parses.
    #[error("invalid module: {0}")]
    InvalidModule(String),
    /// A component that exports no world Weft can run.
    #[error("unsupported world: {0}")]
    UnsupportedWorld(String),
    /// The module imports something the function was not granted.
    #[error("import not granted: {0}")]
    ImportNotGranted(String),
    /// Reading or writing the on-disk cache failed.
    #[error("artifact cache: {0}")]
    Io(#[from] std::io::Error),
    /// Anything else wasmtime reported while compiling or linking.
    #[error("{0}")]
    Internal(String),
}

impl PrepareError {
    /// The stable, machine-readable code of this error.
    pub fn code(&self) -> Code {
        match self {
            PrepareError::InvalidModule(_) => Code::InvalidModule,
            PrepareError::UnsupportedWorld(_) => Code::UnsupportedWorld,
            PrepareError::ImportNotGranted(_) => Code::ImportNotGranted,
            PrepareError::Io(_) | PrepareError::Internal(_) => Code::Internal,
        }
    }
}

/// Why one invocation failed. Every variant is attributable either to the
/// guest (it trapped, exited non-zero, overran a limit) or to the host.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    /// A command exited with a non-zero status.
    #[error("exited with code {0}")]
    Exit(i32),
    /// The guest trapped.
    #[error("trapped: {0}")]
    Trap(String),
    /// The guest exhausted its wasm stack.
    #[error("stack overflow")]
    StackOverflow,
    /// The guest tried to grow linear memory past its limit.
    #[error("memory limit of {limit} bytes exceeded")]
    MemoryLimit {
        /// The function's linear memory limit, in bytes.
        limit: u64,
    },
    /// The guest ran out of fuel.
    #[error("fuel limit of {limit} exhausted")]
    FuelExhausted {
        /// The function's fuel limit.
        limit: u64,
    },
    /// The invocation ran past its deadline and was stopped.
    #[error("deadline of {} ms exceeded", timeout.as_millis())]
    Deadline {
        /// The function's wall-clock limit.
        timeout: Duration,
    },
    /// The response grew past the function's response size limit.
    #[error("response exceeds the limit of {limit} bytes")]
    ResponseTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The request body was larger than the function accepts.
    #[error("request body exceeds the limit of {limit} bytes")]
    RequestTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// An HTTP component answered with an error instead of a response.
    #[error("handler failed: {0}")]
    Handler(String),
    /// The node's instance pool is exhausted.
    #[error("no free sandbox slot on this node")]
    NoCapacity,
    /// A host-side failure that is not the guest's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl InvokeError {
    /// The stable, machine-readable code of this error.
    pub fn code(&self) -> Code {
        match self {
            InvokeError::Exit(_) => Code::FunctionExit,
            InvokeError::Trap(_) => Code::FunctionTrap,
            InvokeError::StackOverflow => Code::StackOverflow,
            InvokeError::MemoryLimit { .. } => Code::MemoryLimitExceeded,
            InvokeError::FuelExhausted { .. } => Code::FuelExhausted,
            InvokeError::Deadline { .. } => Code::DeadlineExceeded,
            InvokeError::ResponseTooLarge { .. } => Code::ResponseTooLarge,
            InvokeError::RequestTooLarge { .. } => Code::RequestTooLarge,
            InvokeError::Handler(_) => Code::HandlerError,
            InvokeError::NoCapacity => Code::NodeAtCapacity,
            InvokeError::Internal(_) => Code::Internal,
        }
    }
}
