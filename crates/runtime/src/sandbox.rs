//! One invocation in a fresh sandbox: store set-up, limits, execution, and
//! classification of how it ended.

use crate::error::InvokeError;
use crate::host::{CallContext, Capabilities, Fabric, HostCtx};
use crate::io::{CappedOutput, GuestStream, LogFn, LogSink};
use crate::limits::{FrozenMonotonicClock, FrozenWallClock, Grants, Limiter, Limits};
use crate::meter::{CpuCounter, CpuTimed, Usage};
use crate::runtime::{LiveSandbox, Loaded, Pre, Runtime};
use crate::state::{CommandState, ComponentState};
use crate::workers::{Scheduled, Turn, Workers};
use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::sync::oneshot;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxBuilder};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// The boxed error of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a response streamed from an HTTP component.
pub type HttpBody = UnsyncBoxBody<Bytes, BoxError>;

/// Called once when an HTTP component's sandbox has finished, with how it
/// ended and what it used.
pub type HttpDone = Box<dyn FnOnce(Outcome<()>) + Send>;

/// How one invocation ended, and what it used.
#[derive(Debug)]
pub struct Outcome<T> {
    /// The response body, or why there is none.
    pub result: Result<T, InvokeError>,
    /// Resources consumed.
    pub usage: Usage,
}

/// The per-invocation parameters of a sandbox.
#[derive(Clone)]
pub struct Invocation {
    /// The function's name: `argv[0]` of commands, and named in errors.
    pub name: String,
    /// Resource limits.
    pub limits: Limits,
    /// Ambient capabilities granted.
    pub grants: Arc<Grants>,
    /// Where stderr lines go.
    pub log: LogFn,
    /// Stores, config, hosts, callees and topics granted.
    pub caps: Arc<Capabilities>,
    /// Who runs and why.
    pub context: Arc<CallContext>,
    /// The node's side of calls and topics; none outside a node.
    pub fabric: Option<Arc<dyn Fabric>>,
    /// When it should have ended (its deadline): orders it on the node's
    /// workers. `None`: its timeout does.
    pub due: Option<Instant>,
    /// Where its CPU time is counted as it runs; `None`: a counter of its
    /// own.
    pub progress: Option<CpuCounter>,
    /// Its state: the bucket it opens by that bucket's label (a stateful
    /// function's, bound to the invocation's key).
    pub state: Option<Arc<dyn weft_kv::Bucket>>,
}

impl Invocation {
    /// An invocation with default limits, no grants, and stderr sent to
    /// `tracing`.
    pub fn new(name: &str) -> Self {
        let owned = name.to_string();
        Invocation {
            name: owned.clone(),
            limits: Limits::default(),
            grants: Arc::default(),
            log: Arc::new(move |line| tracing::info!(function = %owned, "{line}")),
            caps: Arc::default(),
            context: Arc::default(),
            fabric: None,
            due: None,
            progress: None,
            state: None,
        }
    }
}

/// The store state of a component sandbox running `inv`.
fn component_state(wasi: WasiCtx, inv: &Invocation, deadline: Instant) -> ComponentState {
    let host = HostCtx {
        function: inv.name.clone(),
        caps: inv.caps.clone(),
        state: inv.state.clone(),
        context: inv.context.clone(),
        fabric: inv.fabric.clone(),
        log: inv.log.clone(),
        deadline,
        log_budget: inv.limits.max_log,
    };
    ComponentState::new(wasi, host, inv.limits.memory)
}

/// A WASI context with everything denied except what `grants` names.
fn wasi_builder(name: &str, grants: &Grants) -> WasiCtxBuilder {
    let mut b = WasiCtxBuilder::new();
    b.arg(name).args(&grants.args).envs(&grants.env);
    if !grants.clock {
        b.wall_clock(FrozenWallClock)
            .monotonic_clock(FrozenMonotonicClock);
    }
    b.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    b
}

