//! The router of a Weft node: the one entry point every invocation passes
//! through — `/fn/` and declared routes, the CLI, guests' calls (sync and
//! async) and publishes, topic events, cron, MQTT, the async dispatcher, and
//! calls from other nodes — and the one place its fate is decided: which
//! version runs (resolved once), whether the caller may, whether the call
//! chain allows it (cycles, depth), how long it has (the deadline travels
//! as time left), here or on which node (asking `weft-sched` with a view
//! kept current per heartbeat), and where it is retried if its node dies.
//!
//! Below it, the controller admits, runs and records; above it, the
//! gateway and the triggers turn HTTP requests, schedules and messages into
//! [`Request`]s. The runtime reaches it through the `Fabric` trait (guests'
//! calls) and the mesh through its `Host` trait (calls that arrive), both
//! implemented here and injected at start.
//!
//! ```no_run
//! # async fn demo() -> Result<(), weft_router::Error> {
//! use weft_router::{Request, Trigger};
//! let controller = weft_controller::Controller::open("/tmp/weft".as_ref(), Default::default()).await?;
//! let router = weft_router::start(controller);
//! let resp = router.invoke(Request::new("hello", Trigger::Cli).with_body("world")).await?;
//! let out = resp.collect().await;
//! # let _ = out;
//! # Ok(()) }
//! ```

mod dispatch;
mod error;
mod guest;
mod host;
mod placer;
mod request;
mod router;

pub use error::{Error, Result};
pub use guest::guest_class;
pub use host::{FabricStatus, NodeInfo, join_fabric, mesh_config};
pub use request::{
    Body, Caller, Chain, Collected, DeadlineKept, HttpFacts, Request, Response, Served, full,
};
pub use router::{Explanation, Placement, Responder, Router};
pub use weft_mesh::MeshConfig;
pub use weft_runtime::Trigger;
pub use weft_sched::{Decision, Excluded};

use std::sync::Arc;

/// The router of `controller`, with its guests' host injected and its
/// async dispatcher running. Join a fabric with [`join_fabric`].
pub fn start(controller: Arc<weft_controller::Controller>) -> Arc<Router> {
    let router = Arc::new(Router::new(controller));
    router
        .controller
        .set_fabric(Arc::new(guest::Guests::new(&router)));
    dispatch::start(&router);
    router
}
