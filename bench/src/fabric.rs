//! `fabric`: a remote invocation against a local one and against a bare
//! NATS request/reply on the same server (the floor).
//!
//! One `nats-server` (JetStream on) on loopback; two nodes in this process,
//! `edge` and `cloud`, joined to it; the `stamp` guest deployed with
//! `tier = ["cloud"]`. Side by side, interleaved per round, one call at a
//! time:
//!
//! * **local** — `stamp` invoked on `cloud` itself, through its router;
//! * **remote** — `stamp` invoked from `edge` through its router: placement,
//!   then the call over NATS, the run on `cloud`, the answer back (what the
//!   gateway does for a request that runs elsewhere);
//! * **NATS** — a bare request/reply of the same payload between two plain
//!   clients of the same server: one NATS round trip.
//!
//! Goal: remote p50 ≤ 1.2 × (local p50 + NATS p50). Payloads of 100 B and
//! 2 MiB (above NATS's 1 MiB payload limit: chunked both ways).

use crate::node::{self, Node, quantile};
use anyhow::{Result, bail};
use bytes::Bytes;
use futures::StreamExt;
use std::time::{Duration, Instant};
use weft_manifest::{FunctionSpec, PlacementSpec};
use weft_router::Placement;

const FUNCTION: &str = "stamp";

pub(crate) async fn run(quick: bool) -> Result<()> {
    let (rounds, per_round_small, per_round_big) = if quick { (3, 100, 5) } else { (5, 400, 20) };
    let (nats, _) = node::nats_server(|port, _, dir| {
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\" }}\n",
            dir.join("js").display()
        )
    })?;
    let url = format!("nats://127.0.0.1:{}", nats.port);
    let cloud = node::fabric_node(&url, "cloud", weft_sched::Tier::Cloud).await?;
    let edge = node::fabric_node(&url, "edge", weft_sched::Tier::Edge).await?;
    cloud
        .deploy(
            FUNCTION,
            node::guest("stamp")?,
            FunctionSpec {
                placement: Some(PlacementSpec {
                    tier: vec!["cloud".into()],
                    ..PlacementSpec::default()
                }),
                max_request_size: Some(weft_manifest::ByteSize(8 << 20)),
                max_response_size: Some(weft_manifest::ByteSize(8 << 20)),
                ..FunctionSpec::default()
            },
        )
        .await?;
    // Wait until edge knows the function and sees cloud with a round trip.
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let placed = edge.r.explain(FUNCTION, 0, None).map(|e| e.placement);
        let ready = matches!(&placed, Ok(Placement::Decided(d)) if d.node == "cloud")
            && edge.r.fabric_status().is_some_and(|s| {
                s.nodes
                    .iter()
                    .any(|n| n.name == "cloud" && n.rtt_us.is_some())
            });
        if ready {
            break;
        }
        if Instant::now() > until {
            bail!("edge never placed `{FUNCTION}` on cloud: {placed:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The floor: a plain request/reply between two clients of the server.
    let responder = async_nats::connect(&url).await?;
    let requester = async_nats::connect(&url).await?;
    let mut sub = responder.subscribe("bench.echo").await?;
    let r2 = responder.clone();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            if let Some(reply) = m.reply {
                let _ = r2.publish(reply, m.payload).await;
            }
        }
    });
    requester.flush().await?;

    println!();
    println!(
        "## Fabric: remote vs local invocation vs one NATS round trip ({rounds} rounds, interleaved; loopback)"
    );
    println!();
    println!(
        "| payload | local p50 / p99 (ms) | remote p50 / p99 (ms) | NATS req/reply p50 / p99 (ms) | remote p50 ÷ (local + NATS) p50 |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for (label, size, n) in [
        ("100 B", 100usize, per_round_small),
        ("2 MiB (chunked)", 2 << 20, per_round_big),
    ] {
        let payload = Bytes::from(vec![b'x'; size]);
        let nats_payload = payload.clone();
        let (mut local, mut remote, mut floor) = (Vec::new(), Vec::new(), Vec::new());
        // Warm every path once.
        cloud.invoke(FUNCTION, payload.clone()).await?;
        remote_call(&edge, payload.clone()).await?;
        for round in 0..rounds {
            eprintln!("fabric {label}: round {}/{rounds}", round + 1);
            for _ in 0..n {
                let t = Instant::now();
                cloud.invoke(FUNCTION, payload.clone()).await?;
                local.push(t.elapsed().as_secs_f64() * 1e3);
                let t = Instant::now();
                remote_call(&edge, payload.clone()).await?;
                remote.push(t.elapsed().as_secs_f64() * 1e3);
                if size <= 512 << 10 {
                    let t = Instant::now();
                    requester
                        .request("bench.echo", nats_payload.clone())
                        .await?;
                    floor.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
        }
        let row = |v: &mut Vec<f64>| {
            if v.is_empty() {
                ("n/a (above max_payload)".to_string(), f64::NAN)
            } else {
                let p50 = quantile(v, 0.5);
                (format!("{p50:.3} / {:.3}", quantile(v, 0.99)), p50)
            }
        };
        let (l, lp) = row(&mut local);
        let (r, rp) = row(&mut remote);
        let (f, fp) = row(&mut floor);
        let ratio = if fp.is_nan() {
            format!("{:.2} (remote ÷ local)", rp / lp)
        } else {
            format!("{:.2}", rp / (lp + fp))
        };
        println!("| {label} | {l} | {r} | {f} | {ratio} |");
    }
    edge.r.leave_fabric().await;
    cloud.r.leave_fabric().await;
    edge.close().await;
    cloud.close().await;
    Ok(())
}

async fn remote_call(edge: &Node, payload: Bytes) -> Result<Bytes> {
    let out = node::invoke(&edge.r, FUNCTION, payload).await?;
    if out.served.node != "cloud" {
        bail!("ran on {}, not on cloud", out.served.node);
    }
    Ok(out.body)
}
