use crate::wire::{
    CallMeta, Heartbeat, Refused, ReplyMeta, ReplyOutcome, WIRE_VERSION, chunks_for, frame,
    unframe, valid_node_name,
};
use async_nats::jetstream::{self, kv, object_store};
use async_nats::{Client, HeaderMap, StatusCode};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::future::BoxFuture;
use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;
use weft_sched::Tier;

const REGISTRY_BUCKET: &str = "weft-registry";
const ARTIFACT_BUCKET: &str = "weft-artifacts";
const PING_EVERY: Duration = Duration::from_secs(2);
/// Weight of a new sample in round-trip and bandwidth averages.
const EWMA: f64 = 0.3;
/// A call body still being assembled after this long is dropped.
const ASSEMBLY_TTL: Duration = Duration::from_secs(60);
/// Smallest transfer a bandwidth sample is taken from: below it, the
/// time is latency, not bandwidth.
const MIN_BANDWIDTH_SAMPLE: u64 = 128 << 10;
/// Refusals of one peer are logged at most this often per reason.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(30);
/// Longest wait for a registry snapshot before rejoining.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(30);

/// How a node authenticates to NATS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// A `.creds` file (JWT and NKey seed).
    Credentials(PathBuf),
    /// User and password.
    UserPassword {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// A token.
    Token(String),
    /// An NKey seed.
    NKey(String),
}

/// TLS towards NATS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// Require TLS even if the server does not ask for it.
    pub required: bool,
    /// CA certificates (PEM) to trust besides the system's.
    pub ca: Option<PathBuf>,
    /// Client certificate and key (PEM), for mutual TLS.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// One node's place in the fabric.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// `nats://host:port` (several, comma-separated).
    pub url: String,
    /// The node's name in the fabric (see [`valid_node_name`]).
    pub name: String,
    /// Its tier.
    pub tier: Tier,
    /// Its labels (`site`, `arch`, …).
    pub labels: BTreeMap<String, String>,
    /// Relative price of a second of execution here.
    pub cost: f64,
    /// Relative energy of a second of execution here.
    pub energy: f64,
    /// Its HTTP address, shown to operators.
    pub http: Option<String>,
    /// Credentials.
    pub auth: Auth,
    /// TLS.
    pub tls: Tls,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Beats missed before a peer is marked down.
    pub down_after: u32,
    /// Largest clock difference accepted from a peer.
    pub max_clock_skew: Duration,
    /// Largest call body assembled for a caller.
    pub max_body: u64,
}

impl MeshConfig {
    /// A configuration with the defaults: 1 s beats, down after 3 missed,
    /// 30 s of clock skew, 64 MiB bodies.
    pub fn new(url: impl Into<String>, name: impl Into<String>, tier: Tier) -> Self {
        MeshConfig {
            url: url.into(),
            name: name.into(),
            tier,
            labels: BTreeMap::new(),
            cost: 1.0,
            energy: 1.0,
            http: None,
            auth: Auth::None,
            tls: Tls::default(),
            heartbeat: Duration::from_secs(1),
            down_after: 3,
            max_clock_skew: Duration::from_secs(30),
            max_body: 64 << 20,
        }
    }
}

/// What the node reports about itself in heartbeats.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalLoad {
    /// Concurrent invocations it runs at most.
    pub slots: u32,
    /// Running now.
    pub inflight: u32,
    /// Waiting now.
    pub queued: u32,
    /// Functions with a warm instance.
    pub warm: BTreeSet<String>,
    /// Key-value stores served here.
    pub stores: BTreeSet<String>,
    /// The round trip to each of them, µs, as measured here.
    pub store_rtt_us: BTreeMap<String, u64>,
    /// An MQTT broker is configured here.
    pub broker: bool,
    /// Topic patterns functions may use here (empty: every topic).
    pub topics: Vec<String>,
    /// Learned execution time per function, µs.
    pub exec_us: BTreeMap<String, u64>,
    /// Execution profiles of its functions, µs: p50, p90, p99, the longest.
    pub exec_profile: BTreeMap<String, [u64; 4]>,
}

/// A change of the fabric registry.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistryEvent {
    /// Everything the registry holds, at (re)join: apply it, and forget
    /// what it does not hold (unless this node never joined before).
    Snapshot(Vec<(String, Bytes)>),
    /// A key was written.
    Put {
        /// The key (a function name).
        key: String,
        /// The value.
        value: Bytes,
    },
    /// A key was deleted.
    Delete {
        /// The key.
        key: String,
    },
}

/// The node above the mesh.
pub trait Host: Send + Sync + 'static {
    /// The node's load, for the next heartbeat.
    fn load(&self) -> LocalLoad;
    /// A peer's heartbeat was accepted, or a probe measured its round trip:
    /// what this node now knows of it.
    fn peer(&self, peer: &Peer) {
        let _ = peer;
    }
    /// Runs a call that arrived from a peer.
    fn serve(&self, call: CallMeta, body: Bytes) -> BoxFuture<'static, (ReplyOutcome, Bytes)>;
    /// Applies a registry change.
    fn registry(&self, event: RegistryEvent) -> BoxFuture<'static, ()>;
    /// Another node changed actors' state outside their owners' turns (an
    /// operator removed a key's): actors held here check their checkpoints
    /// at their next turn.
    fn state_changed(&self) {}
}

/// Mesh errors.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// Configuration that cannot work.
    #[error("fabric: {0}")]
    Config(String),
    /// NATS or JetStream failed or is unreachable.
    #[error("fabric unavailable: {0}")]
    Unavailable(String),
    /// A registry write lost a race: someone wrote the key first.
    #[error("fabric registry: `{0}` changed concurrently")]
    Conflict(String),
    /// An artifact fetched from the fabric is not what its digest says.
    #[error("artifact sha256:{digest} from the fabric is corrupt: {message}")]
    BadArtifact {
        /// The digest asked for.
        digest: String,
        /// What is wrong.
        message: String,
    },
    /// No such artifact in the fabric.
    #[error("artifact sha256:{0} is not in the fabric")]
    NoArtifact(String),
    /// Another node of the fabric answers to this node's name.
    #[error(
        "node name `{0}` is taken: another node of the fabric answers to it (give this one another with --node-name)"
    )]
    NameTaken(String),
}

/// Why a remote call did not come back with an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Nobody listens for the node: it is down or cut off.
    #[error("node `{0}` is unreachable")]
    Unreachable(String),
    /// No answer before the deadline.
    #[error("node `{node}` did not answer within {waited_ms} ms")]
    Timeout {
        /// The node.
        node: String,
        /// How long we waited.
        waited_ms: u64,
    },
    /// The answer was not one.
    #[error("node `{node}` answered a malformed reply: {message}")]
    Malformed {
        /// The node.
        node: String,
        /// What was wrong.
        message: String,
    },
    /// The fabric is not connected.
    #[error("fabric unavailable: {0}")]
    Transport(String),
}

