//! The node's own configuration file: how the operator provides what
//! applications ask for. Separate from application manifests.

use crate::caps::validate_topic_pattern;
use crate::error::{Error, FieldError, bad};
use crate::placement::FabricConfig;
use crate::state::StateConfig;
use crate::units::{ByteSize, HumanDuration, Name};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// `weft up --config node.toml`. Every key is optional; unknown keys are
/// errors.
///
/// ```toml
/// token = "a-long-random-secret"
/// max_instances = 512
/// fuel = true
///
/// [defaults]
/// timeout = "10s"
/// memory = "128MiB"
///
/// [kv.cache]
/// backend = "redis"
/// url = "redis://127.0.0.1:6379"
///
/// [mqtt]
/// url = "mqtt://127.0.0.1:1883"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Bearer token of the admin API when the node listens beyond loopback.
    /// When absent, one is generated at first start, printed once, and only
    /// its hash is kept. TOML: `token = "..."`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Sandboxes that may be live at once on this node. Default: 256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<u32>,
    /// Largest linear memory any function may be given. Default: "1GiB".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<ByteSize>,
    /// Meter fuel on every invocation (allows per-function `fuel` limits).
    /// Default: false.
    #[serde(default)]
    pub fuel: bool,
    /// Largest module accepted for upload. Default: "64MiB".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_module_size: Option<ByteSize>,
    /// Grace period for in-flight invocations at shutdown. Default: "30s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<HumanDuration>,
    /// Limits of functions that do not set their own.
    #[serde(default)]
    pub defaults: Defaults,
    /// Key-value stores by label. `default` is always provided: the node's
    /// embedded store, unless configured here. TOML: `[kv.LABEL]`
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kv: BTreeMap<Name, KvStoreConfig>,
    /// The MQTT broker of MQTT triggers. Without it, deploying a function
    /// with an MQTT trigger fails. TOML: `[mqtt]`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<MqttConfig>,
    /// The queue of asynchronous invocations. TOML: `[queue]`
    #[serde(default)]
    pub queue: QueueConfig,
    /// Internal topics functions may publish and subscribe to, as patterns
    /// (`*` one token, `>` the rest). Default: `[">"]`, every topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
    /// Deepest chain of function-to-function calls. Default: 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_call_depth: Option<u32>,
    /// The fabric this node joins. TOML: `[fabric]`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fabric: Option<FabricConfig>,
    /// The order in which guests get a worker: `"edf"` (earliest deadline
    /// first, preempting later deadlines) or `"fifo"` (arrival order, each
    /// running until it ends or waits). Default: `"edf"`.
    #[serde(default)]
    pub scheduler: Scheduler,
    /// Guests that execute at once, between 1 and 1024. Default: one per
    /// core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
    /// What the node does with an invocation whose deadline it cannot meet
    /// (the admitted work due before it, plus its own expected time, ends
    /// after it): `"refuse"` it at once (`deadline_unmeetable`, or a peer
    /// that can meet it takes it) or `"run"` it anyway, late. Default:
    /// `"refuse"`.
    #[serde(default)]
    pub unmeetable: Unmeetable,
    /// Where functions' state lives: `[state]`.
    #[serde(default)]
    pub state: StateConfig,
}

/// `unmeetable = "refuse" | "run"` in the node config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unmeetable {
    /// Refuse it at once with `deadline_unmeetable`.
    #[default]
    Refuse,
    /// Run it anyway; it will be late.
    Run,
}

/// The order in which guests get a worker: `scheduler = "edf" | "fifo"`
/// in the node config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scheduler {
    /// Earliest absolute deadline first, preempting a running guest whose
    /// deadline is later.
    #[default]
    Edf,
    /// Arrival order, each guest running until it ends or waits.
    Fifo,
}

impl Scheduler {
    /// The name used in the node config and in `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheduler::Edf => "edf",
            Scheduler::Fifo => "fifo",
        }
    }
}

/// Most workers a node may be given.
pub const MAX_WORKERS: u32 = 1024;

