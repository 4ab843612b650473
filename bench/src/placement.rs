//! `placement`: the cost of one `weft_sched::place` decision on a synthetic
//! continuum of 1,000 nodes and 1,000 functions.
//!
//! The view: 50 sites of 12 edge nodes and 2 devices each, 200 fog and 100
//! cloud nodes; `site` and `arch` labels; round trips from the deciding node
//! (the first edge node of site 0) by distance: in-site 0.3–1.5 ms, other
//! sites 8–15 ms, fog 3–8 ms, cloud 15–40 ms; 1 % of links unknown, 2 % of
//! nodes down, random load, ~20 warm functions per node, a store per site
//! plus `objects` in the cloud, and learned execution times for ~10 % of the
//! (function, node) pairs. Every value comes from a fixed LCG, so each run
//! measures the same decisions.
//!
//! Two paths, each timed per call (`Instant` around one `place`): the full
//! scan (the local node is overloaded, so every node is filtered and those
//! that can still win are scored) and the local fast path (the local node is
//! idle). The requests draw a random function each (so its learned times are
//! rarely in cache), payloads up to 2.2 MB, and a mix of requirements.

use std::hint::black_box;
use std::time::Instant;
use weft_sched::{
    Estimate, Index, NodeView, Privacy, Reason, Request, Requirements, Tier, View, place_in,
};

const NODES: usize = 1_000;
const FUNCTIONS: usize = 1_000;
const SITES: usize = 50;

/// Knuth's MMIX LCG; the high bits are the output.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }

    /// Uniform-ish in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + u64::from(self.next()) % (hi - lo).max(1)
    }

    /// True with probability `pct` %.
    fn pct(&mut self, pct: u32) -> bool {
        self.next() % 100 < pct
    }
}

fn function(i: usize) -> String {
    format!("fn-{i:04}")
}

/// The synthetic view; the local node, `s00-edge-00` (x86_64), is first.
fn view(rng: &mut Lcg) -> View {
    const MB: u64 = 1_000_000;
    let mut nodes = Vec::with_capacity(NODES);
    for s in 0..SITES {
        for i in 0..14 {
            let (tier, name, slots) = if i < 12 {
                (
                    Tier::Edge,
                    format!("s{s:02}-edge-{i:02}"),
                    4 + rng.range(0, 5) as u32,
                )
            } else {
                (
                    Tier::Device,
                    format!("s{s:02}-dev-{}", i - 12),
                    1 + rng.range(0, 2) as u32,
                )
            };
            let rtt = if s == 0 {
                rng.range(300, 1_500)
            } else {
                rng.range(8_000, 15_000)
            };
            let bw = if s == 0 { 100 * MB } else { 20 * MB };
            let mut n = NodeView::new(name, tier, slots)
                .label("site", format!("s{s:02}"))
                .label(
                    "arch",
                    if i == 0 || rng.pct(60) {
                        "x86_64"
                    } else {
                        "aarch64"
                    },
                )
                .link(rtt, bw);
            n.stores.insert(format!("kv-s{s:02}"));
            nodes.push(n);
        }
    }
    for i in 0..200 {
        nodes.push(
            NodeView::new(format!("fog-{i:03}"), Tier::Fog, 16)
                .label("arch", "x86_64")
                .link(rng.range(3_000, 8_000), 50 * MB),
        );
    }
    for i in 0..100 {
        let mut n = NodeView::new(format!("cloud-{i:03}"), Tier::Cloud, 64)
            .label("arch", if i % 2 == 0 { "x86_64" } else { "aarch64" })
            .link(rng.range(15_000, 40_000), 25 * MB);
        n.cost = 0.3;
        n.stores.insert("objects".into());
        nodes.push(n);
    }
    assert_eq!(nodes.len(), NODES);
    for (i, n) in nodes.iter_mut().enumerate() {
        if i == 0 {
            n.rtt_us = Some(0);
            continue;
        }
        if rng.pct(1) {
            n.rtt_us = None;
            n.bandwidth_bps = None;
        }
        n.up = !rng.pct(2);
        n.inflight = rng.range(0, u64::from(n.slots) + 1) as u32;
        n.queued = if rng.pct(10) {
            rng.range(1, 4) as u32
        } else {
            0
        };
        for _ in 0..20 {
            n.warm
                .insert(function(rng.range(0, FUNCTIONS as u64) as usize));
        }
    }
    let mut v = View {
        local: nodes[0].name.clone(),
        nodes,
        ..View::default()
    };
    // ~10 % of the (function, node) pairs learned: 100 nodes per function.
    for f in 0..FUNCTIONS {
        let name = function(f);
        let base = rng.range(500, 50_000) as f64;
        for _ in 0..NODES / 10 {
            let n = &v.nodes[rng.range(0, NODES as u64) as usize];
            let speed = match n.tier {
                Tier::Cloud => 0.3,
                Tier::Fog => 0.6,
                _ => 1.0,
            };
            let mean_us = base * speed * (0.8 + rng.range(0, 40) as f64 / 100.0);
            v.exec.insert(
                &name,
                &n.name,
                Estimate {
                    mean_us,
                    samples: rng.range(1, 200),
                },
            );
        }
    }
    v
}

