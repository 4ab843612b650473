//! The policies the simulator ships: seed 003's two, with the world's true
//! load, and Weft's own, the production `weft-sched` deciding over what a
//! node would know.
//!
//! - [`Load`]: the node where the step would finish processing first,
//!   `ops × (load + 1) / speed`, `load` counting the steps running and
//!   waiting there (seed 003's `ProcOnly`, with the load of the moment
//!   instead of the replication's total).
//! - [`LoadNet`]: the same plus the time the step's argument, output and
//!   state take to move ([`World::moves`]: what the world will charge).
//! - [`Weft`]: [`weft_sched::place_in`], as the router calls it. Each
//!   client decides for its chains over its own [`weft_sched::Index`],
//!   built from the topology as a node's heartbeats would fill it: one row
//!   per node, its round trip the route's propagation delay there and back
//!   (0 on the seed's topologies, which have none) and its bandwidth the
//!   route's (bytes per second from the client), every function warm; the cloud store as a node without
//!   slots that serves the `external` store at twice the cloud's latency;
//!   the central node serving the `edge` store. Loads and learned
//!   execution times reach the other clients' indices at each heartbeat
//!   ([`Config::heartbeat`]): the times as one table all indices share
//!   (`Index::share_learned`), the loads row by row; a client counts what
//!   it sent itself at once (`add_inflight`) until it is answered
//!   (`sub_inflight`), as the router's placer does, and knows its own load
//!   and times exactly (the `Local` it decides with). The
//!   state term is the router's: `external` and `edge` a home with its
//!   trips and bytes, `function` an actor's key (its owner by rendezvous
//!   hashing), `client` the state in the request's bytes.
//!
//! Ties break by node name in all three.
//!
//! [`Config::heartbeat`]: crate::continuum::Config::heartbeat

use crate::continuum::{Placing, Policy, World};
use crate::des::Nanos;
use crate::seed003::Model;
use weft_sched::{
    ExecTable, Index, Local, NodeView, Request, StateUse, Tier, View, place_in, slack_us,
};

/// Seed 003's Load: processing time only.
#[derive(Debug, Default, Clone, Copy)]
pub struct Load;

/// Seed 003's Load+net: processing plus what the step moves.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoadNet;

/// The first node by name of least `cost`, but those `p` tried.
fn cheapest(world: &World<'_>, p: &Placing<'_>, cost: impl Fn(usize) -> f64) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for &x in world.by_name().iter().filter(|x| !p.tried.contains(x)) {
        let c = cost(x);
        if best.is_none_or(|(_, b)| c < b) {
            best = Some((x, c));
        }
    }
    best.map(|(x, _)| x)
}

/// Seconds to process `p` on `x` behind the steps already there.
fn processing(world: &World<'_>, p: &Placing<'_>, x: usize) -> f64 {
    let (running, waiting) = world.load(x);
    p.step.ops as f64 * f64::from(running + waiting + 1) / world.topology().nodes()[x].speed
}

impl Policy for Load {
    fn name(&self) -> &str {
        "load"
    }

    fn place(&mut self, world: &World<'_>, p: &Placing<'_>) -> Option<usize> {
        cheapest(world, p, |x| processing(world, p, x))
    }
}

impl Policy for LoadNet {
    fn name(&self) -> &str {
        "load+net"
    }

    fn place(&mut self, world: &World<'_>, p: &Placing<'_>) -> Option<usize> {
        cheapest(world, p, |x| {
            let m = world.moves(p, x);
            processing(world, p, x) + (m.before() + m.after()) as f64 * 1e-9
        })
    }
}

/// The name of the cloud store's node in Weft's indices: no topology node
/// has a space in its name.
const CLOUD: &str = "cloud store";
/// The stores the state models use.
const EXTERNAL: &str = "external";
const EDGE: &str = "edge";

/// Weft's placement (`weft-sched`), as each client's router would run it.
#[derive(Debug, Default)]
pub struct Weft {
    /// Per deciding node, its index, built at its first decision.
    indices: Vec<Option<Index>>,
    /// Learned execution times, as each node learns its own.
    exec: ExecTable,
    /// (function, node) whose time changed since the last heartbeat.
    changed: Vec<(u32, usize)>,
    /// Each node's load as the last heartbeat told it.
    told: Vec<(u32, u32)>,
    /// Per deciding node, the nodes it has sent work, with the count of
    /// beats when it did (their rows count it until the next beat).
    sent: Vec<Vec<(u64, usize)>>,
    /// Every node's row but its links, with the times the last beat told:
    /// what a node deciding for the first time starts from, and the table
    /// of learned times every index shares.
    current: Option<Index>,
    /// The loads the beats told, in order, from `told_base` on: an index
    /// applies them when it is next used (`catch_up`), so a beat costs what
    /// changed, not that times the deciding nodes.
    told_log: Vec<Told>,
    told_base: usize,
    /// Per deciding node, the position in the log it has applied up to.
    cursor: Vec<usize>,
    /// Beats so far.
    beats: u64,
    /// Each topology node's row and each function's id in every index
    /// (all are copies of `current`): updates without lookups by name.
    rows: Vec<Option<usize>>,
    fids: Vec<Option<usize>>,
}

