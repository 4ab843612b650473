//! From what a function declares (its spec) and what the node provides (its
//! config and backends) to what the function gets: its [`Capabilities`],
//! retry policy and triggers. A deploy that asks for something the node
//! does not provide is refused here, naming it.

use crate::error::{Error, Result};
use crate::state::Strictness;
use std::sync::Arc;
use std::time::Duration;
use weft_manifest::Schedule;
use weft_manifest::{FunctionSpec, HostPattern, MqttTrigger, NodeConfig, topics_provide};
use weft_queue::RetryPolicy;
use weft_runtime::Capabilities;

/// Everything resolved for one function version.
pub(crate) struct Resolved {
    pub(crate) caps: Arc<Capabilities>,
    pub(crate) retry: RetryPolicy,
    pub(crate) subscribes: Vec<String>,
    pub(crate) routes: Vec<String>,
    pub(crate) cron: Vec<(Schedule, Option<String>)>,
    pub(crate) mqtt: Vec<MqttTrigger>,
    pub(crate) state: Option<crate::state::FunctionState>,
}

fn node_topics(config: &NodeConfig) -> Vec<String> {
    config
        .topics
        .clone()
        .unwrap_or_else(|| vec![">".to_string()])
}

pub(crate) fn resolve(
    name: &str,
    spec: &FunctionSpec,
    config: &NodeConfig,
    kv: &weft_kv::Stores,
    homes: &crate::state::StateHomes,
    mqtt_configured: bool,
    strict: Strictness,
) -> Result<Resolved> {
    let refuse = |e: Error| -> Result<()> {
        match strict {
            Strictness::Deploy => Err(e),
            Strictness::Restart => {
                tracing::error!(function = %name, "{e}; serving the function without it");
                Ok(())
            }
        }
    };
    let mut caps = Capabilities::default();
    for (i, label) in spec.key_value_stores.iter().enumerate() {
        if config.state.function.as_ref() == Some(label) {
            // It holds the client states' seal: a guest that read it could
            // forge any client's state.
            refuse(Error::InvalidSpec {
                name: name.to_string(),
                error: weft_manifest::FieldError::new(format!(
                    "store `{label}` keeps this node's actors and client-state seal \
                     (`[state] function`): a function may not open it"
                ))
                .at(format!("key_value_stores[{i}]")),
            })?;
            continue;
        }
        match kv.bucket(label.as_str()) {
            Some(b) => {
                caps.stores.insert(label.to_string(), b);
            }
            None => refuse(Error::UnknownStore {
                name: name.to_string(),
                label: label.to_string(),
            })?,
        }
    }
    caps.config = spec.config.clone();
    for (i, h) in spec.allowed_outbound_hosts.iter().enumerate() {
        let p = HostPattern::parse(h).map_err(|e| Error::InvalidSpec {
            name: name.to_string(),
            error: e.at(format!("allowed_outbound_hosts[{i}]")),
        })?;
        caps.outbound.push(p);
    }
    caps.calls = spec.calls.iter().map(|c| c.to_string()).collect();
    let topics = node_topics(config);
    let mut publishes = Vec::new();
    for t in &spec.publishes {
        if topics_provide(&topics, t) {
            publishes.push(t.clone());
        } else {
            refuse(Error::UnknownTopic {
                name: name.to_string(),
                topic: t.clone(),
            })?;
        }
    }
    caps.publishes = publishes;
    let mut subscribes = Vec::new();
    for t in &spec.subscribes {
        if topics_provide(&topics, t) {
            subscribes.push(t.clone());
        } else {
            refuse(Error::UnknownTopic {
                name: name.to_string(),
                topic: t.clone(),
            })?;
        }
    }
    let mut cron = Vec::new();
    for c in &spec.cron {
        match Schedule::parse(&c.schedule) {
            Ok(s) => cron.push((s, c.payload.clone())),
            Err(e) => refuse(Error::InvalidTrigger {
                name: name.to_string(),
                message: format!("cron: {e}"),
            })?,
        }
    }
    let mut mqtt = Vec::new();
    for m in &spec.mqtt {
        let checked = weft_manifest::mqtt::validate_filter(&m.topic)
            .and_then(|()| match &m.response_topic {
                Some(t) => weft_manifest::mqtt::validate_topic(t),
                None => Ok(()),
            })
            .map_err(|e| e.to_string())
            .and_then(|()| {
                if mqtt_configured {
                    Ok(())
                } else {
                    Err(format!(
                        "mqtt: topic `{}` needs an MQTT broker, and this node has none \
                         (set [mqtt] url in its config)",
                        m.topic
                    ))
                }
            });
        match checked {
            Ok(()) => mqtt.push(m.clone()),
            Err(message) => refuse(Error::InvalidTrigger {
                name: name.to_string(),
                message,
            })?,
        }
    }
    let state = match &spec.state {
        Some(s) => crate::state::resolve(name, s, config, kv, homes, strict)?,
        None => None,
    };
    Ok(Resolved {
        caps: Arc::new(caps),
        retry: retry_policy(&spec.retry.unwrap_or_default()),
        subscribes,
        routes: spec.routes.clone(),
        cron,
        mqtt,
        state,
    })
}

/// The retry policy a declared `retry` means (a function's queued work, a
/// workflow's step).
pub fn retry_policy(retry: &weft_manifest::RetrySpec) -> RetryPolicy {
    RetryPolicy {
        max_attempts: retry.attempts,
        initial_backoff: retry.backoff.0,
        max_backoff: retry.max_backoff.0.max(Duration::from_millis(1)),
    }
}
