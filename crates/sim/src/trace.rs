//! What the discrete-event simulator runs: chains of stateful steps, each
//! arriving at a client node at a time. Three sources, one type:
//!
//! - **a CSV trace** ([`Workload::parse_csv`]), one step a line, the
//!   format researchers write by hand or export from another tool;
//! - **seed 003's Spår pool** ([`Workload::from_pool`]): a subset of the
//!   pool's stateful chains, as the seed draws it, arriving as a Poisson
//!   process;
//! - **a synthetic generator** ([`Workload::synthetic`]): chains of random
//!   length over a few functions, a few keys and a Poisson process.
//!
//! # The CSV trace
//!
//! ```text
//! chain,arrival_s,client,key,function,ops,arg_bytes,out_bytes,state_bytes
//! c1,0.0,rpi3_0,alice,resize,2000000,100000,50000,4096
//! c1,0.0,rpi3_0,alice,detect,9000000,50000,200,4096
//! c2,0.25,rpi3_7,bob,resize,2000000,100000,50000,0
//! ```
//!
//! The header is required as written, optionally with a tenth column,
//! `deadline_ms`: the step's deadline in ms from its sending to its output
//! back at the client (empty: none). A chain's steps are its lines in
//! file order; its lines agree on `arrival_s`, `client` and `key` (the
//! state's key: chains with one key share their state) and need not be
//! adjacent. `client` is a node of the topology; `ops` is operations (a
//! node runs `speed` of them per second), the sizes are bytes: the step's
//! argument, what it returns, and the state it reads and writes.
//! Empty lines and lines starting with `#` are skipped. Every error names
//! the file and line.

use crate::InputError;
use crate::des::{Nanos, nanos};
use crate::seed003::Rng;
use crate::topology::Topology;
use crate::workload::Pool;
use std::collections::HashMap;
use std::path::Path;

/// One invocation of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Its function, an index into [`Workload::functions`].
    pub function: u32,
    /// Operations it runs.
    pub ops: u64,
    /// Bytes of its argument, sent from the client.
    pub arg_bytes: u64,
    /// Bytes it returns to the client.
    pub out_bytes: u64,
    /// Bytes of state it reads and writes.
    pub state_bytes: u64,
    /// Its deadline, from when the client sends it to when its output is
    /// back; `None`: none (ordered by the timeout).
    pub deadline: Option<Nanos>,
}

/// A chain of steps one client runs in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Its name.
    pub name: String,
    /// When it arrives at its client.
    pub arrival: Nanos,
    /// The client node (an index into the topology's nodes).
    pub client: usize,
    /// Its state's key, an index into [`Workload::keys`].
    pub key: u32,
    /// Its steps, in order.
    pub steps: Vec<Step>,
}

/// Chains, by arrival (ties in input order), with the names of their
/// functions and keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Workload {
    /// Function names.
    pub functions: Vec<String>,
    /// State keys.
    pub keys: Vec<String>,
    /// The chains.
    pub chains: Vec<Chain>,
}

/// The synthetic generator's knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Synthetic {
    /// Chains to generate.
    pub chains: usize,
    /// Arrivals per second (a Poisson process).
    pub rate_per_s: f64,
    /// The fewest and most steps in a chain (uniform).
    pub steps: (usize, usize),
    /// Functions the steps are drawn from (uniform).
    pub functions: usize,
    /// Keys the chains are drawn from (uniform): chains of one key share
    /// their state.
    pub keys: usize,
    /// Mean operations per step (exponential).
    pub mean_ops: f64,
    /// Mean argument and output bytes per step (exponential).
    pub mean_arg_bytes: f64,
    /// Mean state bytes per step (exponential).
    pub mean_state_bytes: f64,
}

impl Default for Synthetic {
    /// Seed 003's scale: its pool's means per step (4.8e6 operations,
    /// 370 kB of argument, 200 kB of state), chains of 2 to 10, ten
    /// functions, 100 keys, five chains a second.
    fn default() -> Self {
        Synthetic {
            chains: 500,
            rate_per_s: 5.0,
            steps: (2, 10),
            functions: 10,
            keys: 100,
            mean_ops: 4.8e6,
            mean_arg_bytes: 3.7e5,
            mean_state_bytes: 2e5,
        }
    }
}

/// An exponential draw with mean `mean`.
fn exponential(rng: &mut Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.unit()).ln()
}

