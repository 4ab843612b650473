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
//!   serialisation on each link of the route, plus the links' propagation
//!   delay where a topology gives one (the `.links` file's optional fifth
//!   column; the seed's files have none), with no contention
//!   ([`Topology::transfer_secs`]); the cloud store is
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
//! - **Deadlines** are Weft's: a step may have one, relative to its sending
//!   (one without is ordered by [`Config::timeout`]). Nodes run ready steps
//!   earliest deadline first ([`Scheduler::Edf`], Weft's default; no
//!   preemption: the world's steps run to their end) or in arrival order
//!   ([`Scheduler::Fifo`]). A node its argument reaches admits the step, or
//!   refuses it at once under [`Unmeetable::Refuse`], with the node's own
//!   test ([`weft_sched::unmeetable`]): the admitted work due no later,
//!   each at its mean time there less what it has run, shared by the
//!   workers, plus the step's own time at the [`Config::admission`]
//!   percentile of the node's window of recent runs
//!   ([`weft_sched::Profile`], as the node keeps it). Refused by the client's
//!   own node, the step is handed off: the policy places it again among the
//!   others ([`Placing::handing_off`]; Weft's then requires slack,
//!   [`weft_sched::slack_us`]); refused by another, it is turned away and
//!   placed again without that node ([`Placing::tried`]), while its deadline
//!   has not passed. A step no node takes ends its chain, refused. A step is
//!   met when its output is back at the client by its deadline.
//!
//! A policy sees the world through [`World`]: the clock, every node's load
//! now, its speed, its learned times, and what running a step on a node
//! would move ([`World::moves`], the same function the world charges).

use crate::des::{Events, Nanos, nanos};
use crate::seed003::Model;
use crate::topology::Topology;
use crate::trace::{Chain, Step, Workload};
use std::collections::{BTreeMap, HashMap};
pub use weft_manifest::{Percentile, Scheduler, Unmeetable};
use weft_sched::Profile;

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
    /// The order ready steps get a worker in (Weft's node config
    /// `scheduler`).
    pub scheduler: Scheduler,
    /// Whether a node refuses a step it cannot finish by its deadline
    /// (Weft's node config `unmeetable`).
    pub unmeetable: Unmeetable,
    /// The percentile of a node's recent runs a step's own time is taken
    /// at, to admit it (a function's `admission`).
    pub admission: Percentile,
    /// What orders a step without a deadline: its sending plus this (a
    /// function's `timeout`; Weft's default 10 s).
    pub timeout: Nanos,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            model: Model::Function,
            cloud_latency_s: 0.06,
            cloud_rate_mbps: 50.0,
            slots: 1,
            heartbeat: 1_000_000_000,
            scheduler: Scheduler::Edf,
            unmeetable: Unmeetable::Refuse,
            admission: Percentile::P90,
            timeout: 10_000_000_000,
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
    /// When it must be back at the client, if it has a deadline.
    pub due: Option<Nanos>,
    /// Nodes that refused it: not to be chosen again.
    pub tried: &'a [usize],
    /// The client's own node could not meet its deadline: only a node with
    /// time to spare should take it.
    pub handing_off: bool,
}

/// What running a step on a node moves: the time each leg takes, and the
/// traffic (bytes × links).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Moves {
    /// The argument (and in-client state) to the executor, ns.
    pub arg_in: Nanos,
    /// The state to the executor, ns.
    pub state_in: Nanos,
    /// The state back to its home, ns.
    pub state_out: Nanos,
    /// The output (and in-client state) back to the client, ns.
    pub out_back: Nanos,
    /// Bytes × links of the argument's leg.
    pub arg_traffic: f64,
    /// Bytes × links of the other legs.
    pub rest_traffic: f64,
}

impl Moves {
    /// The time before the step can run there.
    pub fn before(&self) -> Nanos {
        self.arg_in + self.state_in
    }

    /// The time after it ran there.
    pub fn after(&self) -> Nanos {
        self.state_out + self.out_back
    }
}

