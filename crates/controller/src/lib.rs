//! The controller of a Weft node: function lifecycle (deploy, versions,
//! rollback, removal), admission (per-function slots with a bounded wait
//! queue, node-wide sandbox slots), warm and cold starts, scale to zero,
//! metering, logs and metrics.
//!
//! ```no_run
//! # async fn demo() -> Result<(), weft_controller::Error> {
//! use weft_controller::Controller;
//! let c = Controller::open("/tmp/weft".as_ref(), Default::default()).await?;
//! let wasm = std::fs::read("hello.wasm").unwrap_or_default();
//! let m = c.upload_module(wasm.into(), Some("hello")).await?;
//! c.deploy("hello", weft_manifest::FunctionSpec { module: m.module, ..Default::default() }).await?;
//! let origin = weft_controller::Origin::new("cli", "");
//! let out = c.invoke_command("hello", origin, |_limit| async { Ok("world".into()) }).await?;
//! println!("{}", String::from_utf8_lossy(&out.body));
//! # Ok(()) }
//! ```

mod caps;
mod controller;
mod dispatch;
mod error;
mod fabric;
mod function;
mod logs;
mod metrics;
mod router;
mod triggers;

pub use controller::{
    BodyError, CommandResponse, Controller, EffectiveLimits, FunctionStatus, InvocationInfo,
    ModuleInfo, Origin,
};
pub use error::{Error, Result};
pub use fabric::{FabricStatus, NodeInfo, Placement, RemoteResponse, mesh_config};
pub use logs::LogLine;
pub use triggers::CATCH_UP;
pub use weft_mesh::MeshConfig;
pub use weft_queue::{Accepted, Record as InvocationRecord, State as InvocationState};
pub use weft_sched::Decision;
pub use weft_store::{UsageTotals, VersionRecord};
