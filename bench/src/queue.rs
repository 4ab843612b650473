//! `queue`: asynchronous invocations through the node's durable queue.
//!
//! * Accepted invocations per second, by 1 and by 64 concurrent callers of
//!   `Controller::enqueue` (what `POST /fn/NAME` with `Prefer: respond-async`
//!   does before answering 202): each returns once its record is committed
//!   to disk. Twice: with the dispatcher running them meanwhile, as on a
//!   live node (the rate at which they complete is shown too), and with the
//!   function's only slot held by a synchronous invocation still waiting for
//!   its body, so that nothing is claimed or completed meanwhile (acceptance
//!   alone). Floor: durable redb
//!   commits per second on the same disk, one small row each.
//! * Enqueue-to-start latency: the guest (`stamp`, clock granted) answers the
//!   wall clock at its start; the bench reads the clock just before
//!   `enqueue`. One at a time (the next is queued once the previous one
//!   finished), and a burst from 64 concurrent callers.

use crate::node::{self, Node, median, quantile, spread};
use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft_controller::{Controller, InvocationState};
use weft_manifest::{FunctionSpec, NodeConfig};
use weft_router::Router;

const FUNCTION: &str = "stamp";
/// The same guest with one slot, held during the acceptance-only runs.
const HELD: &str = "held";

pub(crate) async fn run(quick: bool) -> Result<()> {
    let (rounds, n1, n64, alone, burst) = if quick {
        (3, 50, 1_000, 30, 256)
    } else {
        (5, 200, 4_000, 100, 1_024)
    };
    let node = Node::open(NodeConfig::default()).await?;
    node.deploy(FUNCTION, node::guest("stamp")?, FunctionSpec::default())
        .await?;
    node.invoke(FUNCTION, "warm").await?;
    node.deploy(
        HELD,
        node::guest("stamp")?,
        FunctionSpec {
            max_concurrency: Some(1),
            ..FunctionSpec::default()
        },
    )
    .await?;
    node.invoke(HELD, "warm").await?;
    let floor_dir = tempfile::tempdir_in(node.dir.path())?;

    let mut floor = Vec::new();
    // [1 caller running, 64 running, 1 held, 64 held]
    let mut tput: [Vec<Throughput>; 4] = Default::default();
    let (mut lat_alone, mut acc_alone) = (Vec::new(), Vec::new());
    let (mut lat_burst, mut acc_burst) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        eprintln!("queue: round {}/{rounds}", round + 1);
        floor.push(1e6 / node::redb_commit_us(floor_dir.path(), 200)?);
        tput[0].push(throughput(&node.r, FUNCTION, 1, n1).await?);
        tput[1].push(throughput(&node.r, FUNCTION, 64, n64).await?);
        // Holds HELD's only slot: a synchronous invocation whose request
        // body takes 4 s to arrive (the slot is taken before the body is read).
        let hold = {
            let r = node.r.clone();
            tokio::spawn(async move {
                let slow = futures::stream::once(async {
                    tokio::time::sleep(Duration::from_secs(4)).await;
                    Ok::<_, weft_runtime::BoxError>(http_body::Frame::data(Bytes::new()))
                });
                let body =
                    http_body_util::BodyExt::boxed_unsync(http_body_util::StreamBody::new(slow));
                let req = weft_router::Request {
                    body: weft_router::Body::Stream(body),
                    ..weft_router::Request::new(HELD, weft_router::Trigger::Cli)
                };
                r.invoke(req).await?.collect().await?;
                anyhow::Ok(())
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = Instant::now();
        tput[2].push(throughput(&node.r, HELD, 1, n1).await?);
        tput[3].push(throughput(&node.r, HELD, 64, n64).await?);
        if t.elapsed() > Duration::from_millis(3500) {
            bail!("the acceptance-only runs outlasted the held slot; lower the counts");
        }
        hold.await??;
        for t in &mut tput[2..] {
            let ids = t
                .last_mut()
                .map(|t| std::mem::take(&mut t.ids))
                .unwrap_or_default();
            wait_done(&node.c, &ids).await?;
        }
        for _ in 0..alone {
            let t0 = node::now_us();
            let id = node::submit(&node.r, FUNCTION).await?;
            acc_alone.push((node::now_us() - t0) as f64 / 1000.0);
            let [start] = wait_started(&node.c, std::slice::from_ref(&id)).await?[..] else {
                bail!("one invocation, one result");
            };
            lat_alone.push((start - t0 as f64) / 1000.0);
        }
        let (l, a) = burst_latency(&node.r, burst).await?;
        lat_burst.extend(l);
        acc_burst.extend(a);
    }
    node.close().await;

    let floor_median = median(floor.clone());
    println!();
    println!(
        "## Asynchronous invocations (durable queue; median of {rounds} rounds, spread in brackets)"
    );
    println!();
    println!(
        "| callers | dispatcher | accepted/s | enqueue call p50 / p99 ms | completed/s | durable redb commits/s (floor) | accepted / floor |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (i, (callers, mode)) in [
        (1, "running them"),
        (64, "running them"),
        (1, "held (accept only)"),
        (64, "held (accept only)"),
    ]
    .iter()
    .enumerate()
    {
        let t = &tput[i];
        let acc: Vec<f64> = t.iter().map(|x| x.accepted).collect();
        let (lo, hi) = spread(&acc);
        let ratios: Vec<f64> = t.iter().zip(&floor).map(|(x, f)| x.accepted / f).collect();
        let (rlo, rhi) = spread(&ratios);
        println!(
            "| {callers} | {mode} | {:.0} [{lo:.0}–{hi:.0}] | {:.2} / {:.2} | {} | {:.0} | {:.2}× [{rlo:.2}–{rhi:.2}] |",
            median(acc),
            median(t.iter().map(|x| x.call_p50).collect()),
            median(t.iter().map(|x| x.call_p99).collect()),
            if i < 2 {
                format!("{:.0}", median(t.iter().map(|x| x.completed).collect()))
            } else {
                "–".to_string()
            },
            floor_median,
            median(ratios),
        );
    }
    println!();
    println!(
        "Enqueue-to-start latency (ms; guest's clock at start − bench's clock just before enqueue; all rounds pooled):"
    );
    println!();
    println!("| load | samples | start p50 | start p99 | enqueue call p50 | enqueue call p99 |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, lat, acc) in [
        ("one at a time", &mut lat_alone, &mut acc_alone),
        (
            &*format!("burst of {burst} from 64 callers"),
            &mut lat_burst,
            &mut acc_burst,
        ),
    ] {
        println!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            lat.len(),
            quantile(lat, 0.5),
            quantile(lat, 0.99),
            quantile(acc, 0.5),
            quantile(acc, 0.99)
        );
    }
    println!();
    println!(
        "Floor: one durable redb commit on this disk takes {:.2} ms (median).",
        1000.0 / floor_median
    );
    Ok(())
}

struct Throughput {
    /// Left empty once waited for; held runs keep them to wait afterwards.
    ids: Vec<String>,
    accepted: f64,
    completed: f64,
    call_p50: f64,
    call_p99: f64,
}

/// `n` enqueues of `function` from `callers` concurrent tasks, then (unless
/// the function is [`HELD`]) waits until all ran.
async fn throughput(
    r: &Arc<Router>,
    function: &'static str,
    callers: usize,
    n: usize,
) -> Result<Throughput> {
    let start = Instant::now();
    let start_ms = node::now_us() / 1000;
    let mut tasks = Vec::new();
    for k in 0..callers {
        let r = r.clone();
        let share = n / callers + usize::from(k < n % callers);
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(share);
            for _ in 0..share {
                let t = Instant::now();
                let id = node::submit(&r, function).await?;
                out.push((id, t.elapsed().as_secs_f64() * 1000.0));
            }
            anyhow::Ok(out)
        }));
    }
    let mut ids = Vec::with_capacity(n);
    let mut calls = Vec::with_capacity(n);
    for t in tasks {
        for (id, ms) in t.await?? {
            ids.push(id);
            calls.push(ms);
        }
    }
    let accepted = n as f64 / start.elapsed().as_secs_f64();
    let mut completed = f64::NAN;
    if function != HELD {
        let done_ms = wait_done(r.controller(), &ids).await?;
        completed = n as f64 * 1000.0 / (done_ms.saturating_sub(start_ms)).max(1) as f64;
        ids.clear();
    }
    Ok(Throughput {
        ids,
        accepted,
        completed,
        call_p50: quantile(&mut calls, 0.5),
        call_p99: quantile(&mut calls, 0.99),
    })
}

