//! Where a function's state lives: `[functions.NAME.state]` of a function
//! (the model and where an invocation's key comes from) and `[state]` of
//! the node config (the homes the node provides).

use crate::error::{FieldError, bad};
use crate::units::{ByteSize, Name};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// The bucket a stateful function opens through `wasi:keyvalue` unless it
/// names another.
pub const DEFAULT_STATE_BUCKET: &str = "state";
/// The header an invocation's key comes from unless the function says.
pub const DEFAULT_KEY_HEADER: &str = "x-weft-key";
/// Longest state key, in bytes.
pub const MAX_STATE_KEY: usize = 256;
/// Largest client state a node accepts, whatever its config says.
pub const MAX_CLIENT_STATE: u64 = 1 << 20;

/// The four ways a function keeps its state (Cicconetti et al.).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateModel {
    /// In the store the operator names as the state's home (`[state]
    /// external` of the node config): Redis, or a store shared over the
    /// fabric.
    External,
    /// In the site's own store (`[state] edge`; a node without a fabric is
    /// its own site): it never leaves the site.
    Edge,
    /// In the memory of one node, as an actor per key: one writer, the
    /// key's invocations in arrival order, checkpointed.
    Function,
    /// With the caller: returned with the response, sent back with the next
    /// request, signed by the node.
    Client,
}

impl StateModel {
    /// Every model, in the order of the docs.
    pub const ALL: [StateModel; 4] = [
        StateModel::External,
        StateModel::Edge,
        StateModel::Function,
        StateModel::Client,
    ];

    /// Its name in manifests, flags, metrics and usage.
    pub const fn as_str(self) -> &'static str {
        match self {
            StateModel::External => "external",
            StateModel::Edge => "edge",
            StateModel::Function => "function",
            StateModel::Client => "client",
        }
    }
}

impl fmt::Display for StateModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StateModel {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        StateModel::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                FieldError::new(format!(
                    "`{}` is not a state model (one of external, edge, function, client)",
                    s.escape_debug()
                ))
            })
    }
}

/// Where an invocation's state key comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeySource {
    /// A request header (`header:x-user`), lowercase.
    Header(String),
    /// The N-th segment, from 1, of the path the function sees: after
    /// `/fn/NAME`, or a declared route's whole path (`path:2`).
    Path(u8),
    /// A query parameter (`query:user`).
    Query(String),
}

impl Default for KeySource {
    fn default() -> Self {
        KeySource::Header(DEFAULT_KEY_HEADER.to_string())
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Header(h) => write!(f, "header:{h}"),
            KeySource::Path(n) => write!(f, "path:{n}"),
            KeySource::Query(q) => write!(f, "query:{q}"),
        }
    }
}

impl FromStr for KeySource {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        let bad = |why: &str| {
            FieldError::new(format!(
                "`{}`: {why} (expected `header:NAME`, `path:N` or `query:NAME`)",
                s.escape_debug()
            ))
        };
        let (kind, arg) = s.split_once(':').ok_or_else(|| bad("no source"))?;
        match kind {
            "header" => {
                let ok = !arg.is_empty()
                    && arg.len() <= 64
                    && arg.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_".contains(&b)
                    });
                if !ok {
                    return Err(bad(
                        "a header name is 1-64 lowercase letters, digits, `-` and `_`",
                    ));
                }
                Ok(KeySource::Header(arg.to_string()))
            }
            "path" => match arg.parse::<u8>() {
                Ok(n @ 1..=32) => Ok(KeySource::Path(n)),
                _ => Err(bad("a path segment is numbered from 1 to 32")),
            },
            "query" => {
                let ok = !arg.is_empty()
                    && arg.len() <= 64
                    && arg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                if !ok {
                    return Err(bad(
                        "a query parameter is 1-64 letters, digits, `-`, `_` and `.`",
                    ));
                }
                Ok(KeySource::Query(arg.to_string()))
            }
            _ => Err(bad(&format!("unknown source `{}`", kind.escape_debug()))),
        }
    }
}

crate::units::serde_as_text!(KeySource);

impl JsonSchema for KeySource {
    fn schema_name() -> Cow<'static, str> {
        "KeySource".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^(header:[a-z0-9_-]{1,64}|path:[0-9]{1,2}|query:[A-Za-z0-9._-]{1,64})$",
            "description": "where an invocation's state key comes from: \"header:x-weft-key\", \"path:1\", \"query:user\""
        })
    }
}

