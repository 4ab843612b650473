//! The discrete-event continuum: what a step pays where, waiting for a
//! worker, determinism, Weft's placement of actors, the seed's orderings,
//! and CSV traces with every kind of bad line refused by file and line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use weft_sim::continuum::{self, Config, Placing, Policy, World};
use weft_sim::des::nanos;
use weft_sim::policies::{LoadNet, Weft};
use weft_sim::seed003::Model;
use weft_sim::study::{self, Source, Study};
use weft_sim::{Pool, Synthetic, Topology, Workload};

/// Three nodes around one switch: a slow client `a`, `b` four times as
/// fast, `c` sixteen times, behind a 100 Mb/s link.
fn three() -> Topology {
    let nodes = "0;a;1000000000;1;arm;sbc;rpi3b+\n\
                 1;b;4000000000;1;x86;sffc;nuci5\n\
                 2;c;16000000000;1;x86;server;server\n";
    let links = "0;1000;la;node\n1;1000;lb;node\n2;100;lc;node\n";
    let edges = "a la\nla a sw\nb lb\nlb b sw\nc lc\nlc c sw\nsw la lb lc\n";
    let p = |ext: &str| std::path::PathBuf::from(format!("three.{ext}"));
    let (n, l, e) = (p("nodes"), p("links"), p("edges"));
    Topology::parse([&n, &l, &e], [nodes, links, edges]).unwrap()
}

const HEADER: &str = "chain,arrival_s,client,key,function,ops,arg_bytes,out_bytes,state_bytes\n";

fn trace(t: &Topology, lines: &str) -> Workload {
    Workload::parse_csv(Path::new("t.csv"), &format!("{HEADER}{lines}"), t).unwrap()
}

/// Every step on one node.
struct On(usize);

impl Policy for On {
    fn name(&self) -> &str {
        "on"
    }
    fn place(&mut self, _: &World<'_>, _: &Placing<'_>) -> Option<usize> {
        Some(self.0)
    }
}

fn config(model: Model) -> Config {
    Config {
        model,
        ..Config::default()
    }
}

#[test]
fn a_chain_alone_waits_for_nothing_and_pays_what_its_model_moves() {
    let t = three();
    let w = trace(
        &t,
        "x,0.5,a,k,f,8000000,1000000,500000,2000000\n\
         x,0.5,a,k,g,4000000,500000,1000,2000000\n",
    );
    let (a, b) = (t.node("a").unwrap(), t.node("b").unwrap());
    let tx = |from: usize, to: usize, bytes: u64| t.transfer_secs(from, to, bytes);
    let cloud = 0.06 + 8.0 * 2e6 / 50e6;
    let k = t.central();
    assert_ne!(k, b);
    // Per model, each step's (before, after) seconds on b.
    let expect: [(Model, [(f64, f64); 2]); 4] = [
        (
            Model::Client,
            [
                (tx(a, b, 3_000_000), tx(b, a, 2_500_000)),
                (tx(a, b, 2_500_000), tx(b, a, 2_001_000)),
            ],
        ),
        (
            Model::External,
            [
                (tx(a, b, 1_000_000) + cloud, tx(b, a, 500_000) + cloud),
                (tx(a, b, 500_000) + cloud, tx(b, a, 1_000) + cloud),
            ],
        ),
        // The state between b and the central node.
        (
            Model::Edge,
            [
                (
                    tx(a, b, 1_000_000) + tx(k, b, 2_000_000),
                    tx(b, a, 500_000) + tx(b, k, 2_000_000),
                ),
                (
                    tx(a, b, 500_000) + tx(k, b, 2_000_000),
                    tx(b, a, 1_000) + tx(b, k, 2_000_000),
                ),
            ],
        ),
        (
            Model::Function,
            [
                (tx(a, b, 1_000_000), tx(b, a, 500_000)),
                (tx(a, b, 500_000), tx(b, a, 1_000)),
            ],
        ),
    ];
    for (model, steps) in expect {
        let o = continuum::run(&t, &w, config(model), &mut On(b));
        let r = o.chains[0];
        let net: u64 = steps.iter().map(|&(x, y)| nanos(x) + nanos(y)).sum();
        // 8e6 ops and 4e6 ops at 4e9 ops/s.
        let proc = nanos(2e-3) + nanos(1e-3);
        assert_eq!((r.net, r.proc, r.queue), (net, proc, 0), "{model:?}");
        assert_eq!(r.latency, net + proc, "{model:?}");
        assert_eq!(o.end, nanos(0.5) + r.latency, "{model:?}");
        assert_eq!(o.placements, vec![vec![Some(b), Some(b)]]);
        let (s0, s1) = (
            nanos(steps[0].0) + nanos(steps[0].1),
            nanos(steps[1].0) + nanos(steps[1].1),
        );
        assert_eq!(
            o.latencies,
            vec![vec![Some(s0 + nanos(2e-3)), Some(s1 + nanos(1e-3))]],
            "{model:?}"
        );
        // Per step: placed, its argument there, ready, finished, back; and
        // a heartbeat a second while it runs.
        assert_eq!(o.events, 10 + o.end / 1_000_000_000, "{model:?}");
        let quiet = Config {
            heartbeat: 0,
            ..config(model)
        };
        assert_eq!(continuum::run(&t, &w, quiet, &mut On(b)).events, 10);
    }
}

