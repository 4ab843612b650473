//! The node's durable queue of asynchronous invocations: `weft invoke
//! --async`, HTTP `Prefer: respond-async`, cron fires, MQTT messages and
//! internal topic events all land here, and the controller's dispatcher
//! drains it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), weft_queue::QueueError> {
//! use std::time::SystemTime;
//! use weft_queue::{NewInvocation, Queue, QueueConfig};
//!
//! let queue = Queue::open("/tmp/weft/queue.redb".as_ref(), QueueConfig::default())?;
//! let accepted = queue.enqueue(NewInvocation::new("resize", b"{}".to_vec(), "cli")).await?;
//! for job in queue.claim("resize", 4, SystemTime::now())? {
//!     // ... run job.payload ...
//!     queue.complete(&job.id, b"done".to_vec())?;
//! }
//! assert!(queue.get(&accepted.id)?.is_some());
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//!
//! Once [`Queue::enqueue`] returns `Ok`, the invocation is committed to a
//! [redb] file with fsync and survives `kill -9`. Every accepted invocation
//! eventually succeeds or lands in the dead-letter list (at-least-once: a run
//! interrupted by a crash runs again). An idempotency key makes acceptance
//! effectively-once: while a record with the same `(function, key)` exists,
//! enqueueing again returns that record's id with `duplicate: true`.
//!
//! # Group commit
//!
//! Enqueues go through one writer thread: it takes every request waiting on
//! its channel (up to 1024), writes them in one write transaction, commits
//! (one fsync for the batch), then answers each caller. Node and per-function
//! limits are checked there, so they are exact under concurrency. The other
//! mutations (claim, complete, fail, …) run their own write transaction on the
//! caller's thread; all writers are serialized by one lock, under which the
//! in-memory pending counters are read and updated.
//!
//! # Ids
//!
//! `"{ms:012x}{seq:06x}{rand:010x}"`: 12 hex digits of the UNIX time in
//! milliseconds at acceptance, 6 of a process-wide sequence, then 10 from
//! the OS random generator. Ids sort by acceptance (so work due in the same
//! millisecond is claimed first in, first out) and do not collide across
//! restarts (the writer also checks for an existing record before using one).
//!
//! # Tables
//!
//! | table         | key                            | value                        |
//! |---------------|--------------------------------|------------------------------|
//! | `records`     | id                             | record, JSON (no payload)    |
//! | `payloads`    | id                             | payload bytes                |
//! | `results`     | id                             | output of a succeeded run    |
//! | `ready`       | (function, due ms, id)         | `()` — every `Queued` record |
//! | `running`     | id                             | function — `Running` records |
//! | `dead`        | (function, id)                 | `()` — the dead-letter list  |
//! | `finished`    | (finished ms, id)              | `()` — `Succeeded`, for GC   |
//! | `idempotency` | (function, key)                | id                           |
//!
//! A record is in exactly one of `ready`, `running`, `dead`, `finished`,
//! according to its state. The payload is deleted when the record succeeds
//! and kept while it is dead (for [`Queue::retry_dead`]); the result is kept
//! until [`Queue::collect_garbage`] drops the record after
//! [`QueueConfig::result_ttl`], with its idempotency entry. Dead records are
//! kept until dropped with [`Queue::drop_dead`].
//!
//! On open, every record found in `running` (the process died while it ran)
//! is queued again, due now, its attempt still counted; the pending counters
//! are rebuilt from `ready`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
pub use weft_codes::Code;

mod backoff;
mod queue;
mod tables;

pub use backoff::{Jitter, backoff};
pub use queue::Queue;

/// Node-wide queue settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Queued plus running invocations on the node; more are refused with
    /// [`QueueError::Full`]. Default 100 000.
    pub max_pending: u64,
    /// Queued plus running invocations of one function. Default 10 000.
    pub max_pending_per_function: u64,
    /// How long a succeeded record (and its result) is kept. Default 24 h.
    pub result_ttl: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_pending: 100_000,
            max_pending_per_function: 10_000,
            result_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// How an invocation is retried after a retryable failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, at least 1. Default 3.
    pub max_attempts: u32,
    /// Backoff after the first failure. Default 1 s.
    pub initial_backoff: Duration,
    /// Backoff cap. Default 60 s. See [`backoff`] for the formula.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// An invocation to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvocation {
    /// The function to run.
    pub function: String,
    /// Its input.
    pub payload: Vec<u8>,
    /// What caused it: `cli`, `http`, `cron`, `mqtt:sensors/1`,
    /// `topic:orders`, `call:fnname`, …
    pub trigger: String,
    /// Free-form metadata passed to the run (headers, topic, …).
    pub meta: BTreeMap<String, String>,
    /// Makes acceptance effectively-once per function; 1 to 256 bytes.
    pub idempotency_key: Option<String>,
    /// Retries after failures.
    pub retry: RetryPolicy,
    /// Not run before this time.
    pub not_before: Option<SystemTime>,
}