/// Limits, fuel and the deadline, applied to a fresh store; `turn` is its
/// place with the workers, checked at every epoch.
fn arm<T: 'static>(
    store: &mut Store<T>,
    rt: &Runtime,
    limits: &Limits,
    deadline: Instant,
    turn: &Arc<Turn>,
    limiter: fn(&mut T) -> &mut Limiter,
) -> Result<u64, InvokeError> {
    store.limiter(move |s| limiter(s) as &mut dyn wasmtime::ResourceLimiter);
    let fuel = if rt.config().fuel {
        let f = limits.fuel.unwrap_or(u64::MAX);
        store
            .set_fuel(f)
            .map_err(|e| InvokeError::Internal(format!("setting fuel: {e}")))?;
        f
    } else {
        0
    };
    let (turn, workers) = (turn.clone(), rt.workers().clone());
    store.epoch_deadline_callback(move |_| {
        Ok(if Instant::now() >= deadline {
            UpdateDeadline::Interrupt
        } else {
            turn.at_check(&workers)
        })
    });
    store.set_epoch_deadline(1);
    rt.stop_at(deadline);
    Ok(fuel)
}

/// What the store tells about an invocation after it ended.
struct Ended {
    peak_memory: u64,
    memory_denied: bool,
    fuel: Option<u64>,
}

/// Maps how a guest call ended to success or an [`InvokeError`].
fn classify(
    result: Option<wasmtime::Result<()>>,
    end: &Ended,
    limits: &Limits,
    response_overflowed: bool,
) -> Result<(), InvokeError> {
    let Some(result) = result else {
        return Err(InvokeError::Deadline {
            timeout: limits.timeout,
        });
    };
    let err = match result {
        Ok(()) if !response_overflowed => return Ok(()),
        Ok(()) => {
            return Err(InvokeError::ResponseTooLarge {
                limit: limits.max_response,
            });
        }
        Err(e) => e,
    };
    if response_overflowed {
        return Err(InvokeError::ResponseTooLarge {
            limit: limits.max_response,
        });
    }
    let memory = InvokeError::MemoryLimit {
        limit: limits.memory,
    };
    if let Some(exit) = err.downcast_ref::<I32Exit>() {
        return match exit.0 {
            0 => Ok(()),
            _ if end.memory_denied => Err(memory),
            code => Err(InvokeError::Exit(code)),
        };
    }
    if let Some(trap) = err.downcast_ref::<Trap>() {
        return Err(match trap {
            Trap::StackOverflow => InvokeError::StackOverflow,
            Trap::Interrupt => InvokeError::Deadline {
                timeout: limits.timeout,
            },
            Trap::OutOfFuel => InvokeError::FuelExhausted {
                limit: limits.fuel.unwrap_or(0),
            },
            _ if end.memory_denied => memory,
            other => InvokeError::Trap(other.to_string()),
        });
    }
    if end.memory_denied {
        return Err(memory);
    }
    Err(InvokeError::Trap(format!("{err:#}")))
}

impl Loaded {
    /// The kind of function this is.
    pub fn kind(&self) -> crate::Kind {
        match self.0 {
            Pre::Command(_) | Pre::CommandComponent(_) => crate::Kind::Command,
            Pre::Http(_) => crate::Kind::Http,
        }
    }

    /// Runs a command in a fresh sandbox: `input` is its stdin, its stdout
    /// the returned body.
    pub async fn run_command(&self, rt: &Runtime, input: Bytes, inv: Invocation) -> Outcome<Bytes> {
        let started = Instant::now();
        match self.command_sandbox(rt, input, &inv).await {
            Ok(mut sandbox) => {
                sandbox.call().await;
                sandbox.finish()
            }
            Err(e) => Outcome {
                result: Err(e),
                usage: Usage {
                    wall: started.elapsed(),
                    ..Usage::default()
                },
            },
        }
    }

