//! Workflows in code: an orchestrator function takes durable steps
//! through `weft:fabric/durable`, and each is journaled (by position, see
//! [`crate::journal`]) before it answers.
//!
//! The orchestrator is the one step of its workflow's plan, so a run of it
//! is driven, resumed, taken over, cancelled and retried like any run. Each
//! time it is invoked (first, after a crash, after a suspension), the
//! journal's records are read in batches and its durable operations are
//! answered from them in order, without running anything again, until it
//! reaches the first one not recorded: that one runs and is recorded. A
//! sleep not over, or an event not sent yet, *suspends* the run: the
//! operation answers `suspended`, the orchestrator returns, its answer is
//! dropped, and the driver invokes it again when the time comes or the
//! event arrives. No instance lives while a run waits.

use crate::journal::{CodeKind, CodeRecord, CodeState, CodeStep, Journal, MAX_STEP_OUTPUT, now_ms};
use crate::outcome::StepOutcome;
use bytes::Bytes;
use futures::future::BoxFuture;
use std::time::{Duration, Instant};
use weft_codes::Code;
use weft_manifest::{Name, PlannedStep};
use weft_runtime::{DurableError, DurableOp, FabricCode, FabricError};

/// How often a run waiting for an event looks for it in the journal, for
/// an event sent through another node of the fabric (one sent here wakes
/// it at once).
pub(crate) const EVENT_POLL: Duration = Duration::from_secs(1);

/// What a suspended run waits for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Wake {
    /// Until this time, ms since the epoch (`None`: no time).
    pub(crate) until_ms: Option<u64>,
    /// The event, if it waits for one.
    pub(crate) event: Option<String>,
}

/// An orchestrator's invocation under way: its journal as read, and how
/// far it has replayed.
pub(crate) struct CodeRun {
    /// The run.
    pub(crate) run: String,
    /// The workflow.
    pub(crate) workflow: String,
    /// The orchestrator's function.
    pub(crate) function: String,
    /// The run's deadline.
    pub(crate) deadline: Option<Instant>,
    /// Where its calls' data may go: the workflow's `privacy`.
    pub(crate) privacy: weft_sched::Privacy,
    /// Its durable steps recorded, by position.
    pub(crate) steps: Vec<CodeStep>,
    /// The position of its next operation.
    pub(crate) cursor: usize,
    /// Set when an operation suspended the run.
    pub(crate) suspended: Option<Wake>,
    /// Set when an operation was refused for not matching the journal:
    /// the run's failure says so, if the orchestrator then fails.
    pub(crate) refused: Option<String>,
}

pub(crate) fn failed(code: FabricCode, message: impl Into<String>) -> DurableError {
    DurableError::Failed(FabricError::new(code, message))
}

/// How a recorded failure looks to the orchestrator: the class a guest's
/// call would have seen of its code (a step that ran and failed:
/// `failed`).
fn recorded_failure(rec: &CodeRecord) -> DurableError {
    let (code, message) = match &rec.error {
        Some(f) => (f.code.as_str(), f.message.clone()),
        None => ("internal", "failed".to_string()),
    };
    let class = code
        .parse::<Code>()
        .ok()
        .and_then(|c| weft_router::guest_class(c, false))
        .unwrap_or(FabricCode::Failed);
    failed(class, format!("step `{}`: {code}: {message}", rec.name))
}

/// Runs a durable call's attempts: the engine's (placement, retries,
/// output checks), as for any step.
pub(crate) trait Caller: Send + Sync {
    /// Runs `step` (its function) with `payload` for `run`, under the
    /// invocation id `invocation`.
    fn call(
        &self,
        run: &CodeRun,
        invocation: String,
        step: PlannedStep,
        payload: Bytes,
    ) -> BoxFuture<'static, StepOutcome>;
}

/// The name an operation gives its step, checked.
fn name_of(op: &DurableOp) -> Result<&str, DurableError> {
    let name = match op {
        DurableOp::Call { name, .. }
        | DurableOp::Recorded { name }
        | DurableOp::Record { name, .. }
        | DurableOp::Sleep { name, .. }
        | DurableOp::AwaitEvent { name, .. } => name,
    };
    Name::new(name).map_err(|e| {
        failed(
            FabricCode::Failed,
            format!("durable step name `{name}`: {}", e.message()),
        )
    })?;
    Ok(name)
}

