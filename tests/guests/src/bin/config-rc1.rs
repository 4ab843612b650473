//! Reads configuration through `wasi:config/store@0.2.0-rc.1` (the revision
//! wasmtime's own host implements), not the SDK's: prints `KEY=VALUE` for
//! each key on stdin (one per line), `KEY!ERROR` when the read fails, then
//! `all=N` with the count from `get-all`. A component only (wasm32-wasip2).

use std::io::Read;

wit_bindgen::generate!({
    inline: r#"
        package wasi:config@0.2.0-rc.1;

        interface store {
            variant error { upstream(string), io(string) }
            get: func(key: string) -> result<option<string>, error>;
            get-all: func() -> result<list<tuple<string, string>>, error>;
        }

        world probe {
            import store;
        }
    "#,
    world: "probe",
});

use self::wasi::config::store;

fn main() {
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    for key in input.split_whitespace() {
        match store::get(key) {
            Ok(Some(v)) => println!("{key}={v}"),
            Ok(None) => println!("{key}?"),
            Err(store::Error::Upstream(m) | store::Error::Io(m)) => println!("{key}!{m}"),
        }
    }
    let all = store::get_all().map(|a| a.len()).unwrap_or(0);
    println!("all={all}");
}
