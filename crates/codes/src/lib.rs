//! The error codes of Weft: one enum, [`Code`], used by every crate and
//! matched as values. Each code has one fixed HTTP status and, for overload,
//! a `Retry-After`; its `snake_case` name is what the HTTP API, the CLI, the
//! queue's records and the fabric's replies carry.
//!
//! ```
//! use weft_codes::Code;
//!
//! let c = Code::QueueFull;
//! assert_eq!((c.as_str(), c.status(), c.retry_after()), ("queue_full", 429, Some(1)));
//! assert_eq!("queue_full".parse::<Code>(), Ok(Code::QueueFull));
//! // A code this build does not know (from a newer peer, say) is not guessed at.
//! assert!("teapot".parse::<Code>().is_err());
//! ```
//!
//! The table in `docs/architecture.md` ("Errors") lists every code with its
//! status; a test fails when the two differ.

use std::fmt;
use std::str::FromStr;

macro_rules! codes {
    ($(
        $(#[$doc:meta])*
        $variant:ident = $name:literal, $status:literal, $retry:expr;
    )*) => {
        /// A stable, machine-readable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            /// Every code, in the order of the documentation's table.
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];

            /// The `snake_case` name: `queue_full`.
            pub const fn as_str(self) -> &'static str {
                match self { $( Code::$variant => $name, )* }
            }

            /// The HTTP status this code is always answered with.
            pub const fn status(self) -> u16 {
                match self { $( Code::$variant => $status, )* }
            }

            /// Seconds a client should wait before it tries again
            /// (`Retry-After`), for codes that mean "not now".
            pub const fn retry_after(self) -> Option<u32> {
                match self { $( Code::$variant => $retry, )* }
            }
        }

        impl FromStr for Code {
            type Err = UnknownCode;
            fn from_str(s: &str) -> Result<Code, UnknownCode> {
                match s {
                    $( $name => Ok(Code::$variant), )*
                    _ => Err(UnknownCode(s.to_string())),
                }
            }
        }
    };
}

