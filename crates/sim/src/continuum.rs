//! The continuum, event by event: chains arrive at their clients, each step
//! is placed by a [`Policy`], its argument and state cross the network, it
//! waits for a worker of its node and runs, and its output goes back to
//! the client, which sends the next step.
//!
//! # The world
//!
//! - **Nodes** are the topology's. Each has `slots` workers (default 1)
//!   that share its speed: a step of `ops` operations runs for
//!   `ops × slots / speed` seconds. Ready steps wait in arrival order.
//! - **The network** is seed 003's: a payload's time is the sum of its
//!   serialisation on each link of the route, with no propagation delay and
//!   no contention ([`Topology::transfer_secs`]); the cloud store is
//!   `latency + 8 × bytes / rate` away from every node.
//! - **State**, by model, on the step's executor `x` and client `c`
//!   (`s` bytes of state, `a` of argument, `o` of output):
//!
//!   | model      | before the step runs           | after it runs                 |
//!   |------------|--------------------------------|-------------------------------|
//!   | `external` | `c→x` a; cloud → `x` s         | `x` → cloud s; `x→c` o        |
//!   | `edge`     | `c→x` a; central → `x` s       | `x` → central s; `x→c` o      |
//!   | `function` | `c→x` a; last holder → `x` s   | `x→c` o                       |
//!   | `client`   | `c→x` a + s                    | `x→c` o + s                   |
//!
//!   Unlike seed 003's own model (the static `seed003` module, which moves
//!   in-edge and external state between the client and the store), the
//!   worker reaches the store, as in the seed's Fig. 2 and in Weft. An
//!   in-function state lives where its key last ran: the first run of a
//!   key finds it there, and a run on another node moves it (Weft moves an
//!   actor with its state). Traffic is bytes times the links crossed, the
//!   cloud's counted once each way, as in the seed.
//! - **Time** is integer nanoseconds ([`des`](crate::des)); the run is a
//!   function of its inputs: the same topology, workload, configuration and
//!   policy give the same events in the same order.
//!
//! A policy sees the world through [`World`]: the clock, every node's load
//! now, its speed, and what running a step on a node would move
//! ([`World::moves`], the same function the world charges).

use crate::des::{Events, Nanos, nanos};
use crate::seed003::Model;
use crate::topology::Topology;
use crate::trace::{Chain, Step, Workload};
use std::collections::{HashMap, VecDeque};

/// The world's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Where the chains keep their state.
    pub model: Model,
    /// One-way latency to the cloud store, seconds (seed 003: 0.06).
    pub cloud_latency_s: f64,
    /// Rate to the cloud store, Mb/s (seed 003: 50).
    pub cloud_rate_mbps: f64,
    /// Workers per node.
    pub slots: u32,
    /// How often nodes tell each other their load and learned times
    /// (Weft's heartbeat); 0: every decision sees the world as it is.
    pub heartbeat: Nanos,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            model: Model::Function,
            cloud_latency_s: 0.06,
            cloud_rate_mbps: 50.0,
            slots: 1,
            heartbeat: 1_000_000_000,
        }
    }
}

/// One step to place.
#[derive(Debug, Clone, Copy)]
pub struct Placing<'a> {
    /// Its chain.
    pub chain: &'a Chain,
    /// The step's position in the chain.
    pub index: usize,
    /// The step.
    pub step: &'a Step,
}

/// What running a step on a node moves: the time before it can run, after
/// it ran, and the traffic (bytes × links).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Moves {
    /// Argument and state to the executor, ns.
    pub before: Nanos,
    /// State back to its home and output to the client, ns.
    pub after: Nanos,
    /// Bytes times the links they cross.
    pub traffic: f64,
}

/// A placement policy: which node runs a step. Add one by implementing
/// this trait; [`run`] calls it for every step, in event order.
pub trait Policy {
    /// Its name in results (`load`, `load+net`, `weft`, ...).
    fn name(&self) -> &str;
    /// The node (an index into the topology's nodes) that runs `p`.
    fn place(&mut self, world: &World<'_>, p: &Placing<'_>) -> usize;
    /// A step of `function` ran on `node` for `ns` (its service time).
    fn executed(&mut self, _world: &World<'_>, _node: usize, _function: u32, _ns: Nanos) {}
    /// A heartbeat: every [`Config::heartbeat`] while chains are running.
    fn beat(&mut self, _world: &World<'_>) {}
}

/// The world as a policy sees it.
pub struct World<'a> {
    topology: &'a Topology,
    workload: &'a Workload,
    config: Config,
    now: Nanos,
    running: Vec<u32>,
    waiting: Vec<VecDeque<(u32, u32, Nanos)>>,
    /// `function` model: where each (function, key)'s state is.
    holder: HashMap<(u32, u32), usize>,
    central: usize,
    /// Node indices by name.
    by_name: Vec<usize>,
}

impl<'a> World<'a> {
    /// The clock.
    pub fn now(&self) -> Nanos {
        self.now
    }

