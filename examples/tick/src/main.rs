//! `tick`: a cron trigger. Counts its fires in the `default` store (key
//! `ticks`) and keeps the last fire's payload (the schedule and the
//! scheduled time, as JSON) under `last-tick`.
//!
//! ```toml
//! [functions.tick]
//! module = "tick.wasm"
//! key_value_stores = ["default"]
//! [[functions.tick.cron]]
//! schedule = "*/10 * * * * *"   # every 10 seconds
//! ```

use weft_sdk::{kv, log};

fn main() {
    weft_sdk::run(|payload| {
        let store = kv::Store::open("default")?;
        let n = store.increment("ticks", 1)?;
        store.set("last-tick", &payload)?;
        log::info(&format!("tick {n}"));
        Ok::<_, weft_sdk::Error>(format!("tick {n}\n").into_bytes())
    });
}
