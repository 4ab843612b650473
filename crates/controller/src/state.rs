//! Function state: where each model keeps it (resolved at deploy from the
//! function's `[state]` and the node's), and one invocation's state bucket.

use crate::caps::Strictness;
use crate::client_state::{ClientStates, Pending};
use crate::error::{Error, Result};
use std::sync::Arc;
use weft_kv::{Bucket, Keyed, Traffic};
use weft_manifest::{KeySource, NodeConfig, StateModel, StateSpec};

/// The embedded store a node keeps its own state in (a name no `[kv]`
/// label can take): the `edge` home of a node without a fabric.
pub const NODE_STATE: &str = "weft.state";

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
}

impl FunctionState {
    /// The bucket one invocation of `function` for `key` opens, and what it
    /// moves; `sealed`: the client state the request carries.
    pub(crate) async fn open(
        &self,
        function: &str,
        key: &str,
        sealed: Option<&str>,
    ) -> Result<Opened> {
        let traffic = Arc::new(Traffic::default());
        let (bucket, client): (Arc<dyn Bucket>, _) = match &self.home {
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
                let pending = states
                    .begin(function, key, &self.label, sealed, traffic.clone())
                    .await?;
                (
                    weft_kv::limited(pending.held.clone(), weft_kv::KvLimits::default()),
                    Some(pending),
                )
            }
        };
        Ok(Opened {
            bucket,
            traffic,
            client,
        })
    }

    /// Where it lives, as `weft ls` shows it: a store's label, or `client`.
    pub fn home(&self) -> &str {
        match &self.home {
            Home::Store(b) => b.label(),
            Home::Client(_) => "client",
        }
    }
}

/// One invocation's state.
pub(crate) struct Opened {
    pub(crate) bucket: Arc<dyn Bucket>,
    pub(crate) traffic: Arc<Traffic>,
    /// The client state to seal when it succeeds (`client` model).
    pub(crate) client: Option<Pending>,
}

/// The home of `spec`'s model on this node, or why there is none.
pub(crate) fn resolve(
    name: &str,
    spec: &StateSpec,
    config: &NodeConfig,
    kv: &weft_kv::Stores,
    clients: &Arc<ClientStates>,
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
        StateModel::Client => Ok(Home::Client(clients.clone())),
        StateModel::Function => Err(unavailable(format!(
            "this build of the node does not provide the `{}` model yet",
            spec.model
        ))),
    };
    match home {
        Ok(home) => Ok(Some(FunctionState {
            model: spec.model,
            key: spec.key_source(),
            label: spec.bucket_label().to_string(),
            home,
        })),
        Err(e) if strict == Strictness::Restart => {
            tracing::error!(function = %name, "{e}; serving the function without its state");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
