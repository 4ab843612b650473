//! `orchestrator`: a workflow in code (`[workflows.NAME] function =
//! "orchestrator"`). It takes the durable steps its config value `plan`
//! lists, in order, passing a value along (the run's input first); its
//! answer is the value at the end, so a run's output shows every step it
//! went through. Items of `plan`, separated by commas:
//!
//! - `call:F` — step `F-I` (I: the item's index) calls function `F` (list
//!   it in `calls`) with the value, which becomes its answer;
//! - `value` — step `value-I` appends `-vN` to the value, N the times that
//!   step's code ran (counted in the key-value store `default` when the
//!   function may open it: a replay does not run it again);
//! - `sleep:MS` — step `sleep-I` sleeps MS milliseconds;
//! - `event:NAME` or `event:NAME:MS` — step `NAME` waits for event `NAME`
//!   (at most MS ms) and appends `+PAYLOAD`, or `+none` if it timed out;
//! - `try:F` — like `call:F`, and a failure of `F` appends `!code` instead
//!   of failing the run (a compensation would go there).
//!
//! ```toml
//! [functions.orchestrator]
//! module = "orchestrator.wasm"
//! calls = ["resize", "store"]
//! config = { plan = "call:resize,sleep:1000,event:approve:60000,call:store" }
//!
//! [workflows.publish]
//! function = "orchestrator"
//! ```

use std::time::Duration;
use weft_sdk::{config, durable, invocation, kv, Error};

fn main() {
    weft_sdk::run(|input| {
        let plan = config::get("plan").unwrap_or_default();
        let mut value = input;
        for (i, item) in plan.split(',').filter(|s| !s.is_empty()).enumerate() {
            let mut parts = item.split(':');
            let kind = parts.next().unwrap_or_default();
            let arg = parts.next().unwrap_or_default();
            match kind {
                "call" => value = durable::call(&format!("{arg}-{i}"), arg, &value)?,
                "try" => match durable::call(&format!("{arg}-{i}"), arg, &value) {
                    Ok(v) => value = v,
                    Err(e) if e.is_suspended() => return Err(e),
                    Err(e) => value.extend_from_slice(format!("!{}", e.code).as_bytes()),
                },
                "value" => {
                    let before = value.clone();
                    value = durable::step(&format!("value-{i}"), move || {
                        let n = match kv::Store::open("default") {
                            Ok(store) => store.increment(
                                &format!("ran/{}/value-{i}", invocation::id()),
                                1,
                            )?,
                            Err(_) => 1,
                        };
                        let mut v = before;
                        v.extend_from_slice(format!("-v{n}").as_bytes());
                        Ok(v)
                    })?;
                }
                "sleep" => {
                    let ms = arg.parse().unwrap_or(0);
                    durable::sleep(&format!("sleep-{i}"), Duration::from_millis(ms))?;
                }
                "event" => {
                    let timeout = parts.next().and_then(|t| t.parse().ok());
                    let got = durable::await_event(arg, timeout.map(Duration::from_millis))?;
                    value.push(b'+');
                    value.extend_from_slice(got.as_deref().unwrap_or(b"none"));
                }
                other => {
                    return Err(Error::new(
                        "invalid_request",
                        format!("plan item `{other}` is not call, try, value, sleep or event"),
                    ))
                }
            }
        }
        Ok::<_, Error>(value)
    });
}
