//! The node in a fabric: joining it, and what the mesh asks of the node —
//! its load for heartbeats, each peer's heartbeat for the view, calls that
//! arrive (through the router, like every invocation), registry changes
//! (to the controller's lifecycle).

use crate::error::{Error, Result};
use crate::placer::{Placer, local_row};
use crate::request::Request;
use crate::router::{Fabric, Router};
use bytes::Bytes;
use futures::future::BoxFuture;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};
use weft_manifest::FabricConfig;
use weft_mesh::{
    Auth, CallMeta, Host, LocalLoad, Mesh, MeshConfig, MeshError, Peer, RegistryEvent,
    ReplyOutcome, Tls,
};
use weft_sched::Tier;

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
    /// Key-value stores it serves.
    pub stores: BTreeSet<String>,
    /// Round trip from this node, µs.
    pub rtt_us: Option<u64>,
    /// Bandwidth from this node, bytes/s (from real transfers).
    pub bandwidth_bps: Option<u64>,
    /// Since its last heartbeat, ms.
    pub last_seen_ms: u64,
    /// Its HTTP address.
    pub http: Option<String>,
    /// Execution profiles of the functions it ran, by function: p50, p90,
    /// p99 and max of its last runs there, µs (what a hand-off by slack
    /// plans with).
    pub exec_profile: BTreeMap<String, [u64; 4]>,
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
    /// This node left the fabric: another node, started earlier, has its
    /// name.
    pub name_taken: bool,
    /// Every node, this one first.
    pub nodes: Vec<NodeInfo>,
}

struct FabricHost {
    router: Weak<Router>,
}

impl Host for FabricHost {
    fn load(&self) -> LocalLoad {
        match self.router.upgrade() {
            Some(r) => r.announced_load(),
            None => LocalLoad::default(),
        }
    }

    fn peer(&self, peer: &Peer) {
        if let Some(r) = self.router.upgrade()
            && let Some(f) = r.fabric.get()
            && f.placer.peer(peer)
        {
            r.controller.membership_changed();
        }
    }

    fn state_changed(&self) {
        if let Some(r) = self.router.upgrade() {
            r.controller.membership_changed();
        }
    }

    fn serve(&self, call: CallMeta, body: Bytes) -> BoxFuture<'static, (ReplyOutcome, Bytes)> {
        let router = self.router.upgrade();
        Box::pin(async move {
            match router {
                Some(r) => r.serve(Request::from_call(call, body)).await,
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
        let router = self.router.upgrade();
        Box::pin(async move {
            if let Some(r) = router {
                r.controller.apply_registry(event).await;
            }
        })
    }
}

/// What `--fabric`, `--tier`, `--label` and `--node-name` and the config's
/// `[fabric]` make together; `default_name` is the node's name when none is
/// given.
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

/// Joins a fabric: connects to NATS, refuses a name another node answers
/// to, starts heartbeats, the call listener and the registry follower, and
/// keeps the view current. Returns once subscribed; when NATS is
/// unreachable the node keeps trying and serves meanwhile.
pub async fn join_fabric(router: &Arc<Router>, config: MeshConfig) -> Result<()> {
    let unavailable = |e: MeshError| match e {
        e @ MeshError::NameTaken(_) => Error::NameTaken(e.to_string()),
        other => Error::FabricUnavailable(other.to_string()),
    };
    let c = &router.controller;
    let cfg = config.clone();
    let mesh = Mesh::connect(config).await.map_err(unavailable)?;
    let row = local_row(
        &cfg,
        c.max_instances(),
        c.kv_labels(),
        c.config().mqtt.is_some(),
        c.config().topics.clone().unwrap_or_default(),
    );
    let host = Arc::new(FabricHost {
        router: Arc::downgrade(router),
    });
    router
        .fabric
        .set(Fabric {
            mesh: mesh.clone(),
            placer: Placer::new(row),
        })
        .map_err(|_| Error::FabricUnavailable("already in a fabric".into()))?;
    mesh.start(host).await.map_err(unavailable)?;
    c.attach_fabric(&mesh)?;
    // Peers that stop beating are marked down in the view, within a tenth
    // of a beat of the mesh noticing.
    let weak = Arc::downgrade(router);
    let period = (cfg.heartbeat / 10).max(std::time::Duration::from_millis(10));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            let Some(r) = weak.upgrade() else { break };
            if let Some(f) = r.fabric.get()
                && f.placer.sweep(|n| f.mesh.is_up(n))
            {
                r.controller.membership_changed();
            }
        }
    });
    // The round trip to each store, measured once a beat: what reaching
    // state there costs from here, in this node's row and its beats.
    let weak = Arc::downgrade(router);
    let beat = cfg.heartbeat;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(beat);
        loop {
            tick.tick().await;
            let Some(r) = weak.upgrade() else { break };
            let rtts = r.controller.probe_stores().await;
            if let Some(f) = r.fabric.get() {
                f.placer.set_store_rtts(rtts);
            }
        }
    });
    Ok(())
}

