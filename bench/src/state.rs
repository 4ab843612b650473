//! `state`: what a stateful invocation costs on one node, by state model,
//! against the same guest invoked without state, side by side in one run.
//!
//! The guest (`bench/guests/rust/src/bin/state-count.rs`) is deployed four
//! times: without state (the baseline, asked to touch nothing), and under
//! `edge` (the node's embedded store: every write a durable commit),
//! `function` (an actor: a read needs no write, a change is one checkpoint)
//! and `client` (the state sealed into the response and sent back). Each
//! round invokes each variant `n` times in turn, sequentially, through the
//! router; per variant the p50 per invocation, and its ratio to the
//! baseline of the same round. Then the checkpoint of an actor holding
//! 1 MiB: a turn that changes it, against one that only reads it.

use crate::node::{self, Node, median, quantile, spread};
use anyhow::{Context as _, Result, ensure};
use bytes::Bytes;
use std::time::Instant;
use weft_manifest::{FunctionSpec, NodeConfig, StateModel, StateSpec};
use weft_router::{Request, Trigger};

/// One variant: the function, what it is asked, and its label.
struct Variant {
    name: &'static str,
    ask: &'static str,
    label: &'static str,
}

const VARIANTS: &[Variant] = &[
    Variant {
        name: "plain",
        ask: "none",
        label: "stateless (baseline)",
    },
    Variant {
        name: "edge",
        ask: "count",
        label: "edge: increment (embedded store)",
    },
    Variant {
        name: "actor",
        ask: "read",
        label: "function: read (no checkpoint)",
    },
    Variant {
        name: "actor",
        ask: "count",
        label: "function: increment (checkpoint)",
    },
    Variant {
        name: "client",
        ask: "count",
        label: "client: increment (sealed both ways)",
    },
];

/// One invocation of `name` for key `k`, carrying `sealed` (client
/// state); returns the state that came back.
async fn call(node: &Node, name: &str, ask: &str, sealed: Option<&str>) -> Result<Option<String>> {
    let req = node::keyed(name, sealed, Bytes::from(ask.to_string()))?;
    let c = node.r.invoke(req).await?.collect().await?;
    ensure!(c.status.is_success(), "{name} {ask}: {}", c.status);
    Ok(c.headers
        .get("x-weft-state")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string))
}

pub(crate) async fn run(quick: bool) -> Result<()> {
    let (rounds, n) = if quick { (3, 100) } else { (3, 400) };
    let node = Node::open(NodeConfig {
        state: weft_manifest::StateConfig {
            max_client_state: Some(weft_manifest::ByteSize(1 << 20)),
            ..Default::default()
        },
        ..NodeConfig::default()
    })
    .await?;
    let wasm = node::guest("state-count")?;
    let with = |model| FunctionSpec {
        state: Some(StateSpec {
            model,
            key: None,
            bucket: None,
        }),
        ..Default::default()
    };
    node.deploy("plain", wasm.clone(), FunctionSpec::default())
        .await?;
    node.deploy("edge", wasm.clone(), with(StateModel::Edge))
        .await?;
    node.deploy("actor", wasm.clone(), with(StateModel::Function))
        .await?;
    node.deploy("client", wasm, with(StateModel::Client))
        .await?;
    let mut sealed: Option<String> = None;
    // Warm: code, store, actor.
    for v in VARIANTS {
        for _ in 0..20 {
            let back = call(&node, v.name, v.ask, sealed.as_deref()).await?;
            if v.name == "client" {
                sealed = back;
            }
        }
    }
    println!("\n## state: invocation cost by state model, one node (p50 µs; ratio to stateless)");
    println!("{rounds} rounds × {n} sequential invocations per variant, interleaved\n");
    let mut p50s: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    for _ in 0..rounds {
        let mut round = Vec::new();
        for v in VARIANTS {
            let mut us = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                let back = call(&node, v.name, v.ask, sealed.as_deref()).await?;
                us.push(t.elapsed().as_secs_f64() * 1e6);
                if v.name == "client" {
                    sealed = back;
                }
            }
            round.push(quantile(&mut us, 0.5));
        }
        for (i, p) in round.iter().enumerate() {
            p50s[i].push(*p);
            ratios[i].push(p / round[0]);
        }
    }
    println!("| variant | p50 µs (median of rounds) | ratio to stateless: median (min–max) |");
    println!("| --- | --- | --- |");
    for (i, v) in VARIANTS.iter().enumerate() {
        let (lo, hi) = spread(&ratios[i]);
        println!(
            "| {} | {:.0} | {:.2}× ({lo:.2}–{hi:.2}) |",
            v.label,
            median(p50s[i].clone()),
            median(ratios[i].clone())
        );
    }
    let floor = node::redb_commit_us(node.dir.path(), 200)?;
    println!("\nfloor: one durable redb commit of a small row on this disk: {floor:.0} µs");

    // An actor holding 1 MiB: what a checkpoint of it costs.
    let mut big = Request::new("actor", Trigger::Cli).with_body(Bytes::from("fill 1048576"));
    big.state_key = Some("big".to_string());
    node.r
        .invoke(big)
        .await?
        .collect()
        .await
        .context("filling")?;
    let turn = |ask: &'static str| {
        let node = &node;
        async move {
            let mut us = Vec::new();
            for _ in 0..if quick { 20 } else { 60 } {
                let mut req = Request::new("actor", Trigger::Cli).with_body(Bytes::from(ask));
                req.state_key = Some("big".to_string());
                let t = Instant::now();
                node.r.invoke(req).await?.collect().await?;
                us.push(t.elapsed().as_secs_f64() * 1e6);
            }
            anyhow::Ok(quantile(&mut us, 0.5))
        }
    };
    let mut rows = Vec::new();
    for _ in 0..rounds {
        let read = turn("read").await?;
        let write = turn("count").await?;
        rows.push((read, write));
    }
    let reads: Vec<f64> = rows.iter().map(|r| r.0).collect();
    let writes: Vec<f64> = rows.iter().map(|r| r.1).collect();
    let costs: Vec<f64> = rows.iter().map(|(r, w)| w - r).collect();
    let (lo, hi) = spread(&costs);
    println!(
        "\nactor holding 1 MiB: read turn p50 {:.0} µs, changing turn p50 {:.0} µs: checkpoint ≈ {:.0} µs (rounds {lo:.0}–{hi:.0})",
        median(reads),
        median(writes),
        median(costs.clone())
    );
    node.close().await;
    Ok(())
}
