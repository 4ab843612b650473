//! Invocations over HTTP: `/fn/{name}[/{*rest}]` and the routes functions
//! declare. Each request becomes one [`weft_router::Request`] — the HTTP
//! facts kept as they came, the body still streaming — and the router's
//! [`weft_router::Response`] goes back as it is, with `x-weft-*` headers
//! saying what ran where.

use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use weft_codes::Code;
use weft_router::{Caller, HttpFacts, Served, Trigger};

/// The functions' declared routes: the function serving `path`, and the
/// route, an exact route first, then the longest `/...` prefix.
pub(crate) fn route(s: &AppState, path: &str) -> Option<(String, String)> {
    let mut best: Option<(usize, String, String)> = None;
    for f in s.router.controller().functions() {
        for r in f.routes() {
            let len = match r.strip_suffix("/...") {
                None if r == path => usize::MAX,
                None => continue,
                Some(prefix) => {
                    let below = path
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
                    if !below {
                        continue;
                    }
                    prefix.len()
                }
            };
            if best.as_ref().is_none_or(|(l, _, _)| len > *l) {
                best = Some((len, f.name().to_string(), r.clone()));
            }
        }
    }
    best.map(|(_, f, r)| (f, r))
}

/// `/fn/{name}[/{*rest}]`: the function sees the sub-path as its path.
pub(crate) async fn invoke(State(s): State<AppState>, req: Request) -> Response {
    let path = req.uri().path();
    let rest = path.strip_prefix("/fn/").unwrap_or_default();
    let (name, sub) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (name, sub) = (name.to_string(), sub.to_string());
    serve(&s, name, Trigger::Http, String::new(), sub, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// A request on a route declared by a function's manifest; the component
/// sees the whole path.
pub(crate) async fn routed(s: &AppState, name: String, route: String, req: Request) -> Response {
    let path = req.uri().path().to_string();
    serve(s, name, Trigger::Route, route, path, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
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
    name: String,
    trigger: Trigger,
    subject: String,
    path: String,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = req
        .extensions()
        .get::<Caller>()
        .copied()
        .unwrap_or(Caller::Anonymous);
    let (parts, body) = req.into_parts();
    let asynchronous = wants_async(&parts.headers);
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let idempotency_key = match parts.headers.get("idempotency-key") {
        Some(v) if asynchronous => Some(
            v.to_str()
                .map_err(|_| {
                    ApiError::new(
                        Code::InvalidIdempotencyKey,
                        "the Idempotency-Key header is not visible ASCII",
                    )
                })?
                .to_string(),
        ),
        _ => None,
    };
    let asked_deadline = asked_deadline(&parts.headers)?;
    let body = body.map_err(|e| -> weft_runtime::BoxError { Box::new(e) });
    let rreq = weft_router::Request {
        asked_deadline,
        trigger: if asynchronous {
            Trigger::Async
        } else {
            trigger
        },
        subject,
        caller,
        http: Some(HttpFacts {
            method: parts.method,
            path_and_query,
            headers: parts.headers,
        }),
        body: weft_router::Body::Stream(body.boxed_unsync()),
        ..weft_router::Request::new(name.clone(), trigger)
    };
    if asynchronous {
        return accepted(s, &name, rreq, idempotency_key).await;
    }
    let out = s.router.invoke(rreq).await?;
    let mut resp = Response::new(Body::new(out.body));
    *resp.status_mut() = out.status;
    *resp.headers_mut() = out.headers;
    served(resp.headers_mut(), &out.served);
    Ok(resp)
}

/// The deadline a request asks for (`x-weft-deadline: 2ms`), from its
/// arrival. Whether it is tighter than the function's, the router checks.
fn asked_deadline(h: &HeaderMap) -> Result<Option<std::time::Duration>, ApiError> {
    let Some(v) = h.get("x-weft-deadline") else {
        return Ok(None);
    };
    let bad = |why: String| {
        ApiError::new(Code::InvalidDeadline, format!("x-weft-deadline: {why}"))
            .with("field", "x-weft-deadline")
    };
    let text = v.to_str().map_err(|_| bad("not visible ASCII".into()))?;
    let d: weft_manifest::HumanDuration = text
        .parse()
        .map_err(|e: weft_manifest::FieldError| bad(e.to_string()))?;
    if d.0.is_zero() {
        return Err(bad("must be more than zero".into()));
    }
    Ok(Some(d.0))
}

/// Queues the request and answers 202 with the invocation's id once it is
/// durably queued. `Idempotency-Key` makes a repeat return the first id.
async fn accepted(
    s: &AppState,
    name: &str,
    req: weft_router::Request,
    key: Option<String>,
) -> Result<Response, ApiError> {
    let accepted = s.router.submit(req, key).await?;
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

/// Says what ran, where, why, and what it used.
fn served(h: &mut HeaderMap, s: &Served) {
    if let Ok(v) = HeaderValue::from_str(&s.invocation) {
        h.insert("x-weft-invocation-id", v);
    }
    h.insert("x-weft-version", HeaderValue::from(s.version));
    h.insert(
        "x-weft-cold-start",
        HeaderValue::from_static(if s.cold_start { "true" } else { "false" }),
    );
    if let Ok(v) = HeaderValue::from_str(&s.node) {
        h.insert("x-weft-node", v);
    }
    h.insert("x-weft-placement", HeaderValue::from_static(s.placement));
    if !s.retried_from.is_empty()
        && let Ok(v) = HeaderValue::from_str(&s.retried_from.join(","))
    {
        h.insert("x-weft-retried-from", v);
    }
    for (name, v) in [
        (
            "x-weft-deadline-us",
            s.deadline.map(|d| d.within.as_micros() as u64),
        ),
        ("x-weft-wall-us", s.wall_us),
        ("x-weft-cpu-us", s.cpu_us),
        ("x-weft-memory-peak", s.memory_peak),
        ("x-weft-fuel", s.fuel),
    ] {
        if let Some(v) = v {
            h.insert(name, HeaderValue::from(v));
        }
    }
    if let Some(d) = s.deadline {
        h.insert(
            "x-weft-deadline-met",
            HeaderValue::from_static(if d.met { "true" } else { "false" }),
        );
    }
}
