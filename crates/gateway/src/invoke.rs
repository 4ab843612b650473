//! `/fn/{name}[/{*rest}]`: invocations over HTTP.

use crate::api::AppState;
use crate::error::ApiError;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use std::collections::HashMap;
use weft_controller::{BodyError, InvocationInfo};
use weft_runtime::Kind;

pub(crate) async fn invoke(
    State(s): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    req: Request,
) -> Result<Response, ApiError> {
    let name = params.get("name").cloned().unwrap_or_default();
    let rest = params.get("rest").cloned().unwrap_or_default();
    let c = &s.controller;
    match c.kind(&name)? {
        Kind::Command => {
            let body = req.into_body();
            let out = c
                .invoke_command(&name, |limit| read_body(body, limit))
                .await?;
            let mut resp = Response::new(Body::from(out.body));
            let h = resp.headers_mut();
            set_info(h, &out.info);
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            h.insert(
                "x-weft-wall-us",
                HeaderValue::from(out.usage.wall.as_micros() as u64),
            );
            h.insert(
                "x-weft-cpu-us",
                HeaderValue::from(out.usage.cpu.as_micros() as u64),
            );
            h.insert(
                "x-weft-memory-peak",
                HeaderValue::from(out.usage.peak_memory),
            );
            if let Some(f) = out.usage.fuel {
                h.insert("x-weft-fuel", HeaderValue::from(f));
            }
            Ok(resp)
        }
        Kind::Http => {
            let req = rewrite(req, &rest)?;
            let (info, resp) = c.invoke_http(&name, req).await?;
            let mut resp = resp.map(Body::new);
            set_info(resp.headers_mut(), &info);
            Ok(resp.into_response())
        }
    }
}

fn set_info(h: &mut HeaderMap, info: &InvocationInfo) {
    if let Ok(v) = HeaderValue::from_str(&info.id) {
        h.insert("x-weft-invocation-id", v);
    }
    h.insert("x-weft-version", HeaderValue::from(info.version));
    h.insert(
        "x-weft-cold-start",
        HeaderValue::from_static(if info.cold_start { "true" } else { "false" }),
    );
}

/// Reads a whole request body of at most `limit` bytes.
async fn read_body(body: Body, limit: u64) -> Result<bytes::Bytes, BodyError> {
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match limited.collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Aborted(e.to_string())),
    }
}

/// Gives an HTTP component the sub-path after `/fn/{name}` as its path, and
/// an absolute URI with the host the client used.
fn rewrite(req: Request, rest: &str) -> Result<Request, ApiError> {
    let (mut parts, body) = req.into_parts();
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let uri = format!("http://{host}/{rest}{query}");
    parts.uri = uri.parse::<Uri>().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("bad request URI: {e}"),
        )
    })?;
    Ok(Request::from_parts(parts, body))
}
