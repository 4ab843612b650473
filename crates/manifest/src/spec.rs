//! One function's declaration: its module, limits and grants.

use crate::caps::{
    CronTrigger, HostPattern, MqttTrigger, RetrySpec, validate_config_key, validate_route,
    validate_topic_pattern,
};
use crate::cron::Schedule;
use crate::error::{FieldError, bad};
use crate::placement::PlacementSpec;
use crate::state::StateSpec;
use crate::units::{ByteSize, HumanDuration, Name, Percentile};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use weft_codes::Code;

/// One function, as declared in `[functions.NAME]` of `weft.toml` and as sent
/// to `PUT /v1/functions/{name}`. Every field but `module` is optional; an
/// absent limit takes the node's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// The module. In a manifest: a path to a `.wasm` (or `.wat`) file,
    /// relative to the manifest, or `sha256:<hex>` of a module already on the
    /// node. In the API: always `sha256:<hex>`.
    ///
    /// TOML: `module = "target/wasm32-wasip1/release/hello.wasm"`
    pub module: String,

    /// A line saying what the function does. TOML: `description = "greets"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,

    /// Whether `/fn/NAME` may be invoked without the node's token when the
    /// node listens beyond loopback. On loopback every route is open.
    /// Default: false. TOML: `public = true`
    #[serde(default)]
    pub public: bool,

    /// Wall-clock deadline of one invocation, from admission; a guest still
    /// running then is stopped. TOML: `timeout = "5s"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,

    /// The service-level objective: the time from arrival within which an
    /// invocation should have answered. Urgent work is ordered by it and
    /// admitted against it; missing it does not stop the guest (`timeout`
    /// does). At most the timeout; without it, the timeout serves as the
    /// deadline. A request may ask for a tighter one (`x-weft-deadline`),
    /// never a looser one. TOML: `deadline = "2ms"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<HumanDuration>,

    /// A first estimate of one invocation's execution time, used until the
    /// node has learned it from past runs. At most the deadline.
    /// TOML: `expected = "800us"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<HumanDuration>,

    /// The percentile of past execution times that admission plans with:
    /// higher is more cautious. Default: p90. TOML: `admission = "p99"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<Percentile>,

    /// Maximum linear memory of one sandbox. TOML: `memory = "64MiB"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,

    /// Fuel budget of one invocation (roughly, wasm instructions). Needs a
    /// node started with fuel metering. TOML: `fuel = 100_000_000`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,

    /// Sandboxes of this function that may run at once.
    /// TOML: `max_concurrency = 16`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,

    /// Invocations that may wait for a free slot when all are busy; past it
    /// the node answers 429. TOML: `max_queue = 64`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue: Option<u32>,

    /// Idle time after which the function is scaled to zero: no instance and
    /// no compiled code held in memory. TOML: `idle_ttl = "5m"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_ttl: Option<HumanDuration>,

    /// Largest request body accepted. TOML: `max_request_size = "1MiB"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_size: Option<ByteSize>,

    /// Largest response body a function may produce.
    /// TOML: `max_response_size = "8MiB"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_size: Option<ByteSize>,

    /// Arguments of a command, after its name (`argv[1..]`), as
    /// `wasmtime run` and OpenFaaS's classic watchdog pass them: a program
    /// such as `binarytrees 10` runs unchanged. HTTP components take none.
    /// TOML: `args = ["10"]`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,

    /// Environment variables the guest sees (it sees none otherwise).
    /// TOML: `env = { GREETING = "hi" }`
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,

    /// Grant the real wall and monotonic clocks. Without it both read zero.
    /// Default: false. TOML: `clock = true`
    #[serde(default)]
    pub clock: bool,

    /// Key-value stores the function uses, by label; the node's config maps
    /// each label to a backend (`default` is the node's embedded store).
    /// TOML: `key_value_stores = ["default"]`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_value_stores: Vec<Name>,

    /// Configuration values the guest reads with `wasi:config/store`.
    /// TOML: `config = { api_url = "https://api.example.com" }`
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,

    /// Hosts the guest may send HTTP requests to, as
    /// `scheme://host[:port]` (`*` wildcards allowed: `https://*.example.com`,
    /// `*://localhost:*`). TOML: `allowed_outbound_hosts = ["https://api.example.com"]`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_outbound_hosts: Vec<String>,

    /// Functions this one may call. TOML: `calls = ["resize"]`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<Name>,

    /// Internal topics the function may publish on (patterns: `*` one token,
    /// `>` the rest). TOML: `publishes = ["orders.*"]`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publishes: Vec<String>,

    /// Internal topics whose events invoke this function asynchronously.
    /// TOML: `subscribes = ["orders.created"]`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribes: Vec<String>,

    /// HTTP routes served by this function besides `/fn/NAME`; a trailing
    /// `/...` matches every path below. TOML: `routes = ["/hello", "/api/..."]`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,

    /// Cron schedules that invoke the function (UTC).
    /// TOML: `[[functions.NAME.cron]]` with `schedule = "*/5 * * * *"`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cron: Vec<CronTrigger>,

    /// MQTT subscriptions that invoke the function.
    /// TOML: `[[functions.NAME.mqtt]]` with `topic = "sensors/+/temp"`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mqtt: Vec<MqttTrigger>,

    /// Retries of asynchronous invocations. Default: 3 attempts, backoff
    /// from 1s doubling to at most 1m, with jitter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,

    /// Where the function may and would rather run in a fabric.
    /// TOML: `[functions.NAME.placement]`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementSpec>,

    /// Where the function's state lives and which invocation's it is: the
    /// bucket it opens (`state` unless named) holds the state of the
    /// invocation's key. TOML: `[functions.NAME.state]` with `model =
    /// "function"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateSpec>,

    /// Whether running it twice does no harm: a synchronous invocation whose
    /// node died is then retried on another node within its deadline.
    /// Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub idempotent: bool,

    /// What it takes, as a JSON schema: a workflow that passes it a step's
    /// output that may not fit is refused at deploy, and a run whose input
    /// does not fit its first step is refused at start. TOML: `input = {
    /// type = "object", required = ["image"] }`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,

    /// What it answers, as a JSON schema (see `input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
}

