//! The controller: function lifecycle (deploy, versions, rollback, removal),
//! warm and cold starts, scale to zero, admission, metering and logs.

use crate::caps::{Resolved, Strictness, resolve};
use crate::error::{Error, Result};
use crate::function::Function;
use crate::logs::{LogHub, LogLine};
use crate::metrics::{Metrics, OutcomeLabels};
use bytes::Bytes;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, broadcast};
use weft_codes::Code;
use weft_manifest::{FieldError, FunctionSpec, KvStoreConfig, ModuleRef, Name, NodeConfig};
use weft_queue::Queue;
use weft_runtime::{
    CallContext, Fabric, HttpBody, Invocation, InvokeError, Kind, Loaded, Outcome, Runtime,
    RuntimeConfig, Usage,
};
use weft_store::{FunctionRecord, ModuleRecord, Store, UsageTotals, VersionRecord};

/// How often usage deltas are written to the store.
const USAGE_FLUSH: Duration = Duration::from_secs(1);
/// How often idle functions are checked for scale to zero.
const REAP_EVERY: Duration = Duration::from_millis(100);

/// Why a request body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// It was longer than the function accepts.
    TooLarge,
    /// The client went away or sent something unreadable.
    Aborted(String),
}

/// Reads a request body with `read_body`, given the function's size limit,
/// within its timeout.
pub(crate) async fn read_request<F, Fut>(f: &Function, read_body: F) -> Result<Bytes>
where
    F: FnOnce(u64) -> Fut,
    Fut: Future<Output = std::result::Result<Bytes, BodyError>>,
{
    match tokio::time::timeout(f.limits.timeout, read_body(f.limits.max_request)).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => Err(body_error(f, e)),
        Err(_) => Err(Error::RequestBody {
            name: f.name.clone(),
            code: Code::RequestTimeout,
            message: format!(
                "the request body did not arrive within {} ms",
                f.limits.timeout.as_millis()
            ),
        }),
    }
}

pub(crate) fn body_error(f: &Function, e: BodyError) -> Error {
    match e {
        BodyError::TooLarge => Error::RequestBody {
            name: f.name.clone(),
            code: Code::RequestTooLarge,
            message: format!(
                "request body exceeds the limit of {} bytes",
                f.limits.max_request
            ),
        },
        BodyError::Aborted(m) => Error::RequestBody {
            name: f.name.clone(),
            code: Code::RequestAborted,
            message: format!("reading the request body failed: {m}"),
        },
    }
}

/// A trigger name that came as text (from the queue or a peer) as one of
/// the names an invocation may carry; anything else is `other`.
pub(crate) fn trigger_name(t: &str, other: &'static str) -> &'static str {
    const KNOWN: &[&str] = &[
        "http", "route", "cli", "cron", "mqtt", "topic", "call", "async",
    ];
    KNOWN.iter().find(|k| **k == t).copied().unwrap_or(other)
}

/// A finished run: its metadata and the whole response.
pub(crate) struct Ran {
    pub(crate) info: InvocationInfo,
    /// HTTP status (200 for commands).
    pub(crate) status: u16,
    /// Response headers of HTTP components.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
    /// CPU time of commands, µs (0 where not known).
    pub(crate) cpu_us: u64,
}

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

/// Why an invocation runs: its trigger and the call chain above it.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// `http`, `route`, `cli`, `async`, `cron`, `mqtt`, `topic` or `call`.
    pub trigger: &'static str,
    /// The route, topic, schedule or caller; may be empty.
    pub subject: String,
    /// Attempt of an asynchronous invocation, from 1.
    pub attempt: u32,
    /// Functions on the call stack above this one, outermost first.
    pub chain: Vec<String>,
    /// Functions that started the chain asynchronously, outermost first.
    pub ancestors: Vec<String>,
    /// The most time the invocation may take (the caller's remaining
    /// deadline), when less than the function's timeout.
    pub timeout_cap: Option<Duration>,
}

impl Origin {
    /// An origin with this trigger and subject, first attempt.
    pub fn new(trigger: &'static str, subject: impl Into<String>) -> Self {
        Origin {
            trigger,
            subject: subject.into(),
            attempt: 1,
            ..Origin::default()
        }
    }
}

/// A finished command invocation.
#[derive(Debug)]
pub struct CommandResponse {
    /// Who ran.
    pub info: InvocationInfo,
    /// The response body (the guest's stdout).
    pub body: Bytes,
    /// What it used.
    pub usage: Usage,
}

/// A function as listed by `weft ls`.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionStatus {
    /// The function.
    pub name: String,
    /// `command` or `http`.
    pub kind: String,
    /// The active version.
    pub active: u32,
    /// `warm` (compiled code in memory) or `cold` (scaled to zero).
    pub state: &'static str,
    /// Sandboxes running now.
    pub in_flight: u32,
    /// Invocations waiting for a slot.
    pub queued: u32,
    /// Whether `/fn/NAME` is open without a token beyond loopback.
    pub public: bool,
    /// The limits in force.
    pub limits: EffectiveLimits,
    /// Every version, oldest first.
    pub versions: Vec<VersionRecord>,
}

