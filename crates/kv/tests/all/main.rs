//! Integration tests of `weft-kv` against real backends: the embedded redb
//! file and a `redis-server` child process started per test on a free port.
//!
//! The same test bodies ([`conformance`]) run against both backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;
mod embedded;
mod redis;
mod support;