    /// Creates and instantiates a command sandbox, without running it: the
    /// first half of [`Loaded::run_command`].
    pub async fn command_sandbox(
        &self,
        rt: &Runtime,
        input: Bytes,
        inv: &Invocation,
    ) -> Result<CommandSandbox, InvokeError> {
        let started = Instant::now();
        let limits = inv.limits.clone();
        let deadline = started + limits.timeout;
        let stdout = CappedOutput::new(limits.max_response);
        let stderr = LogSink::new(
            usize::try_from(limits.max_log).unwrap_or(usize::MAX),
            inv.log.clone(),
        );
        let mut b = wasi_builder(&inv.name, &inv.grants);
        b.stdin(MemoryInputPipe::new(input))
            .stdout(GuestStream(stdout.clone()))
            .stderr(GuestStream(stderr.clone()));
        let cpu = inv.progress.clone().unwrap_or_default();
        let live = rt.live_sandbox();
        let turn = rt.workers().turn(inv.due.unwrap_or(deadline), started);
        let (inner, initial_fuel) = match &self.0 {
            Pre::Command(pre) => {
                let state = CommandState {
                    wasi: b.build_p1(),
                    limiter: Limiter::new(limits.memory),
                };
                let mut store = Store::new(rt.engine(), state);
                let fuel = arm(&mut store, rt, &limits, deadline, &turn, |s| &mut s.limiter)?;
                let instance = instantiate(pre.instantiate_async(&mut store), &cpu).await?;
                let start = instance
                    .get_typed_func::<(), ()>(&mut store, "_start")
                    .map_err(|e| InvokeError::Internal(format!("{e:#}")))?;
                (CommandInner::Core { store, start }, fuel)
            }
            Pre::CommandComponent(pre) => {
                let mut store = Store::new(rt.engine(), component_state(b.build(), inv, deadline));
                let fuel = arm(&mut store, rt, &limits, deadline, &turn, |s| &mut s.limiter)?;
                let command = instantiate(pre.instantiate_async(&mut store), &cpu).await?;
                (CommandInner::Component { store, command }, fuel)
            }
            Pre::Http(_) => {
                return Err(InvokeError::Internal(format!(
                    "function `{}` is an HTTP component, not a command",
                    inv.name
                )));
            }
        };
        Ok(CommandSandbox {
            inner,
            _live: live,
            stdout,
            stderr,
            limits,
            started,
            deadline,
            initial_fuel,
            fuel_on: rt.config().fuel,
            cpu,
            workers: rt.workers().clone(),
            turn,
            result: None,
        })
    }

    /// Serves one HTTP request with an HTTP component in a fresh sandbox.
    /// Returns when the component has set its response; the sandbox may go
    /// on streaming the body, and `done` is called when it has finished.
    pub async fn serve_http<B>(
        &self,
        rt: &Runtime,
        req: http::Request<B>,
        inv: Invocation,
        done: HttpDone,
    ) -> Result<http::Response<HttpBody>, InvokeError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let started = Instant::now();
        let Pre::Http(pre) = &self.0 else {
            return Err(InvokeError::Internal(format!(
                "function `{}` is not an HTTP component",
                inv.name
            )));
        };
        let limits = inv.limits.clone();
        if let Some(len) = content_length(req.headers())
            && len > limits.max_request
        {
            return Err(InvokeError::RequestTooLarge {
                limit: limits.max_request,
            });
        }
        let deadline = started + limits.timeout;
        let stderr = LogSink::new(
            usize::try_from(limits.max_log).unwrap_or(usize::MAX),
            inv.log.clone(),
        );
        let mut b = wasi_builder(&inv.name, &inv.grants);
        b.stdout(GuestStream(stderr.clone()))
            .stderr(GuestStream(stderr.clone()));
        let mut store = Store::new(rt.engine(), component_state(b.build(), &inv, deadline));
        let turn = rt.workers().turn(inv.due.unwrap_or(deadline), started);
        let initial_fuel = arm(&mut store, rt, &limits, deadline, &turn, |s| &mut s.limiter)?;
        let workers = rt.workers().clone();
        let report_turn = turn.clone();