/// The requirement mixes, one request in nine each (the first three times).
const MIXES: [&str; 7] = [
    "none",
    "tiers edge or fog",
    "label arch = x86_64",
    "privacy site",
    "near `objects` (cloud only), 30 ms target",
    "price weight 0.5, 50 ms target",
    "declares store `kv-s01` (one remote site)",
];

/// The mix of the `i`-th request: 0, 0, 0, 1, 2, 3, 4, 5, 6, then again.
fn mix(i: usize) -> usize {
    (i % 9).saturating_sub(2)
}

/// `n` requests over the functions, with a mix of requirements.
fn requests(rng: &mut Lcg, local: &str, n: usize) -> Vec<Request> {
    (0..n)
        .map(|i| {
            let mut r = Request::new(function(rng.range(0, FUNCTIONS as u64) as usize), local);
            r.bytes_in = rng.range(100, 2_000_000);
            r.bytes_out = rng.range(100, 200_000);
            r.requirements = match mix(i) {
                0 => Requirements::default(),
                1 => Requirements {
                    tiers: vec![Tier::Edge, Tier::Fog],
                    ..Requirements::default()
                },
                2 => Requirements {
                    labels: [("arch".to_string(), "x86_64".to_string())].into(),
                    ..Requirements::default()
                },
                3 => Requirements {
                    privacy: Privacy::Site,
                    ..Requirements::default()
                },
                4 => Requirements {
                    near: vec!["objects".into()],
                    latency_ms: Some(30),
                    ..Requirements::default()
                },
                5 => Requirements {
                    cost_weight: 0.5,
                    latency_ms: Some(50),
                    ..Requirements::default()
                },
                _ => Requirements {
                    stores: vec!["kv-s01".into()],
                    ..Requirements::default()
                },
            };
            if rng.pct(5) {
                r.exclude.insert(format!("fog-{:03}", rng.range(0, 200)));
            }
            r
        })
        .collect()
}

struct Timed {
    p50: f64,
    p99: f64,
    max: f64,
    /// Mean eligible nodes per decision.
    considered: f64,
    /// Decisions that were not the fast path.
    scanned: usize,
}

/// Times `place_in` on each request over the index of `view` (built once,
/// as a node keeps one), after a warm-up round of up to 1,000.
fn time(view: &View, reqs: &[Request]) -> anyhow::Result<Timed> {
    let index = Index::new(view);
    for r in reqs.iter().take(1_000) {
        black_box(place_in(black_box(&index), black_box(r), None)?);
    }
    let mut us = Vec::with_capacity(reqs.len());
    let mut considered = 0u64;
    let mut scanned = 0;
    for r in reqs {
        let t = Instant::now();
        let d = place_in(black_box(&index), black_box(r), None);
        let dt = t.elapsed();
        let d = black_box(d)?;
        us.push(dt.as_nanos() as f64 / 1_000.0);
        considered += u64::from(d.considered);
        scanned += usize::from(d.reason != Reason::Local);
    }
    let max = us.iter().copied().fold(0.0, f64::max);
    Ok(Timed {
        p50: crate::node::quantile(&mut us, 0.5),
        p99: crate::node::quantile(&mut us, 0.99),
        max,
        considered: considered as f64 / reqs.len().max(1) as f64,
        scanned,
    })
}