/// Bounds every function limit must respect, whatever the node allows.
pub mod bounds {
    use std::time::Duration;
    /// Shortest timeout.
    pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);
    /// Shortest deadline or execution estimate anywhere (a node also
    /// refuses one below its own scheduling quantum).
    pub const MIN_DEADLINE: Duration = Duration::from_micros(1);
    /// Longest timeout.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
    /// Smallest memory limit: one wasm page.
    pub const MIN_MEMORY: u64 = 64 << 10;
    /// Most sandboxes of one function at once.
    pub const MAX_CONCURRENCY: u32 = 100_000;
    /// Longest wait queue.
    pub const MAX_QUEUE: u32 = 1_000_000;
    /// Largest request or response body.
    pub const MAX_BODY: u64 = 1 << 30;
    /// Most arguments of a command.
    pub const MAX_ARGS: usize = 1024;
    /// Most bytes of a command's arguments, with a NUL after each.
    pub const MAX_ARG_BYTES: usize = 64 << 10;
}

/// Where `module` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleRef {
    /// `sha256:<hex>` of a stored module.
    Digest(String),
    /// A path (manifests only).
    Path(String),
}

impl FunctionSpec {
    /// Parses `module`.
    pub fn module_ref(&self) -> ModuleRef {
        match self.module.strip_prefix("sha256:") {
            Some(hex) => ModuleRef::Digest(hex.to_string()),
            None => ModuleRef::Path(self.module.clone()),
        }
    }

    /// The deadline, its estimate and the timeout agree with each other.
    fn validate_slo(&self) -> Result<(), FieldError> {
        if let Some(HumanDuration(d)) = self.deadline {
            check_range("deadline", d, bounds::MIN_DEADLINE, bounds::MAX_TIMEOUT)?;
            if let Some(HumanDuration(t)) = self.timeout
                && d > t
            {
                return bad(
                    "deadline",
                    format!(
                        "{} is longer than the timeout of {}: the guest is stopped at its timeout",
                        HumanDuration(d),
                        HumanDuration(t)
                    ),
                );
            }
        }
        if let Some(HumanDuration(e)) = self.expected {
            check_range("expected", e, bounds::MIN_DEADLINE, bounds::MAX_TIMEOUT)?;
            let (limit, what) = match (self.deadline, self.timeout) {
                (Some(d), _) => (Some(d), "deadline"),
                (None, Some(t)) => (Some(t), "timeout"),
                (None, None) => (None, ""),
            };
            if let Some(HumanDuration(l)) = limit
                && e > l
            {
                return bad(
                    "expected",
                    format!(
                        "{} is longer than the {what} of {}: no invocation could be admitted",
                        HumanDuration(e),
                        HumanDuration(l)
                    ),
                );
            }
        }
        Ok(())
    }

