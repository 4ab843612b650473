//! Routes of the admin API and the server loop.

use crate::auth::Auth;
use crate::error::ApiError;
use crate::invoke;
use crate::state::AppState;
use crate::workflows;
use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use axum::{Json, Router};
use futures::StreamExt;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use weft_codes::Code;
use weft_manifest::FunctionSpec;
use weft_router::Caller;
use weft_triggers::Triggers;
use weft_workflow::Workflows;

/// Serves the gateway on `listener` until `shutdown` resolves; then stops
/// accepting and waits for requests in flight to be answered.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Arc<weft_router::Router>,
    triggers: Option<Arc<Triggers>>,
    workflows: Arc<Workflows>,
    auth: Auth,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // No Nagle: a response whose head and body leave in two writes (the body
    // written after its guest waited for a worker) would otherwise wait for
    // the client's delayed ACK, 40 ms.
    let listener = listener.tap_io(|tcp| {
        // Only fails on a socket already closed; the request then fails.
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, routes(router, triggers, workflows, auth))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The gateway's routes.
pub fn routes(
    router: Arc<weft_router::Router>,
    triggers: Option<Arc<Triggers>>,
    workflows: Arc<Workflows>,
    auth: Auth,
) -> Router {
    let controller = router.controller().clone();
    let max_module = controller
        .config()
        .max_module_size
        .map_or(64 << 20, |s| s.0) as usize;
    let state = AppState {
        router,
        controller,
        triggers,
        workflows,
        auth: Arc::new(auth),
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/v1/node", get(node))
        .route("/v1/schema", get(schema))
        .route(
            "/v1/modules",
            put(upload_module).layer(DefaultBodyLimit::max(max_module)),
        )
        .route("/v1/functions", get(list_functions))
        .route(
            "/v1/functions/{name}",
            get(get_function).put(deploy).delete(remove),
        )
        .route("/v1/functions/{name}/rollback", post(rollback))
        .route("/v1/functions/{name}/logs", get(logs))
        .route("/v1/functions/{name}/placement", get(placement))
        .route(
            "/v1/functions/{name}/state/{key}",
            get(state_get).delete(state_clear),
        )
        .route("/v1/nodes", get(nodes))
        .route("/v1/usage", get(usage_all))
        .route("/v1/usage/{name}", get(usage_one))
        .route("/v1/slo", get(slo_all))
        .route("/v1/slo/{name}", get(slo_one))
        .route("/v1/invocations/{id}", get(invocation))
        .route("/v1/invocations/{id}/result", get(invocation_result))
        .route("/v1/dlq", get(dlq_list))
        .route("/v1/dlq/{id}/retry", post(dlq_retry))
        .route("/v1/dlq/{id}", axum::routing::delete(dlq_drop))
        .route("/v1/topics/{topic}", post(publish))
        .route("/v1/workflows", get(workflows::list))
        .route(
            "/v1/workflows/{name}",
            get(workflows::get)
                .put(workflows::deploy)
                .delete(workflows::remove),
        )
        .route("/v1/workflows/{name}/runs", post(workflows::start))
        .route("/v1/runs", get(workflows::runs))
        .route("/v1/runs/{id}", get(workflows::show))
        .route("/v1/runs/{id}/output", get(workflows::output))
        .route("/v1/runs/{id}/cancel", post(workflows::cancel))
        .route("/v1/runs/{id}/retry", post(workflows::retry))
        .route("/v1/runs/{id}/skip", post(workflows::skip))
        .route("/v1/runs/{id}/events/{name}", post(workflows::event))
        .route("/fn/{name}", any(invoke::invoke))
        .route("/fn/{name}/", any(invoke::invoke))
        .route("/fn/{name}/{*rest}", any(invoke::invoke))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

/// The admin API and `/metrics` need the token beyond loopback. An
/// invocation is let through either way, marked with who asks: the router
/// lets a caller without the token run public functions only, decided on
/// the version it resolves.
async fn authorize(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let allowed = matches!(*s.auth, Auth::Open)
        || s.auth.allows(
            req.headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        );
    let path = req.uri().path();
    let admin = path.starts_with("/v1/") || path == "/metrics";
    if admin && !allowed {
        return ApiError::new(
            Code::Unauthorized,
            "this node requires `Authorization: Bearer <token>` (set WEFT_TOKEN or --token)",
        )
        .into_response();
    }
    req.extensions_mut().insert(if allowed {
        Caller::Authorized
    } else {
        Caller::Anonymous
    });
    next.run(req).await
}

/// Paths the node does not serve itself: a function's declared route, or
/// 404.
async fn not_found(State(s): State<AppState>, req: Request) -> Response {
    if let Some((name, route)) = invoke::route(&s, req.uri().path()) {
        return invoke::routed(&s, name, route, req).await;
    }
    ApiError::new(
        Code::NotFound,
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
    .into_response()
}

async fn invocation(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let rec = s.controller.invocation_record(&id).await?;
    Ok(Json(record_json(&rec)).into_response())
}

/// A record as the API shows it: the result as text when it is UTF-8, and
/// always as base64.
fn record_json(rec: &weft_controller::InvocationRecord) -> Value {
    let mut v = serde_json::to_value(rec).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut v {
        // The queue's record serializes the result as base64.
        if let Some(encoded) = m.remove("result") {
            m.insert("result_base64".into(), encoded);
        }
        if let Some(r) = &rec.result {
            m.insert("result_size".into(), json!(r.len()));
            if let Ok(text) = std::str::from_utf8(r) {
                m.insert("result_text".into(), json!(text));
            }
        }
    }
    v
}

/// The raw result of a finished invocation; 409 while it has none.
async fn invocation_result(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let rec = s.controller.invocation_record(&id).await?;
    match rec.result {
        Some(r) => Ok((
            [(http::header::CONTENT_TYPE, "application/octet-stream")],
            r,
        )
            .into_response()),
        None => Err(ApiError::new(
            Code::NoResult,
            format!(
                "invocation `{id}` has no result: it is {}",
                serde_json::to_value(rec.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ),
        )),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DlqQuery {
    function: Option<String>,
    #[serde(default = "default_dlq_limit")]
    limit: usize,
}

fn default_dlq_limit() -> usize {
    100
}

async fn dlq_list(
    State(s): State<AppState>,
    q: Result<Query<DlqQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::new(Code::InvalidQuery, e.body_text()))?;
    let dead = s
        .controller
        .dead_letters(q.function, q.limit.min(10_000))
        .await?;
    let items: Vec<Value> = dead.iter().map(record_json).collect();
    Ok(Json(json!({ "invocations": items })).into_response())
}

async fn dlq_retry(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    s.router.retry_dead(&id).await?;
    Ok(Json(json!({ "retried": id })).into_response())
}

async fn dlq_drop(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    s.controller.drop_dead(&id).await?;
    Ok(Json(json!({ "dropped": id })).into_response())
}

/// Publishes an event on an internal topic, as an operator.
async fn publish(
    State(s): State<AppState>,
    Path(topic): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    weft_manifest::validate_topic(&topic)
        .map_err(|e| ApiError::new(Code::InvalidTopic, e.to_string()))?;
    let n = s
        .router
        .publish(&topic, body, weft_router::Chain::default())
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "topic": topic, "subscribers": n })),
    )
        .into_response())
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        Code::MethodNotAllowed,
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.controller.metrics_text(),
    )
        .into_response()
}

