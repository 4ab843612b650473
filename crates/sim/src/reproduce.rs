//! `weft sim reproduce seed-003`: the seed's whole evaluation — both
//! topologies, both allocation policies, the four models, 100 to 500 jobs,
//! replications from seed 1 — summarised per metric as a mean with a 95%
//! confidence interval over the replications.
//!
//! Replications run on every core; each one's figures are kept by its seed
//! and reduced in seed order, so the output does not depend on the number
//! of threads or their timing: the same replications give the same bytes.

use crate::InputError;
use crate::seed003::{Alloc, Model, Params, World, mean_ci, mean_ci_of_moments};
use crate::topology::Topology;
use crate::workload::Pool;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The job counts the seed sweeps.
pub const JOBS: [usize; 5] = [100, 200, 300, 400, 500];
/// The seed's topologies, by the names the summary uses.
pub const TOPOLOGIES: [&str; 2] = ["iiot", "urban"];
/// The metrics, as the summary names them.
pub const METRICS: [&str; 3] = ["net_latency_ms", "proc_latency_ms", "traffic_mb_per_chain"];

/// Per chain length, the jobs' count and, per metric, their sum and sum
/// of squares.
type ByLength = std::collections::BTreeMap<usize, (f64, [f64; 3], [f64; 3])>;

/// What one replication gives, per model: the per-job means of the
/// metrics, the jobs by chain length, and (at [`CDF_JOBS`]) each job's
/// latency, processing and network, ms.
type Figures = [([f64; 3], ByLength, Vec<f64>); 4];

/// The job count whose latencies' distribution is kept (the seed's Fig. 5).
pub const CDF_JOBS: usize = 500;

/// The quantiles `latency_cdf.csv` gives.
const QUANTILES: usize = 100;

/// A quantile of the latency of every job of every replication of a point
/// (the seed's Fig. 5).
#[derive(Debug, Clone, PartialEq)]
pub struct CdfRow {
    /// `iiot` or `urban`.
    pub topology: &'static str,
    /// The allocation policy.
    pub policy: Alloc,
    /// The state model.
    pub model: Model,
    /// The fraction of jobs at or below `latency_ms`.
    pub fraction: f64,
    /// Processing plus network latency, ms.
    pub latency_ms: f64,
}

/// The sweep's results.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    /// `summary.csv`'s rows.
    pub rows: Vec<Row>,
    /// `by_chain_length.csv`'s.
    pub lengths: Vec<LengthRow>,
    /// `latency_cdf.csv`'s.
    pub cdf: Vec<CdfRow>,
}

/// One line of `by_chain_length.csv`: a metric over every job of every
/// replication with that chain length (the seed's Fig. 6).
#[derive(Debug, Clone, PartialEq)]
pub struct LengthRow {
    /// The point, as in [`Row`].
    pub row: Row,
    /// Tasks in the chains.
    pub chain_length: usize,
    /// Jobs of that length over all the replications.
    pub jobs_seen: u64,
}

/// One line of `summary.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `iiot` or `urban`.
    pub topology: &'static str,
    /// The allocation policy.
    pub policy: Alloc,
    /// The state model.
    pub model: Model,
    /// Jobs asked for per replication.
    pub jobs: usize,
    /// One of [`METRICS`].
    pub metric: &'static str,
    /// The mean over the replications of the per-job mean.
    pub mean: f64,
    /// The 95% confidence interval's ends.
    pub ci_low: f64,
    /// See `ci_low`.
    pub ci_high: f64,
}

