//! Seed 003's workload: the Spår trace's DAG jobs turned into stateful
//! chains, with the figures the seed's simulator gives for it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use weft_sim::{Factors, Pool};

fn trace() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/spar/batch_task.csv")
}

#[test]
fn the_spar_trace_gives_the_seeds_pool_of_stateful_chains() {
    let pool = Pool::from_spar(&trace(), Factors::default()).unwrap();
    assert_eq!((pool.traced, pool.jobs.len()), (15_478, 4_788));
    let mut lengths: BTreeMap<usize, usize> = BTreeMap::new();
    for j in &pool.jobs {
        *lengths.entry(j.chain.len()).or_default() += 1;
    }
    let want = [
        (2, 1092),
        (3, 1504),
        (4, 1103),
        (5, 548),
        (6, 255),
        (7, 151),
        (8, 68),
        (9, 27),
        (10, 9),
        (11, 8),
        (12, 3),
        (13, 6),
        (14, 6),
        (16, 1),
        (19, 1),
        (21, 2),
        (22, 2),
        (25, 2),
    ];
    assert_eq!(lengths, BTreeMap::from(want));
    let tasks: Vec<_> = pool.jobs.iter().flat_map(|j| &j.chain).collect();
    assert_eq!(tasks.len(), 17_769);
    assert_eq!(tasks.iter().filter(|t| !t.states.is_empty()).count(), 6_404);
    assert_eq!(tasks.iter().filter(|t| t.ops == 0).count(), 394);
    let states: usize = pool.jobs.iter().map(|j| j.states.len()).sum();
    assert!((states as f64 / 4_788.0 - 2.15).abs() < 0.01, "{states}");
    // The first job's first task: 268 s at half a core, 0.3 of memory.
    let first = &pool.jobs[0];
    assert!(first.chain.iter().all(|t| t.arg_bytes > 0));
    assert_eq!(first.return_bytes, first.chain[0].arg_bytes);
}

#[test]
fn a_bad_trace_line_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    for (text, says) in [
        ("0.0,j_1,M1,3,100.0,0.3\n", ":1: 6 fields"),
        ("0.0,x_1,M1,3,100.0,0.3,1\n", ":1: job `x_1` is not `j_N`"),
        (
            "0.0,j_1,M1,3,100.0,0.3,1\n0.0,j_1,M0_1,3,1,0.3,1\n",
            ":2: task name `M0_1`",
        ),
        (
            "0.0,j_1,M1,soon,100.0,0.3,1\n",
            ":1: duration `soon` is not a number",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let e = Pool::from_spar(&path, Factors::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{e}\n  should say: {says}");
    }
    // A job whose chain reads a state: `M1`, then `R2_1_3` reads task 3.
    std::fs::write(
        &path,
        "5.0,j_7,M1,10,100.0,0.5,1\n5.0,j_7,R2_1_3,2,50.0,0.2,1\n5.0,j_7,M3,1,100.0,0.25,1\n",
    )
    .unwrap();
    let pool = Pool::from_spar(&path, Factors::default()).unwrap();
    let j = &pool.jobs[0];
    assert_eq!((j.name.as_str(), j.arrival_secs), ("j_7", 5.0));
    assert_eq!(j.chain.len(), 2);
    assert_eq!((j.chain[0].ops, j.chain[1].ops), (1_000_000, 100_000));
    assert_eq!(j.chain[1].states, vec![0]);
    assert_eq!(j.states, vec![250_000]);
    assert_eq!(j.return_bytes, 500_000);
}
