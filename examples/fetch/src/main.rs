//! `fetch`: outbound HTTP. GETs the URL in the request body and answers with
//! the status and the body. Only hosts in `allowed_outbound_hosts` are
//! reachable; any other is refused with a `denied` error.
//!
//! ```toml
//! [functions.fetch]
//! module = "fetch.wasm"
//! allowed_outbound_hosts = ["https://example.com"]
//! ```

fn main() {
    weft_sdk::run(|request| {
        let url = String::from_utf8_lossy(&request).trim().to_string();
        let resp = weft_sdk::http::get(&url)?;
        let mut out = format!("{}\n", resp.status).into_bytes();
        out.extend_from_slice(&resp.body);
        Ok::<_, weft_sdk::Error>(out)
    });
}
