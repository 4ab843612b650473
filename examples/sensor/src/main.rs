//! `sensor`: an MQTT trigger. Each message's payload is a temperature in
//! degrees Celsius, as text; the function keeps the last reading of each
//! topic in the `default` store and answers with the reading in Fahrenheit
//! (published to the trigger's `response_topic`, if set). A payload that is
//! not a number fails the invocation (it is retried, then dead-lettered).
//!
//! ```toml
//! [functions.sensor]
//! module = "sensor.wasm"
//! key_value_stores = ["default"]
//! [[functions.sensor.mqtt]]
//! topic = "sensors/+/temp"
//! response_topic = "sensors/fahrenheit"
//! ```

use weft_sdk::{invocation, kv, Error};

fn main() {
    weft_sdk::run(|payload| {
        let text = std::str::from_utf8(&payload)
            .map_err(|_| Error::new("invalid_request", "payload is not UTF-8"))?;
        let celsius: f64 = text.trim().parse().map_err(|_| {
            Error::new(
                "invalid_request",
                format!("payload `{}` is not a temperature", text.escape_debug()),
            )
        })?;
        let topic = invocation::subject();
        kv::Store::open("default")?.set(&format!("last:{topic}"), text.trim().as_bytes())?;
        Ok::<_, Error>(format!("{topic} {:.1}F\n", celsius * 9.0 / 5.0 + 32.0).into_bytes())
    });
}
