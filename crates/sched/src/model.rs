//! What the policy reads: the nodes as the deciding node sees them, and the
//! request with its function's placement requirements.

use crate::exec::ExecTable;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// Where a node sits in the edge-cloud continuum, nearest the data first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// A sensor, camera or gateway box next to the data.
    Device,
    /// A small server on the site (`site` label).
    Edge,
    /// A regional aggregation point between the sites and the cloud.
    Fog,
    /// A data centre.
    Cloud,
}

impl Tier {
    /// Every tier, nearest the data first.
    pub const ALL: [Tier; 4] = [Tier::Device, Tier::Edge, Tier::Fog, Tier::Cloud];

    /// The lowercase name used in manifests, node configs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Device => "device",
            Tier::Edge => "edge",
            Tier::Fog => "fog",
            Tier::Cloud => "cloud",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tier name that is none of `device`, `edge`, `fog`, `cloud`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tier `{input}`: expected device, edge, fog or cloud")]
pub struct ParseTierError {
    /// The text that was given.
    pub input: String,
}

impl FromStr for Tier {
    type Err = ParseTierError;

    fn from_str(s: &str) -> Result<Tier, ParseTierError> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| ParseTierError { input: s.into() })
    }
}

/// Where a function's data may go, relative to the request's origin node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Privacy {
    /// Anywhere the other constraints allow.
    #[default]
    None,
    /// Only nodes whose `site` label equals the origin's. If the origin has no
    /// `site` label, only the origin itself.
    Site,
    /// Only nodes of the origin's tier.
    Tier,
}

impl Privacy {
    /// Its name in a manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Privacy::None => "none",
            Privacy::Site => "site",
            Privacy::Tier => "tier",
        }
    }

    /// The constraint a manifest's `privacy` names (`none` or absent:
    /// none).
    pub fn named(p: Option<&str>) -> Privacy {
        match p {
            Some("site") => Privacy::Site,
            Some("tier") => Privacy::Tier,
            _ => Privacy::None,
        }
    }
}

/// One node as the deciding node sees it: identity, load, distance, and what
/// it already holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeView {
    /// The node's name, unique in the view; the tie-break between equal costs.
    pub name: String,
    /// Where it sits in the continuum.
    pub tier: Tier,
    /// Operator labels, e.g. `site = "a"`, `arch = "x86_64"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Reachable and accepting work.
    pub up: bool,
    /// Invocations it runs at once. 0: accepts none (rejected as `no_capacity`).
    pub slots: u32,
    /// Invocations running now.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inflight: u32,
    /// Invocations waiting for a slot now.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub queued: u32,
    /// Round trip from the deciding node, µs: `Some(0)` for the deciding node
    /// itself, `None` if unknown ([`DEFAULT_RTT_US`](crate::DEFAULT_RTT_US)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_us: Option<u64>,
    /// Bytes per second from the deciding node; `None`:
    /// [`DEFAULT_BANDWIDTH_BPS`](crate::DEFAULT_BANDWIDTH_BPS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_bps: Option<u64>,
    /// Functions with a warm (pre-instantiated) instance there.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub warm: BTreeSet<String>,
    /// Functions whose compiled artifact is on its disk; `None`: unknown, no
    /// fetch is charged. A cold node known to lack the artifact pays
    /// [`ARTIFACT_FETCH_US`](crate::ARTIFACT_FETCH_US).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_artifact: Option<BTreeSet<String>>,
    /// Key-value store labels served on the node itself (data proximity).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub stores: BTreeSet<String>,
    /// The round trip from the node to each store it serves, µs, as the
    /// node measures it (a store on its own disk: about 0; Redis or
    /// JetStream across a link: that link). Absent: 0, the store is there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub store_rtt_us: BTreeMap<String, u64>,
    /// Relative price per second of execution (default 1.0).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub cost: f64,
    /// Relative energy per second of execution (default 1.0).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub energy: f64,
    /// An MQTT broker is configured there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub broker: bool,
    /// The topic patterns its functions may use; empty: every topic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
}

impl NodeView {
    /// An idle node that is up, with no labels, unknown distance, nothing
    /// warm, and cost and energy 1.0.
    pub fn new(name: impl Into<String>, tier: Tier, slots: u32) -> NodeView {
        NodeView {
            name: name.into(),
            tier,
            labels: BTreeMap::new(),
            up: true,
            slots,
            inflight: 0,
            queued: 0,
            rtt_us: None,
            bandwidth_bps: None,
            warm: BTreeSet::new(),
            has_artifact: None,
            stores: BTreeSet::new(),
            store_rtt_us: BTreeMap::new(),
            cost: 1.0,
            energy: 1.0,
            broker: false,
            topics: Vec::new(),
        }
    }

    /// Marks a key-value store served there.
    pub fn store(mut self, label: impl Into<String>) -> NodeView {
        self.stores.insert(label.into());
        self
    }

    /// Sets one label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> NodeView {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets the round trip (µs) and bandwidth (bytes/s) from the deciding node.
    pub fn link(mut self, rtt_us: u64, bandwidth_bps: u64) -> NodeView {
        self.rtt_us = Some(rtt_us);
        self.bandwidth_bps = Some(bandwidth_bps);
        self
    }