/// A placement policy: which node runs a step. Add one by implementing
/// this trait; [`run`] calls it for every step, in event order.
pub trait Policy {
    /// Its name in results (`load`, `load+net`, `weft`, ...).
    fn name(&self) -> &str;
    /// The node (an index into the topology's nodes) that runs `p`, not
    /// one of `p.tried`; `None`: no node can, the step is refused.
    fn place(&mut self, world: &World<'_>, p: &Placing<'_>) -> Option<usize>;
    /// Step `p` ran on `node` for `ns` (its service time); its output is
    /// on its way back to the client.
    fn executed(&mut self, _world: &World<'_>, _p: &Placing<'_>, _node: usize, _ns: Nanos) {}
    /// A heartbeat: every [`Config::heartbeat`] while chains are running.
    fn beat(&mut self, _world: &World<'_>) {}
}

/// A node's ready steps by (order, arrival): (chain, step, ready since).
type ReadyQueue = BTreeMap<(Nanos, u64), (u32, u32, Nanos)>;

/// A step admitted at a node and not yet finished: what admission counts.
#[derive(Debug, Clone, Copy)]
struct Booked {
    /// Its mean time there when it was admitted, µs.
    typical_us: u64,
    /// When it got a worker.
    started: Option<Nanos>,
}

/// The world as a policy sees it.
pub struct World<'a> {
    topology: &'a Topology,
    workload: &'a Workload,
    config: Config,
    now: Nanos,
    running: Vec<u32>,
    /// Per node, its ready steps.
    waiting: Vec<ReadyQueue>,
    /// Per node, the admitted steps by (due, arrival).
    booked: Vec<BTreeMap<(Nanos, u64), Booked>>,
    /// Per (function, node), the last runs' times.
    profiles: HashMap<(u32, usize), Profile>,
    /// `function` model: where each (function, key)'s state is.
    holder: HashMap<(u32, u32), usize>,
    central: usize,
    /// Node indices by name.
    by_name: Vec<usize>,
    seq: u64,
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

    /// The node's recent runs of `function`, as it keeps them.
    pub fn profile(&self, function: u32, node: usize) -> Option<&Profile> {
        self.profiles.get(&(function, node))
    }

    /// What the node expects a run of `function` to take, µs: its recent
    /// runs at the admission percentile.
    pub fn expected_us(&self, function: u32, node: usize) -> Option<u64> {
        self.profile(function, node)?
            .percentile(self.config.admission.fraction())
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
        let (mut state_in, mut state_out, mut state_traffic) = (0.0, 0.0, 0.0);
        match self.config.model {
            Model::External if s > 0 => {
                let one_way = self.config.cloud_latency_s
                    + 8.0 * s as f64 / (self.config.cloud_rate_mbps * 1e6);
                (state_in, state_out) = (one_way, one_way);
                state_traffic = 2.0 * s as f64;
            }
            Model::Edge => {
                let k = self.central;
                state_in = t.transfer_secs(k, x, s);
                state_out = t.transfer_secs(x, k, s);
                state_traffic = (hops(k, x) + hops(x, k)) * s as f64;
            }
            Model::Function => {
                if let Some(h) = self.holder(p.step.function, p.chain.key) {
                    state_in = t.transfer_secs(h, x, s);
                    state_traffic = hops(h, x) * s as f64;
                }
            }
            _ => {}
        }
        Moves {
            arg_in: nanos(t.transfer_secs(c, x, sent)),
            state_in: nanos(state_in),
            state_out: nanos(state_out),
            out_back: nanos(t.transfer_secs(x, c, back)),
            arg_traffic: hops(c, x) * sent as f64,
            rest_traffic: state_traffic + hops(x, c) * back as f64,
        }
    }

    /// Whether node `x` refuses a step of `function` due at `due`, now:
    /// Weft's admission over what `x` has admitted.
    fn refuses(&self, x: usize, function: u32, due: Nanos) -> bool {
        if self.config.unmeetable != Unmeetable::Refuse {
            return false;
        }
        let now = self.now;
        let ahead: u64 = self.booked[x]
            .range(..(due, u64::MAX))
            .map(|(_, b)| {
                let ran = b.started.map_or(0, |t| (now - t) / 1_000);
                weft_sched::left_us(b.typical_us, ran)
            })
            .sum();
        let expected = self.expected_us(function, x).unwrap_or(0);
        weft_sched::unmeetable(
            ahead,
            u64::from(self.config.slots.max(1)),
            expected,
            due.saturating_sub(now) / 1_000,
        )
    }
}

