use crate::harness::{Node, eventually};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn each_invocation_is_metered_and_aggregated() {
    let node = Node::start();
    node.deploy("work", "grow-memory.wasm", &[]);
    node.deploy("fail", "exit-code.wasm", &[]);
    let r = node.post("work", "8");
    assert_eq!(r.status(), 200);
    for h in [
        "x-weft-invocation-id",
        "x-weft-wall-us",
        "x-weft-cpu-us",
        "x-weft-memory-peak",
        "x-weft-version",
    ] {
        assert!(r.headers().contains_key(h), "missing {h}");
    }
    node.post("work", "8");
    node.post("fail", "2");
    assert!(eventually(Duration::from_secs(5), || {
        let u = node.json(&["usage"]);
        u["functions"]["work"]["invocations"] == 2 && u["functions"]["fail"]["errors"] == 1
    }));
    let u = &node.json(&["usage"])["functions"];
    assert!(u["work"]["cpu_ns"].as_u64().unwrap() > 0);
    assert!(u["work"]["wall_ns"].as_u64().unwrap() >= u["work"]["cpu_ns"].as_u64().unwrap() / 2);
    assert!(u["work"]["memory_byte_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(u["work"]["errors"], 0);
    let text = node.ok(&["usage"]);
    assert!(
        text.contains("INVOCATIONS") && text.contains("work"),
        "{text}"
    );

    let m = node.admin_get("/metrics").text().unwrap();
    for needle in [
        "weft_invocations_total{function=\"work\",outcome=\"ok\"} 2",
        "weft_invocations_total{function=\"fail\",outcome=\"function_exit\"} 1",
        "weft_invocation_duration_seconds_bucket",
        "weft_cpu_seconds_total{function=\"work\"}",
        "weft_live_instances",
        "weft_starts_total",
    ] {
        assert!(m.contains(needle), "metrics lack {needle}:\n{m}");
    }
}

#[test]
fn an_http_invocation_whose_client_hangs_up_runs_to_its_end_and_is_metered() {
    // The client gives up after 300 ms; the component sleeps 1.5 s. It runs
    // on to its end, as it would had the client waited, and is counted.
    let node = Node::start();
    node.deploy("web", "http-hello.wasm", &["--clock"]);
    let impatient = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let hung_up = impatient
        .get(format!("{}/fn/web/sleep/1500", node.url))
        .send();
    assert!(hung_up.is_err(), "the client should have timed out");
    assert!(eventually(Duration::from_secs(10), || {
        node.metric("weft_invocations_total{function=\"web\",outcome=\"ok\"}") == 1.0
    }));
    let u = &node.json(&["usage"])["functions"]["web"];
    assert_eq!(u["invocations"], 1);
    assert!(
        u["wall_ns"].as_u64().unwrap() >= 1_500_000_000,
        "ran to its end: {u}"
    );
    assert_eq!(node.metric("weft_live_instances"), 0.0);
}

#[test]
fn logs_show_stderr_by_invocation_and_follow() {
    let node = Node::start();
    node.deploy("talk", "stderr-lines.wasm", &[]);
    let r1 = node.post("talk", "2");
    let id1 = r1.headers()["x-weft-invocation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let r2 = node.post("talk", "1");
    let id2 = r2.headers()["x-weft-invocation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let text = node.ok(&["logs", "talk"]);
    assert_eq!(
        text,
        format!("[{id1}] line 1\n[{id1}] line 2\n[{id2}] line 1\n"),
    );

    let mut follow = Command::new(crate::harness::WEFT)
        .args(["logs", "talk", "--follow"])
        .env("WEFT_URL", &node.url)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    // The backlog first…
    for _ in 0..3 {
        lines.next().unwrap().unwrap();
    }
    // …then new lines as they are written.
    let r3 = node.post("talk", "1");
    let id3 = r3.headers()["x-weft-invocation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let next = lines.next().unwrap().unwrap();
    assert_eq!(next, format!("[{id3}] line 1"));
    let _ = follow.kill();
    let _ = follow.wait();

    // The node's own structured log records each invocation.
    assert!(node.log().contains(&id3));
}
