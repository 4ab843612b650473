//! The HTTP gateway of a node: the admin API under `/v1/`, invocations under
//! `/fn/{name}`, Prometheus metrics at `/metrics`.
//!
//! ```no_run
//! # async fn demo(c: std::sync::Arc<weft_controller::Controller>) -> std::io::Result<()> {
//! let router = weft_router::start(c);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! weft_gateway::serve(listener, router, None, weft_gateway::Auth::Open, std::future::pending()).await?;
//! # Ok(()) }
//! ```

mod api;
mod auth;
mod error;
mod invoke;
mod state;

pub use api::{routes, serve};
pub use auth::Auth;