/// A node's load as a beat told every node: (node, running, waiting).
type Told = (usize, u32, u32);

/// The log is cut back to what the laggards still need beyond this.
const TOLD_LOG_MAX: usize = 1 << 16;

impl Weft {
    /// A policy with nothing learned.
    pub fn new() -> Weft {
        Weft::default()
    }

    /// The index every other is a copy of, built at first use.
    fn current(&mut self, world: &World<'_>) -> &mut Index {
        let current = self.current.get_or_insert_with(|| Weft::template(world));
        if self.rows.is_empty() {
            let t = world.topology();
            self.rows = t.nodes().iter().map(|n| current.row_of(&n.name)).collect();
            self.fids = world
                .workload()
                .functions
                .iter()
                .map(|f| current.function_of(f))
                .collect();
        }
        current
    }

    /// Node `from`'s index of the world: a copy of every node's row with
    /// the times the last beat told, with its links as `from` sees them.
    fn index(&mut self, world: &World<'_>, from: usize) -> Index {
        let t = world.topology();
        let mut index = self.current(world).clone();
        index.set_local(&t.nodes()[from].name);
        for (i, node) in t.nodes().iter().enumerate() {
            let bandwidth = t.bandwidth(from, i);
            let bandwidth = if bandwidth.is_finite() {
                bandwidth.round() as u64
            } else {
                u64::MAX / 4
            };
            let rtt = (t.latency_secs(from, i) + t.latency_secs(i, from)) * 1e6;
            index.set_link(&node.name, Some(rtt.round() as u64), Some(bandwidth.max(1)));
        }
        index
    }

    /// Every node as its heartbeat would show it, the cloud store beside.
    fn template(world: &World<'_>) -> Index {
        let t = world.topology();
        let config = world.config();
        let functions = &world.workload().functions;
        let mut nodes: Vec<NodeView> = t
            .nodes()
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let tier = match node.model.as_str() {
                    "server" => Tier::Fog,
                    "nuci5" => Tier::Edge,
                    _ => Tier::Device,
                };
                let mut v = NodeView::new(node.name.clone(), tier, config.slots.max(1));
                v.warm = functions.iter().cloned().collect();
                if i == world.central() {
                    v = v.store(EDGE);
                }
                v
            })
            .collect();
        let mut cloud = NodeView::new(CLOUD, Tier::Cloud, 0)
            .link(
                (2.0 * config.cloud_latency_s * 1e6).round() as u64,
                (config.cloud_rate_mbps * 1e6 / 8.0).round().max(1.0) as u64,
            )
            .store(EXTERNAL);
        cloud.up = true;
        nodes.push(cloud);
        Index::new(&View {
            local: String::new(),
            nodes,
            ..View::default()
        })
    }

    /// A beat: logs the loads that changed since the last one, as they are
    /// now, for each index to apply when it is next used; sets the times
    /// that changed in the shared table.
    fn refresh(&mut self, world: &World<'_>) {
        let t = world.topology();
        let functions = &world.workload().functions;
        self.told.resize(t.nodes().len(), (0, 0));
        for i in 0..t.nodes().len() {
            let now = world.load(i);
            if self.told[i] != now {
                self.told[i] = now;
                self.told_log.push((i, now.0, now.1));
            }
        }
        // A beat carries each node's latest figures once, however often
        // they changed since the last.
        self.changed.sort_unstable();
        self.changed.dedup();
        self.current(world);
        if let Some(current) = self.current.as_mut() {
            for &(f, x) in &self.changed {
                let (function, node) = (&functions[f as usize], &t.nodes()[x].name);
                let e = self.exec.estimate(function, node);
                match (self.rows[x], self.fids[f as usize]) {
                    (Some(r), Some(id)) => current.set_estimate_at(r, id, e),
                    _ => current.set_estimate(function, node, e),
                }
            }
        }
        self.changed.clear();
        self.beats += 1;
        if self.told_log.len() > TOLD_LOG_MAX {
            for from in 0..self.indices.len() {
                self.catch_up(world, from);
            }
            let least = (0..self.indices.len())
                .filter(|&i| self.indices[i].is_some())
                .map(|i| self.cursor[i])
                .min()
                .unwrap_or(self.told_base + self.told_log.len());
            self.told_log.drain(..least - self.told_base);
            self.told_base = least;
        }
    }

    /// Brings `from`'s index up to the last beat: the times it told, the
    /// loads the beats since it was last used told, in order, then the
    /// nodes it sent work before that beat back to what they told.
    fn catch_up(&mut self, world: &World<'_>, from: usize) {
        let Some(Some(index)) = self.indices.get_mut(from) else {
            return;
        };
        if let Some(current) = &self.current {
            index.share_learned(current);
        }
        let t = world.topology();
        let end = self.told_base + self.told_log.len();
        let rows = &self.rows;
        let set_load = |index: &mut Index, i: usize, (running, waiting): (u32, u32)| match rows[i] {
            Some(r) => index.set_load_at(r, running, waiting),
            None => index.set_load(&t.nodes()[i].name, running, waiting),
        };
        for &(i, running, waiting) in &self.told_log[self.cursor[from] - self.told_base..] {
            set_load(index, i, (running, waiting));
        }
        self.cursor[from] = end;
        let beats = self.beats;
        let told = &self.told;
        self.sent[from].retain(|&(beat, i)| {
            if beat >= beats {
                return true;
            }
            set_load(index, i, told[i]);
            false
        });
    }
}