impl NewInvocation {
    /// An invocation due now, without metadata or idempotency key, with the
    /// default retry policy.
    pub fn new(function: impl Into<String>, payload: Vec<u8>, trigger: impl Into<String>) -> Self {
        NewInvocation {
            function: function.into(),
            payload,
            trigger: trigger.into(),
            meta: BTreeMap::new(),
            idempotency_key: None,
            retry: RetryPolicy::default(),
            not_before: None,
        }
    }
}

/// The answer to an enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The invocation's id.
    pub id: String,
    /// `true` when the idempotency key matched an existing record, whose id
    /// this is; nothing new was queued.
    pub duplicate: bool,
}

/// Where an invocation is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting to be claimed, now or at its due time.
    Queued,
    /// Claimed by the dispatcher and running.
    Running,
    /// Finished successfully; the result is kept until the result TTL.
    Succeeded,
    /// Failed for good: in the dead-letter list.
    Dead,
}

/// Why an attempt failed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// A stable machine-readable code (`trap`, `timeout`, `function_removed`, …).
    pub code: String,
    /// For people.
    pub message: String,
}

/// The state of one invocation, as shown by `weft invocations` and the API.
/// In JSON, `result` is the output encoded as standard base64 (absent unless
/// the invocation succeeded); the payload itself is not included.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The invocation's id.
    pub id: String,
    /// The function.
    pub function: String,
    /// Where it is.
    pub state: State,
    /// What caused it.
    pub trigger: String,
    /// Its metadata.
    pub meta: BTreeMap<String, String>,
    /// Its idempotency key.
    pub idempotency_key: Option<String>,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Accepted at, milliseconds since the UNIX epoch.
    pub created_at_ms: u64,
    /// Last change, milliseconds since the UNIX epoch.
    pub updated_at_ms: u64,
    /// When queued: when it is due, milliseconds since the UNIX epoch.
    pub next_attempt_at_ms: Option<u64>,
    /// The last failure, if any.
    pub last_error: Option<Failure>,
    /// The output, once succeeded (base64 in JSON).
    #[serde(
        serialize_with = "base64_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub result: Option<Vec<u8>>,
    /// Size of the payload in bytes.
    pub payload_size: u64,
}

fn base64_bytes<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    use base64::Engine as _;
    match v {
        Some(b) => s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b)),
        None => s.serialize_none(),
    }
}

/// One invocation handed to the dispatcher by [`Queue::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The invocation's id, for [`Queue::complete`] and [`Queue::fail`].
    pub id: String,
    /// The function.
    pub function: String,
    /// Its input.
    pub payload: Vec<u8>,
    /// This attempt, 1-based. After a crash recovery it may exceed the
    /// policy's `max_attempts` by the interrupted attempt.
    pub attempt: u32,
    /// What caused it.
    pub trigger: String,
    /// Its metadata.
    pub meta: BTreeMap<String, String>,
}

/// What [`Queue::fail`] did with the invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Queued again, due at `at`.
    Retry {
        /// When the next attempt is due.
        at: SystemTime,
    },
    /// Moved to the dead-letter list.
    Dead,
}

/// Queue errors. Each has a stable [`code`](QueueError::code), and so a
/// fixed HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// Too many pending invocations on the node or of one function.
    #[error("queue full: {} has {limit} pending invocations", scope_label(.scope))]
    Full {
        /// The limit reached.
        limit: u64,
        /// `node`, or the function's name.
        scope: String,
    },
    /// No invocation with that id.
    #[error("invocation `{0}` not found")]
    NotFound(String),
    /// Retry or drop of an invocation that is not in the dead-letter list.
    #[error("invocation `{0}` is not in the dead-letter list")]
    NotDead(String),
    /// Completion or failure reported for an invocation that is not running.
    #[error("invocation `{0}` is not running")]
    NotRunning(String),
    /// The idempotency key is empty or longer than 256 bytes.
    #[error("invalid idempotency key: {0}")]
    InvalidKey(String),
    /// The retry policy allows no attempt.
    #[error("invalid retry policy for `{0}`: max_attempts must be at least 1")]
    InvalidRetry(String),
    /// The queue file failed, or the queue is shut down.
    #[error("queue storage: {0}")]
    Storage(String),
}

fn scope_label(scope: &str) -> String {
    if scope == "node" {
        "the node".to_string()
    } else {
        format!("function `{scope}`")
    }
}

impl QueueError {
    /// The stable machine-readable code (its HTTP status is the code's).
    pub fn code(&self) -> Code {
        match self {
            QueueError::Full { .. } => Code::QueueFull,
            QueueError::NotFound(_) => Code::InvocationNotFound,
            QueueError::NotDead(_) => Code::NotDead,
            QueueError::NotRunning(_) => Code::NotRunning,
            QueueError::InvalidKey(_) => Code::InvalidIdempotencyKey,
            QueueError::InvalidRetry(_) => Code::InvalidRetryPolicy,
            QueueError::Storage(_) => Code::Internal,
        }
    }
}

/// Result of queue operations.
pub type Result<T, E = QueueError> = std::result::Result<T, E>;

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for QueueError {
            fn from(e: $t) -> Self { QueueError::Storage(e.to_string()) }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

#[cfg(test)]
mod tests;