fn kind_of(op: &DurableOp) -> CodeKind {
    match op {
        DurableOp::Call { .. } => CodeKind::Call,
        DurableOp::Recorded { .. } | DurableOp::Record { .. } => CodeKind::Value,
        DurableOp::Sleep { .. } => CodeKind::Sleep,
        DurableOp::AwaitEvent { .. } => CodeKind::Event,
    }
}

/// What the operation asks for, as the journal's words for it.
fn asked(op: &DurableOp) -> String {
    match op {
        DurableOp::Call { name, function, .. } => format!("`{name}` (a call of `{function}`)"),
        DurableOp::Recorded { name } | DurableOp::Record { name, .. } => {
            format!("`{name}` (a value)")
        }
        DurableOp::Sleep { name, .. } => format!("`{name}` (a sleep)"),
        DurableOp::AwaitEvent { name, .. } => format!("`{name}` (an event)"),
    }
}

fn held(rec: &CodeRecord) -> String {
    match rec.kind {
        CodeKind::Call => format!("`{}` (a call of `{}`)", rec.name, rec.function),
        CodeKind::Value => format!("`{}` (a value)", rec.name),
        CodeKind::Sleep => format!("`{}` (a sleep)", rec.name),
        CodeKind::Event => format!("`{}` (an event)", rec.name),
    }
}

fn new_record(name: &str, kind: CodeKind, state: CodeState) -> CodeRecord {
    let now = now_ms();
    CodeRecord {
        name: name.to_string(),
        kind,
        function: String::new(),
        state,
        attempts: 0,
        started_ms: now,
        ended_ms: now,
        until_ms: None,
        node: String::new(),
        bytes: 0,
        out: None,
        error: None,
    }
}

fn journal_failure(e: crate::Error) -> DurableError {
    failed(
        FabricCode::Unavailable,
        format!("the workflow journal: {e}"),
    )
}

/// Answers one durable operation of the orchestrator whose invocation
/// `run` is, from `journal` or by running it (a call, through `caller`).
pub(crate) async fn step(
    journal: &Journal,
    caller: &dyn Caller,
    run: &mut CodeRun,
    op: DurableOp,
) -> Result<Option<Bytes>, DurableError> {
    // A suspended orchestrator that goes on gets nothing more done.
    if run.suspended.is_some() {
        return Err(DurableError::Suspended);
    }
    let name = name_of(&op)?.to_string();
    let n = run.cursor;
    let recorded = match run.steps.get(n) {
        Some(s) => Some(s.clone()),
        None => {
            let Some(rec) = first_run(journal, caller, run, &op, &name).await? else {
                // `recorded` of a step not recorded: nothing, nothing taken.
                return Ok(None);
            };
            let s = journal
                .put_code(&run.run, n, rec.0, &rec.1, None)
                .await
                .map_err(journal_failure)?;
            run.steps.push(s.clone());
            Some(s)
        }
    };
    let Some(mut s) = recorded else {
        return Ok(None);
    };
    if s.rec.name != name
        || s.rec.kind != kind_of(&op)
        || matches!(&op, DurableOp::Call { function, .. } if *function != s.rec.function)
    {
        let message = format!(
            "the orchestrator of run `{}` is not deterministic: its durable step {n} is {} in the journal, and it now asks for {}",
            run.run,
            held(&s.rec),
            asked(&op)
        );
        run.refused = Some(message.clone());
        return Err(failed(FabricCode::Failed, message));
    }
    if s.rec.state == CodeState::Waiting {
        s = settle(journal, run, n, s).await?;
    }
    if s.rec.out.is_some() && s.output.is_none() {
        journal
            .code_outputs(&run.run, &mut run.steps, n)
            .await
            .map_err(journal_failure)?;
        s.output = run.steps[n].output.clone();
    }
    // Answered once per invocation: not kept.
    run.steps[n].output = None;
    let out = s.output.unwrap_or_default();
    match (s.rec.kind, s.rec.state) {
        (_, CodeState::Waiting) => {
            run.suspended = Some(Wake {
                until_ms: s.rec.until_ms,
                event: Some(s.rec.name.clone()),
            });
            Err(DurableError::Suspended)
        }
        (CodeKind::Sleep, _) => {
            let until = s.rec.until_ms.unwrap_or(0);
            if now_ms() < until {
                run.suspended = Some(Wake {
                    until_ms: Some(until),
                    event: None,
                });
                return Err(DurableError::Suspended);
            }
            run.cursor += 1;
            Ok(None)
        }
        (_, CodeState::Failed) => {
            run.cursor += 1;
            Err(recorded_failure(&s.rec))
        }
        (CodeKind::Event, CodeState::NotTaken) => {
            run.cursor += 1;
            Ok(None)
        }
        _ => {
            run.cursor += 1;
            Ok(Some(out))
        }
    }
}

