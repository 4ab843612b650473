//! `sim`: the discrete-event simulator's speed, single-threaded.
//!
//! 1. **The event queue alone**: a hold model (the classic priority-queue
//!    benchmark: a queue kept at 10,000 pending events, each pop scheduling
//!    one more at an exponential delay), events per second.
//! 2. **The continuum**: seed 003's IIoT and urban topologies with 500 of
//!    its Spår chains arriving at 5 a second, each state model, under each
//!    built-in policy (`load`, `load+net`, `weft`: the production
//!    `weft-sched` deciding every step): events per second of the whole
//!    run, placement and bookkeeping included.
//!
//! Each figure is the median of three runs, with the spread (min–max).

use std::hint::black_box;
use std::time::Instant;
use weft_sim::continuum::{self, Config};
use weft_sim::des::Events;
use weft_sim::seed003::{Model, Rng};
use weft_sim::study;
use weft_sim::{Pool, Topology, Workload};

fn median_spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn show(what: &str, runs: Vec<f64>) {
    let (m, lo, hi) = median_spread(runs);
    println!(
        "  {what:<34} {:>7.2} M events/s  (runs {:.2}–{:.2})",
        m / 1e6,
        lo / 1e6,
        hi / 1e6
    );
}

/// Events per second of the hold model with `pending` events and `total`
/// pops.
fn hold(pending: usize, total: u64) -> f64 {
    let mut rng = Rng::new(42);
    let mut ev: Events<u32> = Events::new();
    for i in 0..pending {
        ev.at((rng.unit() * 1e6) as u64, i as u32);
    }
    let started = Instant::now();
    for _ in 0..total {
        let Some(x) = ev.pop() else { break };
        let delay = (-(1.0 - rng.unit()).ln() * 1e6) as u64;
        ev.after(delay, black_box(x));
    }
    total as f64 / started.elapsed().as_secs_f64()
}

pub(crate) fn run(quick: bool) -> anyhow::Result<()> {
    let runs = 3;
    println!("\n== sim: discrete-event simulator, one thread");
    let pops = if quick { 1_000_000 } else { 5_000_000 };
    show(
        "event queue (hold, 10k pending)",
        (0..runs).map(|_| hold(10_000, pops)).collect(),
    );
    let pool = Pool::seed003()?;
    for name in ["iiot", "urban"] {
        let t = Topology::seed003(name).ok_or_else(|| anyhow::anyhow!("no topology {name}"))?;
        let w = Workload::from_pool(&t, &pool, 500, 5.0, 10, 1);
        println!(
            "  {name}: {} chains, {} steps",
            w.chains.len(),
            w.chains.iter().map(|c| c.steps.len()).sum::<usize>()
        );
        for policy in study::POLICIES {
            let mut rates = Vec::new();
            let mut events = 0;
            for _ in 0..runs {
                let started = Instant::now();
                let mut n = 0;
                for model in Model::ALL {
                    let mut p = study::builtin(policy)
                        .ok_or_else(|| anyhow::anyhow!("no policy {policy}"))?;
                    let c = Config {
                        model,
                        ..Config::default()
                    };
                    n += black_box(continuum::run(&t, &w, c, p.as_mut())).events;
                }
                rates.push(n as f64 / started.elapsed().as_secs_f64());
                events = n;
            }
            show(&format!("{name}, {policy} ({events} events)"), rates);
        }
    }
    Ok(())
}