/// Limits in force for a function, after node defaults.
#[derive(Debug, Clone, Serialize)]
pub struct EffectiveLimits {
    /// Milliseconds.
    pub timeout_ms: u64,
    /// Bytes.
    pub memory: u64,
    /// Fuel per invocation, if metered.
    pub fuel: Option<u64>,
    /// Sandboxes at once.
    pub max_concurrency: u32,
    /// Waiting invocations.
    pub max_queue: u32,
    /// Milliseconds.
    pub idle_ttl_ms: u64,
    /// Bytes.
    pub max_request_size: u64,
    /// Bytes.
    pub max_response_size: u64,
}

/// The result of uploading a module.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleInfo {
    /// `sha256:<hex>`.
    pub module: String,
    /// `command` or `http`.
    pub kind: String,
    /// Bytes.
    pub size: u64,
    /// Whether this upload compiled it (false: it was cached).
    pub compiled: bool,
}

/// The controller of one node.
pub struct Controller {
    pub(crate) runtime: Arc<Runtime>,
    store: Arc<Store>,
    pub(crate) config: NodeConfig,
    pub(crate) functions: RwLock<HashMap<String, Arc<Function>>>,
    pub(crate) node_slots: Arc<Semaphore>,
    pub(crate) metrics: Metrics,
    logs: Arc<LogHub>,
    pending_usage: Mutex<BTreeMap<String, UsageTotals>>,
    invocation_seq: AtomicU64,
    id_prefix: String,
    pub(crate) draining: AtomicBool,
    in_flight: Arc<AtomicU64>,
    data_dir: PathBuf,
    /// Key-value stores by label.
    pub(crate) kv: weft_kv::Stores,
    /// The durable queue of asynchronous invocations.
    pub(crate) queue: Arc<Queue>,
    /// The MQTT client, when the node has a broker.
    pub(crate) mqtt: Option<weft_triggers::mqtt::Mqtt>,
    /// The router, as the guests' `weft:fabric` host.
    pub(crate) fabric: OnceLock<Arc<dyn Fabric>>,
    /// Woken when a sandbox slot frees, for the async dispatcher.
    pub(crate) slot_freed: Arc<Notify>,
    /// Woken when functions change, for the trigger tasks.
    pub(crate) changed: Arc<Notify>,
    /// MQTT subscriptions by function.
    pub(crate) mqtt_subs:
        tokio::sync::Mutex<HashMap<String, Vec<weft_triggers::mqtt::SubscriptionId>>>,
    /// The fabric, when the node joined one.
    pub(crate) mesh: OnceLock<Arc<weft_mesh::Mesh>>,
}

/// Counts a running invocation; undone on drop, whatever way it ends.
struct Running {
    function: Arc<Function>,
    node: Arc<AtomicU64>,
    freed: Arc<Notify>,
    live: prometheus_client::metrics::gauge::Gauge,
    _slot: OwnedSemaphorePermit,
    _node_slot: OwnedSemaphorePermit,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.function.touch();
        self.function.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.node.fetch_sub(1, Ordering::AcqRel);
        self.live.dec();
        self.freed.notify_one();
    }
}

