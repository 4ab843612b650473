//! The HTTP gateway of a node: the admin API under `/v1/` (workflows and
//! their runs under `/v1/workflows` and `/v1/runs`), invocations under
//! `/fn/{name}`, Prometheus metrics at `/metrics`.
//!
//! ```no_run
//! # async fn demo(c: std::sync::Arc<weft_controller::Controller>) -> std::io::Result<()> {
//! let router = weft_router::start(c);
//! let workflows = weft_workflow::Workflows::start(router.clone()).await.map_err(std::io::Error::other)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! weft_gateway::serve(listener, router, None, workflows, weft_gateway::Auth::Open, std::future::pending()).await?;
//! # Ok(()) }
//! ```

mod api;
mod auth;
mod error;
mod invoke;
mod state;
mod workflows;

pub use api::{routes, serve};
pub use auth::Auth;
