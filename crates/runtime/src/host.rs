//! Weft's host interfaces, linked into every component: `wasi:keyvalue`,
//! `wasi:config`, `wasi:logging` and `weft:fabric` (calls, topics,
//! invocation facts), from the WIT package in the repository's `wit/`.
//!
//! Everything is denied unless granted: a function reaches a store, config
//! key, callee or topic only if its [`Capabilities`] name it. A denial is an
//! error value the guest can handle, and a line in the invocation's log.

use crate::io::LogFn;
use bytes::Bytes;
use futures::future::BoxFuture;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use weft_kv::{Bucket, KvError};
use weft_manifest::{HostPattern, topic_matches};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "weft:fabric/node",
        imports: { default: async },
        with: {
            "wasi:keyvalue/store.bucket": super::BucketHandle,
        },
        require_store_data_send: true,
    });
}

use bindings::wasi::config0_2_0_draft::store as config;
use bindings::wasi::config0_2_0_rc_1::store as config_rc1;
use bindings::wasi::keyvalue::{atomics, batch, store};
use bindings::wasi::logging::logging;
use bindings::weft::fabric::{call, durable, invocation, topics, types};

/// What a function may use beyond its sandbox, resolved when it is
/// deployed from its manifest and the node's configuration.
#[derive(Clone, Default)]
pub struct Capabilities {
    /// Key-value stores by label: the ones the function declared.
    pub stores: BTreeMap<String, Arc<dyn Bucket>>,
    /// `wasi:config` values.
    pub config: BTreeMap<String, String>,
    /// Where outbound HTTP may go.
    pub outbound: Vec<HostPattern>,
    /// Functions it may call.
    pub calls: BTreeSet<String>,
    /// Topic patterns it may publish on.
    pub publishes: Vec<String>,
}

impl std::fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capabilities")
            .field("stores", &self.stores.keys().collect::<Vec<_>>())
            .field("config", &self.config.keys().collect::<Vec<_>>())
            .field("outbound", &self.outbound)
            .field("calls", &self.calls)
            .field("publishes", &self.publishes)
            .finish()
    }
}

/// What brought an invocation; a guest reads its name from
/// `weft:fabric/invocation.trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Trigger {
    /// `/fn/NAME` over HTTP (and `weft invoke`).
    Http,
    /// A route the function declares.
    Route,
    /// Code that holds the node in-process (benchmarks, tests).
    #[default]
    Cli,
    /// An asynchronous request (`Prefer: respond-async`, `weft invoke --async`).
    Async,
    /// A cron schedule.
    Cron,
    /// An MQTT message.
    Mqtt,
    /// An event on an internal topic.
    Topic,
    /// Another function (`weft:fabric/call`), synchronously or not.
    Call,
    /// Another node, with no trigger this node knows.
    Fabric,
    /// A step of a workflow run: its id is the step's idempotency key
    /// (`RUN.STEP`, the same on every attempt), its subject
    /// `WORKFLOW/STEP`.
    Workflow,
}

impl Trigger {
    /// Every trigger.
    pub const ALL: [Trigger; 10] = [
        Trigger::Http,
        Trigger::Route,
        Trigger::Cli,
        Trigger::Async,
        Trigger::Cron,
        Trigger::Mqtt,
        Trigger::Topic,
        Trigger::Call,
        Trigger::Fabric,
        Trigger::Workflow,
    ];

    /// Its name, as guests, queue records and peers see it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Trigger::Http => "http",
            Trigger::Route => "route",
            Trigger::Cli => "cli",
            Trigger::Async => "async",
            Trigger::Cron => "cron",
            Trigger::Mqtt => "mqtt",
            Trigger::Topic => "topic",
            Trigger::Call => "call",
            Trigger::Fabric => "fabric",
            Trigger::Workflow => "workflow",
        }
    }

    /// The trigger named `s`, if it is one.
    pub fn parse(s: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Who is running and why: the facts `weft:fabric/invocation` reports, and
/// the call chain the router checks for cycles and depth.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The invocation's id.
    pub id: String,
    /// What brought it.
    pub trigger: Trigger,
    /// The trigger's subject (topic, schedule, route, caller), or empty.
    pub subject: String,
    /// Attempt of an asynchronous invocation, from 1.
    pub attempt: u32,
    /// The functions on the (synchronous) call stack, outermost first, this
    /// one last.
    pub chain: Vec<String>,
    /// The functions that started this chain asynchronously (by an event
    /// or an async call), outermost first: counted for depth, not cycles.
    pub ancestors: Vec<String>,
    /// When its deadline falls: what its callees inherit.
    pub due: Option<std::time::Instant>,
    /// The key whose state it runs with: what its callees inherit.
    pub state_key: Option<String>,
    /// What the chain of calls carries for the node (a client's state),
    /// handed on to callees; opaque here.
    pub chain_state: Option<ChainState>,
}

