//! `livesim`: one small continuum run live and in the simulator, side by
//! side: how far the simulated p50 latency and placement are from the
//! live ones.
//!
//! The continuum, all on loopback: a leaf `nats-server` with two edge
//! nodes, `edge` and `edge-2`; a hub `nats-server` (JetStream) with the
//! `cloud` node, joined to the leaf through a delay proxy adding 10 ms each
//! way. Every node has 4 sandbox slots for the guest `nap`, which sleeps
//! 10 ms (bound by time, not CPU: the three nodes share this machine's two
//! cores, so a CPU-bound guest would not run at the speed the topology
//! says). 16 callers at `edge` each invoke it 30 times back to back, every
//! call placed by Weft (the router, `weft-sched`).
//!
//! The same continuum in the simulator (`weft_sim::continuum`, policy
//! `weft`): the three nodes with 4 workers each, a step of 10 ms on any of
//! them; the edges on one switch over 1 Gb/s links, the cloud behind a
//! link with 10 ms of propagation each way (the topology files' optional
//! `latency_ms`); 16 chains of 30 steps arriving at once at `edge`, a
//! step's argument and output a few bytes; heartbeats every second, as
//! the nodes' own.
//!
//! Reported per run: the mean, p50 and p90 of a call's latency, and the share of
//! calls each node ran, live and simulated. Three runs.

use crate::continuum::hub_and_leaf;
use crate::node::{self, Node, quantile};
use anyhow::{Result, bail};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use weft_manifest::{FunctionSpec, NodeConfig};
use weft_sched::Tier;
use weft_sim::continuum::{self, Config};
use weft_sim::policies::Weft;
use weft_sim::seed003::Model;
use weft_sim::{Chain, Step, Topology, Workload};

const ONE_WAY: Duration = Duration::from_millis(10);
const CALLERS: usize = 16;
const CALLS: usize = 30;
const SLOTS: u32 = 4;
const NAP_MS: u64 = 10;
const NODES: [&str; 3] = ["edge", "edge-2", "cloud"];

/// The simulated continuum: the live one's shape, as StateSim files.
fn topology() -> Result<Topology> {
    // Speed 4e9 ops/s shared by 4 workers: a step of 1e7 ops takes 10 ms.
    let nodes = "0;edge;4000000000;1;x86;sffc;nuci5\n\
                 1;edge-2;4000000000;1;x86;sffc;nuci5\n\
                 2;cloud;4000000000;1;x86;server;server\n";
    let links = "0;1000;l_edge;node\n1;1000;l_edge2;node\n2;1000;l_up;uplink;10\n";
    let edges = "edge l_edge\nl_edge edge leaf\nedge-2 l_edge2\nl_edge2 edge-2 leaf\n\
                 leaf l_edge l_edge2 l_up\nl_up leaf cloud\ncloud l_up\n";
    let p = |ext: &str| std::path::PathBuf::from(format!("livesim.{ext}"));
    let (n, l, e) = (p("nodes"), p("links"), p("edges"));
    Ok(Topology::parse([&n, &l, &e], [nodes, links, edges])?)
}

/// 16 chains of 30 naps at `edge`, all at once: the callers.
fn workload(t: &Topology) -> Result<Workload> {
    let Some(edge) = t.node("edge") else {
        bail!("no edge node in the topology");
    };
    let chains = (0..CALLERS)
        .map(|i| Chain {
            name: format!("caller-{i}"),
            arrival: 0,
            client: edge,
            key: i as u32,
            steps: (0..CALLS)
                .map(|_| Step {
                    function: 0,
                    ops: 10_000_000,
                    arg_bytes: 2,
                    out_bytes: 6,
                    state_bytes: 0,
                    deadline: None,
                })
                .collect(),
        })
        .collect();
    Ok(Workload {
        functions: vec!["nap".into()],
        keys: (0..CALLERS).map(|i| format!("caller-{i}")).collect(),
        chains,
    })
}

/// Mean, p50, p90 (ms) and the share of calls per node (%).
type Figures = (f64, f64, f64, BTreeMap<String, f64>);

/// The figures of calls' latencies `lat` (ms) and nodes `on` (counts).
fn figures(mut lat: Vec<f64>, mut on: BTreeMap<String, f64>) -> Figures {
    let n = lat.len().max(1) as f64;
    on.values_mut().for_each(|v| *v *= 100.0 / n);
    let mean = lat.iter().sum::<f64>() / n;
    (mean, quantile(&mut lat, 0.5), quantile(&mut lat, 0.9), on)
}

fn simulate() -> Result<Figures> {
    let t = topology()?;
    let w = workload(&t)?;
    let c = Config {
        model: Model::Client,
        slots: SLOTS,
        ..Config::default()
    };
    let o = continuum::run(&t, &w, c, &mut Weft::new());
    let lat: Vec<f64> = o
        .latencies
        .iter()
        .flatten()
        .flatten()
        .map(|ns| *ns as f64 / 1e6)
        .collect();
    let mut on = BTreeMap::new();
    for x in o.placements.iter().flatten().flatten() {
        *on.entry(t.nodes()[*x].name.clone()).or_insert(0.0) += 1.0;
    }
    Ok(figures(lat, on))
}

