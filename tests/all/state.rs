//! State models: the same counter under each, on one node; keys from a
//! header, a path segment or a query parameter; what a node cannot
//! provide refused at deploy.

use crate::async_queue::{post_async, record};
use crate::harness::{Node, error_of, eventually, json_error};
use crate::servers::Redis;
use std::time::Duration;

/// POSTs `body` to `counter` with the state key `key` in `x-weft-key`.
fn hit(node: &Node, key: &str, body: &str) -> String {
    let (status, text, _) = hit_where(node, key, body);
    assert_eq!(status, 200, "{text}");
    text
}

/// Queues `body` for `counter` with `key`, and waits until it succeeded.
fn queue_and_wait(node: &Node, key: &str, body: &str) {
    let r = post_async(node, "counter", body, &[("x-weft-key", key)]);
    assert_eq!(r.status(), 202);
    let id = r.json::<serde_json::Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(eventually(
        Duration::from_secs(10),
        || record(node, &id)["state"] == "succeeded"
    ));
}

#[test]
fn edge_state_on_a_node_without_a_fabric_is_kept_per_key_in_the_node() {
    let mut node = Node::start();
    let d = node.deploy("counter", "state-counter.wasm", &["--state", "edge"]);
    assert_eq!(d["name"], "counter", "{d}");
    assert_eq!(hit(&node, "alice", "one"), "count=1 last= keys=2\n");
    assert_eq!(hit(&node, "alice", "two"), "count=2 last=one keys=2\n");
    // Another key has a state of its own.
    assert_eq!(hit(&node, "bob", ""), "count=1 last= keys=1\n");
    // The CLI sends the key where the function takes it from.
    assert_eq!(
        node.ok(&["invoke", "counter", "--key", "alice", "-d", "three"]),
        "count=3 last=two keys=2\n"
    );
    let shown = node.json(&["ls", "counter"]);
    assert_eq!(shown["stateful"]["model"], "edge", "{shown}");
    assert_eq!(shown["stateful"]["key"], "header:x-weft-key");
    assert_eq!(shown["stateful"]["bucket"], "state");
    let text = node.ok(&["ls", "counter"]);
    assert!(
        text.contains("edge (bucket `state`, key from header:x-weft-key"),
        "{text}"
    );
    // Bytes of state moved, by model, in /metrics and usage.
    let written = node.metric(
        "weft_state_bytes_total{function=\"counter\",model=\"edge\",moved=\"state_written\"}",
    );
    assert!(written >= 4.0, "{written}");
    assert!(
        eventually(Duration::from_secs(5), || {
            node.json(&["usage"])["functions"]["counter"]["state_written_bytes"]
                .as_u64()
                .is_some_and(|b| b >= 4)
        }),
        "usage never counted the state written"
    );
    // By model in usage too: the state and the arguments moved.
    let usage = node.json(&["usage", "counter"]);
    let edge = &usage["functions"]["counter"]["moved_bytes"]["edge"];
    assert!(edge["state_written"].as_u64().unwrap() >= 4, "{usage}");
    assert!(edge["args_in"].as_u64().unwrap() >= 5, "{usage}");
    assert!(edge["args_out"].as_u64().unwrap() > 0, "{usage}");
    let text = node.ok(&["usage", "counter"]);
    assert!(
        text.contains("STATE-KIB") && text.contains("ARGS-KIB"),
        "{text}"
    );
    // Acknowledged state survives kill -9: the node's store is durable.
    node.kill9();
    node.restart();
    assert_eq!(hit(&node, "alice", "four"), "count=4 last=three keys=2\n");

    // Queued work keeps the key it arrived with.
    queue_and_wait(&node, "carol", "queued");
    assert_eq!(hit(&node, "carol", ""), "count=2 last=queued keys=2\n");
}

#[test]
fn a_key_comes_from_where_the_function_says_and_a_missing_or_bad_one_is_refused() {
    let node = Node::start();
    node.deploy(
        "counter",
        "state-counter.wasm",
        &["--state", "edge", "--state-key", "query:user"],
    );
    node.deploy(
        "by-path",
        "state-counter.wasm",
        &["--state", "edge", "--state-key", "path:2"],
    );
    let get = |path: &str| {
        node.http()
            .post(format!("{}/fn/{path}", node.url))
            .send()
            .unwrap()
    };
    assert_eq!(
        get("counter?user=a%20b").text().unwrap(),
        "count=1 last= keys=1\n"
    );
    assert_eq!(
        get("counter?x=1&user=a+b").text().unwrap(),
        "count=2 last= keys=1\n"
    );
    assert_eq!(
        node.ok(&["invoke", "counter", "--key", "a b"]),
        "count=3 last= keys=1\n"
    );
    assert_eq!(
        get("by-path/users/u1").text().unwrap(),
        "count=1 last= keys=1\n"
    );
    assert_eq!(
        node.ok(&["invoke", "by-path", "--path", "users", "--key", "u1"]),
        "count=2 last= keys=1\n"
    );
    // Two functions with the same key do not share state.
    assert_eq!(
        get("counter?user=u1").text().unwrap(),
        "count=1 last= keys=1\n"
    );

    for (path, why) in [
        ("counter", "state key from `query:user` is missing"),
        ("counter?user=", "is empty"),
        ("by-path/users", "state key from `path:2` is missing"),
    ] {
        let (status, e) = error_of(get(path));
        assert_eq!(status, 400, "{path}: {e}");
        assert_eq!(e["code"], "invalid_state_key", "{path}: {e}");
        assert!(e["message"].as_str().unwrap().contains(why), "{path}: {e}");
    }
    let long = format!("counter?user={}", "k".repeat(300));
    let (status, e) = error_of(get(&long));
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("invalid_state_key"))
    );
    assert!(e["message"].as_str().unwrap().contains("300 bytes"), "{e}");
    // The CLI says what it needs, before sending anything.
    node.deploy("plain", "state-counter.wasm", &[]);
    let out = node.cli(&["invoke", "plain", "--key", "k", "--json"]);
    let e = json_error(&out);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("keeps no state"),
        "{e}"
    );
    let out = node.cli(&["invoke", "by-path", "--key", "k", "--json"]);
    let e = json_error(&out);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("give the 1 segment(s) before it with --path"),
        "{e}"
    );
}