/// A key-value store's backend. TOML: `[kv.LABEL]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, tag = "backend", rename_all = "snake_case")]
pub enum KvStoreConfig {
    /// The node's own store, in its data directory. `backend = "embedded"`
    /// (a struct variant, so unknown keys beside `backend` are refused).
    Embedded {},
    /// A Redis server. `backend = "redis"`, `url = "redis://host:6379/0"`
    Redis {
        /// `redis://[user:password@]host[:port][/db]` (or `rediss://`).
        url: String,
        /// Prefix of every key; default `weft:LABEL:`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
    /// The fabric's JetStream key-value bucket `weft-kv-LABEL`, shared by
    /// every node mapping the label to it. `backend = "fabric"`; needs
    /// `[fabric]` (or `weft up --fabric`).
    Fabric {},
    /// A store one node of the fabric keeps in its embedded file and the
    /// others reach through the fabric: a site's own store, served within
    /// the site (through its leaf server) while its uplink is cut.
    /// `backend = "node"`, `node = "edge-a1"`; needs `[fabric]`.
    Node {
        /// The node that keeps it (its fabric name).
        node: String,
    },
}

/// The MQTT broker. TOML: `[mqtt]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host[:port]` (default port 1883).
    pub url: String,
    /// Client id; default `weft-` and the node's id. It must be stable
    /// across restarts so the broker keeps the session (QoS 1 redelivery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// Bounds of the asynchronous invocation queue. TOML: `[queue]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Queued and running invocations on the node, at most. Default: 100000.
    pub max_pending: u64,
    /// Queued and running invocations of one function, at most.
    /// Default: 10000.
    pub max_pending_per_function: u64,
    /// How long results of finished invocations are kept. Default: "24h".
    pub result_ttl: HumanDuration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_pending: 100_000,
            max_pending_per_function: 10_000,
            result_ttl: HumanDuration(Duration::from_secs(86_400)),
        }
    }
}

/// Node-wide defaults of function limits. TOML: `[defaults]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Default: "10s".
    pub timeout: HumanDuration,
    /// Default: "128MiB".
    pub memory: ByteSize,
    /// Default: 64.
    pub max_concurrency: u32,
    /// Default: 256.
    pub max_queue: u32,
    /// Default: "5m".
    pub idle_ttl: HumanDuration,
    /// Default: "8MiB".
    pub max_request_size: ByteSize,
    /// Default: "16MiB".
    pub max_response_size: ByteSize,
    /// Bytes of stderr kept per invocation. Default: "64KiB".
    pub max_log_size: ByteSize,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            timeout: HumanDuration(Duration::from_secs(10)),
            memory: ByteSize(128 << 20),
            max_concurrency: 64,
            max_queue: 256,
            idle_ttl: HumanDuration(Duration::from_secs(300)),
            max_request_size: ByteSize(8 << 20),
            max_response_size: ByteSize(16 << 20),
            max_log_size: ByteSize(64 << 10),
        }
    }
}

