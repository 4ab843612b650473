//! `weft sim run`: policies × state models × seeded replications of the
//! discrete-event world, summarised per metric as a mean with a 95%
//! confidence interval over the replications.
//!
//! Replication `r` (seeds `seed`, `seed + 1`, ...) draws one workload that
//! every policy and model runs (common random numbers: differences between
//! policies are not differences between draws). Replications run on every
//! core and are reduced in seed order: the same study gives the same bytes.
//!
//! A policy of your own joins through the factory [`run`] takes:
//!
//! ```
//! use weft_sim::continuum::{Placing, Policy, World};
//! use weft_sim::study::{self, Source, Study};
//! use weft_sim::{Synthetic, Topology};
//!
//! /// Every step on the client itself.
//! struct Stay;
//! impl Policy for Stay {
//!     fn name(&self) -> &str { "stay" }
//!     fn place(&mut self, _: &World<'_>, p: &Placing<'_>) -> Option<usize> { Some(p.chain.client) }
//! }
//!
//! let s = Study {
//!     topology_name: "iiot".into(),
//!     topology: Topology::seed003("iiot").unwrap(),
//!     source: Source::Synthetic(Synthetic { chains: 20, ..Synthetic::default() }),
//!     policies: vec!["stay".into(), "load".into()],
//!     models: vec![weft_sim::seed003::Model::Client],
//!     replications: 2,
//!     seed: 1,
//!     config: Default::default(),
//!     deadline: None,
//! };
//! let make = |name: &str| -> Option<Box<dyn Policy>> {
//!     if name == "stay" { Some(Box::new(Stay)) } else { study::builtin(name) }
//! };
//! let out = study::run(&s, &make, 1, &|_, _| {}).unwrap();
//! assert!(out.rows.iter().any(|r| r.policy == "stay" && r.metric == "latency_ms"));
//! ```

use crate::continuum::{self, Config, Outcome, Policy};
use crate::des::Nanos;
use crate::policies::{Load, LoadNet, Weft};
use crate::seed003::{Model, mean_ci};
use crate::summary::{ByLength, LengthRow, Row, parallel};
use crate::topology::Topology;
use crate::trace::{Synthetic, Workload};
use crate::workload::Pool;
use std::fmt::Write as _;

/// The policies built in, by name.
pub const POLICIES: [&str; 3] = ["load", "load+net", "weft"];

/// The metrics of `summary.csv`, per replication: the chains' mean
/// latency, its median and 99th percentile, and the means of its parts
/// and of the traffic.
pub const METRICS: [&str; 7] = [
    "latency_ms",
    "latency_p50_ms",
    "latency_p99_ms",
    "net_latency_ms",
    "proc_latency_ms",
    "queue_ms",
    "traffic_mb_per_chain",
];

/// The metrics added where steps have deadlines: the share of steps with
/// one that were back by it (of the chains not refused), and the share of
/// chains refused.
pub const DEADLINE_METRICS: [&str; 2] = ["deadline_met_pct", "refused_pct"];

/// A built-in policy by name.
pub fn builtin(name: &str) -> Option<Box<dyn Policy>> {
    match name {
        "load" => Some(Box::new(Load)),
        "load+net" => Some(Box::new(LoadNet)),
        "weft" => Some(Box::new(Weft::new())),
        _ => None,
    }
}

/// Where a replication's chains come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Generated, from the replication's seed.
    Synthetic(Synthetic),
    /// Drawn from a Spår pool, from the replication's seed.
    Pool {
        /// The pool.
        pool: Pool,
        /// Jobs asked for.
        jobs: usize,
        /// Arrivals per second.
        rate_per_s: f64,
        /// Functions the steps are drawn from.
        functions: usize,
    },
    /// A fixed trace: every replication runs the same chains.
    Trace(Workload),
}