    /// The topology.
    pub fn topology(&self) -> &'a Topology {
        self.topology
    }

    /// The workload.
    pub fn workload(&self) -> &'a Workload {
        self.workload
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Node indices in name order (the order ties break in).
    pub fn by_name(&self) -> &[usize] {
        &self.by_name
    }

    /// Steps running on `node` and waiting there.
    pub fn load(&self, node: usize) -> (u32, u32) {
        (self.running[node], self.waiting[node].len() as u32)
    }

    /// How long `step` runs on `node`, once it has a worker.
    pub fn service(&self, node: usize, step: &Step) -> Nanos {
        let speed = self.topology.nodes()[node].speed;
        nanos(step.ops as f64 * f64::from(self.config.slots.max(1)) / speed)
    }

    /// The node keeping `edge` state (the topology's central node).
    pub fn central(&self) -> usize {
        self.central
    }

    /// Where the state of `function` for `key` is, under the `function`
    /// model, if it ran before.
    pub fn holder(&self, function: u32, key: u32) -> Option<usize> {
        self.holder.get(&(function, key)).copied()
    }

    /// What running `p` on node `x` moves, under the world's model.
    pub fn moves(&self, p: &Placing<'_>, x: usize) -> Moves {
        let t = self.topology;
        let c = p.chain.client;
        let (a, o, s) = (p.step.arg_bytes, p.step.out_bytes, p.step.state_bytes);
        let hops = |from: usize, to: usize| f64::from(t.hops(from, to));
        let (sent, back) = match self.config.model {
            Model::Client => (a + s, o + s),
            _ => (a, o),
        };
        let mut before = t.transfer_secs(c, x, sent);
        let mut after = t.transfer_secs(x, c, back);
        let mut traffic = hops(c, x) * sent as f64 + hops(x, c) * back as f64;
        match self.config.model {
            Model::External if s > 0 => {
                let one_way = self.config.cloud_latency_s
                    + 8.0 * s as f64 / (self.config.cloud_rate_mbps * 1e6);
                before += one_way;
                after += one_way;
                traffic += 2.0 * s as f64;
            }
            Model::Edge => {
                let k = self.central;
                before += t.transfer_secs(k, x, s);
                after += t.transfer_secs(x, k, s);
                traffic += (hops(k, x) + hops(x, k)) * s as f64;
            }
            Model::Function => {
                if let Some(h) = self.holder(p.step.function, p.chain.key) {
                    before += t.transfer_secs(h, x, s);
                    traffic += hops(h, x) * s as f64;
                }
            }
            _ => {}
        }
        Moves {
            before: nanos(before),
            after: nanos(after),
            traffic,
        }
    }
}

/// One chain's figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ChainResult {
    /// From arrival to the last output back at the client, ns.
    pub latency: Nanos,
    /// Of which moving arguments, outputs and state, ns.
    pub net: Nanos,
    /// Of which running, ns.
    pub proc: Nanos,
    /// Of which waiting for a worker, ns.
    pub queue: Nanos,
    /// Bytes times links crossed.
    pub traffic: f64,
    /// Steps.
    pub steps: usize,
}

/// A run's results.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// Per chain, in the workload's order.
    pub chains: Vec<ChainResult>,
    /// Per chain, per step: the node that ran it.
    pub placements: Vec<Vec<usize>>,
    /// Events processed.
    pub events: u64,
    /// When the last chain finished.
    pub end: Nanos,
}

#[derive(Debug, Clone, Copy)]
enum Event {
    /// Chain `c` arrives at its client.
    Arrive(u32),
    /// Step `s` of chain `c` can run on node `x`: its argument and state
    /// are there.
    Ready { c: u32, s: u32, x: u32 },
    /// Step `s` of chain `c` finished running on node `x`.
    Finish { c: u32, s: u32, x: u32 },
    /// Step `s`'s output is back at chain `c`'s client.
    Back { c: u32, s: u32 },
    /// Heartbeat.
    Beat,
}

