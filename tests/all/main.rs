//! Integration tests: each starts the real `weft` binary on port 0 and drives
//! it through its CLI and HTTP API, with guests built from `examples/` and
//! `tests/guests/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod async_queue;
mod auth;
mod bad_input;
mod capabilities;
mod cli;
mod durability;
mod durable;
mod fabric;
mod golden;
mod harness;
mod http_component;
mod isolation;
mod kv;
mod lifecycle;
mod limits;
mod links;
mod metering;
mod router;
mod servers;
mod sim;
mod slo;
mod state;
mod triggers;
mod workflows;
