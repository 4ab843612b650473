//! `chains`: seed 003's shape of work, a chain of 2 to 10 stateful steps,
//! under each state model, on one edge node: latency per chain and the
//! bytes of state that crossed a network per chain.
//!
//! The executor is the edge node for every model; where the state lives
//! differs. `external`: a Redis server behind an emulated 20 ms round trip
//! (the cloud); `edge`: the same server behind a 1 ms round trip (a store
//! one hop away in the site); `function`: actors in the node's memory,
//! checkpointed to its disk; `client`: with the caller, sealed, carried
//! through the chain. Each step (`bench/guests/rust/src/bin/state-step.rs`)
//! increments its counter, keeps the request, and calls the next. The
//! second part ([`run_fabric`]) runs them across an edge and a cloud node.

use crate::continuum::delay_link;
use crate::node::{self, Node, median, quantile, spread};
use anyhow::{Result, ensure};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use weft_manifest::{
    FunctionSpec, KvStoreConfig, Name, NodeConfig, StateConfig, StateModel, StateSpec,
};

const STEPS: usize = 10;
const LENGTHS: [usize; 3] = [2, 5, 10];
const MODELS: [StateModel; 4] = [
    StateModel::Function,
    StateModel::Client,
    StateModel::Edge,
    StateModel::External,
];

fn step(model: StateModel, i: usize) -> String {
    format!("{}-{i}", model.as_str())
}

pub(crate) async fn run(quick: bool) -> Result<()> {
    let (rounds, n) = if quick { (2, 10) } else { (3, 30) };
    let redis = node::redis_server()?;
    let target: SocketAddr = format!("127.0.0.1:{}", redis.port).parse()?;
    let far = delay_link(target, Duration::from_millis(10)).await?;
    let near = delay_link(target, Duration::from_micros(500)).await?;
    let mut config = NodeConfig {
        state: StateConfig {
            external: Some(Name::new("cloud").map_err(anyhow::Error::msg)?),
            edge: Some(Name::new("site").map_err(anyhow::Error::msg)?),
            max_client_state: Some(weft_manifest::ByteSize(1 << 20)),
            function: None,
        },
        // A chain of ten calls (the default allows eight).
        max_call_depth: Some(16),
        ..NodeConfig::default()
    };
    for (label, addr) in [("cloud", far), ("site", near)] {
        config.kv.insert(
            Name::new(label).map_err(anyhow::Error::msg)?,
            KvStoreConfig::Redis {
                url: format!("redis://{addr}/"),
                prefix: None,
            },
        );
    }
    let node = Node::open(config).await?;
    deploy_steps(&node, false).await?;
    let payload = Bytes::from(vec![b'p'; 64]);
    // One chain: latency, and the state's bytes that crossed a network.
    let chain = |model: StateModel, len: usize, sealed: Option<String>| {
        let (node, payload) = (&node, payload.clone());
        async move {
            let first = step(model, STEPS + 1 - len);
            let sent = sealed.as_ref().map_or(0, String::len);
            let before = moved(node, model).await?;
            let (ms, back) = one_chain(node, &first, sealed.as_deref(), payload).await?;
            let bytes = match model {
                // Carried by the caller, both ways.
                StateModel::Client => (sent + back.as_ref().map_or(0, String::len)) as u64,
                // In the node's memory and disk: nothing crosses a network.
                StateModel::Function => 0,
                // To and from the store, as the node counted it.
                _ => moved(node, model).await?.saturating_sub(before),
            };
            anyhow::Ok((ms, bytes, back))
        }
    };
    let mut sealed: BTreeMap<usize, Option<String>> = BTreeMap::new();
    for model in MODELS {
        for len in LENGTHS {
            for _ in 0..3 {
                let (_, _, back) = chain(model, len, sealed.remove(&len).flatten()).await?;
                if model == StateModel::Client {
                    sealed.insert(len, back);
                }
            }
        }
    }
    println!("\n## chains: a chain of stateful steps by state model, one edge node");
    println!(
        "{rounds} rounds × {n} chains per model and length; external: Redis over a 20 ms round trip, edge: over 1 ms\n"
    );
    let mut p50 = ByChain::new();
    let mut bytes = ByChain::new();
    for _ in 0..rounds {
        for len in LENGTHS {
            for model in MODELS {
                let mut ms = Vec::new();
                let mut b = Vec::new();
                for _ in 0..n {
                    let carried = if model == StateModel::Client {
                        sealed.remove(&len).flatten()
                    } else {
                        None
                    };
                    let (t, moved, back) = chain(model, len, carried).await?;
                    if model == StateModel::Client {
                        sealed.insert(len, back);
                    }
                    ms.push(t);
                    b.push(moved as f64);
                }
                let key = (model.as_str().to_string(), len);
                p50.entry(key.clone())
                    .or_default()
                    .push(quantile(&mut ms, 0.5));
                bytes.entry(key).or_default().push(median(b));
            }
        }
    }
    table("state bytes over a network per chain", &p50, &bytes, 0);
    node.close().await;
    Ok(())
}

