//! Triggers over MQTT 3.1.1: a client that stays connected by itself and
//! acknowledges a message only once every handler it was given to succeeded.
//!
//! ```no_run
//! # async fn demo() -> Result<(), weft_triggers::mqtt::MqttError> {
//! use std::{sync::Arc, time::Duration};
//! use weft_triggers::mqtt::{Handler, Mqtt, MqttConfig};
//!
//! let mqtt = Mqtt::start(MqttConfig::new("mqtt://127.0.0.1:1883", "weft-node-1"))?;
//! let handler: Handler = Arc::new(|msg| {
//!     Box::pin(async move {
//!         println!("{}: {} bytes", msg.topic, msg.payload.len());
//!         Ok(()) // Err(reason) leaves the message unacknowledged
//!     })
//! });
//! let id = mqtt.subscribe("sensors/+/temp", handler).await?;
//! mqtt.publish("sensors/kitchen/temp", "21.5".into()).await?;
//! mqtt.unsubscribe(id).await;
//! mqtt.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Delivery
//!
//! - The session is persistent (`clean_session = false`) and acknowledgements
//!   are manual: a QoS 1 message is acknowledged (PUBACK) only after every
//!   handler whose filter matches its topic returned `Ok`. If one returns
//!   `Err`, panics, or the process dies first, the message stays
//!   unacknowledged and the broker delivers it again when this client id
//!   next connects (MQTT 3.1.1 redelivers on reconnect only, not within a
//!   connection). Delivery is therefore at least once: handlers must be
//!   idempotent.
//! - The broker sends one copy per client, so overlapping subscriptions are
//!   resolved here with [`matches`]: a message goes to every matching
//!   handler. Handlers run concurrently, each in its own task.
//! - A message that matches no subscription, typically one redelivered at
//!   connect before the caller re-subscribed after a restart, is held for
//!   up to a minute and handed to the first subscription that matches it;
//!   after that it is acknowledged and dropped with a warning.
//! - Acknowledgements follow completion, so they may be sent in a different
//!   order than the messages arrived. Brokers accept this (MQTT 3.1.1 §4.6
//!   asks for in-order PUBACKs, which concurrent handlers cannot give).
//!   Unacknowledged messages count against the broker's in-flight window
//!   for this client (mosquitto: 20 by default) until the next reconnect.
//!
//! # Connection
//!
//! [`Mqtt::start`] never waits for the broker. It connects in the
//! background and reconnects after every failure with exponential backoff
//! (100 ms doubling to 10 s, each delay randomised between half and all of
//! it), logging a warning when the state changes (connection lost, or a new
//! kind of error) rather than at every attempt. After each connect it
//! subscribes every filter again, so subscriptions survive a broker that
//! lost its sessions.

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, QoS,
    SubscribeFilter, SubscribeReasonCode,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

pub use futures_core::future::BoxFuture;

/// The longest topic or filter MQTT can carry, in bytes.
const MAX_TOPIC_BYTES: usize = 65_535;
/// The largest packet MQTT 3.1.1 can encode (remaining length limit).
const MAX_PACKET_BYTES: usize = 268_435_455;
/// The first reconnect delay.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest reconnect delay; also how long a connection must have
/// lasted for the backoff to start again from [`BACKOFF_MIN`].
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long a message that matches no subscription is held.
const PARK_GRACE: Duration = Duration::from_secs(60);
/// How often held messages are checked for expiry (at the next event).
const PARK_SWEEP: Duration = Duration::from_secs(5);
/// The longest `subscribe` waits for the broker's SUBACK.
const SUBACK_WAIT: Duration = Duration::from_secs(30);
/// Requests (publishes, acks, subscribes) queued towards the connection.
const REQUEST_QUEUE: usize = 256;

