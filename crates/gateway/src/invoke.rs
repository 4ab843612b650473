//! `/fn/{name}[/{*rest}]`: invocations over HTTP.

use crate::api::AppState;
use crate::error::ApiError;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use weft_codes::Code;
use weft_controller::{BodyError, InvocationInfo, Origin, Placement};
use weft_runtime::Kind;

pub(crate) async fn invoke(
    State(s): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    req: Request,
) -> Result<Response, ApiError> {
    let name = params.get("name").cloned().unwrap_or_default();
    let rest = params.get("rest").cloned().unwrap_or_default();
    let path = format!("/{rest}");
    serve(&s, &name, Origin::new("http", ""), &path, req).await
}

/// A request on a route declared by a function's manifest; the component
/// sees the whole path.
pub(crate) async fn route(
    s: &AppState,
    name: &str,
    route: String,
    req: Request,
) -> Result<Response, ApiError> {
    let path = req.uri().path().to_string();
    serve(s, name, Origin::new("route", route), &path, req).await
}

/// Whether the client asked for an asynchronous invocation
/// (`Prefer: respond-async`, RFC 7240).
fn wants_async(h: &HeaderMap) -> bool {
    h.get_all("prefer").iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
        })
    })
}

async fn serve(
    s: &AppState,
    name: &str,
    origin: Origin,
    path: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let c = &s.controller;
    let kind = c.kind(name)?;
    if wants_async(req.headers()) {
        return enqueue(s, name, origin, kind, path, req).await;
    }
    let bytes_in = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let placement = c.place(name, bytes_in)?;
    if let Placement::Decided(d) = &placement
        && !d.local
    {
        return remote(s, name, origin, kind, path, d.clone(), req).await;
    }
    let mut resp = local(s, name, origin, kind, path, req).await?;
    set_placement(resp.headers_mut(), s, &placement, None);
    Ok(resp)
}

/// Says which node ran the invocation and why.
fn set_placement(h: &mut HeaderMap, s: &AppState, p: &Placement, node: Option<&str>) {
    let node = match (node, p) {
        (Some(n), _) => n.to_string(),
        (None, Placement::Decided(d)) => d.node.clone(),
        (None, Placement::Standalone) => s.controller.node_id().unwrap_or_default(),
    };
    if let Ok(v) = HeaderValue::from_str(&node) {
        h.insert("x-weft-node", v);
    }
    h.insert("x-weft-placement", HeaderValue::from_static(p.reason()));
}

/// Runs the invocation on another node: the body is read here (within the
/// function's request limit) and sent over the fabric.
async fn remote(
    s: &AppState,
    name: &str,
    origin: Origin,
    kind: Kind,
    path: &str,
    decision: weft_controller::Decision,
    req: Request,
) -> Result<Response, ApiError> {
    let c = &s.controller;
    let (parts, body) = req.into_parts();
    let meta = request_meta(&parts, kind, path);
    let body = c.read_request(name, |limit| read_body(body, limit)).await?;
    let out = c.invoke_remote(name, decision, &origin, meta, body).await?;
    let mut resp = Response::new(Body::from(out.body));
    *resp.status_mut() = StatusCode::from_u16(out.status).unwrap_or(StatusCode::OK);
    let h = resp.headers_mut();
    const HOP_BY_HOP: &[&str] = &["content-length", "transfer-encoding", "connection"];
    for (k, v) in &out.headers {
        if HOP_BY_HOP.contains(&k.to_ascii_lowercase().as_str()) {
            continue;
        }
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(k, v);
        }
    }
    if kind == Kind::Command {
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    set_info(
        h,
        &InvocationInfo {
            id: out.invocation.clone(),
            function: name.to_string(),
            version: out.version,
            cold_start: out.cold_start,
        },
    );
    h.insert("x-weft-wall-us", HeaderValue::from(out.wall_us));
    if !out.tried.is_empty()
        && let Ok(v) = HeaderValue::from_str(&out.tried.join(","))
    {
        h.insert("x-weft-retried-from", v);
    }
    set_placement(h, s, &Placement::Decided(out.decision), Some(&out.node));
    Ok(resp)
}

/// What an HTTP component needs of the request besides its body, for a
/// run elsewhere (queued or remote): method, path, host, content type.
fn request_meta(parts: &http::request::Parts, kind: Kind, path: &str) -> BTreeMap<String, String> {
    let mut meta = BTreeMap::new();
    if kind == Kind::Http {
        meta.insert("method".to_string(), parts.method.to_string());
        let query = parts
            .uri
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        meta.insert("path".to_string(), format!("{path}{query}"));
        if let Some(host) = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
        {
            meta.insert("host".to_string(), host.to_string());
        }
    }
    if let Some(ct) = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        meta.insert("content-type".to_string(), ct.to_string());
    }
    meta
}

/// Runs the invocation on this node, streaming as it can.
async fn local(
    s: &AppState,
    name: &str,
    origin: Origin,
    kind: Kind,
    path: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let c = &s.controller;
    match kind {
        Kind::Command => {
            let body = req.into_body();
            let out = c
                .invoke_command(name, origin, |limit| read_body(body, limit))
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
            let req = rewrite(req, path)?;
            let (info, resp) = c.invoke_http(name, origin, req).await?;
            let mut resp = resp.map(Body::new);
            set_info(resp.headers_mut(), &info);
            Ok(resp.into_response())
        }
    }
}

/// Queues the request and answers 202 with the invocation's id once it is
/// durably queued. `Idempotency-Key` makes a repeat return the first id.
async fn enqueue(
    s: &AppState,
    name: &str,
    origin: Origin,
    kind: Kind,
    path: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let c = &s.controller;
    let (parts, body) = req.into_parts();
    let key = match parts.headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    ApiError::new(
                        Code::InvalidIdempotencyKey,
                        "the Idempotency-Key header is not visible ASCII",
                    )
                })?
                .to_string(),
        ),
        None => None,
    };
    let meta = request_meta(&parts, kind, path);
    let accepted = c
        .enqueue_request(
            name,
            |limit| read_body(body, limit),
            "async",
            origin.subject,
            meta,
            key,
        )
        .await?;
    let location = format!("/v1/invocations/{}", accepted.id);
    let mut resp = (
        StatusCode::ACCEPTED,
        Json(json!({
            "id": accepted.id,
            "function": name,
            "duplicate": accepted.duplicate,
            "status_url": location,
        })),
    )
        .into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(http::header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&accepted.id) {
        h.insert("x-weft-invocation-id", v);
    }
    h.insert(
        "preference-applied",
        HeaderValue::from_static("respond-async"),
    );
    Ok(resp)
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
fn rewrite(req: Request, path: &str) -> Result<Request, ApiError> {
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
    let uri = format!("http://{host}{path}{query}");
    parts.uri = uri
        .parse::<Uri>()
        .map_err(|e| ApiError::new(Code::InvalidRequest, format!("bad request URI: {e}")))?;
    Ok(Request::from_parts(parts, body))
}