/// One chain's figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ChainResult {
    /// From arrival to the last output back at the client, ns (to the
    /// refusal, for a refused chain).
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
    /// Steps with a deadline that ran.
    pub deadlines: u32,
    /// Of which back at the client by their deadline.
    pub met: u32,
    /// Times a node other than the client's turned a step away.
    pub turned_away: u32,
    /// Steps the client's node handed off to another.
    pub handed_off: u32,
    /// A step no node would take: the chain stopped there.
    pub refused: bool,
}

/// A run's results.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// Per chain, in the workload's order.
    pub chains: Vec<ChainResult>,
    /// Per chain, per step: the node that ran it (`None`: it did not run).
    pub placements: Vec<Vec<Option<usize>>>,
    /// Per chain, per step: from its sending to its output back at the
    /// client (`None`: it did not run).
    pub latencies: Vec<Vec<Option<Nanos>>>,
    /// Events processed.
    pub events: u64,
    /// When the last chain finished.
    pub end: Nanos,
}

#[derive(Debug, Clone, Copy)]
enum Event {
    /// Step `s` of chain `c` is to be placed (again), at its client: the
    /// first at the chain's arrival.
    Place { c: u32, s: u32 },
    /// Step `s`'s argument reached node `x`, which admits it or not.
    Arrived { c: u32, s: u32, x: u32 },
    /// Step `s` of chain `c` can run on node `x`: its state is there.
    Ready { c: u32, s: u32, x: u32 },
    /// Step `s` of chain `c` finished running on node `x`.
    Finish { c: u32, s: u32, x: u32 },
    /// Step `s`'s output is back at chain `c`'s client.
    Back { c: u32, s: u32 },
    /// Heartbeat.
    Beat,
}

/// Per chain, its current step's progress.
#[derive(Debug, Clone, Default)]
struct Current {
    /// When the client sent it first.
    sent: Nanos,
    /// When it is due (deadline or timeout) and whether that is a deadline.
    due: Nanos,
    deadline: bool,
    moves: Moves,
    tried: Vec<usize>,
    handing_off: bool,
    /// Its key in its node's ledger and ready queue.
    seq: u64,
}

