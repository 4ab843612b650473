//! `weft sim reproduce seed-003`: the seed's whole evaluation — both
//! topologies, both allocation policies, the four models, 100 to 500 jobs,
//! replications from seed 1 — summarised per metric as a mean with a 95%
//! confidence interval over the replications.
//!
//! Replications run on every core; each one's figures are kept by its seed
//! and reduced in seed order, so the output does not depend on the number
//! of threads or their timing: the same replications give the same bytes.

use crate::InputError;
use crate::seed003::{Alloc, Model, Params, World, mean_ci};
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

/// Runs the sweep with `replications` per point (seeds 1..), on `threads`
/// threads; `progress(done, total)` is called as replications finish.
pub fn seed003(
    replications: u64,
    threads: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<Row>, InputError> {
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
    let results: std::sync::Mutex<Vec<Option<[[f64; 3]; 4]>>> =
        std::sync::Mutex::new(vec![None; total]);
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
                    let (t, alloc, jobs) = points[i / reps];
                    let seed = (i % reps) as u64 + 1;
                    let runs = worlds[t].replicate(jobs, seed, alloc, &Model::ALL);
                    let mut out = [[0.0; 3]; 4];
                    for (m, jobs) in runs.iter().enumerate() {
                        let n = jobs.len().max(1) as f64;
                        let mean = |f: &dyn Fn(&crate::seed003::JobResult) -> f64| {
                            jobs.iter().map(f).sum::<f64>() / n
                        };
                        out[m] = [
                            mean(&|j| j.net_s * 1e3),
                            mean(&|j| j.proc_s * 1e3),
                            mean(&|j| j.traffic / 1e6),
                        ];
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
                let values: Vec<f64> = reps_of.iter().flatten().map(|f| f[m][k]).collect();
                let (mean, half) = mean_ci(&values);
                rows.push(Row {
                    topology: TOPOLOGIES[t],
                    policy: alloc,
                    model,
                    jobs,
                    metric,
                    mean,
                    ci_low: mean - half,
                    ci_high: mean + half,
                });
            }
        }
    }
    Ok(rows)
}

/// `rows` as `summary.csv`: `topology,policy,model,jobs,metric,mean,ci_low,ci_high`.
pub fn csv(rows: &[Row]) -> String {
    let mut out = String::from("topology,policy,model,jobs,metric,mean,ci_low,ci_high\n");
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{:.6},{:.6},{:.6}",
            r.topology,
            r.policy.as_str(),
            r.model.as_str(),
            r.jobs,
            r.metric,
            r.mean,
            r.ci_low,
            r.ci_high
        );
    }
    out
}