/// One chain from its first step `first` on `node`, carrying `sealed`
/// (client state): ms end to end, and the client state that came back.
async fn one_chain(
    node: &Node,
    first: &str,
    sealed: Option<&str>,
    payload: Bytes,
) -> Result<(f64, Option<String>)> {
    let req = node::keyed(first, sealed, payload)?;
    let t = Instant::now();
    let c = node.r.invoke(req).await?.collect().await?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    ensure!(c.status.is_success(), "{first}: {}", c.status);
    let back = c
        .headers
        .get("x-weft-state")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((ms, back))
}

/// Per model and chain length: one figure per round.
type ByChain = BTreeMap<(String, usize), Vec<f64>>;

/// Deploys the ten steps of every model on `node` (the fabric's registry
/// spreads them); `pin_actors`: the `function` steps only on the edge tier.
async fn deploy_steps(node: &Node, pin_actors: bool) -> Result<()> {
    let wasm = node::guest("state-step")?;
    for model in MODELS {
        for i in 1..=STEPS {
            let mut spec = FunctionSpec {
                state: Some(StateSpec {
                    model,
                    key: None,
                    bucket: None,
                }),
                ..FunctionSpec::default()
            };
            if pin_actors && model == StateModel::Function {
                spec.placement = Some(weft_manifest::PlacementSpec {
                    tier: vec!["edge".into()],
                    ..Default::default()
                });
            }
            if i < STEPS {
                let next = step(model, i + 1);
                spec.calls = vec![Name::new(&next).map_err(anyhow::Error::msg)?];
                spec.config.insert("next".into(), next);
            }
            node.deploy(&step(model, i), wasm.clone(), spec).await?;
        }
    }
    Ok(())
}

/// The results as a table: p50 per chain, and `last` (with `decimals`).
fn table(last: &str, p50: &ByChain, other: &ByChain, decimals: usize) {
    println!("| model | steps | p50 ms (median of rounds, min–max) | {last} |");
    println!("| --- | --- | --- | --- |");
    for len in LENGTHS {
        for model in MODELS {
            let key = (model.as_str().to_string(), len);
            let (lo, hi) = spread(&p50[&key]);
            println!(
                "| {} | {len} | {:.2} ({lo:.2}–{hi:.2}) | {:.decimals$} |",
                model.as_str(),
                median(p50[&key].clone()),
                median(other[&key].clone())
            );
        }
    }
}

