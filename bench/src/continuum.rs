//! `continuum`: a latency-bound function, offered more load than the edge
//! runs at once, across an emulated 20 ms edge–cloud link — placed by Weft
//! against always-local and always-cloud.
//!
//! Topology, all on loopback: a hub `nats-server` (JetStream) with the
//! `cloud` node; a leaf `nats-server` with the `edge` node, joined to the
//! hub through a delay proxy adding 10 ms each way (20 ms round trip). The
//! guest `nap` sleeps 10 ms (bound by time, not CPU), `max_concurrency = 4`
//! on each node. 16 callers at the edge, each invoking it back to back:
//!
//! * **always-local** — every call runs on the edge (queues for its 4 slots);
//! * **always-cloud** — every call crosses the link (`tier = ["cloud"]`);
//! * **Weft** — the scheduler decides per call: local while the edge has a
//!   free slot, else the least expected completion (queueing + execution +
//!   transfer), which sends the overflow to the cloud.

use crate::node::{self, Node, quantile};
use anyhow::{Result, bail};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_manifest::{FunctionSpec, NodeConfig, PlacementSpec};
use weft_router::Router;
use weft_sched::Tier;

const ONE_WAY: Duration = Duration::from_millis(10);
const CALLERS: usize = 16;

/// A TCP proxy that delays every chunk by `delay` in each direction
/// (throughput is not divided by the delay: chunks are in flight at once).
pub(crate) async fn delay_link(target: SocketAddr, delay: Duration) -> Result<SocketAddr> {
    delay_link_counted(target, delay, Arc::default()).await
}

/// [`delay_link`], adding the bytes it carries (both ways) to `carried`.
pub(crate) async fn delay_link_counted(
    target: SocketAddr,
    delay: Duration,
    carried: Arc<AtomicU64>,
) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((down, _)) = listener.accept().await {
            let Ok(up) = tokio::net::TcpStream::connect(target).await else {
                continue;
            };
            let _ = (down.set_nodelay(true), up.set_nodelay(true));
            let (dr, dw) = down.into_split();
            let (ur, uw) = up.into_split();
            tokio::spawn(pump(dr, uw, delay, carried.clone()));
            tokio::spawn(pump(ur, dw, delay, carried.clone()));
        }
    });
    Ok(addr)
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    carried: Arc<AtomicU64>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due.into()).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; 64 << 10];
    while let Ok(n) = from.read(&mut buf).await {
        carried.fetch_add(n as u64, Ordering::Relaxed);
        if n == 0
            || tx
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
        {
            return;
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    AlwaysLocal,
    AlwaysCloud,
    Weft,
}

/// One call through the edge's router: `always-local` and `always-cloud`
/// are the same guest deployed with `tier = ["edge"]` and `["cloud"]`, so
/// every mode is the router's decision, as in a real node.
async fn call(r: &Arc<Router>, mode: Mode, input: Bytes) -> Result<(Bytes, bool)> {
    let function = match mode {
        Mode::AlwaysLocal => "nap-edge",
        Mode::AlwaysCloud => "nap-cloud",
        Mode::Weft => "nap",
    };
    let out = node::invoke(r, function, input).await?;
    Ok((out.body, out.served.node != "edge"))
}

pub(crate) async fn run(quick: bool) -> Result<()> {
    let (rounds, per_caller) = if quick { (2, 10) } else { (3, 30) };
    let net = Linked::start(ONE_WAY, NodeConfig::default()).await?;
    let (edge, cloud) = (&net.edge, &net.cloud);
    let nap = node::guest("nap")?;
    let spec = |tier: Option<&str>| FunctionSpec {
        max_concurrency: Some(4),
        max_queue: Some(1_000),
        placement: tier.map(|t| PlacementSpec {
            tier: vec![t.to_string()],
            ..PlacementSpec::default()
        }),
        ..FunctionSpec::default()
    };
    edge.deploy("nap", nap.clone(), spec(None)).await?;
    edge.deploy("nap-edge", nap.clone(), spec(Some("edge")))
        .await?;
    edge.deploy("nap-cloud", nap, spec(Some("cloud"))).await?;
    net.ready("nap-cloud").await?;
    for _ in 0..4 {
        call(&edge.r, Mode::AlwaysCloud, Bytes::from_static(b"1")).await?;
        call(&edge.r, Mode::AlwaysLocal, Bytes::from_static(b"1")).await?;
    }
    cloud.invoke("nap", "1").await?;

    let mut results: BTreeMap<&str, (Vec<f64>, usize, usize)> = BTreeMap::new();
    for round in 0..rounds {
        for mode in [Mode::AlwaysLocal, Mode::AlwaysCloud, Mode::Weft] {
            eprintln!("continuum: round {}/{rounds}, {mode:?}", round + 1);
            let mut tasks = Vec::new();
            for _ in 0..CALLERS {
                let c = edge.r.clone();
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut remote = 0;
                    for _ in 0..per_caller {
                        let t = Instant::now();
                        let (body, far) = call(&c, mode, Bytes::from_static(b"10")).await?;
                        anyhow::ensure!(&body[..] == b"rested", "unexpected answer");
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                        remote += usize::from(far);
                    }
                    Ok::<_, anyhow::Error>((lat, remote))
                }));
            }
            let name = match mode {
                Mode::AlwaysLocal => "always-local",
                Mode::AlwaysCloud => "always-cloud",
                Mode::Weft => "Weft (Load+net)",
            };
            let entry = results.entry(name).or_default();
            for t in tasks {
                let (lat, remote) = t.await??;
                entry.1 += lat.len();
                entry.2 += remote;
                entry.0.extend(lat);
            }
        }
    }
    println!();
    println!(
        "## Continuum: a 10 ms latency-bound function, 16 callers at the edge, 4 slots per node, 20 ms RTT edge–cloud link ({rounds} rounds)"
    );
    println!();
    println!("| placement | p50 (ms) | p99 (ms) | mean (ms) | ran in the cloud |");
    println!("| --- | --- | --- | --- | --- |");
    for name in ["always-local", "always-cloud", "Weft (Load+net)"] {
        let Some((lat, n, remote)) = results.get_mut(name) else {
            continue;
        };
        let mean = lat.iter().sum::<f64>() / lat.len().max(1) as f64;
        println!(
            "| {name} | {:.1} | {:.1} | {mean:.1} | {:.0} % |",
            quantile(lat, 0.5),
            quantile(lat, 0.99),
            100.0 * *remote as f64 / (*n).max(1) as f64
        );
    }
    net.close().await;
    Ok(())
}

