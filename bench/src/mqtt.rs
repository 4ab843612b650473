//! `mqtt`: from an MQTT message to the start of the function it triggers.
//!
//! A mosquitto broker on a free port; a node subscribed to `bench/in` for
//! the `stamp` guest (clock granted), which answers `<request> <start µs>`
//! on `bench/out`. The bench publishes `<seq> <µs now>` at QoS 1 and reads
//! the answers: message-to-start = guest start − publish time, and the round
//! trip = answer received − publish time. Floor: the broker's own hop, the
//! bench publishing on `bench/floor` and receiving it back on its own
//! subscription (publish → broker → subscriber).
//!
//! The broker runs with `set_tcp_nodelay true` and the bench's client with
//! `TCP_NODELAY`: with Nagle's algorithm on either, the broker hop alone
//! takes ~44 ms here (delayed ACKs), which would hide everything else.

use crate::node::{self, Node, quantile};
use anyhow::{Context as _, Result, bail};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;
use weft_manifest::{FunctionSpec, MqttConfig, MqttTrigger, NodeConfig};

/// An answer: (payload, µs since the epoch at receipt).
type Received = (String, u64);

struct Bench {
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<(String, Received)>,
    /// Answers that arrived while another was awaited.
    early: HashMap<String, Received>,
    seq: u64,
}

impl Bench {
    /// Publishes `<seq> <now µs>` on `topic`; returns the sequence number
    /// and the time.
    async fn publish(&mut self, topic: &str) -> Result<(String, u64)> {
        self.seq += 1;
        let seq = self.seq.to_string();
        let ts = node::now_us();
        self.client
            .publish(topic, QoS::AtLeastOnce, false, format!("{seq} {ts}"))
            .await?;
        Ok((seq, ts))
    }

    /// Waits for the message of sequence `seq` on `topic`.
    async fn wait(&mut self, topic: &str, seq: &str, within: Duration) -> Result<Received> {
        let key = format!("{topic} {seq}");
        if let Some(r) = self.early.remove(&key) {
            return Ok(r);
        }
        let until = tokio::time::Instant::now() + within;
        loop {
            let Ok(Some((t, (payload, at)))) = tokio::time::timeout_at(until, self.rx.recv()).await
            else {
                bail!("no message {seq} on `{topic}` within {within:?}");
            };
            let s = payload.split_whitespace().next().unwrap_or_default();
            let k = format!("{t} {s}");
            if k == key {
                return Ok((payload, at));
            }
            self.early.insert(k, (payload, at));
        }
    }
}

/// The guest's start time in an answer `<seq> <ts> <start>`.
fn start_of(payload: &str) -> Result<u64> {
    payload
        .split_whitespace()
        .nth(2)
        .and_then(|w| w.parse().ok())
        .with_context(|| format!("stamp answered `{payload}`"))
}