/// Runs an operation not recorded yet; answers the record to write and
/// its output (`None` for `recorded`, which records nothing).
async fn first_run(
    journal: &Journal,
    caller: &dyn Caller,
    run: &CodeRun,
    op: &DurableOp,
    name: &str,
) -> Result<Option<(CodeRecord, Vec<u8>)>, DurableError> {
    let too_large = |what: &str, len: usize| {
        failed(
            FabricCode::TooLarge,
            format!(
                "{what} `{name}` is {len} bytes; a run records at most {MAX_STEP_OUTPUT} per step"
            ),
        )
    };
    Ok(Some(match op {
        DurableOp::Recorded { .. } => return Ok(None),
        DurableOp::Record { value, .. } => {
            if value.len() > MAX_STEP_OUTPUT {
                return Err(too_large("value", value.len()));
            }
            (
                new_record(name, CodeKind::Value, CodeState::Succeeded),
                value.to_vec(),
            )
        }
        DurableOp::Sleep { ms, .. } => {
            let mut rec = new_record(name, CodeKind::Sleep, CodeState::Succeeded);
            rec.until_ms = Some(rec.started_ms.saturating_add(*ms));
            (rec, Vec::new())
        }
        DurableOp::AwaitEvent { timeout_ms, .. } => {
            let mut rec = new_record(name, CodeKind::Event, CodeState::Waiting);
            rec.until_ms = timeout_ms.map(|t| rec.started_ms.saturating_add(t));
            match journal
                .event(&run.run, name)
                .await
                .map_err(journal_failure)?
            {
                Some(payload) => {
                    rec.state = CodeState::Succeeded;
                    (rec, payload)
                }
                None if *timeout_ms == Some(0) => {
                    rec.state = CodeState::NotTaken;
                    (rec, Vec::new())
                }
                None => (rec, Vec::new()),
            }
        }
        DurableOp::Call {
            function, payload, ..
        } => {
            let mut rec = new_record(name, CodeKind::Call, CodeState::Succeeded);
            rec.function = function.clone();
            let fname = Name::new(function).map_err(|e| {
                failed(
                    FabricCode::NotFound,
                    format!("function `{function}`: {}", e.message()),
                )
            })?;
            let step = PlannedStep {
                name: Name::new(name).map_err(|e| failed(FabricCode::Failed, e.message()))?,
                function: fname,
                after: Vec::new(),
                timeout: None,
                retry: None,
                map: None,
                when: None,
            };
            let invocation = format!("{}.{}.{name}", run.run, run.function);
            let outcome = caller.call(run, invocation, step, payload.clone()).await;
            match outcome {
                Ok(ran) => {
                    rec.attempts = ran.attempts;
                    rec.started_ms = ran.started_ms;
                    rec.ended_ms = now_ms();
                    rec.node = ran.node;
                    (rec, ran.output.to_vec())
                }
                Err(f) => {
                    // The run's own deadline is the run's failure, not a
                    // step's to record.
                    if f.failure.code == Code::DeadlineExpired.as_str() {
                        return Err(failed(FabricCode::DeadlineExceeded, f.failure.message));
                    }
                    rec.state = CodeState::Failed;
                    rec.attempts = f.attempts;
                    rec.started_ms = f.started_ms;
                    rec.ended_ms = now_ms();
                    rec.error = Some(f.failure);
                    (rec, Vec::new())
                }
            }
        }
    }))
}

/// A waiting event's record, settled if the event came or its time is
/// up (one compare-and-set of the waiting record: the first settler wins).
async fn settle(
    journal: &Journal,
    run: &mut CodeRun,
    n: usize,
    s: CodeStep,
) -> Result<CodeStep, DurableError> {
    let payload = journal
        .event(&run.run, &s.rec.name)
        .await
        .map_err(journal_failure)?;
    let mut rec = s.rec.clone();
    let output: Vec<u8> = match payload {
        Some(p) => {
            rec.state = CodeState::Succeeded;
            p
        }
        None if s.rec.until_ms.is_some_and(|u| now_ms() >= u) => {
            rec.state = CodeState::NotTaken;
            Vec::new()
        }
        None => return Ok(s),
    };
    rec.ended_ms = now_ms();
    let settled = journal
        .put_code(&run.run, n, rec, &output, Some(&s.raw))
        .await
        .map_err(journal_failure)?;
    run.steps[n] = settled.clone();
    Ok(settled)
}
