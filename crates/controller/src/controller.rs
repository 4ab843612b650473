//! The controller of one node: the parts by responsibility, opened together
//! and reached through one handle. Where an invocation runs, and why, is
//! decided above it, by the router; the controller admits, runs and records
//! what the router hands it, and keeps the functions' lifecycle.

use crate::actor::Actors;
use crate::admission::{Admission, Booking, FunctionSlot, Reservation, SlotFreed};
use crate::artifacts::{Artifacts, ModuleInfo};
use crate::asyncq::AsyncQueue;
use crate::client_state::ClientStates;
use crate::error::{Error, Result};
use crate::exec::{Executor, Input, Ran, RunContext};
use crate::function::{DeadlineOutcome, Function};
use crate::lifecycle::{FunctionStatus, Lifecycle, Parts};
use crate::logs::{LogHub, LogLine};
use crate::metrics::Metrics;
use crate::state::{NODE_STATE, StateHomes};
use crate::usage::Usage;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Notify, broadcast};
use weft_manifest::{FunctionSpec, KvStoreConfig, NodeConfig};
use weft_mesh::{Mesh, RegistryEvent};
use weft_queue::{Accepted, AfterFailure, Claimed, Failure, NewInvocation, Queue, Record};
use weft_runtime::{Fabric, Runtime, RuntimeConfig};
use weft_store::{FunctionRecord, Store, UsageTotals};

/// How often usage deltas are written to the store.
const USAGE_FLUSH: Duration = Duration::from_secs(1);
/// How often idle functions are checked for scale to zero.
const REAP_EVERY: Duration = Duration::from_millis(100);
/// How often finished queue records past their TTL are dropped.
const QUEUE_GC_EVERY: Duration = Duration::from_secs(60);

/// The controller of one node.
pub struct Controller {
    config: Arc<NodeConfig>,
    data_dir: PathBuf,
    runtime: Arc<Runtime>,
    store: Arc<Store>,
    kv: weft_kv::Stores,
    metrics: Arc<Metrics>,
    logs: Arc<LogHub>,
    usage: Arc<Usage>,
    artifacts: Arc<Artifacts>,
    lifecycle: Lifecycle,
    admission: Admission,
    exec: Executor,
    queue: Arc<AsyncQueue>,
    /// The platform's own store: actors' checkpoints, client states' seal
    /// and versions, workflow runs' journals.
    platform: Arc<dyn weft_kv::Bucket>,
    /// Round trip to each store, µs, a moving average of the probes.
    store_rtts: parking_lot::Mutex<BTreeMap<String, f64>>,
}

/// The embedded table behind a `backend = "node"` store on the node that
/// keeps it (a name no `[kv]` label can take).
fn kept_label(label: &str) -> String {
    format!("weft.node.{label}")
}

fn entropy<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| Error::Internal(format!("entropy: {e}")))?;
    Ok(b)
}

