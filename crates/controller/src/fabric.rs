//! The node in a fabric: the registry shared through JetStream, artifacts
//! fetched on demand, placement of each invocation by the pure scheduler,
//! and invocations run on other nodes over NATS.
//!
//! The local store stays the node's own copy of the registry, so a node cut
//! off from the fabric keeps serving what it has. Writes (deploy, rollback,
//! remove) go to the fabric registry first, by compare-and-set on the
//! function's record, then to the local copy; they need the fabric.

use crate::controller::{Controller, Origin};
use crate::error::{Error, Result};
use crate::function::Function;
use bytes::Bytes;
use futures::future::BoxFuture;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use weft_manifest::{FabricConfig, PlacementSpec};
use weft_mesh::{
    Auth, CallError, CallMeta, Host, LocalLoad, Mesh, MeshConfig, MeshError, RegistryEvent,
    ReplyOutcome, Tls,
};
use weft_sched::{Decision, ExecTable, NodeView, Privacy, Request, Requirements, Tier, View};
use weft_store::FunctionRecord;

/// Local store metadata: set once this node has joined a fabric registry.
const JOINED_META: &str = "fabric_joined";
/// How often a registry write is retried after losing a race.
const CAS_ATTEMPTS: u32 = 8;
/// How often a remote call checks that its node is still alive.
const ALIVE_EVERY: Duration = Duration::from_millis(100);

/// What `--fabric`, `--tier`, `--label` and `--node-name` and the config's
/// `[fabric]` make together.
pub fn mesh_config(
    f: &FabricConfig,
    default_name: &str,
    http: Option<String>,
) -> std::result::Result<MeshConfig, String> {
    f.validate().map_err(|e| format!("fabric.{e}"))?;
    let url = f
        .url
        .clone()
        .ok_or("fabric: no NATS URL (`--fabric nats://HOST:PORT` or `[fabric] url`)")?;
    let tier: Tier = f
        .tier
        .as_deref()
        .unwrap_or("edge")
        .parse()
        .map_err(|e| format!("fabric.tier: {e}"))?;
    let name = f.name.clone().unwrap_or_else(|| default_name.to_string());
    if !weft_mesh::valid_node_name(&name) {
        return Err(format!(
            "node name `{name}`: use 1-63 of a-z, 0-9 and `-` (set `--node-name`)"
        ));
    }
    let mut c = MeshConfig::new(url, name, tier);
    c.labels = f.labels.clone();
    c.cost = f64::from(f.cost.unwrap_or(1));
    c.energy = f64::from(f.energy.unwrap_or(1));
    c.http = http;
    c.auth = match (&f.credentials, &f.user, &f.password, &f.token) {
        (Some(p), ..) => Auth::Credentials(p.clone()),
        (_, Some(u), Some(p), _) => Auth::UserPassword {
            user: u.clone(),
            password: p.clone(),
        },
        (.., Some(t)) => Auth::Token(t.clone()),
        _ => Auth::None,
    };
    c.tls = Tls {
        required: f.tls || c.url.starts_with("tls://"),
        ca: f.tls_ca.clone(),
        client: f.tls_cert.clone().zip(f.tls_key.clone()),
    };
    if let Some(h) = f.heartbeat {
        c.heartbeat = h.0;
    }
    if let Some(d) = f.down_after {
        c.down_after = d;
    }
    if let Some(s) = f.max_clock_skew {
        c.max_clock_skew = s.0;
    }
    Ok(c)
}

/// One node of the fabric, for `weft nodes`.
#[derive(Debug, Clone, Serialize)]
pub struct NodeInfo {
    /// Its name.
    pub name: String,
    /// This node.
    pub local: bool,
    /// Beating.
    pub up: bool,
    /// Its tier.
    pub tier: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Concurrent invocations it runs at most.
    pub slots: u32,
    /// Running now.
    pub inflight: u32,
    /// Waiting now.
    pub queued: u32,
    /// Functions warm there.
    pub warm: BTreeSet<String>,
    /// Round trip from this node, µs.
    pub rtt_us: Option<u64>,
    /// Bandwidth from this node, bytes/s (from real transfers).
    pub bandwidth_bps: Option<u64>,
    /// Since its last heartbeat, ms.
    pub last_seen_ms: u64,
    /// Its HTTP address.
    pub http: Option<String>,
}

