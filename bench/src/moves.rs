//! `moves`: the time to move an actor holding 1 MiB of state to its next
//! owner, on loopback and over an emulated 20 ms link.
//!
//! One `nats-server` (JetStream on); two nodes in this process sharing the
//! fabric store `shared` as `[state] function` (the actors' checkpoints):
//! `edge-1`, whose connection to NATS goes through the link, and `edge-2`,
//! direct. The `state-count` guest runs as an actor. Per round, keys that
//! `edge-2` owns are filled with 1 MiB each (16 values of 64 KiB: a value
//! must fit in a NATS message); then `edge-2` leaves the fabric and, once
//! `edge-1` sees it gone, each key's next call through `edge-1` runs there:
//! its first turn loads the actor from the checkpoint (the move), the next
//! one finds it in memory. Move = first turn − warm turn. The floor beside
//! it is the same reads done bare on the same store from the same node (the
//! head, then its 16 records): what the transfer costs over that link.
//! Goal: move ≤ floor + 10 ms.

use crate::continuum::delay_link;
use crate::node::{self, Node, median, spread};
use anyhow::{Context as _, Result, ensure};
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use weft_kv::Bucket as _;
use weft_manifest::{
    FabricConfig, FunctionSpec, KvStoreConfig, Name, NodeConfig, StateModel, StateSpec,
};
use weft_router::{Request, Trigger};

const STATE: usize = 1 << 20;
const PARTS: usize = 16;
const KEYS_PER_ROUND: usize = 3;

/// A node config for `name` at `url` whose actors checkpoint to the
/// fabric store `shared`.
fn config(url: &str, name: &str) -> Result<NodeConfig> {
    let shared = Name::new("shared").map_err(anyhow::Error::msg)?;
    let mut c = NodeConfig {
        fabric: Some(FabricConfig {
            url: Some(url.to_string()),
            name: Some(name.to_string()),
            ..FabricConfig::default()
        }),
        ..NodeConfig::default()
    };
    c.kv.insert(shared.clone(), KvStoreConfig::Fabric {});
    c.state.function = Some(shared);
    Ok(c)
}

/// One call of the actor for `key` through `node`: the node that ran it
/// and the time it took, µs.
async fn call(node: &Node, key: &str, ask: &str) -> Result<(String, f64)> {
    let mut req = Request::new("actor", Trigger::Cli).with_body(Bytes::from(ask.to_string()));
    req.state_key = Some(key.to_string());
    let t = Instant::now();
    let resp = node.r.invoke(req).await?;
    let ran = resp.served.node.clone();
    let c = resp.collect().await?;
    ensure!(c.status.is_success(), "{key} {ask}: {}", c.status);
    Ok((ran, t.elapsed().as_secs_f64() * 1e6))
}

async fn until(what: &str, mut f: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// The bare reads of `key`'s checkpoint from `node`: the head, then every
/// record under it, µs.
async fn floor(node: &Node, key: &str) -> Result<f64> {
    let mesh = node.r.mesh().context("not in a fabric")?;
    let store = weft_mesh::kv_bucket(mesh, "shared");
    let head = format!("ac/actor/{key}/");
    let mut records = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_keys(cursor).await?;
        records.extend(
            page.keys
                .into_iter()
                .filter(|k| k.starts_with(&format!("{head}e/"))),
        );
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let t = Instant::now();
    ensure!(store.get(&head).await?.is_some(), "no head for {key}");
    let got = store.get_many(&records).await?;
    let us = t.elapsed().as_secs_f64() * 1e6;
    let bytes: usize = got.iter().flatten().map(|(_, v)| v.len()).sum();
    ensure!(bytes >= STATE, "{key}: {bytes} bytes of records");
    Ok(us)
}

struct Variant {
    label: &'static str,
    one_way: Duration,
}

pub(crate) async fn run(quick: bool) -> Result<()> {
    let rounds = if quick { 2 } else { 3 };
    println!("\n## moves: moving an actor holding 1 MiB to its next owner");
    println!(
        "{rounds} rounds × {KEYS_PER_ROUND} keys; move = first turn at the new owner − its warm turn; \
         floor = the same reads bare on the store from the same node\n"
    );
    println!(
        "| link to the store | move ms: median (min–max) | floor ms | move − floor ms | warm turn ms |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for v in [
        Variant {
            label: "loopback",
            one_way: Duration::ZERO,
        },
        Variant {
            label: "20 ms round trip",
            one_way: Duration::from_millis(10),
        },
    ] {
        one(&v, rounds).await?;
    }
    Ok(())
}

async fn one(v: &Variant, rounds: usize) -> Result<()> {
    let (nats, _) = node::nats_server(|port, _, dir| {
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\" }}\n",
            dir.join("js").display()
        )
    })?;
    let direct: SocketAddr = format!("127.0.0.1:{}", nats.port).parse()?;
    let far = if v.one_way.is_zero() {
        direct
    } else {
        delay_link(direct, v.one_way).await?
    };
    let tier = weft_sched::Tier::Edge;
    let (far, direct) = (format!("nats://{far}"), format!("nats://{direct}"));
    let a = node::fabric_node_with(&far, "edge-1", tier, config(&far, "edge-1")?).await?;
    let mut moves = Vec::new();
    let mut floors = Vec::new();
    let mut warm = Vec::new();
    for round in 0..rounds {
        let b = node::fabric_node_with(&direct, "edge-2", tier, config(&direct, "edge-2")?).await?;
        if round == 0 {
            let spec = FunctionSpec {
                state: Some(StateSpec {
                    model: StateModel::Function,
                    key: None,
                    bucket: None,
                }),
                ..FunctionSpec::default()
            };
            b.deploy("actor", node::guest("state-count")?, spec).await?;
        }
        let am = a.r.mesh().context("edge-1 joined")?.clone();
        until("edge-1 to see edge-2 and the function", || {
            am.is_up("edge-2") && a.c.function("actor").is_ok()
        })
        .await?;
        // Wait for the placer's view as well (it sweeps the mesh's).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut keys = Vec::new();
        for i in 0.. {
            let key = format!("r{round}-k{i}");
            let (ran, _) = call(&a, &key, &format!("spread {STATE} {PARTS}")).await?;
            if ran == "edge-2" {
                keys.push(key);
                if keys.len() == KEYS_PER_ROUND {
                    break;
                }
            }
            ensure!(i < 200, "edge-2 owns no key");
        }
        // edge-2 leaves: no more beats; edge-1 marks it down.
        b.r.mesh().context("edge-2 joined")?.shutdown().await;
        b.close().await;
        until("edge-1 to see edge-2 gone", || !am.is_up("edge-2")).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        for key in &keys {
            let (ran, first) = call(&a, key, "read").await?;
            ensure!(ran == "edge-1", "{key} ran on {ran}");
            let (_, second) = call(&a, key, "read").await?;
            moves.push((first - second) / 1e3);
            warm.push(second / 1e3);
            floors.push(floor(&a, key).await? / 1e3);
        }
    }
    let over: Vec<f64> = moves.iter().zip(&floors).map(|(m, f)| m - f).collect();
    let (lo, hi) = spread(&moves);
    let (olo, ohi) = spread(&over);
    println!(
        "| {} | {:.1} ({lo:.1}–{hi:.1}) | {:.1} | {:.1} ({olo:.1}–{ohi:.1}) | {:.2} |",
        v.label,
        median(moves.clone()),
        median(floors),
        median(over.clone()),
        median(warm)
    );
    a.close().await;
    drop(nats);
    Ok(())
}
