//! `workflow`: what a durable step costs on one node, with the embedded
//! store (every step's result committed before the next step starts),
//! against the same function invoked directly, side by side in one run.
//!
//! The guest (`bench/guests/rust/src/bin/echo.rs`) answers its input, so
//! every step moves the same bytes. Measured:
//!
//! * **a run end to end**: start to end of a 3-step and a 10-step sequence
//!   (`Workflows::run` then `wait`), against 3 and 10 direct invocations
//!   one after the other; the overhead of a durable step is the difference
//!   of those differences over 7 (the run's own start and end commits
//!   cancel out);
//! * **steps per second** with 1 and 64 runs of 10 steps at once, against
//!   direct invocations at the same concurrency;
//! * **flat replay**: the mean time per step over steps 1–100 and over
//!   steps 901–1,000 of a 1,000-step sequence;
//! * **workflows in code** (`bench/guests/rust/src/bin/steps.rs`): runs of
//!   an orchestrator making 3 and 10 durable calls of the same function,
//!   the marginal durable call against a direct invocation as above; and
//!   the replay after a suspension, after 10 and 1,000 recorded steps (a
//!   20 ms sleep at the run's end: the orchestrator's last invocation,
//!   start to end, as its step records it; and the wake-up, from the
//!   sleep's end to that start).

use crate::node::{self, Node, median, quantile, spread};
use anyhow::{Result, ensure};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use weft_manifest::{FunctionSpec, Name, NodeConfig, WorkflowSpec};
use weft_workflow::Workflows;

const INPUT: &[u8] = b"{\"image\":\"cat.png\",\"size\":1024}";

/// A run of `workflow` on `input` from start to end, which must succeed:
/// how it ended and its wall time.
pub(crate) async fn run_to_end(
    wf: &Arc<Workflows>,
    workflow: &str,
    input: Bytes,
) -> Result<(weft_workflow::RunView, Duration)> {
    let t = Instant::now();
    let run = wf.run(workflow, input).await?;
    let v = wf.wait(&run.id, Duration::from_secs(600)).await?;
    ensure!(
        v.run.state == weft_workflow::RunState::Succeeded,
        "run {} of {workflow} ended {:?}",
        run.id,
        v.run.error
    );
    Ok((v, t.elapsed()))
}

/// A run of `workflow` from start to end; its wall time in µs.
async fn run_once(wf: &Arc<Workflows>, workflow: &str) -> Result<f64> {
    let (_, took) = run_to_end(wf, workflow, Bytes::from_static(INPUT)).await?;
    Ok(took.as_secs_f64() * 1e6)
}

/// `n` direct invocations of `echo`, each taking the last one's output;
/// their wall time in µs.
async fn direct(node: &Node, n: usize) -> Result<f64> {
    let t = Instant::now();
    let mut input = Bytes::from_static(INPUT);
    for _ in 0..n {
        input = node.invoke("echo", input).await?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e6)
}

fn sequence(n: usize) -> Result<WorkflowSpec> {
    let names = vec![Name::new("echo")?; n];
    let mut spec = WorkflowSpec::sequence(&names);
    for (i, s) in spec.steps.iter_mut().enumerate() {
        *s = weft_manifest::StepDecl::Step(Box::new(weft_manifest::StepSpec {
            name: Some(Name::new(&format!("s{i}"))?),
            ..weft_manifest::StepSpec::new(Name::new("echo")?)
        }));
    }
    Ok(spec)
}

