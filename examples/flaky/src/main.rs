//! `flaky`: retries of asynchronous invocations. Fails every attempt before
//! the one named by the config value `succeed_on_attempt` (default 3), then
//! answers with the attempt that succeeded. With `succeed_on_attempt` above
//! the function's `retry.attempts`, every invocation ends in the dead-letter
//! list (`weft dlq ls`).
//!
//! ```toml
//! [functions.flaky]
//! module = "flaky.wasm"
//! config = { succeed_on_attempt = "3" }
//! retry = { attempts = 5, backoff = "100ms" }
//! ```

use weft_sdk::{config, invocation, Error};

fn main() {
    weft_sdk::run(|request| {
        let needed: u32 = config::get("succeed_on_attempt")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3);
        let attempt = invocation::attempt();
        if attempt < needed {
            return Err(Error::new(
                "failed",
                format!("attempt {attempt} fails on purpose (succeeds on {needed})"),
            ));
        }
        let mut out = format!("succeeded on attempt {attempt}: ").into_bytes();
        out.extend_from_slice(&request);
        Ok(out)
    });
}
