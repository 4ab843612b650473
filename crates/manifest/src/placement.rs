//! Where a function may run, and where it would rather run: `[placement]`
//! of a function, and the node's own place, `[fabric]` of the node config.

use crate::error::{FieldError, bad};
use crate::units::{HumanDuration, Name};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The tiers of the continuum, nearest the data first.
pub const TIERS: &[&str] = &["device", "edge", "fog", "cloud"];

/// A function's placement. Hard constraints (`tier`, `labels`, `privacy`)
/// filter the nodes it may run on; soft preferences (`latency`, `near`,
/// `cost_weight`, `energy_weight`) rank the rest.
///
/// ```toml
/// [functions.detect.placement]
/// tier = ["edge", "fog"]
/// labels = { arch = "x86_64" }
/// privacy = "site"
/// latency = "10ms"
/// near = ["cache"]
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementSpec {
    /// Hard: tiers allowed (`device`, `edge`, `fog`, `cloud`); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tier: Vec<String>,
    /// Hard: labels the node must carry, with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Hard: where the request's data may go: `none` (default), `site` (only
    /// nodes of the site it entered at) or `tier` (only that tier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<String>,
    /// Soft: end-to-end target; nodes expected above it rank lower.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<HumanDuration>,
    /// Soft: key-value stores the function uses; nodes serving them rank
    /// higher.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub near: Vec<Name>,
    /// Soft: weight of the node's price (0-1000; 0 ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_weight: Option<u32>,
    /// Soft: weight of the node's energy (0-1000; 0 ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_weight: Option<u32>,
}

fn valid_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Checks a `key=value` label.
pub fn validate_label(key: &str, value: &str) -> Result<(), FieldError> {
    if !valid_label(key) {
        return Err(FieldError::new(format!(
            "label key `{}`: use 1-63 of letters, digits, `-`, `_`, `.`",
            key.escape_debug()
        )));
    }
    if !valid_label(value) {
        return Err(FieldError::new(format!(
            "label `{key}`: value `{}`: use 1-63 of letters, digits, `-`, `_`, `.`",
            value.escape_debug()
        )));
    }
    Ok(())
}

/// Checks a tier name.
pub fn validate_tier(t: &str) -> Result<(), FieldError> {
    if TIERS.contains(&t) {
        Ok(())
    } else {
        Err(FieldError::new(format!(
            "`{t}` is not a tier (one of {})",
            TIERS.join(", ")
        )))
    }
}

/// The values of a `privacy` constraint.
pub const PRIVACIES: &[&str] = &["none", "site", "tier"];

/// Checks a `privacy` value.
pub fn validate_privacy(p: &str) -> Result<(), FieldError> {
    if PRIVACIES.contains(&p) {
        Ok(())
    } else {
        Err(FieldError::new(format!(
            "`{p}` is not one of {}",
            PRIVACIES.join(", ")
        )))
    }
}

impl PlacementSpec {
    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<(), FieldError> {
        for (i, t) in self.tier.iter().enumerate() {
            validate_tier(t).map_err(|e| e.at(format!("tier[{i}]")))?;
        }
        for (k, v) in &self.labels {
            validate_label(k, v).map_err(|e| e.at("labels"))?;
        }
        if let Some(p) = &self.privacy {
            validate_privacy(p).map_err(|e| e.at("privacy"))?;
        }
        for (field, w) in [
            ("cost_weight", self.cost_weight),
            ("energy_weight", self.energy_weight),
        ] {
            if let Some(w) = w
                && w > 1000
            {
                return bad(field, format!("{w} is above 1000"));
            }
        }
        Ok(())
    }
}

/// The node's place in a fabric. TOML: `[fabric]`; `weft up --fabric URL
/// --tier T --label k=v --node-name N` override the file.
///
/// ```toml
/// [fabric]
/// url = "nats://hub.example:4222"
/// name = "edge-a1"
/// tier = "edge"
/// labels = { site = "a", arch = "x86_64" }
/// credentials = "/etc/weft/node.creds"
/// tls_ca = "/etc/weft/ca.pem"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FabricConfig {
    /// NATS server URLs, comma-separated (`nats://` or `tls://`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The node's name in the fabric; default: the host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `device`, `edge`, `fog` or `cloud`. Default: `edge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Labels placement matches on (`site`, `arch`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Relative price of a second of execution here. Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<u32>,
    /// Relative energy of a second of execution here. Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<u32>,
    /// A NATS `.creds` file (JWT and NKey seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<PathBuf>,
    /// User name, with `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Password, with `user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A NATS token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Require TLS.
    #[serde(default)]
    pub tls: bool,
    /// CA certificates (PEM) that sign the servers' certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), with `tls_key`, for mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// Client key (PEM), with `tls_cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Heartbeat period. Default: "1s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<HumanDuration>,
    /// Missed beats before a peer is marked down. Default: 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_after: Option<u32>,
    /// Largest clock difference believed from a peer. Default: "30s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_clock_skew: Option<HumanDuration>,
}

impl FabricConfig {
    /// Checks every field; the error names the field (below `fabric`).
    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(urls) = &self.url {
            crate::addr::nats_urls(urls).map_err(|e| FieldError::new(e).at("url"))?;
        }
        if let Some(t) = &self.tier {
            validate_tier(t).map_err(|e| e.at("tier"))?;
        }
        for (k, v) in &self.labels {
            validate_label(k, v).map_err(|e| e.at("labels"))?;
        }
        let auths = [
            self.credentials.is_some(),
            self.user.is_some() || self.password.is_some(),
            self.token.is_some(),
        ];
        if auths.iter().filter(|a| **a).count() > 1 {
            return Err(FieldError::new(
                "give one of `credentials`, `user`+`password`, `token`",
            ));
        }
        if self.user.is_some() != self.password.is_some() {
            return Err(FieldError::new("`user` and `password` go together"));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(FieldError::new("`tls_cert` and `tls_key` go together"));
        }
        if let Some(d) = self.down_after
            && !(1..=100).contains(&d)
        {
            return bad("down_after", format!("{d} is not between 1 and 100"));
        }
        if let Some(HumanDuration(h)) = self.heartbeat
            && (h < std::time::Duration::from_millis(50) || h > std::time::Duration::from_secs(60))
        {
            return bad("heartbeat", "must be between 50ms and 60s");
        }
        if let Some(n) = &self.name
            && !valid_node_name(n)
        {
            return bad(
                "name",
                format!(
                    "node name `{}`: use 1-63 of a-z, 0-9 and `-`, not starting or ending with `-`",
                    n.escape_debug()
                ),
            );
        }
        Ok(())
    }
}

/// Whether `s` is a valid node name: 1-63 of `[a-z0-9-]`, not starting or
/// ending with `-` (it is a NATS subject token and a label value).
pub fn valid_node_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
