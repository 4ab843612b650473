//! Event sources that invoke functions, and their wiring to the node:
//! [`Triggers`] follows the functions served, fires their cron schedules and
//! keeps their MQTT subscriptions, each event an asynchronous invocation
//! submitted through the router.
//!
//! - [`cron`]: the pure catch-up policy ([`cron::plan`]) that decides what to
//!   fire after a restart (schedules are parsed by `weft_manifest::Schedule`).
//! - [`mqtt`]: an MQTT 3.1.1 client that reconnects by itself, dispatches
//!   each message to every matching subscription and acknowledges it only
//!   once every handler succeeded.
//!
//! ```
//! # fn demo() -> Result<(), weft_manifest::CronError> {
//! use chrono::{TimeZone, Utc};
//! use std::time::Duration;
//! let s = weft_manifest::Schedule::parse("*/15 * * * *")?;
//! let now = Utc.with_ymd_and_hms(2025, 1, 1, 10, 7, 0).unwrap();
//! let p = weft_triggers::cron::plan(&s, None, now, Duration::from_secs(3600));
//! assert_eq!(p.next, Some(Utc.with_ymd_and_hms(2025, 1, 1, 10, 15, 0).unwrap()));
//! # Ok(()) }
//! # demo().unwrap();
//! ```

pub mod cron;
pub mod mqtt;
mod wiring;

pub use wiring::{CATCH_UP, Triggers};
