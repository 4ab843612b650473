//! `workflow-step`: a step of a workflow (`[workflows.NAME]`). Answers its
//! input followed by `-TAG` (the config value `tag`, else the function's
//! name), so a run's output shows the steps it went through, in order:
//! `cat-resize-detect-store`.
//!
//! Its invocation id is the step's idempotency key, `RUN.STEP`: the same on
//! every attempt and after a crash. With `key_value_stores = ["default"]`
//! it counts its executions under `ran/RUN.STEP`, which shows whether a
//! step ran again; deployed with `report = "yes"` (and the same store) it
//! answers that count for the step id it is given instead. Config values for trying failures: `fail_attempts = "N"`
//! fails its first N attempts, `sleep_ms = "N"` sleeps first (needs
//! `clock = true`), `output_bytes = "N"` answers N bytes of `x` instead.
//!
//! ```toml
//! [functions.resize]
//! module = "workflow-step.wasm"
//!
//! [workflows.thumbnail]
//! steps = ["resize", "detect", "store"]
//! ```

use weft_sdk::{config, invocation, kv, Error};

fn number(key: &str) -> u64 {
    config::get(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    weft_sdk::run(|request| {
        if config::get("report").as_deref() == Ok("yes") {
            let store = kv::Store::open("default")?;
            let key = format!("ran/{}", String::from_utf8_lossy(&request));
            return Ok(store.get(&key)?.unwrap_or_else(|| b"0".to_vec()));
        }
        if let Ok(store) = kv::Store::open("default") {
            store.increment(&format!("ran/{}", invocation::id()), 1)?;
        }
        let sleep = number("sleep_ms");
        if sleep > 0 {
            std::thread::sleep(std::time::Duration::from_millis(sleep));
        }
        let attempt = u64::from(invocation::attempt());
        if attempt <= number("fail_attempts") {
            return Err(Error::new(
                "failed",
                format!("attempt {attempt} fails on purpose"),
            ));
        }
        let size = number("output_bytes");
        if size > 0 {
            return Ok(vec![b'x'; size as usize]);
        }
        let tag = config::get("tag").unwrap_or_else(|_| invocation::function());
        let mut out = request;
        out.push(b'-');
        out.extend_from_slice(tag.as_bytes());
        Ok::<_, Error>(out)
    });
}
