//! One path for every invocation: what the router decides, whatever brought
//! the invocation — admission of queued work, idempotent retries, the call
//! chain across nodes, one version per invocation, placement that respects
//! what a function declares.

use crate::fabric::{fabric_node, header, lists, nodes, sees};
use crate::harness::{Node, eventually};
use crate::servers::Nats;
use serde_json::Value;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(30);

/// Every invocation's record, once none is queued or running any more.
fn settled(node: &Node, ids: &[String]) -> Vec<Value> {
    let mut records = Vec::new();
    assert!(
        eventually(LONG, || {
            records = ids
                .iter()
                .map(|id| node.json(&["result", id]))
                .collect::<Vec<_>>();
            records
                .iter()
                .all(|r| r["state"] == "succeeded" || r["state"] == "dead")
        }),
        "still pending: {records:?}"
    );
    records
}

#[test]
fn queued_work_beyond_the_node_s_slots_spends_no_attempt() {
    // Two functions, each allowed 2 at once, on a node of 2 sandbox slots:
    // more queued work than the node can run. Slots are reserved before work
    // is claimed, so none of it fails (or is dead-lettered) for capacity.
    let node = Node::start_with_config("max_instances = 2\n");
    for f in ["one", "two"] {
        node.deploy(
            f,
            "sleep.wasm",
            &["--clock", "--max-concurrency", "2", "--retries", "1"],
        );
    }
    // Synchronous callers compete for the same slots meanwhile (they may be
    // told 503: that is their answer to give, not the queue's).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let callers: Vec<_> = (0..3)
        .map(|_| {
            let (client, url, stop) = (node.http(), format!("{}/fn/one", node.url), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = client.post(&url).body("15").send();
                }
            })
        })
        .collect();
    let mut ids = Vec::new();
    for i in 0..24 {
        let f = if i % 2 == 0 { "one" } else { "two" };
        ids.push(
            node.ok(&["invoke", f, "--async", "--data", "30"])
                .trim()
                .to_string(),
        );
    }
    let records = settled(&node, &ids);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in callers {
        c.join().unwrap();
    }
    for r in records {
        assert_eq!(r["state"], "succeeded", "{r}");
        assert_eq!(r["attempts"], 1, "an attempt was spent on capacity: {r}");
    }
    assert_eq!(node.metric("weft_async_dead_lettered_total"), 0.0);
}

#[test]
fn an_idempotent_retry_that_lands_here_keeps_the_component_s_response() {
    // edge has one slot, busy; the next request is placed on cloud-1, which
    // dies mid-request; the retry finds edge the only node left and runs
    // there: the answer is the component's own (status and headers), as it
    // would have been from cloud-1.
    let nats = Nats::hub();
    let edge = fabric_node(&nats, "edge", "edge", &[]);
    let mut cloud = fabric_node(&nats, "cloud-1", "cloud", &[]);
    assert!(eventually(LONG, || sees(&edge, "cloud-1", true)));
    edge.deploy(
        "web",
        "http-hello.wasm",
        &[
            "--clock",
            "--idempotent",
            "--max-concurrency",
            "1",
            "--timeout",
            "20s",
        ],
    );
    assert!(eventually(LONG, || lists(&cloud, "web")));
    let busy = {
        // Long enough for placement to learn the round trip to cloud-1 on
        // a loaded machine; the retry below waits its turn behind it.
        let (client, url) = (edge.http(), format!("{}/fn/web/sleep/8000", edge.url));
        std::thread::spawn(move || client.get(url).send().unwrap())
    };
    assert!(eventually(LONG, || edge.json(&["ls", "web"])["in_flight"] == 1));
    // With edge's slot taken, placement prefers cloud-1 (once it knows the
    // round trip to it).
    assert!(eventually(LONG, || edge.json(&["explain", "web"])["node"] == "cloud-1"));
    let placed = {
        let (client, url) = (
            edge.http(),
            format!("{}/fn/web/sleep/2000/status/201", edge.url),
        );
        std::thread::spawn(move || client.get(url).send().unwrap())
    };
    assert!(
        eventually(LONG, || {
            nodes(&edge)
                .iter()
                .any(|n| n["name"] == "cloud-1" && n["inflight"].as_u64().unwrap_or(0) > 0)
        }),
        "cloud-1 never ran it: {:?}\n{}",
        nodes(&edge),
        edge.log()
    );
    cloud.kill9();
    let resp = placed.join().unwrap();
    assert_eq!(header(&resp, "x-weft-retried-from"), "cloud-1");
    assert_eq!(header(&resp, "x-weft-node"), "edge");
    assert_eq!(resp.status().as_u16(), 201, "the component's status");
    assert_eq!(header(&resp, "content-type"), "text/plain");
    assert!(
        resp.text()
            .unwrap()
            .starts_with("hello from GET /sleep/2000/status/201")
    );
    assert_eq!(busy.join().unwrap().status().as_u16(), 200);
}

