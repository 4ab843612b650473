//! `kv-counter`: key-value state, configuration and logging.
//!
//! Counts its invocations in the store `default` (key `hits`, or the key
//! named by the request body when there is one), greets with the config
//! value `greeting`, and logs each hit.
//!
//! ```toml
//! [functions.counter]
//! module = "kv-counter.wasm"
//! key_value_stores = ["default"]
//! config = { greeting = "hello" }
//! ```

use weft_sdk::{config, kv, log};

fn main() {
    weft_sdk::run(|request| {
        let key = match std::str::from_utf8(&request).map(str::trim) {
            Ok(k) if !k.is_empty() => k.to_string(),
            _ => "hits".to_string(),
        };
        let greeting = config::get("greeting")?;
        let store = kv::Store::open("default")?;
        let n = store.increment(&key, 1)?;
        log::info(&format!("{key} = {n}"));
        Ok::<_, weft_sdk::Error>(format!("{greeting}: {key} = {n}\n").into_bytes())
    });
}
