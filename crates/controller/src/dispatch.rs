//! Asynchronous invocations: accepting them into the durable queue, and the
//! dispatcher that runs them as the functions' slots allow.
//!
//! Delivery is at least once: an invocation is acknowledged (202) only
//! after its queue record is committed to disk, and it is marked done only
//! after it ran; a crash in between runs it again after restart. An
//! idempotency key makes acceptance effectively once.

use crate::controller::{BodyError, Controller, Origin, body_error, read_request};
use crate::error::{Error, Result};
use crate::function::Function;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::OwnedSemaphorePermit;
use weft_codes::Code;
use weft_queue::{Accepted, AfterFailure, Claimed, Failure, NewInvocation, Record};

/// The longest the dispatcher sleeps without being woken.
const IDLE_WAKE: Duration = Duration::from_secs(30);
/// How long queued work that found no node to run on waits before it is
/// placed again (no attempt is spent meanwhile).
const PLACEMENT_RETRY: Duration = Duration::from_secs(1);

/// How often finished records past their TTL are dropped.
const GC_EVERY: Duration = Duration::from_secs(60);

/// Starts the dispatcher and the queue's garbage collection.
pub(crate) fn start(c: &Arc<Controller>) {
    let weak = Arc::downgrade(c);
    let queued = c.queue.notifier();
    let freed = c.slot_freed.clone();
    tokio::spawn(async move {
        loop {
            let work = queued.notified();
            let slot = freed.notified();
            tokio::pin!(work, slot);
            work.as_mut().enable();
            slot.as_mut().enable();
            let wait = {
                let Some(c) = weak.upgrade() else { break };
                if c.draining.load(std::sync::atomic::Ordering::Acquire) {
                    break;
                }
                c.dispatch_round().await
            };
            tokio::select! {
                _ = &mut work => {}
                _ = &mut slot => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    });
    let weak = Arc::downgrade(c);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(GC_EVERY);
        loop {
            every.tick().await;
            let Some(c) = weak.upgrade() else { break };
            let q = c.queue.clone();
            match tokio::task::spawn_blocking(move || q.collect_garbage(SystemTime::now())).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::debug!(count = n, "dropped expired invocation results"),
                Ok(Err(e)) => tracing::error!("queue garbage collection: {e}"),
                Err(e) => tracing::error!("queue garbage collection task: {e}"),
            }
        }
    });
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, weft_queue::QueueError> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("queue task: {e}")))?
        .map_err(Error::from)
}

impl Controller {
    /// Queues an asynchronous invocation of `name`; returns once it is
    /// durably queued (or, with an idempotency key seen before, the earlier
    /// invocation's id).
    pub async fn enqueue(
        &self,
        name: &str,
        payload: Bytes,
        trigger: &'static str,
        subject: String,
        mut meta: BTreeMap<String, String>,
        idempotency_key: Option<String>,
    ) -> Result<Accepted> {
        if self.draining.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        let f = self.function(name)?;
        if payload.len() as u64 > f.limits.max_request {
            return Err(body_error(&f, BodyError::TooLarge));
        }
        if !subject.is_empty() {
            meta.insert("subject".into(), subject);
        }
        let accepted = self
            .queue
            .enqueue(NewInvocation {
                function: f.name.clone(),
                payload: payload.to_vec(),
                trigger: trigger.to_string(),
                meta,
                idempotency_key,
                retry: f.retry,
                not_before: None,
            })
            .await;
        match &accepted {
            Ok(a) if !a.duplicate => {
                self.metrics.async_accepted.inc();
            }
            Ok(_) => {}
            Err(_) => {
                self.metrics.async_refused.inc();
            }
        }
        Ok(accepted?)
    }

    /// [`Controller::enqueue`] of a request whose body `read_body` reads,
    /// given the function's size limit, within its timeout (as
    /// [`Controller::invoke_command`] reads one).
    pub async fn enqueue_request<F, Fut>(
        &self,
        name: &str,
        read_body: F,
        trigger: &'static str,
        subject: String,
        meta: BTreeMap<String, String>,
        idempotency_key: Option<String>,
    ) -> Result<Accepted>
    where
        F: FnOnce(u64) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<Bytes, BodyError>>,
    {
        let payload = read_request(&*self.function(name)?, read_body).await?;
        self.enqueue(name, payload, trigger, subject, meta, idempotency_key)
            .await
    }

