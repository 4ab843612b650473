//! The MQTT client against a real broker: mosquitto, started per test on a
//! free port and killed when the test ends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::time::timeout;
use weft_triggers::mqtt::{Handler, Message, Mqtt, MqttConfig, MqttError};

/// Generous: the machine running the tests may be slow and loaded.
const WAIT: Duration = Duration::from_secs(30);

/// A mosquitto process listening on 127.0.0.1:`port`, killed on drop.
struct Broker {
    child: Child,
    port: u16,
    /// Holds the config and log; removed on drop.
    _dir: tempfile::TempDir,
}

fn mosquitto() -> PathBuf {
    let candidates = [PathBuf::from("/usr/sbin/mosquitto")];
    if let Some(p) = candidates.iter().find(|p| p.exists()) {
        return p.clone();
    }
    if let Some(p) = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("mosquitto"))
            .find(|p| p.exists())
    }) {
        return p;
    }
    panic!(
        "mosquitto not found (looked in /usr/sbin and PATH): these tests need a real \
         MQTT broker; install the Debian package `mosquitto` (apt-get install mosquitto)"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Broker {
    fn start() -> Broker {
        Broker::start_on(free_port())
    }

    /// Starts mosquitto on `port` and waits until it accepts connections.
    /// Retries if the port is briefly unavailable (a broker just killed).
    fn start_on(port: u16) -> Broker {
        let bin = mosquitto();
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
            ),
        )
        .unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            let log = std::fs::File::create(dir.path().join("mosquitto.log")).unwrap();
            let mut child = Command::new(&bin)
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Broker {
                        child,
                        port,
                        _dir: dir,
                    };
                }
                if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.path().join("mosquitto.log"));
                panic!("mosquitto did not start on port {port}: {log:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// kill -9.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn client(url: &str, id: &str) -> Mqtt {
    let mut config = MqttConfig::new(url, id);
    config.keep_alive = Duration::from_secs(5);
    Mqtt::start(config).unwrap()
}

/// A handler forwarding every message to a channel and returning `result`.
fn collector(result: Result<(), String>) -> (Handler, mpsc::UnboundedReceiver<Message>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handler: Handler = Arc::new(move |m| {
        let _ = tx.send(m);
        let r = result.clone();
        Box::pin(async move { r })
    });
    (handler, rx)
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < WAIT,
            "timed out after {WAIT:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<Message>) -> Message {
    timeout(WAIT, rx.recv())
        .await
        .expect("timed out waiting for a message")
        .expect("channel closed")
}

/// Receives `n` messages, as a set of (topic, payload).
async fn recv_n(rx: &mut mpsc::UnboundedReceiver<Message>, n: usize) -> BTreeSet<(String, Bytes)> {
    let mut out = BTreeSet::new();
    for _ in 0..n {
        let m = recv(rx).await;
        assert_eq!(m.qos, 1);
        out.insert((m.topic, m.payload));
    }
    out
}

async fn assert_quiet(rx: &mut mpsc::UnboundedReceiver<Message>, d: Duration) {
    if let Ok(Some(m)) = timeout(d, rx.recv()).await {
        panic!("unexpected message on `{}`: {:?}", m.topic, m.payload);
    }
}

/// Publishes every half second until a message arrives: after a (re)connect
/// the subscriber's SUBSCRIBE may still be on its way.
async fn publish_until_received(
    publisher: &Mqtt,
    topic: &str,
    payload: &'static [u8],
    rx: &mut mpsc::UnboundedReceiver<Message>,
) -> Message {
    let start = Instant::now();
    loop {
        publisher
            .publish(topic, Bytes::from_static(payload))
            .await
            .unwrap();
        if let Ok(Some(m)) = timeout(Duration::from_millis(500), rx.recv()).await {
            return m;
        }
        assert!(
            start.elapsed() < WAIT,
            "nothing received on `{topic}` within {WAIT:?}"
        );
    }
}