/// The fabric as this node sees it.
#[derive(Debug, Clone, Serialize)]
pub struct FabricStatus {
    /// This node's name.
    pub node: String,
    /// Connected to NATS.
    pub connected: bool,
    /// Registry joined (snapshot applied, changes followed).
    pub registry_joined: bool,
    /// Every node, this one first.
    pub nodes: Vec<NodeInfo>,
}

/// Where an invocation runs.
#[derive(Debug, Clone)]
pub enum Placement {
    /// Not in a fabric: here.
    Standalone,
    /// The scheduler's decision.
    Decided(Decision),
}

impl Placement {
    /// The node chosen, if another.
    pub fn remote(&self) -> Option<&str> {
        match self {
            Placement::Decided(d) if !d.local => Some(&d.node),
            _ => None,
        }
    }

    /// A short reason for a response header.
    pub fn reason(&self) -> &'static str {
        match self {
            Placement::Standalone => "standalone",
            Placement::Decided(d) => d.reason.kind(),
        }
    }
}

/// A response from the node that ran an invocation elsewhere.
#[derive(Debug, Clone)]
pub struct RemoteResponse {
    /// The node that ran it.
    pub node: String,
    /// Its invocation id there.
    pub invocation: String,
    /// The version that ran.
    pub version: u32,
    /// Whether it was a cold start there.
    pub cold_start: bool,
    /// HTTP status (200 for commands).
    pub status: u16,
    /// HTTP response headers (HTTP components).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
    /// Wall time of the run there, µs.
    pub wall_us: u64,
    /// Placement of the last attempt.
    pub decision: Decision,
    /// Nodes tried before it (dead or unreachable), for idempotent retries.
    pub tried: Vec<String>,
}

struct FabricHost {
    c: Weak<Controller>,
}

impl Host for FabricHost {
    fn load(&self) -> LocalLoad {
        match self.c.upgrade() {
            Some(c) => c.local_load(),
            None => LocalLoad::default(),
        }
    }

    fn serve(&self, call: CallMeta, body: Bytes) -> BoxFuture<'static, (ReplyOutcome, Bytes)> {
        let c = self.c.upgrade();
        Box::pin(async move {
            match c {
                Some(c) => c.serve_remote(call, body).await,
                None => (
                    ReplyOutcome::Err {
                        code: weft_codes::Code::ShuttingDown.as_str().into(),
                        message: "the node is shutting down".into(),
                    },
                    Bytes::new(),
                ),
            }
        })
    }

    fn registry(&self, event: RegistryEvent) -> BoxFuture<'static, ()> {
        let c = self.c.upgrade();
        Box::pin(async move {
            if let Some(c) = c {
                c.apply_registry(event).await;
            }
        })
    }
}

fn requirements(p: Option<&PlacementSpec>) -> Requirements {
    let Some(p) = p else {
        return Requirements::default();
    };
    Requirements {
        tiers: p.tier.iter().filter_map(|t| t.parse().ok()).collect(),
        labels: p.labels.clone(),
        privacy: match p.privacy.as_deref() {
            Some("site") => Privacy::Site,
            Some("tier") => Privacy::Tier,
            _ => Privacy::None,
        },
        latency_ms: p
            .latency
            .map(|l| l.0.as_millis().min(u128::from(u32::MAX)) as u32),
        near: p.near.iter().map(|n| n.to_string()).collect(),
        cost_weight: f64::from(p.cost_weight.unwrap_or(0)),
        energy_weight: f64::from(p.energy_weight.unwrap_or(0)),
        ..Requirements::default()
    }
}

/// A mesh error as the controller reports it.
pub(crate) fn unavailable(e: MeshError) -> Error {
    match e {
        MeshError::Conflict(k) => {
            Error::FabricUnavailable(format!("`{k}` kept changing concurrently; try again"))
        }
        MeshError::Unavailable(m) => Error::FabricUnavailable(m),
        other => Error::FabricUnavailable(other.to_string()),
    }
}

