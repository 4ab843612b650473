//! Function lifecycle: deploy, versions, rollback, removal, and the status
//! of what is served — on this node alone, or through the fabric's registry.
//!
//! The local store is the node's own copy of the registry, so a node cut
//! off from the fabric keeps serving what it has. In a fabric, writes
//! (deploy, rollback, remove) go to the fabric registry first, by
//! compare-and-set on the function's record, then to the local copy; they
//! need the fabric. Every node follows the registry and applies what it
//! sees ([`Lifecycle::apply_registry`]).

use crate::artifacts::{Artifacts, unavailable};
use crate::asyncq::AsyncQueue;
use crate::caps::{Resolved, resolve};
use crate::error::{Error, Result};
use crate::function::{Function, Slo};
use crate::logs::LogHub;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::state::StateHomes;
use crate::state::Strictness;
use crate::usage::Usage;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use weft_manifest::{FieldError, FunctionSpec, ModuleRef, Name, NodeConfig};
use weft_mesh::{Mesh, MeshError, RegistryEvent};
use weft_runtime::Kind;
use weft_store::{FunctionRecord, Store, VersionRecord};

/// Local store metadata: set once this node has joined a fabric registry.
const JOINED_META: &str = "fabric_joined";
/// How often a registry write is retried after losing a race.
const CAS_ATTEMPTS: u32 = 8;

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
    /// What its last runs here took.
    pub learned: Learned,
    /// Its state, when it keeps one here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stateful: Option<StateShown>,
    /// Every version, oldest first.
    pub versions: Vec<VersionRecord>,
}

/// A function's state as this node keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct StateShown {
    /// `external`, `edge`, `function` or `client`.
    pub model: &'static str,
    /// Where an invocation's key comes from.
    pub key: String,
    /// The bucket the function opens.
    pub bucket: String,
    /// The store it lives in on this node.
    pub home: String,
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
    /// The deadline from arrival, milliseconds (fractional); the timeout
    /// when none is declared.
    pub deadline_ms: f64,
    /// Whether the deadline is declared (else it is the timeout).
    pub deadline_declared: bool,
    /// The first estimate of the execution time, milliseconds.
    pub expected_ms: Option<f64>,
    /// The percentile admission plans with.
    pub admission: String,
}

/// The execution profile of a function here: its last runs' wall times
/// (at most `weft_sched::PROFILE_WINDOW`), in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Learned {
    /// Runs in the window.
    pub runs: usize,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// The longest.
    pub max_ms: Option<f64>,
    /// At the percentile admission plans with.
    pub admission_ms: Option<f64>,
}

impl Learned {
    fn of(f: &Function) -> Learned {
        let p = f.profile();
        let ms = |us: u64| us as f64 / 1000.0;
        let s = p.summary().map(|s| s.map(ms));
        Learned {
            runs: p.len(),
            p50_ms: s.map(|s| s[0]),
            p90_ms: s.map(|s| s[1]),
            p99_ms: s.map(|s| s[2]),
            max_ms: s.map(|s| s[3]),
            admission_ms: p.percentile(f.slo().admission.fraction()).map(ms),
        }
    }
}

/// Everything a deploy, a rollback or a removal touches.
pub(crate) struct Lifecycle {
    pub(crate) registry: Arc<Registry>,
    store: Arc<Store>,
    artifacts: Arc<Artifacts>,
    config: Arc<NodeConfig>,
    kv: weft_kv::Stores,
    pub(crate) homes: StateHomes,
    mqtt: bool,
    max_memory: u64,
    fuel: bool,
    /// The scheduling quantum (the epoch tick): no deadline below it.
    quantum: Duration,
    metrics: Arc<Metrics>,
    logs: Arc<LogHub>,
    usage: Arc<Usage>,
    queue: Arc<AsyncQueue>,
    mesh: OnceLock<Arc<Mesh>>,
}

