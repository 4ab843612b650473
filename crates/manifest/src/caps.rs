//! What a function declares it uses beyond its sandbox (stores, config,
//! hosts, topics, callees) and the events that invoke it (routes, cron,
//! MQTT, topics), with the parsers that validate each form.

use crate::error::{FieldError, bad};
use crate::units::HumanDuration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Longest topic or topic pattern, in bytes.
pub const MAX_TOPIC_LEN: usize = 255;

/// A pattern over the node's internal topics, NATS-style: tokens separated
/// by `.`; `*` matches one token, `>` (last only) one or more.
/// `orders.created`, `orders.*`, `sensors.>`.
pub fn validate_topic_pattern(p: &str) -> Result<(), FieldError> {
    validate_tokens(p, true)
}

/// A concrete topic to publish on: a pattern without wildcards.
pub fn validate_topic(t: &str) -> Result<(), FieldError> {
    validate_tokens(t, false)
}

fn validate_tokens(p: &str, wildcards: bool) -> Result<(), FieldError> {
    let what = if wildcards { "topic pattern" } else { "topic" };
    if p.is_empty() || p.len() > MAX_TOPIC_LEN {
        return Err(FieldError::new(format!(
            "{what} `{}`: must be 1 to {MAX_TOPIC_LEN} bytes",
            p.escape_debug()
        )));
    }
    let tokens: Vec<&str> = p.split('.').collect();
    for (i, t) in tokens.iter().enumerate() {
        let ok = match *t {
            "" => false,
            "*" => wildcards,
            ">" => wildcards && i + 1 == tokens.len(),
            _ => t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        };
        if !ok {
            return Err(FieldError::new(format!(
                "{what} `{}`: token `{}` is not allowed (use letters, digits, `-` and `_` \
                 between dots{})",
                p.escape_debug(),
                t.escape_debug(),
                if wildcards {
                    "; `*` for one token, `>` at the end for the rest"
                } else {
                    ""
                }
            )));
        }
    }
    Ok(())
}

/// Whether a node whose config allows the topic patterns `node` provides
/// every topic `pattern` matches. Conservative: `pattern` must be matched by
/// one of them as if it were a topic (wildcards compared as literal tokens),
/// or one of them must be `>`.
pub fn topics_provide(node: &[String], pattern: &str) -> bool {
    node.iter()
        .any(|n| n == ">" || n == pattern || topic_matches(n, pattern))
}

/// Whether `topic` matches `pattern` (both valid).
pub fn topic_matches(pattern: &str, topic: &str) -> bool {
    let mut p = pattern.split('.');
    let mut t = topic.split('.');
    loop {
        match (p.next(), t.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// An allowed outbound host: `scheme://host[:port]`, where the scheme may be
/// `*`, the host may start with `*.` (any subdomain) or be `*`, and the port
/// may be `*`. Without a port, the scheme's default port is meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    scheme: Option<String>,
    host: String,
    port: Option<u16>,
    any_port: bool,
}

impl HostPattern {
    /// Parses `s`; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<HostPattern, FieldError> {
        let err = |why: &str| FieldError::new(format!("`{}`: {why}", s.escape_debug()));
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| err("write it as scheme://host[:port], e.g. https://api.example.com"))?;
        let scheme = match scheme {
            "*" => None,
            "http" | "https" => Some(scheme.to_string()),
            _ => return Err(err("the scheme must be http, https or *")),
        };
        if rest.contains('/') || rest.contains('@') || rest.contains('?') {
            return Err(err(
                "give only scheme, host and port: no path, user or query",
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        let (port, any_port) = match port {
            None => (None, false),
            Some("*") => (None, true),
            Some(p) => (
                Some(
                    p.parse::<u16>()
                        .map_err(|_| err("the port must be a number or *"))?,
                ),
                false,
            ),
        };
        let bare = host.strip_prefix("*.").unwrap_or(host);
        let host_ok = host == "*"
            || (!bare.is_empty()
                && bare
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
        if !host_ok {
            return Err(err(
                "the host must be a name, an IPv4 address, `*.domain` or `*`",
            ));
        }
        Ok(HostPattern {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            any_port,
        })
    }

    /// Whether a request to `scheme://host:port` is allowed by this pattern.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        if let Some(s) = &self.scheme
            && s != scheme
        {
            return false;
        }
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return false,
        };
        let port_ok = self.any_port || self.port.unwrap_or(default_port) == port;
        let host = host.to_ascii_lowercase();
        let host_ok = match self.host.strip_prefix("*.") {
            _ if self.host == "*" => true,
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
            None => host == self.host,
        };
        port_ok && host_ok
    }
}

/// Validates an HTTP route: an absolute path, optionally ending in `/...`
/// to match every path below it.
pub fn validate_route(r: &str) -> Result<(), FieldError> {
    let err = |why: &str| FieldError::new(format!("`{}`: {why}", r.escape_debug()));
    if !r.starts_with('/') {
        return Err(err("must start with `/`"));
    }
    if r.len() > 1024 {
        return Err(err("longer than 1024 bytes"));
    }
    let body = r.strip_suffix("/...").unwrap_or(r);
    if body.contains("...") || body.contains("//") {
        return Err(err(
            "`...` may appear only as the last segment, and `//` not at all",
        ));
    }
    if !body
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/-_.~".contains(c))
    {
        return Err(err(
            "use letters, digits and `/-_.~` (and a trailing `/...` for a prefix)",
        ));
    }
    if ["/fn", "/v1", "/healthz", "/metrics"]
        .iter()
        .any(|p| body == *p || body.starts_with(&format!("{p}/")))
    {
        return Err(err(
            "is reserved by the node (/fn, /v1, /healthz, /metrics)",
        ));
    }
    Ok(())
}

/// A cron trigger. TOML: `[[functions.NAME.cron]]` with
/// `schedule = "*/5 * * * *"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CronTrigger {
    /// Five fields (minute hour day month weekday), six with leading
    /// seconds, or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
    /// Always UTC.
    pub schedule: String,
    /// The request body of each fire. Default: a JSON object with the
    /// schedule and the scheduled time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
}

/// An MQTT trigger. TOML: `[[functions.NAME.mqtt]]` with
/// `topic = "sensors/+/temp"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MqttTrigger {
    /// Topic filter, with `+` and `#` wildcards. Messages are received at
    /// QoS 1 and acknowledged once their invocation is durably queued.
    pub topic: String,
    /// Where the function's response is published (QoS 1), if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_topic: Option<String>,
}