impl Policy for Weft {
    fn name(&self) -> &str {
        "weft"
    }

    fn place(&mut self, world: &World<'_>, p: &Placing<'_>) -> Option<usize> {
        let t = world.topology();
        let from = p.chain.client;
        if self.indices.len() < t.nodes().len() {
            self.indices.resize_with(t.nodes().len(), || None);
            self.sent.resize_with(t.nodes().len(), Vec::new);
            self.cursor.resize(t.nodes().len(), 0);
        }
        if self.indices[from].is_none() {
            let mut index = self.index(world, from);
            // What the last heartbeats said, for a node that decides for
            // the first time.
            for (i, node) in t.nodes().iter().enumerate() {
                let (running, waiting) = world.load(i);
                index.set_load(&node.name, running, waiting);
            }
            self.indices[from] = Some(index);
            self.cursor[from] = self.told_base + self.told_log.len();
        }
        if world.config().heartbeat == 0 {
            self.refresh(world);
        }
        self.catch_up(world, from);
        let function = &world.workload().functions[p.step.function as usize];
        let (a, o, s) = (p.step.arg_bytes, p.step.out_bytes, p.step.state_bytes);
        let model = world.config().model;
        let (bytes_in, bytes_out) = match model {
            Model::Client => (a + s, o + s),
            _ => (a, o),
        };
        let state = match model {
            Model::External | Model::Edge => Some(StateUse {
                home: Some(
                    if model == Model::External {
                        EXTERNAL
                    } else {
                        EDGE
                    }
                    .into(),
                ),
                key: None,
                bytes: 2 * s,
                trips: 1,
            }),
            Model::Function => Some(StateUse {
                home: None,
                key: Some(world.workload().keys[p.chain.key as usize].clone()),
                bytes: s,
                trips: 0,
            }),
            Model::Client => None,
        };
        let req = Request {
            function: function.clone(),
            origin: t.nodes()[from].name.clone(),
            bytes_in,
            bytes_out,
            state,
            exclude: p.tried.iter().map(|&x| t.nodes()[x].name.clone()).collect(),
            ..Request::default()
        };
        let (running, waiting) = world.load(from);
        let local = Local {
            slots: world.config().slots.max(1),
            inflight: running,
            queued: waiting,
            warm: true,
            exec_us: self
                .exec
                .estimate(function, &t.nodes()[from].name)
                .map(|e| e.micros()),
        };
        let index = self.indices[from].as_mut()?;
        // No eligible node: every one was tried.
        let d = place_in(index, &req, Some(&local)).ok()?;
        let x = t.node(&d.node)?;
        if let (true, Some(due)) = (p.handing_off, p.due) {
            // Handed off by the client's own node: only with time to spare
            // there, as the router asks (its time at the admission
            // percentile, as its heartbeats report it).
            let exec = world
                .expected_us(p.step.function, x)
                .unwrap_or(d.breakdown.exec_us);
            let left = due.saturating_sub(world.now()) / 1_000;
            if slack_us(left, &d.breakdown, exec, 0) < 0 {
                return None;
            }
        }
        if x != from {
            index.add_inflight(&d.node, 1);
            self.sent[from].push((self.beats, x));
        }
        Some(x)
    }

    fn executed(&mut self, world: &World<'_>, p: &Placing<'_>, node: usize, ns: Nanos) {
        let t = world.topology();
        let function = p.step.function;
        let (f, name) = (
            &world.workload().functions[function as usize],
            &t.nodes()[node].name,
        );
        // The node knows its own time at once (the `Local` it decides
        // with); the others at the next beat.
        self.exec.observe(f, name, ns / 1_000);
        // What the beats told comes first in the index changed here.
        self.catch_up(world, p.chain.client);
        // The client's call is answered: it stops counting there (the
        // router's `Sent`).
        let from = p.chain.client;
        if node != from
            && let Some(Some(index)) = self.indices.get_mut(from)
        {
            index.sub_inflight(name, 1);
        }
        self.changed.push((function, node));
    }

    fn beat(&mut self, world: &World<'_>) {
        self.refresh(world);
    }
}
