//! Triggers that turn events into asynchronous invocations: cron schedules
//! and MQTT subscriptions. (Internal topics are in `dispatch`; HTTP routes
//! in the gateway.)
//!
//! Cron fires are queued with an idempotency key made of the schedule and
//! the scheduled time, and the last fire of each schedule is kept in the
//! registry: a fire is never queued twice, even across a crash. Fires
//! missed while the node was down are coalesced into one catch-up fire at
//! startup when the latest missed one is less than [`CATCH_UP`] old; older
//! ones are skipped.

use crate::controller::Controller;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;
use weft_codes::Code;
use weft_manifest::Schedule;
use weft_triggers::cron::plan;
use weft_triggers::mqtt::{Handler, Message};

/// How long an MQTT message waits for room in a full queue before it is
/// left unacknowledged for the broker to redeliver.
const MQTT_HOLD: Duration = Duration::from_secs(60);

/// How far back a missed cron fire is still caught up.
pub const CATCH_UP: Duration = Duration::from_secs(3600);

pub(crate) fn start(c: &Arc<Controller>) {
    let weak = Arc::downgrade(c);
    let changed = c.changed.clone();
    tokio::spawn(async move {
        let mut next: HashMap<String, DateTime<Utc>> = HashMap::new();
        loop {
            let woken = changed.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let sleep = {
                let Some(c) = weak.upgrade() else { break };
                if c.draining.load(std::sync::atomic::Ordering::Acquire) {
                    break;
                }
                c.reconcile_mqtt().await;
                c.cron_round(&mut next).await
            };
            tokio::select! {
                _ = &mut woken => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    });
}

/// Every cron trigger of every function: (key, function, schedule, payload).
type CronEntry = (String, String, Schedule, Option<String>);

impl Controller {
    fn cron_entries(&self) -> Vec<CronEntry> {
        let mut out = Vec::new();
        for f in self.snapshot() {
            for (s, payload) in &f.cron {
                out.push((
                    format!("cron:{}:{}", f.name, s.as_str()),
                    f.name.clone(),
                    s.clone(),
                    payload.clone(),
                ));
            }
        }
        out
    }

    /// Fires what is due; returns how long until the next fire.
    async fn cron_round(&self, next: &mut HashMap<String, DateTime<Utc>>) -> Duration {
        let entries = self.cron_entries();
        next.retain(|k, _| entries.iter().any(|e| &e.0 == k));
        let now = Utc::now();
        for (key, function, schedule, payload) in &entries {
            let due = match next.get(key) {
                Some(t) => *t,
                None => {
                    let last = self
                        .store_meta(key)
                        .and_then(DateTime::<Utc>::from_timestamp_millis);
                    let p = plan(schedule, last, now, CATCH_UP);
                    if let Some(missed) = p.catch_up {
                        tracing::info!(function = %function, schedule = %schedule.as_str(), at = %missed, "catching up a missed cron fire");
                        self.fire(key, function, schedule, payload.as_deref(), missed, true)
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
                self.fire(key, function, schedule, payload.as_deref(), due, false)
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

    fn store_meta(&self, key: &str) -> Option<i64> {
        self.store().meta(key).ok().flatten()?.parse().ok()
    }

    async fn fire(
        &self,
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
        match self
            .enqueue(
                function,
                Bytes::from(body),
                "cron",
                schedule.as_str().to_string(),
                BTreeMap::new(),
                Some(idem),
            )
            .await
        {
            Ok(_) => {
                if let Err(e) = self
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

    /// Subscribes the MQTT triggers of every function, and unsubscribes
    /// those of removed or redeployed ones.
    async fn reconcile_mqtt(self: &Arc<Self>) {
        let Some(mqtt) = &self.mqtt else { return };
        let wanted: BTreeMap<String, (u32, Vec<weft_manifest::MqttTrigger>)> = self
            .snapshot()
            .into_iter()
            .filter(|f| !f.mqtt.is_empty())
            .map(|f| (f.name.clone(), (f.version.version, f.mqtt.clone())))
            .collect();
        let mut subs = self.mqtt_subs.lock().await;
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
                let handler =
                    mqtt_handler(Arc::downgrade(self), name.clone(), t.response_topic.clone());
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

/// Queues each message as an invocation; the message is acknowledged to
/// the broker only once that is durable. A payload larger than the
/// function accepts is dropped (acknowledged, logged, counted): it would
/// never succeed.
fn mqtt_handler(c: Weak<Controller>, function: String, response_topic: Option<String>) -> Handler {
    Arc::new(move |msg: Message| {
        let c = c.clone();
        let function = function.clone();
        let response_topic = response_topic.clone();
        Box::pin(async move {
            let Some(c) = c.upgrade() else {
                return Err("the node is shutting down".to_string());
            };
            let mut meta = BTreeMap::new();
            if let Some(t) = response_topic {
                meta.insert("response_topic".to_string(), t);
            }
            // A full queue is back-pressure: hold the message (unacknowledged,
            // so the broker's in-flight window throttles the flow) and try
            // again, rather than leave it for redelivery at the next reconnect.
            let mut wait = Duration::from_millis(50);
            let until = tokio::time::Instant::now() + MQTT_HOLD;
            loop {
                let queued = c
                    .enqueue(
                        &function,
                        msg.payload.clone(),
                        "mqtt",
                        msg.topic.clone(),
                        meta.clone(),
                        None,
                    )
                    .await;
                match queued {
                    Ok(_) => return Ok(()),
                    Err(e)
                        if matches!(e.code(), Code::RequestTooLarge | Code::FunctionNotFound) =>
                    {
                        c.metrics.trigger_dropped.inc();
                        c.log_line(
                            &function,
                            "-",
                            format!("MQTT message on `{}` dropped: {e}", msg.topic),
                        );
                        return Ok(());
                    }
                    Err(e)
                        if e.code() == Code::QueueFull
                            && tokio::time::Instant::now() + wait < until =>
                    {
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(2));
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
    })
}