/// Herding: a burst of decisions between two heartbeats. The deciding edge
/// node is full; four cloud peers of 8 slots each are idle by their last
/// beat, at 5 to 8 ms. Without accounting, every decision of the burst sees
/// the same idle peers and picks the same one; with it (what the router
/// does: `Index::add_inflight` for each call sent), the burst spreads. In
/// both, the edge's own load grows with what it keeps, as a node's live
/// load does.
fn burst() {
    let mut nodes = vec![
        NodeView::new("edge", Tier::Edge, 4)
            .link(0, 1_000_000_000)
            .load(4, 4),
    ];
    for (i, rtt) in [5_000u64, 6_000, 7_000, 8_000].into_iter().enumerate() {
        nodes.push(NodeView::new(format!("cloud-{i}"), Tier::Cloud, 8).link(rtt, 100_000_000));
    }
    let view = View {
        local: "edge".into(),
        nodes,
        ..View::default()
    };
    let mut req = Request::new("resize", "edge");
    req.bytes_in = 10_000;
    const BURST: usize = 48;
    println!();
    println!(
        "Herding: a burst of {BURST} decisions between two heartbeats (edge full; 4 idle cloud peers of 8 slots, 5-8 ms away):"
    );
    println!();
    println!("| accounting | cloud-0 | cloud-1 | cloud-2 | cloud-3 | edge | largest share |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (label, count_sent) in [
        ("none (heartbeat-old load)", false),
        ("sent work counted until the next beat", true),
    ] {
        let mut index = Index::new(&view);
        let mut landed = std::collections::BTreeMap::<String, usize>::new();
        for _ in 0..BURST {
            let Ok(d) = place_in(&index, &req, None) else {
                continue;
            };
            // The node's own load is read live (what it admitted or
            // queued counts at once); a peer's only with the accounting.
            if d.local || count_sent {
                index.add_inflight(&d.node, 1);
            }
            *landed.entry(d.node).or_default() += 1;
        }
        let get = |n: &str| landed.get(n).copied().unwrap_or(0);
        let max = landed.values().copied().max().unwrap_or(0);
        println!(
            "| {label} | {} | {} | {} | {} | {} | {:.0} % |",
            get("cloud-0"),
            get("cloud-1"),
            get("cloud-2"),
            get("cloud-3"),
            get("edge"),
            100.0 * max as f64 / BURST as f64
        );
    }
}

pub(crate) fn run(quick: bool) -> anyhow::Result<()> {
    let n = if quick { 2_000 } else { 20_000 };
    let mut rng = Lcg(0x00c0_ffee);
    let mut view = view(&mut rng);
    let reqs = requests(&mut rng, &view.local.clone(), n);
    let learned: usize = (0..FUNCTIONS)
        .map(|f| {
            let name = function(f);
            view.nodes
                .iter()
                .filter(|x| view.exec.estimate(&name, &x.name).is_some())
                .count()
        })
        .sum();

    // Full scans: the local node is busy and has work waiting.
    let local = &mut view.nodes[0];
    local.inflight = local.slots;
    local.queued = 2;
    let scan = time(&view, &reqs)?;
    let mut by_mix = Vec::new();
    for (m, name) in MIXES.iter().enumerate() {
        let some: Vec<Request> = reqs
            .iter()
            .enumerate()
            .filter(|(i, _)| mix(*i) == m)
            .map(|(_, r)| r.clone())
            .collect();
        by_mix.push((*name, some.len(), time(&view, &some)?));
    }
    // The same, with the nodes in reverse order: the far nodes come first,
    // so fewer are cut short, and the local node is found last.
    let mut reversed = view.clone();
    reversed.nodes.reverse();
    let scan_reversed = time(&reversed, &reqs)?;
    // The fast path: the local node is idle.
    let local = &mut view.nodes[0];
    local.inflight = 0;
    local.queued = 0;
    let fast = time(&view, &reqs)?;
    // What keeping the index costs: building it from the view, and one
    // node's heartbeat (its row replaced).
    let rounds = if quick { 20 } else { 100 };
    let mut build = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        black_box(Index::new(black_box(&view)));
        build.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut index = Index::new(&view);
    let mut beat = Vec::new();
    for i in 0..n {
        let node = &view.nodes[1 + i % (NODES - 1)];
        let t = Instant::now();
        black_box(index.upsert(black_box(node)));
        beat.push(t.elapsed().as_nanos() as f64 / 1_000.0);
    }

    println!();
    println!(
        "## Placement (`weft_sched::place_in` over an `Index`; {NODES} nodes, {FUNCTIONS} functions, {learned} learned times; µs per decision)"
    );
    println!();
    println!("| path | decisions | full scans | eligible (mean) | p50 | p99 | max |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (name, t) in [
        ("full scan (local overloaded)", &scan),
        ("full scan, nodes in reverse order", &scan_reversed),
        ("local fast path (local idle)", &fast),
    ] {
        println!(
            "| {name} | {n} | {} | {:.0} | {:.2} | {:.2} | {:.1} |",
            t.scanned, t.considered, t.p50, t.p99, t.max
        );
    }
    println!();
    println!("Full scan by requirement (local overloaded):");
    println!();
    println!("| requirements | decisions | eligible (mean) | p50 | p99 |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, count, t) in &by_mix {
        println!(
            "| {name} | {count} | {:.0} | {:.2} | {:.2} |",
            t.considered, t.p50, t.p99
        );
    }
    println!();
    println!(
        "Keeping the index: built from the view in {:.2} ms (p50 of {rounds}); one heartbeat (a row replaced) {:.2} µs p50, {:.2} µs p99.",
        crate::node::quantile(&mut build, 0.5),
        crate::node::quantile(&mut beat, 0.5),
        crate::node::quantile(&mut beat, 0.99)
    );
    burst();
    println!();
    println!(
        "5 % of requests exclude a fog node. The fast path's tail is the `near` mix: the local node lacks `objects`, so the nearest node serving it is looked up."
    );
    Ok(())
}
