//! What the API and the CLI show of a run: its head, each step's state,
//! timing and node, and its output.

use crate::journal::{Failure, RunRecord, StepRecord};
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

/// A step as shown.
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    /// Its name.
    pub name: String,
    /// Its function.
    pub function: String,
    /// The steps it waits for.
    pub after: Vec<String>,
    /// `pending`, `running`, `succeeded`, `failed`, `skipped` or
    /// `not_taken`.
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
}

impl StepView {
    pub(crate) fn new(
        step: &PlannedStep,
        plan: &Plan,
        rec: Option<&StepRecord>,
        running: Option<(u32, u64)>,
    ) -> StepView {
        let after = step
            .after
            .iter()
            .map(|&p| plan.steps[p].name.to_string())
            .collect();
        let mut v = StepView {
            name: step.name.to_string(),
            function: step.function.to_string(),
            after,
            state: "pending",
            attempts: 0,
            started_ms: None,
            ended_ms: None,
            node: String::new(),
            bytes: 0,
            error: None,
        };
        if let Some(r) = rec {
            v.state = r.state.as_str();
            v.attempts = r.attempts;
            v.started_ms = Some(r.started_ms);
            v.ended_ms = Some(r.ended_ms);
            v.node = r.node.clone();
            v.bytes = r.bytes;
            v.error = r.error.clone();
        } else if let Some((attempt, started)) = running {
            v.state = "running";
            v.attempts = attempt;
            v.started_ms = Some(started);
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
