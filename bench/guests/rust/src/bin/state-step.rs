//! `state-step`: one step of a stateful chain (seed 003's shape of work):
//! increments its counter and keeps the request in its state (the bucket
//! `state`), then calls the function named by the config value `next`, if
//! any, with the same request. Answers the counters of the chain.

use weft_sdk::{config, kv};

fn main() {
    weft_sdk::run(|request| {
        let state = kv::Store::open("state")?;
        let n = state.increment("count", 1)?;
        state.set("last", &request)?;
        let mut answer = n.to_string().into_bytes();
        if let Some((_, next)) = config::all()?.into_iter().find(|(k, _)| k == "next") {
            answer.push(b' ');
            answer.extend(weft_sdk::call(&next, &request)?);
        }
        Ok::<_, weft_sdk::Error>(answer)
    });
}