/// Bytes of state `model`'s steps read and wrote so far, as the node's
/// `weft_state_bytes_total` counts them.
async fn moved(node: &Node, model: StateModel) -> Result<u64> {
    let prefix = "weft_state_bytes_total{";
    let wanted = format!("model=\"{}\"", model.as_str());
    Ok(node
        .c
        .metrics_text()
        .lines()
        .filter(|l| l.starts_with(prefix) && l.contains(&wanted))
        .filter(|l| l.contains("moved=\"state_read\"") || l.contains("moved=\"state_written\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

/// Invocations run on `node` so far, of the steps of `model`
/// (`weft_invocations_total`, every outcome).
fn runs(node: &Node, model: StateModel) -> u64 {
    let wanted = format!("function=\"{}-", model.as_str());
    node.c
        .metrics_text()
        .lines()
        .filter(|l| l.starts_with("weft_invocations_total{") && l.contains(&wanted))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The same chains across an edge node and a cloud node, 20 ms apart
/// (`continuum::Linked`: the edge on a leaf server, the cloud on the hub),
/// each step placed by Weft's placement with its state term: `external`
/// in the fabric's JetStream (in the cloud), `edge` in the site's store
/// kept by the edge node, `function` as actors checkpointed to that store
/// (pinned to the edge tier, as the seed's edge executors hold them),
/// `client` with the caller. Chains enter at the edge.
pub(crate) async fn run_fabric(quick: bool) -> Result<()> {
    let (rounds, n) = if quick { (2, 5) } else { (3, 15) };
    let name = |s: &str| Name::new(s).map_err(anyhow::Error::msg);
    let mut config = NodeConfig {
        fabric: Some(weft_manifest::FabricConfig::default()),
        state: StateConfig {
            external: Some(name("cloud")?),
            edge: Some(name("site")?),
            function: Some(name("site")?),
            max_client_state: Some(weft_manifest::ByteSize(1 << 20)),
        },
        max_call_depth: Some(16),
        ..NodeConfig::default()
    };
    config.kv.insert(name("cloud")?, KvStoreConfig::Fabric {});
    config.kv.insert(
        name("site")?,
        KvStoreConfig::Node {
            node: "edge".to_string(),
        },
    );
    let net = crate::continuum::Linked::start(Duration::from_millis(10), config).await?;
    deploy_steps(&net.cloud, true).await?;
    net.ready(&step(StateModel::External, STEPS)).await?;
    // The edge knows every step, and each node has measured its stores.
    let until = Instant::now() + Duration::from_secs(30);
    while net
        .edge
        .c
        .function(&step(StateModel::Client, STEPS))
        .is_err()
        || net.edge.c.store_rtts().len() < 2
        || net.cloud.c.store_rtts().len() < 2
    {
        ensure!(Instant::now() < until, "the edge never learnt the steps");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let payload = Bytes::from(vec![b'p'; 64]);
    let edge = &net.edge;
    let chain = |model: StateModel, len: usize, sealed: Option<String>| {
        let payload = payload.clone();
        async move {
            let first = step(model, STEPS + 1 - len);
            one_chain(edge, &first, sealed.as_deref(), payload).await
        }
    };
    let mut sealed: BTreeMap<usize, Option<String>> = BTreeMap::new();
    // Warm: code, stores, actors, learnt state traffic.
    for model in MODELS {
        for len in LENGTHS {
            for _ in 0..3 {
                let carried = if model == StateModel::Client {
                    sealed.remove(&len).flatten()
                } else {
                    None
                };
                let (_, back) = chain(model, len, carried).await?;
                if model == StateModel::Client {
                    sealed.insert(len, back);
                }
            }
        }
    }
    // The link's own traffic (heartbeats, probes), to take off what the
    // chains are charged.
    let idle_from = (net.carried(), Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_per_sec = (net.carried() - idle_from.0) as f64 / idle_from.1.elapsed().as_secs_f64();
    println!("\n## chains across an edge and a cloud node, 20 ms apart, placed by Weft");
    println!(
        "{rounds} rounds × {n} chains per model and length, entering at the edge; \
         round trips to the stores measured: edge {:?}, cloud {:?} µs\n",
        net.edge.c.store_rtts(),
        net.cloud.c.store_rtts()
    );
    let mut p50 = ByChain::new();
    let mut cloud_steps = ByChain::new();
    let mut link_bytes = ByChain::new();
    for _ in 0..rounds {
        for len in LENGTHS {
            for model in MODELS {
                let mut ms = Vec::new();
                let before = runs(&net.cloud, model);
                let carried_from = (net.carried(), Instant::now());
                for _ in 0..n {
                    let carried = if model == StateModel::Client {
                        sealed.remove(&len).flatten()
                    } else {
                        None
                    };
                    let (t, back) = chain(model, len, carried).await?;
                    if model == StateModel::Client {
                        sealed.insert(len, back);
                    }
                    ms.push(t);
                }
                let in_cloud = (runs(&net.cloud, model) - before) as f64 / n as f64;
                let idle = idle_per_sec * carried_from.1.elapsed().as_secs_f64();
                let crossed = (net.carried() - carried_from.0) as f64 - idle;
                let key = (model.as_str().to_string(), len);
                p50.entry(key.clone())
                    .or_default()
                    .push(quantile(&mut ms, 0.5));
                cloud_steps.entry(key.clone()).or_default().push(in_cloud);
                link_bytes
                    .entry(key)
                    .or_default()
                    .push((crossed / n as f64).max(0.0));
            }
        }
    }
    table("steps run in the cloud per chain", &p50, &cloud_steps, 1);
    println!(
        "\nbytes over the edge–cloud link per chain (NATS framing included, less the link's idle {idle_per_sec:.0} B/s):"
    );
    table("bytes over the link per chain", &p50, &link_bytes, 0);
    net.close().await;
    Ok(())
}