/// The clients of `topology`: its client nodes, or every node if it marks
/// none.
fn clients(topology: &Topology) -> Vec<usize> {
    let marked: Vec<usize> = (0..topology.nodes().len())
        .filter(|&i| topology.nodes()[i].client)
        .collect();
    if marked.is_empty() {
        (0..topology.nodes().len()).collect()
    } else {
        marked
    }
}

impl Workload {
    /// `s.chains` random chains on `topology`'s clients, from `seed`.
    pub fn synthetic(topology: &Topology, s: &Synthetic, seed: u64) -> Workload {
        let mut rng = Rng::new(seed ^ 0x5157_0001);
        let clients = clients(topology);
        let (lo, hi) = (s.steps.0.max(1), s.steps.1.max(s.steps.0.max(1)));
        let mut t = 0.0;
        let chains = (0..s.chains)
            .map(|i| {
                t += exponential(&mut rng, 1.0 / s.rate_per_s.max(1e-9));
                let len = lo + rng.below(hi - lo + 1);
                Chain {
                    name: format!("c{i}"),
                    arrival: nanos(t),
                    client: clients[rng.below(clients.len())],
                    key: rng.below(s.keys.max(1)) as u32,
                    steps: (0..len)
                        .map(|_| Step {
                            function: rng.below(s.functions.max(1)) as u32,
                            ops: exponential(&mut rng, s.mean_ops).round() as u64,
                            arg_bytes: exponential(&mut rng, s.mean_arg_bytes).round() as u64,
                            out_bytes: exponential(&mut rng, s.mean_arg_bytes).round() as u64,
                            state_bytes: exponential(&mut rng, s.mean_state_bytes).round() as u64,
                            deadline: None,
                        })
                        .collect(),
                }
            })
            .collect();
        Workload {
            functions: (0..s.functions.max(1)).map(|f| format!("f{f}")).collect(),
            keys: (0..s.keys.max(1)).map(|k| format!("k{k}")).collect(),
            chains,
        }
    }

    /// About `jobs` of `pool`'s chains, kept as seed 003 keeps them (each
    /// with probability `jobs / pool`), each on a client drawn uniformly,
    /// arriving at `rate_per_s` (a Poisson process) in pool order; each step
    /// runs one of `functions` functions, drawn uniformly, and its state is
    /// the job's states it reads. A job's key is its own: its steps share
    /// its state.
    pub fn from_pool(
        topology: &Topology,
        pool: &Pool,
        jobs: usize,
        rate_per_s: f64,
        functions: usize,
        seed: u64,
    ) -> Workload {
        let mut pick = Rng::new(seed);
        let mut rng = Rng::new(seed ^ 0x5157_0002);
        let clients = clients(topology);
        let keep = jobs as f64 / pool.jobs.len().max(1) as f64;
        let mut t = 0.0;
        let mut keys = Vec::new();
        let mut chains = Vec::new();
        for job in &pool.jobs {
            if pick.unit() >= keep {
                continue;
            }
            t += exponential(&mut rng, 1.0 / rate_per_s.max(1e-9));
            let steps = job
                .chain
                .iter()
                .enumerate()
                .map(|(i, task)| Step {
                    function: rng.below(functions.max(1)) as u32,
                    ops: task.ops,
                    arg_bytes: task.arg_bytes,
                    out_bytes: job
                        .chain
                        .get(i + 1)
                        .map_or(job.return_bytes, |next| next.arg_bytes),
                    state_bytes: task.states.iter().map(|&d| job.states[d]).sum(),
                    deadline: None,
                })
                .collect();
            chains.push(Chain {
                name: job.name.clone(),
                arrival: nanos(t),
                client: clients[rng.below(clients.len())],
                key: keys.len() as u32,
                steps,
            });
            keys.push(job.name.clone());
        }
        Workload {
            functions: (0..functions.max(1)).map(|f| format!("f{f}")).collect(),
            keys,
            chains,
        }
    }

    /// Gives every step without a deadline `deadline`.
    pub fn with_deadline(mut self, deadline: Nanos) -> Workload {
        for step in self.chains.iter_mut().flat_map(|c| c.steps.iter_mut()) {
            step.deadline.get_or_insert(deadline);
        }
        self
    }

    /// Reads a CSV trace (see the module documentation) for `topology`.
    pub fn from_csv(path: &Path, topology: &Topology) -> Result<Workload, InputError> {
        Workload::parse_csv(path, &crate::topology::read(path)?, topology)
    }

