//! Durable workflows: graphs of functions (`[workflows.NAME]` of a
//! manifest) whose every step's result is journaled before any step after
//! it starts, so a run survives the node's death and resumes where it was
//! without running a recorded step again.
//!
//! A run is driven by one task on the node that started it (or that
//! resumed or repaired it). Each step is an invocation through the router
//! like any other (placement, admission, deadlines: one path), under the
//! id `RUN.STEP` (the same on every attempt and after a crash: the key a
//! guest makes its outside effects idempotent with), retried per the
//! step's policy. Its result, its record and the run's head are written in
//! one compare-and-set on the platform's store (see [`journal`]): once
//! written, the step is never run again; effects outside Weft of a step
//! whose result was not yet written when the node died happen again
//! (at least once).
//!
//! ```no_run
//! # async fn demo(router: std::sync::Arc<weft_router::Router>) -> weft_workflow::Result<()> {
//! use weft_manifest::{Name, WorkflowSpec};
//! let wf = weft_workflow::Workflows::start(router).await?;
//! let steps = ["resize", "detect"].map(|s| Name::new(s).unwrap());
//! wf.deploy("thumbnail", WorkflowSpec::sequence(&steps)).await?;
//! let run = wf.run("thumbnail", "a.png".into()).await?;
//! let done = wf.wait(&run.id, std::time::Duration::from_secs(5)).await?;
//! println!("{:?}: {:?}", done.run.state, done.output);
//! # Ok(()) }
//! ```

mod code;
mod engine;
mod error;
pub mod journal;
mod outcome;
mod types;
mod view;

pub use engine::{Deployed, RunFilter, Workflows};
pub use error::{Error, Result};
pub use journal::{
    CodeKind, CodeRecord, CodeState, Confined, DefRecord, Failure, MAX_STEP_OUTPUT, RunRecord,
    RunState, StepEnd,
};
pub use view::{RunView, StepView, shown};
