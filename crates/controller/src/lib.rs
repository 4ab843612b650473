//! The controller of a Weft node: function lifecycle (deploy, versions,
//! rollback, removal), admission (per-function slots with a bounded wait
//! queue, node-wide sandbox slots), warm and cold starts, scale to zero,
//! metering, logs and metrics.
//!
//! ```no_run
//! # async fn demo() -> Result<(), weft_controller::Error> {
//! use weft_controller::Controller;
//! let c = Controller::open("/tmp/weft".as_ref(), Default::default())?;
//! let wasm = std::fs::read("hello.wasm").unwrap_or_default();
//! let m = c.upload_module(wasm.into(), Some("hello")).await?;
//! c.deploy("hello", weft_manifest::FunctionSpec { module: m.module, ..Default::default() })?;
//! let out = c.invoke_command("hello", |_limit| async { Ok("world".into()) }).await?;
//! println!("{}", String::from_utf8_lossy(&out.body));
//! # Ok(()) }
//! ```

mod controller;
mod error;
mod function;
mod logs;
mod metrics;

pub use controller::{
    BodyError, CommandResponse, Controller, EffectiveLimits, FunctionStatus, InvocationInfo,
    ModuleInfo,
};
pub use error::{Error, Result};
pub use logs::LogLine;
pub use weft_store::{UsageTotals, VersionRecord};
