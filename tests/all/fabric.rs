//! The fabric: several real `weft` processes joined through a real
//! `nats-server` (JetStream on): one registry, artifacts fetched on demand,
//! placement by the scheduler, remote invocation, `kill -9` of a node in the
//! middle of invocations, late joiners and rejoins, async work that waits
//! for a node, and bad input at the edges.

use crate::harness::{Node, error_of, eventually, guest, json_error};
use crate::servers::Nats;
use serde_json::Value;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(30);

/// A node joined to `nats` (a hub, or a site's leaf).
pub(crate) fn fabric_node(nats: &Nats, name: &str, tier: &str, labels: &[&str]) -> Node {
    let url = nats.url();
    let mut args = vec![
        "--fabric",
        url.as_str(),
        "--tier",
        tier,
        "--node-name",
        name,
    ];
    for l in labels {
        args.extend_from_slice(&["--label", l]);
    }
    Node::start_args(&args)
}

/// The nodes `node` sees, by name, as JSON objects.
pub(crate) fn nodes(node: &Node) -> Vec<Value> {
    node.json(&["nodes"])["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub(crate) fn sees(node: &Node, name: &str, up: bool) -> bool {
    nodes(node)
        .iter()
        .any(|n| n["name"] == name && n["up"] == Value::Bool(up))
}

pub(crate) fn lists(node: &Node, function: &str) -> bool {
    node.json(&["ls"])["functions"]
        .as_array()
        .is_some_and(|fs| fs.iter().any(|f| f["name"] == function))
}

fn active_version(node: &Node, function: &str) -> Option<u64> {
    node.json(&["ls"])["functions"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == function)?["active"]
        .as_u64()
}

pub(crate) fn header(resp: &reqwest::blocking::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn three_nodes_share_one_registry_and_run_where_placement_says() {
    let nats = Nats::hub();
    let edge_a = fabric_node(&nats, "edge-a", "edge", &["site=a", "arch=x86_64"]);
    let edge_b = fabric_node(&nats, "edge-b", "edge", &["site=b"]);
    let cloud = fabric_node(&nats, "cloud-1", "cloud", &[]);

    // Membership: every node sees the other two, with tier and labels, and
    // a round trip once probed.
    assert!(
        eventually(LONG, || {
            let ns = nodes(&edge_a);
            ns.len() == 3
                && ns.iter().all(|n| n["up"] == Value::Bool(true))
                && ns.iter().all(|n| n["rtt_us"].is_u64())
        }),
        "edge-a sees the fabric: {:?}",
        nodes(&edge_a)
    );
    let ns = nodes(&edge_a);
    let me = ns.iter().find(|n| n["local"] == Value::Bool(true)).unwrap();
    assert_eq!(
        (me["name"].as_str(), me["tier"].as_str()),
        (Some("edge-a"), Some("edge"))
    );
    assert_eq!(me["labels"]["site"], "a");
    let c = ns.iter().find(|n| n["name"] == "cloud-1").unwrap();
    assert_eq!(c["tier"], "cloud");
    let text = edge_a.ok(&["nodes"]);
    assert!(
        text.contains("edge-a *") && text.contains("cloud-1") && text.contains("site=b"),
        "{text}"
    );

    // A deploy on one node is visible on every node.
    edge_a.deploy(
        "heavy",
        "echo.wasm",
        &[
            "--tier",
            "cloud",
            "--max-request-size",
            "8MiB",
            "--max-response-size",
            "8MiB",
        ],
    );
    assert!(eventually(LONG, || lists(&edge_b, "heavy") && lists(&cloud, "heavy")));

    // Placement: the cloud-only function runs on cloud-1, which fetches the
    // module from the fabric on first use (it was uploaded to edge-a).
    let resp = edge_a.post("heavy", "over the wire");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(header(&resp, "x-weft-node"), "cloud-1");
    assert_eq!(header(&resp, "x-weft-placement"), "local_ineligible");
    assert_eq!(resp.text().unwrap(), "over the wire");
    assert!(cloud.log().contains("module fetched"), "{}", cloud.log());
    let out = edge_a.json(&["invoke", "heavy", "--data", "cli"]);
    assert_eq!(
        (out["node"].as_str(), out["body"].as_str()),
        (Some("cloud-1"), Some("cli"))
    );
    assert_eq!(out["placement"], "local_ineligible");

    // A body above NATS's 1 MiB payload limit travels in chunks, both ways.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let resp = edge_b.post("heavy", big.clone());
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(header(&resp, "x-weft-node"), "cloud-1");
    let back = resp.bytes().unwrap();
    assert_eq!(back.len(), big.len());
    assert!(back[..] == big[..], "the 3 MB body came back changed");

    // Why: `weft explain` and its JSON.
    let why = edge_a.json(&["explain", "heavy"]);
    assert_eq!(why["node"], "cloud-1");
    assert_eq!(why["reason"]["kind"], "local_ineligible");
    assert!(why["decision"]["expected_us"].is_u64());
    let line = edge_a.ok(&["explain", "heavy"]);
    assert!(line.contains("cloud-1") && line.contains("tier"), "{line}");

    // An unconstrained function runs where the request entered.
    edge_b.deploy("here", "echo.wasm", &[]);
    assert!(eventually(LONG, || lists(&edge_a, "here")));
    let resp = edge_a.post("here", "x");
    assert_eq!(header(&resp, "x-weft-node"), "edge-a");
    assert_eq!(header(&resp, "x-weft-placement"), "local");

    // Labels: a function for site a, invoked at site b, runs at site a.
    edge_b.deploy("site-a", "echo.wasm", &["--on-label", "site=a"]);
    assert!(eventually(LONG, || lists(&edge_b, "site-a")));
    let resp = edge_b.post("site-a", "x");
    assert_eq!(header(&resp, "x-weft-node"), "edge-a");

    // An HTTP component keeps its status, headers, method and path.
    cloud.deploy("hello", "http-hello.wasm", &["--tier", "cloud"]);
    assert!(eventually(LONG, || lists(&edge_b, "hello")));
    let resp = edge_b
        .http()
        .get(format!("{}/fn/hello/some/path?x=1", edge_b.url))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(header(&resp, "x-weft-node"), "cloud-1");
    assert!(header(&resp, "content-type").starts_with("text/plain"));
    assert_eq!(
        resp.text().unwrap().trim_end(),
        "hello from GET /some/path?x=1"
    );

    // Rollback and removal on one node reach the others.
    edge_a.deploy("here", "echo.wasm", &["--timeout", "5s"]);
    assert!(eventually(LONG, || active_version(&cloud, "here") == Some(2)));
    cloud.ok(&["rollback", "here"]);
    assert!(eventually(LONG, || active_version(&edge_b, "here") == Some(1)));
    edge_b.ok(&["rm", "here"]);
    assert!(eventually(LONG, || !lists(&edge_a, "here") && !lists(&cloud, "here")));

    // No node meets the constraints: a clear error, the node serves on.
    edge_a.deploy("nowhere", "echo.wasm", &["--tier", "device"]);
    let (status, e) = error_of(edge_a.post("nowhere", "x"));
    assert_eq!(
        (status, e["code"].as_str()),
        (503, Some("no_eligible_node"))
    );
    assert!(e["message"].as_str().unwrap().contains("tier"), "{e}");
    assert_eq!(edge_a.post("site-a", "still").text().unwrap(), "still");
}

#[test]
fn late_joiners_catch_up_and_killed_nodes_rejoin() {
    let nats = Nats::hub();
    let first = fabric_node(&nats, "first", "edge", &[]);
    first.deploy("kept", "echo.wasm", &[]);
    first.deploy("dropped", "echo.wasm", &[]);

    // A node that joins later gets every function, and runs them.
    let mut late = fabric_node(&nats, "late", "cloud", &[]);
    assert!(eventually(LONG, || lists(&late, "kept") && lists(&late, "dropped")));
    assert!(eventually(LONG, || sees(&first, "late", true)));
    assert_eq!(late.post("kept", "hi").text().unwrap(), "hi");

    // kill -9: the others mark it down after a few missed beats.
    late.kill9();
    assert!(eventually(LONG, || sees(&first, "late", false)));
    // While it is away, the registry changes.
    first.ok(&["rm", "dropped"]);
    first.deploy("added", "echo.wasm", &[]);
    // It comes back by itself and catches up: removals included.
    late.restart();
    assert!(eventually(LONG, || sees(&first, "late", true)));
    assert!(
        eventually(LONG, || lists(&late, "added") && !lists(&late, "dropped")),
        "late did not catch up: {:?}\n{}",
        late.json(&["ls"]),
        late.log()
    );
    assert_eq!(late.post("added", "back").text().unwrap(), "back");
}

/// Waits until `cloud-1` or `cloud-2` runs something (by its load, as
/// `observer` sees it), kills that node with -9, and names it.
fn kill9_the_runner(observer: &Node, c1: &mut Node, c2: &mut Node) -> String {
    let mut victim = None;
    assert!(eventually(LONG, || {
        victim = nodes(observer)
            .into_iter()
            .find(|n| {
                (n["name"] == "cloud-1" || n["name"] == "cloud-2")
                    && n["inflight"].as_u64().unwrap_or(0) > 0
            })
            .and_then(|n| n["name"].as_str().map(str::to_string));
        victim.is_some()
    }));
    let victim = victim.unwrap();
    if victim == "cloud-1" {
        c1.kill9()
    } else {
        c2.kill9()
    }
    victim
}

#[test]
fn kill9_mid_invocation_gives_a_clear_error_or_a_retry_elsewhere() {
    let nats = Nats::hub();
    let edge = fabric_node(&nats, "edge", "edge", &[]);
    let mut c1 = fabric_node(&nats, "cloud-1", "cloud", &[]);
    let mut c2 = fabric_node(&nats, "cloud-2", "cloud", &[]);
    assert!(eventually(LONG, || sees(&edge, "cloud-1", true)
        && sees(&edge, "cloud-2", true)));
    let flags = ["--tier", "cloud", "--clock", "--timeout", "30s"];
    edge.deploy("nap", "nap.wasm", &flags);
    let mut idem = flags.to_vec();
    idem.push("--idempotent");
    edge.deploy("nap-again", "nap.wasm", &idem);
    assert!(eventually(LONG, || lists(&c1, "nap-again") && lists(&c2, "nap-again")));

    for (function, idempotent) in [("nap", false), ("nap-again", true)] {
        let url = format!("{}/fn/{function}", edge.url);
        let client = edge.http();
        let started = Instant::now();
        let call = std::thread::spawn(move || client.post(url).body("4000").send().unwrap());
        let victim = kill9_the_runner(&edge, &mut c1, &mut c2);
        let resp = call.join().unwrap();
        let took = started.elapsed();
        if idempotent {
            assert_eq!(resp.status().as_u16(), 200, "retried elsewhere");
            assert_eq!(header(&resp, "x-weft-retried-from"), victim);
            assert_ne!(header(&resp, "x-weft-node"), victim);
            assert!(resp.text().unwrap().contains("rested"));
        } else {
            let (status, e) = error_of(resp);
            assert_eq!(
                (status, e["code"].as_str()),
                (502, Some("node_unreachable")),
                "{e}"
            );
            let msg = e["message"].as_str().unwrap();
            assert!(msg.contains(&victim) && msg.contains("idempotent"), "{msg}");
        }
        assert!(
            took < Duration::from_secs(25),
            "answered within the deadline: {took:?}"
        );
        // The victim comes back by itself.
        if victim == "cloud-1" {
            c1.restart()
        } else {
            c2.restart()
        }
        // Up again, and idle by a heartbeat of its own: the last beat it sent
        // before dying said it was busy, and must not pick the next victim.
        assert!(eventually(LONG, || {
            sees(&edge, &victim, true)
                && nodes(&edge)
                    .iter()
                    .any(|n| n["name"] == victim.as_str() && n["inflight"] == 0)
        }));
    }
}

#[test]
fn async_work_for_an_absent_tier_waits_durably_and_runs_when_a_node_comes() {
    let nats = Nats::hub();
    let mut edge = fabric_node(&nats, "edge", "edge", &[]);
    edge.deploy("offload", "echo.wasm", &["--tier", "cloud"]);
    let out = edge.json(&[
        "invoke",
        "offload",
        "--async",
        "--data",
        "queued while no cloud",
    ]);
    let id = out["id"].as_str().unwrap().to_string();
    let record = |n: &Node| -> Value {
        n.admin_get(&format!("/v1/invocations/{id}"))
            .json()
            .unwrap()
    };
    assert!(eventually(LONG, || {
        record(&edge)["last_error"]["code"] == "no_eligible_node"
    }));
    let r = record(&edge);
    assert_eq!(r["state"], "queued");
    assert_eq!(r["attempts"], 0, "waiting spends no attempt: {r}");

    // Durable: it survives kill -9 of the node that holds it.
    edge.restart();
    assert_eq!(record(&edge)["state"], "queued");

    // A cloud node joins: the work runs there.
    let _cloud = fabric_node(&nats, "cloud-1", "cloud", &[]);
    assert!(
        eventually(LONG, || record(&edge)["state"] == "succeeded"),
        "{}",
        record(&edge)
    );
    let result = edge.ok(&["result", &id]);
    assert!(result.contains("queued while no cloud"), "{result}");
}

#[test]
fn bad_fabric_input_is_refused_clearly() {
    // Flags: each refused before anything starts, naming the flag.
    for (args, needle) in [
        (
            vec!["--fabric", "nats://127.0.0.1:1", "--tier", "moon"],
            "--tier",
        ),
        (
            vec!["--fabric", "nats://127.0.0.1:1", "--label", "nonsense"],
            "--label",
        ),
        (
            vec!["--fabric", "nats://127.0.0.1:1", "--label", "site=a b"],
            "--label",
        ),
        (
            vec!["--fabric", "nats://127.0.0.1:1", "--node-name", "Bad_Name"],
            "node name",
        ),
        (vec!["--fabric", "http://127.0.0.1:1"], "fabric"),
        (vec!["--tier", "edge"], "--fabric"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["up", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path())
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }

    let nats = Nats::hub();
    let node = fabric_node(&nats, "edge", "edge", &[]);
    // A placement that cannot be: invalid_spec naming the field.
    let out = node.cli(&[
        "deploy",
        "f",
        guest("echo.wasm").to_str().unwrap(),
        "--tier",
        "moon",
        "--json",
    ]);
    let e = json_error(&out);
    assert_eq!(e["error"]["code"], "invalid_spec");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("placement.tier"),
        "{e}"
    );
    // Deploys need the fabric: with NATS gone, refused, nothing changed,
    // and what the node has is still served.
    node.deploy("kept", "echo.wasm", &[]);
    drop(nats);
    let out = node.cli(&[
        "deploy",
        "new",
        guest("echo.wasm").to_str().unwrap(),
        "--json",
    ]);
    let e = json_error(&out);
    assert_eq!(e["error"]["code"], "fabric_unavailable", "{e}");
    assert!(!lists(&node, "new"));
    assert_eq!(
        node.post("kept", "still here").text().unwrap(),
        "still here"
    );
}

#[test]
fn cut_uplink_edge_serves_on_and_cloud_bound_work_waits_then_runs() {
    use crate::servers::Link;
    let hub = Nats::hub();
    let link = Link::new(hub.leaf_addr());
    link.set_latency(Duration::from_millis(10));
    let leaf = Nats::leaf(&link.addr().to_string());
    leaf.wait_leaf_connected();
    let cloud = fabric_node(&hub, "cloud-1", "cloud", &[]);
    let mut edge = fabric_node(&leaf, "edge-a", "edge", &["site=a"]);
    let edge2 = fabric_node(&leaf, "edge-b", "edge", &["site=a"]);
    assert!(eventually(LONG, || sees(&edge, "cloud-1", true)
        && sees(&edge, "edge-b", true)));
    assert!(eventually(
        LONG,
        || edge.json(&["nodes"])["registry_joined"] == true
    ));
    edge.deploy("offload", "echo.wasm", &["--tier", "cloud"]);
    edge.deploy("here", "echo.wasm", &["--tier", "edge"]);
    assert!(eventually(LONG, || lists(&cloud, "offload") && lists(&edge2, "here")));
    assert_eq!(edge.post("offload", "before").text().unwrap(), "before");

    // The uplink drops.
    link.cut();
    assert!(eventually(LONG, || sees(&edge, "cloud-1", false)));
    // The site goes on: edge functions run, and the two edge nodes still
    // see each other through their leaf.
    assert_eq!(edge.post("here", "during").text().unwrap(), "during");
    assert!(sees(&edge, "edge-b", true));
    // Sync work for the cloud: a clear error.
    let (status, e) = error_of(edge.post("offload", "now"));
    assert_eq!(
        (status, e["code"].as_str()),
        (503, Some("no_eligible_node")),
        "{e}"
    );
    // Async work for the cloud: acknowledged, waits durably.
    let ids: Vec<String> = (0..5)
        .map(|i| {
            let out = edge.json(&[
                "invoke",
                "offload",
                "--async",
                "--data",
                &format!("job-{i}"),
            ]);
            out["id"].as_str().unwrap().to_string()
        })
        .collect();
    let record = |n: &Node, id: &str| -> Value {
        n.admin_get(&format!("/v1/invocations/{id}"))
            .json()
            .unwrap()
    };
    assert!(eventually(LONG, || ids.iter().all(|id| {
        let r = record(&edge, id);
        r["state"] == "queued" && r["attempts"] == 0
    })));
    // Even through a kill -9 of the edge node during the cut.
    edge.restart();
    for id in &ids {
        let r = record(&edge, id);
        assert_eq!(r["state"], "queued", "{r}\n{}", edge.log());
    }

    // The link returns: everything acknowledged runs, in the cloud.
    link.restore();
    assert!(
        eventually(Duration::from_secs(60), || ids
            .iter()
            .all(|id| record(&edge, id)["state"] == "succeeded")),
        "not all ran after the link returned: {:?}",
        ids.iter().map(|id| record(&edge, id)).collect::<Vec<_>>()
    );
    for (i, id) in ids.iter().enumerate() {
        let out = edge.ok(&["result", id]);
        assert!(out.contains(&format!("job-{i}")), "{out}");
    }
    assert!(eventually(LONG, || sees(&edge, "cloud-1", true)));
    let resp = edge.post("offload", "after");
    assert_eq!(header(&resp, "x-weft-node"), "cloud-1");
}

#[test]
fn function_calls_cross_nodes_through_the_router() {
    let nats = Nats::hub();
    let edge = fabric_node(&nats, "edge", "edge", &[]);
    let cloud = fabric_node(&nats, "cloud-1", "cloud", &[]);
    assert!(eventually(LONG, || sees(&edge, "cloud-1", true)));
    edge.deploy("back", "chain.wasm", &["--tier", "cloud"]);
    edge.deploy(
        "front",
        "chain.wasm",
        &[
            "--tier",
            "edge",
            "--call",
            "back",
            "--config-value",
            "callee=back",
            "--timeout",
            "2s",
        ],
    );
    assert!(eventually(LONG, || lists(&cloud, "back")));
    let resp = edge.post("front", "hi");
    assert_eq!(header(&resp, "x-weft-node"), "edge");
    let out = resp.text().unwrap();
    assert!(out.starts_with("front[trigger=http"), "{out}");
    // `back` ran on the cloud node, called by `front`, within its deadline.
    let inner = out
        .split("back[trigger=call deadline_left_ms=")
        .nth(1)
        .unwrap_or_else(|| panic!("{out}"));
    let left: u64 = inner.split(']').next().unwrap().parse().unwrap();
    assert!(left <= 2_000, "the caller's deadline travelled: {left} ms");
    assert!(out.ends_with("(hi))"), "{out}");
    assert!(eventually(LONG, || {
        cloud.json(&["usage"])["functions"]["back"]["invocations"] == 1
    }));
    let here = &edge.json(&["usage"])["functions"]["back"]["invocations"];
    assert!(
        here.is_null() || here == 0,
        "back ran on the edge too: {here}"
    );
}

#[test]
fn credentials_come_from_the_node_config_and_nats_may_come_late() {
    let mut nats = Nats::hub_with("authorization { user: weft, password: s3cret }");
    let url = nats.url();
    let config = |password: &str, name: &str| {
        format!(
            "[fabric]\nurl = \"{url}\"\nname = \"{name}\"\ntier = \"cloud\"\nuser = \"weft\"\npassword = \"{password}\"\n"
        )
    };
    let good = Node::start_with_config(&config("s3cret", "good"));
    assert!(eventually(
        LONG,
        || good.json(&["nodes"])["registry_joined"] == true
    ));
    good.deploy("f", "echo.wasm", &[]);
    // Wrong credentials: the node serves, says it is not connected, and its
    // log says why.
    let bad = Node::start_with_config(&config("wrong", "bad"));
    let v = bad.json(&["nodes"]);
    assert_eq!(
        (v["fabric"].as_bool(), v["connected"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(
        eventually(LONG, || bad.log().to_lowercase().contains("authorization")),
        "{}",
        bad.log()
    );
    assert!(!sees(&good, "bad", true));
    // NATS down at start: the node starts, serves, and joins when it can.
    nats.kill9();
    let late = Node::start_with_config(&config("s3cret", "late"));
    assert_eq!(late.json(&["nodes"])["connected"], false);
    assert_eq!(late.post("nothing-yet", "x").status().as_u16(), 404);
    nats.restart();
    assert!(
        eventually(LONG, || late.json(&["nodes"])["registry_joined"] == true
            && lists(&late, "f")),
        "{}",
        late.log()
    );
    assert!(eventually(LONG, || sees(&good, "late", true)));
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian package `openssl`)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tls_to_nats_is_verified_against_the_configured_ca() {
    // A CA and a server certificate for 127.0.0.1, made here.
    let pki = tempfile::tempdir().unwrap();
    let d = pki.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=weft-test-ca",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ],
    );
    let nats = Nats::hub_with(&format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\" }}",
        d.join("server.pem").display(),
        d.join("server.key").display()
    ));
    let url = nats.url().replace("nats://", "tls://");
    let config = |name: &str, ca: bool| {
        let mut c = format!("[fabric]\nurl = \"{url}\"\nname = \"{name}\"\ntier = \"fog\"\n");
        if ca {
            c.push_str(&format!("tls_ca = \"{}\"\n", d.join("ca.pem").display()));
        }
        c
    };
    let trusted = Node::start_with_config(&config("trusted", true));
    assert!(
        eventually(LONG, || trusted.json(&["nodes"])["registry_joined"] == true),
        "{}",
        trusted.log()
    );
    trusted.deploy("f", "echo.wasm", &[]);
    assert_eq!(trusted.post("f", "over tls").text().unwrap(), "over tls");
    // Without the CA the server's certificate is not believed.
    let stranger = Node::start_with_config(&config("stranger", false));
    assert!(
        eventually(LONG, || {
            let log = stranger.log().to_lowercase();
            log.contains("certificate") || log.contains("tls")
        }),
        "{}",
        stranger.log()
    );
    assert_eq!(stranger.json(&["nodes"])["connected"], false);
    assert!(!lists(&stranger, "f"));
}

#[test]
fn a_fabric_key_value_store_is_shared_by_every_node() {
    let nats = Nats::hub();
    let config = |name: &str, tier: &str| {
        format!(
            "[fabric]\nurl = \"{}\"\nname = \"{name}\"\ntier = \"{tier}\"\n\n[kv.default]\nbackend = \"fabric\"\n",
            nats.url()
        )
    };
    let a = Node::start_with_config(&config("edge-a", "edge"));
    let b = Node::start_with_config(&config("edge-b", "edge"));
    a.deploy(
        "counter",
        "kv-counter.wasm",
        &["--kv", "default", "--config-value", "greeting=hi"],
    );
    assert!(eventually(LONG, || lists(&b, "counter")));
    // Each invocation runs where it entered (both nodes qualify, idle), and
    // they count in one store.
    assert_eq!(a.post("counter", "").text().unwrap(), "hi: hits = 1\n");
    assert_eq!(b.post("counter", "").text().unwrap(), "hi: hits = 2\n");
    assert_eq!(a.post("counter", "").text().unwrap(), "hi: hits = 3\n");

    // A fabric store without a fabric: refused at start, naming the store.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("node.toml");
    std::fs::write(&cfg, "[kv.shared]\nbackend = \"fabric\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["up", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kv.shared") && err.contains("fabric"), "{err}");
}

#[test]
fn async_work_on_a_node_killed_mid_run_is_redelivered_elsewhere() {
    let nats = Nats::hub();
    let edge = fabric_node(&nats, "edge", "edge", &[]);
    let mut c1 = fabric_node(&nats, "cloud-1", "cloud", &[]);
    let mut c2 = fabric_node(&nats, "cloud-2", "cloud", &[]);
    assert!(eventually(LONG, || sees(&edge, "cloud-1", true)
        && sees(&edge, "cloud-2", true)));
    edge.deploy(
        "slow",
        "nap.wasm",
        &["--tier", "cloud", "--clock", "--timeout", "30s"],
    );
    assert!(eventually(LONG, || lists(&c1, "slow") && lists(&c2, "slow")));
    let out = edge.json(&["invoke", "slow", "--async", "--data", "3000"]);
    let id = out["id"].as_str().unwrap().to_string();
    kill9_the_runner(&edge, &mut c1, &mut c2);
    let record = || -> Value {
        edge.admin_get(&format!("/v1/invocations/{id}"))
            .json()
            .unwrap()
    };
    assert!(
        eventually(Duration::from_secs(60), || record()["state"] == "succeeded"),
        "{}",
        record()
    );
    // The run that died with its node spent no attempt: it never failed.
    assert_eq!(record()["attempts"], 1, "{}", record());
    assert!(edge.ok(&["result", &id]).contains("rested"));
    assert!(
        edge.ok(&["logs", "slow"]).contains("not run"),
        "the redelivery is in the log"
    );
}