        let request_overflow = Arc::new(AtomicBool::new(false));
        let (parts, body) = req.into_parts();
        let body = Capped::new(
            body,
            limits.max_request,
            request_overflow.clone(),
            |limit| wasmtime_wasi_http::Error::HttpRequestBodySize(Some(limit)),
        )
        .map_err_display();
        let req = http::Request::from_parts(parts, body);
        let (incoming, outparam) = {
            let mut view = store.data_mut().http();
            let incoming = view
                .new_incoming_request(Scheme::Http, req)
                .map_err(|e| InvokeError::Internal(format!("{e:#}")))?;
            let (tx, rx) = oneshot::channel();
            let outparam = view
                .new_response_outparam(tx)
                .map_err(|e| InvokeError::Internal(format!("{e:#}")))?;
            ((incoming, rx), outparam)
        };
        let (incoming, rx) = incoming;

        let response_overflow = Arc::new(AtomicBool::new(false));
        let overflow = response_overflow.clone();
        let pre = pre.clone();
        let fuel_on = rt.config().fuel;
        let cpu = inv.progress.clone().unwrap_or_default();
        let task_cpu = cpu.clone();
        let task_limits = limits.clone();
        let live = rt.live_sandbox();
        // The sandbox runs here, in the request's own task, until it has set
        // its response: most components also finish their body in that
        // time, and the request never changes threads. One still running
        // then (streaming, or working after its response) goes on in a task
        // of its own.
        let guest: GuestFuture = Box::pin(CpuTimed::new(
            async move {
                let _live = live;
                let limits = task_limits;
                let call = async {
                    let proxy = pre
                        .instantiate_async(&mut store)
                        .await
                        .map_err(instantiate_error)?;
                    Ok::<_, InvokeError>(
                        proxy
                            .wasi_http_incoming_handler()
                            .call_handle(&mut store, incoming, outparam)
                            .await,
                    )
                };
                let ran = within(deadline, Scheduled::new(call, workers, turn)).await;
                stderr.finish();
                let end = Ended {
                    peak_memory: store.data().limiter.peak,
                    memory_denied: store.data().limiter.memory_denied,
                    fuel: fuel_on
                        .then(|| initial_fuel.saturating_sub(store.get_fuel().unwrap_or(0))),
                };
                drop(store);
                let mut result = match ran {
                    Ok(Err(e)) => Err(e),
                    Ok(Ok(r)) => classify(Some(r), &end, &limits, false),
                    Err(_) => classify(None, &end, &limits, false),
                };
                if request_overflow.load(Ordering::Relaxed) {
                    result = Err(InvokeError::RequestTooLarge {
                        limit: limits.max_request,
                    });
                }
                (result, end)
            },
            task_cpu,
        ));

