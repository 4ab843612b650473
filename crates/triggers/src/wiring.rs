//! The node's triggers: cron schedules and MQTT subscriptions of the
//! functions it serves, turned into asynchronous invocations through the
//! router; and the MQTT side of queued work (publishing a response where
//! its trigger asked).
//!
//! Cron fires are queued with an idempotency key made of the schedule and
//! the scheduled time, and the last fire of each schedule is kept in the
//! node's store: a fire is never queued twice, even across a crash. Fires
//! missed while the node was down are coalesced into one catch-up fire at
//! startup when the latest missed one is less than [`CATCH_UP`] old; older
//! ones are skipped.
//!
//! MQTT messages are acknowledged to the broker only once their invocation
//! is durably queued. A full queue is back-pressure: the message is held,
//! unacknowledged, and offered again with backoff for up to a minute.

use crate::cron::plan;
use crate::mqtt::{Handler, Message, Mqtt, MqttConfig, MqttError, SubscriptionId};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_core::future::BoxFuture;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;
use weft_codes::Code;
use weft_manifest::{MqttTrigger, Schedule};
use weft_router::{Request, Responder, Router, Trigger};

/// How long an MQTT message waits for room in a full queue before it is
/// left unacknowledged for the broker to redeliver.
const MQTT_HOLD: Duration = Duration::from_secs(60);

/// How far back a missed cron fire is still caught up.
pub const CATCH_UP: Duration = Duration::from_secs(3600);

/// The node's triggers, running.
pub struct Triggers {
    router: Weak<Router>,
    mqtt: Option<Mqtt>,
    subs: tokio::sync::Mutex<HashMap<String, Vec<SubscriptionId>>>,
}

/// Every cron trigger of every function: (key, function, schedule, payload).
type CronEntry = (String, String, Schedule, Option<String>);

impl Triggers {
    /// Starts the triggers of `router`'s node: the MQTT client (when the
    /// node config has `[mqtt]`), and one task that follows the functions
    /// served, fires cron schedules and keeps the MQTT subscriptions.
    pub fn start(router: &Arc<Router>) -> Result<Arc<Triggers>, MqttError> {
        let c = router.controller();
        let mqtt = match &c.config().mqtt {
            Some(m) => {
                let id = match &m.client_id {
                    Some(id) => id.clone(),
                    None => format!("weft-{}", c.node_id().unwrap_or_default()),
                };
                Some(Mqtt::start(MqttConfig::new(m.url.clone(), id))?)
            }
            None => None,
        };
        let t = Arc::new(Triggers {
            router: Arc::downgrade(router),
            mqtt,
            subs: tokio::sync::Mutex::new(HashMap::new()),
        });
        if t.mqtt.is_some() {
            router.set_responder(Arc::new(MqttResponder(Arc::downgrade(&t))));
        }
        let weak = Arc::downgrade(&t);
        let changed = c.functions_changed();
        tokio::spawn(async move {
            let mut next: HashMap<String, DateTime<Utc>> = HashMap::new();
            loop {
                let woken = changed.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                let sleep = {
                    let Some(t) = weak.upgrade() else { break };
                    let Some(router) = t.router.upgrade() else {
                        break;
                    };
                    if router.controller().draining() {
                        break;
                    }
                    t.reconcile_mqtt(&router).await;
                    t.cron_round(&router, &mut next).await
                };
                tokio::select! {
                    _ = &mut woken => {}
                    _ = tokio::time::sleep(sleep) => {}
                }
            }
        });
        Ok(t)
    }

    /// Whether the MQTT client is connected; `None` without a broker.
    pub fn mqtt_connected(&self) -> Option<bool> {
        self.mqtt.as_ref().map(Mqtt::connected)
    }

    fn cron_entries(router: &Router) -> Vec<CronEntry> {
        let mut out = Vec::new();
        for f in router.controller().functions() {
            for (s, payload) in f.cron() {
                out.push((
                    format!("cron:{}:{}", f.name(), s.as_str()),
                    f.name().to_string(),
                    s.clone(),
                    payload.clone(),
                ));
            }
        }
        out
    }

    /// Fires what is due; returns how long until the next fire.
    async fn cron_round(
        &self,
        router: &Router,
        next: &mut HashMap<String, DateTime<Utc>>,
    ) -> Duration {
        let entries = Self::cron_entries(router);
        next.retain(|k, _| entries.iter().any(|e| &e.0 == k));
        let now = Utc::now();
        for (key, function, schedule, payload) in &entries {
            let due = match next.get(key) {
                Some(t) => *t,
                None => {
                    let last = router
                        .controller()
                        .store()
                        .meta(key)
                        .ok()
                        .flatten()
                        .and_then(|v| v.parse().ok())
                        .and_then(DateTime::<Utc>::from_timestamp_millis);
                    let p = plan(schedule, last, now, CATCH_UP);
                    if let Some(missed) = p.catch_up {
                        tracing::info!(function = %function, schedule = %schedule.as_str(), at = %missed, "catching up a missed cron fire");
                        fire(
                            router,
                            key,
                            function,
                            schedule,
                            payload.as_deref(),
                            missed,
                            true,
                        )
                        .await;
                    }
                    match p.next {
                        Some(t) => {
                            next.insert(key.clone(), t);
                            t
                        }
                        None => continue,
                    }
                }
            };
            if due <= now {
                fire(
                    router,
                    key,
                    function,
                    schedule,
                    payload.as_deref(),
                    due,
                    false,
                )
                .await;
                // Far behind (a suspended host): skip to the next time after now.
                match schedule.next_after(due.max(now)) {
                    Some(t) => next.insert(key.clone(), t),
                    None => next.remove(key),
                };
            }
        }
        let now = Utc::now();
        next.values()
            .map(|t| (*t - now).to_std().unwrap_or(Duration::ZERO))
            .min()
            .unwrap_or(Duration::from_secs(60))
            .clamp(Duration::from_millis(5), Duration::from_secs(60))
    }

