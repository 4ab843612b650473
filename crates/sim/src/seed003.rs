//! Seed 003's evaluation, as its simulator computes it (StateSim v1.1.1,
//! `scenario.cpp`; `docs/seed-003-statesim.md`, §3–§6): a replication
//! draws a subset of the pool's jobs and a client per job, allocates every
//! chain task greedily in a random job order (Load: by processing time;
//! Load+net: processing plus the transfers to and from the client), then
//! measures each job's processing latency, network latency and traffic
//! under each state model.
//!
//! The seed's model has no clock: a node's load is the number of tasks
//! allocated to it in the replication, all of which share its speed. The
//! random draws are Weft's own (SplitMix64), so a replication matches the
//! seed's in distribution, not draw for draw.

use crate::topology::Topology;
use crate::workload::Pool;

/// How a replication places tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Alloc {
    /// Processing time only (StateSim's `ProcOnly`).
    Load,
    /// Processing time plus the transfers to and from the client
    /// (`ProcNet`), counting all of the job's states both ways.
    LoadNet,
}

impl Alloc {
    /// Both, in the order the seed plots them.
    pub const ALL: [Alloc; 2] = [Alloc::Load, Alloc::LoadNet];

    /// `load` or `load+net`.
    pub fn as_str(self) -> &'static str {
        match self {
            Alloc::Load => "load",
            Alloc::LoadNet => "load+net",
        }
    }
}

/// Where a chain keeps its state (seed 003's "unchained" models).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Model {
    /// In a store in the cloud, reached from the client.
    External,
    /// At the topology's central node, moved to and from the client.
    Edge,
    /// Inside the worker: no state moves.
    Function,
    /// With the client: each task's states ride with its argument and
    /// output.
    Client,
}

impl Model {
    /// All four, in Weft's order.
    pub const ALL: [Model; 4] = [Model::External, Model::Edge, Model::Function, Model::Client];

    /// Weft's name of it.
    pub fn as_str(self) -> &'static str {
        match self {
            Model::External => "external",
            Model::Edge => "edge",
            Model::Function => "function",
            Model::Client => "client",
        }
    }
}

/// The seed's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Functions the chain tasks are drawn from (the seed: 10).
    pub functions: usize,
    /// One-way latency to the cloud, seconds (the seed: 0.06).
    pub cloud_latency_s: f64,
    /// Rate to the cloud, Mb/s (the seed: 50).
    pub cloud_rate_mbps: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            functions: 10,
            cloud_latency_s: 0.06,
            cloud_rate_mbps: 50.0,
        }
    }
}

/// One job's figures under one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobResult {
    /// Seconds of processing, summed over the chain.
    pub proc_s: f64,
    /// Seconds of network transfer, summed over the chain.
    pub net_s: f64,
    /// Bytes moved times the links they crossed (the cloud's counted once).
    pub traffic: f64,
    /// Tasks in the chain.
    pub chain: usize,
}

/// A small, fixed pseudo-random generator (SplitMix64): the same seed
/// gives the same stream on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n.saturating_sub(1))
    }
}

/// A topology and a pool made ready for replications: node order, clients,
/// each chain task's hardware (its function's), the central node.
#[derive(Debug)]
pub struct World<'a> {
    topology: &'a Topology,
    pool: &'a Pool,
    params: Params,
    /// Node indices in name order (the seed's iteration and tie order).
    by_name: Vec<usize>,
    /// Whether each node is a GPU node (the Jetsons).
    gpu: Vec<bool>,
    clients: Vec<usize>,
    /// Per job, per chain task: whether its function needs a GPU.
    task_gpu: Vec<Vec<bool>>,
    central: usize,
}