#[test]
fn steps_wait_for_a_free_worker_in_arrival_order() {
    let t = three();
    let w = trace(
        &t,
        "x,0,b,k1,f,4000000,0,0,0\ny,0,b,k2,f,4000000,0,0,0\nz,0,b,k3,f,4000000,0,0,0\n",
    );
    let b = t.node("b").unwrap();
    let o = continuum::run(&t, &w, config(Model::Function), &mut On(b));
    let queued: Vec<u64> = o.chains.iter().map(|r| r.queue).collect();
    assert_eq!(queued, vec![0, nanos(1e-3), nanos(2e-3)]);
    // Two workers share the node's speed: each step runs twice as long.
    let two = Config {
        slots: 2,
        ..config(Model::Function)
    };
    let o = continuum::run(&t, &w, two, &mut On(b));
    let got: Vec<(u64, u64)> = o.chains.iter().map(|r| (r.proc, r.queue)).collect();
    assert_eq!(
        got,
        vec![
            (nanos(2e-3), 0),
            (nanos(2e-3), 0),
            (nanos(2e-3), nanos(2e-3))
        ]
    );
}

#[test]
fn in_function_state_moves_when_its_key_runs_elsewhere() {
    let t = three();
    // Two chains of one key, one function: the second runs on c.
    let w = trace(
        &t,
        "x,0,a,k,f,1000,0,0,1000000\ny,1,a,k,f,1000,0,0,1000000\n",
    );
    struct Alternate(usize);
    impl Policy for Alternate {
        fn name(&self) -> &str {
            "alternate"
        }
        fn place(&mut self, _: &World<'_>, _: &Placing<'_>) -> Option<usize> {
            self.0 += 1;
            Some(self.0)
        }
    }
    let o = continuum::run(&t, &w, config(Model::Function), &mut Alternate(0));
    let (b, c) = (t.node("b").unwrap(), t.node("c").unwrap());
    assert_eq!(o.placements, vec![vec![Some(b)], vec![Some(c)]]);
    assert_eq!(o.chains[0].traffic, 0.0);
    assert_eq!(
        o.chains[1].traffic,
        f64::from(t.hops(b, c)) * 1e6,
        "the state crossed from b to c"
    );
    assert_eq!(o.chains[1].net, nanos(t.transfer_secs(b, c, 1_000_000)));
}

fn pool_study(policies: &[&str], models: &[Model], jobs: usize, reps: u64) -> Study {
    Study {
        topology_name: "iiot".into(),
        topology: Topology::seed003("iiot").unwrap(),
        source: Source::Pool {
            pool: Pool::seed003().unwrap(),
            jobs,
            rate_per_s: 5.0,
            functions: 10,
        },
        policies: policies.iter().map(|p| p.to_string()).collect(),
        models: models.to_vec(),
        replications: reps,
        seed: 1,
        config: Config::default(),
        deadline: None,
    }
}

fn mean(r: &study::Results, policy: &str, model: Model, metric: &str) -> f64 {
    r.rows
        .iter()
        .find(|x| x.policy == policy && x.model == model && x.metric == metric)
        .unwrap()
        .mean
}

