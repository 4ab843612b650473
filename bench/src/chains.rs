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
//! increments its counter, keeps the request, and calls the next.

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
            if i < STEPS {
                let next = step(model, i + 1);
                spec.calls = vec![Name::new(&next).map_err(anyhow::Error::msg)?];
                spec.config.insert("next".into(), next);
            }
            node.deploy(&step(model, i), wasm.clone(), spec).await?;
        }
    }
    let payload = Bytes::from(vec![b'p'; 64]);
    // One chain: latency, and the state's bytes that crossed a network.
    let chain = |model: StateModel, len: usize, sealed: Option<String>| {
        let (node, payload) = (&node, payload.clone());
        async move {
            let first = step(model, STEPS + 1 - len);
            let sent = sealed.as_ref().map_or(0, String::len);
            let before = moved(node, model).await?;
            let req = node::keyed(&first, sealed.as_deref(), payload)?;
            let t = Instant::now();
            let c = node.r.invoke(req).await?.collect().await?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            ensure!(c.status.is_success(), "{model} ×{len}: {}", c.status);
            let back = c
                .headers
                .get("x-weft-state")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
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
    let mut p50: BTreeMap<(String, usize), Vec<f64>> = BTreeMap::new();
    let mut bytes: BTreeMap<(String, usize), Vec<f64>> = BTreeMap::new();
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
    println!(
        "| model | steps | p50 ms (median of rounds, min–max) | state bytes over a network per chain |"
    );
    println!("| --- | --- | --- | --- |");
    for len in LENGTHS {
        for model in MODELS {
            let key = (model.as_str().to_string(), len);
            let (lo, hi) = spread(&p50[&key]);
            println!(
                "| {} | {len} | {:.2} ({lo:.2}–{hi:.2}) | {:.0} |",
                model.as_str(),
                median(p50[&key].clone()),
                median(bytes[&key].clone())
            );
        }
    }
    node.close().await;
    Ok(())
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