    /// A CSV trace's `text`, `path` naming it in errors.
    pub fn parse_csv(path: &Path, text: &str, topology: &Topology) -> Result<Workload, InputError> {
        const HEADER: &str =
            "chain,arrival_s,client,key,function,ops,arg_bytes,out_bytes,state_bytes";
        const DEADLINES: &str =
            "chain,arrival_s,client,key,function,ops,arg_bytes,out_bytes,state_bytes,deadline_ms";
        let bad = |line: usize, message: String| InputError::Line {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        let columns = match lines.next() {
            Some((_, h)) if h.replace(' ', "") == HEADER => 9,
            Some((_, h)) if h.replace(' ', "") == DEADLINES => 10,
            Some((n, h)) => {
                return Err(bad(
                    n,
                    format!(
                        "the header is `{h}`: expected `{HEADER}`, optionally with `,deadline_ms`"
                    ),
                ));
            }
            None => {
                return Err(bad(
                    1,
                    format!("empty trace: expected the header `{HEADER}`"),
                ));
            }
        };
        let mut w = Workload::default();
        let mut functions: HashMap<String, u32> = HashMap::new();
        let mut keys: HashMap<String, u32> = HashMap::new();
        // Per chain name: its index and the line that defined it.
        let mut by_name: HashMap<String, (usize, usize)> = HashMap::new();
        for (n, line) in lines {
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            if cols.len() != columns {
                return Err(bad(
                    n,
                    format!("{} columns: expected {columns}, as the header", cols.len()),
                ));
            }
            let name = |what: &str, v: &str| -> Result<String, InputError> {
                if v.is_empty() {
                    Err(bad(n, format!("`{what}` is empty")))
                } else {
                    Ok(v.to_string())
                }
            };
            let count = |what: &str, v: &str| -> Result<u64, InputError> {
                v.parse::<u64>().map_err(|_| {
                    bad(
                        n,
                        format!("`{what}` is `{v}`: expected a whole number of 0 or more"),
                    )
                })
            };
            let chain = name("chain", cols[0])?;
            let arrival_s: f64 = cols[1]
                .parse()
                .ok()
                .filter(|x: &f64| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| {
                    bad(
                        n,
                        format!("`arrival_s` is `{}`: expected seconds, 0 or more", cols[1]),
                    )
                })?;
            let client = topology.node(cols[2]).ok_or_else(|| {
                bad(
                    n,
                    format!(
                        "`client` names `{}`, which is not a node of the topology",
                        cols[2]
                    ),
                )
            })?;
            let key = name("key", cols[3])?;
            let function = name("function", cols[4])?;
            let step = Step {
                function: intern(&mut functions, &mut w.functions, &function),
                ops: count("ops", cols[5])?,
                arg_bytes: count("arg_bytes", cols[6])?,
                out_bytes: count("out_bytes", cols[7])?,
                state_bytes: count("state_bytes", cols[8])?,
                deadline: match cols.get(9) {
                    None | Some(&"") => None,
                    Some(v) => Some(
                        v.parse::<f64>()
                            .ok()
                            .filter(|ms| ms.is_finite() && *ms > 0.0 && *ms <= 3.6e6)
                            .map(|ms| nanos(ms / 1e3))
                            .ok_or_else(|| {
                                bad(
                                    n,
                                    format!(
                                        "`deadline_ms` is `{v}`: expected ms above 0 (at most an hour), or nothing"
                                    ),
                                )
                            })?,
                    ),
                },
            };
            let key = intern(&mut keys, &mut w.keys, &key);
            let arrival = nanos(arrival_s);
            match by_name.get(&chain) {
                Some(&(c, first)) => {
                    let ch: &mut Chain = &mut w.chains[c];
                    if (ch.arrival, ch.client, ch.key) != (arrival, client, key) {
                        return Err(bad(
                            n,
                            format!(
                                "chain `{chain}` has another arrival_s, client or key here \
                                 than at line {first}"
                            ),
                        ));
                    }
                    ch.steps.push(step);
                }
                None => {
                    by_name.insert(chain.clone(), (w.chains.len(), n));
                    w.chains.push(Chain {
                        name: chain,
                        arrival,
                        client,
                        key,
                        steps: vec![step],
                    });
                }
            }
        }
        if w.chains.is_empty() {
            return Err(bad(1, "the trace has no steps".into()));
        }
        // By arrival; ties keep the file's order.
        w.chains.sort_by_key(|c| c.arrival);
        Ok(w)
    }
}

/// The id of `name` in `names`, added if new.
fn intern(ids: &mut HashMap<String, u32>, names: &mut Vec<String>, name: &str) -> u32 {
    if let Some(&id) = ids.get(name) {
        return id;
    }
    let id = names.len() as u32;
    ids.insert(name.to_string(), id);
    names.push(name.to_string());
    id
}