/// Runs `workload` on `topology` under `config`, placing every step with
/// `policy`.
pub fn run(
    topology: &Topology,
    workload: &Workload,
    config: Config,
    policy: &mut dyn Policy,
) -> Outcome {
    let n = topology.nodes().len();
    let mut by_name: Vec<usize> = (0..n).collect();
    by_name.sort_by(|a, b| topology.nodes()[*a].name.cmp(&topology.nodes()[*b].name));
    let mut w = World {
        topology,
        workload,
        config,
        now: 0,
        running: vec![0; n],
        waiting: vec![VecDeque::new(); n],
        holder: HashMap::new(),
        central: topology.central(),
        by_name,
    };
    let chains = &workload.chains;
    let mut out = Outcome {
        chains: chains
            .iter()
            .map(|c| ChainResult {
                steps: c.steps.len(),
                ..ChainResult::default()
            })
            .collect(),
        placements: chains.iter().map(|c| vec![0; c.steps.len()]).collect(),
        ..Outcome::default()
    };
    // Per chain: the moves of its current step, charged when it is placed.
    let mut after: Vec<Nanos> = vec![0; chains.len()];
    let mut ev = Events::new();
    for (i, c) in chains.iter().enumerate() {
        ev.at(c.arrival, Event::Arrive(i as u32));
    }
    let slots = config.slots.max(1);
    let mut left = chains.iter().filter(|c| !c.steps.is_empty()).count();
    if config.heartbeat > 0 && left > 0 {
        ev.at(config.heartbeat, Event::Beat);
    }
    // Starts step `s` of chain `c` on `x` now.
    let start = |w: &mut World<'_>, ev: &mut Events<Event>, c: u32, s: u32, x: u32| {
        w.running[x as usize] += 1;
        let step = &chains[c as usize].steps[s as usize];
        ev.after(w.service(x as usize, step), Event::Finish { c, s, x });
    };
    while let Some(e) = ev.pop() {
        w.now = ev.now();
        let (c, s) = match e {
            Event::Arrive(c) => (c, 0),
            Event::Back { c, s } => {
                if s as usize + 1 == chains[c as usize].steps.len() {
                    let r = &mut out.chains[c as usize];
                    r.latency = w.now - chains[c as usize].arrival;
                    left -= 1;
                    out.end = w.now;
                    if left == 0 {
                        // Only heartbeats can be left: the run is over.
                        break;
                    }
                    continue;
                }
                (c, s + 1)
            }
            Event::Ready { c, s, x } => {
                if w.running[x as usize] < slots {
                    start(&mut w, &mut ev, c, s, x);
                } else {
                    w.waiting[x as usize].push_back((c, s, w.now));
                }
                continue;
            }
            Event::Finish { c, s, x } => {
                let xi = x as usize;
                w.running[xi] -= 1;
                let step = &chains[c as usize].steps[s as usize];
                let ran = w.service(xi, step);
                out.chains[c as usize].proc += ran;
                policy.executed(&w, xi, step.function, ran);
                if let Some((c2, s2, since)) = w.waiting[xi].pop_front() {
                    out.chains[c2 as usize].queue += w.now - since;
                    start(&mut w, &mut ev, c2, s2, x);
                }
                ev.after(after[c as usize], Event::Back { c, s });
                continue;
            }
            Event::Beat => {
                policy.beat(&w);
                if left > 0 {
                    ev.after(config.heartbeat, Event::Beat);
                }
                continue;
            }
        };
        // Step `s` of chain `c` is to be placed, at its client.
        let chain = &chains[c as usize];
        let Some(step) = chain.steps.get(s as usize) else {
            continue;
        };
        let p = Placing {
            chain,
            index: s as usize,
            step,
        };
        let x = policy.place(&w, &p).min(n - 1);
        let m = w.moves(&p, x);
        if config.model == Model::Function {
            w.holder.insert((step.function, chain.key), x);
        }
        let r = &mut out.chains[c as usize];
        r.net += m.before + m.after;
        r.traffic += m.traffic;
        out.placements[c as usize][s as usize] = x;
        after[c as usize] = m.after;
        ev.after(m.before, Event::Ready { c, s, x: x as u32 });
    }
    out.events = ev.processed();
    out
}