impl Controller {
    /// Joins a fabric: connects to NATS, starts heartbeats, the call
    /// listener and the registry follower. Returns once subscribed; when
    /// NATS is unreachable the node keeps trying and serves meanwhile.
    pub async fn join_fabric(self: &Arc<Self>, config: MeshConfig) -> Result<()> {
        let mesh = Mesh::connect(config).await.map_err(unavailable)?;
        let host = Arc::new(FabricHost {
            c: Arc::downgrade(self),
        });
        mesh.start(host).await.map_err(unavailable)?;
        for label in self.kv.deferred_labels() {
            self.kv
                .bind(&label, mesh.kv_bucket(&label))
                .map_err(|e| Error::Internal(format!("key-value store `{label}`: {e}")))?;
        }
        self.mesh
            .set(mesh)
            .map_err(|_| Error::Internal("already in a fabric".into()))?;
        Ok(())
    }

    /// Leaves the fabric (at shutdown): peers mark this node down.
    pub async fn leave_fabric(&self) {
        if let Some(m) = self.mesh.get() {
            m.shutdown().await;
        }
    }

    /// The mesh, when the node is in a fabric.
    pub(crate) fn mesh(&self) -> Option<&Arc<Mesh>> {
        self.mesh.get()
    }

    fn local_load(&self) -> LocalLoad {
        let functions = self.snapshot();
        LocalLoad {
            slots: self.runtime.config().max_instances,
            inflight: self.in_flight_now() as u32,
            queued: functions.iter().map(|f| f.waiting()).sum(),
            warm: functions
                .iter()
                .filter(|f| f.warm().is_some())
                .map(|f| f.name.clone())
                .collect(),
            stores: self.kv_labels().into_iter().collect(),
            exec_us: functions
                .iter()
                .filter_map(|f| f.exec_us().map(|u| (f.name.clone(), u)))
                .collect(),
        }
    }

    /// The fabric as this node sees it; `None` when standalone.
    pub fn fabric_status(&self) -> Option<FabricStatus> {
        let mesh = self.mesh()?;
        let me = mesh.heartbeat(self.local_load());
        let mut nodes = vec![NodeInfo {
            name: me.name,
            local: true,
            up: true,
            tier: me.tier.to_string(),
            labels: me.labels,
            slots: me.slots,
            inflight: me.inflight,
            queued: me.queued,
            warm: me.warm,
            rtt_us: Some(0),
            bandwidth_bps: None,
            last_seen_ms: 0,
            http: me.http,
        }];
        for p in mesh.peers() {
            let hb = p.heartbeat;
            nodes.push(NodeInfo {
                name: hb.name,
                local: false,
                up: p.up,
                tier: hb.tier.to_string(),
                labels: hb.labels,
                slots: hb.slots,
                inflight: hb.inflight,
                queued: hb.queued,
                warm: hb.warm,
                rtt_us: p.rtt_us,
                bandwidth_bps: p.bandwidth_bps,
                last_seen_ms: p.last_seen_ms,
                http: hb.http,
            });
        }
        Some(FabricStatus {
            node: mesh.name().to_string(),
            connected: mesh.connected(),
            registry_joined: mesh.joined(),
            nodes,
        })
    }