impl Source {
    /// Chains asked for per replication.
    pub fn jobs(&self) -> usize {
        match self {
            Source::Synthetic(s) => s.chains,
            Source::Pool { jobs, .. } => *jobs,
            Source::Trace(w) => w.chains.len(),
        }
    }

    /// Replication `seed`'s workload on `topology`.
    pub fn draw(&self, topology: &Topology, seed: u64) -> Workload {
        match self {
            Source::Synthetic(s) => Workload::synthetic(topology, s, seed),
            Source::Pool {
                pool,
                jobs,
                rate_per_s,
                functions,
            } => Workload::from_pool(topology, pool, *jobs, *rate_per_s, *functions, seed),
            Source::Trace(w) => w.clone(),
        }
    }
}

/// A study: what to run.
#[derive(Debug, Clone)]
pub struct Study {
    /// The topology's name in the results.
    pub topology_name: String,
    /// The topology.
    pub topology: Topology,
    /// The chains.
    pub source: Source,
    /// Policy names, in the order of the results.
    pub policies: Vec<String>,
    /// State models, in the order of the results.
    pub models: Vec<Model>,
    /// Replications, seeds `seed..seed + replications`.
    pub replications: u64,
    /// The first replication's seed.
    pub seed: u64,
    /// The world's settings (its `model` is each of `models` in turn).
    pub config: Config,
    /// A deadline for every step that has none of its own.
    pub deadline: Option<Nanos>,
}

/// A study's results.
#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    /// `summary.csv`'s rows: per policy, per model, per metric.
    pub rows: Vec<Row>,
    /// `by_chain_length.csv`'s: the same points, the seed's three metrics
    /// over every chain of every replication, by its length.
    pub lengths: Vec<LengthRow>,
    /// `chains.csv`: every chain of the first replication, per policy and
    /// model, with the nodes that ran its steps.
    pub chains_csv: String,
    /// Events processed, over every run.
    pub events: u64,
}

/// Why a study cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StudyError {
    /// A policy name the factory does not know.
    #[error("unknown policy `{0}`: the built-in ones are load, load+net and weft")]
    UnknownPolicy(String),
}

/// `q`-quantile of sorted `v` (nearest rank).
fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let at = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    v[at]
}

/// A run's metrics, in [`METRICS`]' then [`DEADLINE_METRICS`]' order,
/// over the chains that were not refused.
fn metrics(o: &Outcome) -> [f64; 9] {
    let done: Vec<&continuum::ChainResult> = o.chains.iter().filter(|c| !c.refused).collect();
    let n = done.len().max(1) as f64;
    let ms = |ns: Nanos| ns as f64 / 1e6;
    let mean =
        |f: &dyn Fn(&continuum::ChainResult) -> f64| done.iter().map(|c| f(c)).sum::<f64>() / n;
    let mut latencies: Vec<f64> = done.iter().map(|c| ms(c.latency)).collect();
    latencies.sort_by(f64::total_cmp);
    let (deadlines, met) = done.iter().fold((0u64, 0u64), |(d, m), c| {
        (d + u64::from(c.deadlines), m + u64::from(c.met))
    });
    let refused = o.chains.iter().filter(|c| c.refused).count();
    [
        mean(&|c| ms(c.latency)),
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
        mean(&|c| ms(c.net)),
        mean(&|c| ms(c.proc)),
        mean(&|c| ms(c.queue)),
        mean(&|c| c.traffic / 1e6),
        100.0 * met as f64 / deadlines.max(1) as f64,
        100.0 * refused as f64 / o.chains.len().max(1) as f64,
    ]
}