    /// Checks every field; the error names the field (its path below
    /// `[functions.NAME]`) and what is wrong.
    pub fn validate(&self) -> Result<(), FieldError> {
        match self.module_ref() {
            ModuleRef::Digest(hex) => {
                if hex.len() != 64
                    || !hex
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                {
                    return bad(
                        "module",
                        format!(
                            "`{}` is not `sha256:` followed by 64 lowercase hex digits",
                            self.module
                        ),
                    );
                }
            }
            ModuleRef::Path(p) if p.trim().is_empty() => {
                return bad("module", "must not be empty");
            }
            ModuleRef::Path(_) => {}
        }
        if let Some(d) = &self.description
            && d.len() > 1024
        {
            return bad("description", "longer than 1024 bytes");
        }
        if let Some(HumanDuration(t)) = self.timeout {
            check_range("timeout", t, bounds::MIN_TIMEOUT, bounds::MAX_TIMEOUT)?;
        }
        for (field, schema) in [("input", &self.input), ("output", &self.output)] {
            if let Some(s) = schema {
                crate::types::check_schema(field, s)?;
            }
        }
        self.validate_slo()?;
        if let Some(HumanDuration(t)) = self.idle_ttl {
            check_range(
                "idle_ttl",
                t,
                Duration::from_millis(1),
                Duration::from_secs(30 * 86_400),
            )?;
        }
        if let Some(ByteSize(m)) = self.memory
            && m < bounds::MIN_MEMORY
        {
            return bad(
                "memory",
                format!("{m} bytes is below one wasm page (64KiB)"),
            );
        }
        if self.fuel == Some(0) {
            return bad("fuel", "must be at least 1");
        }
        if let Some(c) = self.max_concurrency
            && (c == 0 || c > bounds::MAX_CONCURRENCY)
        {
            return bad(
                "max_concurrency",
                format!("{c} is not between 1 and {}", bounds::MAX_CONCURRENCY),
            );
        }
        if let Some(q) = self.max_queue
            && q > bounds::MAX_QUEUE
        {
            return bad("max_queue", format!("{q} is above {}", bounds::MAX_QUEUE));
        }
        for (field, v) in [
            ("max_request_size", self.max_request_size),
            ("max_response_size", self.max_response_size),
        ] {
            if let Some(ByteSize(b)) = v
                && b > bounds::MAX_BODY
            {
                return bad(field, format!("{b} bytes is above 1GiB"));
            }
        }
        if self.args.len() > bounds::MAX_ARGS {
            return bad(
                "args",
                format!(
                    "{} arguments (at most {})",
                    self.args.len(),
                    bounds::MAX_ARGS
                ),
            );
        }
        let mut arg_bytes = 0;
        for (i, a) in self.args.iter().enumerate() {
            if a.contains('\0') {
                return bad(&format!("args[{i}]"), "contains a NUL byte");
            }
            arg_bytes += a.len() + 1;
        }
        if arg_bytes > bounds::MAX_ARG_BYTES {
            return bad(
                "args",
                format!(
                    "{arg_bytes} bytes in all (at most {})",
                    bounds::MAX_ARG_BYTES
                ),
            );
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return bad(
                    "env",
                    format!("invalid variable name `{}`", k.escape_debug()),
                );
            }
            if v.contains('\0') {
                return bad(&format!("env.{k}"), "contains a NUL byte");
            }
        }
        for (k, v) in &self.config {
            validate_config_key(k).map_err(|e| e.at("config"))?;
            if v.len() > 64 << 10 {
                return bad(&format!("config.{k}"), "longer than 64KiB");
            }
        }
        for (i, h) in self.allowed_outbound_hosts.iter().enumerate() {
            HostPattern::parse(h).map_err(|e| e.at(format!("allowed_outbound_hosts[{i}]")))?;
        }
        for (field, list) in [
            ("publishes", &self.publishes),
            ("subscribes", &self.subscribes),
        ] {
            for (i, t) in list.iter().enumerate() {
                validate_topic_pattern(t).map_err(|e| e.at(format!("{field}[{i}]")))?;
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            validate_route(r).map_err(|e| e.at(format!("routes[{i}]")))?;
        }
        for (i, c) in self.cron.iter().enumerate() {
            Schedule::parse(&c.schedule).map_err(|e| {
                FieldError::new(e.to_string())
                    .with_code(Code::InvalidTrigger)
                    .at(format!("cron[{i}].schedule"))
            })?;
        }
        for (i, m) in self.mqtt.iter().enumerate() {
            crate::mqtt::validate_filter(&m.topic).map_err(|e| {
                e.with_code(Code::InvalidTrigger)
                    .at(format!("mqtt[{i}].topic"))
            })?;
            if let Some(t) = &m.response_topic {
                crate::mqtt::validate_topic(t).map_err(|e| {
                    e.with_code(Code::InvalidTrigger)
                        .at(format!("mqtt[{i}].response_topic"))
                })?;
            }
        }
        if let Some(p) = &self.placement {
            p.validate().map_err(|e| e.at("placement"))?;
        }
        if let Some(r) = &self.retry {
            r.validate().map_err(|e| e.at("retry"))?;
        }
        if let Some(s) = &self.state
            && self
                .key_value_stores
                .iter()
                .any(|l| l.as_str() == s.bucket_label())
        {
            return bad(
                "state.bucket",
                format!(
                    "`{}` is also in key_value_stores: the state's bucket is the function's own; name another",
                    s.bucket_label()
                ),
            );
        }
        Ok(())
    }
}

