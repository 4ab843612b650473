//! Capabilities beyond the sandbox, through the `weft-sdk` examples: every
//! one denied unless declared, with a clear error to the guest and a line
//! in its log; function-to-function calls through the router; topics;
//! HTTP routes.

use crate::harness::{Node, error_of, eventually};
use std::time::Duration;

fn logs(node: &Node, name: &str) -> String {
    node.ok(&["logs", name])
}

fn fails(node: &Node, args: &[&str]) -> String {
    let out = node.cli(args);
    assert!(!out.status.success(), "weft {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn caps_kv_config_and_logging_when_declared() {
    let node = Node::start();
    node.deploy(
        "counter",
        "kv-counter.wasm",
        &["--kv", "default", "--config-value", "greeting=hello"],
    );
    assert_eq!(node.ok(&["invoke", "counter"]), "hello: hits = 1\n");
    assert_eq!(node.ok(&["invoke", "counter"]), "hello: hits = 2\n");
    assert_eq!(
        node.ok(&["invoke", "counter", "-d", "other"]),
        "hello: other = 1\n"
    );
    // wasi:logging lines land in the function's log with their level.
    assert!(logs(&node, "counter").contains("INFO hits = 2"));
    // A second function declaring the same label shares the store.
    node.deploy(
        "counter2",
        "kv-counter.wasm",
        &["--kv", "default", "--config-value", "greeting=hi"],
    );
    assert_eq!(node.ok(&["invoke", "counter2"]), "hi: hits = 3\n");
}

#[test]
fn caps_undeclared_store_and_config_are_denied_and_logged() {
    let node = Node::start();
    node.deploy("nokv", "kv-counter.wasm", &["--config-value", "greeting=x"]);
    fails(&node, &["invoke", "nokv"]);
    let log = logs(&node, "nokv");
    assert!(
        log.contains("denied: key-value store `default` is not declared by function `nokv`"),
        "{log}"
    );
    node.deploy("noconfig", "kv-counter.wasm", &["--kv", "default"]);
    fails(&node, &["invoke", "noconfig"]);
    let log = logs(&node, "noconfig");
    assert!(
        log.contains("denied: config key `greeting` is not declared by function `noconfig`"),
        "{log}"
    );
    // A store the node does not provide is refused at deploy, by name.
    let out = node.cli(&[
        "deploy",
        "x",
        crate::harness::guest("kv-counter.wasm").to_str().unwrap(),
        "--kv",
        "nosuch",
        "--json",
    ]);
    assert!(!out.status.success());
    let err: serde_json::Value = crate::harness::json_error(&out);
    assert_eq!(err["error"]["code"], "unknown_store", "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("nosuch"));
}

#[test]
fn caps_outbound_http_only_to_allowed_hosts() {
    let node = Node::start();
    let me = node.url.clone();
    node.deploy("echo", "echo.wasm", &[]);
    node.deploy("fetch", "fetch.wasm", &["--allow-host", &me]);
    let out = node.ok(&["invoke", "fetch", "-d", &format!("{me}/fn/echo")]);
    assert!(out.starts_with("200\n"), "{out}");
    node.deploy(
        "fetch-denied",
        "fetch.wasm",
        &["--allow-host", "https://example.com"],
    );
    let err = fails(
        &node,
        &["invoke", "fetch-denied", "-d", &format!("{me}/healthz")],
    );
    assert!(err.contains("function_exit"), "{err}");
    let log = logs(&node, "fetch-denied");
    assert!(
        log.contains("denied: outbound HTTP to http://127.0.0.1:")
            && log.contains("not in the allowed_outbound_hosts of function `fetch-denied`"),
        "{log}"
    );
    // A malformed host pattern is refused at deploy.
    let out = node.cli(&[
        "deploy",
        "bad",
        crate::harness::guest("fetch.wasm").to_str().unwrap(),
        "--allow-host",
        "example.com",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("allowed_outbound_hosts"));
}

#[test]
fn caps_calls_run_through_the_router_with_the_callers_deadline() {
    let node = Node::start();
    node.deploy("back", "chain.wasm", &[]);
    node.deploy(
        "front",
        "chain.wasm",
        &[
            "--call",
            "back",
            "--config-value",
            "callee=back",
            "--timeout",
            "2s",
        ],
    );
    let out = node.ok(&["invoke", "front", "-d", "hi"]);
    assert!(out.starts_with("front[trigger=http"), "{out}");
    let inner = out
        .split("back[trigger=call deadline_left_ms=")
        .nth(1)
        .unwrap();
    let left: u64 = inner.split(']').next().unwrap().parse().unwrap();
    // back's own timeout is the default 10 s; the call gets what is left of
    // front's 2 s.
    assert!(left <= 2000, "{out}");
    assert!(out.ends_with("(hi))"), "{out}");

    // Undeclared callee: denied, logged.
    node.deploy("sneaky", "chain.wasm", &["--config-value", "callee=back"]);
    fails(&node, &["invoke", "sneaky"]);
    assert!(
        logs(&node, "sneaky").contains("denied: call to function `back` is not declared"),
        "{}",
        logs(&node, "sneaky")
    );
}

#[test]
fn caps_call_cycles_and_depth_are_refused() {
    let node = Node::start_with_config("max_call_depth = 3\n");
    node.deploy(
        "a",
        "chain.wasm",
        &["--call", "b", "--config-value", "callee=b"],
    );
    node.deploy(
        "b",
        "chain.wasm",
        &["--call", "a", "--config-value", "callee=a"],
    );
    fails(&node, &["invoke", "a"]);
    let log = logs(&node, "b");
    assert!(
        log.contains("cycle: call cycle refused: a -> b -> a"),
        "{log}"
    );

    for (name, next) in [("d1", "d2"), ("d2", "d3"), ("d3", "d4")] {
        node.deploy(
            name,
            "chain.wasm",
            &["--call", next, "--config-value", &format!("callee={next}")],
        );
    }
    node.deploy("d4", "chain.wasm", &[]);
    fails(&node, &["invoke", "d1"]);
    let log = logs(&node, "d3");
    assert!(
        log.contains(
            "too_deep: chain too deep: d1 -> d2 -> d3 -> d4 exceeds the node's max_call_depth of 3"
        ),
        "{log}"
    );
    // A chain within the bound works.
    assert!(
        node.ok(&["invoke", "d2", "-d", "x"])
            .contains("d4[trigger=call")
    );
}

#[test]
fn caps_topics_fan_out_to_subscribers() {
    let node = Node::start();
    node.deploy(
        "audit",
        "events.wasm",
        &["--subscribe", "orders.*", "--kv", "default"],
    );
    node.deploy(
        "other",
        "events.wasm",
        &["--subscribe", "payments.>", "--kv", "default"],
    );
    node.deploy(
        "shop",
        "events.wasm",
        &[
            "--publish",
            "orders.*",
            "--config-value",
            "topic=orders.created",
        ],
    );
    assert_eq!(
        node.ok(&["invoke", "shop", "-d", "o-1"]),
        "published on orders.created\n"
    );
    assert!(eventually(Duration::from_secs(20), || logs(&node, "audit")
        .contains("INFO stored event 1 from orders.created")));
    // The operator can publish too; non-matching subscribers are not invoked.
    let v = node.json(&["publish", "orders.shipped", "-d", "o-1"]);
    assert_eq!(v["subscribers"], 1);
    assert!(eventually(Duration::from_secs(20), || logs(&node, "audit")
        .contains("INFO stored event 2 from orders.shipped")));
    assert!(!logs(&node, "other").contains("stored event"));

    // Publishing outside the declared patterns is denied.
    node.deploy(
        "rogue",
        "events.wasm",
        &[
            "--publish",
            "orders.*",
            "--config-value",
            "topic=payments.taken",
        ],
    );
    fails(&node, &["invoke", "rogue"]);
    assert!(logs(&node, "rogue").contains("denied: publishing on topic `payments.taken`"));
}

#[test]
fn caps_topics_the_node_does_not_provide_are_refused() {
    let node = Node::start_with_config("topics = [\"orders.>\"]\n");
    let out = node.cli(&[
        "deploy",
        "x",
        crate::harness::guest("events.wasm").to_str().unwrap(),
        "--subscribe",
        "payments.*",
        "--json",
    ]);
    assert!(!out.status.success());
    let err: serde_json::Value = crate::harness::json_error(&out);
    assert_eq!(err["error"]["code"], "unknown_topic", "{err}");
    node.deploy("ok", "events.wasm", &["--subscribe", "orders.created"]);
}

#[test]
fn caps_http_routes_declared_in_the_manifest() {
    let node = Node::start();
    node.deploy(
        "web",
        "http-hello.wasm",
        &["--route", "/hello", "--route", "/api/..."],
    );
    node.deploy("cmd", "echo.wasm", &["--route", "/echo"]);
    let get = |p: &str| node.http().get(format!("{}{p}", node.url)).send().unwrap();
    assert_eq!(get("/hello").text().unwrap(), "hello from GET /hello\n");
    assert_eq!(
        get("/api/v1/items?x=1").text().unwrap(),
        "hello from GET /api/v1/items?x=1\n"
    );
    let r = node
        .http()
        .post(format!("{}/echo", node.url))
        .body("ping")
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), "ping");
    assert_eq!(error_of(get("/apix")).0, 404);
    // Conflicts and reserved paths are refused at deploy.
    let out = node.cli(&[
        "deploy",
        "web2",
        crate::harness::guest("http-hello.wasm").to_str().unwrap(),
        "--route",
        "/hello",
        "--json",
    ]);
    let err: serde_json::Value = crate::harness::json_error(&out);
    assert_eq!(err["error"]["code"], "route_conflict", "{err}");
    let out = node.cli(&[
        "deploy",
        "web3",
        crate::harness::guest("http-hello.wasm").to_str().unwrap(),
        "--route",
        "/v1/x",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("reserved"));
    // Removing the function frees its routes.
    node.ok(&["rm", "web"]);
    assert_eq!(error_of(get("/hello")).0, 404);
}

#[test]
fn caps_oversized_values_fail_cleanly_and_keep_what_is_stored() {
    let node = Node::start();
    node.deploy(
        "audit",
        "events.wasm",
        &["--subscribe", "big.*", "--kv", "default", "--retries", "1"],
    );
    node.ok(&["publish", "big.small", "-d", "fits"]);
    assert!(eventually(Duration::from_secs(20), || logs(&node, "audit")
        .contains("INFO stored event 1 from big.small")));
    // The event is stored as a value: 2 MiB is over the 1 MiB limit.
    let huge = "x".repeat(2 << 20);
    let r = node
        .http()
        .post(format!("{}/v1/topics/big.huge", node.url))
        .body(huge)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert!(eventually(Duration::from_secs(30), || {
        let dead = node.json(&["dlq", "ls", "audit"]);
        dead["invocations"].as_array().is_some_and(|a| a.len() == 1)
    }));
    assert!(
        logs(&node, "audit").contains("value_too_large"),
        "{}",
        logs(&node, "audit")
    );
    // The node and the store keep serving: the next event lands.
    node.ok(&["publish", "big.after", "-d", "fine"]);
    assert!(eventually(Duration::from_secs(20), || logs(&node, "audit")
        .contains("from big.after")));
    let v = node
        .admin_get("/v1/node")
        .json::<serde_json::Value>()
        .unwrap();
    assert_eq!(v["kv_stores"], serde_json::json!(["default"]));
    assert_eq!(v["mqtt"], serde_json::Value::Null);
}

#[test]
fn caps_config_through_the_rc1_revision_wasmtime_links() {
    let node = Node::start();
    node.deploy(
        "cfg",
        "config-rc1-p2.wasm",
        &["--config-value", "greeting=hi"],
    );
    assert_eq!(
        node.ok(&["invoke", "cfg", "-d", "greeting missing"]),
        "greeting=hi\nmissing!config key `missing` is not declared by function `cfg`\nall=1\n"
    );
    // The same program as a preview 1 module cannot import interfaces: it
    // is refused at upload, naming the import.
    let out = node.cli(&[
        "deploy",
        "cfg1",
        crate::harness::guest("config-rc1.wasm").to_str().unwrap(),
        "--json",
    ]);
    let err = crate::harness::json_error(&out);
    assert_eq!(err["error"]["code"], "import_not_granted", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("wasi:config/store@0.2.0-rc.1")
    );
}

#[test]
fn caps_async_calls_are_queued_with_the_callees_retry_policy() {
    let node = Node::start();
    node.deploy("back", "chain.wasm", &[]);
    node.deploy(
        "front",
        "chain.wasm",
        &[
            "--call",
            "back",
            "--config-value",
            "callee=back",
            "--config-value",
            "mode=async",
        ],
    );
    let out = node.ok(&["invoke", "front", "-d", "later"]);
    let id = out.strip_prefix("queued ").expect(&out).to_string();
    assert!(eventually(Duration::from_secs(30), || {
        let r = node.admin_get(&format!("/v1/invocations/{id}"));
        r.status().as_u16() == 200 && r.json::<serde_json::Value>().unwrap()["state"] == "succeeded"
    }));
    let rec: serde_json::Value = node
        .admin_get(&format!("/v1/invocations/{id}"))
        .json()
        .unwrap();
    assert_eq!(rec["trigger"], "call");
    assert_eq!(rec["meta"]["caller"], "front");
    assert!(
        rec["result_text"]
            .as_str()
            .unwrap()
            .starts_with("back[trigger=call"),
        "{rec}"
    );
}

#[test]
fn caps_event_storms_end_at_the_depth_bound() {
    // Two relays that forward each other's events: without a bound this
    // never stops.
    let node = Node::start_with_config("max_call_depth = 4\n");
    let relay = |name: &str, listen: &str, forward: &str| {
        node.deploy(
            name,
            "events.wasm",
            &[
                "--subscribe",
                listen,
                "--publish",
                forward,
                "--kv",
                "default",
                "--config-value",
                &format!("forward={forward}"),
                "--retries",
                "1",
            ],
        );
    };
    relay("ping", "ball.ping", "ball.pong");
    relay("pong", "ball.pong", "ball.ping");
    node.ok(&["publish", "ball.ping", "-d", "serve"]);
    let both = || format!("{}{}", logs(&node, "ping"), logs(&node, "pong"));
    assert!(
        eventually(Duration::from_secs(30), || both()
            .contains("chain too deep")),
        "{}",
        both()
    );
    let log = both();
    assert!(
        log.contains("ping -> pong -> ping -> pong -> topic `ball.ping`"),
        "{log}"
    );
    // Four hops ran, then it stopped: nothing more is queued.
    let accepted = node.metric("weft_async_accepted_total");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(node.metric("weft_async_accepted_total"), accepted);
    assert!(accepted <= 5.0, "{accepted}");
}
