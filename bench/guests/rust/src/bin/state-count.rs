//! `state-count`: the request says what to do with the invocation's state
//! (the bucket `state`): `none` touches nothing (the stateless baseline),
//! `read` reads the counter, `count` increments it, `fill N` sets a value
//! of N bytes, `spread N K` sets K values of N/K bytes. Answers the counter
//! (or 0).

use weft_sdk::kv;

fn main() {
    weft_sdk::run(|request| {
        let text = String::from_utf8_lossy(&request);
        let mut words = text.split_whitespace();
        let op = words.next().unwrap_or("none");
        if op == "none" {
            return Ok::<_, weft_sdk::Error>(b"0".to_vec());
        }
        let state = kv::Store::open("state")?;
        let n = match op {
            "count" => state.increment("count", 1)?,
            "spread" => {
                let mut next = || words.next().and_then(|w| w.parse::<usize>().ok());
                let (size, parts) = (next().unwrap_or(0), next().unwrap_or(1).max(1));
                for i in 0..parts {
                    state.set(&format!("blob{i}"), &vec![7u8; size / parts])?;
                }
                0
            }
            "fill" => {
                let size: usize = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                state.set("blob", &vec![7u8; size])?;
                0
            }
            _ => state
                .get("count")?
                .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
                .unwrap_or(0),
        };
        Ok(n.to_string().into_bytes())
    });
}