impl<'a> World<'a> {
    /// Prepares `topology` and `pool`: functions are drawn once per chain
    /// task (a fixed stream), and each function's hardware follows the
    /// share of speed each kind of node has, as in the seed.
    pub fn new(topology: &'a Topology, pool: &'a Pool, params: Params) -> World<'a> {
        let nodes = topology.nodes();
        let mut by_name: Vec<usize> = (0..nodes.len()).collect();
        by_name.sort_by(|a, b| nodes[*a].name.cmp(&nodes[*b].name));
        let gpu: Vec<bool> = nodes
            .iter()
            .map(|n| n.model == "nvidia_jetson_tx2")
            .collect();
        let clients = by_name
            .iter()
            .copied()
            .filter(|&i| nodes[i].client)
            .collect();
        let speed = |on_gpu: bool| -> f64 {
            nodes
                .iter()
                .zip(&gpu)
                .filter(|(_, g)| **g == on_gpu)
                .map(|(n, _)| n.speed)
                .sum()
        };
        let f = params.functions.max(1);
        let cpu_functions =
            ((f as f64 * speed(false) / (speed(false) + speed(true))).round() as usize).min(f);
        let mut draw = Rng::new(0);
        let task_gpu = pool
            .jobs
            .iter()
            .map(|j| {
                j.chain
                    .iter()
                    .map(|_| draw.below(f) >= cpu_functions)
                    .collect()
            })
            .collect();
        World {
            topology,
            pool,
            params,
            by_name,
            gpu,
            clients,
            task_gpu,
            central: topology.central(),
        }
    }

    /// One replication with `seed` of about `jobs` jobs: every kept job's
    /// figures under each of `models`, in `models`' order, for `alloc`.
    pub fn replicate(
        &self,
        jobs: usize,
        seed: u64,
        alloc: Alloc,
        models: &[Model],
    ) -> Vec<Vec<JobResult>> {
        let t = self.topology;
        let nodes = t.nodes();
        let pool = &self.pool.jobs;
        // The subset: each pool job kept with probability jobs / pool.
        let mut pick = Rng::new(seed);
        let keep = jobs as f64 / pool.len().max(1) as f64;
        let kept: Vec<usize> = (0..pool.len()).filter(|_| pick.unit() < keep).collect();
        // A client per job, and the order jobs are allocated in: a stream of
        // their own (seeded apart from the subset's).
        let mut scenario = Rng::new(seed ^ 0x5eed_0003);
        let client: Vec<usize> = kept
            .iter()
            .map(|_| self.clients[scenario.below(self.clients.len())])
            .collect();
        let mut order: Vec<usize> = (0..kept.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, scenario.below(i + 1));
        }
        // Allocation: greedy, the first cheapest node by name.
        let mut load = vec![0u64; nodes.len()];
        let mut placed: Vec<Vec<usize>> =
            kept.iter().map(|&j| vec![0; pool[j].chain.len()]).collect();
        for &k in &order {
            let job = &pool[kept[k]];
            let c = client[k];
            let all_states: u64 = job.states.iter().sum();
            for (i, task) in job.chain.iter().enumerate() {
                let out = output(job, i);
                let (tx_in, tx_out) = match alloc {
                    Alloc::Load => (0, 0),
                    Alloc::LoadNet => (task.arg_bytes + all_states, out + all_states),
                };
                let mut best: Option<(usize, f64)> = None;
                for &x in self
                    .by_name
                    .iter()
                    .filter(|&&x| self.gpu[x] == self.task_gpu[kept[k]][i])
                {
                    let cost = task.ops as f64 * (load[x] + 1) as f64 / nodes[x].speed
                        + t.transfer_secs(c, x, tx_in)
                        + t.transfer_secs(x, c, tx_out);
                    if best.is_none_or(|(_, b)| cost < b) {
                        best = Some((x, cost));
                    }
                }
                if let Some((x, _)) = best {
                    placed[k][i] = x;
                    load[x] += 1;
                }
            }
        }
        // Measurement, per model, with the final loads.
        models
            .iter()
            .map(|&m| {
                (0..kept.len())
                    .map(|k| self.measure(kept[k], client[k], &placed[k], &load, m))
                    .collect()
            })
            .collect()
    }

    fn measure(&self, j: usize, c: usize, placed: &[usize], load: &[u64], m: Model) -> JobResult {
        let t = self.topology;
        let nodes = t.nodes();
        let job = &self.pool.jobs[j];
        let (mut proc_s, mut net_s, mut traffic) = (0.0, 0.0, 0.0);
        let hops = |a: usize, b: usize| f64::from(t.hops(a, b));
        let k = self.central;
        for (i, task) in job.chain.iter().enumerate() {
            let x = placed[i];
            let (a, out) = (task.arg_bytes, output(job, i));
            let s: u64 = task.states.iter().map(|&d| job.states[d]).sum();
            if task.ops > 0 {
                proc_s += task.ops as f64 * load[x] as f64 / nodes[x].speed;
            }
            let (sent, back) = match m {
                Model::Client => (a + s, out + s),
                _ => (a, out),
            };
            net_s += t.transfer_secs(c, x, sent) + t.transfer_secs(x, c, back);
            traffic += hops(c, x) * sent as f64 + hops(x, c) * back as f64;
            match m {
                Model::External if s > 0 => {
                    let p = &self.params;
                    net_s += 2.0 * (p.cloud_latency_s + 8.0 * s as f64 / (p.cloud_rate_mbps * 1e6));
                    traffic += 2.0 * s as f64;
                }
                Model::Edge => {
                    net_s += t.transfer_secs(c, k, s) + t.transfer_secs(k, c, s);
                    traffic += (hops(c, k) + hops(k, c)) * s as f64;
                }
                _ => {}
            }
        }
        JobResult {
            proc_s,
            net_s,
            traffic,
            chain: job.chain.len(),
        }
    }
}

/// What task `i` of `job` returns: the next task's argument, or (the last)
/// the chain's return.
fn output(job: &crate::workload::Job, i: usize) -> u64 {
    job.chain
        .get(i + 1)
        .map_or(job.return_bytes, |next| next.arg_bytes)
}

/// The mean of `v` and the half-width of its 95% confidence interval
/// (Student's t; 0 for fewer than two values).
pub fn mean_ci(v: &[f64]) -> (f64, f64) {
    let n = v.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = v.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, t975(n - 1) * (var / n as f64).sqrt())
}

/// [`mean_ci`] of `n` values known by their sum and sum of squares.
pub fn mean_ci_of_moments(n: f64, sum: f64, squares: f64) -> (f64, f64) {
    if n < 2.0 {
        return (if n > 0.0 { sum / n } else { 0.0 }, 0.0);
    }
    let mean = sum / n;
    let var = ((squares - sum * sum / n) / (n - 1.0)).max(0.0);
    (mean, t975(n as usize - 1) * (var / n).sqrt())
}

/// The 97.5th percentile of Student's t with `df` degrees of freedom: a
/// table to 30, then the Cornish–Fisher expansion around the normal's
/// 1.959964 (within 1e-4 of the exact value there).
fn t975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    if (1..=30).contains(&df) {
        return TABLE[df - 1];
    }
    let z = 1.959_964f64;
    let d = df.max(1) as f64;
    z + (z.powi(3) + z) / (4.0 * d)
        + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * d * d)
}