/// Something a chain of calls carries for the node, opaque to the runtime.
#[derive(Clone)]
pub struct ChainState(pub Arc<dyn std::any::Any + Send + Sync>);

impl std::fmt::Debug for ChainState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainState")
    }
}

/// The class of a [`FabricError`]; mirrors `weft:fabric/types.error-code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FabricCode {
    /// Not declared by the manifest.
    Denied,
    /// No such function.
    NotFound,
    /// The callee is already on the call stack.
    Cycle,
    /// The call chain is as deep as allowed.
    TooDeep,
    /// No time left.
    DeadlineExceeded,
    /// The callee is at its limits.
    Busy,
    /// The callee failed.
    Failed,
    /// A payload is too large.
    TooLarge,
    /// The node cannot take the work now.
    Unavailable,
    /// A fault of the node.
    Internal,
}

/// Why a call, async call or publish failed.
#[derive(Debug, Clone)]
pub struct FabricError {
    /// The class.
    pub code: FabricCode,
    /// What went wrong, naming the function or topic.
    pub message: String,
}

impl FabricError {
    /// An error of class `code`.
    pub fn new(code: FabricCode, message: impl Into<String>) -> Self {
        FabricError {
            code,
            message: message.into(),
        }
    }
}

/// The node's side of `weft:fabric`: implemented by the router, which
/// decides where work runs.
pub trait Fabric: Send + Sync {
    /// Runs `callee` with `payload` and returns its response. `deadline` is
    /// the caller's; the callee gets at most what is left of it.
    fn call(
        &self,
        from: &CallContext,
        deadline: Instant,
        callee: &str,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, FabricError>>;
    /// Queues an asynchronous invocation of `callee`; returns its id once
    /// durably queued.
    fn call_async(
        &self,
        from: &CallContext,
        callee: &str,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<String, FabricError>>;
    /// Publishes an event; returns once every subscriber's invocation is
    /// durably queued.
    fn publish(
        &self,
        from: &CallContext,
        topic: &str,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<(), FabricError>>;
    /// The workflow engine, if the node runs one.
    fn durable(&self) -> Option<Arc<dyn Durable>>;
}

/// One operation of `weft:fabric/durable`, asked by a workflow's
/// orchestrator; each names its step.
#[derive(Debug, Clone)]
pub enum DurableOp {
    /// Run `function` with `payload` as step `name` (or answer its record).
    Call {
        /// The step.
        name: String,
        /// The function it runs.
        function: String,
        /// Its request.
        payload: Bytes,
    },
    /// The value recorded as step `name`, if any.
    Recorded {
        /// The step.
        name: String,
    },
    /// Record `value` as step `name`.
    Record {
        /// The step.
        name: String,
        /// The value.
        value: Bytes,
    },
    /// Sleep `ms` from the first time the run reaches step `name`.
    Sleep {
        /// The step.
        name: String,
        /// How long.
        ms: u64,
    },
    /// Wait for event `name`, at most `timeout_ms` from the first time.
    AwaitEvent {
        /// The step, and the event.
        name: String,
        /// How long at most; `None`: without end.
        timeout_ms: Option<u64>,
    },
}

/// Why a durable operation did not answer a value.
#[derive(Debug, Clone)]
pub enum DurableError {
    /// The step failed, or the operation was refused.
    Failed(FabricError),
    /// The run waits: the orchestrator should return at once.
    Suspended,
}

/// The node's side of `weft:fabric/durable`: the workflow engine's.
pub trait Durable: Send + Sync {
    /// Answers `op` for the orchestrator running under `from`: the step's
    /// value (`None` where the operation has none: a sleep, a step not
    /// recorded, an event that did not come).
    fn durable(
        &self,
        from: &CallContext,
        op: DurableOp,
    ) -> BoxFuture<'static, Result<Option<Bytes>, DurableError>>;
}

/// An open bucket, held in the sandbox's resource table.
#[allow(unreachable_pub)] // named by the generated bindings
pub struct BucketHandle {
    bucket: Arc<dyn Bucket>,
}

/// Per-sandbox state of the host interfaces.
pub(crate) struct HostCtx {
    pub(crate) function: String,
    pub(crate) caps: Arc<Capabilities>,
    /// The invocation's state bucket, opened by its label.
    pub(crate) state: Option<Arc<dyn Bucket>>,
    pub(crate) context: Arc<CallContext>,
    pub(crate) fabric: Option<Arc<dyn Fabric>>,
    pub(crate) log: LogFn,
    pub(crate) deadline: Instant,
    /// Bytes of `wasi:logging` lines left before the log limit.
    pub(crate) log_budget: u64,
}

impl HostCtx {
    /// Logs a denial, in the invocation's log and the node's.
    pub(crate) fn denied(&self, what: &str) {
        let line = format!("denied: {what}");
        tracing::warn!(function = %self.function, "{line}");
        (self.log)(line);
    }
}

/// The view the generated traits are implemented on.
pub(crate) struct HostView<'a> {
    pub(crate) ctx: &'a mut HostCtx,
    pub(crate) table: &'a mut ResourceTable,
}

struct HasHost;
impl HasData for HasHost {
    type Data<'a> = HostView<'a>;
}

/// Adds every Weft host interface to a component linker.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> HostView<'_>,
) -> wasmtime::Result<()> {
    bindings::Node::add_to_linker::<T, HasHost>(linker, view)
}

fn kv_error(e: KvError) -> store::Error {
    store::Error::Other(format!("{}: {e}", e.code()))
}

impl HostView<'_> {
    fn bucket(&self, r: &Resource<BucketHandle>) -> Result<Arc<dyn Bucket>, store::Error> {
        self.table
            .get(r)
            .map(|h| h.bucket.clone())
            .map_err(|e| store::Error::Other(format!("bad bucket handle: {e}")))
    }
}