#[test]
fn a_study_gives_the_same_bytes_whatever_the_threads() {
    let s = pool_study(&["load", "load+net", "weft"], &Model::ALL, 100, 3);
    let one = study::run(&s, &study::builtin, 1, &|_, _| {}).unwrap();
    let two = study::run(&s, &study::builtin, 2, &|_, _| {}).unwrap();
    assert_eq!(
        weft_sim::summary::csv(&one.rows),
        weft_sim::summary::csv(&two.rows)
    );
    assert_eq!(one.chains_csv, two.chains_csv);
    assert_eq!(one.events, two.events);
    assert_eq!(one.rows.len(), 3 * 4 * study::METRICS.len());
    for r in &one.rows {
        assert!(r.ci_low <= r.mean && r.mean <= r.ci_high, "{r:?}");
    }
    let lines: Vec<&str> = one.chains_csv.lines().collect();
    assert_eq!(
        lines[0],
        "policy,model,chain,client,steps,latency_ms,net_ms,proc_ms,queue_ms,traffic_mb,deadlines,met,refused,nodes"
    );
    // A policy the factory does not know is refused before anything runs.
    let mut bad = s.clone();
    bad.policies.push("random".into());
    let e = study::run(&bad, &study::builtin, 1, &|_, _| {}).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown policy `random`: the built-in ones are load, load+net and weft"
    );
}

#[test]
fn the_seeds_orderings_hold_in_the_event_driven_world() {
    let s = pool_study(&["load", "load+net"], &Model::ALL, 300, 4);
    let r = study::run(&s, &study::builtin, 2, &|_, _| {}).unwrap();
    let lat = |m| mean(&r, "load+net", m, "latency_ms");
    assert!(lat(Model::Function) < lat(Model::Client), "{r:?}");
    assert!(lat(Model::Client) * 2.0 < lat(Model::Edge));
    assert!(lat(Model::Edge) < lat(Model::External));
    for m in Model::ALL {
        let traffic = |p| mean(&r, p, m, "traffic_mb_per_chain");
        assert!(traffic("load+net") * 2.0 < traffic("load"), "{m:?}");
    }
}

#[test]
fn weft_runs_every_step_of_an_actor_on_its_owner() {
    let t = Topology::seed003("iiot").unwrap();
    let w = Workload::synthetic(
        &t,
        &Synthetic {
            chains: 200,
            keys: 5,
            ..Synthetic::default()
        },
        7,
    );
    let o = continuum::run(&t, &w, config(Model::Function), &mut Weft::new());
    let mut owner = std::collections::HashMap::new();
    for (c, nodes) in w.chains.iter().zip(&o.placements) {
        for (s, &x) in c.steps.iter().zip(nodes) {
            let x = x.unwrap();
            let at = *owner.entry((s.function, c.key)).or_insert(x);
            assert_eq!(at, x, "function {} key {} moved", s.function, c.key);
        }
    }
    assert!(owner.len() > 10);
    // So its state never moves: only arguments and outputs cross links.
    let o_net = continuum::run(&t, &w, config(Model::Function), &mut LoadNet);
    let moved = |o: &continuum::Outcome| -> f64 { o.chains.iter().map(|r| r.traffic).sum() };
    let t = &t;
    let args: f64 = w
        .chains
        .iter()
        .zip(&o.placements)
        .flat_map(|(c, nodes)| {
            c.steps.iter().zip(nodes).map(move |(s, x)| {
                let x = x.unwrap();
                f64::from(t.hops(c.client, x)) * s.arg_bytes as f64
                    + f64::from(t.hops(x, c.client)) * s.out_bytes as f64
            })
        })
        .sum();
    assert!((moved(&o) - args).abs() < 1.0, "{} {args}", moved(&o));
    assert!(moved(&o_net) > 0.0);
}

#[test]
fn weft_decides_with_heartbeats_or_with_the_world_as_it_is() {
    let t = Topology::seed003("iiot").unwrap();
    let w = Workload::synthetic(&t, &Synthetic::default(), 3);
    for heartbeat in [0, 1_000_000_000] {
        let c = Config {
            heartbeat,
            ..config(Model::Client)
        };
        let a = continuum::run(&t, &w, c, &mut Weft::new());
        let b = continuum::run(&t, &w, c, &mut Weft::new());
        assert_eq!(a, b, "deterministic at heartbeat {heartbeat}");
        assert_eq!(a.chains.len(), 500);
        assert!(a.chains.iter().all(|r| r.latency >= r.net + r.proc));
    }
}