impl Current {
    /// Step `s` of `chain`, as a policy sees it now.
    fn placing<'a>(&'a self, chain: &'a Chain, s: u32) -> Placing<'a> {
        Placing {
            chain,
            index: s as usize,
            step: &chain.steps[s as usize],
            due: self.deadline.then_some(self.due),
            tried: &self.tried,
            handing_off: self.handing_off,
        }
    }
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
        waiting: vec![BTreeMap::new(); n],
        booked: vec![BTreeMap::new(); n],
        profiles: HashMap::new(),
        holder: HashMap::new(),
        central: topology.central(),
        by_name,
        seq: 0,
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
        placements: chains.iter().map(|c| vec![None; c.steps.len()]).collect(),
        latencies: chains.iter().map(|c| vec![None; c.steps.len()]).collect(),
        ..Outcome::default()
    };
    let mut cur: Vec<Current> = vec![Current::default(); chains.len()];
    let mut ev = Events::new();
    for (i, c) in chains.iter().enumerate() {
        if !c.steps.is_empty() {
            ev.at(c.arrival, Event::Place { c: i as u32, s: 0 });
        }
    }
    let slots = config.slots.max(1);
    let mut left = chains.iter().filter(|c| !c.steps.is_empty()).count();
    if config.heartbeat > 0 && left > 0 {
        ev.at(config.heartbeat, Event::Beat);
    }
    // Starts step `s` of chain `c` on `x` now.
    let start =
        |w: &mut World<'_>, ev: &mut Events<Event>, cur: &[Current], c: u32, s: u32, x: u32| {
            let xi = x as usize;
            w.running[xi] += 1;
            let k = &cur[c as usize];
            if let Some(b) = w.booked[xi].get_mut(&(k.due, k.seq)) {
                b.started = Some(w.now);
            }
            let step = &chains[c as usize].steps[s as usize];
            ev.after(w.service(xi, step), Event::Finish { c, s, x });
        };
    while let Some(e) = ev.pop() {
        w.now = ev.now();
        match e {
            Event::Place { c, s } => {
                let ci = c as usize;
                let chain = &chains[ci];
                let step = &chain.steps[s as usize];
                let k = &mut cur[ci];
                if out.placements[ci][s as usize].is_none() && k.tried.is_empty() && !k.handing_off
                {
                    // First sent now.
                    k.sent = w.now;
                    k.deadline = step.deadline.is_some();
                    k.due = w.now + step.deadline.unwrap_or(config.timeout);
                }
                let past = k.deadline && w.now >= k.due;
                let p = k.placing(chain, s);
                let placed = if past { None } else { policy.place(&w, &p) };
                let Some(x) = placed.filter(|&x| x < n && !k.tried.contains(&x)) else {
                    out.chains[ci].refused = true;
                    out.chains[ci].latency = w.now - chain.arrival;
                    out.end = w.now;
                    left -= 1;
                    if left == 0 {
                        break;
                    }
                    continue;
                };
                k.moves = w.moves(&p, x);
                let r = &mut out.chains[ci];
                r.net += k.moves.arg_in;
                r.traffic += k.moves.arg_traffic;
                ev.after(k.moves.arg_in, Event::Arrived { c, s, x: x as u32 });
            }
            Event::Arrived { c, s, x } => {
                let (ci, xi) = (c as usize, x as usize);
                let chain = &chains[ci];
                let step = &chain.steps[s as usize];
                let k = &mut cur[ci];
                if k.deadline && w.refuses(xi, step.function, k.due) {
                    // Refused here: the client's node hands it off, another
                    // turns it away; either way it is placed again.
                    k.tried.push(xi);
                    if xi == chain.client {
                        k.handing_off = true;
                        out.chains[ci].handed_off += 1;
                    } else {
                        out.chains[ci].turned_away += 1;
                    }
                    ev.after(0, Event::Place { c, s });
                    continue;
                }
                w.seq += 1;
                k.seq = w.seq;
                let typical_us = w
                    .profile(step.function, xi)
                    .and_then(|p| p.mean())
                    .unwrap_or(0);
                w.booked[xi].insert(
                    (k.due, k.seq),
                    Booked {
                        typical_us,
                        started: None,
                    },
                );
                if config.model == Model::Function {
                    w.holder.insert((step.function, chain.key), xi);
                }
                out.placements[ci][s as usize] = Some(xi);
                let r = &mut out.chains[ci];
                r.net += k.moves.state_in;
                r.traffic += k.moves.rest_traffic;
                ev.after(k.moves.state_in, Event::Ready { c, s, x });
            }
            Event::Ready { c, s, x } => {
                let xi = x as usize;
                if w.running[xi] < slots {
                    start(&mut w, &mut ev, &cur, c, s, x);
                } else {
                    let k = &cur[c as usize];
                    let order = match config.scheduler {
                        Scheduler::Edf => k.due,
                        Scheduler::Fifo => w.now,
                    };
                    w.waiting[xi].insert((order, k.seq), (c, s, w.now));
                }
            }
            Event::Finish { c, s, x } => {
                let (ci, xi) = (c as usize, x as usize);
                w.running[xi] -= 1;
                let k = &cur[ci];
                w.booked[xi].remove(&(k.due, k.seq));
                let step = &chains[ci].steps[s as usize];
                let ran = w.service(xi, step);
                w.profiles
                    .entry((step.function, xi))
                    .or_default()
                    .record(ran / 1_000);
                out.chains[ci].proc += ran;
                out.chains[ci].net += k.moves.after();
                policy.executed(&w, &k.placing(&chains[ci], s), xi, ran);
                if let Some((_, (c2, s2, since))) = w.waiting[xi].pop_first() {
                    out.chains[c2 as usize].queue += w.now - since;
                    start(&mut w, &mut ev, &cur, c2, s2, x);
                }
                ev.after(k.moves.after(), Event::Back { c, s });
            }
            Event::Back { c, s } => {
                let ci = c as usize;
                let k = &mut cur[ci];
                out.latencies[ci][s as usize] = Some(w.now - k.sent);
                if k.deadline {
                    let r = &mut out.chains[ci];
                    r.deadlines += 1;
                    r.met += u32::from(w.now <= k.due);
                }
                k.tried.clear();
                k.handing_off = false;
                if s as usize + 1 == chains[ci].steps.len() {
                    out.chains[ci].latency = w.now - chains[ci].arrival;
                    out.end = w.now;
                    left -= 1;
                    if left == 0 {
                        // Only heartbeats can be left: the run is over.
                        break;
                    }
                } else {
                    ev.after(0, Event::Place { c, s: s + 1 });
                }
            }
            Event::Beat => {
                policy.beat(&w);
                if left > 0 {
                    ev.after(config.heartbeat, Event::Beat);
                }
            }
        }
    }
    out.events = ev.processed();
    out
}
