//! `colocation`: a 5-step workflow passing 1 MiB intermediates, driven at
//! the edge, across an emulated 20 ms edge–cloud link: each step placed by
//! Weft (the router weighs moving the step's input against the nodes'
//! queues) against every step pinned to the edge and every step pinned to
//! the cloud.
//!
//! Topology as in `continuum`: `edge` on a leaf `nats-server`, `cloud` on
//! the hub, 10 ms each way between them. The run is driven at the edge
//! (its journal in the edge's embedded store), so a step in the cloud moves
//! its 1 MiB input there and its 1 MiB output back. The guest `relay` works
//! 20 ms and answers its input; 4 instances of it at once per node. Runs
//! one at a time (an idle edge), then 8 at once (more steps than the edge
//! runs at once: moving some against the queue may pay).

use crate::continuum::Linked;
use crate::node::{self, median, quantile, spread};
use anyhow::Result;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use weft_manifest::{
    FunctionSpec, Name, NodeConfig, PlacementSpec, StepDecl, StepSpec, WorkflowSpec,
};
use weft_workflow::Workflows;

const ONE_WAY: Duration = Duration::from_millis(10);
const MIB: usize = 1 << 20;

/// (workflow, its steps' function, as shown).
const VARIANTS: [(&str, &str, &str); 3] = [
    ("all-edge", "relay-edge", "all-edge"),
    ("all-cloud", "relay-cloud", "all-cloud"),
    ("weft", "relay", "Weft"),
];

fn pipeline(function: &str) -> Result<WorkflowSpec> {
    let steps = (0..5)
        .map(|i| {
            Ok(StepDecl::Step(Box::new(StepSpec {
                name: Some(Name::new(&format!("s{i}"))?),
                ..StepSpec::new(Name::new(function)?)
            })))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(WorkflowSpec {
        steps,
        ..WorkflowSpec::sequence(&[])
    })
}

/// A run from start to end: its wall time in ms and how many of its steps
/// ran in the cloud.
async fn run_once(wf: &Arc<Workflows>, workflow: &str, input: Bytes) -> Result<(f64, usize)> {
    let (v, took) = crate::workflow::run_to_end(wf, workflow, input).await?;
    let far = v.steps.iter().filter(|s| s.node == "cloud").count();
    Ok((took.as_secs_f64() * 1e3, far))
}

pub(crate) async fn run(quick: bool) -> Result<()> {
    let (rounds, per_round) = if quick { (2, 4) } else { (3, 10) };
    let net = Linked::start(ONE_WAY, NodeConfig::default()).await?;
    let relay = node::guest("relay")?;
    let spec = |tier: Option<&str>| FunctionSpec {
        max_concurrency: Some(4),
        max_queue: Some(1_000),
        config: [("work_ms".to_string(), "20".to_string())].into(),
        placement: tier.map(|t| PlacementSpec {
            tier: vec![t.to_string()],
            ..PlacementSpec::default()
        }),
        ..FunctionSpec::default()
    };
    for (name, tier) in [
        ("relay", None),
        ("relay-edge", Some("edge")),
        ("relay-cloud", Some("cloud")),
    ] {
        net.edge.deploy(name, relay.clone(), spec(tier)).await?;
    }
    net.ready("relay-cloud").await?;
    net.ready("relay").await?;
    let wf = Workflows::start(net.edge.r.clone()).await?;
    for (workflow, function, _) in VARIANTS {
        wf.deploy(workflow, pipeline(function)?).await?;
    }
    let input = Bytes::from(vec![b'x'; MIB]);
    // Warm: every variant once, so that both nodes have compiled the guest
    // and learned its execution time.
    for _ in 0..2 {
        for (workflow, _, _) in VARIANTS {
            run_once(&wf, workflow, input.clone()).await?;
        }
    }

    println!(
        "\n## colocation: a 5-step workflow of 1 MiB intermediates driven at the edge, 20 ms RTT to the cloud, `relay` works 20 ms, 4 at once per node"
    );
    println!("{rounds} rounds of {per_round} runs per variant, interleaved\n");
    println!(
        "| runs at once | placement | run p50 ms: median of rounds (min–max) | run p90 ms | steps in the cloud |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for at_once in [1usize, 8] {
        let mut p50s = vec![Vec::new(); VARIANTS.len()];
        let mut p90s = vec![Vec::new(); VARIANTS.len()];
        let mut far = vec![(0usize, 0usize); VARIANTS.len()];
        for round in 0..rounds {
            for (v, (workflow, _, _)) in VARIANTS.iter().enumerate() {
                eprintln!(
                    "colocation: {at_once} at once, round {}/{rounds}, {workflow}",
                    round + 1
                );
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..at_once {
                    let (wf, input) = (wf.clone(), input.clone());
                    tasks.spawn(async move {
                        let mut out = Vec::new();
                        for _ in 0..per_round {
                            out.push(run_once(&wf, workflow, input.clone()).await?);
                        }
                        anyhow::Ok(out)
                    });
                }
                let mut times = Vec::new();
                while let Some(r) = tasks.join_next().await {
                    for (ms, cloud) in r?? {
                        times.push(ms);
                        far[v].0 += cloud;
                        far[v].1 += 5;
                    }
                }
                p50s[v].push(quantile(&mut times, 0.5));
                p90s[v].push(quantile(&mut times, 0.9));
            }
        }
        for (v, (_, _, shown)) in VARIANTS.iter().enumerate() {
            let (lo, hi) = spread(&p50s[v]);
            println!(
                "| {at_once} | {shown} | {:.0} ({lo:.0}–{hi:.0}) | {:.0} | {:.0} % |",
                median(p50s[v].clone()),
                median(p90s[v].clone()),
                100.0 * far[v].0 as f64 / far[v].1.max(1) as f64
            );
        }
    }
    net.close().await;
    Ok(())
}