/// MQTT errors.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// The broker URL cannot be used.
    #[error("mqtt: invalid broker URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting other than the URL cannot be used.
    #[error("mqtt: invalid configuration: {0}")]
    InvalidConfig(String),
    /// A topic filter breaks the rules of MQTT 3.1.1 §4.7.
    #[error("mqtt: invalid topic filter `{filter}`: {reason}")]
    InvalidFilter {
        /// The filter as given.
        filter: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A topic name breaks the rules of MQTT 3.1.1 §4.7.
    #[error("mqtt: invalid topic `{topic}`: {reason}")]
    InvalidTopic {
        /// The topic as given.
        topic: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The broker answered the SUBSCRIBE with a failure code.
    #[error("mqtt: the broker refused the subscription to `{filter}`")]
    Refused {
        /// The filter.
        filter: String,
    },
    /// A payload too large for one MQTT packet (256 MiB).
    #[error("mqtt: a payload of {size} bytes is too large for one MQTT packet (topic `{topic}`)")]
    PayloadTooLarge {
        /// The topic it was for.
        topic: String,
        /// Its size in bytes.
        size: usize,
    },
    /// [`Mqtt::start`] was called outside a tokio runtime.
    #[error("mqtt: start must be called from within a tokio runtime")]
    NoRuntime,
    /// The client was shut down.
    #[error("mqtt: the client is shut down")]
    Closed,
}

/// Result of MQTT operations.
pub type Result<T, E = MqttError> = std::result::Result<T, E>;

/// How to reach the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttConfig {
    /// `mqtt://host[:port][?client_id=ID]`; the port defaults to 1883 and a
    /// `client_id` given here takes precedence over [`client_id`](Self::client_id).
    /// TLS (`mqtts://`) and credentials are not supported yet.
    pub url: String,
    /// The client id, which names the persistent session: a restarted node
    /// must use the same id to receive the messages it left unacknowledged.
    /// Must not be empty.
    pub client_id: String,
    /// MQTT keep-alive: a silent connection is probed after this long and
    /// dropped (then re-established) if the broker does not answer. Whole
    /// seconds, 1 s to 65535 s.
    pub keep_alive: Duration,
}

impl MqttConfig {
    /// A configuration with a keep-alive of 30 s.
    pub fn new(url: impl Into<String>, client_id: impl Into<String>) -> MqttConfig {
        MqttConfig {
            url: url.into(),
            client_id: client_id.into(),
            keep_alive: Duration::from_secs(30),
        }
    }
}

/// A message received on a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The topic it was published to.
    pub topic: String,
    /// The payload, byte for byte.
    pub payload: Bytes,
    /// The QoS it was delivered with (0 or 1).
    pub qos: u8,
}

/// Handles one message. `Ok` lets the message be acknowledged, `Err`
/// (a reason, logged) leaves it for redelivery.
pub type Handler = Arc<dyn Fn(Message) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Identifies one [`Mqtt::subscribe`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(u64);

/// An MQTT client for triggers. Cheap to clone: clones share one
/// connection. The connection closes when [`shutdown`](Mqtt::shutdown) is
/// called or the last clone is dropped.
#[derive(Clone)]
pub struct Mqtt {
    inner: Arc<Inner>,
}

impl fmt::Debug for Mqtt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mqtt")
            .field("url", &self.inner.shared.url)
            .field("client_id", &self.inner.shared.client_id)
            .field("connected", &self.connected())
            .finish()
    }
}

/// Owned by the user-facing handles; dropping it stops the connection task.
struct Inner {
    shared: Arc<Shared>,
    /// Dropping the sender stops the connection task.
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// State shared by the handles, the connection task and handler tasks.
struct Shared {
    client: AsyncClient,
    url: String,
    client_id: String,
    connected: AtomicBool,
    shutting_down: AtomicBool,
    next_id: AtomicU64,
    /// Serialises SUBSCRIBE requests so that `State::queued` is in the
    /// order rumqttc sends them.
    subscribe_order: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

struct Sub {
    filter: String,
    handler: Handler,
}

/// A message no subscription matched yet.
struct Parked {
    publish: Publish,
    session: u64,
    since: Instant,
}

enum SubOutcome {
    Acked,
    Refused,
    Disconnected,
}

#[derive(Default)]
struct State {
    subs: BTreeMap<SubscriptionId, Sub>,
    /// SUBSCRIBE requests handed to rumqttc and not yet sent, oldest first.
    queued: VecDeque<Vec<String>>,
    /// SUBSCRIBE packets sent, by packet id, awaiting their SUBACK.
    sent: HashMap<u16, Vec<String>>,
    /// `subscribe` calls waiting for their filter's SUBACK.
    waiters: Vec<(String, oneshot::Sender<SubOutcome>)>,
    /// Bumped at each connect where the broker had no session for us:
    /// packet ids of older sessions mean nothing any more.
    session: u64,
    /// QoS 1 messages in hand (handlers running, or parked), by session and
    /// packet id: a redelivery of one of them is not handled twice.
    in_hand: HashSet<(u64, u16)>,
    parked: Vec<Parked>,
}

impl State {
    fn handlers_for(&self, topic: &str) -> Vec<Handler> {
        self.subs
            .values()
            .filter(|s| matches(&s.filter, topic))
            .map(|s| s.handler.clone())
            .collect()
    }