#[test]
fn async_ancestors_are_not_cycles_on_another_node() {
    // `a` (edge) queues `b`; `b` runs on the cloud and calls `a`. `a` started
    // `b` asynchronously, so it holds no slot while `b` runs: the call counts
    // toward depth, not as a cycle, wherever `b` runs.
    let nats = Nats::hub();
    let config = "max_call_depth = 4\n";
    let edge = Node::start_with_config_args(
        config,
        &[
            "--fabric",
            &nats.url(),
            "--tier",
            "edge",
            "--node-name",
            "edge",
        ],
    );
    let cloud = Node::start_with_config_args(
        config,
        &[
            "--fabric",
            &nats.url(),
            "--tier",
            "cloud",
            "--node-name",
            "cloud-1",
        ],
    );
    assert!(eventually(LONG, || sees(&edge, "cloud-1", true)));
    edge.deploy(
        "a",
        "chain.wasm",
        &[
            "--tier",
            "edge",
            "--call",
            "b",
            "--config-value",
            "callee=b",
            "--config-value",
            "mode=async",
        ],
    );
    edge.deploy(
        "b",
        "chain.wasm",
        &[
            "--tier",
            "cloud",
            "--call",
            "a",
            "--config-value",
            "callee=a",
            "--retries",
            "1",
        ],
    );
    assert!(eventually(LONG, || lists(&cloud, "a")
        && lists(&cloud, "b")
        && sees(&cloud, "edge", true)));
    let queued = edge.ok(&["invoke", "a", "--data", "hi"]);
    let id = queued
        .trim()
        .strip_prefix("queued ")
        .unwrap_or_else(|| panic!("{queued}"));
    let rec = settled(&edge, &[id.to_string()]).remove(0);
    assert_eq!(rec["state"], "succeeded", "{rec}");
    // `b` (started by an async call) called `a`, which queued `b` again.
    let out = rec["result_text"].as_str().unwrap();
    assert!(out.starts_with("b[trigger=call"), "{out}");
    assert!(out.contains("](queued "), "`b` called `a`: {out}");
}

