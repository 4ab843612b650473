//! `chain`: function-to-function calls. Calls the function named by the
//! config value `callee` with its own request, and wraps the answer with
//! facts about this invocation. Without a `callee` it answers itself. With
//! `mode = "async"` it queues the call instead and answers `queued <id>`.
//!
//! ```toml
//! [functions.front]
//! module = "chain.wasm"
//! calls = ["back"]
//! config = { callee = "back" }
//! ```

use weft_sdk::{config, invocation};

fn main() {
    weft_sdk::run(|request| {
        let me = invocation::function();
        if let (Ok(callee), Ok("async")) = (config::get("callee"), config::get("mode").as_deref()) {
            let id = weft_sdk::call_async(&callee, &request)?;
            return Ok(format!("queued {id}").into_bytes());
        }
        let inner = match config::get("callee") {
            Ok(callee) => weft_sdk::call(&callee, &request)?,
            Err(_) => request,
        };
        let out = format!(
            "{me}[trigger={} deadline_left_ms={}]({})",
            invocation::trigger(),
            invocation::deadline_left().as_millis(),
            String::from_utf8_lossy(&inner)
        );
        Ok::<_, weft_sdk::Error>(out.into_bytes())
    });
}