/// The live continuum: `edge` and `edge-2` on a leaf, `cloud` on the hub
/// behind the delay proxy.
struct Live {
    nodes: Vec<Node>,
    _servers: (node::Server, node::Server),
}

impl Live {
    async fn start() -> Result<Live> {
        let (hub, leaf, _) = hub_and_leaf(ONE_WAY).await?;
        let url = |port| format!("nats://127.0.0.1:{port}");
        let config = NodeConfig::default();
        let edge =
            node::fabric_node_with(&url(leaf.port), "edge", Tier::Edge, config.clone()).await?;
        let edge2 =
            node::fabric_node_with(&url(leaf.port), "edge-2", Tier::Edge, config.clone()).await?;
        let cloud = node::fabric_node_with(&url(hub.port), "cloud", Tier::Cloud, config).await?;
        Ok(Live {
            nodes: vec![edge, edge2, cloud],
            _servers: (leaf, hub),
        })
    }

    /// Waits until `edge` sees both peers up (the cloud across the link)
    /// and both have `nap`.
    async fn ready(&self) -> Result<()> {
        let until = Instant::now() + Duration::from_secs(30);
        let least = u64::try_from(ONE_WAY.as_micros()).unwrap_or(u64::MAX) * 3 / 2;
        loop {
            let status = self.nodes[0].r.fabric_status();
            let peer = |name: &str| {
                status
                    .as_ref()
                    .and_then(|s| s.nodes.iter().find(|n| n.name == name && n.up))
                    .map(|n| n.rtt_us)
            };
            let far = peer("cloud").flatten();
            if peer("edge-2").is_some()
                && far.is_some_and(|r| r >= least)
                && self.nodes[1..]
                    .iter()
                    .all(|n| n.r.explain("nap", 0, None).is_ok())
            {
                return Ok(());
            }
            if Instant::now() > until {
                bail!("the edge never saw both peers (cloud rtt {far:?})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn close(self) {
        for n in &self.nodes {
            n.r.leave_fabric().await;
        }
        for n in self.nodes {
            n.close().await;
        }
    }
}

async fn live(net: &Live) -> Result<Figures> {
    let mut tasks = Vec::new();
    for _ in 0..CALLERS {
        let r = net.nodes[0].r.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for _ in 0..CALLS {
                let t = Instant::now();
                let resp = node::invoke(&r, "nap", Bytes::from(NAP_MS.to_string())).await?;
                anyhow::ensure!(&resp.body[..] == b"rested", "unexpected answer");
                out.push((t.elapsed().as_secs_f64() * 1e3, resp.served.node.clone()));
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut lat = Vec::new();
    let mut on = BTreeMap::new();
    for t in tasks {
        for (ms, node) in t.await?? {
            lat.push(ms);
            *on.entry(node).or_insert(0.0) += 1.0;
        }
    }
    Ok(figures(lat, on))
}

fn shares(on: &BTreeMap<String, f64>) -> String {
    NODES
        .iter()
        .map(|n| format!("{:.0}", on.get(*n).copied().unwrap_or(0.0)))
        .collect::<Vec<_>>()
        .join(" / ")
}

pub(crate) async fn run(quick: bool) -> Result<()> {
    let rounds = if quick { 1 } else { 3 };
    let net = Live::start().await?;
    let nap = node::guest("nap")?;
    let spec = FunctionSpec {
        max_concurrency: Some(SLOTS),
        max_queue: Some(1_000),
        ..FunctionSpec::default()
    };
    net.nodes[0].deploy("nap", nap, spec).await?;
    net.ready().await?;
    // Warm on each node, and learned there, before the runs.
    for n in &net.nodes {
        for _ in 0..4 {
            n.invoke("nap", "1").await?;
        }
    }
    let sim = simulate()?;
    println!();
    println!(
        "## Live against simulated: 16 callers at the edge, 2 edge nodes and a cloud 10 ms away, 4 slots each, a 10 ms nap ({rounds} runs)"
    );
    println!();
    println!(
        "| run | live mean | sim mean | live p50 | sim p50 | live p90 | sim p90 | live % edge / edge-2 / cloud | sim % |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for round in 0..rounds {
        eprintln!("livesim: run {}/{rounds}", round + 1);
        let (mean, p50, p90, on) = live(&net).await?;
        println!(
            "| {} | {mean:.1} | {:.1} | {p50:.1} | {:.1} | {p90:.1} | {:.1} | {} | {} |",
            round + 1,
            sim.0,
            sim.1,
            sim.2,
            shares(&on),
            shares(&sim.3)
        );
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
    net.close().await;
    Ok(())
}