pub(crate) async fn run(quick: bool) -> Result<()> {
    let (rounds, n, secs) = if quick { (3, 30, 2) } else { (3, 100, 5) };
    let node = Node::open(NodeConfig::default()).await?;
    node.deploy("echo", node::guest("echo")?, FunctionSpec::default())
        .await?;
    let wf = Workflows::start(node.r.clone()).await?;
    for (name, steps) in [("three", 3), ("ten", 10), ("long", 1000)] {
        wf.deploy(name, sequence(steps)?).await?;
    }
    let steps = node::guest("steps")?;
    for (name, calls, values, suspend) in [
        ("code-three", 3, false, false),
        ("code-ten", 10, false, false),
        ("values-ten-suspended", 10, true, true),
        ("values-long-suspended", 1000, true, true),
    ] {
        let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
        let spec = FunctionSpec {
            calls: vec![Name::new("echo")?],
            config: [
                ("calls".to_string(), calls.to_string()),
                ("values".to_string(), yes(values)),
                ("suspend".to_string(), yes(suspend)),
            ]
            .into(),
            ..FunctionSpec::default()
        };
        node.deploy(name, steps.clone(), spec).await?;
        wf.deploy(name, WorkflowSpec::code(Name::new(name)?))
            .await?;
    }
    for _ in 0..10 {
        run_once(&wf, "ten").await?;
        run_once(&wf, "code-ten").await?;
        direct(&node, 10).await?;
    }

    println!(
        "\n## workflow: a durable step on one node, embedded store (µs; p50 of {n} runs per round)"
    );
    println!("{rounds} rounds, the four variants interleaved\n");
    let labels = [
        "3-step run, start to end",
        "10-step run, start to end",
        "3 direct invocations",
        "10 direct invocations",
        "in code: 3 durable calls, start to end",
        "in code: 10 durable calls, start to end",
    ];
    let mut p50s: Vec<Vec<f64>> = vec![Vec::new(); labels.len()];
    let mut overheads = Vec::new();
    let mut ratios = Vec::new();
    let mut code_overheads = Vec::new();
    let mut code_ratios = Vec::new();
    for _ in 0..rounds {
        let mut t: Vec<Vec<f64>> = (0..labels.len()).map(|_| Vec::with_capacity(n)).collect();
        for _ in 0..n {
            t[0].push(run_once(&wf, "three").await?);
            t[1].push(run_once(&wf, "ten").await?);
            t[2].push(direct(&node, 3).await?);
            t[3].push(direct(&node, 10).await?);
            t[4].push(run_once(&wf, "code-three").await?);
            t[5].push(run_once(&wf, "code-ten").await?);
        }
        let p: Vec<f64> = t.iter_mut().map(|v| quantile(v, 0.5)).collect();
        for (i, x) in p.iter().enumerate() {
            p50s[i].push(*x);
        }
        overheads.push(((p[1] - p[0]) - (p[3] - p[2])) / 7.0);
        ratios.push((p[1] - p[0]) / (p[3] - p[2]));
        code_overheads.push(((p[5] - p[4]) - (p[3] - p[2])) / 7.0);
        code_ratios.push((p[5] - p[4]) / (p[3] - p[2]));
    }
    println!("| variant | p50 µs: median of rounds (min–max) |");
    println!("| --- | --- |");
    for (i, l) in labels.iter().enumerate() {
        let (lo, hi) = spread(&p50s[i]);
        println!("| {l} | {:.0} ({lo:.0}–{hi:.0}) |", median(p50s[i].clone()));
    }
    let (lo, hi) = spread(&overheads);
    println!(
        "\noverhead of a durable step (marginal, 10-step less 3-step, less the same for direct calls): {:.0} µs ({lo:.0}–{hi:.0})",
        median(overheads.clone())
    );
    let (lo, hi) = spread(&ratios);
    println!(
        "a durable step against a direct invocation (marginal): {:.2}× ({lo:.2}–{hi:.2})",
        median(ratios.clone())
    );
    let (lo, hi) = spread(&code_overheads);
    println!(
        "overhead of a durable call in code (marginal, the same way): {:.0} µs ({lo:.0}–{hi:.0})",
        median(code_overheads.clone())
    );
    let (lo, hi) = spread(&code_ratios);
    println!(
        "a durable call in code against a direct invocation (marginal): {:.2}× ({lo:.2}–{hi:.2})",
        median(code_ratios.clone())
    );
    let floor = node::redb_commit_us(node.dir.path(), 200)?;
    println!("floor: one durable redb commit of a small row on this disk: {floor:.0} µs");

    println!(
        "\n### steps per second ({secs} s per measure; runs of 10 steps against direct invocations)\n"
    );
    println!("| concurrent | workflow steps/s: median (min–max) | direct invocations/s | ratio |");
    println!("| --- | --- | --- | --- |");
    for c in [1usize, 64] {
        let mut w = Vec::new();
        let mut d = Vec::new();
        for _ in 0..rounds {
            w.push(throughput(&wf, &node, c, secs, true).await?);
            d.push(throughput(&wf, &node, c, secs, false).await?);
        }
        let r: Vec<f64> = w.iter().zip(&d).map(|(a, b)| a / b).collect();
        let ((wl, wh), (dl, dh), (rl, rh)) = (spread(&w), spread(&d), spread(&r));
        println!(
            "| {c} | {:.0} ({wl:.0}–{wh:.0}) | {:.0} ({dl:.0}–{dh:.0}) | {:.2}× ({rl:.2}–{rh:.2}) |",
            median(w.clone()),
            median(d.clone()),
            median(r.clone())
        );
    }

    println!("\n### flat replay: a 1,000-step sequence, mean ms per step\n");
    println!("| round | steps 1–100 | steps 901–1,000 | ratio |");
    println!("| --- | --- | --- | --- |");
    let mut flat = Vec::new();
    for round in 1..=rounds {
        let (v, _) = run_to_end(&wf, "long", Bytes::from_static(INPUT)).await?;
        let ended: Vec<u64> = v.steps.iter().map(|s| s.ended_ms.unwrap_or(0)).collect();
        let early = (ended[100] - ended[0]) as f64 / 100.0;
        let late = (ended[999] - ended[899]) as f64 / 100.0;
        flat.push(late / early);
        println!(
            "| {round} | {early:.3} | {late:.3} | {:.2}× |",
            late / early
        );
    }
    let (lo, hi) = spread(&flat);
    println!(
        "\nstep 1,000 against step 10: {:.2}× ({lo:.2}–{hi:.2})",
        median(flat)
    );

    println!(
        "\n### workflows in code: replay after a suspension (ms, p50 per round: the orchestrator invoked again answering every recorded step from the journal; wake-up: from the sleep's end to that invocation)\n"
    );
    println!("| round | replay of 10 steps | of 1,000 | per replayed step (µs) | wake-up |");
    println!("| --- | --- | --- | --- | --- |");
    let mut per_step = Vec::new();
    let mut longs = Vec::new();
    for round in 1..=rounds {
        let (mut short, mut long, mut wake) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let (r, w) = replay_ms(&wf, "values-ten-suspended").await?;
            short.push(r);
            wake.push(w);
            // The long runs take 100× longer: a tenth as many.
            if i % 10 == 0 {
                long.push(replay_ms(&wf, "values-long-suspended").await?.0);
            }
        }
        let (s, l) = (quantile(&mut short, 0.5), quantile(&mut long, 0.5));
        let step = (l - s) * 1e3 / 990.0;
        per_step.push(step);
        longs.push(l);
        println!(
            "| {round} | {s:.0} | {l:.0} | {step:.1} | {:.0} |",
            quantile(&mut wake, 0.5)
        );
    }
    let (lo, hi) = spread(&per_step);
    println!(
        "\nreplay of a recorded step: {:.1} µs ({lo:.1}–{hi:.1}); of 1,000: {:.0} ms",
        median(per_step),
        median(longs)
    );
    node.close().await;
    Ok(())
}