/// Runs `study` on `threads` threads, making each run's policy with
/// `make` (use [`builtin`] for the built-in ones); `progress(done, total)`
/// as runs finish.
pub fn run(
    study: &Study,
    make: &(dyn Fn(&str) -> Option<Box<dyn Policy>> + Sync),
    threads: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Results, StudyError> {
    for p in &study.policies {
        if make(p).is_none() {
            return Err(StudyError::UnknownPolicy(p.clone()));
        }
    }
    let reps = usize::try_from(study.replications)
        .unwrap_or(usize::MAX)
        .max(1);
    let t = &study.topology;
    let workloads: Vec<Workload> = (0..reps)
        .map(|r| {
            let w = study.source.draw(t, study.seed.wrapping_add(r as u64));
            match study.deadline {
                Some(d) => w.with_deadline(d),
                None => w,
            }
        })
        .collect();
    let with_deadlines = workloads
        .iter()
        .flat_map(|w| w.chains.iter().flat_map(|c| c.steps.iter()))
        .any(|s| s.deadline.is_some());
    let metric_names: Vec<&'static str> = METRICS
        .into_iter()
        .chain(DEADLINE_METRICS.into_iter().filter(|_| with_deadlines))
        .collect();
    let points: Vec<(usize, Model)> = (0..study.policies.len())
        .flat_map(|p| study.models.iter().map(move |&m| (p, m)))
        .collect();
    let total = points.len() * reps;
    let outcomes: Vec<(Outcome, [f64; 9], ByLength)> = parallel(total, threads, progress, |i| {
        let (p, model) = points[i / reps];
        let mut policy = make(&study.policies[p]).unwrap_or_else(|| Box::new(Load));
        let config = Config {
            model,
            ..study.config
        };
        let o = continuum::run(t, &workloads[i % reps], config, policy.as_mut());
        let m = metrics(&o);
        let mut by_length = ByLength::default();
        for c in o.chains.iter().filter(|c| !c.refused) {
            let ms = |ns: Nanos| ns as f64 / 1e6;
            by_length.add(c.steps, [ms(c.net), ms(c.proc), c.traffic / 1e6]);
        }
        // Only the first replication's chains are written out.
        if i % reps == 0 {
            (o, m, by_length)
        } else {
            (
                Outcome {
                    events: o.events,
                    ..Outcome::default()
                },
                m,
                by_length,
            )
        }
    });
    let mut rows = Vec::new();
    let mut lengths = Vec::new();
    let mut chains_csv = String::new();
    for (k, &(p, model)) in points.iter().enumerate() {
        let runs = &outcomes[k * reps..(k + 1) * reps];
        let at = (
            study.topology_name.as_str(),
            study.policies[p].as_str(),
            model,
            study.source.jobs(),
        );
        for (j, &metric) in metric_names.iter().enumerate() {
            let values: Vec<f64> = runs.iter().map(|(_, m, _)| m[j]).collect();
            rows.push(Row::new(at, metric, mean_ci(&values)));
        }
        let mut all = ByLength::default();
        for (_, _, by_length) in runs {
            all.merge(by_length);
        }
        lengths.extend(all.rows(at));
        let (first, _, _) = &runs[0];
        for (c, (r, nodes)) in workloads[0]
            .chains
            .iter()
            .zip(first.chains.iter().zip(&first.placements))
        {
            let names: Vec<&str> = nodes
                .iter()
                .map(|x| x.map_or("-", |x| t.nodes()[x].name.as_str()))
                .collect();
            let _ = writeln!(
                chains_csv,
                "{},{},{},{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{},{},{},{}",
                study.policies[p],
                model.as_str(),
                c.name,
                t.nodes()[c.client].name,
                r.steps,
                r.latency as f64 / 1e6,
                r.net as f64 / 1e6,
                r.proc as f64 / 1e6,
                r.queue as f64 / 1e6,
                r.traffic / 1e6,
                r.deadlines,
                r.met,
                u8::from(r.refused),
                names.join(" ")
            );
        }
    }
    Ok(Results {
        rows,
        lengths,
        chains_csv: format!(
            "policy,model,chain,client,steps,latency_ms,net_ms,proc_ms,queue_ms,traffic_mb,deadlines,met,refused,nodes\n{chains_csv}"
        ),
        events: outcomes.iter().map(|(o, _, _)| o.events).sum(),
    })
}