#[test]
fn a_redeploy_mid_request_never_mixes_versions() {
    // The function flips between a command and an HTTP component while
    // requests stream in: each request runs one version, resolved once, so
    // none fails for having been routed by one version and run by another.
    let node = Node::start();
    node.deploy("flip", "echo.wasm", &["--max-concurrency", "64"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut callers = Vec::new();
    for _ in 0..4 {
        let (client, url, stop) = (node.http(), format!("{}/fn/flip", node.url), stop.clone());
        callers.push(std::thread::spawn(move || {
            let mut bad = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let resp = client.post(&url).body("x").send().unwrap();
                n += 1;
                if resp.status().as_u16() != 200 {
                    bad.push(resp.text().unwrap());
                }
            }
            (n, bad)
        }));
    }
    let until = Instant::now() + Duration::from_secs(8);
    let mut flips = 0;
    while Instant::now() < until {
        let fixture = if flips % 2 == 0 {
            "http-hello.wasm"
        } else {
            "echo.wasm"
        };
        node.deploy("flip", fixture, &["--max-concurrency", "64"]);
        flips += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for c in callers {
        let (n, bad) = c.join().unwrap();
        total += n;
        assert!(
            bad.is_empty(),
            "{} of {n} failed, e.g. {}",
            bad.len(),
            bad[0]
        );
    }
    assert!(
        flips > 20 && total > 200,
        "{flips} redeploys, {total} requests"
    );
}

#[test]
fn placement_skips_nodes_without_a_declared_store() {
    // edge-a provides the store `cache`, edge-b does not: a function that
    // declares it runs on edge-a even when it enters at an idle edge-b, and
    // `weft explain` says why edge-b is out.
    let nats = Nats::hub();
    let a = Node::start_with_config_args(
        "[kv.cache]\nbackend = \"embedded\"\n",
        &[
            "--fabric",
            &nats.url(),
            "--tier",
            "edge",
            "--node-name",
            "edge-a",
        ],
    );
    let b = fabric_node(&nats, "edge-b", "edge", &[]);
    assert!(eventually(LONG, || sees(&b, "edge-a", true)
        && sees(&a, "edge-b", true)));
    a.deploy(
        "counter",
        "kv-counter.wasm",
        &[
            "--kv",
            "default",
            "--kv",
            "cache",
            "--config-value",
            "greeting=n",
        ],
    );
    assert!(eventually(LONG, || lists(&b, "counter")));
    let resp = b.post("counter", "");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(header(&resp, "x-weft-node"), "edge-a");
    assert_eq!(header(&resp, "x-weft-placement"), "local_ineligible");
    let why = b.json(&["explain", "counter"]);
    assert_eq!(why["node"], "edge-a", "{why}");
    let excluded = why["excluded"].as_array().unwrap();
    assert_eq!(excluded.len(), 1, "{why}");
    assert_eq!(excluded[0]["node"], "edge-b");
    assert_eq!(excluded[0]["constraint"], "store");
    assert_eq!(excluded[0]["detail"], "no key-value store `cache`");
    let text = b.ok(&["explain", "counter"]);
    assert!(
        text.contains("edge-b") && text.contains("no key-value store `cache`"),
        "{text}"
    );
}

#[test]
fn node_names_are_unique_by_default_and_a_taken_one_is_refused() {
    let nats = Nats::hub();
    let url = nats.url();
    // Two nodes on one machine, no --node-name: the host name and each
    // one's own suffix.
    let a = Node::start_args(&["--fabric", &url, "--tier", "edge"]);
    let b = Node::start_args(&["--fabric", &url, "--tier", "edge"]);
    let name = |n: &Node| n.json(&["nodes"])["node"].as_str().unwrap().to_string();
    let (na, nb) = (name(&a), name(&b));
    assert_ne!(na, nb);
    assert!(eventually(LONG, || sees(&a, &nb, true) && sees(&b, &na, true)));
    // The name is kept in the data directory: the same after a restart.
    let mut a = a;
    a.restart();
    assert_eq!(name(&a), na);

    // A node started with a name another node answers to refuses to join,
    // and says why.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["up", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path())
        .args(["--fabric", &url, "--node-name", &nb])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a second `{nb}` joined");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("node name `{nb}` is taken")) && err.contains("--node-name"),
        "{err}"
    );
    // The node with the name serves on under it.
    assert!(eventually(LONG, || sees(&a, &nb, true)));
    assert_eq!(name(&b), nb);
}

#[test]
fn of_twins_that_meet_late_the_later_one_leaves() {
    // NATS is down while two nodes start under one name, so neither can
    // ask; when it comes up they see each other's heartbeats, and the one
    // started later leaves the fabric and serves alone.
    let mut nats = Nats::hub();
    let url = nats.url();
    nats.kill9();
    let first = Node::start_args(&["--fabric", &url, "--node-name", "twin"]);
    std::thread::sleep(Duration::from_millis(300));
    let second = Node::start_args(&["--fabric", &url, "--node-name", "twin"]);
    // Both gave up asking (NATS unreachable) and serve.
    for n in [&first, &second] {
        assert_eq!(n.json(&["nodes"])["connected"], false);
    }
    nats.restart();
    let taken = |n: &Node| n.json(&["nodes"])["name_taken"].as_bool();
    assert!(
        eventually(LONG, || taken(&second) == Some(true)),
        "{}",
        second.log()
    );
    assert_eq!(taken(&first), Some(false));
    assert!(second.log().contains("another node, started earlier"));
    assert_eq!(second.json(&["nodes"])["connected"], false);
    // Both go on serving what they have.
    second.deploy("alone", "echo.wasm", &[]);
    assert_eq!(second.post("alone", "still").text().unwrap(), "still");
}

#[test]
fn a_burst_fills_one_peer_then_the_next_instead_of_herding() {
    // Two idle cloud nodes of 4 sandbox slots each; a burst of 6 enters at
    // the edge (the function runs only in the cloud), well within one
    // heartbeat. Work the edge sends to a peer counts in its view of that
    // peer at once, so once one is full the rest go to the other, placed
    // there first time; by heartbeat-old load alone all 6 would be sent to
    // the same node, which has room for 4.
    let nats = Nats::hub();
    let url = nats.url();
    let cloud = |name: &str| {
        Node::start_with_config_args(
            "max_instances = 4\n",
            &["--fabric", &url, "--tier", "cloud", "--node-name", name],
        )
    };
    let edge = fabric_node(&nats, "edge", "edge", &[]);
    let (c1, c2) = (cloud("cloud-1"), cloud("cloud-2"));
    edge.deploy(
        "nap",
        "nap.wasm",
        &["--tier", "cloud", "--clock", "--timeout", "30s"],
    );
    assert!(eventually(LONG, || sees(&edge, "cloud-1", true)
        && sees(&edge, "cloud-2", true)
        && lists(&c1, "nap")
        && lists(&c2, "nap")));
    // Both idle by their last beat.
    assert!(eventually(LONG, || {
        nodes(&edge)
            .iter()
            .filter(|n| n["name"] != "edge")
            .all(|n| n["inflight"] == 0)
    }));
    let burst: Vec<_> = (0..6)
        .map(|_| {
            let (client, url) = (edge.http(), format!("{}/fn/nap", edge.url));
            std::thread::spawn(move || client.post(url).body("1500").send().unwrap())
        })
        .collect();
    let mut first_time = std::collections::BTreeMap::<String, usize>::new();
    for call in burst {
        let resp = call.join().unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{:?}", resp.headers());
        if header(&resp, "x-weft-retried-from").is_empty() {
            *first_time.entry(header(&resp, "x-weft-node")).or_default() += 1;
        }
    }
    assert!(
        first_time.len() == 2 && !first_time.contains_key("edge"),
        "placed first time on each cloud node: {first_time:?}"
    );
}

#[test]
fn an_answered_call_stops_counting_in_its_peers_row_before_the_next_heartbeat() {
    // Two idle cloud nodes of one sandbox slot each; six calls enter at the
    // edge one after another, well within one heartbeat. Each is answered
    // before the next is sent, so both nodes stay idle and the one that
    // scores better takes every call. Were a call counted in its row until
    // its next beat, it would look busy and the calls would alternate.
    let nats = Nats::hub();
    let url = nats.url();
    let cloud = |name: &str| {
        Node::start_with_config_args(
            "max_instances = 1\n",
            &["--fabric", &url, "--tier", "cloud", "--node-name", name],
        )
    };
    let edge = fabric_node(&nats, "edge", "edge", &[]);
    let (c1, c2) = (cloud("cloud-1"), cloud("cloud-2"));
    edge.deploy("echo", "echo.wasm", &["--tier", "cloud"]);
    assert!(eventually(LONG, || sees(&edge, "cloud-1", true)
        && sees(&edge, "cloud-2", true)
        && lists(&c1, "echo")
        && lists(&c2, "echo")));
    // Warm on both, as their beats tell the edge, before the calls.
    for n in [&c1, &c2] {
        assert_eq!(n.post("echo", "warm").text().unwrap(), "warm");
    }
    assert!(eventually(LONG, || {
        nodes(&edge)
            .iter()
            .filter(|n| n["name"] != "edge")
            .all(|n| n["inflight"] == 0 && n["warm"].to_string().contains("echo"))
    }));
    let mut on = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..6 {
        let resp = edge.post("echo", format!("call {i}"));
        assert_eq!(resp.status().as_u16(), 200, "{:?}", resp.headers());
        *on.entry(header(&resp, "x-weft-node")).or_default() += 1;
    }
    assert!(
        on.values().any(|&n| n >= 5),
        "an idle node takes them all, call after call: {on:?}"
    );
}

#[test]
fn work_a_full_peer_turns_away_runs_on_the_next_even_if_not_idempotent() {
    // cloud-1 is near the edge and full; cloud-2 is 20 ms away each way.
    // The edge still picks cloud-1 (a slot frees there sooner, by its
    // view, than the round trip to cloud-2 takes), which refuses at once:
    // nothing ran, so the edge runs it on cloud-2, although `nap` is not
    // idempotent.
    use crate::servers::Link;
    let hub = Nats::hub();
    let link = Link::new(hub.leaf_addr());
    link.set_latency(Duration::from_millis(20));
    let leaf = Nats::leaf(&link.addr().to_string());
    leaf.wait_leaf_connected();
    let url = hub.url();
    let edge = fabric_node(&hub, "edge", "edge", &[]);
    let near = Node::start_with_config_args(
        "max_instances = 1\n",
        &[
            "--fabric",
            &url,
            "--tier",
            "cloud",
            "--node-name",
            "cloud-1",
            "--label",
            "pool=near",
        ],
    );
    let far = fabric_node(&leaf, "cloud-2", "cloud", &[]);
    assert!(eventually(LONG, || sees(&edge, "cloud-1", true)
        && sees(&edge, "cloud-2", true)
        && edge.json(&["nodes"])["registry_joined"] == true));
    edge.deploy("nap", "nap.wasm", &["--tier", "cloud", "--clock"]);
    edge.deploy(
        "hog",
        "nap.wasm",
        &["--on-label", "pool=near", "--clock", "--timeout", "30s"],
    );
    assert!(eventually(LONG, || lists(&near, "hog")
        && lists(&near, "nap")
        && lists(&far, "nap")));
    // The hog takes cloud-1's one slot.
    let hog = {
        let (client, url) = (near.http(), format!("{}/fn/hog", near.url));
        std::thread::spawn(move || client.post(url).body("4000").send().unwrap())
    };
    assert!(eventually(LONG, || nodes(&near)
        .iter()
        .any(|n| n["name"] == "cloud-1" && n["inflight"] == 1)));
    let resp = edge.post("nap", "10");
    assert_eq!(
        resp.status().as_u16(),
        200,
        "{:?}\n{}",
        resp.headers(),
        edge.log()
    );
    assert_eq!(header(&resp, "x-weft-node"), "cloud-2");
    assert_eq!(header(&resp, "x-weft-retried-from"), "cloud-1");
    assert_eq!(hog.join().unwrap().status().as_u16(), 200);
}
