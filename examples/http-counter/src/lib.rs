//! `http-counter`: a `wasi:http` component with per-key state, the same
//! code under every state model: counts the requests of the invocation's
//! key in the bucket `state` and answers `count=N`. A request to
//! `/fail` counts, then answers 500: the `function` and `client` models
//! keep nothing of a failed invocation.
//!
//! ```toml
//! [functions.visits]
//! module = "http-counter.wasm"
//! [functions.visits.state]
//! model = "function"
//! ```

use std::io::Write as _;
use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};
use weft_sdk::kv;

struct HttpCounter;

wasi::http::proxy::export!(HttpCounter);

impl Guest for HttpCounter {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let fail = request.path_with_query().unwrap_or_default().starts_with("/fail");
        let counted = kv::Store::open("state").and_then(|s| s.increment("count", 1));
        let (status, text) = match counted {
            Ok(_) if fail => (500, "failed on purpose\n".to_string()),
            Ok(n) => (200, format!("count={n}\n")),
            Err(e) => (500, format!("{}: {}\n", e.code, e.message)),
        };
        let response = OutgoingResponse::new(Fields::new());
        let _ = response.set_status_code(status);
        let body = response.body().expect("the body is taken once");
        ResponseOutparam::set(response_out, Ok(response));
        {
            let mut out = body.write().expect("the stream is taken once");
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
        let _ = OutgoingBody::finish(body, None);
    }
}
