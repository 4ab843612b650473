//! `kv-loop`: the request `get N STORE` or `set N STORE` performs N gets or
//! N sets of a 16-byte value under one key of the store labelled STORE
//! (default: `default`), and answers the loop's own duration in nanoseconds
//! (needs `clock = true`).

use weft_sdk::kv;

fn main() {
    weft_sdk::run(|request| {
        let text = String::from_utf8_lossy(&request);
        let mut words = text.split_whitespace();
        let op = words.next().unwrap_or("get").to_string();
        let n: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
        let store = kv::Store::open(words.next().unwrap_or("default"))?;
        let value = [7u8; 16];
        store.set("bench", &value)?;
        let t = std::time::Instant::now();
        for _ in 0..n {
            match op.as_str() {
                "set" => store.set("bench", &value)?,
                _ => {
                    if store.get("bench")?.is_none() {
                        return Err(weft_sdk::Error::new("failed", "key vanished"));
                    }
                }
            }
        }
        Ok::<_, weft_sdk::Error>(t.elapsed().as_nanos().to_string().into_bytes())
    });
}