    fn resolve(&mut self, filter: &str, outcome: impl Fn() -> SubOutcome) {
        let (done, keep) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|(f, _)| f == filter);
        self.waiters = keep;
        for (_, tx) in done {
            let _ = tx.send(outcome());
        }
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Hands a SUBSCRIBE for `filters` (QoS 1) to the connection.
    async fn send_subscribe(&self, filters: Vec<String>) -> Result<()> {
        if filters.is_empty() {
            return Ok(());
        }
        let _order = self.subscribe_order.lock().await;
        let packet: Vec<SubscribeFilter> = filters
            .iter()
            .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce))
            .collect();
        self.state().queued.push_back(filters);
        if self.client.subscribe_many(packet).await.is_err() {
            self.state().queued.pop_back();
            return Err(MqttError::Closed);
        }
        Ok(())
    }

    /// A message arrived: run the matching handlers, or hold it.
    fn dispatch(self: &Arc<Self>, publish: Publish) {
        let mut st = self.state();
        let session = st.session;
        if publish.qos != QoS::AtMostOnce && !st.in_hand.insert((session, publish.pkid)) {
            debug!(topic = %publish.topic, pkid = publish.pkid, "mqtt: redelivery of a message already in hand");
            return;
        }
        let handlers = st.handlers_for(&publish.topic);
        if handlers.is_empty() {
            debug!(topic = %publish.topic, "mqtt: no subscription matches yet; holding the message");
            st.parked.push(Parked {
                publish,
                session,
                since: Instant::now(),
            });
            return;
        }
        drop(st);
        tokio::spawn(run_handlers(self.clone(), publish, session, handlers));
    }

    /// Acknowledges a message of `session` if that session is still live.
    fn ack_later(self: &Arc<Self>, publish: Publish, session: u64) {
        let shared = self.clone();
        tokio::spawn(async move {
            // A disconnect between this check and the send is harmless:
            // rumqttc drops queued acks when the connection fails, and one
            // sent on a resumed session acks the redelivered copy.
            let live = shared.connected.load(Ordering::SeqCst) && shared.state().session == session;
            if live {
                let _ = shared.client.ack(&publish).await;
            }
        });
    }

    /// Acknowledges (and drops) held messages nobody subscribed to in time.
    fn sweep_parked(self: &Arc<Self>) {
        let expired: Vec<Parked> = {
            let mut st = self.state();
            let expired: Vec<Parked> = st
                .parked
                .extract_if(.., |p| p.since.elapsed() >= PARK_GRACE)
                .collect();
            for p in &expired {
                st.in_hand.remove(&(p.session, p.publish.pkid));
            }
            expired
        };
        for p in expired {
            warn!(topic = %p.publish.topic, "mqtt: no subscription matches the message; acknowledging and dropping it");
            self.ack_later(p.publish, p.session);
        }
    }

    fn on_connack(self: &Arc<Self>, session_present: bool) {
        let filters: Vec<String> = {
            let mut st = self.state();
            if !session_present {
                st.session += 1;
                // The broker forgot them: their packet ids are void.
                let stale: Vec<Parked> = std::mem::take(&mut st.parked);
                for p in stale {
                    st.in_hand.remove(&(p.session, p.publish.pkid));
                }
            }
            self.connected.store(true, Ordering::SeqCst);
            let set: BTreeSet<&String> = st.subs.values().map(|s| &s.filter).collect();
            set.into_iter().cloned().collect()
        };
        let shared = self.clone();
        tokio::spawn(async move {
            let _ = shared.send_subscribe(filters).await;
        });
    }