    /// Marks `function` warm there.
    pub fn warm(mut self, function: impl Into<String>) -> NodeView {
        self.warm.insert(function.into());
        self
    }

    /// Sets the load: running and waiting invocations.
    pub fn load(mut self, inflight: u32, queued: u32) -> NodeView {
        self.inflight = inflight;
        self.queued = queued;
        self
    }

    /// The `site` label, if any.
    pub fn site(&self) -> Option<&str> {
        self.labels.get("site").map(String::as_str)
    }
}

/// The world as the deciding node sees it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct View {
    /// The deciding node's name; it should be in `nodes`. Placing it first in
    /// `nodes` makes the local fast path O(1) (otherwise: one linear search).
    pub local: String,
    /// Every known node, the deciding node included, in any order: the
    /// decision does not depend on the order.
    pub nodes: Vec<NodeView>,
    /// Learned execution times per (function, node).
    #[serde(default, skip_serializing_if = "ExecTable::is_empty")]
    pub exec: ExecTable,
}

impl View {
    /// The node named `name`: the first node checked first, then a linear
    /// search.
    pub fn node(&self, name: &str) -> Option<&NodeView> {
        match self.nodes.first() {
            Some(n) if n.name == name => Some(n),
            _ => self.nodes.iter().find(|n| n.name == name),
        }
    }
}

/// What a function's manifest (`[placement]`) asks of the node that runs it.
/// Hard constraints filter nodes out; soft preferences add to a node's cost.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    /// Hard: the tiers allowed; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<Tier>,
    /// Hard: labels the node must carry with exactly these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Hard: where the data may go, relative to the origin.
    #[serde(default, skip_serializing_if = "is_default")]
    pub privacy: Privacy,
    /// Soft: end-to-end target in ms. A node expected above it pays the excess
    /// once more, so it ranks lower but stays eligible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u32>,
    /// Soft: store labels the function reads and writes; a node not serving
    /// one pays a round trip to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub near: Vec<String>,
    /// Soft: µs added per µs of execution per unit of the node's `cost`;
    /// 0 ignores price.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub cost_weight: f64,
    /// Soft: the same with the node's `energy`.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub energy_weight: f64,
    /// Hard: key-value stores the function declares; a node must serve
    /// each (the guest would be denied the others).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stores: Vec<String>,
    /// Hard: the function has MQTT triggers; a node needs a broker.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub broker: bool,
    /// Hard: topic patterns the function publishes on; a node's topics must
    /// cover each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
}

/// One invocation to place.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The function to run.
    pub function: String,
    /// The node where the request entered; privacy is relative to it. It must
    /// be in the view.
    pub origin: String,
    /// Request body size.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub bytes_in: u64,
    /// Expected response size (the caller's estimate).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub bytes_out: u64,
    /// What the function asks of the node that runs it.
    #[serde(default, skip_serializing_if = "is_default")]
    pub requirements: Requirements,
    /// Nodes not to use, e.g. one that just failed, to retry elsewhere.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub exclude: BTreeSet<String>,
    /// The state the invocation moves, for a stateful function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateUse>,
    /// Hard: where the data may go by what the invocation belongs to (a
    /// workflow's `privacy`), relative to the same origin; it holds beside
    /// the function's own.
    #[serde(default, skip_serializing_if = "is_default")]
    pub context_privacy: Privacy,
}

/// What an invocation's state costs to reach, by where it lives (seed
/// 003's Load+net, with the state's home as a third party).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateUse {
    /// The store holding it (`external`, `edge`): free on a node that
    /// serves the store, otherwise `trips` round trips to the nearest one
    /// that does, plus the bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    /// An actor's key (`function`): the invocation runs on the key's
    /// owner, the eligible node that ranks first by rendezvous hashing of
    /// (function, key, node). Every node computes the same owner from the
    /// same view, without a directory; a node that leaves moves only the
    /// keys it owned, and one that joins takes only the keys it ranks
    /// first for. The state is there: no state term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Bytes of state an invocation moves (read and written).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub bytes: u64,
    /// Round trips to the home an invocation makes (its operations).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub trips: u32,
}

fn is_zero_u32(x: &u32) -> bool {
    *x == 0
}

impl Request {
    /// A request for `function` that entered at `origin`, with no payload and
    /// no requirements.
    pub fn new(function: impl Into<String>, origin: impl Into<String>) -> Request {
        Request {
            function: function.into(),
            origin: origin.into(),
            ..Request::default()
        }
    }
}

fn one() -> f64 {
    1.0
}

fn is_one(x: &f64) -> bool {
    *x == 1.0
}

fn is_zero_f64(x: &f64) -> bool {
    *x == 0.0
}

fn is_zero(x: &u32) -> bool {
    *x == 0
}

fn is_zero_u64(x: &u64) -> bool {
    *x == 0
}

fn is_default<T: Default + PartialEq>(x: &T) -> bool {
    *x == T::default()
}