/// What a lifecycle needs from the node.
pub(crate) struct Parts {
    pub(crate) store: Arc<Store>,
    pub(crate) artifacts: Arc<Artifacts>,
    pub(crate) config: Arc<NodeConfig>,
    pub(crate) kv: weft_kv::Stores,
    pub(crate) homes: StateHomes,
    pub(crate) mqtt: bool,
    pub(crate) max_memory: u64,
    pub(crate) fuel: bool,
    pub(crate) quantum: Duration,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) logs: Arc<LogHub>,
    pub(crate) usage: Arc<Usage>,
    pub(crate) queue: Arc<AsyncQueue>,
}

impl Lifecycle {
    pub(crate) fn new(p: Parts) -> Self {
        Lifecycle {
            registry: Arc::new(Registry::default()),
            store: p.store,
            artifacts: p.artifacts,
            config: p.config,
            kv: p.kv,
            homes: p.homes,
            mqtt: p.mqtt,
            max_memory: p.max_memory,
            fuel: p.fuel,
            quantum: p.quantum,
            metrics: p.metrics,
            logs: p.logs,
            usage: p.usage,
            queue: p.queue,
            mesh: OnceLock::new(),
        }
    }

    pub(crate) fn set_mesh(&self, mesh: Arc<Mesh>) {
        let _ = self.mesh.set(mesh);
    }

    pub(crate) fn mesh(&self) -> Option<&Arc<Mesh>> {
        self.mesh.get()
    }

    /// Serves every function of the store (at start).
    pub(crate) fn install_stored(&self) -> Result<()> {
        for rec in self.store.list()? {
            self.install(&rec, None);
        }
        Ok(())
    }