codes! {
    // ---- modules and deploys
    /// Not wasm or WAT, or it fails validation or compilation.
    InvalidModule = "invalid_module", 400, None;
    /// A component exporting neither `wasi:http/incoming-handler` nor
    /// `wasi:cli/run`, or a core module without `_start`.
    UnsupportedWorld = "unsupported_world", 400, None;
    /// The module imports something outside WASI and Weft's interfaces.
    ImportNotGranted = "import_not_granted", 400, None;
    /// A function name that is not `[a-z][a-z0-9-]{0,62}` (no trailing `-`).
    InvalidName = "invalid_name", 400, None;
    /// An unknown field or a bad value in a function spec.
    InvalidSpec = "invalid_spec", 400, None;
    /// A deploy names a module digest the node does not have.
    ModuleNotFound = "module_not_found", 400, None;
    /// A deploy names a key-value store the node does not provide.
    UnknownStore = "unknown_store", 400, None;
    /// A deploy asks for a state model the node cannot provide (no state
    /// home for `external`, no site store for `edge`).
    StateModelUnavailable = "state_model_unavailable", 400, None;
    /// A deploy names a topic the node does not provide.
    UnknownTopic = "unknown_topic", 400, None;
    /// A bad cron expression or MQTT filter, or MQTT on a node without a broker.
    InvalidTrigger = "invalid_trigger", 400, None;
    /// Another function serves the route.
    RouteConflict = "route_conflict", 409, None;
    /// No function by that name.
    FunctionNotFound = "function_not_found", 404, None;
    /// The function has no such version.
    VersionNotFound = "version_not_found", 404, None;

    // ---- invocations
    /// The request body is larger than the function's `max_request_size`.
    RequestTooLarge = "request_too_large", 413, None;
    /// A command's request body did not arrive within its timeout.
    RequestTimeout = "request_timeout", 408, None;
    /// The client broke off while sending the body.
    RequestAborted = "request_aborted", 400, None;
    /// A request the node cannot pass on (its URI or a header).
    InvalidRequest = "invalid_request", 400, None;
    /// A request's `x-weft-deadline` is malformed, or looser than the
    /// function's deadline.
    InvalidDeadline = "invalid_deadline", 400, None;
    /// A stateful function's invocation has no state key where the
    /// function takes it from, or a malformed one.
    InvalidStateKey = "invalid_state_key", 400, None;
    /// A client state (`x-weft-state`) this node did not seal, altered,
    /// malformed, or sealed for another function or key.
    InvalidClientState = "invalid_client_state", 400, None;
    /// A client state older than the latest one issued for its key (or one
    /// a request in flight carries too).
    StaleClientState = "stale_client_state", 409, None;
    /// A stateful invocation lost its key to another writer while it ran
    /// (its actor moved to another node): nothing it wrote was kept.
    StateConflict = "state_conflict", 409, None;
    /// A client state larger than the node takes.
    ClientStateTooLarge = "client_state_too_large", 413, None;
    /// The function is at its concurrency limit and its wait queue is full,
    /// or the async queue holds as much as it may.
    QueueFull = "queue_full", 429, Some(1);
    /// No slot of the function freed within the invocation's time.
    QueueTimeout = "queue_timeout", 503, Some(1);
    /// Every sandbox slot of the node is in use.
    NodeAtCapacity = "node_at_capacity", 503, Some(1);
    /// The work admitted here that is due first, plus the invocation's own
    /// expected time, would end after its deadline: refused at once
    /// (`Retry-After` says when the work ahead should have drained).
    DeadlineUnmeetable = "deadline_unmeetable", 503, Some(1);
    /// The node is draining.
    ShuttingDown = "shutting_down", 503, Some(5);
    /// A command exited non-zero (its `exit_code` is carried).
    FunctionExit = "function_exit", 500, None;
    /// The guest trapped.
    FunctionTrap = "function_trap", 500, None;
    /// The guest exhausted its stack.
    StackOverflow = "stack_overflow", 500, None;
    /// The guest grew its memory past its limit.
    MemoryLimitExceeded = "memory_limit_exceeded", 500, None;
    /// The guest ran out of fuel.
    FuelExhausted = "fuel_exhausted", 500, None;
    /// The response grew past the function's `max_response_size`.
    ResponseTooLarge = "response_too_large", 502, None;
    /// An HTTP component answered with an error instead of a response, or
    /// (async, calls) with a status of 500 or more.
    HandlerError = "handler_error", 502, None;
    /// Stopped at its timeout, or the caller's deadline passed.
    DeadlineExceeded = "deadline_exceeded", 504, None;
    /// Queued work whose deadline passed before it could start: it ends
    /// so instead of running late.
    DeadlineExpired = "deadline_expired", 504, None;
    /// A function-to-function call to a function already on the call stack.
    CallCycle = "call_cycle", 508, None;
    /// A chain of calls, async calls and events deeper than `max_call_depth`.
    ChainTooDeep = "chain_too_deep", 508, None;

    // ---- workflows
    /// A workflow that does not validate: an empty or cyclic graph, a step
    /// named twice, an `after` or `output` naming no step, a step's
    /// function not deployed.
    InvalidWorkflow = "invalid_workflow", 400, None;
    /// No workflow by that name.
    WorkflowNotFound = "workflow_not_found", 404, None;
    /// No workflow run with that id.
    RunNotFound = "run_not_found", 404, None;
    /// The run has no step by that name.
    StepNotFound = "step_not_found", 404, None;
    /// An action on a run that has ended (cancel it, send it an event).
    RunEnded = "run_ended", 409, None;
    /// An action on a run that is still going (retry or skip its steps):
    /// cancel it first.
    RunActive = "run_active", 409, None;
    /// A step's output is above the largest a run records (1 MiB): it is
    /// not recorded, the step fails.
    StepOutputTooLarge = "step_output_too_large", 413, None;
    /// The inputs a step joins (fan-in) are not JSON or text.
    InvalidStepInput = "invalid_step_input", 400, None;
    /// A step answered what its function's declared `output` schema does
    /// not allow: not recorded, the step fails (not retried).
    InvalidStepOutput = "invalid_step_output", 502, None;
    /// An event that cannot go to the run: a bad name, a payload above
    /// 1 MiB, or a run whose workflow waits for no events (it has steps,
    /// not an orchestrator).
    InvalidEvent = "invalid_event", 400, None;
    /// An event by that name was already sent to the run: each is
    /// delivered once.
    EventSent = "event_sent", 409, None;

    // ---- asynchronous invocations
    /// No asynchronous invocation with that id (or its result expired).
    InvocationNotFound = "invocation_not_found", 404, None;
    /// `dlq retry` or `dlq drop` of an invocation not in the dead-letter list.
    NotDead = "not_dead", 409, None;
    /// A completion reported for an invocation that is not running.
    NotRunning = "not_running", 409, None;
    /// `GET /v1/invocations/{id}/result` before it succeeded.
    NoResult = "no_result", 409, None;
    /// An `Idempotency-Key` that is empty, too long or not visible ASCII.
    InvalidIdempotencyKey = "invalid_idempotency_key", 400, None;
    /// A retry policy that allows no attempt.
    InvalidRetryPolicy = "invalid_retry_policy", 400, None;
    /// A topic that is not a valid topic name.
    InvalidTopic = "invalid_topic", 400, None;

    // ---- the fabric
    /// A deploy, rollback or removal while NATS or JetStream cannot be reached.
    FabricUnavailable = "fabric_unavailable", 503, None;
    /// No node of the fabric meets the function's placement and declarations.
    NoEligibleNode = "no_eligible_node", 503, None;
    /// The node chosen to run it died or could not be reached.
    NodeUnreachable = "node_unreachable", 502, None;
    /// Another node of the fabric already uses this node's name.
    NodeNameTaken = "node_name_taken", 409, None;
    /// A peer's call that does not parse or breaks its own framing.
    InvalidCall = "invalid_call", 400, None;
    /// A peer answered with a code this node does not know.
    RemoteError = "remote_error", 502, None;

    // ---- the HTTP API
    /// The token is missing or wrong.
    Unauthorized = "unauthorized", 401, None;
    /// No route for that path.
    NotFound = "not_found", 404, None;
    /// The route exists, not with that method.
    MethodNotAllowed = "method_not_allowed", 405, None;
    /// A query string that does not parse.
    InvalidQuery = "invalid_query", 400, None;

    // ---- key-value stores (in the error text a guest's `wasi:keyvalue` call gets)
    /// A key longer than 1 KiB.
    KeyTooLarge = "key_too_large", 400, None;
    /// A value larger than 1 MiB.
    ValueTooLarge = "value_too_large", 400, None;
    /// A batch of more than 1,000 keys.
    BatchTooLarge = "batch_too_large", 400, None;
    /// An empty key.
    InvalidKey = "invalid_key", 400, None;
    /// `increment` of a value that is not an ASCII decimal number.
    NotANumber = "not_a_number", 400, None;
    /// `increment` past the range of a 64-bit integer.
    Overflow = "overflow", 400, None;
    /// The store's backend cannot be reached.
    StoreUnavailable = "store_unavailable", 503, Some(1);
    /// The store's backend failed.
    StoreError = "store_error", 500, None;

    // ---- the CLI (never answered by a node)
    /// A flag, file or argument the CLI cannot use.
    InvalidInput = "invalid_input", 400, None;
    /// A manifest that does not parse or validate.
    InvalidManifest = "invalid_manifest", 400, None;
    /// The node cannot be reached.
    Unreachable = "unreachable", 503, None;
    /// The node answered something that is not the API's.
    BadResponse = "bad_response", 502, None;
    /// Reading or writing a local file or stream failed.
    Io = "io", 500, None;
    /// `weft result --wait` gave up before the invocation ended.
    Timeout = "timeout", 504, None;
    /// The invocation `weft result` waited for is in the dead-letter list.
    InvocationDead = "invocation_dead", 500, None;

    /// A fault of the node, not of the request.
    Internal = "internal", 500, None;
}

