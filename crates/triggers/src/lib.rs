//! Event sources that invoke functions, independent of how invocations run:
//! the controller wires each source to its durable queue.
//!
//! - [`cron`]: parsed cron schedules and the pure catch-up policy
//!   ([`cron::plan`]) that decides what to fire after a restart.
//! - [`mqtt`]: an MQTT 3.1.1 client that reconnects by itself, dispatches
//!   each message to every matching subscription and acknowledges it only
//!   once every handler succeeded.
//!
//! ```
//! # fn demo() -> Result<(), weft_triggers::cron::CronError> {
//! use chrono::{TimeZone, Utc};
//! let s = weft_triggers::cron::Schedule::parse("*/15 * * * *")?;
//! let t = Utc.with_ymd_and_hms(2025, 1, 1, 10, 7, 0).unwrap();
//! assert_eq!(s.next_after(t), Some(Utc.with_ymd_and_hms(2025, 1, 1, 10, 15, 0).unwrap()));
//! # Ok(()) }
//! # demo().unwrap();
//! ```

pub mod cron;
pub mod mqtt;
