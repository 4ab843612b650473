//! Function state: where each model keeps it (resolved at deploy from the
//! function's `[state]` and the node's), and one invocation's state bucket.

use crate::actor::{Actors, Turn};
use crate::client_state::{Chain, ClientStates, Joined, Pending};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::sync::Arc;
use weft_kv::{Bucket, Keyed, Traffic};
use weft_manifest::{KeySource, NodeConfig, StateModel, StateSpec};
use weft_runtime::ChainState;

/// How strictly to resolve: a deploy refuses what the node lacks; a
/// restart serves the function without it (and logs why), so one operator
/// change cannot take every function down.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strictness {
    Deploy,
    Restart,
}

/// The embedded store a node keeps its own state in (a name no `[kv]`
/// label can take): the `edge` home of a node without a fabric.
pub const NODE_STATE: &str = "weft.state";

/// The homes of state this node keeps itself: client states' seal and
/// versions, and the actors.
pub(crate) struct StateHomes {
    pub(crate) clients: Arc<ClientStates>,
    pub(crate) actors: Arc<Actors>,
}

/// A function's state, as this node provides it.
pub struct FunctionState {
    /// Its model.
    pub model: StateModel,
    /// Where an invocation's key comes from.
    pub key: KeySource,
    /// The bucket label the guest opens.
    pub label: String,
    /// Where it lives.
    home: Home,
}

/// Where a model keeps the state.
enum Home {
    /// A shared store: every operation goes through to it.
    Store(Arc<dyn Bucket>),
    /// The caller: the state comes with the request, sealed.
    Client(Arc<ClientStates>),
    /// This node's memory, an actor per key, checkpointed.
    Actor(Arc<Actors>),
    /// Nowhere this node provides (a registry's deploy on a node without
    /// the model's home): the function runs elsewhere, never here without
    /// its state.
    Missing(String),
}

/// What a stateful invocation leaves to do once its sandbox has ended
/// well, before the response goes out.
pub enum Settle {
    /// Seal the client's state into the response.
    Client(Pending),
    /// Hand a callee's client state back to its chain.
    Chain(Joined),
    /// Checkpoint the actor's state.
    Actor(Turn),
}

impl Settle {
    /// Does it; returns the sealed client state to send back, if any.
    pub async fn settle(self) -> Result<Option<String>> {
        match self {
            Settle::Client(p) => p.seal().await.map(Some),
            Settle::Chain(j) => {
                j.settle();
                Ok(None)
            }
            Settle::Actor(t) => t.checkpoint().await.map(|()| None),
        }
    }
}

impl FunctionState {
    /// The bucket one invocation of `function` for `key` opens, and what it
    /// moves; `sealed`: the client state the request carries; `wait`: the
    /// longest it may wait for an actor's turn.
    pub(crate) async fn open(
        &self,
        function: &str,
        key: &str,
        sealed: Option<&str>,
        wait: std::time::Duration,
        chain: Option<&ChainState>,
    ) -> Result<Opened> {
        let traffic = Arc::new(Traffic::default());
        let carried = chain.and_then(|c| c.0.clone().downcast::<Chain>().ok());
        let mut handed_on = carried.clone();
        let (bucket, settle): (Arc<dyn Bucket>, _) = match &self.home {
            Home::Missing(why) => return Err(self.missing(function, why)),
            Home::Store(home) => (
                Arc::new(Keyed::new(
                    home.clone(),
                    &self.label,
                    function,
                    key,
                    traffic.clone(),
                )),
                None,
            ),
            Home::Client(states) => {
                // Called by a function that runs with the client's state
                // of the same key: its part of that state.
                match carried.and_then(|c| {
                    c.join(function, key, &self.label, states.limit(), traffic.clone())
                }) {
                    Some(joined) => (
                        weft_kv::limited(joined.held.clone(), weft_kv::KvLimits::default()),
                        Some(Settle::Chain(joined)),
                    ),
                    None => {
                        let pending = states
                            .begin(function, key, &self.label, sealed, traffic.clone())
                            .await?;
                        handed_on = Some(pending.chain.clone());
                        (
                            weft_kv::limited(pending.held.clone(), weft_kv::KvLimits::default()),
                            Some(Settle::Client(pending)),
                        )
                    }
                }
            }
            Home::Actor(actors) => {
                let turn = actors
                    .turn(function, key, &self.label, traffic.clone(), wait)
                    .await?;
                (
                    weft_kv::limited(turn.held.clone(), weft_kv::KvLimits::default()),
                    Some(Settle::Actor(turn)),
                )
            }
        };
        Ok(Opened {
            bucket,
            traffic,
            settle,
            chain: handed_on.map(|c| ChainState(c)),
        })
    }

