//! The Weft runtime: one wasmtime engine per node, a pool of sandboxes, an
//! on-disk cache of compiled artifacts, and the two kinds of function Weft
//! runs — WASI preview 1 commands and `wasi:http/proxy` components.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use weft_runtime::{Runtime, RuntimeConfig, Invocation};
//! let rt = Runtime::new(RuntimeConfig::default(), "/tmp/weft-cache".as_ref())?;
//! let wasm = std::fs::read("hello.wasm")?;
//! let prepared = rt.prepare(&wasm)?;             // validate, compile once, cache
//! let loaded = rt.load(&prepared.digest)?; // from disk, pre-instantiated
//! let out = loaded.run_command(&rt, "hello".into(), Invocation::new("hello")).await;
//! println!("{:?}", out.result);
//! # Ok(()) }
//! ```

mod artifact;
mod config;
mod error;
mod host;
mod io;
mod limits;
mod meter;
mod runtime;
mod sandbox;
mod state;
mod workers;

pub use artifact::{sha256_hex, write_atomic};
pub use config::{RuntimeConfig, default_workers};
pub use error::{InvokeError, PrepareError};
pub use host::{
    CallContext, Capabilities, ChainState, Durable, DurableError, DurableOp, Fabric, FabricCode,
    FabricError, Trigger,
};
pub use io::LogFn;
pub use limits::{Grants, Limits};
pub use meter::{CpuCounter, Usage};
pub use runtime::{Kind, Loaded, Prepared, Runtime};
pub use sandbox::{BoxError, CommandSandbox, HttpBody, HttpDone, Invocation, Outcome};
pub use weft_manifest::Scheduler;
pub use workers::WorkerStats;