impl store::Host for HostView<'_> {
    async fn open(&mut self, identifier: String) -> Result<Resource<BucketHandle>, store::Error> {
        let state = self
            .ctx
            .state
            .as_ref()
            .filter(|s| s.label() == identifier)
            .cloned();
        let Some(bucket) = state.or_else(|| self.ctx.caps.stores.get(&identifier).cloned()) else {
            self.ctx.denied(&format!(
                "key-value store `{identifier}` is not declared by function `{}` \
                 (add it to key_value_stores)",
                self.ctx.function
            ));
            return Err(store::Error::AccessDenied);
        };
        self.table
            .push(BucketHandle { bucket })
            .map_err(|e| store::Error::Other(format!("too many open buckets: {e}")))
    }
}

impl store::HostBucket for HostView<'_> {
    async fn get(
        &mut self,
        b: Resource<BucketHandle>,
        key: String,
    ) -> Result<Option<Vec<u8>>, store::Error> {
        self.bucket(&b)?.get(&key).await.map_err(kv_error)
    }

    async fn set(
        &mut self,
        b: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), store::Error> {
        self.bucket(&b)?.set(&key, &value).await.map_err(kv_error)
    }

    async fn delete(&mut self, b: Resource<BucketHandle>, key: String) -> Result<(), store::Error> {
        self.bucket(&b)?.delete(&key).await.map_err(kv_error)
    }

    async fn exists(
        &mut self,
        b: Resource<BucketHandle>,
        key: String,
    ) -> Result<bool, store::Error> {
        self.bucket(&b)?.exists(&key).await.map_err(kv_error)
    }

    async fn list_keys(
        &mut self,
        b: Resource<BucketHandle>,
        cursor: Option<u64>,
    ) -> Result<store::KeyResponse, store::Error> {
        let page = self.bucket(&b)?.list_keys(cursor).await.map_err(kv_error)?;
        Ok(store::KeyResponse {
            keys: page.keys,
            cursor: page.cursor,
        })
    }

    async fn drop(&mut self, b: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

impl atomics::Host for HostView<'_> {
    async fn increment(
        &mut self,
        b: Resource<BucketHandle>,
        key: String,
        delta: u64,
    ) -> Result<u64, store::Error> {
        self.bucket(&b)?
            .increment(&key, delta)
            .await
            .map_err(kv_error)
    }
}