    /// The state of `key` as it stands, for an operator (an actor's is
    /// read in its turn); `clear`: removed as well. A `client` function's
    /// state is its clients', not the node's.
    pub(crate) async fn inspect(
        &self,
        function: &str,
        key: &str,
        clear: bool,
        wait: std::time::Duration,
    ) -> Result<BTreeMap<String, Vec<u8>>> {
        let bucket: Arc<dyn Bucket> = match &self.home {
            Home::Missing(why) => return Err(self.missing(function, why)),
            Home::Client(_) => {
                return Err(Error::NotKeptHere {
                    name: function.to_string(),
                    message: "its state is kept by its clients (x-weft-state), not by the node"
                        .to_string(),
                });
            }
            Home::Store(home) => Arc::new(Keyed::new(
                home.clone(),
                &self.label,
                function,
                key,
                Arc::default(),
            )),
            Home::Actor(actors) => {
                let turn = actors
                    .turn(function, key, &self.label, Arc::default(), wait)
                    .await?;
                let entries = turn.held.entries();
                if clear && !entries.is_empty() {
                    let keys: Vec<String> = entries.keys().cloned().collect();
                    turn.held.delete_many(&keys).await.map_err(kv_failed)?;
                    turn.checkpoint().await?;
                }
                return Ok(entries);
            }
        };
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = bucket.list_keys(cursor).await.map_err(kv_failed)?;
            keys.extend(page.keys);
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let mut entries = BTreeMap::new();
        for chunk in keys.chunks(500) {
            for (k, v) in bucket
                .get_many(chunk)
                .await
                .map_err(kv_failed)?
                .into_iter()
                .flatten()
            {
                entries.insert(k, v);
            }
        }
        if clear {
            for chunk in keys.chunks(500) {
                bucket.delete_many(chunk).await.map_err(kv_failed)?;
            }
        }
        Ok(entries)
    }

    fn missing(&self, function: &str, why: &str) -> Error {
        Error::StateModelUnavailable {
            name: function.to_string(),
            model: self.model,
            missing: why.to_string(),
        }
    }

    /// Why this node cannot run it with its state, if it cannot: placement
    /// sends its invocations to a node that can.
    pub fn unavailable(&self) -> Option<&str> {
        match &self.home {
            Home::Missing(why) => Some(why),
            _ => None,
        }
    }

    /// The shared store it lives in (`external`, `edge`), or that keeps
    /// its checkpoints or versions (`function`, `client`): a node that
    /// runs the function must serve it too.
    pub fn shared_home(&self) -> Option<&str> {
        let label = match &self.home {
            Home::Store(b) => b.label(),
            Home::Client(c) => c.home(),
            Home::Actor(a) => a.home(),
            Home::Missing(_) => return None,
        };
        (label != NODE_STATE).then_some(label)
    }

    /// Where it lives, as `weft ls` shows it: a store's label, `client`,
    /// or (an actor) the store of its checkpoints.
    pub fn home(&self) -> &str {
        match &self.home {
            Home::Store(b) => b.label(),
            Home::Client(_) => "client",
            Home::Actor(a) => a.home(),
            Home::Missing(_) => "unavailable",
        }
    }
}

fn kv_failed(e: weft_kv::KvError) -> Error {
    Error::Internal(format!("reading the state: {e}"))
}

/// One invocation's state.
pub(crate) struct Opened {
    pub(crate) bucket: Arc<dyn Bucket>,
    pub(crate) traffic: Arc<Traffic>,
    /// What to do when it succeeds (`client` and `function` models).
    pub(crate) settle: Option<Settle>,
    /// The client state its callees carry.
    pub(crate) chain: Option<ChainState>,
}

/// The home of `spec`'s model on this node, or why there is none.
pub(crate) fn resolve(
    name: &str,
    spec: &StateSpec,
    config: &NodeConfig,
    kv: &weft_kv::Stores,
    homes: &StateHomes,
    strict: Strictness,
) -> Result<Option<FunctionState>> {
    let unavailable = |missing: String| Error::StateModelUnavailable {
        name: name.to_string(),
        model: spec.model,
        missing,
    };
    let store = |label: &str| {
        kv.bucket(label)
            .ok_or_else(|| unavailable(format!("its store `{label}` is not open")))
    };
    let home = match spec.model {
        StateModel::External => match &config.state.external {
            Some(label) => store(label.as_str()).map(Home::Store),
            None => Err(unavailable(
                "no state home: set `[state] external = \"LABEL\"` in the node config, \
                 naming a [kv.LABEL] store (Redis, or a fabric store)"
                    .to_string(),
            )),
        },
        StateModel::Edge => match (&config.state.edge, &config.fabric) {
            (Some(label), _) => store(label.as_str()).map(Home::Store),
            (None, None) => store(NODE_STATE).map(Home::Store),
            (None, Some(_)) => Err(unavailable(
                "no site store: in a fabric, set `[state] edge = \"LABEL\"` in the node config, \
                 naming a [kv.LABEL] store served in the site"
                    .to_string(),
            )),
        },
        // Both keep what makes a key's state have one writer (the seal's
        // secret and versions; the actor's checkpoint) in one store: in a
        // fabric, one that every node which may run the key shares.
        StateModel::Client | StateModel::Function
            if config.fabric.is_some() && config.state.function.is_none() =>
        {
            Err(unavailable(
                "no shared state store: in a fabric, set `[state] function = \"LABEL\"` in the \
                 node config, naming a [kv.LABEL] store the nodes share (backend \"fabric\" or \
                 \"node\")"
                    .to_string(),
            ))
        }
        StateModel::Client => Ok(Home::Client(homes.clients.clone())),
        StateModel::Function => Ok(Home::Actor(homes.actors.clone())),
    };
    let home = match home {
        Ok(home) => home,
        Err(e) if strict == Strictness::Restart => {
            tracing::warn!(function = %name, "{e}; its invocations run on nodes that provide it");
            match e {
                Error::StateModelUnavailable { missing, .. } => Home::Missing(missing),
                other => Home::Missing(other.to_string()),
            }
        }
        Err(e) => return Err(e),
    };
    Ok(Some(FunctionState {
        model: spec.model,
        key: spec.key_source(),
        label: spec.bucket_label().to_string(),
        home,
    }))
}