    /// Subscribes the MQTT triggers of every function, and unsubscribes
    /// those of removed or redeployed ones.
    async fn reconcile_mqtt(&self, router: &Arc<Router>) {
        let Some(mqtt) = &self.mqtt else { return };
        let wanted: BTreeMap<String, (u32, Vec<MqttTrigger>)> = router
            .controller()
            .functions()
            .into_iter()
            .filter(|f| !f.mqtt().is_empty())
            .map(|f| (f.name().to_string(), (f.version(), f.mqtt().to_vec())))
            .collect();
        let mut subs = self.subs.lock().await;
        let stale: Vec<String> = subs
            .keys()
            .filter(|k| {
                let (name, version) = k.rsplit_once('@').unwrap_or((k.as_str(), ""));
                wanted
                    .get(name)
                    .is_none_or(|(v, _)| v.to_string() != version)
            })
            .cloned()
            .collect();
        for key in stale {
            for id in subs.remove(&key).unwrap_or_default() {
                mqtt.unsubscribe(id).await;
            }
        }
        for (name, (version, triggers)) in wanted {
            let key = format!("{name}@{version}");
            if subs.contains_key(&key) {
                continue;
            }
            let mut ids = Vec::new();
            for t in triggers {
                let handler = mqtt_handler(
                    Arc::downgrade(router),
                    name.clone(),
                    t.response_topic.clone(),
                );
                match mqtt.subscribe(&t.topic, handler).await {
                    Ok(id) => ids.push(id),
                    Err(e) => {
                        tracing::error!(function = %name, topic = %t.topic, "subscribing: {e}")
                    }
                }
            }
            subs.insert(key, ids);
        }
    }
}

async fn fire(
    router: &Router,
    key: &str,
    function: &str,
    schedule: &Schedule,
    payload: Option<&str>,
    at: DateTime<Utc>,
    catch_up: bool,
) {
    let body = match payload {
        Some(p) => p.to_string(),
        None => serde_json::json!({
            "schedule": schedule.as_str(),
            "scheduled_at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "catch_up": catch_up,
        })
        .to_string(),
    };
    let idem = format!("{key}:{}", at.timestamp_millis());
    let idem = if idem.len() > 256 {
        format!("cron:{}", weft_runtime::sha256_hex(idem.as_bytes()))
    } else {
        idem
    };
    let req = Request {
        subject: schedule.as_str().to_string(),
        ..Request::new(function, Trigger::Cron).with_body(body)
    };
    match router.submit(req, Some(idem)).await {
        Ok(_) => {
            if let Err(e) = router
                .controller()
                .store()
                .set_meta(key, &at.timestamp_millis().to_string())
            {
                tracing::error!(function = %function, "recording a cron fire: {e}");
            }
        }
        Err(e) => {
            tracing::error!(function = %function, schedule = %schedule.as_str(), "queueing a cron fire: {e}");
        }
    }
}

/// Queues each message as an invocation; the message is acknowledged to
/// the broker only once that is durable. A payload larger than the
/// function accepts is dropped (acknowledged, logged, counted): it would
/// never succeed.
fn mqtt_handler(router: Weak<Router>, function: String, response_topic: Option<String>) -> Handler {
    Arc::new(move |msg: Message| {
        let router = router.clone();
        let function = function.clone();
        let response_topic = response_topic.clone();
        Box::pin(async move {
            let Some(router) = router.upgrade() else {
                return Err("the node is shutting down".to_string());
            };
            // A full queue is back-pressure: hold the message (unacknowledged,
            // so the broker's in-flight window throttles the flow) and try
            // again, rather than leave it for redelivery at the next reconnect.
            let mut holds = {
                use backon::BackoffBuilder;
                backon::ExponentialBuilder::new()
                    .with_min_delay(Duration::from_millis(50))
                    .with_max_delay(Duration::from_secs(2))
                    .with_total_delay(Some(MQTT_HOLD))
                    .without_max_times()
                    .build()
            };
            loop {
                let req = Request {
                    subject: msg.topic.clone(),
                    respond_to: response_topic.clone(),
                    ..Request::new(function.clone(), Trigger::Mqtt).with_body(msg.payload.clone())
                };
                match router.submit(req, None).await {
                    Ok(_) => return Ok(()),
                    Err(e)
                        if matches!(e.code(), Code::RequestTooLarge | Code::FunctionNotFound) =>
                    {
                        router.controller().count_dropped_trigger();
                        router.controller().log_line(
                            &function,
                            "-",
                            format!("MQTT message on `{}` dropped: {e}", msg.topic),
                        );
                        return Ok(());
                    }
                    Err(e) if e.code() == Code::QueueFull => match holds.next() {
                        Some(wait) => tokio::time::sleep(wait).await,
                        None => return Err(e.to_string()),
                    },
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
    })
}

/// Publishes queued invocations' responses on their MQTT response topic.
struct MqttResponder(Weak<Triggers>);

impl Responder for MqttResponder {
    fn respond(
        &self,
        function: &str,
        id: &str,
        topic: &str,
        body: Bytes,
    ) -> BoxFuture<'static, ()> {
        let t = self.0.upgrade();
        let (function, id, topic) = (function.to_string(), id.to_string(), topic.to_string());
        Box::pin(async move {
            let Some(mqtt) = t.as_ref().and_then(|t| t.mqtt.as_ref()) else {
                return;
            };
            if let Err(e) = mqtt.publish(&topic, body).await {
                tracing::warn!(function = %function, invocation = %id, "publishing the response on `{topic}`: {e}");
            }
        })
    }
}
