//! `state-counter`: one key's state, the same code under every state model.
//!
//! Opens the bucket `state`, counts its invocations for the invocation's
//! key, and keeps the last request body; answers
//! `count=N last=PREVIOUS keys=K`. Which key, and where its state lives,
//! is chosen at deploy, not here:
//!
//! ```toml
//! [functions.counter]
//! module = "state-counter.wasm"
//! [functions.counter.state]
//! model = "edge"            # or external, function, client
//! key = "header:x-user"     # default: header:x-weft-key
//! ```
//!
//! With the config value `next` (and `calls = [NEXT]`), it then calls that
//! function with the same body and appends its answer: a chain of steps,
//! each with its own state of the same key.

use weft_sdk::{config, kv};

fn main() {
    weft_sdk::run(|request| {
        let state = kv::Store::open("state")?;
        let n = state.increment("count", 1)?;
        let last = state.get("last")?.unwrap_or_default();
        if !request.is_empty() {
            state.set("last", &request)?;
        }
        let keys = state.keys()?.len();
        let mut answer = format!(
            "count={n} last={} keys={keys}\n",
            String::from_utf8_lossy(&last)
        )
        .into_bytes();
        let next = config::all()?.into_iter().find(|(k, _)| k == "next");
        if let Some((_, next)) = next {
            answer.extend(weft_sdk::call(&next, &request)?);
        }
        Ok::<_, weft_sdk::Error>(answer)
    });
}
