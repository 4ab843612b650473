//! The controller of a Weft node: what runs here and how. Function
//! lifecycle (deploy, versions, rollback, removal, the fabric's registry),
//! admission (per-function slots with a bounded wait queue, node-wide
//! sandbox slots), execution (warm and cold starts, scale to zero), the
//! durable queue of asynchronous invocations, metered usage, logs and
//! metrics. *Where* an invocation runs is decided above, by the router
//! (`weft-router`), which hands the controller what runs here.
//!
//! Each responsibility is a module with its own type, and the
//! [`Controller`] holds them: `lifecycle` (with `registry`, `caps` and
//! `artifacts`), `admission`, `exec`, `asyncq`, `usage`, `metrics`, `logs`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), weft_controller::Error> {
//! use weft_controller::{Controller, Input, RunContext};
//! let c = Controller::open("/tmp/weft".as_ref(), Default::default()).await?;
//! let wasm = std::fs::read("hello.wasm").unwrap_or_default();
//! let m = c.upload_module(wasm.into(), Some("hello")).await?;
//! c.deploy("hello", weft_manifest::FunctionSpec { module: m.module, ..Default::default() }).await?;
//! let f = c.function("hello")?;
//! let slot = c.function_slot(&f, None).await?;
//! let ran = c.run(c.node_slot(slot)?, Input::Command("world".into()), RunContext::default()).await?;
//! if let weft_controller::Output::Command { body, .. } = ran.output {
//!     println!("{}", String::from_utf8_lossy(&body));
//! }
//! # Ok(()) }
//! ```

mod actor;
mod admission;
mod artifacts;
mod asyncq;
mod caps;
mod client_state;
mod controller;
mod error;
mod exec;
mod function;
mod lifecycle;
mod logs;
mod metrics;
mod registry;
mod state;
mod usage;

pub use actor::{MAX_ACTOR_STATE, Turn};
pub use admission::{Booking, FunctionSlot, Reservation, SlotFreed};
pub use artifacts::ModuleInfo;
pub use caps::retry_policy;
pub use client_state::{Pending, STATE_HEADER};
pub use controller::Controller;
pub use error::{Error, Result};
pub use exec::{Input, InvocationInfo, Output, Ran, RunContext};
pub use function::{DeadlineOutcome, Function, LATENCY_WINDOW, OVERRUN_STREAK, Slo, SloReport};
pub use lifecycle::{EffectiveLimits, FunctionStatus, Learned, StateShown};
pub use logs::LogLine;
pub use state::{FunctionState, NODE_STATE, Settle};
pub use weft_queue::{
    Accepted, AfterFailure, Claimed, Failure, Jitter, NewInvocation, Record as InvocationRecord,
    RetryPolicy, State as InvocationState, backoff,
};
pub use weft_store::{UsageTotals, VersionRecord};
