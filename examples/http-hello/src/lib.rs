//! `http-hello`: a minimal `wasi:http/proxy` component for Weft.
//!
//! Responds to every request with `200 OK`, `content-type: text/plain` and a
//! body of `hello from <METHOD> <path-with-query>\n` followed by the request
//! body (echoed back verbatim). A request for `/status/NNN` is answered with
//! status code `NNN` instead of 200; `/sleep/MS` waits MS milliseconds (on
//! the host's timer) before it answers, and both combine:
//! `/sleep/500/status/201`.

use std::io::{Read as _, Write as _};

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct HttpHello;

wasi::http::proxy::export!(HttpHello);

fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(other) => other.as_str(),
    }
}

/// `/status/NNN` (optionally after `/sleep/MS`, optionally followed by a
/// query string) selects the status.
fn requested_status(path_with_query: &str) -> Option<u16> {
    let path = path_with_query.split('?').next().unwrap_or("");
    let path = match requested_sleep(path) {
        Some((_, rest)) => rest,
        None => path,
    };
    let code: u16 = path.strip_prefix("/status/")?.parse().ok()?;
    (100..=999).contains(&code).then_some(code)
}

/// `/sleep/MS[/rest]`: the milliseconds and the rest of the path.
fn requested_sleep(path: &str) -> Option<(u64, &str)> {
    let rest = path.strip_prefix("/sleep/")?;
    let (ms, rest) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    Some((ms.parse().ok()?, rest))
}

/// Reads the whole incoming request body; an absent body reads as empty.
fn read_body(request: &IncomingRequest) -> Vec<u8> {
    let mut bytes = Vec::new();
    let Ok(body) = request.consume() else {
        return bytes;
    };
    if let Ok(mut stream) = body.stream() {
        // `Read` for `InputStream` maps a closed stream to EOF.
        let _ = stream.read_to_end(&mut bytes);
        // The stream must be dropped before the body can be finished.
    }
    drop(wasi::http::types::IncomingBody::finish(body));
    bytes
}

impl Guest for HttpHello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let method = request.method();
        let path = request.path_with_query().unwrap_or_else(|| "/".to_string());
        let request_body = read_body(&request);
        let bare = path.split('?').next().unwrap_or("");
        if let Some((ms, _)) = requested_sleep(bare) {
            wasi::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
        }

        let mut payload = format!("hello from {} {}\n", method_name(&method), path).into_bytes();
        payload.extend_from_slice(&request_body);

        let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
            .expect("valid response headers");
        let response = OutgoingResponse::new(headers);
        if let Some(code) = requested_status(&path) {
            // An invalid code leaves the default 200 in place.
            let _ = response.set_status_code(code);
        }
        let body = response.body().expect("response body is taken once");
        ResponseOutparam::set(response_out, Ok(response));

        {
            let mut out = body.write().expect("body stream is taken once");
            out.write_all(&payload).expect("write response body");
            out.flush().expect("flush response body");
        }
        OutgoingBody::finish(body, None).expect("finish response body");
    }
}