pub(crate) fn check_range(
    field: &str,
    v: Duration,
    min: Duration,
    max: Duration,
) -> Result<(), FieldError> {
    if v < min || v > max {
        return bad(
            field,
            format!(
                "{} is not between {} and {}",
                humantime::format_duration(v),
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(module: &str) -> FunctionSpec {
        FunctionSpec {
            module: module.into(),
            ..FunctionSpec::default()
        }
    }

    #[test]
    fn digest_modules_are_checked() {
        assert!(
            spec(&format!("sha256:{}", "a".repeat(64)))
                .validate()
                .is_ok()
        );
        assert!(spec("sha256:xyz").validate().is_err());
        assert!(spec("").validate().is_err());
    }

    #[test]
    fn limits_are_checked() {
        let mut s = spec("a.wasm");
        s.max_concurrency = Some(0);
        assert_eq!(s.validate().unwrap_err().field(), "max_concurrency");
        let mut s = spec("a.wasm");
        s.timeout = Some(HumanDuration(Duration::from_secs(7200)));
        assert_eq!(s.validate().unwrap_err().field(), "timeout");
        let mut s = spec("a.wasm");
        s.env.insert("A=B".into(), "x".into());
        assert_eq!(s.validate().unwrap_err().field(), "env");
    }

    #[test]
    fn the_deadline_its_estimate_and_the_timeout_agree() {
        let ms = |n| Some(HumanDuration(Duration::from_millis(n)));
        let mut s = spec("a.wasm");
        (s.deadline, s.expected, s.timeout) = (ms(2), ms(1), ms(1000));
        assert!(s.validate().is_ok());
        s.deadline = ms(2000);
        let e = s.validate().unwrap_err();
        assert_eq!(e.field(), "deadline");
        assert!(
            e.to_string().contains("longer than the timeout of 1s"),
            "{e}"
        );
        (s.deadline, s.expected) = (ms(2), ms(3));
        assert_eq!(s.validate().unwrap_err().field(), "expected");
        // Without a deadline the estimate is held to the timeout.
        (s.deadline, s.expected) = (None, ms(1500));
        assert_eq!(s.validate().unwrap_err().field(), "expected");
        (s.deadline, s.expected) = (Some(HumanDuration(Duration::ZERO)), None);
        assert_eq!(s.validate().unwrap_err().field(), "deadline");
    }

    #[test]
    fn unknown_fields_are_errors() {
        let err = serde_json::from_str::<FunctionSpec>(r#"{"module":"a.wasm","memroy":"1MiB"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `memroy`"), "{err}");
    }
}