        // The outcome is reported once the sandbox has ended and the
        // response body has been streamed (or abandoned).
        let report = move |(mut result, end): Guest| {
            if overflow.load(Ordering::Relaxed) {
                result = Err(InvokeError::ResponseTooLarge {
                    limit: limits.max_response,
                });
            }
            let usage = Usage {
                wall: started.elapsed(),
                cpu: cpu.get(),
                peak_memory: end.peak_memory,
                fuel: end.fuel,
                waited: report_turn.waited(),
            };
            done(Outcome {
                result: result.clone(),
                usage,
            });
            result
        };
        let mut running = Running(Some((guest, Box::new(report), rx)));
        let first = std::future::poll_fn(|cx| running.poll_first(cx)).await;
        let (set, ended) = match first {
            First::Set(set) => (set.map_err(drop), None),
            // Ended: the response, if it set one, is waiting.
            First::Ended(ended) => (running.try_recv(), Some(ended)),
        };
        let Ok(set) = set else {
            // No response: the sandbox dropped it, or ended without one.
            let ended = match ended {
                Some(e) => e,
                None => std::future::poll_fn(|cx| running.poll_guest(cx)).await,
            };
            return match running.end(ended) {
                Err(e) => Err(e),
                Ok(()) => Err(InvokeError::Handler(
                    "the component returned without setting a response".into(),
                )),
            };
        };
        let finish = running.finish(ended);
        match set {
            Ok(resp) => {
                let limit = inv.limits.max_response;
                if content_length(resp.headers()).is_some_and(|l| l > limit) {
                    response_overflow.store(true, Ordering::Relaxed);
                    drop(finish);
                    return Err(InvokeError::ResponseTooLarge { limit });
                }
                let (parts, body) = resp.into_parts();
                let body = Capped::new(body, limit, response_overflow, |limit| {
                    BoxError::from(format!("response body exceeds the limit of {limit} bytes"))
                })
                .map_err_box();
                let body = Reported {
                    inner: body,
                    _finish: finish,
                };
                Ok(http::Response::from_parts(parts, body.boxed_unsync()))
            }
            Err(code) => {
                drop(finish);
                Err(InvokeError::Handler(format_error_code(&code)))
            }
        }
    }
}

/// How a sandbox ended, and what it used.
type Guest = (Result<(), InvokeError>, Ended);

/// A sandbox running to its end.
type GuestFuture = Pin<Box<dyn Future<Output = Guest> + Send>>;

/// Reports how a sandbox ended: its outcome and usage, to the `done` hook.
type Report = Box<dyn FnOnce(Guest) -> Result<(), InvokeError> + Send>;

/// What an HTTP component sets as its response.
type Outparam = Result<http::Response<HyperOutgoingBody>, ErrorCode>;

/// What happened first to a sandbox running in the request's task.
enum First {
    /// It set its response (or dropped its outparam: `Err`).
    Set(Result<Outparam, oneshot::error::RecvError>),
    /// It ended.
    Ended(Guest),
}

/// The sandbox while it runs in the request's task, with where its
/// response arrives. If the request goes first (the client hung up), the
/// sandbox goes on in a task of its own to its end or its deadline, its
/// response read and thrown away as a client that stayed would have read
/// it, and its outcome is reported like any other.
struct Running(Option<(GuestFuture, Report, oneshot::Receiver<Outparam>)>);

impl Running {
    fn poll_first(&mut self, cx: &mut Context<'_>) -> Poll<First> {
        let Some((guest, _, rx)) = self.0.as_mut() else {
            return Poll::Pending;
        };
        if let Poll::Ready(set) = Pin::new(rx).poll(cx) {
            return Poll::Ready(First::Set(set));
        }
        guest.as_mut().poll(cx).map(First::Ended)
    }

    fn poll_guest(&mut self, cx: &mut Context<'_>) -> Poll<Guest> {
        match self.0.as_mut() {
            Some((guest, _, _)) => guest.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }

    /// The response, once the sandbox has ended.
    fn try_recv(&mut self) -> Result<Outparam, ()> {
        match self.0.as_mut() {
            Some((_, _, rx)) => rx.try_recv().map_err(drop),
            None => Err(()),
        }
    }

    /// The sandbox ended without a response: reports it.
    fn end(mut self, ended: Guest) -> Result<(), InvokeError> {
        match self.0.take() {
            Some((_, report, _)) => report(ended),
            None => ended.0,
        }
    }

    /// The sandbox set its response (and `ended`, if it has ended): its end
    /// is reported with the response body's.
    fn finish(mut self, ended: Option<Guest>) -> Finish {
        let (ended, report) = match (ended, self.0.take()) {
            (Some(ended), Some((_, report, _))) => (Some(ended), Some(report)),
            (None, Some((guest, report, _))) => {
                // Still running: it goes on in a task of its own now, so
                // that it keeps its deadline whether or not the client
                // reads the body.
                tokio::spawn(async move {
                    let _ = report(guest.await);
                });
                (None, None)
            }
            (_, None) => (None, None),
        };
        Finish { ended, report }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some((guest, report, rx)) = self.0.take() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let discard = async {
                if let Ok(Ok(resp)) = rx.await {
                    let mut body = resp.into_body();
                    while let Some(Ok(_)) = body.frame().await {}
                }
            };
            let ((), ended) = tokio::join!(discard, guest);
            let _ = report(ended);
        });
    }
}