impl batch::Host for HostView<'_> {
    async fn get_many(
        &mut self,
        b: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, store::Error> {
        self.bucket(&b)?.get_many(&keys).await.map_err(kv_error)
    }

    async fn set_many(
        &mut self,
        b: Resource<BucketHandle>,
        entries: Vec<(String, Vec<u8>)>,
    ) -> Result<(), store::Error> {
        self.bucket(&b)?.set_many(&entries).await.map_err(kv_error)
    }

    async fn delete_many(
        &mut self,
        b: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Result<(), store::Error> {
        self.bucket(&b)?.delete_many(&keys).await.map_err(kv_error)
    }
}

impl HostView<'_> {
    /// `wasi:config` `get`, whatever the revision: a declared key's value,
    /// or the denial's message.
    fn config_value(&self, key: &str) -> Result<String, String> {
        match self.ctx.caps.config.get(key) {
            Some(v) => Ok(v.clone()),
            None => {
                let what = format!(
                    "config key `{key}` is not declared by function `{}`",
                    self.ctx.function
                );
                self.ctx.denied(&what);
                Err(what)
            }
        }
    }

    fn config_all(&self) -> Vec<(String, String)> {
        self.ctx
            .caps
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl config::Host for HostView<'_> {
    async fn get(&mut self, key: String) -> Result<Option<String>, config::Error> {
        self.config_value(&key)
            .map(Some)
            .map_err(config::Error::Upstream)
    }

    async fn get_all(&mut self) -> Result<Vec<(String, String)>, config::Error> {
        Ok(self.config_all())
    }
}

impl config_rc1::Host for HostView<'_> {
    async fn get(&mut self, key: String) -> Result<Option<String>, config_rc1::Error> {
        self.config_value(&key)
            .map(Some)
            .map_err(config_rc1::Error::Upstream)
    }

    async fn get_all(&mut self) -> Result<Vec<(String, String)>, config_rc1::Error> {
        Ok(self.config_all())
    }
}

impl logging::Host for HostView<'_> {
    async fn log(&mut self, level: logging::Level, context: String, message: String) {
        let level = match level {
            logging::Level::Trace => "TRACE",
            logging::Level::Debug => "DEBUG",
            logging::Level::Info => "INFO",
            logging::Level::Warn => "WARN",
            logging::Level::Error => "ERROR",
            logging::Level::Critical => "CRITICAL",
        };
        let line = if context.is_empty() {
            format!("{level} {message}")
        } else {
            format!("{level} {context}: {message}")
        };
        let len = line.len() as u64;
        if self.ctx.log_budget == 0 {
            return;
        }
        if len > self.ctx.log_budget {
            self.ctx.log_budget = 0;
            (self.ctx.log)("[log limit reached; further lines dropped]".to_string());
            return;
        }
        self.ctx.log_budget -= len;
        (self.ctx.log)(line);
    }
}

impl types::Host for HostView<'_> {}

fn wit_error(e: FabricError) -> types::Error {
    let code = match e.code {
        FabricCode::Denied => types::ErrorCode::Denied,
        FabricCode::NotFound => types::ErrorCode::NotFound,
        FabricCode::Cycle => types::ErrorCode::Cycle,
        FabricCode::TooDeep => types::ErrorCode::TooDeep,
        FabricCode::DeadlineExceeded => types::ErrorCode::DeadlineExceeded,
        FabricCode::Busy => types::ErrorCode::Busy,
        FabricCode::Failed => types::ErrorCode::Failed,
        FabricCode::TooLarge => types::ErrorCode::TooLarge,
        FabricCode::Unavailable => types::ErrorCode::Unavailable,
        FabricCode::Internal => types::ErrorCode::Internal,
    };
    types::Error {
        code,
        message: e.message,
    }
}

impl HostView<'_> {
    /// The fabric, if the callee is declared; a denial otherwise.
    fn may_call(&self, callee: &str) -> Result<Arc<dyn Fabric>, types::Error> {
        if !self.ctx.caps.calls.contains(callee) {
            let what = format!(
                "call to function `{callee}` is not declared by function `{}` (add it to calls)",
                self.ctx.function
            );
            self.ctx.denied(&what);
            return Err(wit_error(FabricError::new(FabricCode::Denied, what)));
        }
        self.fabric()
    }

    fn fabric(&self) -> Result<Arc<dyn Fabric>, types::Error> {
        self.ctx.fabric.clone().ok_or_else(|| {
            wit_error(FabricError::new(
                FabricCode::Unavailable,
                "this sandbox is not connected to a node",
            ))
        })
    }
}