impl Row {
    /// The `metric` of a point (`topology`, `policy`, `model`, `jobs`),
    /// from its mean and its interval's half-width.
    fn new(
        (topology, policy, model, jobs): (&'static str, Alloc, Model, usize),
        metric: &'static str,
        (mean, half): (f64, f64),
    ) -> Row {
        Row {
            topology,
            policy,
            model,
            jobs,
            metric,
            mean,
            ci_low: mean - half,
            ci_high: mean + half,
        }
    }
}

/// Runs the sweep with `replications` per point (seeds 1..), on `threads`
/// threads; `progress(done, total)` is called as replications finish.
pub fn seed003(
    replications: u64,
    threads: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Sweep, InputError> {
    let pool = Pool::seed003()?;
    let topologies: Vec<Topology> = TOPOLOGIES
        .iter()
        .filter_map(|t| Topology::seed003(t))
        .collect();
    let points: Vec<(usize, Alloc, usize)> = (0..topologies.len())
        .flat_map(|t| Alloc::ALL.into_iter().map(move |a| (t, a)))
        .flat_map(|(t, a)| JOBS.into_iter().map(move |j| (t, a, j)))
        .collect();
    let worlds: Vec<World<'_>> = topologies
        .iter()
        .map(|t| World::new(t, &pool, Params::default()))
        .collect();
    let reps = usize::try_from(replications).unwrap_or(usize::MAX).max(1);
    let total = points.len() * reps;
    // Per work item (point × replication): per model, the three metrics.
    let results: std::sync::Mutex<Vec<Option<Figures>>> = std::sync::Mutex::new(vec![None; total]);
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let (t, alloc, asked) = points[i / reps];
                    let seed = (i % reps) as u64 + 1;
                    let runs = worlds[t].replicate(asked, seed, alloc, &Model::ALL);
                    let mut out: Figures = Default::default();
                    for (m, jobs) in runs.iter().enumerate() {
                        let n = jobs.len().max(1) as f64;
                        let (sums, lengths, latencies) = &mut out[m];
                        for j in jobs {
                            let v = metrics(j);
                            if asked == CDF_JOBS {
                                latencies.push(v[0] + v[1]);
                            }
                            let (count, sum, squares) = lengths.entry(j.chain).or_default();
                            *count += 1.0;
                            for k in 0..3 {
                                sums[k] += v[k] / n;
                                sum[k] += v[k];
                                squares[k] += v[k] * v[k];
                            }
                        }
                    }
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(out);
                    }
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                }
            });
        }
    });
    let figures = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut rows = Vec::new();
    for (p, &(t, alloc, jobs)) in points.iter().enumerate() {
        let reps_of = &figures[p * reps..(p + 1) * reps];
        for (m, model) in Model::ALL.into_iter().enumerate() {
            for (k, metric) in METRICS.into_iter().enumerate() {
                let values: Vec<f64> = reps_of.iter().flatten().map(|f| f[m].0[k]).collect();
                rows.push(Row::new(
                    (TOPOLOGIES[t], alloc, model, jobs),
                    metric,
                    mean_ci(&values),
                ));
            }
        }
    }
    // By chain length: every job of every replication of a point, in seed
    // order; lengths seen fewer than 3 times are left out, as the seed does.
    let mut lengths = Vec::new();
    for (p, &(t, alloc, jobs)) in points.iter().enumerate() {
        for (m, model) in Model::ALL.into_iter().enumerate() {
            let mut all = ByLength::new();
            for f in figures[p * reps..(p + 1) * reps].iter().flatten() {
                for (len, (count, sum, squares)) in &f[m].1 {
                    let e = all.entry(*len).or_default();
                    e.0 += count;
                    for k in 0..3 {
                        e.1[k] += sum[k];
                        e.2[k] += squares[k];
                    }
                }
            }
            for (len, (count, sum, squares)) in all.into_iter().filter(|(_, e)| e.0 > 2.0) {
                for (k, metric) in METRICS.into_iter().enumerate() {
                    lengths.push(LengthRow {
                        row: Row::new(
                            (TOPOLOGIES[t], alloc, model, jobs),
                            metric,
                            mean_ci_of_moments(count, sum[k], squares[k]),
                        ),
                        chain_length: len,
                        jobs_seen: count as u64,
                    });
                }
            }
        }
    }
    // The latency distribution at CDF_JOBS: every job of every
    // replication, in seed order, sorted.
    let mut cdf = Vec::new();
    for (p, &(t, alloc, jobs)) in points.iter().enumerate() {
        if jobs != CDF_JOBS {
            continue;
        }
        for (m, model) in Model::ALL.into_iter().enumerate() {
            let mut all: Vec<f64> = figures[p * reps..(p + 1) * reps]
                .iter()
                .flatten()
                .flat_map(|f| f[m].2.iter().copied())
                .collect();
            all.sort_by(f64::total_cmp);
            if all.is_empty() {
                continue;
            }
            for q in 1..=QUANTILES {
                let fraction = q as f64 / QUANTILES as f64;
                let at = ((all.len() as f64 * fraction) as usize).min(all.len() - 1);
                cdf.push(CdfRow {
                    topology: TOPOLOGIES[t],
                    policy: alloc,
                    model,
                    fraction,
                    latency_ms: all[at],
                });
            }
        }
    }
    Ok(Sweep { rows, lengths, cdf })
}

/// The point a line of results is about: `topology,policy,model,jobs`.
fn point(topology: &str, policy: Alloc, model: Model, jobs: usize) -> String {
    format!("{topology},{},{},{jobs}", policy.as_str(), model.as_str())
}

/// A CSV file: `header`, then `lines`.
fn csv_of(header: &str, lines: impl Iterator<Item = String>) -> String {
    let mut out = format!("{header}\n");
    for l in lines {
        let _ = writeln!(out, "{l}");
    }
    out
}

/// `rows` as `latency_cdf.csv`: `topology,policy,model,jobs,fraction,latency_ms`.
pub fn cdf_csv(rows: &[CdfRow]) -> String {
    csv_of(
        "topology,policy,model,jobs,fraction,latency_ms",
        rows.iter().map(|r| {
            let at = point(r.topology, r.policy, r.model, CDF_JOBS);
            format!("{at},{:.2},{:.6}", r.fraction, r.latency_ms)
        }),
    )
}