/// A function's state. The function opens one `wasi:keyvalue` bucket
/// (`bucket`, default `state`) and reads and writes it as any store; the
/// model says where its contents live, and the key which invocation's state
/// it is.
///
/// ```toml
/// [functions.counter.state]
/// model = "function"
/// key = "header:x-user"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateSpec {
    /// `external`, `edge`, `function` or `client`.
    pub model: StateModel,
    /// Where the key comes from: `header:NAME` (default
    /// `header:x-weft-key`), `path:N` or `query:NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeySource>,
    /// The bucket label the function opens for its state. Default: `state`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<Name>,
}

impl StateSpec {
    /// The key's source, defaulted.
    pub fn key_source(&self) -> KeySource {
        self.key.clone().unwrap_or_default()
    }

    /// The bucket label, defaulted.
    pub fn bucket_label(&self) -> &str {
        self.bucket
            .as_ref()
            .map(Name::as_str)
            .unwrap_or(DEFAULT_STATE_BUCKET)
    }
}

/// Checks a state key: 1 to [`MAX_STATE_KEY`] bytes of printable text.
pub fn validate_state_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("is empty".to_string());
    }
    if key.len() > MAX_STATE_KEY {
        return Err(format!(
            "is {} bytes long (at most {MAX_STATE_KEY})",
            key.len()
        ));
    }
    if let Some(c) = key.chars().find(|c| c.is_control()) {
        return Err(format!("contains the control character {:?}", c));
    }
    Ok(())
}

/// The homes of state a node provides: `[state]` of the node config.
///
/// ```toml
/// [state]
/// external = "cloud"         # a [kv.cloud] store (Redis, or a fabric store)
/// edge = "site"              # in a fabric: the site's store
/// function = "fabric"        # in a fabric: actors' checkpoints, client versions
/// max_client_state = "16KiB"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// The key-value store (a `[kv.LABEL]`) that is the home of `external`
    /// state. No default: without it, `external` functions are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<Name>,
    /// The key-value store that is the home of `edge` state. Default: the
    /// node's own embedded store, on a node without a fabric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<Name>,
    /// The key-value store that keeps the `function` model's checkpoints
    /// and the `client` model's seal and versions. Default: the node's own
    /// embedded store, on a node without a fabric; in a fabric it must be
    /// a store every node that runs such functions shares (a
    /// `backend = "fabric"` or `backend = "node"` store), so that a key's
    /// actor can move and a client's state is taken by any node. It holds
    /// the seal's secret: no function may declare it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<Name>,
    /// The largest state a client may carry (`client` model). Default
    /// 16KiB, at most 1MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_client_state: Option<ByteSize>,
}

impl StateConfig {
    /// The client state limit, defaulted.
    pub fn client_limit(&self) -> u64 {
        self.max_client_state.map(|b| b.0).unwrap_or(16 << 10)
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(ByteSize(b)) = self.max_client_state
            && (b == 0 || b > MAX_CLIENT_STATE)
        {
            return bad(
                "max_client_state",
                format!("{b} bytes is not between 1 byte and 1MiB"),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_sources_parse_print_and_name_what_is_wrong() {
        for s in ["header:x-weft-key", "path:1", "path:32", "query:user.id"] {
            assert_eq!(s.parse::<KeySource>().unwrap().to_string(), s);
        }
        for (s, why) in [
            ("x-weft-key", "no source"),
            ("header:", "header name"),
            ("header:X-Key", "header name"),
            ("path:0", "from 1 to 32"),
            ("path:33", "from 1 to 32"),
            ("path:a", "from 1 to 32"),
            ("query:a b", "query parameter"),
            ("cookie:id", "unknown source `cookie`"),
        ] {
            let e = s.parse::<KeySource>().unwrap_err().to_string();
            assert!(e.contains(why), "{s}: {e}");
        }
        assert_eq!(KeySource::default().to_string(), "header:x-weft-key");
    }

    #[test]
    fn state_keys_are_printable_and_bounded() {
        assert!(validate_state_key("user:42").is_ok());
        assert!(validate_state_key("").unwrap_err().contains("empty"));
        assert!(
            validate_state_key(&"k".repeat(257))
                .unwrap_err()
                .contains("257 bytes")
        );
        assert!(validate_state_key("a\nb").unwrap_err().contains("control"));
    }

    #[test]
    fn models_parse_from_their_names_only() {
        for m in StateModel::ALL {
            assert_eq!(m.as_str().parse::<StateModel>().unwrap(), m);
        }
        let e = "in-edge".parse::<StateModel>().unwrap_err().to_string();
        assert!(e.contains("one of external, edge, function, client"), "{e}");
    }
}
