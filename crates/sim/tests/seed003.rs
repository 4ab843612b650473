//! Seed 003's evaluation over its own inputs: the orderings the paper
//! reports hold (a few replications; the full sweep is the reproduction's).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use weft_sim::seed003::{Alloc, Model, Params, World, mean_ci};
use weft_sim::{Factors, Pool, Topology};

fn data(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(rel)
}

/// Per model: mean over replications of the per-job mean (proc + net
/// seconds, net seconds, traffic MB).
fn run(topology: &str, jobs: usize, alloc: Alloc, reps: u64) -> Vec<(Model, f64, f64, f64)> {
    let t = Topology::load(&data("statesim"), topology).unwrap();
    let pool = Pool::from_spar(&data("spar/batch_task.csv"), Factors::default()).unwrap();
    let w = World::new(&t, &pool, Params::default());
    let mut per: Vec<[Vec<f64>; 3]> = vec![Default::default(); 4];
    for seed in 1..=reps {
        let runs = w.replicate(jobs, seed, alloc, &Model::ALL);
        for (m, jobs) in runs.iter().enumerate() {
            let n = jobs.len() as f64;
            per[m][0].push(jobs.iter().map(|j| j.proc_s + j.net_s).sum::<f64>() / n);
            per[m][1].push(jobs.iter().map(|j| j.net_s).sum::<f64>() / n);
            per[m][2].push(jobs.iter().map(|j| j.traffic).sum::<f64>() / n / 1e6);
        }
    }
    Model::ALL
        .iter()
        .zip(per)
        .map(|(m, [lat, net, mb])| (*m, mean_ci(&lat).0, mean_ci(&net).0, mean_ci(&mb).0))
        .collect()
}

#[test]
fn the_seeds_orderings_hold_on_the_iiot_topology() {
    let with_net = run("iiot.0", 500, Alloc::LoadNet, 8);
    let load = run("iiot.0", 500, Alloc::Load, 8);
    let get = |rows: &[(Model, f64, f64, f64)], m: Model| *rows.iter().find(|r| r.0 == m).unwrap();
    let (ext, edge, func, client) = (
        get(&with_net, Model::External),
        get(&with_net, Model::Edge),
        get(&with_net, Model::Function),
        get(&with_net, Model::Client),
    );
    // Latency: in-function < in-client < in-edge < external, end to end
    // (processing, the same under every model, included) ...
    assert!(
        func.1 < client.1 && client.1 < edge.1 && edge.1 < ext.1,
        "{with_net:?}"
    );
    // ... and in-client ≪ in-edge in the network's part (Fig. 6's order).
    assert!(
        func.2 < client.2 && client.2 * 2.0 < edge.2 && edge.2 < ext.2,
        "{with_net:?}"
    );
    // Traffic: well below Load's for every model under Load+net (by 1.9×
    // for in-edge, ~3× for the others); under Load in-client moves the
    // most, under Load+net in-edge.
    for m in Model::ALL {
        assert!(
            get(&with_net, m).3 * 1.5 < get(&load, m).3,
            "{m:?}: {with_net:?} {load:?}"
        );
    }
    let most =
        |rows: &[(Model, f64, f64, f64)]| rows.iter().max_by(|a, b| a.3.total_cmp(&b.3)).unwrap().0;
    assert_eq!(most(&load), Model::Client, "{load:?}");
    assert_eq!(most(&with_net), Model::Edge, "{with_net:?}");
}

#[test]
fn a_replication_is_the_same_for_the_same_seed() {
    let t = Topology::load(&data("statesim"), "urban_sensing.0").unwrap();
    let pool = Pool::from_spar(&data("spar/batch_task.csv"), Factors::default()).unwrap();
    let w = World::new(&t, &pool, Params::default());
    let a = w.replicate(100, 7, Alloc::LoadNet, &Model::ALL);
    assert_eq!(a, w.replicate(100, 7, Alloc::LoadNet, &Model::ALL));
    assert_ne!(a, w.replicate(100, 8, Alloc::LoadNet, &Model::ALL));
    // About the jobs asked for.
    assert!((60..140).contains(&a[0].len()), "{}", a[0].len());
    let (mean, half) = mean_ci(&[1.0, 2.0, 3.0]);
    assert_eq!(mean, 2.0);
    assert!((half - 4.303 * (1.0f64 / 3.0).sqrt()).abs() < 1e-9);
}

#[test]
fn the_sweep_gives_the_same_figures_on_one_thread_as_on_three() {
    let none = |_: usize, _: usize| {};
    let one = weft_sim::reproduce::seed003(3, 1, &none).unwrap();
    let three = weft_sim::reproduce::seed003(3, 3, &none).unwrap();
    assert_eq!(one, three);
    assert_eq!(
        weft_sim::summary::csv(&one.rows),
        weft_sim::summary::csv(&three.rows)
    );
}