    /// The scheduler's view of the world for one function: this node with
    /// the function's own load (its slots, running and waiting), and every
    /// peer with its heartbeat, round trip and bandwidth.
    fn view(&self, mesh: &Mesh, f: &Function) -> View {
        let cfg = mesh.config();
        let node_full = self.in_flight_now() >= u64::from(self.runtime.config().max_instances);
        let local = NodeView {
            name: cfg.name.clone(),
            tier: cfg.tier,
            labels: cfg.labels.clone(),
            up: true,
            slots: f.max_concurrency,
            inflight: if node_full {
                f.max_concurrency
            } else {
                f.in_flight.load(Ordering::Relaxed)
            },
            queued: f.waiting(),
            rtt_us: Some(0),
            bandwidth_bps: None,
            warm: f
                .warm()
                .map(|_| BTreeSet::from([f.name.clone()]))
                .unwrap_or_default(),
            has_artifact: None,
            stores: self.kv_labels().into_iter().collect(),
            cost: cfg.cost,
            energy: cfg.energy,
            broker: false,
            topics: Vec::new(),
        };
        let mut exec = ExecTable::new();
        if let Some(us) = f.exec_us() {
            exec.observe(&f.name, &cfg.name, us);
        }
        let mut nodes = vec![local];
        for p in mesh.peers() {
            let hb = p.heartbeat;
            if let Some(us) = hb.exec_us.get(&f.name) {
                exec.observe(&f.name, &hb.name, *us);
            }
            nodes.push(NodeView {
                name: hb.name,
                tier: hb.tier,
                labels: hb.labels,
                up: p.up,
                slots: hb.slots,
                inflight: hb.inflight,
                queued: hb.queued,
                rtt_us: p.rtt_us,
                bandwidth_bps: p.bandwidth_bps,
                warm: hb.warm,
                has_artifact: None,
                stores: hb.stores,
                cost: hb.cost,
                energy: hb.energy,
                broker: false,
                topics: Vec::new(),
            });
        }
        View {
            local: cfg.name.clone(),
            nodes,
            exec,
        }
    }

    /// Reads the body of a request bound for another node, within the
    /// function's size limit and timeout (the same checks as a local run).
    pub async fn read_request<F, Fut>(&self, name: &str, read_body: F) -> Result<Bytes>
    where
        F: FnOnce(u64) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<Bytes, crate::BodyError>>,
    {
        let f = self.function(name)?;
        crate::controller::read_request(&f, read_body).await
    }

    /// Where an invocation of `name` with a body of `bytes_in` runs now.
    pub fn place(&self, name: &str, bytes_in: u64) -> Result<Placement> {
        self.place_excluding(name, bytes_in, &BTreeSet::new())
    }

    fn place_excluding(
        &self,
        name: &str,
        bytes_in: u64,
        exclude: &BTreeSet<String>,
    ) -> Result<Placement> {
        let Some(mesh) = self.mesh() else {
            return Ok(Placement::Standalone);
        };
        let f = self.function(name)?;
        let view = self.view(mesh, &f);
        let req = Request {
            function: name.to_string(),
            origin: view.local.clone(),
            bytes_in,
            bytes_out: bytes_in,
            requirements: requirements(f.version.spec.placement.as_ref()),
            exclude: exclude.clone(),
        };
        weft_sched::place(&view, &req)
            .map(Placement::Decided)
            .map_err(|e| Error::NoEligibleNode {
                name: name.to_string(),
                message: e.to_string(),
            })
    }

