//! `events`: node topics. Invoked directly, it publishes its request on the
//! topic named by the config value `topic`. Invoked by a topic event (as a
//! subscriber), it stores the event in the `default` store under
//! `event:<topic>:<n>` and counts it under `events`; with the config value
//! `forward`, it then publishes the event on that topic (a relay).
//!
//! ```toml
//! [functions.publisher]
//! module = "events.wasm"
//! publishes = ["orders.*"]
//! config = { topic = "orders.created" }
//!
//! [functions.audit]
//! module = "events.wasm"
//! subscribes = ["orders.*"]
//! key_value_stores = ["default"]
//! ```

use weft_sdk::{config, invocation, kv, log};

fn main() {
    weft_sdk::run(|request| {
        if invocation::trigger() == "topic" {
            let topic = invocation::subject();
            let store = kv::Store::open("default")?;
            let n = store.increment("events", 1)?;
            store.set(&format!("event:{topic}:{n}"), &request)?;
            log::info(&format!("stored event {n} from {topic}"));
            if let Ok(next) = config::get("forward") {
                weft_sdk::publish(&next, &request)?;
            }
            Ok::<_, weft_sdk::Error>(format!("stored {n}\n").into_bytes())
        } else {
            let topic = config::get("topic")?;
            weft_sdk::publish(&topic, &request)?;
            Ok(format!("published on {topic}\n").into_bytes())
        }
    });
}
