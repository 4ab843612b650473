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
use crate::summary::{ByLength, LengthRow, Row, csv_of, parallel};
use crate::topology::Topology;
use crate::workload::Pool;
use std::fmt::Write as _;

/// The job counts the seed sweeps.
pub const JOBS: [usize; 5] = [100, 200, 300, 400, 500];
/// The seed's topologies, by the names the summary uses.
pub const TOPOLOGIES: [&str; 2] = ["iiot", "urban"];
/// The metrics, as the summary names them.
pub const METRICS: [&str; 3] = crate::summary::LENGTH_METRICS;

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
    let figures: Vec<Figures> = parallel(total, threads, progress, |i| {
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
                lengths.add(j.chain, v);
                for k in 0..3 {
                    sums[k] += v[k] / n;
                }
            }
        }
        out
    });
    let mut rows = Vec::new();
    for (p, &(t, alloc, jobs)) in points.iter().enumerate() {
        let reps_of = &figures[p * reps..(p + 1) * reps];
        for (m, model) in Model::ALL.into_iter().enumerate() {
            for (k, metric) in METRICS.into_iter().enumerate() {
                let values: Vec<f64> = reps_of.iter().map(|f| f[m].0[k]).collect();
                rows.push(Row::new(
                    (TOPOLOGIES[t], alloc.as_str(), model, jobs),
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
            let mut all = ByLength::default();
            for f in &figures[p * reps..(p + 1) * reps] {
                all.merge(&f[m].1);
            }
            lengths.extend(all.rows((TOPOLOGIES[t], alloc.as_str(), model, jobs)));
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
fn point(topology: &str, policy: &str, model: Model, jobs: usize) -> String {
    format!("{topology},{policy},{},{jobs}", model.as_str())
}

/// `rows` as `latency_cdf.csv`: `topology,policy,model,jobs,fraction,latency_ms`.
pub fn cdf_csv(rows: &[CdfRow]) -> String {
    csv_of(
        "topology,policy,model,jobs,fraction,latency_ms",
        rows.iter().map(|r| {
            let at = point(r.topology, r.policy.as_str(), r.model, CDF_JOBS);
            format!("{at},{:.2},{:.6}", r.fraction, r.latency_ms)
        }),
    )
}

/// A job's metrics, in [`METRICS`]' order.
fn metrics(j: &crate::seed003::JobResult) -> [f64; 3] {
    [j.net_s * 1e3, j.proc_s * 1e3, j.traffic / 1e6]
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
                                && r.policy == policy.as_str()
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
                            && r.policy == Alloc::LoadNet.as_str()
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

/// `table.md`: the seed's figures as numbers, per topology, with each
/// statement the paper makes of them checked against this sweep. The
/// paper gives no numbers of its own; its statements are what a
/// reproduction can hold to.
pub fn table(sweep: &Sweep, replications: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Seed 003 reproduced: the paper's figures beside this run\n\n\
         {replications} replications per point, from seed 1. The paper (Cicconetti et al.) \
         plots IIoT only and gives no numbers, only what it says of each figure: each of its \
         statements is checked here against this run's means, on IIoT and on the urban \
         topology beside it. Figures 4–6 are drawn as `fig*-{{iiot,urban}}.svg`.\n"
    );
    let mean = |topology: &str, policy: Alloc, model: Model, jobs: usize, metric: &str| {
        sweep
            .rows
            .iter()
            .find(|r| {
                r.topology == topology
                    && r.policy == policy.as_str()
                    && r.model == model
                    && r.jobs == jobs
                    && r.metric == metric
            })
            .map_or(f64::NAN, |r| r.mean)
    };
    let verdict = |ok: bool| if ok { "holds" } else { "does not hold" };
    for topology in TOPOLOGIES {
        let traffic = |p, m, j| mean(topology, p, m, j, "traffic_mb_per_chain");
        let _ = writeln!(
            out,
            "## {topology}\n\n### Fig. 4: traffic per chain, MB (mean over replications)\n"
        );
        let _ = write!(out, "| policy | model |");
        for j in JOBS {
            let _ = write!(out, " {j} jobs |");
        }
        let _ = writeln!(out, "\n|---|---|{}", "---:|".repeat(JOBS.len()));
        for policy in Alloc::ALL {
            for model in Model::ALL {
                let _ = write!(out, "| {} | {} |", policy.as_str(), model.as_str());
                for j in JOBS {
                    let _ = write!(out, " {:.2} |", traffic(policy, model, j));
                }
                let _ = writeln!(out);
            }
        }
        let most_client = JOBS.iter().all(|&j| {
            Model::ALL
                .iter()
                .all(|&m| traffic(Alloc::Load, m, j) <= traffic(Alloc::Load, Model::Client, j))
        });
        let ratio = JOBS
            .iter()
            .flat_map(|&j| {
                Model::ALL
                    .iter()
                    .map(move |&m| traffic(Alloc::Load, m, j) / traffic(Alloc::LoadNet, m, j))
            })
            .fold(f64::INFINITY, f64::min);
        let grows: Vec<String> = Model::ALL
            .iter()
            .map(|&m| {
                let (lo, hi) = (
                    traffic(Alloc::LoadNet, m, 100),
                    traffic(Alloc::LoadNet, m, 500),
                );
                format!("{} {:+.0}%", m.as_str(), (hi / lo - 1.0) * 100.0)
            })
            .collect();
        let grows_ok = Model::ALL.iter().all(|&m| {
            let (lo, hi) = (
                traffic(Alloc::LoadNet, m, 100),
                traffic(Alloc::LoadNet, m, 500),
            );
            hi >= lo
        });
        let edge_worst = JOBS.iter().all(|&j| {
            Model::ALL
                .iter()
                .all(|&m| traffic(Alloc::LoadNet, m, j) <= traffic(Alloc::LoadNet, Model::Edge, j))
        });
        let _ = writeln!(
            out,
            "\n- \"With Load, in-client has the most traffic\": {} (at every job count).\n\
             - \"Load is much higher than Load+net for every model\": {} (Load at least {ratio:.1}× \
             Load+net).\n\
             - \"With Load+net the traffic grows slightly with the load\": {} (100 → 500 jobs: {}).\n\
             - \"With Load+net, in-edge is the worst\": {}.\n",
            verdict(most_client),
            verdict(ratio > 1.5),
            verdict(grows_ok),
            grows.join(", "),
            verdict(edge_worst)
        );
        // Fig. 5: the latency's distribution.
        let at = |model: Model, q: f64| {
            sweep
                .cdf
                .iter()
                .find(|r| {
                    r.topology == topology
                        && r.policy == Alloc::LoadNet
                        && r.model == model
                        && (r.fraction - q).abs() < 1e-9
                })
                .map_or(f64::NAN, |r| r.latency_ms)
        };
        let _ = writeln!(
            out,
            "### Fig. 5: latency of a chain (processing + network), Load+net, {CDF_JOBS} jobs, ms\n\n\
             | model | p50 | p90 | p99 |\n|---|---:|---:|---:|"
        );
        for model in Model::ALL {
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.0} | {:.0} |",
                model.as_str(),
                at(model, 0.5),
                at(model, 0.9),
                at(model, 0.99)
            );
        }
        let p50 = |m| at(m, 0.5);
        let worse = p50(Model::External).min(p50(Model::Edge))
            / p50(Model::Function).max(p50(Model::Client));
        let _ = writeln!(
            out,
            "\n- \"External and in-edge are much worse\": {} (their medians at least {worse:.1}× \
             in-function's and in-client's).\n\
             - \"In-function is slightly better than in-client\": {} (medians {:.0} and {:.0} ms).\n",
            verdict(worse > 2.0),
            verdict(p50(Model::Function) < p50(Model::Client)),
            p50(Model::Function),
            p50(Model::Client)
        );
        // Fig. 6: network latency by chain length.
        let net = |model: Model, len: usize| {
            sweep
                .lengths
                .iter()
                .find(|l| {
                    let r = &l.row;
                    r.topology == topology
                        && r.policy == Alloc::LoadNet.as_str()
                        && r.model == model
                        && r.jobs == CDF_JOBS
                        && r.metric == "net_latency_ms"
                        && l.chain_length == len
                })
                .map(|l| l.row.mean)
        };
        let mut lengths: Vec<usize> = sweep
            .lengths
            .iter()
            .filter(|l| l.row.topology == topology && l.row.jobs == CDF_JOBS)
            .map(|l| l.chain_length)
            .collect();
        lengths.sort_unstable();
        lengths.dedup();
        let _ = write!(
            out,
            "### Fig. 6: network latency by chain length, Load+net, {CDF_JOBS} jobs, ms\n\n| model |"
        );
        for len in &lengths {
            let _ = write!(out, " {len} |");
        }
        let _ = writeln!(out, "\n|---|{}", "---:|".repeat(lengths.len()));
        for model in Model::ALL {
            let _ = write!(out, "| {} |", model.as_str());
            for &len in &lengths {
                match net(model, len) {
                    Some(v) => {
                        let _ = write!(out, " {v:.0} |");
                    }
                    None => {
                        let _ = write!(out, " |");
                    }
                }
            }
            let _ = writeln!(out);
        }
        // The slope of a least-squares line through (length, latency).
        let slope = |model: Model| {
            let pts: Vec<(f64, f64)> = lengths
                .iter()
                .filter_map(|&len| net(model, len).map(|v| (len as f64, v)))
                .collect();
            let n = pts.len() as f64;
            let (sx, sy) = pts.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
            let (mx, my) = (sx / n, sy / n);
            let cov: f64 = pts.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
            let var: f64 = pts.iter().map(|(x, _)| (x - mx).powi(2)).sum();
            cov / var
        };
        let slopes: Vec<String> = Model::ALL
            .iter()
            .map(|&m| format!("{} {:.0}", m.as_str(), slope(m)))
            .collect();
        let steeper = slope(Model::External).min(slope(Model::Edge))
            > slope(Model::Function).max(slope(Model::Client));
        let rising = Model::ALL.iter().all(|&m| slope(m) > 0.0);
        // The gap between in-client and in-function, averaged over the
        // short chains (up to 4 functions) and the long ones (10 or more).
        let gap = |keep: &dyn Fn(usize) -> bool| {
            let gaps: Vec<f64> = lengths
                .iter()
                .filter(|&&len| keep(len))
                .filter_map(|&len| Some(net(Model::Client, len)? - net(Model::Function, len)?))
                .collect();
            gaps.iter().sum::<f64>() / gaps.len().max(1) as f64
        };
        let (short, long) = (gap(&|len| len <= 4), gap(&|len| len >= 10));
        let _ = writeln!(
            out,
            "\n- \"The latency grows with the chain's length, more steeply for external and \
             in-edge\": {} (ms per function: {}).\n\
             - \"In-client departs from in-function only for the longest chains\": in-client \
             exceeds in-function by {short:.0} ms on average for chains of up to 4 functions and \
             by {long:.0} ms for chains of 10 or more; {} (taken as: at least twice the gap).\n",
            verdict(rising && steeper),
            slopes.join(", "),
            verdict(long > 2.0 * short)
        );
    }
    out
}