pub(crate) async fn run(quick: bool) -> Result<()> {
    let (rounds, alone, burst) = if quick { (3, 30, 100) } else { (5, 100, 500) };
    let broker = node::mosquitto(true)?;
    let node = Node::open(NodeConfig {
        mqtt: Some(MqttConfig {
            url: format!("mqtt://127.0.0.1:{}", broker.port),
            client_id: None,
        }),
        ..NodeConfig::default()
    })
    .await?;
    node.deploy(
        "stamp",
        node::guest("stamp")?,
        FunctionSpec {
            mqtt: vec![MqttTrigger {
                topic: "bench/in".into(),
                response_topic: Some("bench/out".into()),
            }],
            ..FunctionSpec::default()
        },
    )
    .await?;

    let mut opts = MqttOptions::new(
        format!("weft-bench-{}", std::process::id()),
        "127.0.0.1",
        broker.port,
    );
    opts.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_inflight(1000);
    let (client, mut events) = AsyncClient::new(opts, 4096);
    let mut net = events.network_options();
    net.set_tcp_nodelay(true);
    events.set_network_options(net);
    let (tx, rx) = mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let at = node::now_us();
                    let text = String::from_utf8_lossy(&p.payload).into_owned();
                    if tx.send((p.topic, (text, at))).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("mqtt bench client: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    client.subscribe("bench/out", QoS::AtLeastOnce).await?;
    client.subscribe("bench/floor", QoS::AtLeastOnce).await?;
    let mut b = Bench {
        client,
        rx,
        early: HashMap::new(),
        seq: 0,
    };
    // The node subscribes in the background: probe until it answers.
    let mut ready = false;
    for _ in 0..100 {
        let (seq, _) = b.publish("bench/in").await?;
        if b.wait("bench/out", &seq, Duration::from_millis(300))
            .await
            .is_ok()
        {
            ready = true;
            break;
        }
    }
    if !ready {
        bail!("the node never answered on bench/out");
    }
    // Let late answers to probes drain.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut s = Samples::default();
    for round in 0..rounds {
        eprintln!("mqtt: round {}/{rounds}", round + 1);
        for _ in 0..alone {
            let (seq, ts) = b.publish("bench/in").await?;
            let (payload, at) = b.wait("bench/out", &seq, Duration::from_secs(10)).await?;
            s.start_alone.push(ms(start_of(&payload)?, ts));
            s.rtt_alone.push(ms(at, ts));
            let (seq, ts) = b.publish("bench/floor").await?;
            let (_, at) = b.wait("bench/floor", &seq, Duration::from_secs(10)).await?;
            s.floor_alone.push(ms(at, ts));
        }
        let mut sent = Vec::with_capacity(burst);
        for _ in 0..burst {
            sent.push(b.publish("bench/in").await?);
        }
        for (seq, ts) in sent {
            let (payload, at) = b.wait("bench/out", &seq, Duration::from_secs(60)).await?;
            s.start_burst.push(ms(start_of(&payload)?, ts));
            s.rtt_burst.push(ms(at, ts));
        }
        let mut sent = Vec::with_capacity(burst);
        for _ in 0..burst {
            sent.push(b.publish("bench/floor").await?);
        }
        for (seq, ts) in sent {
            let (_, at) = b.wait("bench/floor", &seq, Duration::from_secs(60)).await?;
            s.floor_burst.push(ms(at, ts));
        }
    }
    let _ = b.client.disconnect().await;
    pump.abort();
    node.close().await;
    drop(broker);

    println!();
    println!(
        "## MQTT message to function start (ms; QoS 1, mosquitto on loopback; {rounds} rounds pooled)"
    );
    println!();
    println!(
        "| load | samples | message → start p50 / p99 | round trip p50 / p99 | broker hop (floor) p50 / p99 | start / floor at p50 |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    let row = |name: &str, start: &mut Vec<f64>, rtt: &mut Vec<f64>, floor: &mut Vec<f64>| {
        let (s50, f50) = (quantile(start, 0.5), quantile(floor, 0.5));
        println!(
            "| {name} | {} | {s50:.2} / {:.2} | {:.2} / {:.2} | {f50:.3} / {:.3} | {:.1}× |",
            start.len(),
            quantile(start, 0.99),
            quantile(rtt, 0.5),
            quantile(rtt, 0.99),
            quantile(floor, 0.99),
            s50 / f50
        );
    };
    row(
        "one at a time",
        &mut s.start_alone,
        &mut s.rtt_alone,
        &mut s.floor_alone,
    );
    row(
        &format!("burst of {burst}"),
        &mut s.start_burst,
        &mut s.rtt_burst,
        &mut s.floor_burst,
    );
    Ok(())
}

#[derive(Default)]
struct Samples {
    start_alone: Vec<f64>,
    rtt_alone: Vec<f64>,
    floor_alone: Vec<f64>,
    start_burst: Vec<f64>,
    rtt_burst: Vec<f64>,
    floor_burst: Vec<f64>,
}

/// `later − earlier`, µs to ms (negative if the clocks disagree).
fn ms(later: u64, earlier: u64) -> f64 {
    (later as f64 - earlier as f64) / 1000.0
}