#[test]
fn concurrent_increments_of_one_key_all_count() {
    let node = Node::start();
    node.deploy("counter", "state-counter.wasm", &["--state", "edge"]);
    forty_at_once_all_count(&node, "k");
}

/// 40 invocations of `counter` for a new `key` from 8 clients at once,
/// then one more: each increment is atomic in the store, so it counts 41
/// (edge and external state are not serialised per key).
fn forty_at_once_all_count(node: &Node, key: &'static str) {
    let url = format!("{}/fn/counter", node.url);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let c = reqwest::blocking::Client::new();
                for _ in 0..5 {
                    let r = c.post(&url).header("x-weft-key", key).send().unwrap();
                    assert_eq!(r.status(), 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(hit(node, key, ""), "count=41 last= keys=1\n");
}

#[test]
fn external_state_lives_in_the_store_the_operator_names() {
    let redis = Redis::start();
    let node = Node::start_with_config(&format!(
        "[kv.cloud]\nbackend = \"redis\"\nurl = \"{}\"\n\n[state]\nexternal = \"cloud\"\n",
        redis.url()
    ));
    // Deployed from a manifest's state table.
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("weft.toml");
    std::fs::write(
        &manifest,
        format!(
            "manifest_version = 1\n\n[functions.counter]\nmodule = {:?}\n\n\
             [functions.counter.state]\nmodel = \"external\"\nkey = \"header:x-weft-key\"\n",
            crate::harness::guest("state-counter.wasm")
        ),
    )
    .unwrap();
    node.ok(&["deploy", "--manifest", manifest.to_str().unwrap()]);
    hit(&node, "alice", "x");
    assert_eq!(hit(&node, "alice", "y"), "count=2 last=x keys=2\n");
    // Where the operator looks for it: the store's prefix, then the
    // function and the key.
    assert_eq!(
        redis
            .cli(&["GET", "weft:cloud:st/counter/alice/count"])
            .trim(),
        "2"
    );
    assert_eq!(
        redis
            .cli(&["GET", "weft:cloud:st/counter/alice/last"])
            .trim(),
        "y"
    );
    let shown = node.json(&["ls", "counter"]);
    assert_eq!(shown["stateful"]["home"], "cloud", "{shown}");
    assert_eq!(shown["stateful"]["model"], "external", "{shown}");
    // Concurrent updates of one key: each atomic in Redis, none lost.
    forty_at_once_all_count(&node, "bob");
    assert_eq!(
        redis
            .cli(&["GET", "weft:cloud:st/counter/bob/count"])
            .trim(),
        "41"
    );
}

#[test]
fn a_model_the_node_cannot_provide_is_refused_at_deploy_naming_what_is_missing() {
    let node = Node::start();
    let path = crate::harness::guest("state-counter.wasm");
    let path = path.to_str().unwrap();
    refused(&node, "counter", "external", "[state] external");
    // A bad flag is refused by the CLI, naming it.
    let out = node.cli(&["deploy", "counter", path, "--state", "in-edge"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--state"), "{err}");
    let out = node.cli(&[
        "deploy",
        "counter",
        path,
        "--state",
        "edge",
        "--state-key",
        "cookie:id",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown source `cookie`"), "{err}");
    // The bucket is named at deploy; a guest that opens another is denied.
    let out = node.cli(&[
        "deploy",
        "counter",
        path,
        "--state",
        "edge",
        "--state-bucket",
        "Bad",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--state-bucket"));
    node.ok(&[
        "deploy",
        "counter",
        path,
        "--state",
        "edge",
        "--state-bucket",
        "data",
    ]);
    assert_eq!(node.json(&["ls", "counter"])["stateful"]["bucket"], "data");
    let r = node
        .http()
        .post(format!("{}/fn/counter", node.url))
        .header("x-weft-key", "k")
        .send()
        .unwrap();
    assert_eq!(r.status(), 500);
    assert!(eventually(Duration::from_secs(5), || node
        .ok(&["logs", "counter"])
        .contains("denied: key-value store `state`")));
}

/// POSTs `body` to `counter` for `key`, carrying `state`; returns the
/// status, the body and the state that came back.
fn hit_client(
    node: &Node,
    key: &str,
    state: Option<&str>,
    body: &str,
) -> (u16, String, Option<String>) {
    hit_client_of(node, "counter", key, state, body)
}

/// [`hit_client`] of the function `function`.
fn hit_client_of(
    node: &Node,
    function: &str,
    key: &str,
    state: Option<&str>,
    body: &str,
) -> (u16, String, Option<String>) {
    let mut rb = node
        .http()
        .post(format!("{}/fn/{function}", node.url))
        .header("x-weft-key", key)
        .body(body.to_string());
    if let Some(s) = state {
        rb = rb.header("x-weft-state", s);
    }
    let r = rb.send().unwrap();
    let status = r.status().as_u16();
    let back = r
        .headers()
        .get("x-weft-state")
        .map(|v| v.to_str().unwrap().to_string());
    (status, r.text().unwrap(), back)
}

#[test]
fn client_state_goes_back_and_forth_sealed_and_only_the_latest_is_taken() {
    let mut node = Node::start_with_config("[state]\nmax_client_state = \"256B\"\n");
    node.deploy("counter", "state-counter.wasm", &["--state", "client"]);
    let (s, body, t1) = hit_client(&node, "alice", None, "one");
    assert_eq!((s, body.as_str()), (200, "count=1 last= keys=2\n"));
    let t1 = t1.expect("a state comes back");
    assert!(t1.starts_with("v1."), "{t1}");
    let (s, body, t2) = hit_client(&node, "alice", Some(&t1), "two");
    assert_eq!((s, body.as_str()), (200, "count=2 last=one keys=2\n"));
    let t2 = t2.unwrap();
    // Nothing of it stays on the node: another key starts empty, and so
    // does a request that brings no state.
    let (_, body, _) = hit_client(&node, "bob", None, "");
    assert_eq!(body, "count=1 last= keys=1\n");

    // An older state is refused: the client cannot roll back.
    let (s, body, back) = hit_client(&node, "alice", Some(&t1), "again");
    assert_eq!(s, 409, "{body}");
    assert!(body.contains("stale_client_state"), "{body}");
    assert!(back.is_none());
    // A forged one: any byte changed.
    let mut forged = t2.clone().into_bytes();
    let i = forged.len() / 2;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let (s, body, _) = hit_client(&node, "alice", Some(&forged), "");
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("invalid_client_state"), "{body}");
    assert!(
        body.contains("not a state this node or its fabric sealed"),
        "{body}"
    );
    // Another key's.
    let (s, body, _) = hit_client(&node, "bob", Some(&t2), "");
    assert_eq!(s, 400, "{body}");
    assert!(
        body.contains("key `alice`, not of function `counter`, key `bob`"),
        "{body}"
    );
    // Another function's, for the same key.
    node.deploy("other", "state-counter.wasm", &["--state", "client"]);
    let (s, body, back) = hit_client_of(&node, "other", "alice", Some(&t2), "");
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("invalid_client_state"), "{body}");
    assert!(
        body.contains("function `counter`, key `alice`, not of function `other`, key `alice`"),
        "{body}"
    );
    assert!(back.is_none());
    // Too large to take.
    let huge = format!("v1.{}.x", "A".repeat(4096));
    let (s, body, _) = hit_client(&node, "alice", Some(&huge), "");
    assert_eq!(s, 413, "{body}");
    assert!(body.contains("client_state_too_large"), "{body}");
    // A guest that would grow the state past the limit fails, and the
    // client keeps the state it sent: still the latest.
    let (s, _, back) = hit_client(&node, "alice", Some(&t2), &"x".repeat(300));
    assert_eq!(s, 500);
    assert!(back.is_none());
    let (s, body, t3) = hit_client(&node, "alice", Some(&t2), "three");
    assert_eq!((s, body.as_str()), (200, "count=3 last=two keys=2\n"));
    let t3 = t3.unwrap();

    // Of requests carrying the same state at once, one runs: a key's
    // client state has one writer.
    let url = format!("{}/fn/counter", node.url);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (url, t3) = (url.clone(), t3.clone());
            std::thread::spawn(move || {
                reqwest::blocking::Client::new()
                    .post(url)
                    .header("x-weft-key", "alice")
                    .header("x-weft-state", t3)
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 409, 409, 409, 409, 409, 409, 409]);

    // Queued work has no client to answer with its state.
    let r = post_async(&node, "counter", "", &[("x-weft-key", "alice")]);
    let (status, e) = error_of(r);
    assert_eq!((status, e["code"].as_str()), (400, Some("invalid_request")));
    assert!(
        e["message"].as_str().unwrap().contains("synchronously"),
        "{e}"
    );

    // The seal and the versions survive kill -9.
    node.kill9();
    node.restart();
    let (s, body, _) = hit_client(&node, "alice", Some(&t3), "");
    assert_eq!(s, 409, "t3 was taken by the burst: {body}");

    // The CLI keeps a state in a file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("carol.state");
    let file = file.to_str().unwrap();
    let invoke = |d: &str| {
        node.ok(&[
            "invoke",
            "counter",
            "--key",
            "carol",
            "--state-file",
            file,
            "-d",
            d,
        ])
    };
    assert_eq!(invoke("a"), "count=1 last= keys=2\n");
    assert_eq!(invoke("b"), "count=2 last=a keys=2\n");
    assert!(std::fs::read_to_string(file).unwrap().starts_with("v1."));
    assert_eq!(node.json(&["ls", "counter"])["stateful"]["home"], "client");
}

/// Deploys state-counter as `name` under `model` on `node`, which must
/// refuse it with `state_model_unavailable` saying `says`.
fn refused(node: &Node, name: &str, model: &str, says: &str) {
    let path = crate::harness::guest("state-counter.wasm");
    let path = path.to_str().unwrap();
    let out = node.cli(&["deploy", name, path, "--state", model, "--json"]);
    let e = json_error(&out);
    assert_eq!(e["error"]["code"], "state_model_unavailable", "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.contains(says), "{message}");
    // Nothing was deployed.
    assert!(!node.cli(&["ls", name]).status.success());
}

/// `(count, last)` of a state-counter answer.
fn count_and_last(answer: &str) -> (u64, String) {
    let mut count = 0;
    let mut last = String::new();
    for part in answer.split_whitespace() {
        if let Some(n) = part.strip_prefix("count=") {
            count = n.parse().unwrap();
        } else if let Some(l) = part.strip_prefix("last=") {
            last = l.to_string();
        }
    }
    (count, last)
}

#[test]
fn an_actor_keeps_a_key_in_memory_one_invocation_at_a_time_checkpointed() {
    let mut node = Node::start();
    node.deploy("counter", "state-counter.wasm", &["--state", "function"]);
    assert_eq!(hit(&node, "alice", "a"), "count=1 last= keys=2\n");
    assert_eq!(hit(&node, "alice", "b"), "count=2 last=a keys=2\n");
    assert_eq!(hit(&node, "bob", ""), "count=1 last= keys=1\n");
    let shown = node.json(&["ls", "counter"]);
    assert_eq!(shown["stateful"]["model"], "function", "{shown}");

    // One writer per key: 24 requests at once each see exactly the state
    // the one before left (count n answers last = the body of count n-1).
    let url = format!("{}/fn/counter", node.url);
    let threads: Vec<_> = (0..24)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let r = reqwest::blocking::Client::new()
                    .post(url)
                    .header("x-weft-key", "alice")
                    .body(format!("r{i}"))
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 200);
                (format!("r{i}"), count_and_last(&r.text().unwrap()))
            })
        })
        .collect();
    let mut answers: Vec<(String, (u64, String))> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    answers.sort_by_key(|(_, (n, _))| *n);
    let counts: Vec<u64> = answers.iter().map(|(_, (n, _))| *n).collect();
    assert_eq!(counts, (3..27).collect::<Vec<_>>());
    assert_eq!(answers[0].1.1, "b");
    for w in answers.windows(2) {
        assert_eq!(
            w[1].1.1, w[0].0,
            "count {} did not see {}'s state",
            w[1].1.0, w[0].0
        );
    }
    let last_body = answers.last().unwrap().0.clone();

    // A failed turn leaves the state as it was: this one's increment is
    // not kept (its value is past the store's 1 MiB).
    let big = "x".repeat(1_100_000);
    let r = node
        .http()
        .post(format!("{}/fn/counter", node.url))
        .header("x-weft-key", "alice")
        .body(big)
        .send()
        .unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(
        hit(&node, "alice", "c"),
        format!("count=27 last={last_body} keys=2\n")
    );

    // What was acknowledged survives kill -9: the checkpoint is durable
    // before the answer goes out.
    node.kill9();
    node.restart();
    assert_eq!(hit(&node, "alice", "d"), "count=28 last=c keys=2\n");
    assert_eq!(hit(&node, "bob", ""), "count=2 last= keys=1\n");
    // Queued work takes its turn too.
    queue_and_wait(&node, "bob", "queued");
    assert_eq!(hit(&node, "bob", ""), "count=4 last=queued keys=2\n");
}

/// An edge node of site `a` on the NATS server at `url`, named `name`,
/// whose edge state lives in `[kv.site]` as `store` configures it.
fn site_node(url: &str, name: &str, store: &str) -> Node {
    site_node_with(url, name, store, "", "")
}

/// [`site_node`] with more stores (`[kv.*]` tables) and more `[state]` keys.
fn site_node_with(url: &str, name: &str, store: &str, stores: &str, state: &str) -> Node {
    Node::start_with_config(&format!(
        "[fabric]\nurl = \"{url}\"\nname = \"{name}\"\ntier = \"edge\"\nlabels = {{ site = \"a\" }}\n\n\
         {stores}\n[kv.site]\n{store}\n\n[state]\nedge = \"site\"\nfunction = \"site\"\n{state}"
    ))
}

/// `weft explain` on `node` rules `peer` out for `function` by its stores.
fn ruled_out_by_store(node: &Node, function: &str, peer: &str) {
    let why = node.json(&["explain", function]);
    assert!(
        why["excluded"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["node"] == peer && e["constraint"] == "store"),
        "{why}"
    );
}

#[test]
fn in_a_fabric_edge_state_is_the_sites_store_shared_by_its_nodes() {
    let nats = crate::servers::Nats::hub();
    let store = "backend = \"fabric\"";
    let a = site_node(&nats.url(), "edge-a1", store);
    let b = site_node(&nats.url(), "edge-a2", store);
    a.deploy("counter", "state-counter.wasm", &["--state", "edge"]);
    assert!(eventually(Duration::from_secs(30), || {
        crate::fabric::lists(&b, "counter")
    }));
    // Each runs where it entered; both count in the site's store.
    assert_eq!(hit(&a, "alice", "1"), "count=1 last= keys=2\n");
    assert_eq!(hit(&b, "alice", "2"), "count=2 last=1 keys=2\n");
    assert_eq!(hit(&a, "alice", ""), "count=3 last=2 keys=2\n");
    let shown = b.json(&["ls", "counter"]);
    assert_eq!(shown["stateful"]["home"], "site", "{shown}");
    // A node without the site's store may not run it: the state would not
    // be there.
    let cloud = crate::fabric::fabric_node(&nats, "cloud-1", "cloud", &[]);
    assert!(eventually(Duration::from_secs(30), || {
        crate::fabric::sees(&a, "cloud-1", true)
    }));
    ruled_out_by_store(&a, "counter", "cloud-1");
    // Entering at the cloud node, which cannot give it its state, it runs
    // at the site, counting on: never there without its state.
    assert!(eventually(Duration::from_secs(30), || {
        crate::fabric::lists(&cloud, "counter")
            && crate::fabric::sees(&cloud, "edge-a1", true)
            && crate::fabric::sees(&cloud, "edge-a2", true)
    }));
    let shown = cloud.json(&["ls", "counter"]);
    assert_eq!(shown["stateful"]["home"], "unavailable", "{shown}");
    let (status, text, ran) = hit_where(&cloud, "alice", "");
    assert_eq!((status, count_and_last(&text).0), (200, 4), "{text}");
    assert!(ran.starts_with("edge-a"), "{ran}");
    drop(cloud);

    // Without a site store named, edge is refused in a fabric; models
    // whose key has one writer need a store the nodes share for it.
    let c = crate::fabric::fabric_node(&nats, "edge-b1", "edge", &[]);
    refused(&c, "lone", "edge", "[state] edge");
    for model in ["function", "client"] {
        refused(&c, "solo", model, "[state] function");
    }
}

#[test]
fn an_http_component_keeps_state_under_each_model_unchanged() {
    let node = Node::start();
    for model in ["edge", "function", "client"] {
        let name = format!("visits-{model}");
        node.deploy(&name, "http-counter.wasm", &["--state", model]);
        let mut sealed: Option<String> = None;
        let mut send = |path: &str| {
            let mut rb = node
                .http()
                .get(format!("{}/fn/{name}{path}", node.url))
                .header("x-weft-key", "k");
            if let Some(s) = &sealed {
                rb = rb.header("x-weft-state", s);
            }
            let r = rb.send().unwrap();
            let status = r.status().as_u16();
            if let Some(s) = r.headers().get("x-weft-state") {
                sealed = Some(s.to_str().unwrap().to_string());
            }
            (status, r.text().unwrap())
        };
        assert_eq!(send("/"), (200, "count=1\n".to_string()), "{model}");
        assert_eq!(send("/"), (200, "count=2\n".to_string()), "{model}");
        // A 500 after counting: only the shared store keeps the count.
        assert_eq!(send("/fail").0, 500, "{model}");
        let after = if model == "edge" {
            "count=4\n"
        } else {
            "count=3\n"
        };
        assert_eq!(send("/"), (200, after.to_string()), "{model}");
    }
}

#[test]
fn a_sites_store_kept_by_one_of_its_nodes_serves_the_site_through_a_cut_uplink() {
    use crate::servers::{Link, Nats};
    let hub = Nats::hub();
    let link = Link::new(hub.leaf_addr());
    link.set_latency(Duration::from_millis(20));
    let leaf = Nats::leaf(&link.addr().to_string());
    leaf.wait_leaf_connected();
    let store = "backend = \"node\"\nnode = \"edge-a1\"";
    // External state's home: a store the cloud node keeps, across the link.
    let home = "[kv.home]\nbackend = \"node\"\nnode = \"cloud-1\"\n";
    let external = "external = \"home\"\n";
    let a1 = site_node_with(&leaf.url(), "edge-a1", store, home, external);
    let a2 = site_node_with(&leaf.url(), "edge-a2", store, home, external);
    let cloud = Node::start_with_config(&format!(
        "[fabric]\nurl = \"{}\"\nname = \"cloud-1\"\ntier = \"cloud\"\n\n{home}\n[state]\nexternal = \"home\"\n",
        hub.url()
    ));
    let long = Duration::from_secs(30);
    assert!(eventually(long, || crate::fabric::sees(
        &a2, "edge-a1", true
    ) && crate::fabric::sees(
        &a2, "cloud-1", true
    )));
    a2.deploy("counter", "state-counter.wasm", &["--state", "edge"]);
    a2.deploy("actor", "state-counter.wasm", &["--state", "function"]);
    a2.deploy("carried", "state-counter.wasm", &["--state", "client"]);
    a2.deploy("remote", "state-counter.wasm", &["--state", "external"]);
    assert!(eventually(long, || [
        "counter", "actor", "carried", "remote"
    ]
    .iter()
    .all(|f| crate::fabric::lists(&a1, f))
        && crate::fabric::lists(&cloud, "remote")));
    // Both nodes of the site count in the store edge-a1 keeps; the cloud,
    // which does not map it, may not run the function.
    assert_eq!(hit(&a2, "alice", "1"), "count=1 last= keys=2\n");
    assert_eq!(hit(&a1, "alice", "2"), "count=2 last=1 keys=2\n");
    ruled_out_by_store(&a2, "counter", "cloud-1");
    // Actors too, checkpointed in that store: each key on one of the site's
    // nodes, whichever it enters at.
    let actor = |node: &Node, key: &str| {
        let r = node
            .http()
            .post(format!("{}/fn/actor", node.url))
            .header("x-weft-key", key)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        (
            crate::fabric::header(&r, "x-weft-node"),
            count_and_last(&r.text().unwrap()).0,
        )
    };
    let keys = ["k0", "k1", "k2", "k3", "k4", "k5"];
    for (i, key) in keys.iter().enumerate() {
        let via = if i % 2 == 0 { &a1 } else { &a2 };
        let (ran, count) = actor(via, key);
        assert!(ran.starts_with("edge-a"), "{key} ran on {ran}");
        assert_eq!(count, 1, "{key}");
    }
    // Client state: sealed by one of the site's nodes, taken by the other.
    let (s, body, sealed) = hit_client_of(&a1, "carried", "carol", None, "c1");
    assert_eq!((s, body.as_str()), (200, "count=1 last= keys=2\n"));
    let (s, body, sealed) = hit_client_of(&a2, "carried", "carol", sealed.as_deref(), "c2");
    assert_eq!((s, body.as_str()), (200, "count=2 last=c1 keys=2\n"));
    // External state lives in the cloud, 20 ms away: it counts from the
    // site, wherever placement runs it.
    let remote = |node: &Node, body: &str| {
        let r = node
            .http()
            .post(format!("{}/fn/remote", node.url))
            .header("x-weft-key", "dave")
            .body(body.to_string())
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    assert_eq!(remote(&a1, "d1"), (200, "count=1 last= keys=2\n".into()));
    assert_eq!(remote(&a2, "d2"), (200, "count=2 last=d1 keys=2\n".into()));

    // The uplink drops: the site goes on with its state.
    link.cut();
    assert!(eventually(long, || crate::fabric::sees(
        &a2, "cloud-1", false
    )));
    assert_eq!(hit(&a2, "alice", "3"), "count=3 last=2 keys=2\n");
    assert_eq!(hit(&a1, "alice", "4"), "count=4 last=3 keys=2\n");
    assert_eq!(hit(&a2, "bob", ""), "count=1 last= keys=1\n");
    for (i, key) in keys.iter().enumerate() {
        let via = if i % 2 == 0 { &a2 } else { &a1 };
        assert_eq!(actor(via, key).1, 2, "{key}, with the uplink cut");
    }
    let (s, body, _) = hit_client_of(&a1, "carried", "carol", sealed.as_deref(), "c3");
    assert_eq!(
        (s, body.as_str()),
        (200, "count=3 last=c2 keys=2\n"),
        "client state, with the uplink cut"
    );
    // External state does not: its home is beyond the cut, and the site
    // says so rather than counting from nothing.
    let (status, text) = remote(&a1, "d3");
    assert!(status >= 500, "{status} {text}");
    drop(cloud);

    // The keeper gone: its store is unavailable to the others, clearly.
    // (Until a2 sees it gone, placement may still send it the work, which
    // the store is cheapest from: `node_unreachable`.)
    let mut a1 = a1;
    a1.kill9();
    assert!(eventually(long, || crate::fabric::sees(
        &a2, "edge-a1", false
    )));
    let r = a2
        .http()
        .post(format!("{}/fn/counter", a2.url))
        .header("x-weft-key", "alice")
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    assert_eq!(status, 500, "{text}");
    // The guest got the store's error and said so in its log.
    assert!(
        eventually(Duration::from_secs(10), || {
            let logs = a2.ok(&["logs", "counter"]);
            logs.contains("store_unavailable") && logs.contains("node `edge-a1`")
        }),
        "{}",
        a2.ok(&["logs", "counter"])
    );
}

#[test]
fn client_state_travels_along_a_chain_of_calls_sealed_once() {
    let node = Node::start();
    node.deploy("step2", "state-counter.wasm", &["--state", "client"]);
    node.deploy(
        "counter",
        "state-counter.wasm",
        &[
            "--state",
            "client",
            "--config-value",
            "next=step2",
            "--call",
            "step2",
        ],
    );
    let (s, body, t1) = hit_client(&node, "alice", None, "a");
    assert_eq!(s, 200, "{body}");
    assert_eq!(body, "count=1 last= keys=2\ncount=1 last= keys=2\n");
    let t1 = t1.unwrap();
    // One state for the chain: both steps' entries come back in it.
    let (s, body, t2) = hit_client(&node, "alice", Some(&t1), "b");
    assert_eq!(s, 200, "{body}");
    assert_eq!(body, "count=2 last=a keys=2\ncount=2 last=a keys=2\n");
    // Only the latest is taken, for the chain as for one function.
    let (s, _, _) = hit_client(&node, "alice", Some(&t1), "c");
    assert_eq!(s, 409);
    // A step that fails fails the chain, and the client keeps its state.
    let (s, _, back) = hit_client(
        &node,
        "alice",
        Some(t2.as_deref().unwrap()),
        &"x".repeat(20_000),
    );
    assert_eq!(s, 500);
    assert!(back.is_none());
    let (s, body, _) = hit_client(&node, "alice", t2.as_deref(), "d");
    assert_eq!(s, 200, "{body}");
    assert_eq!(body, "count=3 last=b keys=2\ncount=3 last=b keys=2\n");
}

#[test]
fn weft_state_shows_and_removes_a_keys_state_where_the_node_keeps_it() {
    let node = Node::start();
    for model in ["edge", "function"] {
        let name = format!("c-{model}");
        node.deploy(&name, "state-counter.wasm", &["--state", model]);
        let post = |key: &str, body: &str| {
            node.http()
                .post(format!("{}/fn/{name}", node.url))
                .header("x-weft-key", key)
                .body(body.to_string())
                .send()
                .unwrap()
                .text()
                .unwrap()
        };
        post("a/b", "x");
        post("a/b", "y");
        let v = node.json(&["state", "get", &name, "a/b"]);
        let entries = v["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 2, "{model}: {v}");
        assert_eq!(entries[0]["key"], "count");
        assert_eq!(entries[0]["value"], "2");
        assert_eq!(entries[1]["value"], "y");
        let text = node.ok(&["state", "get", &name, "a/b"]);
        assert_eq!(text, "count = 2\nlast = y\n", "{model}");
        let text = node.ok(&["state", "rm", &name, "a/b"]);
        assert!(text.contains("removed: 2 entries"), "{model}: {text}");
        assert_eq!(post("a/b", "z"), "count=1 last= keys=2\n", "{model}");
        assert!(
            node.ok(&["state", "get", &name, "nobody"])
                .contains("has no state")
        );
    }
    node.deploy("c-client", "state-counter.wasm", &["--state", "client"]);
    let e = json_error(&node.cli(&["state", "get", "c-client", "k", "--json"]));
    assert_eq!(e["error"]["code"], "invalid_request", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("kept by its clients"),
        "{e}"
    );
    let e = json_error(&node.cli(&["state", "get", "c-edge", "a\u{7}b", "--json"]));
    assert_eq!(e["error"]["code"], "invalid_state_key", "{e}");
}

/// A node of a fabric whose actors' checkpoints and client states' versions
/// live in the fabric's JetStream (`[state] function`).
fn sharing_node(url: &str, name: &str) -> Node {
    Node::start_with_config(&format!(
        "[fabric]\nurl = \"{url}\"\nname = \"{name}\"\ntier = \"edge\"\n\n\
         [kv.shared]\nbackend = \"fabric\"\n\n[state]\nfunction = \"shared\"\n"
    ))
}

/// POSTs to `counter` on `node` for `key`: the answer's status, its body
/// and the node that ran it.
fn hit_where(node: &Node, key: &str, body: &str) -> (u16, String, String) {
    let r = node
        .http()
        .post(format!("{}/fn/counter", node.url))
        .header("x-weft-key", key)
        .body(body.to_string())
        .send()
        .unwrap();
    let ran = crate::fabric::header(&r, "x-weft-node");
    (r.status().as_u16(), r.text().unwrap(), ran)
}

#[test]
fn in_a_fabric_a_keys_actor_has_one_owner_and_resumes_elsewhere_after_kill_9() {
    let nats = crate::servers::Nats::hub();
    let a = sharing_node(&nats.url(), "edge-1");
    let mut b = sharing_node(&nats.url(), "edge-2");
    let long = Duration::from_secs(30);
    assert!(eventually(long, || crate::fabric::sees(&a, "edge-2", true)
        && crate::fabric::sees(&b, "edge-1", true)));
    a.deploy("counter", "state-counter.wasm", &["--state", "function"]);
    assert!(eventually(long, || crate::fabric::lists(&b, "counter")));
    // Each key runs on its one owner, whichever node it enters at: its
    // count goes up by one per call, entering at either.
    let keys: Vec<String> = (0..12).map(|k| format!("user-{k}")).collect();
    let mut owner = std::collections::BTreeMap::new();
    for round in 1..=3u64 {
        for (i, key) in keys.iter().enumerate() {
            let via = if (i + round as usize).is_multiple_of(2) {
                &a
            } else {
                &b
            };
            let (status, text, ran) = hit_where(via, key, &format!("r{round}"));
            assert_eq!(status, 200, "{text}");
            assert_eq!(count_and_last(&text).0, round, "{key}: {text}");
            assert_eq!(
                owner.entry(key.clone()).or_insert(ran.clone()),
                &ran,
                "{key}"
            );
        }
    }
    let on_b: Vec<&String> = keys.iter().filter(|k| owner[*k] == "edge-2").collect();
    let on_a: Vec<&String> = keys.iter().filter(|k| owner[*k] == "edge-1").collect();
    assert!(!on_a.is_empty() && !on_b.is_empty(), "{owner:?}");
    // `weft explain --key` names each key's owner, from either node; an
    // actor's explanation needs the key.
    for key in &keys {
        for node in [&a, &b] {
            let why = node.json(&["explain", "counter", "--key", key]);
            assert_eq!(why["node"], owner[key], "{why}");
            assert_eq!(why["reason"]["kind"], "owner", "{why}");
        }
    }
    let out = a.cli(&["explain", "counter", "--json"]);
    assert_eq!(json_error(&out)["error"]["code"], "invalid_state_key");

    // The owner of some keys dies. Until the fabric sees it gone their
    // calls fail (nothing is retried twice: the function is not marked
    // idempotent); then the next owner loads each actor from its
    // checkpoint in the shared store, and nothing acknowledged is lost.
    b.kill9();
    for key in &on_b {
        let mut answer = None;
        assert!(eventually(long, || {
            let (status, text, ran) = hit_where(&a, key, "after");
            if status == 200 {
                answer = Some((text, ran));
            }
            status == 200
        }));
        let (text, ran) = answer.unwrap();
        assert_eq!(ran, "edge-1");
        assert_eq!(count_and_last(&text), (4, "r3".to_string()), "{key}");
    }
    let (_, text, ran) = hit_where(&a, on_a[0], "");
    assert_eq!((count_and_last(&text).0, ran.as_str()), (4, "edge-1"));

    // It comes back: its keys go back to it, with what edge-1 wrote.
    b.restart();
    assert!(eventually(long, || crate::fabric::sees(&a, "edge-2", true)));
    for key in &on_b {
        let mut answer = None;
        assert!(eventually(long, || {
            let (status, text, ran) = hit_where(&a, key, "back");
            answer = Some((status, text));
            ran == "edge-2"
        }));
        let (status, text) = answer.unwrap();
        assert_eq!(status, 200, "{text}");
        let (count, last) = count_and_last(&text);
        // Calls that edge-1 still took while it learned of edge-2 count
        // too: none is lost, whichever node ran it.
        assert!(
            count >= 5 && (last == "after" || last == "back"),
            "{key}: {text}"
        );
        let (_, again, _) = hit_where(&b, key, "");
        assert_eq!(count_and_last(&again).0, count + 1, "{key}: {again}");
    }

    // An operator removes a key's state at the node that does not own it:
    // the owner, told so, drops its copy and starts the key over (without
    // the word it would find the checkpoint changed at its next write and
    // fail that call with `state_conflict`).
    let key = on_b[0];
    a.ok(&["state", "rm", "counter", key]);
    std::thread::sleep(Duration::from_millis(500));
    let (status, text, ran) = hit_where(&a, key, "fresh");
    assert_eq!((status, ran.as_str()), (200, "edge-2"), "{text}");
    assert_eq!(count_and_last(&text), (1, String::new()), "{text}");

    // Drained (SIGTERM), edge-2 says it leaves: edge-1 counts it down at
    // once, not after three missed beats (at least 2 s after its last
    // one), and its keys move with their state.
    let counts: Vec<u64> = on_b
        .iter()
        .map(|k| count_and_last(&hit_where(&b, k, "").1).0)
        .collect();
    let signalled = std::time::Instant::now();
    let seen_down = std::thread::scope(|scope| {
        let drained = scope.spawn(|| b.terminate());
        let seen = eventually(Duration::from_secs(10), || {
            !crate::fabric::sees(&a, "edge-2", true)
        });
        let seen_down = signalled.elapsed();
        assert!(drained.join().unwrap().success());
        assert!(seen, "edge-1 never saw edge-2 leave");
        seen_down
    });
    assert!(
        seen_down < Duration::from_millis(1500),
        "edge-1 saw edge-2 down {seen_down:?} after it was told to drain"
    );
    for (key, count) in on_b.iter().zip(counts) {
        let (status, text, ran) = hit_where(&a, key, "drained");
        assert_eq!((status, ran.as_str()), (200, "edge-1"), "{key}: {text}");
        assert_eq!(count_and_last(&text).0, count + 1, "{key}: {text}");
    }
}

#[test]
fn in_a_fabric_a_client_state_sealed_by_one_node_is_taken_by_another_once() {
    let nats = crate::servers::Nats::hub();
    let a = sharing_node(&nats.url(), "edge-1");
    let b = sharing_node(&nats.url(), "edge-2");
    // The store that holds the seal is the platform's: no function opens it.
    let path = crate::harness::guest("state-counter.wasm");
    let out = a.cli(&[
        "deploy",
        "peek",
        path.to_str().unwrap(),
        "--kv",
        "shared",
        "--json",
    ]);
    let e = json_error(&out);
    assert_eq!(e["error"]["code"], "invalid_spec", "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("key_value_stores[0]") && message.contains("`[state] function`"),
        "{message}"
    );
    a.deploy("counter", "state-counter.wasm", &["--state", "client"]);
    assert!(eventually(
        Duration::from_secs(30),
        || crate::fabric::lists(&b, "counter")
    ));
    let (status, text, s1) = hit_client(&a, "k", None, "one");
    assert_eq!((status, count_and_last(&text).0), (200, 1), "{text}");
    let s1 = s1.unwrap();
    // The other node takes it: one secret, one version count.
    let (status, text, s2) = hit_client(&b, "k", Some(&s1), "two");
    assert_eq!(
        (status, count_and_last(&text)),
        (200, (2, "one".into())),
        "{text}"
    );
    // The older state is stale at either node.
    for node in [&a, &b] {
        let (status, text, _) = hit_client(node, "k", Some(&s1), "again");
        assert_eq!(status, 409, "{text}");
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["error"]["code"], "stale_client_state", "{text}");
    }
    let (status, text, _) = hit_client(&a, "k", s2.as_deref(), "three");
    assert_eq!((status, count_and_last(&text).0), (200, 3), "{text}");
}
