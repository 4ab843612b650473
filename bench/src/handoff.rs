//! `handoff`: urgent work at an edge node loaded with slow work, across an
//! emulated edge–cloud link, with the edge handing off what it cannot finish
//! by its deadline (slack) against Load+net placement alone.
//!
//! Topology, all on loopback, as `continuum`: a hub `nats-server` with the
//! `cloud` node; a leaf with the `edge` node, joined through a delay proxy
//! adding `ONE_WAY` each way. Each node has one worker (`workers = 1`), so
//! the two nodes' guests take at most the machine's two cores.
//!
//! * `urgent`: fib(`URGENT_N`), CPU-bound, with a deadline of `DEADLINE`,
//!   its profile warmed with 16 runs on each node. Offered open-loop at the
//!   edge (Poisson arrivals) at 80 % of the edge worker's capacity for it,
//!   from its measured p50.
//! * `slow`: fib(`SLOW_N`) with no deadline (ordered by its 60 s timeout),
//!   pinned to the edge, one caller back to back: the edge's slow work.
//!
//! Modes, each on freshly started nodes:
//! * **Load+net** — `unmeetable = "run"`: the edge runs what it admits, and
//!   placement is the scorer's (local while it has a free slot).
//! * **slack hand-off** — the default, `unmeetable = "refuse"`: what the
//!   edge cannot finish in time goes to the cloud if the cloud has slack,
//!   else it is refused (counted as a miss here).
//!
//! A miss is an urgent invocation whose response did not start within its
//! deadline, or that was refused or failed.

use crate::continuum::Linked;
use crate::node::{self, Node, quantile};
use anyhow::Result;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft_manifest::{FunctionSpec, HumanDuration, NodeConfig, PlacementSpec, Unmeetable};

const ONE_WAY: Duration = Duration::from_millis(5);
const DEADLINE: Duration = Duration::from_millis(25);
const URGENT_N: &str = "27";
const SLOW_N: &str = "32";
const LOAD: f64 = 0.8;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    LoadNet,
    Handoff,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::LoadNet => "Load+net",
            Mode::Handoff => "slack hand-off",
        }
    }
}

/// What one run of one mode gave.
#[derive(Default, Debug)]
struct Outcome {
    sent: usize,
    met: usize,
    missed: usize,
    refused: usize,
    failed: usize,
    handed_off: usize,
    handed_off_met: usize,
    latencies_ms: Vec<f64>,
    slow_done: usize,
}

impl Outcome {
    fn misses(&self) -> usize {
        self.missed + self.refused + self.failed
    }
    fn miss_rate(&self) -> f64 {
        self.misses() as f64 / self.sent.max(1) as f64
    }
}

/// A small xorshift generator: exponential inter-arrival times.
struct Arrivals(u64);

impl Arrivals {
    fn next_gap(&mut self, mean: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let u = ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        mean.mul_f64(-u.ln())
    }
}

/// fib(`URGENT_N`)'s p50 alone on a node of one worker (the least of
/// three), ms: what the offered load is a share of.
async fn calibrate() -> Result<f64> {
    let node = Node::open(NodeConfig {
        workers: Some(1),
        ..NodeConfig::default()
    })
    .await?;
    node.deploy("urgent", node::guest("fib")?, FunctionSpec::default())
        .await?;
    for _ in 0..16 {
        node.invoke("urgent", URGENT_N).await?;
    }
    // The least of three medians: this machine's noise only ever adds.
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let mut took = Vec::new();
        for _ in 0..100 {
            let t = Instant::now();
            node.invoke("urgent", URGENT_N).await?;
            took.push(t.elapsed().as_secs_f64() * 1e3);
        }
        best = best.min(quantile(&mut took, 0.5));
    }
    node.close().await;
    Ok(best)
}