#[test]
fn a_csv_trace_is_read_in_file_order_and_sorted_by_arrival() {
    let t = three();
    let w = trace(
        &t,
        "# two chains\nlate,2.5,c,k2,g,10,1,2,3\n\nearly,1,a,k1,f,100,10,20,30\n\
         early,1,a,k1,g,200,40,50,60\n",
    );
    assert_eq!(w.functions, vec!["g", "f"]);
    assert_eq!(w.keys, vec!["k2", "k1"]);
    let names: Vec<&str> = w.chains.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["early", "late"]);
    let early = &w.chains[0];
    assert_eq!(
        (early.arrival, early.client),
        (nanos(1.0), t.node("a").unwrap())
    );
    assert_eq!(early.steps.len(), 2);
    assert_eq!((early.steps[1].ops, early.steps[1].state_bytes), (200, 60));
}

#[test]
fn bad_traces_are_refused_naming_the_file_the_line_and_what_is_wrong() {
    let t = three();
    let cases: &[(&str, &str)] = &[
        ("", "t.csv:1: empty trace: expected the header"),
        (
            "chain,arrival,client\nx,0,a\n",
            "t.csv:1: the header is `chain,arrival,client`: expected `chain,arrival_s,",
        ),
        (
            "HEADERx,0,z,k,f,1,1,1,1\n",
            "t.csv:2: `client` names `z`, which is not a node of the topology",
        ),
        ("HEADERx,0,a,k,f,1,1,1\n", "t.csv:2: 8 columns: expected 9"),
        (
            "HEADERx,-1,a,k,f,1,1,1,1\n",
            "t.csv:2: `arrival_s` is `-1`: expected seconds, 0 or more",
        ),
        (
            "HEADERx,0,a,k,f,many,1,1,1\n",
            "t.csv:2: `ops` is `many`: expected a whole number of 0 or more",
        ),
        (
            "HEADERx,0,a,k,f,1,1,1,-4\n",
            "t.csv:2: `state_bytes` is `-4`: expected a whole number",
        ),
        ("HEADER,0,a,k,f,1,1,1,1\n", "t.csv:2: `chain` is empty"),
        (
            "HEADERx,0,a,k,f,1,1,1,1\n# a comment\nx,0,b,k,f,1,1,1,1\n",
            "t.csv:4: chain `x` has another arrival_s, client or key here than at line 2",
        ),
        ("HEADER# nothing\n", "t.csv:1: the trace has no steps"),
    ];
    for (text, want) in cases {
        let text = text.replace("HEADER", HEADER);
        let e = Workload::parse_csv(Path::new("t.csv"), &text, &t)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(want), "{text:?}: got {e}, want {want}");
    }
    // A file that is not there names itself.
    let e = Workload::from_csv(Path::new("/nonexistent/t.csv"), &t).unwrap_err();
    assert!(e.to_string().starts_with("/nonexistent/t.csv: "), "{e}");
}

const DEADLINES: &str =
    "chain,arrival_s,client,key,function,ops,arg_bytes,out_bytes,state_bytes,deadline_ms\n";

fn with_deadlines(t: &Topology, lines: &str) -> Workload {
    Workload::parse_csv(Path::new("t.csv"), &format!("{DEADLINES}{lines}"), t).unwrap()
}

#[test]
fn the_earliest_deadline_gets_the_next_worker_unless_the_node_is_fifo() {
    let t = three();
    let b = t.node("b").unwrap();
    // x takes the worker; y (100 ms) and z (50 ms) wait for it.
    let w = with_deadlines(
        &t,
        "x,0,b,k1,f,40000000,0,0,0,\ny,0.001,b,k2,f,4000000,0,0,0,100\nz,0.002,b,k3,f,4000000,0,0,0,50\n",
    );
    let queued = |scheduler| {
        let c = Config {
            scheduler,
            ..config(Model::Function)
        };
        let o = continuum::run(&t, &w, c, &mut On(b));
        o.chains.iter().map(|r| r.queue).collect::<Vec<_>>()
    };
    // x runs 10 ms; EDF: z at 10 ms, then y at 11 ms.
    assert_eq!(
        queued(continuum::Scheduler::Edf),
        vec![0, nanos(0.011) - nanos(0.001), nanos(0.010) - nanos(0.002)]
    );
    assert_eq!(
        queued(continuum::Scheduler::Fifo),
        vec![0, nanos(0.010) - nanos(0.001), nanos(0.011) - nanos(0.002)]
    );
}

/// The client's node first, then the others by name, but those tried.
struct Near;

