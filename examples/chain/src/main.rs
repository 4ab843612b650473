//! `chain`: function-to-function calls. Calls the function named by the
//! config value `callee` with its own request, and wraps the answer with
//! facts about this invocation. Without a `callee` it answers itself.
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