/// A peer as this node sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    /// Its last accepted heartbeat.
    pub heartbeat: Heartbeat,
    /// Whether it beat recently.
    pub up: bool,
    /// Since its last beat, ms.
    pub last_seen_ms: u64,
    /// Round trip from here, µs (mean of probes).
    pub rtt_us: Option<u64>,
    /// Bandwidth from here, bytes/s, from real transfers.
    pub bandwidth_bps: Option<u64>,
}

struct PeerState {
    hb: Heartbeat,
    seen: Instant,
    rtt_us: Option<f64>,
    bandwidth_bps: Option<f64>,
    was_up: bool,
    /// It said it leaves (drained): down at once, its late beats ignored,
    /// until it beats as a new incarnation.
    left: bool,
}

impl PeerState {
    fn is_up(&self, down_after: Duration) -> bool {
        !self.left && self.seen.elapsed() < down_after
    }

    fn view(&self, down_after: Duration) -> Peer {
        let since = self.seen.elapsed();
        Peer {
            heartbeat: self.hb.clone(),
            up: self.is_up(down_after),
            last_seen_ms: since.as_millis() as u64,
            rtt_us: self.rtt_us.map(|r| r as u64),
            bandwidth_bps: self.bandwidth_bps.map(|b| b as u64),
        }
    }
}

struct Assembly {
    meta: CallMeta,
    reply: async_nats::Subject,
    parts: BytesMut,
    got: u32,
    started: Instant,
}

