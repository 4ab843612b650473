//! Execution: one admitted invocation in a fresh sandbox, from its
//! [`Reservation`] to its recorded outcome (usage, metrics, log).

use crate::admission::Reservation;
use crate::artifacts::Artifacts;
use crate::error::{Error, Result};
use crate::function::Function;
use crate::function::OVERRUN_STREAK;
use crate::logs::LogHub;
use crate::metrics::{Metrics, OutcomeLabels};
use crate::state::{Opened, Settle};
use crate::usage::Usage;
use bytes::Bytes;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use weft_runtime::{
    CallContext, Fabric, HttpBody, Invocation, InvokeError, Kind, Outcome, Runtime, Trigger,
};

/// Metadata of one invocation, for response headers and the CLI.
#[derive(Debug, Clone, Serialize)]
pub struct InvocationInfo {
    /// The invocation's id.
    pub id: String,
    /// The function.
    pub function: String,
    /// The version that ran.
    pub version: u32,
    /// Whether the function was loaded from disk for this invocation.
    pub cold_start: bool,
}

/// What the sandbox is told about why it runs, and its time.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    /// The id to run under (an asynchronous invocation keeps its queue id);
    /// `None`: a new one.
    pub id: Option<String>,
    /// What brought it.
    pub trigger: Trigger,
    /// The route, topic, schedule or caller; may be empty.
    pub subject: String,
    /// Attempt of an asynchronous invocation, from 1.
    pub attempt: u32,
    /// Functions on the synchronous call stack above it, outermost first.
    pub calls: Vec<String>,
    /// Functions that started the chain asynchronously, outermost first.
    pub ancestors: Vec<String>,
    /// The most time it may take (what its caller has left), when less
    /// than the function's timeout.
    pub timeout_cap: Option<Duration>,
    /// When its deadline falls, which orders it on the node's workers;
    /// `None`: its timeout does.
    pub due: Option<Instant>,
    /// Where its CPU time is counted as it runs (its booking's).
    pub progress: Option<weft_runtime::CpuCounter>,
    /// The key whose state it runs with (a stateful function's).
    pub state_key: Option<String>,
    /// The sealed client state the request carries (`client` model).
    pub client_state: Option<String>,
    /// The client state its caller's chain carries.
    pub chain_state: Option<weft_runtime::ChainState>,
}

/// What the sandbox is given.
pub enum Input {
    /// A command's stdin.
    Command(Bytes),
    /// An HTTP component's request.
    Http(Box<http::Request<HttpBody>>),
}

/// What it gave back.
pub enum Output {
    /// A command's stdout, and what it used.
    Command {
        /// Its stdout.
        body: Bytes,
        /// What it used.
        usage: weft_runtime::Usage,
    },
    /// An HTTP component's response, whose body may still be streaming;
    /// `ended` says how the sandbox ended once it has.
    Http {
        /// The response.
        response: http::Response<HttpBody>,
        /// The sandbox's end: `Err` if it failed after the response began.
        ended: oneshot::Receiver<std::result::Result<(), InvokeError>>,
    },
}

/// A run: who ran, and what it gave back.
pub struct Ran {
    /// The invocation.
    pub info: InvocationInfo,
    /// Its output.
    pub output: Output,
    /// A stateful function's last step once the sandbox has ended well:
    /// seal the client's state, or checkpoint the actor's (dropped: the
    /// state stays as it was).
    pub settle: Option<Settle>,
}

/// Runs sandboxes and records what they did.
pub(crate) struct Executor {
    runtime: Arc<Runtime>,
    artifacts: Arc<Artifacts>,
    usage: Arc<Usage>,
    metrics: Arc<Metrics>,
    logs: Arc<LogHub>,
    fabric: OnceLock<Arc<dyn Fabric>>,
    seq: AtomicU64,
    id_prefix: String,
}

impl Executor {
    pub(crate) fn new(
        runtime: Arc<Runtime>,
        artifacts: Arc<Artifacts>,
        usage: Arc<Usage>,
        metrics: Arc<Metrics>,
        logs: Arc<LogHub>,
        id_prefix: String,
    ) -> Self {
        Executor {
            runtime,
            artifacts,
            usage,
            metrics,
            logs,
            fabric: OnceLock::new(),
            seq: AtomicU64::new(0),
            id_prefix,
        }
    }