    /// One pass: claim due work of every function with free slots and start
    /// it. Returns how long to sleep at most before the next pass.
    pub(crate) async fn dispatch_round(self: &Arc<Self>) -> Duration {
        let q = self.queue.clone();
        let due = match blocking(move || q.due_functions(SystemTime::now())).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("reading the queue: {e}");
                return Duration::from_secs(1);
            }
        };
        let mut started = 0;
        for name in due {
            let f = match self.function(&name) {
                Ok(f) => f,
                Err(_) => {
                    let q = self.queue.clone();
                    let n = name.clone();
                    if let Err(e) = blocking(move || q.remove_function(&n)).await {
                        tracing::error!(function = %name, "dead-lettering invocations of a removed function: {e}");
                    }
                    continue;
                }
            };
            // A function at its concurrency limit, or a node with no free
            // sandbox slot, keeps its work queued (no attempt is spent).
            let room = self.node_slots.available_permits().min(64);
            let mut permits = Vec::new();
            while permits.len() < room {
                match f.slots.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            if permits.is_empty() {
                continue;
            }
            let q = self.queue.clone();
            let (n, max) = (name.clone(), permits.len());
            let claimed = match blocking(move || q.claim(&n, max, SystemTime::now())).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(function = %name, "claiming queued invocations: {e}");
                    continue;
                }
            };
            started += claimed.len();
            for (work, permit) in claimed.into_iter().zip(permits) {
                let c = self.clone();
                let f = f.clone();
                tokio::spawn(async move { c.run_queued(f, permit, work).await });
            }
        }
        if started > 0 {
            // More may be due than one round claims.
            return Duration::ZERO;
        }
        let q = self.queue.clone();
        match blocking(move || q.next_due()).await {
            // Due but not started: every function with due work is at its
            // limit (or the node is full); a freed slot wakes us.
            Ok(Some(t)) if t <= SystemTime::now() => IDLE_WAKE,
            Ok(Some(t)) => t
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
                .clamp(Duration::from_millis(1), IDLE_WAKE),
            // Nothing queued: enqueues and freed slots wake the dispatcher;
            // this is only a safety net, so an idle node stays idle.
            _ => IDLE_WAKE,
        }
    }

    async fn run_queued(
        self: Arc<Self>,
        f: Arc<Function>,
        slot: OwnedSemaphorePermit,
        work: Claimed,
    ) {
        let Claimed {
            id,
            function,
            payload,
            attempt,
            trigger,
            meta,
        } = work;
        let trigger = crate::controller::trigger_name(&trigger, "async");
        let origin = Origin {
            trigger,
            subject: meta.get("subject").cloned().unwrap_or_default(),
            attempt,
            chain: Vec::new(),
            ancestors: crate::router::chain_of(&meta),
            timeout_cap: None,
        };
        let ran = match self.place(&function, payload.len() as u64) {
            Ok(crate::fabric::Placement::Decided(d)) if !d.local => {
                // Runs elsewhere; the local slot bounds how many of this
                // function's queued invocations are out at once.
                let out = self
                    .invoke_remote(&function, d, &origin, meta.clone(), payload.into())
                    .await;
                drop(slot);
                out.and_then(|r| {
                    if r.status >= 500 {
                        Err(Error::Remote {
                            node: r.node,
                            code: Code::HandlerError,
                            message: format!("the component answered {}", r.status),
                        })
                    } else {
                        Ok((r.invocation, r.body))
                    }
                })
            }
            Ok(_) => self
                .run_payload(f, slot, payload.into(), origin, Some(id.clone()), &meta)
                .await
                .map(|(info, body)| (info.id, body)),
            Err(e) => Err(e),
        };
        let q = self.queue.clone();
        if let Err(e) = &ran
            && matches!(
                e,
                Error::NodeUnreachable { .. }
                    | Error::FabricUnavailable(_)
                    | Error::NoEligibleNode { .. }
            )
        {
            // It did not run: no node to run it on right now. It waits,
            // durably, without spending an attempt.
            let why = Failure {
                code: e.code().as_str().to_string(),
                message: e.to_string(),
            };
            let at = SystemTime::now() + PLACEMENT_RETRY;
            let deferred = id.clone();
            match blocking(move || q.defer(&deferred, why, at)).await {
                Ok(()) => self.log_line(
                    &function,
                    &id,
                    format!(
                        "not run: {e}; waiting {} ms for a node",
                        PLACEMENT_RETRY.as_millis()
                    ),
                ),
                Err(err) => {
                    tracing::error!(function = %function, invocation = %id, "deferring: {err}")
                }
            }
            return;
        }
        match ran {
            Ok((_, body)) => {
                if let (Some(topic), Some(mqtt)) = (meta.get("response_topic"), &self.mqtt)
                    && let Err(e) = mqtt.publish(topic, body.clone()).await
                {
                    tracing::warn!(function = %function, invocation = %id, "publishing the response on `{topic}`: {e}");
                }
                if let Err(e) = q.complete_grouped(&id, body.to_vec()).await {
                    tracing::error!(function = %function, invocation = %id, "recording success: {e}");
                }
            }
            Err(e) => {
                // Faults of the request itself will not go away on retry.
                let retryable = !matches!(
                    e.code(),
                    Code::FunctionNotFound | Code::RequestTooLarge | Code::InvalidSpec
                );
                let failure = Failure {
                    code: e.code().as_str().to_string(),
                    message: e.to_string(),
                };
                let failed = id.clone();
                match blocking(move || q.fail(&failed, failure, retryable)).await {
                    Ok(AfterFailure::Retry { at }) => {
                        let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
                        self.log_line(
                            &function,
                            &id,
                            format!(
                                "attempt {attempt} failed ({}); retrying in {} ms",
                                e.code(),
                                wait.as_millis()
                            ),
                        );
                    }
                    Ok(AfterFailure::Dead) => {
                        self.metrics.async_dead.inc();
                        self.log_line(
                            &function,
                            &id,
                            format!(
                                "attempt {attempt} failed ({}); moved to the dead-letter list",
                                e.code()
                            ),
                        );
                    }
                    Err(err) => {
                        tracing::error!(function = %function, invocation = %id, "recording failure: {err}");
                    }
                }
            }
        }
    }

    /// An asynchronous invocation's record: state, attempts, result.
    pub async fn invocation_record(&self, id: &str) -> Result<Record> {
        let q = self.queue.clone();
        let key = id.to_string();
        blocking(move || q.get(&key))
            .await?
            .ok_or_else(|| Error::Queue(weft_queue::QueueError::NotFound(id.to_string())))
    }

    /// The dead-letter list, oldest first, of one function or all.
    pub async fn dead_letters(
        &self,
        function: Option<String>,
        limit: usize,
    ) -> Result<Vec<Record>> {
        let q = self.queue.clone();
        blocking(move || q.dead(function.as_deref(), limit)).await
    }

    /// Queues a dead-lettered invocation again, with its attempts reset.
    pub async fn retry_dead(&self, id: &str) -> Result<()> {
        let q = self.queue.clone();
        let key = id.to_string();
        blocking(move || q.retry_dead(&key)).await
    }

    /// Deletes a dead-lettered invocation.
    pub async fn drop_dead(&self, id: &str) -> Result<()> {
        let q = self.queue.clone();
        let key = id.to_string();
        blocking(move || q.drop_dead(&key)).await
    }

    /// Labels of the key-value stores this node provides.
    pub fn kv_labels(&self) -> Vec<String> {
        self.kv.labels()
    }

    /// Whether the MQTT client is connected; `None` without a broker.
    pub fn mqtt_connected(&self) -> Option<bool> {
        self.mqtt.as_ref().map(weft_triggers::mqtt::Mqtt::connected)
    }

    /// Queued and running asynchronous invocations of the node.
    pub fn async_pending(&self) -> u64 {
        self.queue.pending_total()
    }

    /// Publishes an event on an internal topic: each function subscribed to
    /// a matching pattern gets an asynchronous invocation. Returns how many.
    pub async fn publish(&self, publisher: &str, topic: &str, payload: Bytes) -> Result<usize> {
        self.publish_with(publisher, topic, payload, BTreeMap::new())
            .await
    }

    /// [`Controller::publish`] with metadata for every subscriber's
    /// invocation (the publisher's chain).
    pub(crate) async fn publish_with(
        &self,
        publisher: &str,
        topic: &str,
        payload: Bytes,
        base: BTreeMap<String, String>,
    ) -> Result<usize> {
        let subscribers: Vec<String> = self
            .snapshot()
            .into_iter()
            .filter(|f| {
                f.subscribes
                    .iter()
                    .any(|p| weft_manifest::topic_matches(p, topic))
            })
            .map(|f| f.name.clone())
            .collect();
        for name in &subscribers {
            let mut meta = base.clone();
            if !publisher.is_empty() {
                meta.insert("publisher".to_string(), publisher.to_string());
            }
            self.enqueue(
                name,
                payload.clone(),
                "topic",
                topic.to_string(),
                meta,
                None,
            )
            .await?;
        }
        Ok(subscribers.len())
    }
}