impl Policy for Near {
    fn name(&self) -> &str {
        "near"
    }
    fn place(&mut self, w: &World<'_>, p: &Placing<'_>) -> Option<usize> {
        std::iter::once(p.chain.client)
            .chain(w.by_name().iter().copied())
            .find(|x| !p.tried.contains(x))
    }
}

#[test]
fn a_node_refuses_what_it_cannot_meet_and_the_client_hands_it_off() {
    let t = three();
    let (a, b) = (t.node("a").unwrap(), t.node("b").unwrap());
    // Two runs teach a its time (8 ms); then three at once, due in 12 ms:
    // the first is admitted, the second would end at 16 ms behind it.
    let w = with_deadlines(
        &t,
        "w1,0,a,k,f,8000000,0,0,0,\nw2,0.1,a,k,f,8000000,0,0,0,\n\
         d1,1,a,k,f,8000000,0,0,0,12\nd2,1,a,k,f,8000000,0,0,0,12\nd3,1,a,k,f,8000000,0,0,0,12\n",
    );
    let o = continuum::run(&t, &w, config(Model::Function), &mut Near);
    let on: Vec<Option<usize>> = o.placements.iter().map(|p| p[0]).collect();
    // b knows nothing yet: it admits both (nothing ahead of the first).
    assert_eq!(on, vec![Some(a), Some(a), Some(a), Some(b), Some(b)]);
    let handed: Vec<u32> = o.chains.iter().map(|r| r.handed_off).collect();
    assert_eq!(handed, vec![0, 0, 0, 1, 1]);
    assert!(o.chains.iter().all(|r| !r.refused));
    let met: Vec<(u32, u32)> = o.chains.iter().map(|r| (r.deadlines, r.met)).collect();
    assert_eq!(met, vec![(0, 0), (0, 0), (1, 1), (1, 1), (1, 1)]);
    // A node that runs what it cannot meet: all on a, two late.
    let run = Config {
        unmeetable: continuum::Unmeetable::Run,
        ..config(Model::Function)
    };
    let o = continuum::run(&t, &w, run, &mut Near);
    assert!(o.placements.iter().all(|p| p[0] == Some(a)));
    let met: u32 = o.chains.iter().map(|r| r.met).sum();
    assert_eq!(met, 1);
}

#[test]
fn a_step_every_node_refuses_ends_its_chain_refused() {
    let t = three();
    let a = t.node("a").unwrap();
    // Only a, which has learned 8 ms and has one admitted ahead.
    struct OnlyA(usize);
    impl Policy for OnlyA {
        fn name(&self) -> &str {
            "only-a"
        }
        fn place(&mut self, _: &World<'_>, p: &Placing<'_>) -> Option<usize> {
            (!p.tried.contains(&self.0)).then_some(self.0)
        }
    }
    let w = with_deadlines(
        &t,
        "w1,0,a,k,f,8000000,0,0,0,\nd1,1,a,k,f,8000000,0,0,0,12\nd2,1,a,k,f,8000000,0,0,0,12\n\
         d2,1,a,k,g,1,0,0,0,12\n",
    );
    let o = continuum::run(&t, &w, config(Model::Function), &mut OnlyA(a));
    let refused: Vec<bool> = o.chains.iter().map(|r| r.refused).collect();
    assert_eq!(refused, vec![false, false, true]);
    assert_eq!(o.placements[2], vec![None, None], "nothing of it ran");
    assert_eq!(o.chains[2].latency, 0, "refused at once");
}

#[test]
fn weft_hands_off_only_to_a_node_with_time_to_spare() {
    // The slow client `a` sends 600 chains a second of 1–3 steps of 4 ms
    // there (1 ms on b), each step due in 10 ms.
    let t = three();
    let w = Workload::synthetic(
        &t,
        &Synthetic {
            chains: 400,
            rate_per_s: 600.0,
            steps: (1, 3),
            mean_ops: 4e6,
            mean_arg_bytes: 2e4,
            mean_state_bytes: 1e4,
            ..Synthetic::default()
        },
        5,
    )
    .with_deadline(10_000_000);
    let c = config(Model::Client);
    let weft = continuum::run(&t, &w, c, &mut Weft::new());
    let sum = |o: &continuum::Outcome, f: &dyn Fn(&continuum::ChainResult) -> u32| -> u32 {
        o.chains.iter().map(f).sum()
    };
    let (steps, met) = (sum(&weft, &|r| r.deadlines), sum(&weft, &|r| r.met));
    // Refused at a, handed to another node with time to spare, or, with
    // none, refused.
    assert!(sum(&weft, &|r| r.handed_off) > 50);
    let refused = sum(&weft, &|r| u32::from(r.refused));
    assert!(refused > 0 && refused < 100, "{refused}");
    for (r, nodes) in weft.chains.iter().zip(&weft.placements) {
        assert_eq!(
            r.refused,
            nodes.iter().any(Option::is_none),
            "{r:?} {nodes:?}"
        );
    }
    // The same world where nodes run what they cannot meet: nothing is
    // refused, and a larger share is late.
    let run = Config {
        unmeetable: continuum::Unmeetable::Run,
        ..c
    };
    let late = continuum::run(&t, &w, run, &mut Weft::new());
    assert_eq!(sum(&late, &|r| u32::from(r.refused)), 0);
    let share = |met: u32, steps: u32| f64::from(met) / f64::from(steps);
    assert!(
        share(sum(&late, &|r| r.met), sum(&late, &|r| r.deadlines)) < share(met, steps),
        "{met}/{steps} admitted met"
    );
}