async fn node(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let c = &s.controller;
    let w = c.worker_stats();
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "engine": c.engine_fingerprint(),
        "data_dir": c.data_dir(),
        "functions": c.list()?.len(),
        "auth": matches!(*s.auth, Auth::Token(_)),
        "kv_stores": c.kv_labels(),
        "mqtt": s
            .triggers
            .as_ref()
            .and_then(|t| t.mqtt_connected())
            .map(|connected| json!({ "connected": connected })),
        "async_pending": c.async_pending(),
        "workers": json!({
            "scheduler": w.scheduler.as_str(),
            "workers": w.workers,
            "running": w.running,
            "waiting": w.waiting,
            "preemptions": w.preemptions,
        }),
        "fabric": s.router.fabric_status().map(|f| json!({
            "node": f.node,
            "connected": f.connected,
            "registry_joined": f.registry_joined,
            "name_taken": f.name_taken,
            "nodes_up": f.nodes.iter().filter(|n| n.up).count(),
        })),
    })))
}

/// The fabric as this node sees it (`weft nodes`).
async fn nodes(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(match s.router.fabric_status() {
        Some(f) => json!({ "fabric": true, "node": f.node, "connected": f.connected,
            "registry_joined": f.registry_joined, "name_taken": f.name_taken, "nodes": f.nodes }),
        None => json!({ "fabric": false, "node": s.router.node_name(), "connected": false,
            "registry_joined": false, "nodes": [] }),
    }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PlacementQuery {
    /// Request body size to place for.
    #[serde(default)]
    bytes: u64,
    /// The state key (an actor's runs on its owner).
    #[serde(default)]
    key: Option<String>,
}

/// Where an invocation of the function would run now, and why
/// (`weft explain`).
async fn placement(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<PlacementQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::new(Code::InvalidQuery, e.body_text()))?;
    let e = s.router.explain(&name, q.bytes, q.key.as_deref())?;
    Ok(Json(match e.placement {
        weft_router::Placement::Decided(d) => json!({
            "function": name, "node": d.node, "local": d.local,
            "reason": d.reason, "explain": d.explain(), "decision": d,
            "excluded": e.excluded,
        }),
        _ => json!({
            "function": name, "node": s.router.node_name(), "local": true, "reason": "standalone",
            "explain": "this node is not in a fabric: every invocation runs here",
            "excluded": [],
        }),
    }))
}

async fn schema() -> Json<Value> {
    Json(weft_manifest::Manifest::json_schema())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    /// The function the module is for, named in errors.
    function: Option<String>,
}

async fn upload_module(
    State(s): State<AppState>,
    q: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::new(Code::InvalidQuery, e.body_text()))?;
    let info = s
        .controller
        .upload_module(body, q.function.as_deref())
        .await?;
    let status = if info.compiled {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info)).into_response())
}