    /// Marks the connection down; returns whether it was up.
    fn on_disconnect(&self) -> bool {
        let mut st = self.state();
        let was = self.connected.swap(false, Ordering::SeqCst);
        st.queued.clear();
        st.sent.clear();
        for (_, tx) in std::mem::take(&mut st.waiters) {
            let _ = tx.send(SubOutcome::Disconnected);
        }
        was
    }

    fn on_subscribe_sent(&self, pkid: u16) {
        let mut st = self.state();
        if let Some(filters) = st.queued.pop_front() {
            st.sent.insert(pkid, filters);
        }
    }

    fn on_suback(&self, pkid: u16, codes: &[SubscribeReasonCode]) {
        let mut st = self.state();
        let Some(filters) = st.sent.remove(&pkid) else {
            return;
        };
        for (filter, code) in filters.iter().zip(codes) {
            match code {
                SubscribeReasonCode::Success(_) => st.resolve(filter, || SubOutcome::Acked),
                SubscribeReasonCode::Failure => {
                    warn!(url = %self.url, filter = %filter, "mqtt: the broker refused the subscription");
                    st.resolve(filter, || SubOutcome::Refused);
                }
            }
        }
    }
}

/// Runs every handler of one message, each in its own task, and acks the
/// message if all succeeded.
async fn run_handlers(shared: Arc<Shared>, publish: Publish, session: u64, handlers: Vec<Handler>) {
    let msg = Message {
        topic: publish.topic.clone(),
        payload: publish.payload.clone(),
        qos: publish.qos as u8,
    };
    let tasks: Vec<JoinHandle<Result<(), String>>> = handlers
        .into_iter()
        .map(|h| {
            let m = msg.clone();
            tokio::spawn(async move { h(m).await })
        })
        .collect();
    let mut ok = true;
    for task in tasks {
        let failure = match task.await {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(e) if e.is_panic() => "the handler panicked".to_string(),
            Err(_) => "the handler was cancelled".to_string(),
        };
        warn!(topic = %msg.topic, error = %failure, "mqtt: handler failed; the message stays unacknowledged for redelivery");
        ok = false;
    }
    shared.state().in_hand.remove(&(session, publish.pkid));
    if ok {
        shared.ack_later(publish, session);
    }
}

/// Reconnect delays: 100 ms doubling to 10 s, each randomised to between
/// half and all of its nominal value (backon's jitter adds up to one more
/// delay to a delay of half the nominal one), without end.
fn reconnect_delays() -> impl Iterator<Item = Duration> {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::new()
        .with_min_delay(BACKOFF_MIN / 2)
        .with_max_delay(BACKOFF_MAX / 2)
        .with_jitter()
        .without_max_times()
        .build()
}