/// A hub `nats-server` (JetStream, domain `hub`) and a leaf joined to it
/// through a delay proxy adding `one_way` each way: `(hub, leaf)`.
pub(crate) async fn hub_and_leaf(
    one_way: Duration,
) -> Result<(node::Server, node::Server, Arc<AtomicU64>)> {
    let (hub, hub_leaf_port) = node::nats_server(|port, leaf, dir| {
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\", domain: hub }}\nleafnodes {{ listen: 127.0.0.1:{leaf} }}\n",
            dir.join("js").display()
        )
    })?;
    let carried = Arc::new(AtomicU64::new(0));
    let link = delay_link_counted(
        ([127, 0, 0, 1], hub_leaf_port).into(),
        one_way,
        carried.clone(),
    )
    .await?;
    let (leaf, _) = node::nats_server(move |port, _, _| {
        format!(
            "listen: 127.0.0.1:{port}\ndefault_js_domain: {{ \"$G\": \"hub\" }}\nleafnodes {{ reconnect: 1, remotes = [ {{ url: \"nats-leaf://{link}\" }} ] }}\n"
        )
    })?;
    Ok((hub, leaf, carried))
}

/// The continuum on loopback: a hub `nats-server` (JetStream) with the
/// `cloud` node; a leaf with the `edge` node, joined to the hub through a
/// delay proxy adding `one_way` each way. Both nodes run `config`.
pub(crate) struct Linked {
    pub(crate) edge: Node,
    pub(crate) cloud: Node,
    one_way: Duration,
    /// Bytes the link between leaf and hub carried, both ways.
    carried: Arc<AtomicU64>,
    _servers: (node::Server, node::Server),
}

impl Linked {
    pub(crate) async fn start(one_way: Duration, config: NodeConfig) -> Result<Linked> {
        let (hub, leaf, carried) = hub_and_leaf(one_way).await?;
        let url = |port| format!("nats://127.0.0.1:{port}");
        let cloud =
            node::fabric_node_with(&url(hub.port), "cloud", Tier::Cloud, config.clone()).await?;
        let edge = node::fabric_node_with(&url(leaf.port), "edge", Tier::Edge, config).await?;
        Ok(Linked {
            edge,
            cloud,
            one_way,
            carried,
            _servers: (leaf, hub),
        })
    }

    /// Waits until the edge sees the cloud up across the link, and the
    /// cloud has `function`.
    pub(crate) async fn ready(&self, function: &str) -> Result<()> {
        let until = Instant::now() + Duration::from_secs(30);
        let least = u64::try_from(self.one_way.as_micros()).unwrap_or(u64::MAX) * 3 / 2;
        loop {
            let rtt = self.edge.r.fabric_status().and_then(|s| {
                s.nodes
                    .into_iter()
                    .find(|n| n.name == "cloud" && n.up)
                    .and_then(|n| n.rtt_us)
            });
            if rtt.is_some_and(|r| r >= least) && self.cloud.r.explain(function, 0, None).is_ok() {
                return Ok(());
            }
            if Instant::now() > until {
                bail!("the edge never saw the cloud across the link (rtt {rtt:?})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Bytes the edge–cloud link has carried so far, both ways (NATS
    /// framing, heartbeats and probes included).
    pub(crate) fn carried(&self) -> u64 {
        self.carried.load(Ordering::Relaxed)
    }

    pub(crate) async fn close(self) {
        self.edge.r.leave_fabric().await;
        self.cloud.r.leave_fabric().await;
        self.edge.close().await;
        self.cloud.close().await;
    }
}