    /// Runs an invocation on the node placement chose. A node that dies or
    /// cannot be reached is an error (`node_unreachable`), unless the
    /// function is idempotent: then it is placed again without that node
    /// and retried, within the deadline.
    pub async fn invoke_remote(
        self: &Arc<Self>,
        name: &str,
        first: Decision,
        origin: &Origin,
        http: BTreeMap<String, String>,
        body: Bytes,
    ) -> Result<RemoteResponse> {
        let mesh = self
            .mesh()
            .ok_or_else(|| Error::Internal("not in a fabric".into()))?
            .clone();
        let f = self.function(name)?;
        let timeout = match origin.timeout_cap {
            Some(cap) => f.limits.timeout.min(cap),
            None => f.limits.timeout,
        };
        let deadline = Instant::now() + timeout;
        let mut decision = first;
        let mut tried = Vec::new();
        loop {
            let node = decision.node.clone();
            let meta = CallMeta {
                id: String::new(),
                from: String::new(),
                function: name.to_string(),
                trigger: origin.trigger.to_string(),
                subject: origin.subject.clone(),
                attempt: origin.attempt,
                chain: origin
                    .ancestors
                    .iter()
                    .chain(&origin.chain)
                    .cloned()
                    .collect(),
                timeout_ms: 0,
                http: http.clone(),
                body_len: 0,
                chunks: 0,
            };
            let call = mesh.call(&node, meta, body.clone(), deadline);
            let died = watch_alive(&mesh, &node);
            let outcome = tokio::select! {
                r = call => r,
                () = died => Err(CallError::Unreachable(node.clone())),
            };
            match outcome {
                Ok((reply, out)) => {
                    return match reply.outcome {
                        ReplyOutcome::Ok {
                            invocation,
                            version,
                            cold_start,
                            wall_us,
                            status,
                            headers,
                            ..
                        } => Ok(RemoteResponse {
                            node: reply.node,
                            invocation,
                            version,
                            cold_start,
                            status,
                            headers,
                            body: out,
                            wall_us,
                            decision,
                            tried,
                        }),
                        ReplyOutcome::Err { code, message } => Err(Error::Remote {
                            node: reply.node,
                            code: code.parse().unwrap_or(weft_codes::Code::RemoteError),
                            message,
                        }),
                    };
                }
                Err(CallError::Timeout { .. }) => {
                    return Err(Error::Invoke {
                        name: name.to_string(),
                        invocation: String::new(),
                        source: weft_runtime::InvokeError::Deadline { timeout },
                    });
                }
                Err(e @ (CallError::Unreachable(_) | CallError::Malformed { .. })) => {
                    tracing::warn!(function = %name, node = %node, "remote invocation failed: {e}");
                    tried.push(node.clone());
                    let retry = f.version.spec.idempotent && Instant::now() < deadline;
                    if !retry {
                        let hint = if f.version.spec.idempotent {
                            ""
                        } else {
                            " (not retried elsewhere: the function is not marked idempotent)"
                        };
                        return Err(Error::NodeUnreachable {
                            name: name.to_string(),
                            message: format!("{e}{hint}"),
                        });
                    }
                    let exclude: BTreeSet<String> = tried.iter().cloned().collect();
                    match self.place_excluding(name, body.len() as u64, &exclude)? {
                        Placement::Decided(d) => decision = d,
                        Placement::Standalone => {
                            return Err(Error::Internal("left the fabric".into()));
                        }
                    }
                    if decision.local {
                        // Retried here: run it as any local invocation.
                        let (f, slot) = self.admit(name).await?;
                        let (info, out) = self
                            .run_payload(f, slot, body.clone(), origin.clone(), None, &http)
                            .await?;
                        return Ok(RemoteResponse {
                            node: mesh.name().to_string(),
                            invocation: info.id,
                            version: info.version,
                            cold_start: info.cold_start,
                            status: 200,
                            headers: Vec::new(),
                            body: out,
                            wall_us: 0,
                            decision,
                            tried,
                        });
                    }
                }
                Err(CallError::Transport(e)) => return Err(Error::FabricUnavailable(e)),
            }
        }
    }

    /// Runs a call that arrived from a peer, on this node.
    async fn serve_remote(self: &Arc<Self>, call: CallMeta, body: Bytes) -> (ReplyOutcome, Bytes) {
        let started = Instant::now();
        let run = async {
            let timeout = Duration::from_millis(call.timeout_ms);
            let (f, slot) = tokio::time::timeout(timeout, self.admit(&call.function))
                .await
                .map_err(|_| Error::QueueTimeout {
                    name: call.function.clone(),
                    waited: timeout,
                })??;
            let origin = Origin {
                trigger: crate::controller::trigger_name(&call.trigger, "fabric"),
                subject: call.subject.clone(),
                attempt: call.attempt.max(1),
                chain: call.chain.clone(),
                ancestors: Vec::new(),
                timeout_cap: Some(timeout.saturating_sub(started.elapsed())),
            };
            self.run_payload_full(f, slot, body, origin, None, &call.http)
                .await
        };
        match run.await {
            Ok(ran) => (
                ReplyOutcome::Ok {
                    invocation: ran.info.id,
                    version: ran.info.version,
                    cold_start: ran.info.cold_start,
                    wall_us: started.elapsed().as_micros() as u64,
                    cpu_us: ran.cpu_us,
                    status: ran.status,
                    headers: ran.headers,
                },
                ran.body,
            ),
            Err(e) => (
                ReplyOutcome::Err {
                    code: e.code().as_str().to_string(),
                    message: e.to_string(),
                },
                Bytes::new(),
            ),
        }
    }

