use crate::harness::{Node, eventually};
use std::time::Duration;

#[test]
fn idle_functions_scale_to_zero_and_cold_start_from_disk() {
    let node = Node::start();
    node.deploy("e", "echo.wasm", &["--idle-ttl", "300ms"]);
    let cold = |n: &Node| {
        n.post("e", "x").headers()["x-weft-cold-start"]
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(cold(&node), "true");
    assert_eq!(cold(&node), "false");
    assert_eq!(node.json(&["ls", "e"])["state"], "warm");
    assert!(eventually(Duration::from_secs(5), || node
        .json(&["ls", "e"])["state"]
        == "cold"));
    assert_eq!(node.metric("weft_warm_functions"), 0.0);
    assert_eq!(cold(&node), "true");
    assert_eq!(
        node.metric("weft_starts_total{function=\"e\",start=\"cold\"}"),
        2.0
    );
    assert_eq!(
        node.metric("weft_starts_total{function=\"e\",start=\"warm\"}"),
        1.0
    );
    // The cold start loaded the artifact; nothing was compiled again.
    assert_eq!(node.metric("weft_compilations_total"), 1.0);
    assert!(eventually(Duration::from_secs(5), || {
        node.json(&["usage", "e"])["functions"]["e"]["cold_starts"] == 2
    }));
}

#[test]
fn sigterm_drains_in_flight_invocations_then_exits_zero() {
    let mut node = Node::start();
    node.deploy("slow", "sleep.wasm", &["--clock", "--timeout", "10s"]);
    let url = node.url.clone();
    let inflight = std::thread::spawn(move || {
        let r = reqwest::blocking::Client::new()
            .post(format!("{url}/fn/slow"))
            .body("800")
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    });
    assert!(eventually(Duration::from_secs(5), || node
        .json(&["ls", "slow"])["in_flight"]
        == 1));
    let status = node.terminate();
    assert_eq!(status.code(), Some(0), "log:\n{}", node.log());
    assert_eq!(inflight.join().unwrap(), (200, "slept\n".to_string()));
    assert!(node.log().contains("draining"));
}

#[test]
fn a_restarted_node_keeps_functions_versions_and_usage() {
    let mut node = Node::start();
    node.deploy("a", "echo.wasm", &[]);
    node.deploy("a", "rust-command.wasm", &[]);
    node.json(&["rollback", "a"]);
    node.deploy("b", "http-hello.wasm", &[]);
    node.ok(&["invoke", "a", "--data", "1"]);
    // Usage is flushed to the store every second.
    std::thread::sleep(Duration::from_millis(1500));
    node.restart();
    let a = node.json(&["ls", "a"]);
    assert_eq!(a["active"], 1);
    assert_eq!(a["versions"].as_array().unwrap().len(), 2);
    assert_eq!(node.ok(&["invoke", "a", "--data", "z"]), "z");
    assert_eq!(
        node.json(&["usage", "a"])["functions"]["a"]["invocations"],
        2
    );
    let r = node
        .http()
        .get(format!("{}/fn/b/x", node.url))
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), "hello from GET /x\n");
    // Artifacts are reused: no compilation after the restart.
    assert_eq!(node.metric("weft_compilations_total"), 0.0);
}

/// Wake-ups of the node's epoch clock thread so far (Linux).
fn epoch_wakeups(node: &Node) -> u64 {
    let tasks = format!("/proc/{}/task", node.pid());
    for t in std::fs::read_dir(tasks).unwrap() {
        let dir = t.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() == "weft-epoch" {
            let status = std::fs::read_to_string(dir.join("status")).unwrap();
            return status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap();
        }
    }
    panic!("no weft-epoch thread");
}

#[test]
fn an_idle_node_does_not_tick() {
    let node = Node::start();
    node.deploy("slow", "sleep.wasm", &["--clock", "--timeout", "10s"]);
    node.post("slow", "1");
    std::thread::sleep(Duration::from_millis(200));
    let before = epoch_wakeups(&node);
    std::thread::sleep(Duration::from_secs(2));
    let idle = epoch_wakeups(&node) - before;
    // Parked: woken about once a second, not a thousand times.
    assert!(idle <= 10, "{idle} wake-ups in 2 s while idle");
    // While a guest runs, the clock ticks (that is how deadlines work).
    let before = epoch_wakeups(&node);
    assert_eq!(node.post("slow", "300").status(), 200);
    let busy = epoch_wakeups(&node) - before;
    assert!(busy >= 20, "only {busy} ticks while a guest ran for 300 ms");
}