impl Controller {
    /// Opens the node's data directory: the store, the artifact cache, the
    /// engine, the key-value stores and the async queue; serves what the
    /// store holds (cold). Call [`Controller::start_background`] next.
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
            scheduler: config.scheduler,
            workers: config
                .workers
                .map_or_else(weft_runtime::default_workers, |w| w as usize),
            ..RuntimeConfig::default()
        };
        let runtime = Arc::new(
            Runtime::new(rt_config, &data_dir.join("cache"))
                .map_err(|source| Error::Prepare { name: None, source })?,
        );
        let store = Arc::new(Store::open(&data_dir.join("registry.redb"))?);
        let mut specs = BTreeMap::new();
        specs.insert("default".to_string(), weft_kv::BackendSpec::Embedded);
        specs.insert(NODE_STATE.to_string(), weft_kv::BackendSpec::Embedded);
        for (label, kv) in &config.kv {
            let spec = match kv {
                KvStoreConfig::Embedded {} => weft_kv::BackendSpec::Embedded,
                KvStoreConfig::Redis { url, prefix } => weft_kv::BackendSpec::Redis {
                    url: url.clone(),
                    prefix: prefix.clone().unwrap_or_else(|| format!("weft:{label}:")),
                },
                KvStoreConfig::Fabric {} => weft_kv::BackendSpec::Deferred,
                KvStoreConfig::Node { .. } => {
                    // Kept here if this node is the one named (known once
                    // it joins): its table is ready either way.
                    specs.insert(kept_label(label.as_str()), weft_kv::BackendSpec::Embedded);
                    weft_kv::BackendSpec::Deferred
                }
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
        if store.meta("node_id")?.is_none() {
            store.set_meta("node_id", &hex::encode(entropy::<6>()?))?;
        }
        let metrics = Arc::new(Metrics::new());
        let logs = Arc::new(LogHub::new());
        let usage = Arc::new(Usage::new(store.clone()));
        let artifacts = Arc::new(Artifacts::new(
            runtime.clone(),
            store.clone(),
            metrics.clone(),
        ));
        let queue = Arc::new(AsyncQueue::new(queue, metrics.clone()));
        let config = Arc::new(config);
        let max_instances = runtime.config().max_instances;
        // Actors' checkpoints and client states' seal and versions: the
        // node's own store, or the one `[state] function` names (a fabric's,
        // bound when the node joins).
        let keeper = config
            .state
            .function
            .as_ref()
            .map_or(NODE_STATE, |l| l.as_str());
        let kept = kv
            .bucket(keeper)
            .ok_or_else(|| Error::Internal(format!("the state store `{keeper}` did not open")))?;
        // The records an actor writes carry their writer: the node, and
        // this start of it (two nodes restored from one image share an id).
        let writer = format!(
            "{}-{}",
            store.meta("node_id")?.unwrap_or_default(),
            hex::encode(entropy::<4>()?)
        );
        let homes = StateHomes {
            clients: Arc::new(ClientStates::new(
                entropy::<32>()?,
                config.state.client_limit(),
                kept.clone(),
            )),
            actors: Arc::new(Actors::new(kept.clone(), &writer)),
        };
        let lifecycle = Lifecycle::new(Parts {
            homes,
            store: store.clone(),
            artifacts: artifacts.clone(),
            config: config.clone(),
            kv: kv.clone(),
            mqtt: config.mqtt.is_some(),
            max_memory: runtime.config().max_memory,
            fuel: runtime.config().fuel,
            quantum: runtime.config().epoch_tick,
            metrics: metrics.clone(),
            logs: logs.clone(),
            usage: usage.clone(),
            queue: queue.clone(),
        });
        lifecycle.install_stored()?;
        artifacts.collect_garbage()?;
        let exec = Executor::new(
            runtime.clone(),
            artifacts.clone(),
            usage.clone(),
            metrics.clone(),
            logs.clone(),
            hex::encode(entropy::<4>()?),
        );
        Ok(Arc::new(Controller {
            admission: Admission::new(
                max_instances,
                runtime.config().workers,
                config.unmeetable,
                metrics.clone(),
                usage.clone(),
            ),
            config,
            data_dir: data_dir.to_path_buf(),
            runtime,
            store,
            kv,
            metrics,
            logs,
            usage,
            artifacts,
            lifecycle,
            exec,
            queue,
            platform: kept,
            store_rtts: parking_lot::Mutex::default(),
        }))
    }

    /// Starts the background tasks: scale to zero, usage persistence, and
    /// the queue's garbage collection. They end with the controller.
    pub fn start_background(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut reap = tokio::time::interval(REAP_EVERY);
            let mut flush = tokio::time::interval(USAGE_FLUSH);
            let mut gc = tokio::time::interval(QUEUE_GC_EVERY);
            loop {
                tokio::select! {
                    _ = reap.tick() => {
                        let Some(c) = weak.upgrade() else { break };
                        c.scale_idle_to_zero();
                    }
                    _ = flush.tick() => {
                        let Some(c) = weak.upgrade() else { break };
                        c.usage.flush().await;
                    }
                    _ = gc.tick() => {
                        let Some(c) = weak.upgrade() else { break };
                        match c.queue.collect_garbage().await {
                            Ok(0) => {}
                            Ok(n) => tracing::debug!(count = n, "dropped expired invocation results"),
                            Err(e) => tracing::error!("queue garbage collection: {e}"),
                        }
                    }
                }
            }
        });
    }

    /// Drops the compiled code of functions idle past their TTL.
    fn scale_idle_to_zero(&self) {
        for f in self.lifecycle.registry.snapshot() {
            if f.is_warm() && f.idle_expired() {
                self.artifacts.cool(&f);
                tracing::debug!(function = %f.name, "scaled to zero");
            }
        }
    }

    // ---- the node ----------------------------------------------------

    /// The node's id: random, made at first start, kept in the store.
    pub fn node_id(&self) -> Result<String> {
        Ok(self.store.meta("node_id")?.unwrap_or_default())
    }

    /// The platform's own store (the node's, or the one `[state]
    /// function` names, a fabric's): actors' checkpoints, client states'
    /// seal and versions, workflow runs' journals. No function opens it.
    pub fn platform_store(&self) -> &Arc<dyn weft_kv::Bucket> {
        &self.platform
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

    /// The scheduling quantum (the epoch tick): no deadline can be shorter.
    pub fn quantum(&self) -> std::time::Duration {
        self.runtime.config().epoch_tick
    }

    /// The engine fingerprint keying compiled artifacts.
    pub fn engine_fingerprint(&self) -> &str {
        self.runtime.fingerprint()
    }

    /// The state of `key` of the function `name`, for an operator; with
    /// `clear`, removed too (an actor's in its turn, checkpointed).
    pub async fn inspect_state(
        &self,
        name: &str,
        key: &str,
        clear: bool,
    ) -> Result<BTreeMap<String, Vec<u8>>> {
        let f = self.function(name)?;
        let Some(state) = f.state() else {
            return Err(Error::NotKeptHere {
                name: name.to_string(),
                message: "it keeps no state (deploy it with --state)".to_string(),
            });
        };
        let entries = state.inspect(name, key, clear, f.limits().timeout).await?;
        if clear
            && state.model == weft_manifest::StateModel::Function
            && let Some(mesh) = self.lifecycle.mesh()
        {
            // The key's owner may be another node, holding it in memory.
            mesh.announce_state_changed().await;
        }
        Ok(entries)
    }

    /// Measures the round trip to each store this node provides (one
    /// `exists`; a store that does not answer within 2 s counts 2 s), folds
    /// it into a moving average, and returns the averages, µs.
    pub async fn probe_stores(&self) -> BTreeMap<String, u64> {
        const WEIGHT: f64 = 0.3;
        let limit = Duration::from_secs(2);
        for label in self.kv_labels() {
            let Some(b) = self.kv.bucket(&label) else {
                continue;
            };
            let t = Instant::now();
            let _ = tokio::time::timeout(limit, b.exists("weft-probe")).await;
            let us = t.elapsed().min(limit).as_micros() as f64;
            let mut rtts = self.store_rtts.lock();
            let e = rtts.entry(label).or_insert(us);
            *e += WEIGHT * (us - *e);
        }
        self.store_rtts()
    }

    /// The round trips to the stores, µs, as last measured.
    pub fn store_rtts(&self) -> BTreeMap<String, u64> {
        self.store_rtts
            .lock()
            .iter()
            .map(|(l, us)| (l.clone(), *us as u64))
            .collect()
    }

    /// Labels of the key-value stores this node provides (its own state
    /// store is not one a function can declare).
    pub fn kv_labels(&self) -> Vec<String> {
        let mut labels = self.kv.labels();
        // The node's own tables (its state, the stores it keeps for others).
        labels.retain(|l| !l.starts_with("weft."));
        labels
    }

    /// Joins the fabric's parts: the registry follows `mesh`, modules are
    /// shared and fetched through it, and the stores mapped to `fabric`
    /// are bound to its buckets.
    pub fn attach_fabric(&self, mesh: &Arc<Mesh>) -> Result<()> {
        for label in self.kv.deferred_labels() {
            let keeper = self.config.kv.iter().find_map(|(l, kv)| match kv {
                KvStoreConfig::Node { node } if l.as_str() == label => Some(node.clone()),
                _ => None,
            });
            let bucket = match keeper {
                None => weft_mesh::kv_bucket(mesh, &label),
                Some(node) if node == mesh.name() => {
                    let kept = self.kv.bucket(&kept_label(&label)).ok_or_else(|| {
                        Error::Internal(format!("the table of store `{label}` did not open"))
                    })?;
                    mesh.export_store(&label, kept.clone());
                    kept
                }
                Some(node) => mesh.node_bucket(&label, &node),
            };
            self.kv
                .bind(&label, bucket)
                .map_err(|e| Error::Internal(format!("key-value store `{label}`: {e}")))?;
        }
        self.artifacts.set_mesh(mesh.clone());
        self.lifecycle.set_mesh(mesh.clone());
        Ok(())
    }

    /// The fabric's membership changed (a node came, went, or drains): the
    /// owners of actors' keys may have moved, so each actor here checks its
    /// checkpoint at its next turn.
    pub fn membership_changed(&self) {
        self.lifecycle.homes.actors.membership_changed();
    }

    /// Applies a change of the fabric's registry.
    pub async fn apply_registry(&self, event: RegistryEvent) {
        self.lifecycle.apply_registry(event).await;
    }

    /// Sets the guests' `weft:fabric` host: the router.
    pub fn set_fabric(&self, fabric: Arc<dyn Fabric>) {
        self.exec.set_fabric(fabric);
    }

    // ---- lifecycle ---------------------------------------------------

    /// Validates, compiles (once) and stores a module. `for_function` names
    /// the function it is meant for, in errors.
    pub async fn upload_module(
        &self,
        bytes: Bytes,
        for_function: Option<&str>,
    ) -> Result<ModuleInfo> {
        self.artifacts.upload(bytes, for_function).await
    }

    /// Whether a module is stored.
    pub fn has_module(&self, digest: &str) -> Result<bool> {
        Ok(self.artifacts.module(digest)?.is_some())
    }

    /// Deploys a new version of `name` from an uploaded module (in a fabric,
    /// through the fabric's registry: every node sees it).
    pub async fn deploy(&self, name: &str, spec: FunctionSpec) -> Result<FunctionStatus> {
        self.lifecycle.deploy(name, spec).await
    }

    /// Makes an earlier version active (fabric-wide in a fabric).
    pub async fn rollback(&self, name: &str, to: Option<u32>) -> Result<FunctionStatus> {
        self.lifecycle.rollback(name, to).await
    }

    /// Removes a function and all its versions (fabric-wide in a fabric).
    pub async fn remove(&self, name: &str) -> Result<FunctionRecord> {
        self.lifecycle.remove(name).await
    }

    /// One function's status.
    pub fn status(&self, name: &str) -> Result<FunctionStatus> {
        self.lifecycle.status(name)
    }

    /// Every function's status, by name.
    pub fn list(&self) -> Result<Vec<FunctionStatus>> {
        self.lifecycle.list()
    }

    /// The function `name` serves now: the one version an invocation that
    /// resolves it runs, from admission to its end.
    pub fn function(&self, name: &str) -> Result<Arc<Function>> {
        self.lifecycle.registry.get(name)
    }

    /// Every function served, at this moment.
    pub fn functions(&self) -> Vec<Arc<Function>> {
        self.lifecycle.registry.snapshot()
    }

    /// Woken whenever the set of functions changes (deploy, rollback,
    /// removal, a registry update).
    pub fn functions_changed(&self) -> Arc<Notify> {
        self.lifecycle.registry.changed()
    }

    // ---- admission and execution -------------------------------------

    /// A slot of `f`, waiting in its bounded queue when all are busy (at
    /// most its timeout, never past `deadline`).
    pub async fn function_slot(
        &self,
        f: &Arc<Function>,
        deadline: Option<Instant>,
    ) -> Result<FunctionSlot> {
        self.admission.function_slot(f, deadline).await
    }

    /// Books an invocation of `f` due at `due` against the work admitted
    /// here; with `promised` (a declared or asked deadline), refused
    /// (`deadline_unmeetable`) when that deadline cannot be met.
    pub fn book(&self, f: &Function, due: Instant, promised: bool) -> Result<Booking> {
        self.admission.book(f, due, promised)
    }

    /// A node slot for an admitted invocation, or `node_at_capacity`.
    pub fn node_slot(&self, slot: FunctionSlot) -> Result<Reservation> {
        self.admission.node_slot(slot)
    }

    /// Both slots now, or none: how queued work is admitted before it is
    /// claimed.
    pub fn try_reserve(&self, f: &Arc<Function>) -> Option<Reservation> {
        self.admission.try_reserve(f)
    }

    /// Runs an admitted invocation in a fresh sandbox.
    pub async fn run(&self, r: Reservation, input: Input, ctx: RunContext) -> Result<Ran> {
        self.exec.run(r, input, ctx).await
    }

    /// Sandbox slots of the node.
    pub fn max_instances(&self) -> u32 {
        self.admission.max_instances()
    }

    /// Node slots free now.
    pub fn free_slots(&self) -> usize {
        self.admission.free()
    }

    /// Invocations running on the node now.
    pub fn running(&self) -> u64 {
        self.admission.running()
    }

    /// Tells a waiter that a sandbox slot freed.
    pub fn slot_freed(&self) -> Arc<SlotFreed> {
        self.admission.freed()
    }

    /// Whether the node is draining (refusing new work).
    pub fn draining(&self) -> bool {
        self.admission.draining()
    }

    /// Refuses new invocations and waits, up to `grace`, for running ones
    /// to finish; then persists usage. Returns how many were still running.
    pub async fn drain(&self, grace: Duration) -> u64 {
        let left = self.admission.drain(grace).await;
        self.usage.flush().await;
        left
    }

    // ---- the async queue ---------------------------------------------

    /// Queues an asynchronous invocation; returns once it is durable.
    pub async fn enqueue(&self, new: NewInvocation) -> Result<Accepted> {
        if self.admission.draining() {
            return Err(Error::ShuttingDown);
        }
        self.queue.enqueue(new).await
    }

    /// Functions with queued work due now, each with when its earliest
    /// work became due.
    pub async fn due_functions(&self) -> Result<Vec<(String, SystemTime)>> {
        self.queue.due_functions().await
    }

    /// Claims up to `max` due invocations of `function`: they are running.
    pub async fn claim(&self, function: &str, max: usize) -> Result<Vec<Claimed>> {
        self.queue.claim(function, max).await
    }

    /// When the next queued invocation is due.
    pub async fn next_due(&self) -> Result<Option<SystemTime>> {
        self.queue.next_due().await
    }

    /// Records a queued invocation's success.
    pub async fn complete(&self, id: &str, result: Vec<u8>) -> Result<()> {
        self.queue.complete(id, result).await
    }

    /// Records a queued invocation's failed attempt.
    pub async fn fail(&self, id: &str, failure: Failure, retryable: bool) -> Result<AfterFailure> {
        self.queue.fail(id, failure, retryable).await
    }

    /// Puts a claimed invocation back without spending its attempt.
    pub async fn defer(&self, id: &str, why: Failure, at: SystemTime) -> Result<()> {
        self.queue.defer(id, why, at).await
    }

    /// Dead-letters the queued work of a function no longer served.
    pub async fn dead_letter_function(&self, function: &str) -> Result<u64> {
        self.queue.remove_function(function).await
    }

    /// Woken by every enqueue.
    pub fn queue_notifier(&self) -> Arc<Notify> {
        self.queue.notifier()
    }

    /// An asynchronous invocation's record: state, attempts, result.
    pub async fn invocation_record(&self, id: &str) -> Result<Record> {
        self.queue.get(id).await
    }

    /// The dead-letter list, oldest first, of one function or all.
    pub async fn dead_letters(
        &self,
        function: Option<String>,
        limit: usize,
    ) -> Result<Vec<Record>> {
        self.queue.dead(function, limit).await
    }

    /// Queues a dead-lettered invocation again, with its attempts reset
    /// and its metadata rewritten by `rearm` (the router's: what counts
    /// from arrival starts afresh).
    pub async fn retry_dead(
        &self,
        id: &str,
        rearm: impl FnOnce(&mut BTreeMap<String, String>) + Send + 'static,
    ) -> Result<()> {
        self.queue.retry_dead(id, rearm).await
    }

    /// Deletes a dead-lettered invocation.
    pub async fn drop_dead(&self, id: &str) -> Result<()> {
        self.queue.drop_dead(id).await
    }

    /// Queued and running asynchronous invocations of the node.
    pub fn async_pending(&self) -> u64 {
        self.queue.pending()
    }

    // ---- usage, logs, metrics ----------------------------------------

    /// Writes pending usage to the store.
    pub async fn flush_usage(&self) {
        self.usage.flush().await;
    }

    /// Usage totals by function: stored plus not yet flushed.
    pub fn usage(&self) -> Result<BTreeMap<String, UsageTotals>> {
        self.usage.totals(self.lifecycle.registry.names())
    }

    /// Recent log lines of a function.
    pub fn logs(&self, name: &str, since: u64, limit: usize) -> Result<Vec<LogLine>> {
        self.function(name)?;
        Ok(self.logs.recent(name, since, limit))
    }

    /// Counts how an invocation of `f` went against its deadline, with its
    /// latency (arrival to the response's start) when it ran.
    pub fn count_deadline(
        &self,
        f: &Function,
        outcome: DeadlineOutcome,
        latency: Option<Duration>,
    ) {
        f.observe_deadline(outcome, latency);
    }

    /// How each function has kept its deadlines here, by name.
    pub fn slo(&self) -> Vec<crate::SloReport> {
        let mut all: Vec<_> = self.functions().iter().map(|f| f.slo_report()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Adds a line to a function's log, as the node (not the guest).
    pub fn log_line(&self, function: &str, invocation: &str, line: String) {
        tracing::info!(function = %function, invocation = %invocation, "{line}");
        self.logs
            .push(function, invocation, format!("[weft] {line}"));
    }

    /// Every new log line, of every function.
    pub fn follow_logs(&self) -> broadcast::Receiver<LogLine> {
        self.logs.subscribe()
    }

    /// Counts a trigger event dropped before it was queued.
    pub fn count_dropped_trigger(&self) {
        self.metrics.trigger_dropped.inc();
    }

    /// Prometheus text of the node's metrics.
    pub fn metrics_text(&self) -> String {
        for f in self.functions() {
            let r = f.slo_report();
            self.metrics
                .show_slo(&r.name, r.deadline_ms, [r.p50_ms, r.p99_ms]);
        }
        self.metrics.render(self.runtime.worker_stats())
    }

    /// The node's workers as they stand now.
    pub fn worker_stats(&self) -> weft_runtime::WorkerStats {
        self.runtime.worker_stats()
    }
}