/// A run of `workflow` (an orchestrator that sleeps at its end) from
/// start to end: the ms its replay took (its last invocation, as its step
/// records it) and the ms from the sleep's end to that invocation.
async fn replay_ms(wf: &Arc<Workflows>, workflow: &str) -> Result<(f64, f64)> {
    let (v, _) = run_to_end(wf, workflow, Bytes::from_static(INPUT)).await?;
    let until = v
        .steps
        .iter()
        .find(|s| s.name == "end")
        .and_then(|s| s.until_ms);
    let o = v.steps.first();
    match (
        until,
        o.and_then(|s| s.started_ms),
        o.and_then(|s| s.ended_ms),
    ) {
        (Some(u), Some(s), Some(e)) if s >= u => Ok(((e - s) as f64, (s - u) as f64)),
        _ => anyhow::bail!("run of {workflow} did not replay after its sleep: {o:?}"),
    }
}

/// Steps (or direct invocations) per second with `c` callers for `secs`.
async fn throughput(
    wf: &Arc<Workflows>,
    node: &Node,
    c: usize,
    secs: u64,
    workflow: bool,
) -> Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(secs);
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..c {
        let (wf, r, done) = (wf.clone(), node.r.clone(), done.clone());
        tasks.spawn(async move {
            while Instant::now() < until {
                if workflow {
                    run_once(&wf, "ten").await?;
                    done.fetch_add(10, Ordering::Relaxed);
                } else {
                    node::invoke(&r, "echo", Bytes::from_static(INPUT)).await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64())
}
