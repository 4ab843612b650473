//! Asynchronous invocations: acknowledged only once durably queued, run
//! with the function's retry policy, dead-lettered after the last failure,
//! deduplicated by idempotency key, and never lost to `kill -9`.

use crate::harness::{Node, error_of, eventually};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

pub(crate) fn record(node: &Node, id: &str) -> Value {
    let r = node.admin_get(&format!("/v1/invocations/{id}"));
    assert_eq!(r.status().as_u16(), 200, "invocation {id}");
    r.json().unwrap()
}

fn state_of(node: &Node, id: &str) -> String {
    record(node, id)["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Queues `body` for `name` (`Prefer: respond-async`) with `headers`.
pub(crate) fn post_async(
    node: &Node,
    name: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> reqwest::blocking::Response {
    let mut rb = node
        .http()
        .post(format!("{}/fn/{name}", node.url))
        .header("prefer", "respond-async")
        .body(body.to_string());
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.send().unwrap()
}

#[test]
fn async_cli_invoke_and_result() {
    let node = Node::start();
    node.deploy(
        "counter",
        "kv-counter.wasm",
        &["--kv", "default", "--config-value", "greeting=hey"],
    );
    let id = node.ok(&["invoke", "counter", "--async", "-d", "jobs"]);
    let id = id.trim();
    assert_eq!(id.len(), 28, "{id}");
    assert_eq!(node.ok(&["result", id, "--wait"]), "hey: jobs = 1\n");
    let v = node.json(&["result", id]);
    assert_eq!(v["state"], "succeeded");
    assert_eq!(v["attempts"], 1);
    assert_eq!(v["trigger"], "async");
    assert_eq!(v["result_text"], "hey: jobs = 1\n");
    // The invocation's log lines carry the queue id.
    assert!(
        node.ok(&["logs", "counter"])
            .contains(&format!("[{id}] INFO jobs = 1"))
    );
    // An unknown id is a clear 404.
    let (status, err) = error_of(node.admin_get("/v1/invocations/0000"));
    assert_eq!(
        (status, err["code"].as_str()),
        (404, Some("invocation_not_found"))
    );
}

#[test]
fn async_http_prefer_respond_async_and_idempotency() {
    let node = Node::start();
    node.deploy(
        "counter",
        "kv-counter.wasm",
        &["--kv", "default", "--config-value", "greeting=g"],
    );
    let r = post_async(&node, "counter", "once", &[("idempotency-key", "order-42")]);
    assert_eq!(r.status().as_u16(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let v: Value = r.json().unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/v1/invocations/{id}"));
    assert_eq!(v["duplicate"], false);
    // The same key again: the same invocation, nothing new queued.
    let again: Value = post_async(&node, "counter", "once", &[("idempotency-key", "order-42")])
        .json()
        .unwrap();
    assert_eq!(again["id"], id.as_str());
    assert_eq!(again["duplicate"], true);
    assert!(eventually(LONG, || state_of(&node, &id) == "succeeded"));
    let raw = node
        .admin_get(&format!("{location}/result"))
        .text()
        .unwrap();
    assert_eq!(raw, "g: once = 1\n");
    // Ran once: a synchronous call sees the counter at 2.
    assert_eq!(
        node.ok(&["invoke", "counter", "-d", "once"]),
        "g: once = 2\n"
    );
    // A too-large body is refused before anything is queued.
    node.deploy("small", "echo.wasm", &["--max-request-size", "1KiB"]);
    let (status, err) = error_of(post_async(&node, "small", &"x".repeat(4096), &[]));
    assert_eq!(
        (status, err["code"].as_str()),
        (413, Some("request_too_large"))
    );
    let (status, err) = error_of(post_async(&node, "nosuch", "x", &[]));
    assert_eq!(
        (status, err["code"].as_str()),
        (404, Some("function_not_found"))
    );
}

#[test]
fn async_retries_with_backoff_then_dead_letters() {
    let node = Node::start();
    // Succeeds on its third attempt.
    node.deploy(
        "flaky",
        "flaky.wasm",
        &["--config-value", "succeed_on_attempt=3", "--retries", "3"],
    );
    let id = node
        .ok(&["invoke", "flaky", "--async", "-d", "x"])
        .trim()
        .to_string();
    assert_eq!(
        node.ok(&["result", &id, "--wait"]),
        "succeeded on attempt 3: x"
    );
    assert_eq!(record(&node, &id)["attempts"], 3);
    let log = node.ok(&["logs", "flaky"]);
    assert!(
        log.contains("attempt 1 failed (function_exit); retrying in"),
        "{log}"
    );

    // Never succeeds within its 2 attempts: dead-lettered.
    node.deploy(
        "doomed",
        "flaky.wasm",
        &["--config-value", "succeed_on_attempt=99", "--retries", "2"],
    );
    let id = node.ok(&["invoke", "doomed", "--async"]).trim().to_string();
    assert!(eventually(LONG, || state_of(&node, &id) == "dead"));
    let dead = node.json(&["dlq", "ls", "doomed"]);
    let items = dead["invocations"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["attempts"], 2);
    assert_eq!(items[0]["last_error"]["code"], "function_exit");
    let out = node.cli(&["result", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("dead-letter list"));
    assert_eq!(node.metric("weft_async_dead_lettered_total"), 1.0);

    // Retry from the DLQ: runs again (attempts reset), dies again.
    node.ok(&["dlq", "retry", &id]);
    assert!(eventually(LONG, || {
        let r = record(&node, &id);
        r["state"] == "dead"
            && r["attempts"] == 2
            && node.metric("weft_async_dead_lettered_total") == 2.0
    }));
    // Retrying something not dead is a clear conflict.
    let ok_id = node
        .ok(&["invoke", "flaky", "--async", "-d", "y"])
        .trim()
        .to_string();
    node.ok(&["result", &ok_id, "--wait"]);
    let out = node.cli(&["dlq", "retry", &ok_id, "--json"]);
    assert!(!out.status.success());
    let err: Value = crate::harness::json_error(&out);
    assert_eq!(err["error"]["code"], "not_dead");
    // Drop: gone.
    node.ok(&["dlq", "drop", &id]);
    assert_eq!(
        node.admin_get(&format!("/v1/invocations/{id}"))
            .status()
            .as_u16(),
        404
    );
    assert!(
        node.json(&["dlq", "ls"])["invocations"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn async_work_waits_for_busy_or_cold_functions_instead_of_failing() {
    let node = Node::start();
    // One slot, no wait queue, scaled to zero between calls: synchronous
    // calls beyond the slot are refused, asynchronous ones wait their turn.
    node.deploy(
        "one",
        "nap.wasm",
        &[
            "--max-concurrency",
            "1",
            "--max-queue",
            "0",
            "--idle-ttl",
            "1ms",
        ],
    );
    let ids: Vec<String> = (0..12)
        .map(|_| {
            let v: Value = post_async(&node, "one", "30", &[]).json().unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(eventually(LONG, || ids
        .iter()
        .all(|id| state_of(&node, id) == "succeeded")));
    for id in &ids {
        assert_eq!(record(&node, id)["attempts"], 1, "{id} was retried");
    }
}

#[test]
fn async_flood_is_refused_clearly_and_nothing_accepted_is_lost() {
    let node = Node::start_with_config("[queue]\nmax_pending_per_function = 20\n");
    node.deploy("slow", "nap.wasm", &["--max-concurrency", "1"]);
    let mut accepted = Vec::new();
    let mut refused = 0;
    for _ in 0..60 {
        let r = post_async(&node, "slow", "20", &[]);
        match r.status().as_u16() {
            202 => accepted.push(
                r.json::<Value>().unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            ),
            429 => {
                assert_eq!(r.headers()["retry-after"], "1");
                let (_, err) = error_of(r);
                assert_eq!(err["code"], "queue_full");
                assert!(err["message"].as_str().unwrap().contains("function `slow`"));
                refused += 1;
            }
            s => panic!("unexpected status {s}"),
        }
    }
    assert!(refused > 0, "the bound was never reached");
    assert!(accepted.len() >= 20, "{}", accepted.len());
    assert!(eventually(LONG, || accepted
        .iter()
        .all(|id| state_of(&node, id) == "succeeded")));
    // The node still serves everyone else meanwhile.
    node.deploy("echo", "echo.wasm", &[]);
    assert_eq!(node.ok(&["invoke", "echo", "-d", "fine"]), "fine");
}

#[test]
fn async_kill9_loses_no_acknowledged_invocation() {
    let mut node = Node::start();
    node.deploy(
        "counter",
        "kv-counter.wasm",
        &["--kv", "default", "--config-value", "greeting=k"],
    );
    let url = node.url.clone();
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (url, acked, stop) = (url.clone(), acked.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("k{w}-{i}");
                i += 1;
                let r = client
                    .post(format!("{url}/fn/counter"))
                    .header("prefer", "respond-async")
                    .header("idempotency-key", &key)
                    .body(key.clone())
                    .send();
                let Ok(r) = r else { break };
                if r.status().as_u16() != 202 {
                    break;
                }
                let Ok(v) = r.json::<Value>() else { break };
                acked
                    .lock()
                    .unwrap()
                    .insert(key, v["id"].as_str().unwrap().to_string());
            }
        }));
    }
    assert!(eventually(LONG, || acked.lock().unwrap().len() >= 50));
    node.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    node.restart();
    // Every acknowledged invocation completes after the restart.
    for (key, id) in &acked {
        assert!(
            eventually(LONG, || state_of(&node, id) == "succeeded"),
            "{key} ({id}) did not complete: {}",
            record(&node, id)
        );
        // At least once: the counter of its key moved.
        let text = record(&node, id)["result_text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(text.starts_with(&format!("k: {key} = ")), "{text}");
    }
    // Effectively once with the key: a resend is recognised, not re-queued.
    let (key, id) = acked.iter().next().unwrap();
    let again: Value = post_async(&node, "counter", key, &[("idempotency-key", key)])
        .json()
        .unwrap();
    assert_eq!(again["id"], id.as_str());
    assert_eq!(again["duplicate"], true);
}

#[test]
fn async_http_component_sees_its_method_path_and_body() {
    let node = Node::start();
    node.deploy("web", "http-hello.wasm", &["--route", "/shop/..."]);
    for (url, path) in [
        (
            format!("{}/fn/web/some/path?q=1", node.url),
            "/some/path?q=1",
        ),
        (format!("{}/shop/cart", node.url), "/shop/cart"),
    ] {
        let r = node
            .http()
            .put(url)
            .header("prefer", "respond-async")
            .body("body")
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let id = r.json::<Value>().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(eventually(LONG, || state_of(&node, &id) != "queued"
            && state_of(&node, &id) != "running"));
        let rec = record(&node, &id);
        assert_eq!(rec["state"], "succeeded", "{rec}");
        assert_eq!(rec["result_text"], format!("hello from PUT {path}\nbody"));
    }
}