    /// Makes `rec`'s active version the one served. `resolved` comes from a
    /// deploy's strict check; without it (restart, rollback, a registry
    /// record) the version is resolved leniently.
    fn install(&self, rec: &FunctionRecord, resolved: Option<Resolved>) {
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
                &self.homes,
                self.mqtt,
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
            self.metrics
                .for_function(&rec.name, resolved.state.as_ref().map(|s| s.model.as_str())),
            resolved,
        ));
        if let Some(old) = self.registry.insert(f) {
            self.artifacts.cool(&old);
        }
    }

    /// The function's deadline against what this node can do: at least one
    /// scheduling quantum, at most the timeout in force (the node's default
    /// when the spec sets none).
    fn check_slo(&self, spec: &FunctionSpec) -> std::result::Result<(), FieldError> {
        let Some(deadline) = spec.deadline else {
            return Ok(());
        };
        if let Some(why) = Slo::below_quantum(deadline.0, self.quantum) {
            return Err(FieldError::new(why).at("deadline"));
        }
        let timeout = spec.timeout.unwrap_or(self.config.defaults.timeout);
        if spec.timeout.is_none() && deadline > timeout {
            return Err(FieldError::new(format!(
                "{deadline} is longer than this node's default timeout of {timeout}: set `timeout` too"
            ))
            .at("deadline"));
        }
        Ok(())
    }

    /// Deploys a new version of `name` from an uploaded module. In a
    /// fabric the version is written to the fabric registry first (and the
    /// module to its object store): every node sees it.
    pub(crate) async fn deploy(&self, name: &str, spec: FunctionSpec) -> Result<FunctionStatus> {
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
        if let Some(m) = spec.memory
            && m.0 > self.max_memory
        {
            return Err(bad(
                "memory",
                format!(
                    "{m} is above this node's max_memory of {}",
                    weft_manifest::ByteSize(self.max_memory)
                ),
            ));
        }
        self.check_slo(&spec).map_err(invalid)?;
        if spec.fuel.is_some() && !self.fuel {
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
            &self.homes,
            self.mqtt,
            Strictness::Deploy,
        )?;
        self.check_routes(name.as_str(), &resolved.routes)?;
        let Some(module) = self.artifacts.module(&digest)? else {
            return Err(Error::ModuleNotFound {
                name: name.to_string(),
                digest,
            });
        };
        if !spec.args.is_empty() && Kind::parse(&module.kind) == Some(Kind::Http) {
            return Err(bad(
                "args",
                "an HTTP component takes no arguments (only commands do)".into(),
            ));
        }
        let rec = match self.mesh() {
            None => self
                .store
                .deploy(name.as_str(), &digest, &module.kind, &spec)?,
            Some(mesh) => {
                self.artifacts.share(mesh, &digest).await?;
                let rec = commit(mesh, name.as_str(), |existing| {
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
        let functions = self.registry.snapshot();
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

    /// Makes an earlier version active (fabric-wide in a fabric).
    pub(crate) async fn rollback(&self, name: &str, to: Option<u32>) -> Result<FunctionStatus> {
        let rec = match self.mesh() {
            None => self.store.rollback(name, to)?,
            Some(mesh) => {
                let rec = commit(mesh, name, |existing| {
                    let rec = existing.ok_or_else(|| Error::FunctionNotFound(name.to_string()))?;
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
    pub(crate) async fn remove(&self, name: &str) -> Result<FunctionRecord> {
        if let Some(mesh) = self.mesh() {
            let local = self.store.get(name)?;
            let shared = mesh.registry_get(name).await.map_err(unavailable)?;
            if shared.is_none() && local.is_none() {
                return Err(Error::FunctionNotFound(name.to_string()));
            }
            mesh.registry_delete(name).await.map_err(unavailable)?;
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
    fn remove_local(&self, name: &str) -> Result<FunctionRecord> {
        let rec = self.store.remove(name)?;
        if let Some(old) = self.registry.remove(name) {
            self.artifacts.cool(&old);
        }
        self.logs.forget(name);
        self.metrics.forget(name);
        match self.queue.remove_function_now(name) {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(function = %name, count = n, "queued invocations moved to the dead-letter list")
            }
            Err(e) => tracing::error!(function = %name, "dead-lettering queued invocations: {e}"),
        }
        self.usage.forget(name);
        tracing::info!(function = %name, "removed");
        Ok(rec)
    }

    /// One function's status.
    pub(crate) fn status(&self, name: &str) -> Result<FunctionStatus> {
        let rec = self
            .store
            .get(name)?
            .ok_or_else(|| Error::FunctionNotFound(name.to_string()))?;
        let f = self.registry.get(name)?;
        Ok(FunctionStatus {
            name: rec.name,
            kind: f.kind.as_str().to_string(),
            active: rec.active,
            state: if f.is_warm() { "warm" } else { "cold" },
            in_flight: f.in_flight(),
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
                deadline_ms: ms(f.slo.deadline),
                deadline_declared: f.slo.declared,
                expected_ms: f.slo.expected.map(ms),
                admission: f.slo.admission.to_string(),
            },
            learned: Learned::of(&f),
            stateful: f.state().map(|s| StateShown {
                model: s.model.as_str(),
                key: s.key.to_string(),
                bucket: s.label.clone(),
                home: s.home().to_string(),
            }),
            versions: rec.versions,
        })
    }

    /// Every function's status, by name.
    pub(crate) fn list(&self) -> Result<Vec<FunctionStatus>> {
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

    // ---- following the fabric's registry -----------------------------

    /// Applies a change of the fabric registry to this node.
    pub(crate) async fn apply_registry(&self, event: RegistryEvent) {
        match event {
            RegistryEvent::Put { key, value } => self.apply_record(&key, &value),
            RegistryEvent::Delete { key } => self.forget_function(&key),
            RegistryEvent::Snapshot(entries) => {
                let joined_before = matches!(self.store.meta(JOINED_META), Ok(Some(_)));
                let names: BTreeSet<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
                for (key, value) in &entries {
                    self.apply_record(key, value);
                }
                let local = self.store.list().unwrap_or_default();
                for rec in local {
                    if names.contains(rec.name.as_str()) {
                        continue;
                    }
                    if joined_before {
                        // Removed from the fabric while this node was away.
                        self.forget_function(&rec.name);
                    } else {
                        // A node joining for the first time brings its own.
                        self.offer_record(&rec).await;
                    }
                }
                if let Err(e) = self.store.set_meta(JOINED_META, "1") {
                    tracing::error!("fabric: recording the join: {e}");
                }
                tracing::info!(functions = entries.len(), "fabric: registry joined");
            }
        }
    }

    /// Puts a local function in the fabric registry, unless it is there.
    async fn offer_record(&self, rec: &FunctionRecord) {
        let Some(mesh) = self.mesh() else { return };
        for digest in rec.versions.iter().map(|v| &v.digest) {
            if let Err(e) = self.artifacts.share(mesh, digest).await {
                tracing::warn!(function = %rec.name, "fabric: sharing its module: {e}");
                return;
            }
        }
        let Ok(value) = serde_json::to_vec(rec) else {
            return;
        };
        match mesh.registry_put(&rec.name, value.into(), None).await {
            Ok(_) => tracing::info!(function = %rec.name, "fabric: function shared"),
            Err(MeshError::Conflict(_)) => {}
            Err(e) => tracing::warn!(function = %rec.name, "fabric: sharing: {e}"),
        }
    }

    fn apply_record(&self, key: &str, value: &[u8]) {
        let rec: FunctionRecord = match serde_json::from_slice(value) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(function = %key, "fabric: refused registry record of `{key}`: {e}");
                return;
            }
        };
        if let Err(e) = Name::new(key) {
            tracing::warn!(function = %key, "fabric: refused registry record under `{key}`: {e}");
            return;
        }
        if let Err(e) = rec.check(key) {
            tracing::warn!(function = %key, "fabric: refused registry record of `{key}`: {e}");
            return;
        }
        if matches!(self.store.get(key), Ok(Some(local)) if local == rec) {
            return;
        }
        if let Err(e) = self.store.put_record(&rec) {
            tracing::error!(function = %key, "fabric: storing the record: {e}");
            return;
        }
        self.install(&rec, None);
        tracing::info!(function = %key, version = rec.active, "fabric: function updated");
    }

    fn forget_function(&self, name: &str) {
        if matches!(self.store.get(name), Ok(Some(_))) {
            match self.remove_local(name) {
                Ok(_) => tracing::info!(function = %name, "fabric: function removed"),
                Err(e) => tracing::error!(function = %name, "fabric: removing: {e}"),
            }
        }
    }
}

/// Writes a function's record to the fabric registry: `change` maps the
/// registry's current record to the new one, retried when another node
/// wrote first. Returns the record written.
async fn commit(
    mesh: &Mesh,
    name: &str,
    change: impl Fn(Option<FunctionRecord>) -> Result<FunctionRecord>,
) -> Result<FunctionRecord> {
    for _ in 0..CAS_ATTEMPTS {
        let current = mesh.registry_get(name).await.map_err(unavailable)?;
        let (existing, rev) = match current {
            Some((bytes, rev)) => match serde_json::from_slice::<FunctionRecord>(&bytes) {
                Ok(r) => (Some(r), Some(rev)),
                Err(e) => {
                    tracing::warn!(function = %name, "fabric registry record unreadable ({e}); replaced");
                    (None, Some(rev))
                }
            },
            None => (None, None),
        };
        let rec = change(existing)?;
        let value = serde_json::to_vec(&rec)
            .map_err(|e| Error::Internal(format!("encoding the record: {e}")))?;
        match mesh.registry_put(name, value.into(), rev).await {
            Ok(_) => return Ok(rec),
            Err(MeshError::Conflict(_)) => continue,
            Err(e) => return Err(unavailable(e)),
        }
    }
    Err(Error::FabricUnavailable(format!(
        "`{name}` changed concurrently {CAS_ATTEMPTS} times; try again"
    )))
}

/// A duration in milliseconds, fractional.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