/// A job's metrics, in [`METRICS`]' order.
fn metrics(j: &crate::seed003::JobResult) -> [f64; 3] {
    [j.net_s * 1e3, j.proc_s * 1e3, j.traffic / 1e6]
}

/// `metric,mean,ci_low,ci_high` of `r`.
fn estimate(r: &Row) -> String {
    format!(
        "{},{:.6},{:.6},{:.6}",
        r.metric, r.mean, r.ci_low, r.ci_high
    )
}

/// `rows` as `by_chain_length.csv`:
/// `topology,policy,model,jobs,chain_length,jobs_seen,metric,mean,ci_low,ci_high`.
pub fn length_csv(rows: &[LengthRow]) -> String {
    csv_of(
        "topology,policy,model,jobs,chain_length,jobs_seen,metric,mean,ci_low,ci_high",
        rows.iter().map(|l| {
            let r = &l.row;
            let at = point(r.topology, r.policy, r.model, r.jobs);
            format!("{at},{},{},{}", l.chain_length, l.jobs_seen, estimate(r))
        }),
    )
}

/// `rows` as `summary.csv`: `topology,policy,model,jobs,metric,mean,ci_low,ci_high`.
pub fn csv(rows: &[Row]) -> String {
    csv_of(
        "topology,policy,model,jobs,metric,mean,ci_low,ci_high",
        rows.iter().map(|r| {
            let at = point(r.topology, r.policy, r.model, r.jobs);
            format!("{at},{}", estimate(r))
        }),
    )
}

/// The seed's Fig. 4 (traffic per chain against the jobs, both policies),
/// Fig. 5 (the latency's distribution, Load+net at 500 jobs) and Fig. 6
/// (network latency per chain length, Load+net at 500 jobs), per topology,
/// as SVG files: `(file name, contents)`.
pub fn figures(sweep: &Sweep) -> Vec<(String, String)> {
    use crate::plot::{Series, chart};
    let (rows, lengths) = (&sweep.rows, &sweep.lengths);
    let mut out = Vec::new();
    for topology in TOPOLOGIES {
        let cdf = Model::ALL
            .into_iter()
            .map(|model| Series {
                name: model.as_str().to_string(),
                points: sweep
                    .cdf
                    .iter()
                    // To the 99th percentile: the longest chains' tail
                    // (tens of seconds) would squeeze the rest.
                    .filter(|r| {
                        r.topology == topology
                            && r.policy == Alloc::LoadNet
                            && r.model == model
                            && r.fraction <= 0.99
                    })
                    .map(|r| (r.latency_ms, r.fraction))
                    .collect(),
                dashed: false,
            })
            .collect::<Vec<_>>();
        out.push((
            format!("fig5-latency-cdf-{topology}.svg"),
            chart(
                &format!("Latency of a chain (CDF to p99), {topology}, Load+net, {CDF_JOBS} jobs"),
                "processing + network, ms",
                "fraction of chains",
                &cdf,
            ),
        ));
        let mut traffic = Vec::new();
        for policy in [Alloc::LoadNet, Alloc::Load] {
            for model in Model::ALL {
                traffic.push(Series {
                    name: format!("{}, {}", model.as_str(), policy.as_str()),
                    points: rows
                        .iter()
                        .filter(|r| {
                            r.topology == topology
                                && r.policy == policy
                                && r.model == model
                                && r.metric == "traffic_mb_per_chain"
                        })
                        .map(|r| (r.jobs as f64, r.mean))
                        .collect(),
                    dashed: policy == Alloc::Load,
                });
            }
        }
        out.push((
            format!("fig4-traffic-{topology}.svg"),
            chart(
                &format!("Traffic per chain, {topology}"),
                "jobs",
                "MB per chain",
                &traffic,
            ),
        ));
        let by_length = Model::ALL
            .into_iter()
            .map(|model| Series {
                name: model.as_str().to_string(),
                points: lengths
                    .iter()
                    .filter(|l| {
                        let r = &l.row;
                        r.topology == topology
                            && r.policy == Alloc::LoadNet
                            && r.model == model
                            && r.jobs == 500
                            && r.metric == "net_latency_ms"
                    })
                    .map(|l| (l.chain_length as f64, l.row.mean))
                    .collect(),
                dashed: false,
            })
            .collect::<Vec<_>>();
        out.push((
            format!("fig6-net-latency-by-length-{topology}.svg"),
            chart(
                &format!("Network latency by chain length, {topology}, Load+net, 500 jobs"),
                "functions in the chain",
                "ms",
                &by_length,
            ),
        ));
    }
    out
}