/// `n` enqueues from 64 tasks at once: (enqueue-to-start ms, enqueue call ms).
async fn burst_latency(r: &Arc<Router>, n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut tasks = Vec::new();
    for k in 0..64 {
        let r = r.clone();
        let share = n / 64 + usize::from(k < n % 64);
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(share);
            for _ in 0..share {
                let t0 = node::now_us();
                let id = node::submit(&r, FUNCTION).await?;
                out.push((id, t0, node::now_us()));
            }
            anyhow::Ok(out)
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await??);
    }
    let ids: Vec<String> = all.iter().map(|(id, _, _)| id.clone()).collect();
    let starts = wait_started(r.controller(), &ids).await?;
    let lat = all
        .iter()
        .zip(&starts)
        .map(|((_, t0, _), s)| (s - *t0 as f64) / 1000.0)
        .collect();
    let acc = all
        .iter()
        .map(|(_, t0, t1)| (t1 - t0) as f64 / 1000.0)
        .collect();
    Ok((lat, acc))
}

/// Waits until every invocation succeeded; its guest's start time, µs since
/// the epoch (`stamp` answers `<request> <start µs>`).
async fn wait_started(c: &Controller, ids: &[String]) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let rec = wait_one(c, id).await?;
        let body = rec.result.unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        let start: f64 = text
            .split_whitespace()
            .next_back()
            .and_then(|w| w.parse().ok())
            .with_context(|| format!("stamp answered `{text}`"))?;
        out.push(start);
    }
    Ok(out)
}

/// Waits until every invocation succeeded; the latest completion, ms since
/// the epoch.
async fn wait_done(c: &Controller, ids: &[String]) -> Result<u64> {
    let mut last = 0;
    for id in ids {
        last = last.max(wait_one(c, id).await?.updated_at_ms);
    }
    Ok(last)
}

async fn wait_one(c: &Controller, id: &str) -> Result<weft_controller::InvocationRecord> {
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let rec = c.invocation_record(id).await?;
        match rec.state {
            InvocationState::Succeeded => return Ok(rec),
            InvocationState::Dead => bail!("invocation {id} failed: {:?}", rec.last_error),
            _ if Instant::now() > until => bail!("invocation {id} still {:?}", rec.state),
            _ => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}