/// The connection task: polls rumqttc, reconnecting with backoff.
async fn run(shared: Arc<Shared>, mut eventloop: EventLoop, mut stop: watch::Receiver<bool>) {
    let mut backoff = reconnect_delays();
    let mut last_error: Option<String> = None;
    let mut connected_at: Option<Instant> = None;
    let mut last_sweep = Instant::now();
    loop {
        // `poll` is not cancelled except to stop: a cancelled write could
        // lose a packet. Sweeping rides on events, which keep-alive pings
        // guarantee at least every `keep_alive`.
        let event = tokio::select! {
            biased;
            _ = stop.changed() => break,
            event = eventloop.poll() => event,
        };
        if last_sweep.elapsed() >= PARK_SWEEP {
            last_sweep = Instant::now();
            shared.sweep_parked();
        }
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                if last_error.take().is_some() {
                    info!(url = %shared.url, client_id = %shared.client_id, session_present = ack.session_present, "mqtt: connected after failures");
                } else {
                    info!(url = %shared.url, client_id = %shared.client_id, session_present = ack.session_present, "mqtt: connected");
                }
                connected_at = Some(Instant::now());
                shared.on_connack(ack.session_present);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => shared.dispatch(p),
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                shared.on_suback(ack.pkid, &ack.return_codes)
            }
            Ok(Event::Outgoing(Outgoing::Subscribe(pkid))) => shared.on_subscribe_sent(pkid),
            Ok(Event::Outgoing(Outgoing::Disconnect))
                if shared.shutting_down.load(Ordering::SeqCst) =>
            {
                break;
            }
            Ok(_) => {}
            Err(e) => {
                if shared.shutting_down.load(Ordering::SeqCst) {
                    break;
                }
                let was_up = shared.on_disconnect();
                if connected_at
                    .take()
                    .is_some_and(|t| t.elapsed() >= BACKOFF_MAX)
                {
                    backoff = reconnect_delays();
                }
                report(&shared, &e, was_up, &mut last_error);
                let delay = backoff.next().unwrap_or(BACKOFF_MAX);
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    shared.on_disconnect();
}

/// Logs a connection failure once per state change: when a connection is
/// lost, or when the error differs from the previous one.
fn report(shared: &Shared, e: &ConnectionError, was_up: bool, last: &mut Option<String>) {
    let text = e.to_string();
    if was_up {
        warn!(url = %shared.url, error = %text, "mqtt: connection lost; reconnecting with backoff");
    } else if last.as_deref() != Some(text.as_str()) {
        warn!(url = %shared.url, error = %text, "mqtt: cannot connect; retrying with backoff (up to 10 s)");
    } else {
        debug!(url = %shared.url, error = %text, "mqtt: still cannot connect");
    }
    *last = Some(text);
}

impl Mqtt {
    /// Starts the client and connects in the background. Never fails
    /// because the broker is unreachable; see the [module docs](self) for
    /// how it reconnects. Fails on a malformed URL (the error names it), an
    /// empty client id or a keep-alive out of range, or outside a tokio
    /// runtime.
    pub fn start(config: MqttConfig) -> Result<Mqtt> {
        let addr = parse_url(&config.url)?;
        let client_id = addr.client_id.unwrap_or(config.client_id);
        if client_id.is_empty() {
            return Err(MqttError::InvalidConfig(
                "the client id is empty; a persistent session needs one".into(),
            ));
        }
        if client_id.len() > MAX_TOPIC_BYTES || client_id.contains('\0') {
            return Err(MqttError::InvalidConfig(format!(
                "client id `{client_id}` is longer than 65535 bytes or contains NUL"
            )));
        }
        let ka = config.keep_alive;
        if ka < Duration::from_secs(1) || ka > Duration::from_secs(u64::from(u16::MAX)) {
            return Err(MqttError::InvalidConfig(format!(
                "keep_alive {ka:?} is out of range 1 s-65535 s"
            )));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| MqttError::NoRuntime)?;

        let mut options = MqttOptions::new(client_id.clone(), addr.host, addr.port);
        options
            .set_keep_alive(Duration::from_secs(ka.as_secs()))
            .set_clean_session(false)
            .set_manual_acks(true)
            // rumqttc's default is 10 KiB, and an oversized incoming message
            // would fail the connection on every redelivery.
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        let (client, mut eventloop) = AsyncClient::new(options, REQUEST_QUEUE);
        // Without TCP_NODELAY a response published right after a PUBACK
        // waits ~40 ms for the broker's delayed ACK (bench/RESULTS.md).
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        let shared = Arc::new(Shared {
            client,
            url: config.url,
            client_id,
            connected: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            subscribe_order: tokio::sync::Mutex::new(()),
            state: Mutex::new(State::default()),
        });
        let (stop, stop_rx) = watch::channel(false);
        let task = runtime.spawn(run(shared.clone(), eventloop, stop_rx));
        Ok(Mqtt {
            inner: Arc::new(Inner {
                shared,
                stop,
                task: Mutex::new(Some(task)),
            }),
        })
    }

    /// Subscribes to `filter` with QoS 1. `handler` is called for each
    /// message whose topic matches `filter`; the message is acknowledged
    /// only after it (and every other matching handler) returned `Ok`.
    ///
    /// When connected, returns once the broker acknowledged the SUBSCRIBE
    /// (or after 30 s, or when the connection drops); when not connected,
    /// returns at once and the filter is subscribed at the next connect.
    /// Fails if the filter is invalid (the error names it), if the broker
    /// refuses it, or after [`shutdown`](Self::shutdown).
    pub async fn subscribe(&self, filter: &str, handler: Handler) -> Result<SubscriptionId> {
        validate_filter(filter)?;
        let shared = &self.inner.shared;
        if shared.shutting_down.load(Ordering::SeqCst) {
            return Err(MqttError::Closed);
        }
        let id = SubscriptionId(shared.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        let held = {
            let mut st = shared.state();
            st.subs.insert(
                id,
                Sub {
                    filter: filter.to_string(),
                    handler,
                },
            );
            // If not connected, the next connect subscribes every filter,
            // this one included.
            if shared.connected.load(Ordering::SeqCst) {
                st.waiters.push((filter.to_string(), tx));
            }
            st.parked
                .extract_if(.., |p| matches(filter, &p.publish.topic))
                .collect::<Vec<_>>()
        };
        for p in held {
            let handlers = shared.state().handlers_for(&p.publish.topic);
            tokio::spawn(run_handlers(shared.clone(), p.publish, p.session, handlers));
        }
        if !shared.connected.load(Ordering::SeqCst) {
            return Ok(id);
        }
        if let Err(e) = shared.send_subscribe(vec![filter.to_string()]).await {
            shared.state().subs.remove(&id);
            return Err(e);
        }
        if let Ok(Ok(SubOutcome::Refused)) = tokio::time::timeout(SUBACK_WAIT, rx).await {
            shared.state().subs.remove(&id);
            return Err(MqttError::Refused {
                filter: filter.to_string(),
            });
        }
        Ok(id)
    }

    /// Removes a subscription. The broker is told to stop sending its
    /// filter unless another subscription uses the same filter. Messages
    /// already on their way are held as unmatched (see the module docs).
    pub async fn unsubscribe(&self, id: SubscriptionId) {
        let shared = &self.inner.shared;
        let filter = {
            let mut st = shared.state();
            let Some(sub) = st.subs.remove(&id) else {
                return;
            };
            if st.subs.values().any(|s| s.filter == sub.filter) {
                return;
            }
            sub.filter
        };
        // While disconnected, best effort: a full queue must not block, and
        // a broker that kept the session and still sends the filter's
        // messages gets them acknowledged as unmatched.
        if shared.connected.load(Ordering::SeqCst) {
            let _ = shared.client.unsubscribe(filter).await;
        } else {
            let _ = shared.client.try_unsubscribe(filter);
        }
    }

    /// Publishes `payload` to `topic` with QoS 1 (not retained). Returns
    /// once the message is queued on the connection; rumqttc retransmits it
    /// until the broker acknowledges it, across reconnects while the broker
    /// keeps the session. Waits while the queue (256 requests) is full,
    /// which happens only while the broker is unreachable. Fails on an
    /// invalid topic (the error names it), an oversized payload, or after
    /// [`shutdown`](Self::shutdown).
    pub async fn publish(&self, topic: &str, payload: Bytes) -> Result<()> {
        validate_topic(topic)?;
        // Fixed header aside, a PUBLISH carries topic length, topic,
        // packet id and payload.
        if 2 + topic.len() + 2 + payload.len() > MAX_PACKET_BYTES {
            return Err(MqttError::PayloadTooLarge {
                topic: topic.to_string(),
                size: payload.len(),
            });
        }
        let shared = &self.inner.shared;
        if shared.shutting_down.load(Ordering::SeqCst) {
            return Err(MqttError::Closed);
        }
        shared
            .client
            .publish_bytes(topic, QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|_| MqttError::Closed)
    }

    /// Whether the client is connected to the broker now. After a
    /// reconnect, subscriptions are restored shortly after this turns true.
    pub fn connected(&self) -> bool {
        self.inner.shared.connected.load(Ordering::SeqCst)
    }

    /// Disconnects (sending DISCONNECT if connected) and stops the
    /// connection task, waiting at most a few seconds. Messages whose
    /// handlers have not finished stay unacknowledged, for redelivery to
    /// the next client with this id. Idempotent.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        let shared = &inner.shared;
        shared.shutting_down.store(true, Ordering::SeqCst);
        let task = inner.task.lock().take();
        let Some(mut task) = task else {
            return;
        };
        if shared.connected.load(Ordering::SeqCst) && shared.client.try_disconnect().is_ok() {
            // The task ends once DISCONNECT is written.
            if tokio::time::timeout(Duration::from_secs(3), &mut task)
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = inner.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(3), &mut task)
            .await
            .is_err()
        {
            task.abort();
            shared.on_disconnect();
        }
    }
}

fn parse_url(url: &str) -> Result<weft_manifest::mqtt::BrokerAddr> {
    weft_manifest::mqtt::broker_url(url).map_err(|reason| MqttError::InvalidUrl {
        url: url.to_string(),
        reason,
    })
}

/// Checks a topic filter against MQTT 3.1.1 §4.7 (see
/// [`weft_manifest::mqtt::validate_filter`]).
pub fn validate_filter(filter: &str) -> Result<()> {
    weft_manifest::mqtt::validate_filter(filter).map_err(|e| MqttError::InvalidFilter {
        filter: filter.to_string(),
        reason: e.message().to_string(),
    })
}

/// Checks a topic name (to publish to) against MQTT 3.1.1 §4.7 (see
/// [`weft_manifest::mqtt::validate_topic`]).
pub fn validate_topic(topic: &str) -> Result<()> {
    weft_manifest::mqtt::validate_topic(topic).map_err(|e| MqttError::InvalidTopic {
        topic: topic.to_string(),
        reason: e.message().to_string(),
    })
}

pub use weft_manifest::mqtt::matches;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_names_itself() {
        let e = parse_url("mqtts://h").unwrap_err().to_string();
        assert!(e.contains("`mqtts://h`") && e.contains("TLS"), "{e}");
    }

    #[test]
    fn backoff_doubles_to_ten_seconds_with_jitter() {
        let mut b = reconnect_delays();
        let mut nominal = BACKOFF_MIN;
        let mut seen = HashSet::new();
        for _ in 0..12 {
            let d = b.next().unwrap();
            assert!(d >= nominal / 2 && d <= nominal, "{d:?} vs {nominal:?}");
            seen.insert(d);
            nominal = (nominal * 2).min(BACKOFF_MAX);
        }
        assert_eq!(nominal, BACKOFF_MAX);
        assert!(seen.len() > 6, "delays should vary: {seen:?}");
        // A fresh one starts again from the bottom.
        assert!(reconnect_delays().next().unwrap() <= BACKOFF_MIN);
    }

    #[test]
    fn start_validates_config() {
        // Outside a runtime.
        let e = Mqtt::start(MqttConfig::new("mqtt://127.0.0.1:1", "x")).unwrap_err();
        assert!(matches!(e, MqttError::NoRuntime), "{e}");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let e = Mqtt::start(MqttConfig::new("tcp//nope", "x")).unwrap_err();
            assert!(e.to_string().contains("`tcp//nope`"), "{e}");
            let e = Mqtt::start(MqttConfig::new("mqtt://127.0.0.1:1", "")).unwrap_err();
            assert!(e.to_string().contains("client id is empty"), "{e}");
            let mut c = MqttConfig::new("mqtt://127.0.0.1:1", "x");
            c.keep_alive = Duration::from_millis(500);
            let e = Mqtt::start(c).unwrap_err();
            assert!(e.to_string().contains("keep_alive"), "{e}");
            // The URL's client id wins; an empty config id is then fine.
            let m = Mqtt::start(MqttConfig::new("mqtt://127.0.0.1:1?client_id=u", "")).unwrap();
            assert!(!m.connected());
            assert_eq!(m.inner.shared.client_id, "u");
            m.shutdown().await;
            m.shutdown().await;
            let h: Handler = Arc::new(|_| Box::pin(async { Ok(()) }));
            assert!(matches!(m.subscribe("a", h).await, Err(MqttError::Closed)));
            assert!(matches!(
                m.publish("a", Bytes::new()).await,
                Err(MqttError::Closed)
            ));
        });
    }
}