impl Code {
    /// Whether the code means "not now": an overload or a passing outage,
    /// answered with `Retry-After`.
    pub const fn is_overload(self) -> bool {
        self.retry_after().is_some()
    }

    /// Whether a node answering with this code turned the invocation away
    /// before it started: nothing ran, so another node may run it, whether
    /// or not the function is idempotent.
    pub const fn turned_away(self) -> bool {
        matches!(
            self,
            Code::QueueFull
                | Code::QueueTimeout
                | Code::NodeAtCapacity
                | Code::DeadlineUnmeetable
                | Code::ShuttingDown
        )
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is no [`Code`] of this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCode(pub String);

impl fmt::Display for UnknownCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown error code `{}`", self.0)
    }
}

impl std::error::Error for UnknownCode {}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Code, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_are_unique_snake_case_and_round_trip() {
        let mut seen = BTreeSet::new();
        for &c in Code::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s} is not snake_case"
            );
            assert_eq!(s.parse::<Code>(), Ok(c));
            assert!((400..600).contains(&c.status()), "{s}: {}", c.status());
        }
    }

    #[test]
    fn work_turned_away_is_an_overload() {
        for &c in Code::ALL {
            if c.turned_away() {
                assert!(c.is_overload(), "{c}");
            }
        }
    }

    #[test]
    fn overload_codes_say_when_to_come_back() {
        for &c in Code::ALL {
            if c.is_overload() {
                assert!(matches!(c.status(), 429 | 503), "{c}");
            }
        }
    }
}