fn set(items: &[(&str, &[u8])]) -> BTreeSet<(String, Bytes)> {
    items
        .iter()
        .map(|(t, p)| (t.to_string(), Bytes::copy_from_slice(p)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_subscriptions_get_the_right_messages_with_intact_payloads() {
    let broker = Broker::start();
    let sub = client(&broker.url(), "wild-sub");
    let publisher = client(&broker.url(), "wild-pub");
    wait_until("both clients are connected", || {
        sub.connected() && publisher.connected()
    })
    .await;

    let (temp, mut temp_rx) = collector(Ok(()));
    let (all, mut all_rx) = collector(Ok(()));
    sub.subscribe("sensors/+/temp", temp).await.unwrap();
    let all_id = sub.subscribe("sensors/#", all).await.unwrap();

    let binary: &[u8] = &[0xff, 0x00, 0xfe, b'\n', 0x80];
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let sends: &[(&str, &[u8])] = &[
        ("sensors/kitchen/temp", binary),
        ("sensors/kitchen/humidity", b"55"),
        ("sensors", b"parent"),
        ("sensors/a/b/temp", b"deep"),
        ("other/kitchen/temp", b"elsewhere"),
        ("sensorsX/kitchen/temp", b"prefix"),
        ("sensors/big/temp", &big),
    ];
    for (topic, payload) in sends {
        publisher
            .publish(topic, Bytes::copy_from_slice(payload))
            .await
            .unwrap();
    }

    let want_temp = set(&[("sensors/kitchen/temp", binary), ("sensors/big/temp", &big)]);
    let want_all = set(&[
        ("sensors/kitchen/temp", binary),
        ("sensors/kitchen/humidity", b"55"),
        ("sensors", b"parent"),
        ("sensors/a/b/temp", b"deep"),
        ("sensors/big/temp", &big),
    ]);
    assert_eq!(recv_n(&mut temp_rx, want_temp.len()).await, want_temp);
    assert_eq!(recv_n(&mut all_rx, want_all.len()).await, want_all);
    assert_quiet(&mut temp_rx, Duration::from_secs(1)).await;
    assert_quiet(&mut all_rx, Duration::from_millis(100)).await;

    // After unsubscribing `sensors/#`, only `sensors/+/temp` still gets its messages.
    sub.unsubscribe(all_id).await;
    publisher
        .publish("sensors/hall/temp", Bytes::from_static(b"after"))
        .await
        .unwrap();
    assert_eq!(
        recv(&mut temp_rx).await.payload,
        Bytes::from_static(b"after")
    );
    assert_quiet(&mut all_rx, Duration::from_secs(1)).await;

    sub.shutdown().await;
    publisher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_handler_leaves_the_message_unacked_and_it_is_redelivered() {
    let broker = Broker::start();
    let publisher = client(&broker.url(), "redeliver-pub");

    // First life of the subscriber: of two matching handlers, one fails.
    let sub = client(&broker.url(), "redeliver-sub");
    wait_until("connected", || sub.connected() && publisher.connected()).await;
    let (ok, mut ok_rx) = collector(Ok(()));
    let (failing, mut failing_rx) = collector(Err("function failed".into()));
    sub.subscribe("jobs/#", ok).await.unwrap();
    sub.subscribe("jobs/+", failing).await.unwrap();
    publisher
        .publish("jobs/1", Bytes::from_static(b"job one"))
        .await
        .unwrap();
    assert_eq!(
        recv(&mut ok_rx).await.payload,
        Bytes::from_static(b"job one")
    );
    assert_eq!(
        recv(&mut failing_rx).await.payload,
        Bytes::from_static(b"job one")
    );
    // Not redelivered within the same connection (MQTT 3.1.1 redelivers on reconnect).
    assert_quiet(&mut ok_rx, Duration::from_secs(1)).await;
    sub.shutdown().await;
    assert!(!sub.connected());

    // Second life, same client id: the broker redelivers the unacked message,
    // which is held until a matching subscription exists; this time it succeeds.
    let sub = client(&broker.url(), "redeliver-sub");
    wait_until("reconnected", || sub.connected()).await;
    let (ok, mut ok_rx) = collector(Ok(()));
    sub.subscribe("jobs/#", ok).await.unwrap();
    let again = recv(&mut ok_rx).await;
    assert_eq!(again.topic, "jobs/1");
    assert_eq!(again.payload, Bytes::from_static(b"job one"));
    // Give the PUBACK time to reach the broker before disconnecting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sub.shutdown().await;

    // Third life: it was acknowledged, so nothing comes back.
    let sub = client(&broker.url(), "redeliver-sub");
    wait_until("reconnected", || sub.connected()).await;
    let (ok, mut ok_rx) = collector(Ok(()));
    sub.subscribe("jobs/#", ok).await.unwrap();
    assert_quiet(&mut ok_rx, Duration::from_secs(2)).await;
    // And new messages still flow.
    publisher
        .publish("jobs/2", Bytes::from_static(b"job two"))
        .await
        .unwrap();
    assert_eq!(recv(&mut ok_rx).await.topic, "jobs/2");
    sub.shutdown().await;
    publisher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_while_the_broker_is_down_and_connects_when_it_comes_up() {
    let port = free_port();
    let url = format!("mqtt://127.0.0.1:{port}");
    let sub = client(&url, "late-sub");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!sub.connected());
    // Subscribing while down returns at once; the filter is sent on connect.
    let (h, mut rx) = collector(Ok(()));
    timeout(Duration::from_secs(5), sub.subscribe("late/#", h))
        .await
        .expect("subscribe must not wait for the broker")
        .unwrap();

    let broker = Broker::start_on(port);
    let publisher = client(&broker.url(), "late-pub");
    wait_until("the subscriber connects", || sub.connected()).await;
    let m = publish_until_received(&publisher, "late/x", b"hello", &mut rx).await;
    assert_eq!(
        (m.topic.as_str(), &m.payload[..]),
        ("late/x", &b"hello"[..])
    );
    sub.shutdown().await;
    publisher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_and_resubscribes_after_the_broker_is_killed_and_restarted() {
    let mut broker = Broker::start();
    let port = broker.port;
    let sub = client(&broker.url(), "restart-sub");
    let publisher = client(&broker.url(), "restart-pub");
    wait_until("connected", || sub.connected() && publisher.connected()).await;
    let (h, mut rx) = collector(Ok(()));
    sub.subscribe("restart/#", h).await.unwrap();
    publisher
        .publish("restart/before", Bytes::from_static(b"1"))
        .await
        .unwrap();
    assert_eq!(recv(&mut rx).await.topic, "restart/before");

    // kill -9; the new broker has no memory of the session (persistence false),
    // so only the client's re-subscription can bring messages back.
    broker.kill();
    wait_until("the client notices", || !sub.connected()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _broker = Broker::start_on(port);
    wait_until("the client reconnects", || {
        sub.connected() && publisher.connected()
    })
    .await;
    let m = publish_until_received(&publisher, "restart/after", b"2", &mut rx).await;
    assert_eq!(m.topic, "restart/after");
    assert_eq!(m.payload, Bytes::from_static(b"2"));
    sub.shutdown().await;
    publisher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_topics_filters_and_urls_are_errors_naming_them() {
    // No broker needed: validation happens before anything is sent.
    let m = client(&format!("mqtt://127.0.0.1:{}", free_port()), "invalid");
    for topic in ["a/+/b", "a/#", ""] {
        let e = m
            .publish(topic, Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(matches!(e, MqttError::InvalidTopic { .. }), "{e}");
        assert!(e.to_string().contains(&format!("`{topic}`")), "{e}");
    }
    for filter in ["a/#/b", "sport+", "a#", ""] {
        let (h, _rx) = collector(Ok(()));
        let e = m.subscribe(filter, h).await.unwrap_err();
        assert!(matches!(e, MqttError::InvalidFilter { .. }), "{e}");
        assert!(e.to_string().contains(&format!("`{filter}`")), "{e}");
    }
    for url in [
        "localhost:1883",
        "mqtt://host:99999",
        "mqtts://host",
        "mqtt://host?x=1",
    ] {
        let e = Mqtt::start(MqttConfig::new(url, "id")).unwrap_err();
        assert!(matches!(e, MqttError::InvalidUrl { .. }), "{e}");
        assert!(e.to_string().contains(&format!("`{url}`")), "{e}");
    }
    m.shutdown().await;
}