/// The end of an HTTP sandbox, reported when this is dropped (with the
/// response body) if the sandbox had ended; one still running reports its
/// own end, from a task of its own.
struct Finish {
    ended: Option<Guest>,
    report: Option<Report>,
}

impl Drop for Finish {
    fn drop(&mut self) {
        if let (Some(ended), Some(report)) = (self.ended.take(), self.report.take()) {
            let _ = report(ended);
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that reports its sandbox's end when dropped.
    struct Reported<B> {
        #[pin]
        inner: B,
        _finish: Finish,
    }
}

impl<B: Body> Body for Reported<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A command's sandbox, instantiated from the pool and armed with its
/// limits. [`CommandSandbox::call`] runs it; [`CommandSandbox::finish`]
/// reports the outcome. Dropping it returns its slot to the pool.
pub struct CommandSandbox {
    inner: CommandInner,
    _live: LiveSandbox,
    stdout: CappedOutput,
    stderr: LogSink,
    limits: Limits,
    started: Instant,
    deadline: Instant,
    initial_fuel: u64,
    fuel_on: bool,
    cpu: CpuCounter,
    workers: Arc<Workers>,
    turn: Arc<Turn>,
    result: Option<Result<(), InvokeError>>,
}

enum CommandInner {
    /// A WASI preview 1 module and its `_start`.
    Core {
        store: Store<CommandState>,
        start: wasmtime::TypedFunc<(), ()>,
    },
    /// A `wasi:cli/run` component.
    Component {
        store: Store<ComponentState>,
        command: wasmtime_wasi::p2::bindings::Command,
    },
}

impl CommandSandbox {
    /// Runs the command to completion, its deadline or a trap.
    pub async fn call(&mut self) {
        let run = async {
            match &mut self.inner {
                CommandInner::Core { store, start } => start.call_async(&mut *store, ()).await,
                CommandInner::Component { store, command } => {
                    match command.wasi_cli_run().call_run(&mut *store).await {
                        Ok(Ok(())) => Ok(()),
                        // `run` returned `err`: the component's way to fail.
                        Ok(Err(())) => Err(wasmtime::Error::new(I32Exit(1))),
                        Err(e) => Err(e),
                    }
                }
            }
        };
        let run = Scheduled::new(run, self.workers.clone(), self.turn.clone());
        let ran = within(self.deadline, CpuTimed::new(run, self.cpu.clone())).await;
        let end = self.ended();
        self.result = Some(match ran {
            Ok(r) => classify(Some(r), &end, &self.limits, self.stdout.overflowed()),
            Err(_) => classify(None, &end, &self.limits, false),
        });
    }

    fn ended(&self) -> Ended {
        // `get_fuel` is an error (an allocation) when fuel is off: ask only
        // when it is on.
        let fuel_on = self.fuel_on;
        let (limiter, fuel_left) = match &self.inner {
            CommandInner::Core { store, .. } => {
                (&store.data().limiter, fuel_on.then(|| store.get_fuel()))
            }
            CommandInner::Component { store, .. } => {
                (&store.data().limiter, fuel_on.then(|| store.get_fuel()))
            }
        };
        Ended {
            peak_memory: limiter.peak,
            memory_denied: limiter.memory_denied,
            fuel: fuel_left.map(|f| self.initial_fuel.saturating_sub(f.unwrap_or(0))),
        }
    }

    /// How the command ended, its stdout, and what it used.
    pub fn finish(self) -> Outcome<Bytes> {
        self.stderr.finish();
        let end = self.ended();
        let result = self
            .result
            .unwrap_or_else(|| Err(InvokeError::Internal("the command was not run".into())));
        Outcome {
            result: result.map(|()| self.stdout.take()),
            usage: Usage {
                wall: self.started.elapsed(),
                cpu: self.cpu.get(),
                peak_memory: end.peak_memory,
                fuel: end.fuel,
                waited: self.turn.waited(),
            },
        }
    }
}

fn format_error_code(code: &ErrorCode) -> String {
    format!("{code:?}")
}

/// Bounds `fut` by `deadline`, arming a timer only if the future does not
/// finish on its first poll: most invocations end within one poll, and a
/// timer costs about a microsecond to arm and disarm. (Guest code is stopped
/// at the deadline by the epoch callback either way; the timer covers host
/// calls that wait.)
async fn within<F: Future>(deadline: Instant, fut: F) -> Result<F::Output, ()> {
    let mut fut = std::pin::pin!(fut);
    let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(out) => Ok(out),
        Poll::Pending => tokio::time::timeout_at(deadline.into(), fut)
            .await
            .map_err(drop),
    }
}

/// Instantiation (a pool slot, memory images, start functions), charged to
/// the invocation's CPU time.
async fn instantiate<T>(
    fut: impl Future<Output = wasmtime::Result<T>>,
    cpu: &CpuCounter,
) -> Result<T, InvokeError> {
    CpuTimed::new(fut, cpu.clone())
        .await
        .map_err(instantiate_error)
}

fn instantiate_error(e: wasmtime::Error) -> InvokeError {
    let msg = format!("{e:#}");
    if msg.contains("maximum concurrent") || msg.contains("pooling allocator") {
        InvokeError::NoCapacity
    } else {
        InvokeError::Internal(format!("instantiating: {msg}"))
    }
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A body that fails, and raises a flag, once more than `limit` bytes of
/// data have passed through it.
struct Capped<B, E> {
    inner: B,
    seen: AtomicU64,
    limit: u64,
    overflow: Arc<AtomicBool>,
    error: fn(u64) -> E,
}

impl<B, E> Capped<B, E> {
    fn new(inner: B, limit: u64, overflow: Arc<AtomicBool>, error: fn(u64) -> E) -> Self {
        Capped {
            inner,
            seen: AtomicU64::new(0),
            limit,
            overflow,
            error,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin, E> Body for Capped<B, E> {
    type Data = Bytes;
    type Error = CappedError<B::Error, E>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let seen = this.seen.fetch_add(data.len() as u64, Ordering::Relaxed)
                        + data.len() as u64;
                    if seen > this.limit {
                        this.overflow.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(CappedError::Limit((this.error)(
                            this.limit,
                        )))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(CappedError::Inner(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

enum CappedError<I, E> {
    Inner(I),
    Limit(E),
}

impl<B> Capped<B, wasmtime_wasi_http::Error>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display,
{
    /// Incoming bodies: errors become what `wasi:http` reports to the guest.
    fn map_err_display(self) -> UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error> {
        let Capped {
            inner,
            seen,
            limit,
            overflow,
            error,
        } = self;
        Capped {
            inner: inner.boxed_unsync(),
            seen,
            limit,
            overflow,
            error,
        }
        .map_err(|e| match e {
            CappedError::Limit(e) => e,
            CappedError::Inner(e) => {
                tracing::debug!(error = %e, "request body read failed");
                wasmtime_wasi_http::Error::ConnectionTerminated
            }
        })
        .boxed_unsync()
    }
}

impl Capped<wasmtime_wasi_http::p2::body::HyperOutgoingBody, BoxError> {
    /// Outgoing bodies: errors become boxed errors for the server.
    fn map_err_box(self) -> HttpBody {
        self.map_err(|e| match e {
            CappedError::Limit(e) => e,
            CappedError::Inner(e) => BoxError::from(e.to_string()),
        })
        .boxed_unsync()
    }
}