/// How asynchronous invocations of a function are retried.
/// TOML: `retry = { attempts = 5, backoff = "1s", max_backoff = "1m" }`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySpec {
    /// Attempts in all, the first included. Default: 3.
    pub attempts: u32,
    /// Wait before the second attempt; doubled each time, with jitter.
    /// Default: "1s".
    pub backoff: HumanDuration,
    /// Longest wait between attempts. Default: "1m".
    pub max_backoff: HumanDuration,
}

impl Default for RetrySpec {
    fn default() -> Self {
        RetrySpec {
            attempts: 3,
            backoff: HumanDuration(Duration::from_secs(1)),
            max_backoff: HumanDuration(Duration::from_secs(60)),
        }
    }
}

impl RetrySpec {
    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), FieldError> {
        if !(1..=100).contains(&self.attempts) {
            return bad(
                "attempts",
                format!("{} is not between 1 and 100", self.attempts),
            );
        }
        for (field, d) in [("backoff", self.backoff), ("max_backoff", self.max_backoff)] {
            if d.0 > Duration::from_secs(86_400) {
                return bad(field, "must be at most 1 day");
            }
        }
        if self.max_backoff.0 < self.backoff.0 {
            return bad("max_backoff", "must not be below `backoff`");
        }
        Ok(())
    }
}

/// Validates a `wasi:config` key: 1 to 128 of letters, digits, `_`, `-`, `.`.
pub fn validate_config_key(k: &str) -> Result<(), FieldError> {
    if (1..=128).contains(&k.len())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        Ok(())
    } else {
        Err(FieldError::new(format!(
            "invalid key `{}`: use 1-128 letters, digits, `_`, `-` and `.`",
            k.escape_debug()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics() {
        assert!(validate_topic_pattern("orders.*").is_ok());
        assert!(validate_topic_pattern("orders.>").is_ok());
        assert!(validate_topic_pattern("a.>.b").is_err());
        assert!(validate_topic_pattern("a..b").is_err());
        assert!(validate_topic("orders.*").is_err());
        assert!(topic_matches("orders.*", "orders.created"));
        assert!(!topic_matches("orders.*", "orders.created.eu"));
        assert!(topic_matches("orders.>", "orders.created.eu"));
        assert!(!topic_matches("orders.>", "orders"));
        assert!(topic_matches("a.b", "a.b"));
        assert!(!topic_matches("a.b", "a.c"));
    }

    #[test]
    fn hosts() {
        let p = HostPattern::parse("https://api.example.com").unwrap();
        assert!(p.allows("https", "api.example.com", 443));
        assert!(!p.allows("https", "api.example.com", 8443));
        assert!(!p.allows("http", "api.example.com", 80));
        assert!(!p.allows("https", "evil.com", 443));
        let p = HostPattern::parse("*://*.example.com:*").unwrap();
        assert!(p.allows("http", "a.example.com", 8080));
        assert!(!p.allows("http", "example.com", 80));
        assert!(!p.allows("http", "badexample.com", 80));
        let p = HostPattern::parse("http://127.0.0.1:8080").unwrap();
        assert!(p.allows("http", "127.0.0.1", 8080));
        for bad in [
            "example.com",
            "ftp://x",
            "https://x/path",
            "https://x:port",
            "https://",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn routes() {
        assert!(validate_route("/api/hello").is_ok());
        assert!(validate_route("/api/...").is_ok());
        assert!(validate_route("/").is_ok());
        assert!(validate_route("/...").is_ok());
        for bad in ["api", "/a/.../b", "/fn/x", "/v1", "/a b", "/fn/..."] {
            assert!(validate_route(bad).is_err(), "{bad}");
        }
    }
}