/// One node's membership of the fabric.
pub struct Mesh {
    config: MeshConfig,
    client: Client,
    js: jetstream::Context,
    incarnation: u64,
    started_ms: u64,
    /// Set when another node has the name (it started first): this node
    /// has left the fabric.
    name_taken: AtomicBool,
    /// It said it leaves ([`Mesh::leave`]): it beats no more.
    leaving: AtomicBool,
    peers: RwLock<BTreeMap<String, PeerState>>,
    refusals: Mutex<HashMap<(String, &'static str), Instant>>,
    running: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    registry: tokio::sync::Mutex<Option<kv::Store>>,
    artifacts: tokio::sync::Mutex<Option<object_store::ObjectStore>>,
    /// Set while the registry is joined (snapshot applied, watch running).
    joined: AtomicBool,
    rejoin: Notify,
    stopped: AtomicBool,
    /// Replies to this node's calls arrive on `<reply_prefix>.<call id>`,
    /// one subscription for all, routed here by call id.
    reply_prefix: String,
    replies: Mutex<HashMap<String, tokio::sync::mpsc::UnboundedSender<async_nats::Message>>>,
    artifact_bandwidth: Mutex<Option<f64>>,
    /// Stores this node keeps for others (`backend = "node"` naming it),
    /// by label, served on `weft.node.<node>.kv`.
    exported: RwLock<HashMap<String, Arc<dyn weft_kv::Bucket>>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn ewma(old: Option<f64>, sample: f64) -> f64 {
    match old {
        None => sample,
        Some(o) => o + EWMA * (sample - o),
    }
}

fn header<'a>(h: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    h.and_then(|h| h.get(name)).map(|v| v.as_str())
}

impl Mesh {
    /// Connects to NATS. Returns once the client exists; when the servers
    /// are unreachable the client keeps trying in the background and the
    /// node serves what it has meanwhile.
    pub async fn connect(config: MeshConfig) -> Result<Arc<Mesh>, MeshError> {
        if !valid_node_name(&config.name) {
            return Err(MeshError::Config(format!(
                "node name `{}`: use 1-63 of a-z, 0-9 and `-`, not starting or ending with `-`",
                config.name
            )));
        }
        let mut opts = match &config.auth {
            Auth::None => async_nats::ConnectOptions::new(),
            Auth::Credentials(p) => async_nats::ConnectOptions::with_credentials_file(p)
                .await
                .map_err(|e| MeshError::Config(format!("credentials file {}: {e}", p.display())))?,
            Auth::UserPassword { user, password } => {
                async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
            Auth::Token(t) => async_nats::ConnectOptions::with_token(t.clone()),
            Auth::NKey(seed) => async_nats::ConnectOptions::with_nkey(seed.clone()),
        };
        if config.tls.required {
            opts = opts.require_tls(true);
        }
        if let Some(ca) = &config.tls.ca {
            opts = opts.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &config.tls.client {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
        let name = config.name.clone();
        let opts = opts
            .name(format!("weft-{}", config.name))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .ping_interval(Duration::from_secs(5))
            .reconnect_delay_callback(|n| Duration::from_millis((100 * (n as u64 + 1)).min(2_000)))
            .event_callback(move |e| {
                let name = name.clone();
                async move {
                    match e {
                        async_nats::Event::Connected => {
                            tracing::info!(node = %name, "fabric: connected to NATS")
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!(node = %name, "fabric: disconnected from NATS")
                        }
                        other => tracing::warn!(node = %name, "fabric: {other}"),
                    }
                }
            });
        let urls: Vec<async_nats::ServerAddr> = config
            .url
            .split(',')
            .map(|u| {
                u.trim()
                    .parse()
                    .map_err(|e| MeshError::Config(format!("fabric URL `{u}`: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let client = opts
            .connect(urls)
            .await
            .map_err(|e| MeshError::Unavailable(e.to_string()))?;
        let js = jetstream::new(client.clone());
        let reply_prefix = client.new_inbox();
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&Sha256::digest(format!("{:?}{}", Instant::now(), now_ms()))[..8]);
        Ok(Arc::new(Mesh {
            incarnation: u64::from_le_bytes(seed),
            started_ms: now_ms(),
            name_taken: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
            config,
            client,
            js,
            peers: RwLock::new(BTreeMap::new()),
            refusals: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            registry: tokio::sync::Mutex::new(None),
            artifacts: tokio::sync::Mutex::new(None),
            joined: AtomicBool::new(false),
            rejoin: Notify::new(),
            stopped: AtomicBool::new(false),
            reply_prefix,
            replies: Mutex::new(HashMap::new()),
            artifact_bandwidth: Mutex::new(None),
            exported: RwLock::new(HashMap::new()),
        }))
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The node's configuration in the fabric.
    pub fn config(&self) -> &MeshConfig {
        &self.config
    }

    pub(crate) fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// Whether the NATS connection is up.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Whether the registry is joined (snapshot applied, changes followed).
    pub fn joined(&self) -> bool {
        self.joined.load(Ordering::Acquire)
    }

    fn chunk_size(&self) -> usize {
        let max = self.client.server_info().max_payload;
        // Room for headers and the frame; at least 4 KiB per chunk.
        max.saturating_sub(8 << 10).max(4 << 10)
    }

    /// Starts the background tasks: heartbeats, the peer view, probes, the
    /// call listener and the registry follower. They hold the mesh weakly
    /// and end when it is dropped.
    /// Subscribes before it returns: calls and probes sent to the node
    /// from then on are answered.
    ///
    /// A node whose name another node of the fabric answers to refuses to
    /// join ([`MeshError::NameTaken`]) when NATS is reachable at start; one
    /// that learns it later (NATS came up later, a partition healed) yields
    /// to whichever started first and leaves the fabric.
    pub async fn start(self: &Arc<Self>, host: Arc<dyn Host>) -> Result<(), MeshError> {
        self.check_name().await?;
        let sub = |subject: String| async move {
            self.client
                .subscribe(subject.clone())
                .await
                .map_err(|e| MeshError::Unavailable(format!("subscribing to {subject}: {e}")))
        };
        let name = &self.config.name;
        let heartbeats = sub("weft.hb.*".to_string()).await?;
        let leaves = sub(format!("{LEAVE_PREFIX}*")).await?;
        let replies = sub(format!("{}.*", self.reply_prefix)).await?;
        let pings = sub(format!("weft.node.{name}.ping")).await?;
        let calls = sub(format!("weft.node.{name}.call")).await?;
        let stores = sub(format!("weft.node.{name}.kv")).await?;
        let state_changes = sub(STATE_CHANGED.to_string()).await?;
        // Subscriptions reach the server once connected: wait for that a
        // little (so calls sent to this node from now on are answered), but
        // with the servers down start anyway and serve what the node has.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.flush()).await;
        let weak = Arc::downgrade(self);
        tokio::spawn(beat(weak.clone(), host.clone()));
        tokio::spawn(listen_heartbeats(weak.clone(), host.clone(), heartbeats));
        tokio::spawn(listen_leaves(weak.clone(), leaves));
        tokio::spawn(probe(weak.clone(), host.clone()));
        tokio::spawn(answer_pings(weak.clone(), self.client.clone(), pings));
        tokio::spawn(listen_calls(weak.clone(), host.clone(), calls));
        tokio::spawn(serve_stores(weak.clone(), self.client.clone(), stores));
        tokio::spawn(route_replies(weak.clone(), replies));
        tokio::spawn(listen_state_changes(
            weak.clone(),
            host.clone(),
            state_changes,
        ));
        tokio::spawn(follow_registry(weak, host));
        Ok(())
    }

    /// Asks whether a node answers to this node's name, before this one
    /// listens on it. With NATS unreachable for 2 s the question waits for
    /// the heartbeats (see [`Mesh::start`]).
    async fn check_name(&self) -> Result<(), MeshError> {
        let subject = format!("weft.node.{}.ping", self.config.name);
        let asked = async {
            for _ in 0..20 {
                if self.connected() {
                    return Some(self.client.request(subject.clone(), Bytes::new()).await);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None
        };
        match tokio::time::timeout(Duration::from_secs(3), asked).await {
            Ok(Some(Ok(_))) => Err(MeshError::NameTaken(self.config.name.clone())),
            _ => Ok(()),
        }
    }

    /// Serves `bucket` to the fabric as the store `label` this node keeps
    /// (`backend = "node"` naming it).
    pub fn export_store(&self, label: &str, bucket: Arc<dyn weft_kv::Bucket>) {
        self.exported.write().insert(label.to_string(), bucket);
    }

    /// The store `label` that the node `node` keeps, reached over this
    /// node's fabric connection (`backend = "node"`).
    pub fn node_bucket(&self, label: &str, node: &str) -> Arc<dyn weft_kv::Bucket> {
        crate::node_kv::bucket(self.client.clone(), label, node)
    }

    /// Whether this node left the fabric because another has its name.
    pub fn name_taken(&self) -> bool {
        self.name_taken.load(Ordering::Acquire)
    }

    fn refused(&self, peer: &str, what: &'static str, why: &dyn std::fmt::Display) {
        let mut last = self.refusals.lock();
        let key = (peer.to_string(), what);
        let now = Instant::now();
        if last
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < REFUSAL_LOG_EVERY)
        {
            return;
        }
        if last.len() > 10_000 {
            last.clear();
        }
        last.insert(key, now);
        tracing::warn!(peer = %peer, "fabric: refused {what} from `{peer}`: {why}");
    }

    /// The fabric as this node sees it: every peer heard from, this node
    /// excluded, by name.
    pub fn peers(&self) -> Vec<Peer> {
        let down_after = self.config.heartbeat * self.config.down_after;
        let peers = self.peers.read();
        peers.values().map(|p| p.view(down_after)).collect()
    }

    /// Whether `peer` beat recently (false for a peer never heard from).
    pub fn is_up(&self, peer: &str) -> bool {
        let down_after = self.config.heartbeat * self.config.down_after;
        let peers = self.peers.read();
        peers.get(peer).is_some_and(|p| p.is_up(down_after))
    }

    /// This node's own heartbeat, as peers receive it.
    pub fn heartbeat(&self, load: LocalLoad) -> Heartbeat {
        Heartbeat {
            v: WIRE_VERSION,
            name: self.config.name.clone(),
            incarnation: self.incarnation,
            tier: self.config.tier,
            labels: self.config.labels.clone(),
            slots: load.slots.max(1),
            inflight: load.inflight.min(load.slots.max(1)),
            queued: load.queued,
            warm: load.warm,
            stores: load.stores,
            store_rtt_us: load.store_rtt_us,
            broker: load.broker,
            topics: load.topics,
            started_ms: self.started_ms,
            cost: self.config.cost,
            energy: self.config.energy,
            exec_us: load.exec_us,
            exec_profile: load.exec_profile,
            sent_ms: now_ms(),
            http: self.config.http.clone(),
        }
    }

    /// Bandwidth of artifact fetches from the fabric's object store, bytes/s.
    pub fn artifact_bandwidth(&self) -> Option<u64> {
        self.artifact_bandwidth.lock().map(|b| b as u64)
    }

    fn accept_heartbeat(&self, subject: &str, payload: &[u8]) -> Option<Peer> {
        let node = subject.strip_prefix("weft.hb.")?;
        let max_skew = self.config.max_clock_skew.as_millis() as u64;
        let hb = match Heartbeat::parse(node, payload, now_ms(), max_skew) {
            Ok(hb) => hb,
            Err(e) => {
                let what = match e {
                    Refused::ClockSkew { .. } => "heartbeat (clock)",
                    Refused::Implausible(_) => "heartbeat (implausible)",
                    Refused::Malformed(_) => "heartbeat (malformed)",
                };
                self.refused(node, what, &e);
                return None;
            }
        };
        if hb.name == self.config.name {
            if hb.incarnation != self.incarnation {
                // Two nodes answer to one name: the one started later leaves.
                let other_first =
                    (hb.started_ms, hb.incarnation) < (self.started_ms, self.incarnation);
                if other_first && !self.name_taken.swap(true, Ordering::AcqRel) {
                    tracing::error!(
                        "fabric: another node, started earlier, answers to this node's name `{}`: this node leaves the fabric and serves alone (restart it with another --node-name)",
                        self.config.name
                    );
                    self.stopped.store(true, Ordering::Release);
                    self.rejoin.notify_waiters();
                } else {
                    self.refused(
                        node,
                        "heartbeat (name taken)",
                        &"another node, started later, uses this node's name",
                    );
                }
            }
            return None;
        }
        let mut peers = self.peers.write();
        let name = hb.name.clone();
        match peers.get_mut(&hb.name) {
            Some(p) => {
                if p.hb.incarnation != hb.incarnation {
                    tracing::info!(peer = %hb.name, "fabric: node `{}` restarted", hb.name);
                    p.left = false;
                } else if p.left {
                    // A beat sent before it left, late.
                    return None;
                }
                p.hb = hb;
                p.seen = Instant::now();
            }
            None => {
                tracing::info!(peer = %hb.name, tier = %hb.tier, "fabric: node `{}` joined", hb.name);
                peers.insert(
                    hb.name.clone(),
                    PeerState {
                        hb,
                        seen: Instant::now(),
                        rtt_us: None,
                        bandwidth_bps: None,
                        was_up: true,
                        left: false,
                    },
                );
            }
        }
        let down_after = self.config.heartbeat * self.config.down_after;
        peers.get(&name).map(|p| p.view(down_after))
    }

    /// Logs peers that went down or came back since the last look.
    fn note_transitions(&self) {
        let down_after = self.config.heartbeat * self.config.down_after;
        let mut peers = self.peers.write();
        for (name, p) in peers.iter_mut() {
            let up = p.is_up(down_after);
            if up != p.was_up {
                if up {
                    tracing::info!(peer = %name, "fabric: node `{name}` is back");
                } else {
                    tracing::warn!(peer = %name, "fabric: node `{name}` is down (no heartbeat for {} ms)", p.seen.elapsed().as_millis());
                }
                p.was_up = up;
            }
        }
    }

    /// Folds a probe's round trip in; returns the peer as it is now.
    fn observe_rtt(&self, peer: &str, rtt: Duration) -> Option<Peer> {
        let down_after = self.config.heartbeat * self.config.down_after;
        let mut peers = self.peers.write();
        let p = peers.get_mut(peer)?;
        p.rtt_us = Some(ewma(p.rtt_us, rtt.as_micros() as f64));
        Some(p.view(down_after))
    }

    fn observe_transfer(&self, peer: &str, bytes: u64, transfer: Duration) {
        if bytes < MIN_BANDWIDTH_SAMPLE || transfer.is_zero() {
            return;
        }
        let sample = bytes as f64 / transfer.as_secs_f64();
        let mut peers = self.peers.write();
        if let Some(p) = peers.get_mut(peer) {
            p.bandwidth_bps = Some(ewma(p.bandwidth_bps, sample));
        }
    }

    fn rtt_of(&self, peer: &str) -> Duration {
        let peers = self.peers.read();
        peers
            .get(peer)
            .and_then(|p| p.rtt_us)
            .map_or(Duration::ZERO, |r| Duration::from_micros(r as u64))
    }

    // ---- remote invocation -------------------------------------------

    /// Invokes a function on `node` and waits for its answer until
    /// `deadline`. Dropping the future cancels the remote work.
    pub async fn call(
        &self,
        node: &str,
        mut meta: CallMeta,
        body: Bytes,
        deadline: Instant,
    ) -> Result<(ReplyMeta, Bytes), CallError> {
        if !self.connected() {
            return Err(CallError::Transport("not connected to NATS".into()));
        }
        let chunk = self.chunk_size();
        let token = self.client.new_inbox();
        meta.id = token.rsplit('.').next().unwrap_or_default().to_string();
        let id = async_nats::Subject::from(format!("{}.{}", self.reply_prefix, meta.id));
        meta.from = self.config.name.clone();
        meta.body_len = body.len() as u64;
        meta.chunks = chunks_for(body.len(), chunk);
        meta.timeout_ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis() as u64;
        let subject = format!("weft.node.{node}.call");
        let (tx, mut inbox) = tokio::sync::mpsc::unbounded_channel();
        self.replies.lock().insert(meta.id.clone(), tx);
        let _registered = Registered {
            mesh: self,
            id: meta.id.clone(),
        };
        let started = Instant::now();
        let mut guard = CancelGuard {
            client: self.client.clone(),
            subject: subject.clone(),
            id: meta.id.clone(),
            from: self.config.name.clone(),
            armed: true,
        };
        let first = body.slice(..body.len().min(chunk));
        let mut h = HeaderMap::new();
        h.insert("weft-kind", "start");
        self.client
            .publish_with_reply_and_headers(subject.clone(), id.clone(), h, frame(&meta, &first))
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
        for (seq, part) in body.chunks(chunk).enumerate().skip(1) {
            let mut h = HeaderMap::new();
            h.insert("weft-kind", "chunk");
            h.insert("weft-call", meta.id.as_str());
            h.insert("weft-seq", seq.to_string().as_str());
            self.client
                .publish_with_headers(subject.clone(), h, body.slice_ref(part))
                .await
                .map_err(|e| CallError::Transport(e.to_string()))?;
        }
        // No flush: the client writes as soon as it can, and a flush would
        // wait a round trip to the server for nothing.
        let wait = deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(500);
        let answer = tokio::time::timeout(wait, read_reply(&mut inbox, node))
            .await
            .map_err(|_| CallError::Timeout {
                node: node.to_string(),
                waited_ms: started.elapsed().as_millis() as u64,
            })?;
        if !matches!(answer, Err(CallError::Timeout { .. })) {
            guard.armed = !matches!(answer, Ok(_) | Err(CallError::Unreachable(_)));
        }
        let (reply, out) = answer?;
        let elapsed = started.elapsed();
        let ran = match &reply.outcome {
            ReplyOutcome::Ok { wall_us, .. } => Duration::from_micros(*wall_us),
            ReplyOutcome::Err { .. } => Duration::ZERO,
        };
        let moved = meta.body_len + reply.body_len;
        let transfer = elapsed.saturating_sub(ran + self.rtt_of(node));
        self.observe_transfer(node, moved, transfer);
        Ok((reply, out))
    }

    async fn serve_call(
        self: &Arc<Self>,
        host: &Arc<dyn Host>,
        assemblies: &mut HashMap<String, Assembly>,
        msg: async_nats::Message,
    ) {
        let kind = header(msg.headers.as_ref(), "weft-kind").unwrap_or("start");
        match kind {
            "start" => {
                let (meta, first): (CallMeta, Bytes) = match unframe(&msg.payload) {
                    Ok(x) => x,
                    Err(e) => {
                        self.refused("unknown", "call", &e);
                        return;
                    }
                };
                let Some(reply) = msg.reply.clone() else {
                    self.refused(&meta.from, "call", &"no reply subject");
                    return;
                };
                if let Err(why) = self.check_call(&meta, first.len()) {
                    self.refused(&meta.from, "call", &why);
                    let out = ReplyOutcome::Err {
                        code: weft_codes::Code::InvalidCall.as_str().into(),
                        message: why,
                    };
                    self.answer(&reply, out, Bytes::new()).await;
                    return;
                }
                let mut parts = BytesMut::with_capacity(meta.body_len as usize);
                parts.extend_from_slice(&first);
                let a = Assembly {
                    meta,
                    reply,
                    parts,
                    got: 1,
                    started: Instant::now(),
                };
                if a.got == a.meta.chunks {
                    self.run_call(host, a);
                } else {
                    assemblies.insert(a.meta.id.clone(), a);
                }
            }
            "chunk" => {
                let id = header(msg.headers.as_ref(), "weft-call").unwrap_or_default();
                let seq: Option<u32> =
                    header(msg.headers.as_ref(), "weft-seq").and_then(|s| s.parse().ok());
                let Some(a) = assemblies.get_mut(id) else {
                    return;
                };
                if seq != Some(a.got)
                    || a.parts.len() + msg.payload.len() > a.meta.body_len as usize
                {
                    let a = assemblies.remove(id);
                    if let Some(a) = a {
                        let why = format!(
                            "chunk {seq:?} of call {id} out of order or beyond its declared {} bytes",
                            a.meta.body_len
                        );
                        self.refused(&a.meta.from, "call", &why);
                        let out = ReplyOutcome::Err {
                            code: weft_codes::Code::InvalidCall.as_str().into(),
                            message: why,
                        };
                        self.answer(&a.reply, out, Bytes::new()).await;
                    }
                    return;
                }
                a.parts.extend_from_slice(&msg.payload);
                a.got += 1;
                if a.got == a.meta.chunks
                    && let Some(a) = assemblies.remove(id)
                {
                    self.run_call(host, a);
                }
            }
            "cancel" => {
                let id = header(msg.headers.as_ref(), "weft-call").unwrap_or_default();
                let from = header(msg.headers.as_ref(), "weft-from").unwrap_or_default();
                assemblies.retain(|k, a| !(k == id && a.meta.from == from));
                let task = self.running.lock().remove(id);
                if let Some(task) = task {
                    tracing::info!(peer = %from, call = %id, "fabric: call cancelled by its caller");
                    task.abort();
                }
            }
            other => self.refused(
                "unknown",
                "call",
                &format!("unknown message kind `{other}`"),
            ),
        }
        assemblies.retain(|_, a| a.started.elapsed() < ASSEMBLY_TTL);
    }

    fn check_call(&self, meta: &CallMeta, first: usize) -> Result<(), String> {
        if !valid_node_name(&meta.from) {
            return Err(format!("invalid caller name `{}`", meta.from));
        }
        if meta.body_len > self.config.max_body {
            return Err(format!(
                "body of {} bytes is above the {} this node assembles",
                meta.body_len, self.config.max_body
            ));
        }
        let most = chunks_for(meta.body_len as usize, 4 << 10);
        if meta.chunks == 0 || meta.chunks > most.max(1) {
            return Err(format!(
                "{} chunks for {} bytes",
                meta.chunks, meta.body_len
            ));
        }
        if first as u64 > meta.body_len || (meta.chunks == 1 && first as u64 != meta.body_len) {
            return Err(format!(
                "first chunk of {first} bytes for a body of {}",
                meta.body_len
            ));
        }
        if meta.id.is_empty() || meta.id.len() > 64 {
            return Err("missing or overlong call id".into());
        }
        Ok(())
    }

    fn run_call(self: &Arc<Self>, host: &Arc<dyn Host>, a: Assembly) {
        let this = self.clone();
        let host = host.clone();
        let id = a.meta.id.clone();
        let running_id = id.clone();
        // Registered while the lock is held, so the task (which takes the
        // lock to forget itself) cannot finish before it is registered.
        let mut running = self.running.lock();
        let task = tokio::spawn(async move {
            let (outcome, body) = host.serve(a.meta, a.parts.freeze()).await;
            this.running.lock().remove(&running_id);
            this.answer(&a.reply, outcome, body).await;
        });
        running.insert(id, task.abort_handle());
    }

    async fn answer(&self, reply: &async_nats::Subject, outcome: ReplyOutcome, body: Bytes) {
        let chunk = self.chunk_size();
        let meta = ReplyMeta {
            node: self.config.name.clone(),
            outcome,
            body_len: body.len() as u64,
            chunks: chunks_for(body.len(), chunk),
        };
        let first = body.slice(..body.len().min(chunk));
        let sent = async {
            self.client
                .publish(reply.clone(), frame(&meta, &first))
                .await?;
            for (seq, part) in body.chunks(chunk).enumerate().skip(1) {
                let mut h = HeaderMap::new();
                h.insert("weft-seq", seq.to_string().as_str());
                self.client
                    .publish_with_headers(reply.clone(), h, body.slice_ref(part))
                    .await?;
            }
            Ok::<_, async_nats::PublishError>(())
        };
        if let Err(e) = sent.await {
            tracing::warn!("fabric: sending a reply failed: {e}");
        }
    }

    // ---- registry and artifacts --------------------------------------

    async fn registry(&self) -> Result<kv::Store, MeshError> {
        let mut slot = self.registry.lock().await;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let store = open_kv_bucket(&self.js, REGISTRY_BUCKET, "Weft function registry")
            .await
            .map_err(|e| MeshError::Unavailable(format!("registry bucket: {e}")))?;
        *slot = Some(store.clone());
        Ok(store)
    }

    async fn artifacts(&self) -> Result<object_store::ObjectStore, MeshError> {
        let mut slot = self.artifacts.lock().await;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let store = match self.js.get_object_store(ARTIFACT_BUCKET).await {
            Ok(s) => s,
            Err(_) => self
                .js
                .create_object_store(object_store::Config {
                    bucket: ARTIFACT_BUCKET.to_string(),
                    description: Some("Weft artifacts by sha256".to_string()),
                    ..Default::default()
                })
                .await
                .map_err(|e| MeshError::Unavailable(format!("artifact bucket: {e}")))?,
        };
        *slot = Some(store.clone());
        Ok(store)
    }

    /// The registry's value of `key` and its revision.
    pub async fn registry_get(&self, key: &str) -> Result<Option<(Bytes, u64)>, MeshError> {
        bounded("registry read", self.registry_get_inner(key)).await
    }

    async fn registry_get_inner(&self, key: &str) -> Result<Option<(Bytes, u64)>, MeshError> {
        let kv = self.registry().await?;
        let e = kv
            .entry(key)
            .await
            .map_err(|e| MeshError::Unavailable(format!("registry read: {e}")))?;
        Ok(e.and_then(|e| match e.operation {
            kv::Operation::Put => Some((e.value, e.revision)),
            _ => None,
        }))
    }

    /// Writes `key` if its revision is still `expected` (`None`: the key
    /// must not exist). Returns the new revision.
    pub async fn registry_put(
        &self,
        key: &str,
        value: Bytes,
        expected: Option<u64>,
    ) -> Result<u64, MeshError> {
        bounded(
            "registry write",
            self.registry_put_inner(key, value, expected),
        )
        .await
    }

    async fn registry_put_inner(
        &self,
        key: &str,
        value: Bytes,
        expected: Option<u64>,
    ) -> Result<u64, MeshError> {
        let kv = self.registry().await?;
        match expected {
            Some(rev) => kv.update(key, value, rev).await.map_err(|e| {
                if e.kind() == kv::UpdateErrorKind::WrongLastRevision {
                    MeshError::Conflict(key.to_string())
                } else {
                    MeshError::Unavailable(format!("registry write: {e}"))
                }
            }),
            None => kv.create(key, value).await.map_err(|e| {
                if e.kind() == kv::CreateErrorKind::AlreadyExists {
                    MeshError::Conflict(key.to_string())
                } else {
                    MeshError::Unavailable(format!("registry write: {e}"))
                }
            }),
        }
    }

    /// Deletes `key` from the registry.
    pub async fn registry_delete(&self, key: &str) -> Result<(), MeshError> {
        bounded("registry delete", async {
            let kv = self.registry().await?;
            kv.delete(key)
                .await
                .map_err(|e| MeshError::Unavailable(format!("registry delete: {e}")))
        })
        .await
    }

    /// Stores an artifact in the fabric unless it is there already.
    pub async fn artifact_put(&self, digest: &str, bytes: &[u8]) -> Result<(), MeshError> {
        bounded("artifact upload", self.artifact_put_inner(digest, bytes)).await
    }

    async fn artifact_put_inner(&self, digest: &str, bytes: &[u8]) -> Result<(), MeshError> {
        let store = self.artifacts().await?;
        if store.info(digest).await.is_ok() {
            return Ok(());
        }
        let meta = object_store::ObjectMetadata {
            name: digest.to_string(),
            description: Some(format!("uploaded by {}", self.config.name)),
            chunk_size: Some(self.chunk_size().min(128 << 10)),
            ..Default::default()
        };
        let mut reader = bytes;
        store
            .put(meta, &mut reader)
            .await
            .map_err(|e| MeshError::Unavailable(format!("artifact upload: {e}")))?;
        Ok(())
    }

    /// Fetches an artifact from the fabric and checks it is what its
    /// digest says.
    pub async fn artifact_get(&self, digest: &str) -> Result<Bytes, MeshError> {
        bounded("artifact fetch", self.artifact_get_inner(digest)).await
    }

    async fn artifact_get_inner(&self, digest: &str) -> Result<Bytes, MeshError> {
        let store = self.artifacts().await?;
        let started = Instant::now();
        let mut obj = store.get(digest).await.map_err(|e| {
            if e.kind() == object_store::GetErrorKind::NotFound {
                MeshError::NoArtifact(digest.to_string())
            } else {
                MeshError::Unavailable(format!("artifact fetch: {e}"))
            }
        })?;
        let by = obj
            .info()
            .description
            .clone()
            .unwrap_or_else(|| "unknown uploader".into());
        let mut buf = Vec::new();
        obj.read_to_end(&mut buf)
            .await
            .map_err(|e| MeshError::BadArtifact {
                digest: digest.to_string(),
                message: format!("{e} ({by})"),
            })?;
        let got = hex::encode(Sha256::digest(&buf));
        if got != digest {
            let e = MeshError::BadArtifact {
                digest: digest.to_string(),
                message: format!("its bytes hash to sha256:{got} ({by})"),
            };
            tracing::error!("fabric: {e}; refused");
            return Err(e);
        }
        if buf.len() as u64 >= MIN_BANDWIDTH_SAMPLE {
            let sample = buf.len() as f64 / started.elapsed().as_secs_f64().max(1e-6);
            let mut bw = self.artifact_bandwidth.lock();
            *bw = Some(ewma(*bw, sample));
        }
        Ok(Bytes::from(buf))
    }

    /// Says this node leaves (it is draining): it beats no more, and its
    /// peers mark it down at once rather than after missed beats, so that
    /// what it owned (actors, workflow runs) moves now. Calls under way
    /// are still answered until [`Mesh::shutdown`].
    pub async fn leave(&self) {
        if self.leaving.swap(true, Ordering::AcqRel) || !self.connected() {
            return;
        }
        let subject = format!("{LEAVE_PREFIX}{}", self.config.name);
        let said = self
            .client
            .publish(subject, Bytes::from(self.incarnation.to_string()))
            .await;
        if let Err(e) = said {
            tracing::warn!("fabric: saying this node leaves: {e}");
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.client.flush()).await;
    }

    /// A peer said it leaves: down now, if that is the incarnation known.
    fn peer_left(&self, subject: &str, payload: &[u8]) {
        let Some(name) = subject.strip_prefix(LEAVE_PREFIX) else {
            return;
        };
        let Some(incarnation) = std::str::from_utf8(payload)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            self.refused(name, "leave", &"not an incarnation number");
            return;
        };
        let mut peers = self.peers.write();
        if let Some(p) = peers.get_mut(name)
            && p.hb.incarnation == incarnation
            && !p.left
        {
            p.left = true;
            p.was_up = false;
            tracing::info!(peer = %name, "fabric: node `{name}` left (drained)");
        }
    }

    /// Leaves the fabric: stops beating (peers mark the node down after a
    /// few beats, at once if it said it leaves), drains the NATS
    /// connection and ends every task.
    pub async fn shutdown(&self) {
        self.stopped.store(true, Ordering::Release);
        self.rejoin.notify_waiters();
        if let Err(e) = self.client.drain().await {
            tracing::debug!("fabric: draining: {e}");
        }
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Tells the other nodes that this one changed actors' state outside
    /// their owners' turns (best effort: a node that misses it reads the
    /// change at its next membership change, or fails its next write once).
    pub async fn announce_state_changed(&self) {
        let name = Bytes::from(self.config.name.clone());
        if let Err(e) = self.client.publish(STATE_CHANGED, name).await {
            tracing::warn!("fabric: announcing a change of state: {e}");
        }
    }

    /// Asks every task that follows the registry to rejoin (after a write
    /// failed for want of the fabric, say).
    pub fn rejoin(&self) {
        self.rejoin.notify_one();
    }
}

/// Forgets a call's reply route when the call ends, however it ends.
struct Registered<'a> {
    mesh: &'a Mesh,
    id: String,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.mesh.replies.lock().remove(&self.id);
    }
}

/// Routes replies to the calls waiting for them; a reply for no call (it
/// gave up, or a peer's mistake) is dropped.
async fn route_replies(mesh: Weak<Mesh>, mut sub: async_nats::Subscriber) {
    while let Some(msg) = sub.next().await {
        let Some(m) = mesh.upgrade() else { return };
        let id = msg.subject.as_str().rsplit('.').next().unwrap_or_default();
        let tx = m.replies.lock().get(id).cloned();
        if let Some(tx) = tx {
            let _ = tx.send(msg);
        }
    }
}

/// Opens a key-value bucket with one value per key, making its stream if
/// needed. The stream is made here, not by `create_key_value`: that asks for
/// account details nats-server 2.9 does not give.
pub(crate) async fn open_kv_bucket(
    js: &jetstream::Context,
    bucket: &str,
    description: &str,
) -> Result<kv::Store, String> {
    js.get_or_create_stream(jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(description.to_string()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    js.get_key_value(bucket).await.map_err(|e| e.to_string())
}

/// Longest a registry or artifact operation may take before the fabric is
/// called unavailable (a disconnected client would otherwise wait).
const FABRIC_OP_TIMEOUT: Duration = Duration::from_secs(10);

async fn bounded<T>(
    what: &str,
    op: impl std::future::Future<Output = Result<T, MeshError>>,
) -> Result<T, MeshError> {
    tokio::time::timeout(FABRIC_OP_TIMEOUT, op)
        .await
        .unwrap_or_else(|_| {
            Err(MeshError::Unavailable(format!(
                "{what}: no answer within {} s",
                FABRIC_OP_TIMEOUT.as_secs()
            )))
        })
}

/// Publishes a cancel for a call whose caller gave up.
struct CancelGuard {
    client: Client,
    subject: String,
    id: String,
    from: String,
    armed: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let client = self.client.clone();
        let subject = std::mem::take(&mut self.subject);
        let mut h = HeaderMap::new();
        h.insert("weft-kind", "cancel");
        h.insert("weft-call", self.id.as_str());
        h.insert("weft-from", self.from.as_str());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = client.publish_with_headers(subject, h, Bytes::new()).await;
                let _ = client.flush().await;
            });
        }
    }
}

async fn read_reply(
    inbox: &mut tokio::sync::mpsc::UnboundedReceiver<async_nats::Message>,
    node: &str,
) -> Result<(ReplyMeta, Bytes), CallError> {
    let malformed = |message: String| CallError::Malformed {
        node: node.to_string(),
        message,
    };
    let Some(first) = inbox.recv().await else {
        return Err(CallError::Transport("the reply subscription ended".into()));
    };
    if first.status == Some(StatusCode::NO_RESPONDERS) {
        return Err(CallError::Unreachable(node.to_string()));
    }
    let (meta, part): (ReplyMeta, Bytes) =
        unframe(&first.payload).map_err(|e| malformed(e.to_string()))?;
    if meta.node != node {
        return Err(malformed(format!("signed by `{}`", meta.node)));
    }
    if part.len() as u64 > meta.body_len || meta.chunks == 0 {
        return Err(malformed("first chunk beyond the declared body".into()));
    }
    if meta.chunks == 1 {
        if part.len() as u64 != meta.body_len {
            return Err(malformed("body shorter than declared".into()));
        }
        return Ok((meta, part));
    }
    let mut body = BytesMut::with_capacity(meta.body_len.min(1 << 30) as usize);
    body.extend_from_slice(&part);
    for seq in 1..meta.chunks {
        let Some(msg) = inbox.recv().await else {
            return Err(CallError::Transport("the reply subscription ended".into()));
        };
        let got: Option<u32> =
            header(msg.headers.as_ref(), "weft-seq").and_then(|s| s.parse().ok());
        if got != Some(seq) || (body.len() + msg.payload.len()) as u64 > meta.body_len {
            return Err(malformed(format!("chunk {got:?} where {seq} was due")));
        }
        body.extend_from_slice(&msg.payload);
    }
    if body.len() as u64 != meta.body_len {
        return Err(malformed("body shorter than declared".into()));
    }
    Ok((meta, body.freeze()))
}

async fn beat(mesh: Weak<Mesh>, host: Arc<dyn Host>) {
    let period = match mesh.upgrade() {
        Some(m) => m.config.heartbeat,
        None => return,
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(m) = mesh.upgrade() else { return };
        if m.stopped() || m.leaving.load(Ordering::Acquire) {
            return;
        }
        m.note_transitions();
        if !m.connected() {
            continue;
        }
        let hb = m.heartbeat(host.load());
        let Ok(payload) = serde_json::to_vec(&hb) else {
            continue;
        };
        let subject = format!("weft.hb.{}", m.config.name);
        if let Err(e) = m.client.publish(subject, payload.into()).await {
            tracing::debug!("fabric: heartbeat not sent: {e}");
        }
    }
}

async fn listen_heartbeats(mesh: Weak<Mesh>, host: Arc<dyn Host>, mut sub: async_nats::Subscriber) {
    while let Some(msg) = sub.next().await {
        let Some(m) = mesh.upgrade() else { return };
        if m.stopped() {
            return;
        }
        if let Some(peer) = m.accept_heartbeat(msg.subject.as_str(), &msg.payload) {
            host.peer(&peer);
        }
    }
}

/// Peers that say they leave; the router's sweep sees them down within a
/// tenth of a beat.
async fn listen_leaves(mesh: Weak<Mesh>, mut sub: async_nats::Subscriber) {
    while let Some(msg) = sub.next().await {
        let Some(m) = mesh.upgrade() else { return };
        if m.stopped() {
            return;
        }
        m.peer_left(msg.subject.as_str(), &msg.payload);
    }
}

async fn probe(mesh: Weak<Mesh>, host: Arc<dyn Host>) {
    let mut tick = tokio::time::interval(PING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(m) = mesh.upgrade() else { return };
        if m.stopped() {
            return;
        }
        if !m.connected() {
            continue;
        }
        let targets: Vec<String> = m
            .peers()
            .into_iter()
            .filter(|p| p.up)
            .map(|p| p.heartbeat.name)
            .collect();
        let pings = targets.into_iter().map(|peer| {
            let m = m.clone();
            let host = host.clone();
            async move {
                let started = Instant::now();
                let asked = m
                    .client
                    .request(format!("weft.node.{peer}.ping"), Bytes::new());
                if let Ok(Ok(_)) = tokio::time::timeout(PING_EVERY, asked).await
                    && let Some(p) = m.observe_rtt(&peer, started.elapsed())
                {
                    host.peer(&p);
                }
            }
        });
        futures::future::join_all(pings).await;
    }
}

async fn answer_pings(mesh: Weak<Mesh>, client: Client, mut sub: async_nats::Subscriber) {
    while let Some(msg) = sub.next().await {
        if mesh.upgrade().is_none_or(|m| m.stopped()) {
            return;
        }
        if let Some(reply) = msg.reply {
            let _ = client.publish(reply, Bytes::new()).await;
        }
    }
}

/// Answers requests to the stores this node keeps, each in a task of its
/// own (a slow write does not hold up a read).
async fn serve_stores(mesh: Weak<Mesh>, client: Client, mut sub: async_nats::Subscriber) {
    while let Some(msg) = sub.next().await {
        let Some(m) = mesh.upgrade() else { return };
        if m.stopped() {
            return;
        }
        let Some(reply) = msg.reply else { continue };
        let client = client.clone();
        tokio::spawn(async move {
            let exported = |label: &str| m.exported.read().get(label).cloned();
            let answer = crate::node_kv::serve(&exported, &msg.payload).await;
            let _ = client.publish(reply, answer.into()).await;
        });
    }
}

async fn listen_calls(mesh: Weak<Mesh>, host: Arc<dyn Host>, mut sub: async_nats::Subscriber) {
    let mut assemblies = HashMap::new();
    while let Some(msg) = sub.next().await {
        let Some(m) = mesh.upgrade() else { return };
        if m.stopped() {
            return;
        }
        m.serve_call(&host, &mut assemblies, msg).await;
    }
}

/// Where a node says it changed actors' state outside their owners' turns;
/// the payload is its name.
const STATE_CHANGED: &str = "weft.state.changed";

/// `weft.leave.<node>`: the node leaves (drained); its incarnation, as
/// decimal text.
const LEAVE_PREFIX: &str = "weft.leave.";

async fn listen_state_changes(
    mesh: Weak<Mesh>,
    host: Arc<dyn Host>,
    mut sub: async_nats::Subscriber,
) {
    while let Some(msg) = sub.next().await {
        let Some(m) = mesh.upgrade() else { return };
        if m.stopped() {
            return;
        }
        if msg.payload.as_ref() != m.config.name.as_bytes() {
            host.state_changed();
        }
    }
}

/// Joins the registry (a snapshot, then every change) and rejoins after
/// any failure, so a node that was cut off catches up.
async fn follow_registry(mesh: Weak<Mesh>, host: Arc<dyn Host>) {
    // 100 ms doubling to 5 s, jittered (between the delay and twice it), so
    // nodes cut off together do not rejoin together.
    let delays = || {
        use backon::BackoffBuilder;
        backon::ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_millis(2_500))
            .with_jitter()
            .without_max_times()
            .build()
    };
    let mut backoff = delays();
    loop {
        let Some(m) = mesh.upgrade() else { return };
        if m.stopped() {
            return;
        }
        let wait = match m.follow_once(&host).await {
            Ok(()) => {
                backoff = delays();
                backoff.next().unwrap_or(Duration::from_millis(200))
            }
            Err(e) => {
                let wait = backoff.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(
                    "fabric: registry: {e}; rejoining in {} ms",
                    wait.as_millis()
                );
                wait
            }
        };
        m.joined.store(false, Ordering::Release);
        if m.stopped() {
            return;
        }
        let rejoin = m.clone();
        drop(m);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = rejoin.rejoin.notified() => {}
        }
    }
}

impl Mesh {
    async fn follow_once(&self, host: &Arc<dyn Host>) -> Result<(), MeshError> {
        let kv = match self.registry().await {
            Ok(kv) => kv,
            Err(e) => {
                // A bucket handle from before a cut may be stale: ask again.
                *self.registry.lock().await = None;
                return Err(e);
            }
        };
        let unavailable = |e: &dyn std::fmt::Display| MeshError::Unavailable(e.to_string());
        // Watch first, so nothing written between the snapshot and the
        // watch is missed; the snapshot comes from the watch's initial
        // values (last value per key).
        let mut watch = kv
            .watch_with_history(">")
            .await
            .map_err(|e| unavailable(&e))?;
        // Whether the bucket holds anything, asked after the watch exists:
        // an empty bucket sends no initial values, a non-empty one sends its
        // last value per key, the last with nothing pending after it.
        let mut stream = self
            .js
            .get_stream(format!("KV_{REGISTRY_BUCKET}"))
            .await
            .map_err(|e| unavailable(&e))?;
        let held = stream
            .info()
            .await
            .map_err(|e| unavailable(&e))?
            .state
            .messages;
        let mut snapshot: BTreeMap<String, Bytes> = BTreeMap::new();
        let mut live = false;
        if held == 0 {
            host.registry(RegistryEvent::Snapshot(Vec::new())).await;
            self.joined.store(true, Ordering::Release);
            live = true;
        }
        loop {
            // A snapshot that does not complete in time is an error (the
            // node rejoins), never an empty registry.
            let wait = if live {
                Duration::MAX
            } else {
                SNAPSHOT_TIMEOUT
            };
            let next = tokio::select! {
                n = tokio::time::timeout(wait, watch.next()) => n,
                _ = self.rejoin.notified() => return Ok(()),
            };
            let Ok(next) = next else {
                return Err(MeshError::Unavailable(format!(
                    "the registry snapshot did not arrive within {} s",
                    SNAPSHOT_TIMEOUT.as_secs()
                )));
            };
            let Some(entry) = next else {
                return Err(MeshError::Unavailable("the registry watch ended".into()));
            };
            let entry = entry.map_err(|e| unavailable(&e))?;
            if live {
                let event = match entry.operation {
                    kv::Operation::Put => RegistryEvent::Put {
                        key: entry.key,
                        value: entry.value,
                    },
                    kv::Operation::Delete | kv::Operation::Purge => {
                        RegistryEvent::Delete { key: entry.key }
                    }
                };
                host.registry(event).await;
                continue;
            }
            match entry.operation {
                kv::Operation::Put => {
                    snapshot.insert(entry.key, entry.value);
                }
                kv::Operation::Delete | kv::Operation::Purge => {
                    snapshot.remove(&entry.key);
                }
            }
            if entry.delta == 0 {
                host.registry(RegistryEvent::Snapshot(
                    std::mem::take(&mut snapshot).into_iter().collect(),
                ))
                .await;
                self.joined.store(true, Ordering::Release);
                live = true;
            }
        }
    }
}