impl call::Host for HostView<'_> {
    async fn call(&mut self, function: String, payload: Vec<u8>) -> Result<Vec<u8>, types::Error> {
        let fabric = self.may_call(&function)?;
        let out = fabric
            .call(
                &self.ctx.context,
                self.ctx.deadline,
                &function,
                payload.into(),
            )
            .await
            .map_err(wit_error)?;
        Ok(out.to_vec())
    }

    async fn call_async(
        &mut self,
        function: String,
        payload: Vec<u8>,
    ) -> Result<String, types::Error> {
        let fabric = self.may_call(&function)?;
        fabric
            .call_async(&self.ctx.context, &function, payload.into())
            .await
            .map_err(wit_error)
    }
}

impl topics::Host for HostView<'_> {
    async fn publish(&mut self, topic: String, payload: Vec<u8>) -> Result<(), types::Error> {
        if let Err(e) = weft_manifest::validate_topic(&topic) {
            return Err(wit_error(FabricError::new(
                FabricCode::Denied,
                e.to_string(),
            )));
        }
        if !self
            .ctx
            .caps
            .publishes
            .iter()
            .any(|p| topic_matches(p, &topic))
        {
            let what = format!(
                "publishing on topic `{topic}` is not declared by function `{}` (add it to publishes)",
                self.ctx.function
            );
            self.ctx.denied(&what);
            return Err(wit_error(FabricError::new(FabricCode::Denied, what)));
        }
        let fabric = self.fabric()?;
        fabric
            .publish(&self.ctx.context, &topic, payload.into())
            .await
            .map_err(wit_error)
    }
}

impl durable::Host for HostView<'_> {
    async fn call(
        &mut self,
        name: String,
        function: String,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, durable::DurableError> {
        self.may_call(&function)
            .map_err(durable::DurableError::Failed)?;
        let op = DurableOp::Call {
            name,
            function,
            payload: payload.into(),
        };
        Ok(self.durable(op).await?.unwrap_or_default().to_vec())
    }

    async fn recorded(&mut self, name: String) -> Result<Option<Vec<u8>>, durable::DurableError> {
        let out = self.durable(DurableOp::Recorded { name }).await?;
        Ok(out.map(|b| b.to_vec()))
    }

    async fn save(
        &mut self,
        name: String,
        value: Vec<u8>,
    ) -> Result<Vec<u8>, durable::DurableError> {
        let op = DurableOp::Record {
            name,
            value: value.into(),
        };
        Ok(self.durable(op).await?.unwrap_or_default().to_vec())
    }

    async fn sleep(&mut self, name: String, ms: u64) -> Result<(), durable::DurableError> {
        self.durable(DurableOp::Sleep { name, ms }).await?;
        Ok(())
    }

    async fn await_event(
        &mut self,
        name: String,
        timeout_ms: Option<u64>,
    ) -> Result<Option<Vec<u8>>, durable::DurableError> {
        let out = self
            .durable(DurableOp::AwaitEvent { name, timeout_ms })
            .await?;
        Ok(out.map(|b| b.to_vec()))
    }
}

impl HostView<'_> {
    /// Hands `op` to the node's workflow engine.
    fn durable(
        &self,
        op: DurableOp,
    ) -> impl Future<Output = Result<Option<Bytes>, durable::DurableError>> + Send + 'static {
        let engine = self
            .fabric()
            .map_err(durable::DurableError::Failed)
            .and_then(|f| {
                f.durable().ok_or_else(|| {
                    durable::DurableError::Failed(wit_error(FabricError::new(
                        FabricCode::Unavailable,
                        "this node runs no workflows",
                    )))
                })
            });
        let answer = engine.map(|e| e.durable(&self.ctx.context, op));
        async move {
            answer?.await.map_err(|e| match e {
                DurableError::Failed(e) => durable::DurableError::Failed(wit_error(e)),
                DurableError::Suspended => durable::DurableError::Suspended,
            })
        }
    }
}

impl invocation::Host for HostView<'_> {
    async fn id(&mut self) -> String {
        self.ctx.context.id.clone()
    }

    async fn function(&mut self) -> String {
        self.ctx.function.clone()
    }

    async fn trigger(&mut self) -> String {
        self.ctx.context.trigger.as_str().to_string()
    }

    async fn subject(&mut self) -> String {
        self.ctx.context.subject.clone()
    }

    async fn deadline_left_ms(&mut self) -> u64 {
        self.ctx
            .deadline
            .saturating_duration_since(Instant::now())
            .as_millis() as u64
    }

    async fn attempt(&mut self) -> u32 {
        self.ctx.context.attempt.max(1)
    }
}
