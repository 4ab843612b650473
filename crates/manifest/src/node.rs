//! The node's own configuration file: how the operator provides what
//! applications ask for. Separate from application manifests.

use crate::units::{ByteSize, HumanDuration};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
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
    /// Reads and validates a node configuration file.
    pub fn load(path: &Path) -> Result<NodeConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let c: NodeConfig = toml::from_str(&text)
            .map_err(|e| format!("{}: {}", path.display(), e.to_string().trim_end()))?;
        c.validate()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(c)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(t) = &self.token
            && t.len() < 16
        {
            return Err("token: must be at least 16 characters".into());
        }
        let max_memory = self.max_memory.map_or(1 << 30, |m| m.0);
        if self.defaults.memory.0 > max_memory {
            return Err(format!(
                "defaults.memory ({}) is above max_memory ({})",
                self.defaults.memory,
                ByteSize(max_memory)
            ));
        }
        if self.defaults.max_concurrency == 0 {
            return Err("defaults.max_concurrency: must be at least 1".into());
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
    fn partial_defaults_keep_the_rest() {
        let c: NodeConfig = toml::from_str("[defaults]\ntimeout = \"1s\"\n").unwrap_or_default();
        assert_eq!(c.defaults.timeout, HumanDuration(Duration::from_secs(1)));
        assert_eq!(c.defaults.max_queue, 256);
    }
}