impl NodeConfig {
    /// Reads and validates a node configuration file; the error names the
    /// file, and the line or the field.
    pub fn load(path: &Path) -> Result<NodeConfig, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
        NodeConfig::parse(&text, path)
    }

    /// Parses and validates node configuration text; `path` is used in
    /// errors only.
    pub fn parse(text: &str, path: &Path) -> Result<NodeConfig, Error> {
        let c: NodeConfig = crate::manifest::from_toml(text, path)?;
        c.validate().map_err(|e| Error::field(path, None, e))?;
        Ok(c)
    }

    /// Checks values that parse but cannot work; the error names the field.
    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(t) = &self.token
            && t.len() < 16
        {
            return bad("token", "must be at least 16 characters");
        }
        let max_memory = self.max_memory.map_or(1 << 30, |m| m.0);
        if self.defaults.memory.0 > max_memory {
            return bad(
                "defaults.memory",
                format!(
                    "{} is above max_memory ({})",
                    self.defaults.memory,
                    ByteSize(max_memory)
                ),
            );
        }
        if self.defaults.max_concurrency == 0 {
            return bad("defaults.max_concurrency", "must be at least 1");
        }
        for (label, kv) in &self.kv {
            if let KvStoreConfig::Redis { url, .. } = kv
                && let Err(e) = crate::addr::redis_url(url)
            {
                return bad(&format!("kv.{label}.url"), format!("`{url}`: {e}"));
            }
        }
        if let Some(f) = &self.fabric {
            f.validate().map_err(|e| e.at("fabric"))?;
        }
        for (label, kv) in &self.kv {
            let backend = match kv {
                KvStoreConfig::Fabric {} => "fabric",
                KvStoreConfig::Node { node } => {
                    if !crate::placement::valid_node_name(node) {
                        return bad(
                            &format!("kv.{label}.node"),
                            format!("`{}` is not a node name", node.escape_debug()),
                        );
                    }
                    "node"
                }
                _ => continue,
            };
            if self.fabric.is_none() {
                return bad(
                    &format!("kv.{label}.backend"),
                    format!("`{backend}` needs a fabric (`[fabric]` or `weft up --fabric`)"),
                );
            }
        }
        if let Some(m) = &self.mqtt
            && let Err(e) = crate::mqtt::broker_url(&m.url)
        {
            return bad("mqtt.url", format!("`{}`: {e}", m.url));
        }
        for (i, t) in self.topics.iter().flatten().enumerate() {
            validate_topic_pattern(t).map_err(|e| e.at(format!("topics[{i}]")))?;
        }
        if self.queue.max_pending == 0 {
            return bad("queue.max_pending", "must be at least 1");
        }
        if self.queue.max_pending_per_function == 0 {
            return bad("queue.max_pending_per_function", "must be at least 1");
        }
        if let Some(d) = self.max_call_depth
            && !(1..=64).contains(&d)
        {
            return bad("max_call_depth", format!("{d} is not between 1 and 64"));
        }
        if let Some(w) = self.workers
            && !(1..=MAX_WORKERS).contains(&w)
        {
            return bad("workers", format!("{w} is not between 1 and {MAX_WORKERS}"));
        }
        self.state.validate().map_err(|e| e.at("state"))?;
        for (field, label) in [
            ("state.external", &self.state.external),
            ("state.edge", &self.state.edge),
            ("state.function", &self.state.function),
        ] {
            if let Some(l) = label
                && l.as_str() != "default"
                && !self.kv.contains_key(l)
            {
                return bad(
                    field,
                    format!("`{l}` is not a key-value store of this node (add `[kv.{l}]`)"),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors() {
        let e = toml::from_str::<NodeConfig>("max_instance = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `max_instance`"), "{e}");
        let e = toml::from_str::<NodeConfig>("[defaults]\ntimout = \"1s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `timout`"), "{e}");
    }

    #[test]
    fn unknown_keys_of_a_store_are_errors() {
        for bad in [
            "[kv.x]\nbackend = \"embedded\"\nfoo = 1\n",
            "[kv.x]\nbackend = \"embedded\"\nurl = \"redis://h\"\n",
            "[kv.x]\nbackend = \"redis\"\nurl = \"redis://h\"\nprefx = \"a\"\n",
            "[kv.x]\nbackend = \"mongo\"\n",
        ] {
            assert!(toml::from_str::<NodeConfig>(bad).is_err(), "{bad}");
        }
        let ok: NodeConfig = toml::from_str("[kv.x]\nbackend = \"embedded\"\n").unwrap();
        assert_eq!(ok.kv.len(), 1);
    }

    #[test]
    fn partial_defaults_keep_the_rest() {
        let c: NodeConfig = toml::from_str("[defaults]\ntimeout = \"1s\"\n").unwrap_or_default();
        assert_eq!(c.defaults.timeout, HumanDuration(Duration::from_secs(1)));
        assert_eq!(c.defaults.max_queue, 256);
    }
}