#[test]
fn a_study_with_deadlines_reports_how_they_went() {
    let mut s = pool_study(&["load+net", "weft"], &[Model::Client], 200, 2);
    s.deadline = Some(150_000_000);
    let r = study::run(&s, &study::builtin, 2, &|_, _| {}).unwrap();
    for policy in ["load+net", "weft"] {
        let met = mean(&r, policy, Model::Client, "deadline_met_pct");
        let refused = mean(&r, policy, Model::Client, "refused_pct");
        assert!((0.0..=100.0).contains(&met) && met > 50.0, "{policy} {met}");
        assert!((0.0..=100.0).contains(&refused), "{policy} {refused}");
    }
    // Without deadlines, no such rows.
    s.deadline = None;
    let r = study::run(&s, &study::builtin, 2, &|_, _| {}).unwrap();
    assert!(r.rows.iter().all(|x| !x.metric.starts_with("deadline")));
}

#[test]
fn a_trace_gives_deadlines_in_its_tenth_column() {
    let t = three();
    let w = with_deadlines(&t, "x,0,a,k,f,1,1,1,1,2.5\nx,0,a,k,g,1,1,1,1,\n");
    let d: Vec<Option<u64>> = w.chains[0].steps.iter().map(|s| s.deadline).collect();
    assert_eq!(d, vec![Some(2_500_000), None]);
    let w = w.with_deadline(7);
    let d: Vec<Option<u64>> = w.chains[0].steps.iter().map(|s| s.deadline).collect();
    assert_eq!(d, vec![Some(2_500_000), Some(7)]);
    for (line, says) in [
        (
            "x,0,a,k,f,1,1,1,1,0\n",
            "t.csv:2: `deadline_ms` is `0`: expected ms above 0",
        ),
        (
            "x,0,a,k,f,1,1,1,1,soon\n",
            "t.csv:2: `deadline_ms` is `soon`",
        ),
        (
            "x,0,a,k,f,1,1,1,1\n",
            "t.csv:2: 9 columns: expected 10, as the header",
        ),
    ] {
        let e = Workload::parse_csv(Path::new("t.csv"), &format!("{DEADLINES}{line}"), &t)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(says), "{line}: {e}");
    }
}

#[test]
fn weft_stops_counting_answered_calls_before_the_next_heartbeat() {
    // One client sending 300 chains a second: between two heartbeats it
    // sends hundreds of calls, answered in milliseconds. Counted until the
    // next beat, they would make its peers look full and keep the work on
    // the slow client (mean latency 190 ms here before the router's fix,
    // against 7 ms).
    let t = three();
    let w = Workload::synthetic(
        &t,
        &Synthetic {
            chains: 400,
            rate_per_s: 300.0,
            steps: (1, 3),
            mean_ops: 4e6,
            mean_arg_bytes: 2e4,
            mean_state_bytes: 1e4,
            ..Synthetic::default()
        },
        5,
    );
    let latency = |heartbeat| {
        let c = Config {
            heartbeat,
            ..config(Model::Client)
        };
        let o = continuum::run(&t, &w, c, &mut Weft::new());
        o.chains.iter().map(|r| r.latency as f64).sum::<f64>() / o.chains.len() as f64
    };
    let (exact, beats) = (latency(0), latency(1_000_000_000));
    assert!(beats < 1.5 * exact, "{beats} ns against {exact} ns");
}