    /// Sets the guests' `weft:fabric` host (the router), once.
    pub(crate) fn set_fabric(&self, fabric: Arc<dyn Fabric>) {
        let _ = self.fabric.set(fabric);
    }

    fn next_id(&self) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n:08x}", self.id_prefix)
    }

    /// Runs an admitted invocation: loads the code (cold if scaled to
    /// zero), runs a fresh sandbox on `input`, records its outcome, and
    /// frees the reservation when the sandbox has ended.
    pub(crate) async fn run(&self, r: Reservation, input: Input, ctx: RunContext) -> Result<Ran> {
        let f = r.function().clone();
        // Before the code: a state the request cannot use runs nothing.
        let mut state = match (&f.state, &ctx.state_key) {
            (Some(s), Some(key)) => {
                // An actor's turn waits at most what the invocation may take.
                let wait = ctx
                    .timeout_cap
                    .unwrap_or(f.limits.timeout)
                    .min(f.limits.timeout);
                Some(
                    s.open(
                        &f.name,
                        key,
                        ctx.client_state.as_deref(),
                        wait,
                        ctx.chain_state.as_ref(),
                    )
                    .await?,
                )
            }
            _ => None,
        };
        let settle = state.as_mut().and_then(|s| s.settle.take());
        let (loaded, cold) = self.artifacts.load(&f).await?;
        let info = InvocationInfo {
            id: ctx.id.clone().unwrap_or_else(|| self.next_id()),
            function: f.name.clone(),
            version: f.version.version,
            cold_start: cold,
        };
        if cold {
            f.metrics.cold.inc();
        } else {
            f.metrics.warm.inc();
        }
        let inv = self.invocation(&f, &info, ctx, state.as_ref());
        let failed = |source| Error::Invoke {
            name: f.name.clone(),
            invocation: info.id.clone(),
            source,
        };
        match (input, f.kind) {
            (Input::Command(stdin), Kind::Command) => {
                let args_in = stdin.len() as u64;
                let Outcome { result, usage } = loaded.run_command(&self.runtime, stdin, inv).await;
                let args_out = result.as_ref().map_or(0, |b| b.len() as u64);
                let moved = Moved::of(state.as_ref(), args_in, args_out);
                self.record(&f, &info, result.as_ref().err(), &usage, moved);
                drop(r);
                match result {
                    Ok(body) => Ok(Ran {
                        info,
                        output: Output::Command { body, usage },
                        settle,
                    }),
                    Err(source) => Err(failed(source)),
                }
            }
            (Input::Http(req), Kind::Http) => {
                let req = *req;
                let (tx, ended) = oneshot::channel();
                // Arguments of a streamed body as its length says.
                let args_in = content_length(req.headers());
                let args_out = Arc::new(AtomicU64::new(0));
                let moved = state.map(|s| (s, args_in, args_out.clone()));
                let done = self.done(f.clone(), info.clone(), r, tx, moved);
                let response = loaded
                    .serve_http(&self.runtime, req, inv, done)
                    .await
                    .map_err(failed)?;
                args_out.store(content_length(response.headers()), Ordering::Relaxed);
                Ok(Ran {
                    info,
                    output: Output::Http { response, ended },
                    settle,
                })
            }
            (_, kind) => Err(Error::Internal(format!(
                "function `{}` is a {} function; it was given the other kind of input",
                f.name,
                kind.as_str()
            ))),
        }
    }

    /// What runs when an HTTP component's sandbox has ended: record the
    /// outcome, free the slots, and say how it went.
    fn done(
        &self,
        f: Arc<Function>,
        info: InvocationInfo,
        r: Reservation,
        ended: oneshot::Sender<std::result::Result<(), InvokeError>>,
        state: Option<(Opened, u64, Arc<AtomicU64>)>,
    ) -> weft_runtime::HttpDone {
        let (usage, metrics) = (self.usage.clone(), self.metrics.clone());
        Box::new(move |outcome: Outcome<()>| {
            let moved = state.and_then(|(s, args_in, args_out)| {
                Moved::of(Some(&s), args_in, args_out.load(Ordering::Relaxed))
            });
            record(
                &usage,
                &metrics,
                &f,
                &info,
                outcome.result.as_ref().err(),
                &outcome.usage,
                moved,
            );
            drop(r);
            let _ = ended.send(outcome.result);
        })
    }

    fn invocation(
        &self,
        f: &Function,
        info: &InvocationInfo,
        ctx: RunContext,
        state: Option<&Opened>,
    ) -> Invocation {
        let hub = self.logs.clone();
        let (name, id) = (f.name.clone(), info.id.clone());
        let mut chain = ctx.calls;
        chain.push(f.name.clone());
        let mut limits = f.limits.clone();
        if let Some(cap) = ctx.timeout_cap {
            limits.timeout = limits.timeout.min(cap);
        }
        Invocation {
            name: f.name.clone(),
            limits,
            grants: f.grants.clone(),
            log: Arc::new(move |line| hub.push(&name, &id, line)),
            caps: f.caps.clone(),
            context: Arc::new(CallContext {
                id: info.id.clone(),
                trigger: ctx.trigger,
                subject: ctx.subject,
                attempt: ctx.attempt.max(1),
                chain,
                ancestors: ctx.ancestors,
                due: ctx.due,
                state_key: ctx.state_key,
                // Its own client state, or the one its caller handed on.
                chain_state: state.and_then(|s| s.chain.clone()).or(ctx.chain_state),
            }),
            fabric: self.fabric.get().cloned(),
            due: ctx.due,
            progress: ctx.progress,
            state: state.map(|s| s.bucket.clone()),
        }
    }

    fn record(
        &self,
        f: &Function,
        info: &InvocationInfo,
        failed: Option<&InvokeError>,
        used: &weft_runtime::Usage,
        moved: Option<Moved>,
    ) {
        record(&self.usage, &self.metrics, f, info, failed, used, moved);
    }
}