impl Controller {
    /// Opens the node's data directory: the store, the artifact cache, the
    /// engine, the key-value stores, the async queue and the MQTT client.
    /// Functions start cold. Call [`Controller::start_background`] next.
    pub async fn open(data_dir: &Path, config: NodeConfig) -> Result<Arc<Controller>> {
        config
            .validate()
            .map_err(|e| Error::Internal(format!("node config: {e}")))?;
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::Internal(format!("creating {}: {e}", data_dir.display())))?;
        let rt_config = RuntimeConfig {
            max_instances: config
                .max_instances
                .unwrap_or(RuntimeConfig::default().max_instances),
            max_memory: config
                .max_memory
                .map_or(RuntimeConfig::default().max_memory, |m| m.0),
            fuel: config.fuel,
            ..RuntimeConfig::default()
        };
        let runtime = Runtime::new(rt_config, &data_dir.join("cache"))
            .map_err(|source| Error::Prepare { name: None, source })?;
        let store = Store::open(&data_dir.join("registry.redb"))?;
        let mut specs = BTreeMap::new();
        specs.insert("default".to_string(), weft_kv::BackendSpec::Embedded);
        for (label, kv) in &config.kv {
            let spec = match kv {
                KvStoreConfig::Embedded {} => weft_kv::BackendSpec::Embedded,
                KvStoreConfig::Redis { url, prefix } => weft_kv::BackendSpec::Redis {
                    url: url.clone(),
                    prefix: prefix.clone().unwrap_or_else(|| format!("weft:{label}:")),
                },
                KvStoreConfig::Fabric {} => weft_kv::BackendSpec::Deferred,
            };
            specs.insert(label.to_string(), spec);
        }
        let kv = weft_kv::Stores::open(
            &data_dir.join("kv.redb"),
            specs,
            weft_kv::KvLimits::default(),
        )
        .await
        .map_err(|e| Error::Internal(format!("key-value stores: {e}")))?;
        let q = &config.queue;
        let queue_path = data_dir.join("queue.redb");
        let queue_config = weft_queue::QueueConfig {
            max_pending: q.max_pending,
            max_pending_per_function: q.max_pending_per_function,
            result_ttl: q.result_ttl.0,
        };
        let queue = tokio::task::spawn_blocking(move || Queue::open(&queue_path, queue_config))
            .await
            .map_err(|e| Error::Internal(format!("queue task: {e}")))??;
        let mut prefix = [0u8; 4];
        getrandom::fill(&mut prefix).map_err(|e| Error::Internal(format!("entropy: {e}")))?;
        let node_id = match store.meta("node_id")? {
            Some(id) => id,
            None => {
                let mut b = [0u8; 6];
                getrandom::fill(&mut b).map_err(|e| Error::Internal(format!("entropy: {e}")))?;
                let id = hex::encode(b);
                store.set_meta("node_id", &id)?;
                id
            }
        };
        let mqtt = match &config.mqtt {
            Some(m) => Some(
                weft_triggers::mqtt::Mqtt::start(weft_triggers::mqtt::MqttConfig::new(
                    m.url.clone(),
                    m.client_id
                        .clone()
                        .unwrap_or_else(|| format!("weft-{node_id}")),
                ))
                .map_err(|e| Error::Internal(format!("mqtt: {e}")))?,
            ),
            None => None,
        };
        let c = Controller {
            node_slots: Arc::new(Semaphore::new(runtime.config().max_instances as usize)),
            runtime: Arc::new(runtime),
            store: Arc::new(store),
            config,
            functions: RwLock::new(HashMap::new()),
            metrics: Metrics::new(),
            logs: Arc::new(LogHub::new()),
            pending_usage: Mutex::new(BTreeMap::new()),
            invocation_seq: AtomicU64::new(0),
            id_prefix: hex::encode(prefix),
            draining: AtomicBool::new(false),
            in_flight: Arc::new(AtomicU64::new(0)),
            data_dir: data_dir.to_path_buf(),
            kv,
            queue,
            mqtt,
            fabric: OnceLock::new(),
            slot_freed: Arc::new(Notify::new()),
            changed: Arc::new(Notify::new()),
            mqtt_subs: tokio::sync::Mutex::new(HashMap::new()),
            mesh: OnceLock::new(),
        };
        for rec in c.store.list()? {
            c.install(&rec, None);
        }
        c.collect_garbage()?;
        let c = Arc::new(c);
        let router: Arc<dyn Fabric> = Arc::new(crate::router::Router::new(&c));
        let _ = c.fabric.set(router);
        Ok(c)
    }

    /// Starts the background tasks: scale to zero and usage persistence.
    pub fn start_background(self: &Arc<Self>) {
        crate::dispatch::start(self);
        crate::triggers::start(self);
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut reap = tokio::time::interval(REAP_EVERY);
            let mut flush = tokio::time::interval(USAGE_FLUSH);
            loop {
                tokio::select! {
                    _ = reap.tick() => {
                        let Some(c) = weak.upgrade() else { break };
                        c.scale_idle_to_zero();
                    }
                    _ = flush.tick() => {
                        let Some(c) = weak.upgrade() else { break };
                        c.flush_usage().await;
                    }
                }
            }
        });
    }

    /// The node's id: random, made at first start, kept in the store.
    pub fn node_id(&self) -> Result<String> {
        Ok(self.store.meta("node_id")?.unwrap_or_default())
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The node configuration in force.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Invocations running on the node now.
    pub(crate) fn in_flight_now(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The engine fingerprint keying compiled artifacts.
    pub fn engine_fingerprint(&self) -> &str {
        self.runtime.fingerprint()
    }

    /// Makes `rec`'s active version the one served. `resolved` comes from a
    /// deploy's strict check; without it (restart, rollback) the version is
    /// resolved leniently.
    pub(crate) fn install(&self, rec: &FunctionRecord, resolved: Option<Resolved>) {
        let Some(v) = rec.active_version() else {
            tracing::error!(function = %rec.name, active = rec.active, "active version missing; function not served");
            return;
        };
        let Some(kind) = Kind::parse(&v.kind) else {
            tracing::error!(function = %rec.name, kind = %v.kind, "unknown kind; function not served");
            return;
        };
        let resolved = match resolved {
            Some(r) => r,
            None => match resolve(
                &rec.name,
                &v.spec,
                &self.config,
                &self.kv,
                self.mqtt.is_some(),
                Strictness::Restart,
            ) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(function = %rec.name, "{e}; function not served");
                    return;
                }
            },
        };
        let f = Arc::new(Function::new(
            &rec.name,
            v.clone(),
            kind,
            &self.config.defaults,
            self.metrics.for_function(&rec.name),
            resolved,
        ));
        let old = self
            .functions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(rec.name.clone(), f);
        if let Some(old) = old
            && old.set_warm(None)
        {
            self.metrics.warm_functions.dec();
        }
        self.changed.notify_waiters();
    }

    /// Every function being served, at this moment.
    pub(crate) fn snapshot(&self) -> Vec<Arc<Function>> {
        self.functions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    pub(crate) fn function(&self, name: &str) -> Result<Arc<Function>> {
        self.functions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
            .ok_or_else(|| Error::FunctionNotFound(name.to_string()))
    }

    /// Deletes stored modules no function version references.
    fn collect_garbage(&self) -> Result<()> {
        let referenced = self.store.referenced_digests()?;
        let mut dropped = Vec::new();
        let stored = self
            .runtime
            .stored_modules()
            .map_err(|source| Error::Prepare { name: None, source })?;
        for digest in stored {
            if !referenced.contains(&digest) {
                self.runtime
                    .remove_module(&digest)
                    .map_err(|source| Error::Prepare { name: None, source })?;
                dropped.push(digest);
            }
        }
        for m in self.store.modules()? {
            if !referenced.contains(&m.digest) && !dropped.contains(&m.digest) {
                dropped.push(m.digest);
            }
        }
        if !dropped.is_empty() {
            tracing::info!(count = dropped.len(), "removed unreferenced modules");
            self.store.remove_modules(&dropped)?;
        }
        Ok(())
    }

    /// Validates, compiles (once) and stores a module. `for_function` names
    /// the function it is meant for, in errors.
    pub async fn upload_module(
        &self,
        bytes: Bytes,
        for_function: Option<&str>,
    ) -> Result<ModuleInfo> {
        let rt = self.runtime.clone();
        let before = rt.compilations();
        let prepared = tokio::task::spawn_blocking(move || rt.prepare(&bytes))
            .await
            .map_err(|e| Error::Internal(format!("compile task: {e}")))?
            .map_err(|source| Error::Prepare {
                name: for_function.map(str::to_string),
                source,
            })?;
        let compiled_now = self.runtime.compilations().saturating_sub(before);
        self.metrics.compilations.inc_by(compiled_now);
        if self.store.module(&prepared.digest)?.is_none() {
            self.store.put_module(&ModuleRecord {
                digest: prepared.digest.clone(),
                kind: prepared.kind.as_str().to_string(),
                size: prepared.size,
                stored_at: weft_store::now_ms(),
            })?;
        }
        Ok(ModuleInfo {
            module: format!("sha256:{}", prepared.digest),
            kind: prepared.kind.as_str().to_string(),
            size: prepared.size,
            compiled: prepared.compiled,
        })
    }

    /// Whether a module is stored.
    pub fn has_module(&self, digest: &str) -> Result<bool> {
        Ok(self.store.module(digest)?.is_some() && self.runtime.has_module(digest))
    }

    /// Deploys a new version of `name` from an uploaded module. In a
    /// fabric the version is written to the fabric registry first (and the
    /// module to its object store): every node sees it.
    pub async fn deploy(&self, name: &str, spec: FunctionSpec) -> Result<FunctionStatus> {
        let name = Name::new(name).map_err(Error::InvalidName)?;
        let invalid = |error: FieldError| Error::InvalidSpec {
            name: name.to_string(),
            error,
        };
        let bad = |field: &str, message: String| invalid(FieldError::new(message).at(field));
        spec.validate().map_err(invalid)?;
        let digest = match spec.module_ref() {
            ModuleRef::Digest(d) => d,
            ModuleRef::Path(p) => {
                return Err(bad(
                    "module",
                    format!("`{p}` is a path; the API takes `sha256:<hex>` of an uploaded module"),
                ));
            }
        };
        let max_memory = self.runtime.config().max_memory;
        if let Some(m) = spec.memory
            && m.0 > max_memory
        {
            return Err(bad(
                "memory",
                format!(
                    "{m} is above this node's max_memory of {}",
                    weft_manifest::ByteSize(max_memory)
                ),
            ));
        }
        if spec.fuel.is_some() && !self.runtime.config().fuel {
            return Err(bad(
                "fuel",
                "this node does not meter fuel (set `fuel = true` in the node config)".into(),
            ));
        }
        let resolved = resolve(
            name.as_str(),
            &spec,
            &self.config,
            &self.kv,
            self.mqtt.is_some(),
            Strictness::Deploy,
        )?;
        self.check_routes(name.as_str(), &resolved.routes)?;
        let Some(module) = self.store.module(&digest)? else {
            return Err(Error::ModuleNotFound {
                name: name.to_string(),
                digest,
            });
        };
        if !self.runtime.has_module(&digest) {
            return Err(Error::ModuleNotFound {
                name: name.to_string(),
                digest,
            });
        }
        if !spec.args.is_empty() && Kind::parse(&module.kind) == Some(Kind::Http) {
            return Err(Error::InvalidSpec {
                name: name.to_string(),
                error: FieldError::new("an HTTP component takes no arguments (only commands do)")
                    .at("args"),
            });
        }
        let rec = match self.mesh() {
            None => self
                .store
                .deploy(name.as_str(), &digest, &module.kind, &spec)?,
            Some(mesh) => {
                self.share_artifact(mesh, &digest).await?;
                let rec = self
                    .fabric_commit(mesh, name.as_str(), |existing| {
                        Ok(FunctionRecord::with_version(
                            existing,
                            name.as_str(),
                            &digest,
                            &module.kind,
                            &spec,
                            weft_store::now_ms(),
                        ))
                    })
                    .await?;
                self.store.put_record(&rec)?;
                rec
            }
        };
        self.install(&rec, Some(resolved));
        tracing::info!(function = %name, version = rec.active, module = %digest, "deployed");
        self.status(name.as_str())
    }

    /// Refuses routes another function serves.
    fn check_routes(&self, name: &str, routes: &[String]) -> Result<()> {
        let functions = self.snapshot();
        for r in routes {
            for f in &functions {
                if f.name != name && f.routes.contains(r) {
                    return Err(Error::RouteConflict {
                        name: name.to_string(),
                        route: r.clone(),
                        other: f.name.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The function serving `path` by a declared route, and the route: an
    /// exact route first, then the longest `/...` prefix.
    pub fn route(&self, path: &str) -> Option<(String, String)> {
        let mut best: Option<(usize, String, String)> = None;
        for f in self.snapshot() {
            for r in &f.routes {
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
                    best = Some((len, f.name.clone(), r.clone()));
                }
            }
        }
        best.map(|(_, f, r)| (f, r))
    }

    /// Makes an earlier version active (fabric-wide in a fabric).
    pub async fn rollback(&self, name: &str, to: Option<u32>) -> Result<FunctionStatus> {
        let rec = match self.mesh() {
            None => self.store.rollback(name, to)?,
            Some(mesh) => {
                let rec = self
                    .fabric_commit(mesh, name, |existing| {
                        let rec =
                            existing.ok_or_else(|| Error::FunctionNotFound(name.to_string()))?;
                        Ok(rec.rolled_back(to)?)
                    })
                    .await?;
                self.store.put_record(&rec)?;
                rec
            }
        };
        self.install(&rec, None);
        tracing::info!(function = %name, version = rec.active, "rolled back");
        self.status(name)
    }

    /// Removes a function and all its versions (fabric-wide in a fabric).
    pub async fn remove(&self, name: &str) -> Result<FunctionRecord> {
        if let Some(mesh) = self.mesh() {
            let local = self.store.get(name)?;
            let shared = mesh
                .registry_get(name)
                .await
                .map_err(crate::fabric::unavailable)?;
            if shared.is_none() && local.is_none() {
                return Err(Error::FunctionNotFound(name.to_string()));
            }
            mesh.registry_delete(name)
                .await
                .map_err(crate::fabric::unavailable)?;
            // This node's own registry follower may have removed it already.
            return match self.remove_local(name) {
                Err(Error::Store(weft_store::Error::FunctionNotFound(_))) => local
                    .or_else(|| shared.and_then(|(bytes, _)| serde_json::from_slice(&bytes).ok()))
                    .ok_or_else(|| Error::FunctionNotFound(name.to_string())),
                other => other,
            };
        }
        self.remove_local(name)
    }

    /// Removes a function from this node.
    pub(crate) fn remove_local(&self, name: &str) -> Result<FunctionRecord> {
        let rec = self.store.remove(name)?;
        let old = self
            .functions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        if let Some(old) = old
            && old.set_warm(None)
        {
            self.metrics.warm_functions.dec();
        }
        self.logs.forget(name);
        self.metrics.forget(name);
        self.changed.notify_waiters();
        match self.queue.remove_function(name) {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(function = %name, count = n, "queued invocations moved to the dead-letter list")
            }
            Err(e) => tracing::error!(function = %name, "dead-lettering queued invocations: {e}"),
        }
        self.pending_usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        tracing::info!(function = %name, "removed");
        Ok(rec)
    }

    /// One function's status.
    pub fn status(&self, name: &str) -> Result<FunctionStatus> {
        let rec = self
            .store
            .get(name)?
            .ok_or_else(|| Error::FunctionNotFound(name.to_string()))?;
        let f = self.function(name)?;
        Ok(FunctionStatus {
            name: rec.name,
            kind: f.kind.as_str().to_string(),
            active: rec.active,
            state: if f.warm().is_some() { "warm" } else { "cold" },
            in_flight: f.in_flight.load(Ordering::Relaxed),
            queued: f.waiting(),
            public: f.public,
            limits: EffectiveLimits {
                timeout_ms: f.limits.timeout.as_millis() as u64,
                memory: f.limits.memory,
                fuel: f.limits.fuel,
                max_concurrency: f.max_concurrency,
                max_queue: f.max_queue,
                idle_ttl_ms: f.idle_ttl.as_millis() as u64,
                max_request_size: f.limits.max_request,
                max_response_size: f.limits.max_response,
            },
            versions: rec.versions,
        })
    }

    /// Every function's status, by name.
    pub fn list(&self) -> Result<Vec<FunctionStatus>> {
        let mut out = Vec::new();
        for rec in self.store.list()? {
            match self.status(&rec.name) {
                Ok(s) => out.push(s),
                Err(Error::FunctionNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Whether a function's invocation route is public.
    pub fn is_public(&self, name: &str) -> bool {
        self.function(name).is_ok_and(|f| f.public)
    }

    pub(crate) fn next_invocation_id(&self) -> String {
        let n = self.invocation_seq.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n:08x}", self.id_prefix)
    }

    /// Admission: a slot of the function (queueing if needed), then a slot of
    /// the node, then the loaded function (cold start if scaled to zero).
    async fn begin(&self, name: &str) -> Result<(Arc<Function>, Running, Loaded, InvocationInfo)> {
        let (f, slot) = self.admit(name).await?;
        self.start(f, slot).await
    }

    /// First half of admission: a slot of the function, waiting in its
    /// bounded queue when all are busy.
    pub(crate) async fn admit(&self, name: &str) -> Result<(Arc<Function>, OwnedSemaphorePermit)> {
        if self.draining.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        let f = self.function(name)?;
        self.metrics.queued.inc();
        let slot = f.admit().await;
        self.metrics.queued.dec();
        let slot = slot.inspect_err(|e| self.reject(&f, e))?;
        Ok((f, slot))
    }

    /// Second half: a slot of the node, then the loaded function.
    async fn start(
        &self,
        f: Arc<Function>,
        slot: OwnedSemaphorePermit,
    ) -> Result<(Arc<Function>, Running, Loaded, InvocationInfo)> {
        let node_slot = self.node_slots.clone().try_acquire_owned().map_err(|_| {
            let e = Error::NodeAtCapacity {
                name: f.name.clone(),
                max: self.runtime.config().max_instances,
            };
            self.reject(&f, &e);
            e
        })?;
        f.in_flight.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.metrics.live_instances.inc();
        let running = Running {
            function: f.clone(),
            node: self.in_flight.clone(),
            freed: self.slot_freed.clone(),
            live: self.metrics.live_instances.clone(),
            _slot: slot,
            _node_slot: node_slot,
        };
        let (loaded, cold) = self.loaded(&f).await?;
        let info = InvocationInfo {
            id: self.next_invocation_id(),
            function: f.name.clone(),
            version: f.version.version,
            cold_start: cold,
        };
        if cold {
            f.metrics.cold.inc();
        } else {
            f.metrics.warm.inc();
        }
        Ok((f, running, loaded, info))
    }

    fn reject(&self, f: &Function, e: &Error) {
        self.metrics
            .rejections
            .get_or_create(&OutcomeLabels {
                function: f.name.clone(),
                outcome: e.code().as_str().into(),
            })
            .inc();
        self.pending_usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(f.name.clone())
            .or_default()
            .rejected += 1;
    }

    /// The function's pre-instantiated code: warm, or loaded from disk.
    async fn loaded(&self, f: &Function) -> Result<(Loaded, bool)> {
        if let Some(l) = f.warm() {
            return Ok((l, false));
        }
        let _guard = f.loading.lock().await;
        if let Some(l) = f.warm() {
            return Ok((l, false));
        }
        if !self.runtime.has_module(&f.version.digest) {
            self.fetch_artifact(&f.name, &f.version.digest).await?;
        }
        let rt = self.runtime.clone();
        let digest = f.version.digest.clone();
        let kind = f.kind;
        let loaded = tokio::task::spawn_blocking(move || rt.load(&digest))
            .await
            .map_err(|e| Error::Internal(format!("load task: {e}")))?
            .map_err(|source| Error::Prepare {
                name: Some(f.name.clone()),
                source,
            })?;
        if loaded.kind() != kind {
            return Err(Error::Internal(format!(
                "function `{}`: artifact {} is a {} function, the registry says {}",
                f.name,
                f.version.digest,
                loaded.kind().as_str(),
                kind.as_str()
            )));
        }
        if !f.set_warm(Some(loaded.clone())) {
            self.metrics.warm_functions.inc();
        }
        Ok((loaded, true))
    }

    pub(crate) fn invocation(
        &self,
        f: &Function,
        info: &InvocationInfo,
        origin: Origin,
    ) -> Invocation {
        let hub = self.logs.clone();
        let (name, id) = (f.name.clone(), info.id.clone());
        let mut chain = origin.chain;
        chain.push(f.name.clone());
        let mut limits = f.limits.clone();
        if let Some(cap) = origin.timeout_cap {
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
                trigger: origin.trigger.to_string(),
                subject: origin.subject,
                attempt: origin.attempt,
                chain,
                ancestors: origin.ancestors,
            }),
            fabric: self.fabric.get().cloned(),
        }
    }

    /// Records what an invocation used and how it ended.
    pub(crate) fn record(
        &self,
        f: &Function,
        info: &InvocationInfo,
        result: &Result<(), &InvokeError>,
        usage: &Usage,
    ) {
        let outcome = match result {
            Ok(()) => {
                f.metrics.ok.inc();
                "ok"
            }
            Err(e) => {
                self.metrics
                    .invocations
                    .get_or_create(&OutcomeLabels {
                        function: f.name.clone(),
                        outcome: e.code().as_str().into(),
                    })
                    .inc();
                e.code().as_str()
            }
        };
        f.metrics.duration.observe(usage.wall.as_secs_f64());
        f.observe_exec(usage.wall);
        f.metrics.cpu_seconds.inc_by(usage.cpu.as_secs_f64());
        {
            let mut pending = self
                .pending_usage
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let t = pending.entry(f.name.clone()).or_default();
            t.invocations += 1;
            t.errors += u64::from(result.is_err());
            t.cold_starts += u64::from(info.cold_start);
            t.cpu_ns += usage.cpu.as_nanos() as u64;
            t.wall_ns += usage.wall.as_nanos() as u64;
            t.memory_byte_seconds += usage.peak_memory as f64 * usage.wall.as_secs_f64();
            t.fuel += usage.fuel.unwrap_or(0);
        }
        tracing::debug!(
            target: "weft::invocation",
            function = %f.name,
            version = info.version,
            invocation = %info.id,
            cold = info.cold_start,
            outcome,
            wall_us = usage.wall.as_micros() as u64,
            cpu_us = usage.cpu.as_micros() as u64,
            peak_memory = usage.peak_memory,
            fuel = usage.fuel,
            "invocation"
        );
    }

    /// Runs a command function. Its stdin is read by `read_body`, given the
    /// function's request size limit, once the invocation holds one of the
    /// function's slots: so the bodies buffered at once are bounded by the
    /// functions' concurrency, never by the offered load.
    pub async fn invoke_command<F, Fut>(
        &self,
        name: &str,
        origin: Origin,
        read_body: F,
    ) -> Result<CommandResponse>
    where
        F: FnOnce(u64) -> Fut,
        Fut: Future<Output = Result<Bytes, BodyError>>,
    {
        let (f, slot) = self.admit(name).await?;
        if f.kind != Kind::Command {
            return Err(Error::Internal(format!(
                "function `{name}` is not a command"
            )));
        }
        let input = read_request(&f, read_body).await?;
        let (f, running, loaded, info) = self.start(f, slot).await?;
        let inv = self.invocation(&f, &info, origin);
        let Outcome { result, usage } = loaded.run_command(&self.runtime, input, inv).await;
        self.record(&f, &info, &result.as_ref().map(|_| ()), &usage);
        drop(running);
        match result {
            Ok(body) => Ok(CommandResponse { info, body, usage }),
            Err(source) => Err(Error::Invoke {
                name: f.name.clone(),
                invocation: info.id,
                source,
            }),
        }
    }

    /// The kind of a function.
    pub fn kind(&self, name: &str) -> Result<Kind> {
        Ok(self.function(name)?.kind)
    }

    /// Serves an HTTP request with an HTTP component.
    pub async fn invoke_http<B>(
        self: &Arc<Self>,
        name: &str,
        origin: Origin,
        req: http::Request<B>,
    ) -> Result<(InvocationInfo, http::Response<HttpBody>)>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let (f, running, loaded, info) = self.begin(name).await?;
        let inv = self.invocation(&f, &info, origin);
        let done = self.http_done(&f, &info, running, None);
        match loaded.serve_http(&self.runtime, req, inv, done).await {
            Ok(resp) => Ok((info, resp)),
            Err(source) => Err(Error::Invoke {
                name: f.name.clone(),
                invocation: info.id,
                source,
            }),
        }
    }

    /// Runs a function with `payload` as its request: a command's stdin, or
    /// the body of a request to an HTTP component (method and path from
    /// `meta`, default `POST /`; a status of 500 or more is a failure).
    /// Returns the response body. `id` overrides the invocation's id (an
    /// asynchronous invocation keeps its queue id).
    pub(crate) async fn run_payload(
        self: &Arc<Self>,
        f: Arc<Function>,
        slot: OwnedSemaphorePermit,
        payload: Bytes,
        origin: Origin,
        id: Option<String>,
        meta: &BTreeMap<String, String>,
    ) -> Result<(InvocationInfo, Bytes)> {
        let name = f.name.clone();
        let ran = self
            .run_payload_full(f, slot, payload, origin, id, meta)
            .await?;
        if ran.status >= 500 {
            return Err(Error::Invoke {
                name,
                invocation: ran.info.id,
                source: InvokeError::Handler(format!(
                    "the component answered {}: {}",
                    ran.status,
                    String::from_utf8_lossy(&ran.body[..ran.body.len().min(512)])
                )),
            });
        }
        Ok((ran.info, ran.body))
    }

    /// [`Controller::run_payload`] with the whole response: an HTTP
    /// component's status and headers are kept, whatever the status.
    pub(crate) async fn run_payload_full(
        self: &Arc<Self>,
        f: Arc<Function>,
        slot: OwnedSemaphorePermit,
        payload: Bytes,
        origin: Origin,
        id: Option<String>,
        meta: &BTreeMap<String, String>,
    ) -> Result<Ran> {
        if payload.len() as u64 > f.limits.max_request {
            return Err(body_error(&f, BodyError::TooLarge));
        }
        let (f, running, loaded, mut info) = self.start(f, slot).await?;
        if let Some(id) = id {
            info.id = id;
        }
        let inv = self.invocation(&f, &info, origin);
        let failed = |source| Error::Invoke {
            name: f.name.clone(),
            invocation: info.id.clone(),
            source,
        };
        match f.kind {
            Kind::Command => {
                let Outcome { result, usage } =
                    loaded.run_command(&self.runtime, payload, inv).await;
                self.record(&f, &info, &result.as_ref().map(|_| ()), &usage);
                drop(running);
                match result {
                    Ok(body) => Ok(Ran {
                        info,
                        status: 200,
                        headers: Vec::new(),
                        body,
                        cpu_us: usage.cpu.as_micros() as u64,
                    }),
                    Err(source) => Err(failed(source)),
                }
            }
            Kind::Http => {
                let method = meta.get("method").map_or("POST", String::as_str);
                let path = meta.get("path").map_or("/", String::as_str);
                let host = meta.get("host").map_or("localhost", String::as_str);
                let mut req = http::Request::builder()
                    .method(method)
                    .uri(format!("http://{host}{path}"))
                    .header(http::header::HOST, host);
                if let Some(ct) = meta.get("content-type") {
                    req = req.header(http::header::CONTENT_TYPE, ct);
                }
                let req = req
                    .header(http::header::CONTENT_LENGTH, payload.len())
                    .body(http_body_util::Full::new(payload))
                    .map_err(|e| Error::Internal(format!("building the request: {e}")))?;
                let (tx, rx) = tokio::sync::oneshot::channel();
                let done = self.http_done(&f, &info, running, Some(tx));
                let resp = loaded
                    .serve_http(&self.runtime, req, inv, done)
                    .await
                    .map_err(failed)?;
                let (parts, body) = resp.into_parts();
                let body = http_body_util::BodyExt::collect(body)
                    .await
                    .map_err(|e| failed(InvokeError::Handler(format!("response body: {e}"))))?
                    .to_bytes();
                if let Ok(Err(source)) = rx.await {
                    return Err(failed(source));
                }
                let headers = parts
                    .headers
                    .iter()
                    .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
                    .collect();
                Ok(Ran {
                    info,
                    status: parts.status.as_u16(),
                    headers,
                    body,
                    cpu_us: 0,
                })
            }
        }
    }

    /// What runs when an HTTP component's sandbox has ended: record the
    /// outcome, free the slot, and tell `ended` how it went.
    fn http_done(
        self: &Arc<Self>,
        f: &Arc<Function>,
        info: &InvocationInfo,
        running: Running,
        ended: Option<tokio::sync::oneshot::Sender<std::result::Result<(), InvokeError>>>,
    ) -> weft_runtime::HttpDone {
        let this = self.clone();
        let (f, info) = (f.clone(), info.clone());
        Box::new(move |outcome: Outcome<()>| {
            this.record(
                &f,
                &info,
                &outcome.result.as_ref().map(|_| ()),
                &outcome.usage,
            );
            drop(running);
            if let Some(tx) = ended {
                let _ = tx.send(outcome.result);
            }
        })
    }

    /// Drops the compiled code of functions idle past their TTL.
    fn scale_idle_to_zero(&self) {
        for f in self.snapshot() {
            if f.warm().is_some() && f.idle_expired() && f.set_warm(None) {
                self.metrics.warm_functions.dec();
                tracing::debug!(function = %f.name, "scaled to zero");
            }
        }
    }

    /// Writes pending usage to the store.
    pub async fn flush_usage(&self) {
        let deltas = std::mem::take(
            &mut *self
                .pending_usage
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if deltas.is_empty() {
            return;
        }
        let store = self.store.clone();
        let back = deltas.clone();
        let r = tokio::task::spawn_blocking(move || store.add_usage(&deltas)).await;
        if !matches!(r, Ok(Ok(()))) {
            tracing::error!("writing usage failed; keeping it for the next flush");
            let mut pending = self
                .pending_usage
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (k, v) in back {
                pending.entry(k).or_default().add(&v);
            }
        }
    }

    /// Usage totals by function: stored plus not yet flushed.
    pub fn usage(&self) -> Result<BTreeMap<String, UsageTotals>> {
        let mut totals = self.store.usage()?;
        let live: Vec<String> = self
            .functions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        for name in live {
            totals.entry(name).or_default();
        }
        for (k, v) in self
            .pending_usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            if let Some(t) = totals.get_mut(k) {
                t.add(v);
            }
        }
        Ok(totals)
    }

    /// Recent log lines of a function.
    pub fn logs(&self, name: &str, since: u64, limit: usize) -> Result<Vec<LogLine>> {
        self.function(name)?;
        Ok(self.logs.recent(name, since, limit))
    }

    /// Adds a line to a function's log, as the node (not the guest).
    pub(crate) fn log_line(&self, function: &str, invocation: &str, line: String) {
        tracing::info!(function = %function, invocation = %invocation, "{line}");
        self.logs
            .push(function, invocation, format!("[weft] {line}"));
    }

    /// Every new log line, of every function.
    pub fn follow_logs(&self) -> broadcast::Receiver<LogLine> {
        self.logs.subscribe()
    }

    /// Prometheus text of the node's metrics.
    pub fn metrics_text(&self) -> String {
        self.metrics.render()
    }

    /// Refuses new invocations and waits, up to `grace`, for running ones to
    /// finish; then persists usage. Returns how many were still running.
    pub async fn drain(&self, grace: Duration) -> u64 {
        self.draining.store(true, Ordering::Release);
        let until = Instant::now() + grace;
        while self.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.flush_usage().await;
        self.in_flight.load(Ordering::Acquire)
    }
}
