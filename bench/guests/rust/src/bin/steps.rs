//! `steps`: a workflow's orchestrator for `weft-bench workflow`. Takes
//! `calls` durable steps (config; default 3), each calling `echo` with
//! the last one's answer (the run's input first), or with `values = "yes"`
//! recording that answer itself; then, with `suspend = "yes"`, a durable
//! sleep of 20 ms (longer than recording it takes, so that it is not
//! over when first asked), so the run is suspended once and replays every
//! step before it answers.

use std::time::Duration;
use weft_sdk::{config, durable};

fn main() {
    weft_sdk::run(|input| {
        let calls: usize = config::get("calls")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3);
        let values = config::get("values").as_deref() == Ok("yes");
        let mut value = input;
        for i in 0..calls {
            let name = format!("s{i}");
            value = if values {
                let v = value.clone();
                durable::step(&name, move || Ok(v))?
            } else {
                durable::call(&name, "echo", &value)?
            };
        }
        if config::get("suspend").as_deref() == Ok("yes") {
            durable::sleep("end", Duration::from_millis(20))?;
        }
        Ok::<_, weft_sdk::Error>(value)
    });
}
