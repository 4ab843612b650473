//! Tries an outbound HTTP request through `wasi:http/outgoing-handler` and
//! prints how it went: `denied: <error-code>`, `allowed <status>`, or
//! `failed: ...`. Built as a `wasi:cli/command` component (wasm32-wasip2); used
//! to check that outbound HTTP is denied unless granted.

use wasi::http::types::{Fields, OutgoingRequest, Scheme};

fn main() {
    let req = OutgoingRequest::new(Fields::new());
    let _ = req.set_scheme(Some(&Scheme::Http));
    let _ = req.set_authority(Some("127.0.0.1:9"));
    let _ = req.set_path_with_query(Some("/"));
    match wasi::http::outgoing_handler::handle(req, None) {
        Err(e) => println!("denied: {e:?}"),
        Ok(fut) => {
            fut.subscribe().block();
            match fut.get() {
                Some(Ok(Err(e))) => println!("denied: {e:?}"),
                Some(Ok(Ok(resp))) => println!("allowed {}", resp.status()),
                Some(Err(())) => println!("failed: response taken twice"),
                None => println!("failed: no response"),
            }
        }
    }
}