async fn list_functions(State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(json!({ "functions": s.controller.list()? })).into_response())
}

async fn get_function(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.controller.status(&name)?).into_response())
}

fn bad_json(name: &str, e: JsonRejection) -> ApiError {
    ApiError::new(
        Code::InvalidSpec,
        format!("function `{name}`: {}", e.body_text()),
    )
    .with("function", name)
}

async fn deploy(
    State(s): State<AppState>,
    Path(name): Path<String>,
    spec: Result<Json<FunctionSpec>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(spec) = spec.map_err(|e| bad_json(&name, e))?;
    let status = s.controller.deploy(&name, spec).await?;
    Ok((StatusCode::CREATED, Json(status)).into_response())
}

async fn remove(State(s): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let rec = s.controller.remove(&name).await?;
    Ok(Json(json!({ "removed": rec.name, "versions": rec.versions.len() })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    version: Option<u32>,
}

async fn rollback(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Option<Json<RollbackRequest>>,
) -> Result<Response, ApiError> {
    let to = body.and_then(|Json(r)| r.version);
    Ok(Json(s.controller.rollback(&name, to).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    #[serde(default)]
    since: u64,
    #[serde(default = "default_log_limit")]
    limit: usize,
    #[serde(default)]
    follow: bool,
}

fn default_log_limit() -> usize {
    200
}

/// Recent lines as a JSON array; with `follow=true`, newline-delimited JSON
/// that stays open and carries new lines as they are written.
async fn logs(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::new(Code::InvalidQuery, e.body_text()))?;
    let recent = s.controller.logs(&name, q.since, q.limit)?;
    if !q.follow {
        return Ok(Json(json!({ "lines": recent })).into_response());
    }
    let last = recent.last().map_or(q.since, |l| l.seq);
    let backlog = futures::stream::iter(recent);
    let rx = s.controller.follow_logs();
    let live = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(line) => return Some((line, rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .filter(move |l| {
        let keep = l.function == name && l.seq > last;
        async move { keep }
    });
    let body = backlog.chain(live).map(|l| {
        let mut v = serde_json::to_vec(&l).unwrap_or_default();
        v.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(v))
    });
    Ok((
        [(http::header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response())
}

async fn usage_all(State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(json!({ "functions": s.controller.usage()? })).into_response())
}

async fn slo_all(State(s): State<AppState>) -> Json<Value> {
    Json(json!({ "functions": s.controller.slo() }))
}

/// The state of one key of a stateful function, for an operator.
async fn state_get(
    State(s): State<AppState>,
    Path((name, key)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    state_shown(&s, &name, &key, false).await
}

/// Removes the state of one key (returns what it held).
async fn state_clear(
    State(s): State<AppState>,
    Path((name, key)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    state_shown(&s, &name, &key, true).await
}

async fn state_shown(
    s: &AppState,
    name: &str,
    key: &str,
    clear: bool,
) -> Result<Json<Value>, ApiError> {
    weft_manifest::validate_state_key(key)
        .map_err(|why| ApiError::new(Code::InvalidStateKey, format!("state key `{key}` {why}")))?;
    let entries = s.controller.inspect_state(name, key, clear).await?;
    let shown: Vec<Value> = entries
        .into_iter()
        .map(|(k, v)| match String::from_utf8(v) {
            Ok(text) => json!({ "key": k, "value": text, "encoding": "utf8" }),
            Err(e) => {
                use base64::Engine as _;
                let b = base64::engine::general_purpose::STANDARD.encode(e.into_bytes());
                json!({ "key": k, "value": b, "encoding": "base64" })
            }
        })
        .collect();
    Ok(Json(json!({
        "function": name,
        "key": key,
        "cleared": clear,
        "entries": shown,
    })))
}

async fn slo_one(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let f = s.controller.function(&name)?;
    Ok(Json(json!({ "functions": [f.slo_report()] })))
}

async fn usage_one(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let all = s.controller.usage()?;
    let one = all
        .get(&name)
        .ok_or(weft_controller::Error::FunctionNotFound(name.clone()))?;
    Ok(Json(json!({ "functions": { name: one } })).into_response())
}