    // ---- the registry ------------------------------------------------

    /// Writes a function's record to the fabric registry: `change` maps the
    /// registry's current record to the new one, retried when another node
    /// wrote first. Returns the record written.
    pub(crate) async fn fabric_commit(
        &self,
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

    async fn apply_registry(self: &Arc<Self>, event: RegistryEvent) {
        match event {
            RegistryEvent::Put { key, value } => self.apply_record(&key, &value),
            RegistryEvent::Delete { key } => self.forget_function(&key),
            RegistryEvent::Snapshot(entries) => {
                let joined_before = matches!(self.store().meta(JOINED_META), Ok(Some(_)));
                let names: BTreeSet<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
                for (key, value) in &entries {
                    self.apply_record(key, value);
                }
                let local = self.store().list().unwrap_or_default();
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
                if let Err(e) = self.store().set_meta(JOINED_META, "1") {
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
            if let Err(e) = self.share_artifact(mesh, digest).await {
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

    /// Stores a module in the fabric's object store.
    pub(crate) async fn share_artifact(&self, mesh: &Mesh, digest: &str) -> Result<()> {
        let rt = self.runtime.clone();
        let d = digest.to_string();
        let bytes = tokio::task::spawn_blocking(move || rt.module_bytes(&d))
            .await
            .map_err(|e| Error::Internal(format!("read task: {e}")))?
            .map_err(|source| Error::Prepare { name: None, source })?;
        mesh.artifact_put(digest, &bytes).await.map_err(unavailable)
    }

    /// Fetches a module this node does not have from the fabric, checks
    /// its digest and prepares it (validate, compile, cache).
    pub(crate) async fn fetch_artifact(&self, name: &str, digest: &str) -> Result<()> {
        let Some(mesh) = self.mesh() else {
            return Err(Error::ModuleNotFound {
                name: name.to_string(),
                digest: digest.to_string(),
            });
        };
        let bytes = mesh.artifact_get(digest).await.map_err(|e| match e {
            MeshError::NoArtifact(_) => Error::ModuleNotFound {
                name: name.to_string(),
                digest: digest.to_string(),
            },
            other => unavailable(other),
        })?;
        let info = self.upload_module(bytes, Some(name)).await?;
        if info.module != format!("sha256:{digest}") {
            return Err(Error::Internal(format!(
                "fetched module is {} where sha256:{digest} was asked for",
                info.module
            )));
        }
        tracing::info!(function = %name, module = %digest, "fabric: module fetched");
        Ok(())
    }

    fn apply_record(&self, key: &str, value: &[u8]) {
        let rec: FunctionRecord = match serde_json::from_slice(value) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(function = %key, "fabric: refused registry record of `{key}`: {e}");
                return;
            }
        };
        if let Err(e) = weft_manifest::Name::new(key) {
            tracing::warn!(function = %key, "fabric: refused registry record under `{key}`: {e}");
            return;
        }
        if let Err(e) = rec.check(key) {
            tracing::warn!(function = %key, "fabric: refused registry record of `{key}`: {e}");
            return;
        }
        if matches!(self.store().get(key), Ok(Some(local)) if local == rec) {
            return;
        }
        if let Err(e) = self.store().put_record(&rec) {
            tracing::error!(function = %key, "fabric: storing the record: {e}");
            return;
        }
        self.install(&rec, None);
        tracing::info!(function = %key, version = rec.active, "fabric: function updated");
    }

    fn forget_function(&self, name: &str) {
        if matches!(self.store().get(name), Ok(Some(_))) {
            match self.remove_local(name) {
                Ok(_) => tracing::info!(function = %name, "fabric: function removed"),
                Err(e) => tracing::error!(function = %name, "fabric: removing: {e}"),
            }
        }
    }
}

/// Resolves when `node` has been marked down (missed heartbeats).
async fn watch_alive(mesh: &Mesh, node: &str) {
    loop {
        tokio::time::sleep(ALIVE_EVERY).await;
        if !mesh.is_up(node) {
            return;
        }
    }
}
