//! What both kinds of study write, and how they run their replications:
//! `summary.csv`'s rows (`topology,policy,model,jobs,metric,mean,ci_low,
//! ci_high`), `by_chain_length.csv`'s (the seed's three metrics by chain
//! length), and work items spread over threads but reduced in index
//! order, so that the files do not depend on the threads' timing.

use crate::seed003::{Model, mean_ci_of_moments};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One line of `summary.csv`: a metric at a point, as a mean over the
/// replications with its 95% confidence interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The topology's name.
    pub topology: String,
    /// The policy's name.
    pub policy: String,
    /// The state model.
    pub model: Model,
    /// Jobs (chains) asked for per replication.
    pub jobs: usize,
    /// The metric's name.
    pub metric: &'static str,
    /// The mean over the replications.
    pub mean: f64,
    /// The 95% confidence interval's ends.
    pub ci_low: f64,
    /// See `ci_low`.
    pub ci_high: f64,
}

impl Row {
    /// The `metric` of a point (`topology`, `policy`, `model`, `jobs`),
    /// from its mean and its interval's half-width.
    pub(crate) fn new(
        (topology, policy, model, jobs): (&str, &str, Model, usize),
        metric: &'static str,
        (mean, half): (f64, f64),
    ) -> Row {
        Row {
            topology: topology.to_string(),
            policy: policy.to_string(),
            model,
            jobs,
            metric,
            mean,
            ci_low: mean - half,
            ci_high: mean + half,
        }
    }

    /// `metric,mean,ci_low,ci_high`.
    pub(crate) fn estimate(&self) -> String {
        format!(
            "{},{:.6},{:.6},{:.6}",
            self.metric, self.mean, self.ci_low, self.ci_high
        )
    }
}

/// `rows` as `summary.csv`: `topology,policy,model,jobs,metric,mean,ci_low,ci_high`.
pub fn csv(rows: &[Row]) -> String {
    csv_of(
        "topology,policy,model,jobs,metric,mean,ci_low,ci_high",
        rows.iter().map(|r| {
            format!(
                "{},{},{},{},{}",
                r.topology,
                r.policy,
                r.model.as_str(),
                r.jobs,
                r.estimate()
            )
        }),
    )
}

/// A CSV file: `header`, then `lines`.
pub(crate) fn csv_of(header: &str, lines: impl Iterator<Item = String>) -> String {
    let mut out = format!("{header}\n");
    for l in lines {
        let _ = writeln!(out, "{l}");
    }
    out
}

/// The metrics by chain length, as the seed's Fig. 6 and
/// `by_chain_length.csv` name them.
pub const LENGTH_METRICS: [&str; 3] = ["net_latency_ms", "proc_latency_ms", "traffic_mb_per_chain"];

/// Per chain length, the chains' count and, per metric of
/// [`LENGTH_METRICS`], their sum and sum of squares.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ByLength(BTreeMap<usize, (f64, [f64; 3], [f64; 3])>);

impl ByLength {
    /// One chain of `len` steps with these metrics.
    pub(crate) fn add(&mut self, len: usize, v: [f64; 3]) {
        let (count, sum, squares) = self.0.entry(len).or_default();
        *count += 1.0;
        for k in 0..3 {
            sum[k] += v[k];
            squares[k] += v[k] * v[k];
        }
    }

    /// Adds what `other` counted.
    pub(crate) fn merge(&mut self, other: &ByLength) {
        for (len, (count, sum, squares)) in &other.0 {
            let e = self.0.entry(*len).or_default();
            e.0 += count;
            for k in 0..3 {
                e.1[k] += sum[k];
                e.2[k] += squares[k];
            }
        }
    }

    /// The rows of the point `at`, by length; lengths seen fewer than 3
    /// times are left out, as the seed does.
    pub(crate) fn rows(&self, at: (&str, &str, Model, usize)) -> Vec<LengthRow> {
        let mut out = Vec::new();
        for (&len, &(count, sum, squares)) in self.0.iter().filter(|(_, e)| e.0 > 2.0) {
            for (k, metric) in LENGTH_METRICS.into_iter().enumerate() {
                out.push(LengthRow {
                    row: Row::new(at, metric, mean_ci_of_moments(count, sum[k], squares[k])),
                    chain_length: len,
                    jobs_seen: count as u64,
                });
            }
        }
        out
    }
}

/// One line of `by_chain_length.csv`: a metric over every chain of every
/// replication with that chain length (the seed's Fig. 6).
#[derive(Debug, Clone, PartialEq)]
pub struct LengthRow {
    /// The point, as in `summary.csv`.
    pub row: Row,
    /// Steps (tasks) in the chains.
    pub chain_length: usize,
    /// Chains of that length over all the replications.
    pub jobs_seen: u64,
}

/// `rows` as `by_chain_length.csv`:
/// `topology,policy,model,jobs,chain_length,jobs_seen,metric,mean,ci_low,ci_high`.
pub fn length_csv(rows: &[LengthRow]) -> String {
    csv_of(
        "topology,policy,model,jobs,chain_length,jobs_seen,metric,mean,ci_low,ci_high",
        rows.iter().map(|l| {
            let r = &l.row;
            format!(
                "{},{},{},{},{},{},{}",
                r.topology,
                r.policy,
                r.model.as_str(),
                r.jobs,
                l.chain_length,
                l.jobs_seen,
                r.estimate()
            )
        }),
    )
}

/// `f(0)` to `f(total - 1)` on `threads` threads, in index order whatever
/// the threads' timing; `progress(done, total)` as items finish.
pub(crate) fn parallel<T: Send>(
    total: usize,
    threads: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
    f: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let results: std::sync::Mutex<Vec<Option<T>>> =
        std::sync::Mutex::new((0..total).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, total.max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let r = f(i);
                    if let Ok(mut all) = results.lock() {
                        all[i] = Some(r);
                    }
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}