async fn one(mode: Mode, seconds: u64, seed: u64, service: f64) -> Result<Outcome> {
    let config = NodeConfig {
        workers: Some(1),
        unmeetable: match mode {
            Mode::LoadNet => Unmeetable::Run,
            Mode::Handoff => Unmeetable::Refuse,
        },
        ..NodeConfig::default()
    };
    let net = Linked::start(ONE_WAY, config).await?;
    let (edge, cloud) = (&net.edge, &net.cloud);
    let fib = node::guest("fib")?;
    edge.deploy(
        "urgent",
        fib.clone(),
        FunctionSpec {
            deadline: Some(HumanDuration(DEADLINE)),
            max_concurrency: Some(1_000),
            max_queue: Some(10_000),
            ..FunctionSpec::default()
        },
    )
    .await?;
    edge.deploy(
        "slow",
        fib,
        FunctionSpec {
            placement: Some(PlacementSpec {
                tier: vec!["edge".into()],
                ..PlacementSpec::default()
            }),
            ..FunctionSpec::default()
        },
    )
    .await?;
    net.ready("urgent").await?;
    // Profiles warmed on both nodes (16 runs each, as Sledge does).
    for _ in 0..16 {
        edge.invoke("urgent", URGENT_N).await?;
        cloud.invoke("urgent", URGENT_N).await?;
    }
    // The cloud's profile reaches the edge with its next heartbeats.
    tokio::time::sleep(Duration::from_millis(600)).await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow = {
        let (r, stop) = (edge.r.clone(), stop.clone());
        tokio::spawn(async move {
            let mut done = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if node::invoke(&r, "slow", Bytes::from_static(SLOW_N.as_bytes()))
                    .await
                    .is_ok()
                {
                    done += 1;
                }
            }
            done
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mean_gap = Duration::from_secs_f64(service / 1000.0 / LOAD);
    let mut arrivals = Arrivals(seed | 1);
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut next = Instant::now();
    let mut calls = Vec::new();
    while next < end {
        tokio::time::sleep_until(next.into()).await;
        let r = edge.r.clone();
        calls.push(tokio::spawn(async move {
            let t = Instant::now();
            let out = node::invoke(&r, "urgent", Bytes::from_static(URGENT_N.as_bytes())).await;
            (out, t.elapsed())
        }));
        next += arrivals.next_gap(mean_gap);
    }
    let mut o = Outcome::default();
    for c in calls {
        let (out, took) = c.await?;
        o.sent += 1;
        match out {
            Ok(c) => {
                o.latencies_ms.push(took.as_secs_f64() * 1e3);
                let handed = c.served.placement == "handed_off";
                o.handed_off += usize::from(handed);
                if c.served.deadline.is_some_and(|d| d.met) {
                    o.met += 1;
                    o.handed_off_met += usize::from(handed);
                } else {
                    o.missed += 1;
                }
            }
            Err(e)
                if e.downcast_ref::<weft_router::Error>()
                    .is_some_and(|e| e.code() == weft_codes::Code::DeadlineUnmeetable) =>
            {
                o.refused += 1
            }
            Err(_) => o.failed += 1,
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    o.slow_done = slow.await?;
    net.close().await;
    Ok(o)
}

pub(crate) async fn run(quick: bool) -> Result<()> {
    let (rounds, seconds) = if quick { (1, 5) } else { (3, 15) };
    let service = calibrate().await?;
    eprintln!("handoff: fib({URGENT_N}) alone takes {service:.2} ms at p50");
    let mut all: Vec<(Mode, Outcome)> = Vec::new();
    for round in 0..rounds {
        for mode in [Mode::LoadNet, Mode::Handoff] {
            eprintln!("handoff: round {}/{rounds}, {}", round + 1, mode.name());
            let seed = 0x9e37_79b9_7f4a_7c15 ^ (round as u64 + 1);
            let o = one(mode, seconds, seed, service).await?;
            eprintln!(
                "  {o:?}",
                o = (o.sent, o.met, o.missed, o.refused, o.failed, o.handed_off)
            );
            all.push((mode, o));
        }
    }
    println!();
    println!(
        "## Hand-off by slack: fib({URGENT_N}) with a {} ms deadline at {:.0} % of the edge worker, beside fib({SLOW_N}) back to back, {} ms RTT to the cloud ({rounds} rounds of {seconds} s)",
        DEADLINE.as_millis(),
        LOAD * 100.0,
        ONE_WAY.as_millis() * 2
    );
    println!();
    println!(
        "| round | placement | urgent sent | met | missed | refused | failed | miss rate | handed off (met) | p50 (ms) | p99 (ms) | slow done |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (i, (mode, o)) in all.iter_mut().enumerate() {
        let (p50, p99) = (
            quantile(&mut o.latencies_ms, 0.5),
            quantile(&mut o.latencies_ms, 0.99),
        );
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.2} % | {:.1} % ({}) | {p50:.1} | {p99:.1} | {} |",
            i / 2 + 1,
            mode.name(),
            o.sent,
            o.met,
            o.missed,
            o.refused,
            o.failed,
            o.miss_rate() * 100.0,
            100.0 * o.handed_off as f64 / o.sent.max(1) as f64,
            o.handed_off_met,
            o.slow_done,
        );
    }
    // Per round, where Load+net missed at all: how many times fewer misses
    // the hand-off had (a round it missed none counts as the misses of
    // Load+net itself, so as one miss).
    let ratios: Vec<String> = all
        .chunks(2)
        .map(|pair| {
            let (base, ours) = (pair[0].1.misses(), pair[1].1.misses());
            match (base, ours) {
                (0, 0) => "no miss either way".to_string(),
                (_, 0) => format!("≥ {base}× (none with hand-off)"),
                _ => format!("{:.2}×", base as f64 / ours as f64),
            }
        })
        .collect();
    println!();
    println!(
        "Misses, Load+net ÷ hand-off, per round: {}.",
        ratios.join("; ")
    );
    Ok(())
}
