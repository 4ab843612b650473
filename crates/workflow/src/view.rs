//! What the API and the CLI show of a run: its head, each step's state,
//! timing and node, and its output.

use crate::journal::{CodeRecord, Failure, RunRecord, StepRecord};
use serde::Serialize;
use serde_json::Value;
use weft_manifest::{Plan, PlannedStep};

/// A run as shown.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    /// Its head.
    #[serde(flatten)]
    pub run: RunRecord,
    /// Its steps, in the order the workflow lists them.
    pub steps: Vec<StepView>,
    /// Its output, once it succeeded: JSON as is, text as a string, other
    /// bytes in base64 (`output_encoding` says which).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// `json`, `utf8` or `base64`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_encoding: Option<&'static str>,
}

/// A step under way, as the node driving its run knows it.
#[derive(Debug, Clone)]
pub(crate) struct Running {
    /// Its attempt.
    pub(crate) attempt: u32,
    /// When the attempt started, ms since the epoch.
    pub(crate) started_ms: u64,
    /// An orchestrator whose run waits (a sleep, an event).
    pub(crate) suspended: bool,
    /// Why its last attempt failed or was turned away, while it waits to
    /// be tried again.
    pub(crate) last_error: Option<Failure>,
}

impl Running {
    pub(crate) fn new(attempt: u32, started_ms: u64) -> Running {
        Running {
            attempt,
            started_ms,
            suspended: false,
            last_error: None,
        }
    }
}

/// A step as shown.
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    /// Its name.
    pub name: String,
    /// A durable step of the orchestrator (a workflow in code): `call`,
    /// `value`, `sleep` or `event`; absent for a step of the graph.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// Its function (none for a durable step other than a call).
    pub function: String,
    /// The steps it waits for.
    pub after: Vec<String>,
    /// `pending`, `running`, `succeeded`, `failed`, `skipped` or
    /// `not_taken`; an orchestrator whose run waits `suspended`, a
    /// durable event step `waiting`.
    pub state: &'static str,
    /// Attempts so far (recorded, or of the attempt running).
    pub attempts: u32,
    /// When its last attempt started, ms since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<u64>,
    /// The node its last attempt ran on.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// Its output's size.
    pub bytes: u64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// When a durable sleep ends, or a wait for an event gives up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// While a running step waits to be tried again: why its last attempt
    /// failed, or was turned away (no node within its constraints, every
    /// node busy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<Failure>,
}

impl StepView {
    /// A durable step of an orchestrator, as recorded.
    pub(crate) fn durable(rec: &CodeRecord) -> StepView {
        StepView {
            name: rec.name.clone(),
            kind: Some(rec.kind.as_str()),
            function: rec.function.clone(),
            after: Vec::new(),
            state: rec.state.as_str(),
            attempts: rec.attempts,
            started_ms: Some(rec.started_ms),
            ended_ms: Some(rec.ended_ms),
            node: rec.node.clone(),
            bytes: rec.bytes,
            error: rec.error.clone(),
            until_ms: rec.until_ms,
            last_error: None,
        }
    }

    pub(crate) fn new(
        step: &PlannedStep,
        plan: &Plan,
        rec: Option<&StepRecord>,
        running: Option<Running>,
    ) -> StepView {
        let after = step
            .after
            .iter()
            .map(|&p| plan.steps[p].name.to_string())
            .collect();
        let mut v = StepView {
            name: step.name.to_string(),
            kind: None,
            function: step.function.to_string(),
            after,
            state: "pending",
            attempts: 0,
            started_ms: None,
            ended_ms: None,
            node: String::new(),
            bytes: 0,
            error: None,
            until_ms: None,
            last_error: None,
        };
        if let Some(r) = rec {
            v.state = r.state.as_str();
            v.attempts = r.attempts;
            v.started_ms = Some(r.started_ms);
            v.ended_ms = Some(r.ended_ms);
            v.node = r.node.clone();
            v.bytes = r.bytes;
            v.error = r.error.clone();
        } else if let Some(r) = running {
            v.state = if r.suspended { "suspended" } else { "running" };
            v.attempts = r.attempt;
            v.started_ms = Some(r.started_ms);
            v.last_error = r.last_error;
        }
        v
    }
}

/// Bytes as JSON when they are JSON, else text, else base64.
pub fn shown(bytes: &[u8]) -> (Value, &'static str) {
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        return (v, "json");
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => (Value::String(s.to_string()), "utf8"),
        Err(_) => {
            use base64::Engine as _;
            (
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
                "base64",
            )
        }
    }
}

impl RunView {
    pub(crate) fn new(run: RunRecord, steps: Vec<StepView>, output: Option<Vec<u8>>) -> RunView {
        let (output, output_encoding) = match output {
            Some(b) => {
                let (v, e) = shown(&b);
                (Some(v), Some(e))
            }
            None => (None, None),
        };
        RunView {
            run,
            steps,
            output,
            output_encoding,
        }
    }
}