/// What a stateful invocation moved: bytes of state read and written, of
/// arguments in and out.
#[derive(Debug, Clone, Copy)]
struct Moved {
    bytes: [u64; 4],
    /// Operations that went to the state's home.
    trips: u64,
}

impl Moved {
    fn of(state: Option<&Opened>, args_in: u64, args_out: u64) -> Option<Moved> {
        state.map(|s| Moved {
            bytes: [s.traffic.read(), s.traffic.written(), args_in, args_out],
            trips: s.traffic.trips(),
        })
    }
}

/// A body's length as its headers say (0 when they do not).
fn content_length(h: &http::HeaderMap) -> u64 {
    h.get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Records what an invocation used and how it ended.
fn record(
    usage: &Usage,
    metrics: &Metrics,
    f: &Function,
    info: &InvocationInfo,
    failed: Option<&InvokeError>,
    used: &weft_runtime::Usage,
    moved: Option<Moved>,
) {
    let outcome = match failed {
        None => {
            f.metrics.ok.inc();
            "ok"
        }
        Some(e) => {
            let code = e.code().as_str();
            metrics
                .invocations
                .get_or_create(&OutcomeLabels {
                    function: f.name.clone(),
                    outcome: code.into(),
                })
                .inc();
            code
        }
    };
    f.metrics.duration.observe(used.wall.as_secs_f64());
    if let Some(estimate) = f.observe_exec(used.wall.saturating_sub(used.waited)) {
        tracing::warn!(
            function = %f.name,
            estimate_ms = estimate as f64 / 1000.0,
            "ran past its estimate {OVERRUN_STREAK} times in a row: its profile keeps only those runs now"
        );
    }
    f.metrics.cpu_seconds.inc_by(used.cpu.as_secs_f64());
    let state = match (moved, &f.metrics.state) {
        (Some(Moved { bytes: m, trips }), Some(counters)) => {
            counters.add(m);
            f.observe_state(m[0] + m[1], trips);
            Some((counters.model(), m))
        }
        _ => None,
    };
    usage.record(&f.name, info.cold_start, failed.is_some(), used, state);
    tracing::debug!(
        target: "weft::invocation",
        function = %f.name,
        version = info.version,
        invocation = %info.id,
        cold = info.cold_start,
        outcome,
        wall_us = used.wall.as_micros() as u64,
        cpu_us = used.cpu.as_micros() as u64,
        peak_memory = used.peak_memory,
        fuel = used.fuel,
        "invocation"
    );
}
