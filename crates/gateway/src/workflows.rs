//! The workflow API: definitions under `/v1/workflows`, runs under
//! `/v1/runs`.
//!
//! | method and path | does |
//! | --- | --- |
//! | `PUT /v1/workflows/{name}` | deploys a workflow (its spec as JSON) |
//! | `GET /v1/workflows`, `GET /v1/workflows/{name}` | lists, shows |
//! | `DELETE /v1/workflows/{name}` | removes it (started runs go on) |
//! | `POST /v1/workflows/{name}/runs[?wait=DURATION]` | starts a run; the body is its input |
//! | `GET /v1/runs[?workflow=&state=&limit=]` | lists runs, newest first |
//! | `GET /v1/runs/{id}[?wait=DURATION]` | a run with its steps (and output) |
//! | `GET /v1/runs/{id}/output` | a run's output, raw |
//! | `POST /v1/runs/{id}/cancel` | cancels it |
//! | `POST /v1/runs/{id}/retry` `{"step"?}` | runs its failed steps (or `step` and after) again |
//! | `POST /v1/runs/{id}/skip` `{"step", "output"}` | records `output` for `step`, resumes |
//! | `POST /v1/runs/{id}/events/{name}` | sends event `name` (the body its payload) to a workflow in code |

use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;
use weft_codes::Code;
use weft_manifest::{HumanDuration, WorkflowSpec};
use weft_workflow::{RunFilter, RunState, RunView};

/// The longest a request may wait for a run to end.
const MAX_WAIT: Duration = Duration::from_secs(300);

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::new(Code::InvalidQuery, e.body_text()))
}

/// `wait`, checked: at most [`MAX_WAIT`].
fn wait_for(w: Option<HumanDuration>) -> Result<Option<Duration>, ApiError> {
    match w {
        Some(HumanDuration(d)) if d > MAX_WAIT => Err(ApiError::new(
            Code::InvalidQuery,
            format!("wait: at most {}", HumanDuration(MAX_WAIT)),
        )
        .with("field", "wait")),
        Some(HumanDuration(d)) => Ok(Some(d)),
        None => Ok(None),
    }
}

/// A run as shown, once it ended or `wait` passed, or at once.
async fn view(s: &AppState, id: &str, wait: Option<Duration>) -> Result<RunView, ApiError> {
    Ok(match wait {
        Some(d) => s.workflows.wait(id, d).await?,
        None => s.workflows.show(id).await?,
    })
}

pub(crate) async fn deploy(
    State(s): State<AppState>,
    Path(name): Path<String>,
    spec: Result<Json<WorkflowSpec>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(spec) = spec.map_err(|e| {
        ApiError::new(
            Code::InvalidWorkflow,
            format!("workflow `{name}`: {}", e.body_text()),
        )
        .with("field", format!("workflows.{name}"))
    })?;
    let d = s.workflows.deploy(&name, spec).await?;
    let status = if d.changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(d)).into_response())
}

pub(crate) async fn list(State(s): State<AppState>) -> Result<Response, ApiError> {
    let defs = s.workflows.definitions().await?;
    Ok(Json(json!({ "workflows": defs })).into_response())
}

pub(crate) async fn get(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.workflows.definition(&name).await?).into_response())
}

pub(crate) async fn remove(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let d = s.workflows.remove(&name).await?;
    Ok(Json(json!({ "removed": d.name, "version": d.version })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct WaitQuery {
    wait: Option<HumanDuration>,
}

pub(crate) async fn start(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<WaitQuery>, QueryRejection>,
    input: Bytes,
) -> Result<Response, ApiError> {
    // Checked before the run starts: a bad request starts nothing.
    let wait = wait_for(query(q)?.wait)?;
    let run = s.workflows.run(&name, input).await?;
    let view = view(&s, &run.id, wait).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunsQuery {
    workflow: Option<String>,
    state: Option<String>,
    limit: Option<usize>,
}

pub(crate) async fn runs(
    State(s): State<AppState>,
    q: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let state = match q.state.as_deref() {
        None => None,
        Some(t) => Some(RunState::parse(t).ok_or_else(|| {
            ApiError::new(
                Code::InvalidQuery,
                format!("state `{t}`: one of running, succeeded, failed, cancelled"),
            )
            .with("field", "state")
        })?),
    };
    let filter = RunFilter {
        workflow: q.workflow,
        state,
        limit: Some(q.limit.unwrap_or(100).min(10_000)),
    };
    Ok(Json(json!({ "runs": s.workflows.list(&filter).await? })).into_response())
}

pub(crate) async fn show(
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let wait = wait_for(query(q)?.wait)?;
    Ok(Json(view(&s, &id, wait).await?).into_response())
}

pub(crate) async fn output(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match s.workflows.output(&id).await? {
        Some(out) => Ok((
            [(http::header::CONTENT_TYPE, "application/octet-stream")],
            out,
        )
            .into_response()),
        None => Err(ApiError::new(
            Code::NoResult,
            format!("run `{id}` has no output: it has not succeeded"),
        )),
    }
}

pub(crate) async fn event(
    State(s): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    payload: Bytes,
) -> Result<Response, ApiError> {
    let bytes = payload.len();
    s.workflows.signal(&id, &name, payload).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "run": id, "event": name, "bytes": bytes })),
    )
        .into_response())
}

pub(crate) async fn cancel(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.workflows.cancel(&id).await?).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryBody {
    step: Option<String>,
}

pub(crate) async fn retry(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Option<Json<RetryBody>>,
) -> Result<Response, ApiError> {
    let step = body.and_then(|Json(b)| b.step);
    Ok(Json(s.workflows.retry(&id, step.as_deref()).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SkipBody {
    step: String,
    /// The output to record, as text (JSON is text).
    #[serde(default)]
    output: String,
}

pub(crate) async fn skip(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<SkipBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body.map_err(|e| ApiError::new(Code::InvalidInput, e.body_text()))?;
    let out = Bytes::from(b.output.into_bytes());
    Ok(Json(s.workflows.skip(&id, &b.step, out).await?).into_response())
}