impl Router {
    /// What this node announces in its heartbeats.
    pub(crate) fn announced_load(&self) -> LocalLoad {
        let c = &self.controller;
        let functions = c.functions();
        LocalLoad {
            slots: c.max_instances(),
            inflight: c.running() as u32,
            queued: functions.iter().map(|f| f.waiting()).sum(),
            warm: functions
                .iter()
                .filter(|f| f.is_warm())
                .map(|f| f.name().to_string())
                .collect(),
            stores: c.kv_labels().into_iter().collect(),
            store_rtt_us: c.store_rtts(),
            broker: c.config().mqtt.is_some(),
            topics: c.config().topics.clone().unwrap_or_default(),
            exec_us: functions
                .iter()
                .filter_map(|f| f.exec_us().map(|u| (f.name().to_string(), u)))
                .collect(),
            exec_profile: functions
                .iter()
                .filter_map(|f| Some((f.name().to_string(), f.profile().summary()?)))
                .collect(),
        }
    }

    /// Tells the fabric this node leaves (it is draining): peers stop
    /// counting on it at once, and what it owned moves (`Mesh::leave`).
    pub async fn announce_leaving(&self) {
        if let Some(m) = self.mesh() {
            m.leave().await;
        }
    }

    /// Leaves the fabric (at shutdown): peers mark this node down.
    pub async fn leave_fabric(&self) {
        if let Some(m) = self.mesh() {
            m.shutdown().await;
        }
    }

    /// The fabric as this node sees it; `None` when standalone.
    pub fn fabric_status(&self) -> Option<FabricStatus> {
        let mesh = self.mesh()?;
        let me = mesh.heartbeat(self.announced_load());
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
            stores: me.stores,
            rtt_us: Some(0),
            bandwidth_bps: None,
            last_seen_ms: 0,
            http: me.http,
            exec_profile: me.exec_profile,
        }];
        let placer = &self.fabric.get()?.placer;
        for p in mesh.peers() {
            let hb = p.heartbeat;
            // Up as placement sees it (the view is swept a tenth of a beat
            // after the mesh notices), so what `weft nodes` says is what
            // the next decision uses.
            let up = placer.is_up(&hb.name);
            nodes.push(NodeInfo {
                up,
                name: hb.name,
                local: false,
                tier: hb.tier.to_string(),
                labels: hb.labels,
                slots: hb.slots,
                inflight: hb.inflight,
                queued: hb.queued,
                warm: hb.warm,
                stores: hb.stores,
                rtt_us: p.rtt_us,
                bandwidth_bps: p.bandwidth_bps,
                last_seen_ms: p.last_seen_ms,
                http: hb.http,
                exec_profile: hb.exec_profile,
            });
        }
        Some(FabricStatus {
            node: mesh.name().to_string(),
            connected: mesh.connected() && !mesh.name_taken(),
            registry_joined: mesh.joined(),
            name_taken: mesh.name_taken(),
            nodes,
        })
    }
}
