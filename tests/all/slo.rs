//! Declared deadlines: what a function promises, what a request may ask
//! for, and what the response says of it.

use crate::async_queue::{post_async, record};
use crate::fabric::header;
use crate::harness::{Node, error_of, eventually, json_error};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(30);

fn get(node: &Node, path: &str, deadline: Option<&str>) -> reqwest::blocking::Response {
    let mut rb = node.http().get(format!("{}/fn/{path}", node.url));
    if let Some(d) = deadline {
        rb = rb.header("x-weft-deadline", d);
    }
    rb.send().unwrap()
}

#[test]
fn a_declared_deadline_is_kept_shown_and_tightened_by_a_request_only() {
    let node = Node::start();
    node.deploy(
        "web",
        "http-hello.wasm",
        &[
            "--clock",
            "--timeout",
            "5s",
            "--deadline",
            "100ms",
            "--expected",
            "5ms",
            "--admission",
            "p99",
        ],
    );
    let l = &node.json(&["ls", "web"])["limits"];
    assert_eq!(l["deadline_ms"], 100.0);
    assert_eq!(l["deadline_declared"], true);
    assert_eq!(l["expected_ms"], 5.0);
    assert_eq!(l["admission"], "p99");
    let text = node.ok(&["ls", "web"]);
    assert!(
        text.contains("deadline          100ms, admission at p99, first estimate 5ms"),
        "{text}"
    );

    let r = get(&node, "web/", None);
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-weft-deadline-us"), "100000");
    assert_eq!(header(&r, "x-weft-deadline-met"), "true");
    // Tighter: taken.
    let r = get(&node, "web/", Some("20ms"));
    assert_eq!(header(&r, "x-weft-deadline-us"), "20000");
    // Missed: said so, and the answer still comes (the timeout stops, the
    // deadline does not).
    let r = get(&node, "web/sleep/150", None);
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-weft-deadline-met"), "false");
    assert_eq!(
        (
            node.metric("weft_deadlines_total{function=\"web\",outcome=\"met\"}"),
            node.metric("weft_deadlines_total{function=\"web\",outcome=\"missed\"}")
        ),
        (2.0, 1.0)
    );
    // The deadline and the latencies against it, in /metrics as in `weft slo`.
    assert_eq!(node.metric("weft_deadline_seconds{function=\"web\"}"), 0.1);
    let slo = &node.json(&["slo", "web"])["functions"][0];
    for (q, field) in [("0.5", "p50_ms"), ("0.99", "p99_ms")] {
        let shown = node.metric(&format!(
            "weft_deadline_latency_seconds{{function=\"web\",quantile=\"{q}\"}}"
        ));
        let ms = slo[field].as_f64().unwrap();
        assert!(
            shown > 0.0 && (shown * 1e3 - ms).abs() < 1e-6,
            "{q}: {shown} against {slo}"
        );
    }

    // Looser, malformed, zero, below the quantum: refused, naming the
    // header; nothing runs.
    for (asked, says) in [
        ("1s", "looser than the function's deadline of 100ms"),
        ("soon", "invalid duration"),
        ("0ms", "more than zero"),
        ("300us", "below this node's scheduling quantum of 1ms"),
    ] {
        let (status, e) = error_of(get(&node, "web/", Some(asked)));
        assert_eq!(
            (status, e["code"].as_str()),
            (400, Some("invalid_deadline")),
            "{e}"
        );
        assert_eq!(e["field"], "x-weft-deadline", "{e}");
        let msg = e["message"].as_str().unwrap();
        assert!(
            msg.contains("x-weft-deadline") && msg.contains(says),
            "{asked}: {msg}"
        );
    }
    // Queued work is held to the same rule.
    let (status, e) = error_of(post_async(&node, "web/", "", &[("x-weft-deadline", "2s")]));
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("invalid_deadline"))
    );
    assert_eq!(get(&node, "web/", None).status(), 200, "still serves");
}

#[test]
fn without_a_deadline_the_timeout_serves_as_one() {
    let node = Node::start();
    node.deploy("hello", "echo.wasm", &["--timeout", "2s"]);
    let l = &node.json(&["ls", "hello"])["limits"];
    assert_eq!(
        (l["deadline_ms"].as_f64(), l["deadline_declared"].as_bool()),
        (Some(2000.0), Some(false))
    );
    assert_eq!(l["admission"], "p90", "the default percentile");
    assert!(
        node.ok(&["ls", "hello"])
            .contains("2s (its timeout: none declared), admission at p90")
    );
    let r = node
        .http()
        .post(format!("{}/fn/hello", node.url))
        .header("x-weft-deadline", "500ms")
        .body("x")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-weft-deadline-us"), "500000");
    let (status, e) = error_of(
        node.http()
            .post(format!("{}/fn/hello", node.url))
            .header("x-weft-deadline", "3s")
            .send()
            .unwrap(),
    );
    assert_eq!(status, 400);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("looser than the function's timeout"),
        "{e}"
    );
}

#[test]
fn deadlines_a_node_cannot_keep_are_refused_at_deploy() {
    let node = Node::start();
    let path = crate::harness::guest("echo.wasm");
    let path = path.to_str().unwrap();
    for (flags, field, says) in [
        (
            vec!["--deadline", "100us"],
            "deadline",
            "below this node's scheduling quantum of 1ms",
        ),
        (
            vec!["--deadline", "20s"],
            "deadline",
            "longer than this node's default timeout of 10s",
        ),
        (
            vec!["--deadline", "1s", "--timeout", "500ms"],
            "deadline",
            "longer than the timeout of 500ms",
        ),
        (
            vec!["--deadline", "2ms", "--expected", "3ms"],
            "expected",
            "longer than the deadline of 2ms",
        ),
    ] {
        let mut args = vec!["deploy", "f", path];
        args.extend_from_slice(&flags);
        args.push("--json");
        let e = json_error(&node.cli(&args));
        assert_eq!(e["error"]["field"], field, "{flags:?}: {e}");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(msg.contains(says), "{flags:?}: {msg}");
    }
    // A percentile out of range: the CLI names the flag.
    let out = node.cli(&["deploy", "f", path, "--admission", "p0"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--admission") && stderr.contains("out of range"),
        "{stderr}"
    );
    // Nothing was deployed.
    assert_eq!(
        node.json(&["ls"])["functions"].as_array().map(Vec::len),
        Some(0)
    );
}

#[test]
fn the_last_sixteen_runs_make_the_profile_shown_by_ls_and_metrics() {
    let node = Node::start();
    node.deploy("hello", "echo.wasm", &["--admission", "p99"]);
    assert!(
        node.ok(&["ls", "hello"])
            .contains("learned           nothing yet (no run here)")
    );
    assert_eq!(node.json(&["ls", "hello"])["learned"]["runs"], 0);
    for i in 0..20 {
        assert_eq!(node.post("hello", format!("run {i}")).status(), 200);
    }
    let l = &node.json(&["ls", "hello"])["learned"];
    assert_eq!(l["runs"], 16, "the window: {l}");
    let at = |k: &str| l[k].as_f64().unwrap_or_else(|| panic!("{k} in {l}"));
    assert!(at("p50_ms") > 0.0, "{l}");
    assert!(
        at("p50_ms") <= at("p90_ms")
            && at("p90_ms") <= at("p99_ms")
            && at("p99_ms") <= at("max_ms"),
        "{l}"
    );
    assert_eq!(at("admission_ms"), at("p99_ms"), "planned at p99: {l}");
    assert!(node.ok(&["ls", "hello"]).contains("(last 16 runs here)"));
    for q in ["0.5", "0.9", "0.99", "1"] {
        let v = node.metric(&format!(
            "weft_execution_time_seconds{{function=\"hello\",quantile=\"{q}\"}}"
        ));
        assert!(v > 0.0 && v < 5.0, "quantile {q}: {v}");
    }
}

/// Queues `body` for `name`, with a deadline if given; returns the id.
fn queue(node: &Node, name: &str, body: &str, deadline: Option<&str>) -> String {
    let headers: Vec<_> = deadline
        .map(|d| ("x-weft-deadline", d))
        .into_iter()
        .collect();
    let r = post_async(node, name, body, &headers);
    assert_eq!(r.status(), 202);
    r.json::<serde_json::Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn settled(node: &Node, id: &str) -> serde_json::Value {
    let mut rec = serde_json::Value::Null;
    assert!(crate::harness::eventually(
        std::time::Duration::from_secs(30),
        || {
            rec = record(node, id);
            rec["state"] == "succeeded" || rec["state"] == "dead"
        }
    ));
    rec
}

#[test]
fn queued_work_whose_deadline_passes_ends_as_deadline_expired_without_running() {
    let node = Node::start();
    // One at a time, 300 ms each, within 500 ms of being queued: of six
    // queued at once the first starts at once, the last could start only
    // after 1.5 s.
    node.deploy(
        "slow",
        "nap.wasm",
        &[
            "--max-concurrency",
            "1",
            "--deadline",
            "500ms",
            "--timeout",
            "5s",
        ],
    );
    let ids: Vec<String> = (0..6).map(|_| queue(&node, "slow", "300", None)).collect();
    let records: Vec<_> = ids.iter().map(|id| settled(&node, id)).collect();
    assert_eq!(records[0]["state"], "succeeded", "{:?}", records[0]);
    let last = &records[5];
    assert_eq!(last["state"], "dead", "{last}");
    assert_eq!(last["last_error"]["code"], "deadline_expired", "{last}");
    assert!(
        last["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("before it could start; not run"),
        "{last}"
    );
    assert_eq!(last["attempts"], 1, "not retried: {last}");
    let expired = records.iter().filter(|r| r["state"] == "dead").count();
    assert_eq!(
        node.metric("weft_deadlines_total{function=\"slow\",outcome=\"expired\"}"),
        expired as f64
    );
    for r in &records {
        assert!(
            r["state"] == "succeeded" || r["last_error"]["code"] == "deadline_expired",
            "{r}"
        );
    }
    // Expired work never ran: only the ones that succeeded were invoked.
    let ran = records.iter().filter(|r| r["state"] == "succeeded").count();
    assert!(crate::harness::eventually(
        std::time::Duration::from_secs(5),
        || { node.json(&["usage"])["functions"]["slow"]["invocations"] == ran as u64 }
    ));

    // Without a declared deadline queued work waits as long as it must,
    // unless its request asked for one.
    node.deploy("plain", "nap.wasm", &["--max-concurrency", "1"]);
    let busy = queue(&node, "plain", "600", None);
    let hurried = queue(&node, "plain", "10", Some("100ms"));
    let patient = queue(&node, "plain", "10", None);
    assert_eq!(settled(&node, &busy)["state"], "succeeded");
    assert_eq!(
        settled(&node, &hurried)["last_error"]["code"],
        "deadline_expired"
    );
    assert_eq!(settled(&node, &patient)["state"], "succeeded");
    // Queued again from the dead-letter list it arrives afresh: its
    // deadline counts from now, and it runs.
    node.ok(&["dlq", "retry", &hurried]);
    let again = settled(&node, &hurried);
    assert_eq!(again["state"], "succeeded", "{again}");
}

/// An answer's status, body, and when it came.
type Answer = (u16, String, std::time::Instant);

/// POSTs `body` to `/fn/{name}` from a thread of its own.
fn in_thread(node: &Node, name: &str, body: &str) -> std::thread::JoinHandle<Answer> {
    let url = format!("{}/fn/{name}", node.url);
    let body = body.to_string();
    std::thread::spawn(move || {
        let r = reqwest::blocking::Client::new()
            .post(url)
            .body(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        (status, text, std::time::Instant::now())
    })
}

/// Waits (5 s at most) until `n` invocations of `name` run on `node`.
fn until_in_flight(node: &Node, name: &str, n: u64) {
    assert!(
        eventually(
            Duration::from_secs(5),
            || node.json(&["ls", name])["in_flight"] == n
        ),
        "{name} never had {n} in flight"
    );
}

/// A node with one worker, a slow function (1.5 s of work, no deadline)
/// running on it, and a quick one with a deadline of 300 ms.
fn one_worker_busy(scheduler: &str) -> (Node, std::thread::JoinHandle<Answer>) {
    let node = Node::start_with_config(&format!("workers = 1\nscheduler = \"{scheduler}\"\n"));
    node.deploy("slow", "sleep.wasm", &["--clock", "--timeout", "10s"]);
    node.deploy(
        "quick",
        "sleep.wasm",
        &["--clock", "--timeout", "5s", "--deadline", "300ms"],
    );
    let slow = in_thread(&node, "slow", "1500");
    until_in_flight(&node, "slow", 1);
    (node, slow)
}

#[test]
fn an_urgent_invocation_takes_the_worker_of_a_later_deadline_at_once() {
    let (node, slow) = one_worker_busy("edf");
    let quick = in_thread(&node, "quick", "20").join().unwrap();
    let slow = slow.join().unwrap();
    assert_eq!((quick.0, quick.1.as_str()), (200, "slept\n"));
    assert_eq!((slow.0, slow.1.as_str()), (200, "slept\n"));
    // The quick one ran while the slow one was preempted, and ended first.
    assert!(
        quick.2 < slow.2,
        "the urgent invocation waited for the slow one"
    );
    assert!(node.metric("weft_worker_preemptions_total") >= 1.0);
    let status: serde_json::Value = node.admin_get("/v1/node").json().unwrap();
    assert_eq!(status["workers"]["scheduler"], "edf", "{status}");
    assert_eq!(status["workers"]["workers"], 1, "{status}");
}

#[test]
fn fifo_keeps_arrival_order() {
    let (node, slow) = one_worker_busy("fifo");
    let quick = in_thread(&node, "quick", "20").join().unwrap();
    let slow = slow.join().unwrap();
    assert_eq!((quick.0, slow.0), (200, 200));
    assert!(slow.2 < quick.2, "FIFO let a later arrival pass");
    assert_eq!(node.metric("weft_worker_preemptions_total"), 0.0);
    let status: serde_json::Value = node.admin_get("/v1/node").json().unwrap();
    assert_eq!(status["workers"]["scheduler"], "fifo");
}

#[test]
fn a_guest_waiting_in_a_host_call_frees_its_worker() {
    // One worker, in arrival order: the napping guest waits in the host
    // (poll_oneoff), and the worker serves the next arrival meanwhile.
    let node = Node::start_with_config("workers = 1\nscheduler = \"fifo\"\n");
    node.deploy("nap", "nap.wasm", &["--timeout", "10s"]);
    node.deploy("echo", "echo.wasm", &[]);
    let nap = in_thread(&node, "nap", "1500");
    until_in_flight(&node, "nap", 1);
    let echo = in_thread(&node, "echo", "hi").join().unwrap();
    let nap = nap.join().unwrap();
    assert_eq!((echo.0, echo.1.as_str()), (200, "hi"));
    assert_eq!((nap.0, nap.1.as_str()), (200, "rested\n"));
    assert!(echo.2 < nap.2, "the napping guest kept the only worker");
}

#[test]
fn low_urgency_work_finishes_under_a_flood_of_urgent_work() {
    // One worker kept busy by a steady flood of urgent invocations (a
    // deadline of 50 ms, 5 ms of work each, three clients without pause).
    // The slow one (deadline 300 ms) is passed by every urgent arrival
    // until its own deadline comes: arrivals after that come after it, so
    // it ends while the flood goes on.
    let node = Node::start_with_config("workers = 1\n");
    node.deploy(
        "slow",
        "sleep.wasm",
        &["--clock", "--timeout", "10s", "--deadline", "300ms"],
    );
    node.deploy(
        "urgent",
        "sleep.wasm",
        &["--clock", "--timeout", "5s", "--deadline", "50ms"],
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood: Vec<_> = (0..3)
        .map(|_| {
            let (url, stop) = (format!("{}/fn/urgent", node.url), stop.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut served = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = client.post(&url).body("5").send().unwrap();
                    assert_eq!(r.status(), 200);
                    served.push(std::time::Instant::now());
                }
                served
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let sent = std::time::Instant::now();
    let slow = in_thread(&node, "slow", "400").join().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let served: Vec<std::time::Instant> =
        flood.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert_eq!((slow.0, slow.1.as_str()), (200, "slept\n"));
    // The flood went on after the slow one ended: it was not waiting for
    // the flood to stop.
    let after = served.iter().filter(|t| **t > slow.2).count();
    assert!(
        after > 0,
        "the slow invocation ended only when the flood stopped"
    );
    // The bound: it waited at most until its deadline (300 ms) for the
    // urgent work that arrived before then, and then ran its own 400 ms
    // (a loaded machine's margin beside: the flood would have kept it
    // waiting for as long as it went on).
    let took = slow.2.duration_since(sent);
    assert!(took < Duration::from_secs(3), "{took:?}");
    // And urgent work was served while it waited and ran.
    let during = served.iter().filter(|t| **t > sent && **t < slow.2).count();
    assert!(during > 0, "no urgent work passed the slow invocation");
}

/// The flags of a 1 s-deadline clock-reading function expected to take
/// `expected`.
fn batch(expected: &str) -> [&str; 7] {
    [
        "--clock",
        "--timeout",
        "10s",
        "--deadline",
        "1s",
        "--expected",
        expected,
    ]
}

/// A node with one worker and two invocations of `batch` admitted (400 ms
/// of work each, expected to take that, a deadline of 1 s): a third cannot
/// end within its deadline (800 ms of work due before it, then its own
/// 400 ms).
fn two_admitted(config: &str) -> (Node, Vec<std::thread::JoinHandle<Answer>>) {
    let node = Node::start_with_config(&format!("workers = 1\n{config}"));
    node.deploy("batch", "sleep.wasm", &batch("400ms"));
    let mut running = Vec::new();
    for n in 1..=2 {
        running.push(in_thread(&node, "batch", "400"));
        until_in_flight(&node, "batch", n);
    }
    (node, running)
}

#[test]
fn work_whose_deadline_cannot_be_met_is_refused_at_once() {
    let (node, running) = two_admitted("");
    let r = node.post("batch", "400");
    assert_eq!(r.status(), 503);
    assert_eq!(header(&r, "retry-after"), "1");
    let (_, e) = error_of(r);
    assert_eq!(e["code"], "deadline_unmeetable", "{e}");
    assert_eq!(e["function"], "batch", "{e}");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("and it is expected to take 400.0 ms"), "{msg}");
    // What is left of the two ahead: 800 ms less what the first has run.
    let ahead: f64 = msg
        .split("cannot be met here: ")
        .nth(1)
        .and_then(|rest| rest.split(" ms").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{msg}"));
    assert!(ahead > 600.0 && ahead <= 800.0, "{msg}");
    for t in running {
        assert_eq!(t.join().unwrap().0, 200);
    }
    assert_eq!(
        node.metric("weft_deadlines_total{function=\"batch\",outcome=\"refused\"}"),
        1.0
    );
    assert_eq!(
        node.metric("weft_rejections_total{function=\"batch\",outcome=\"deadline_unmeetable\"}"),
        1.0
    );
    assert_eq!(node.json(&["slo", "batch"])["functions"][0]["refused"], 1);
    // Nothing was lost: once the work ahead has drained, it is admitted.
    let r = node.post("batch", "10");
    assert_eq!(r.status(), 200);
    // Work with no deadline but its timeout is never refused so.
    node.deploy(
        "plain",
        "sleep.wasm",
        &["--clock", "--timeout", "1s", "--expected", "900ms"],
    );
    let (_, running) = (
        0,
        [
            in_thread(&node, "plain", "50"),
            in_thread(&node, "plain", "50"),
        ],
    );
    let r = node.post("plain", "50");
    assert_eq!(r.status(), 200);
    for t in running {
        assert_eq!(t.join().unwrap().0, 200);
    }
}

#[test]
fn an_overrunning_guest_counts_as_work_ahead_so_later_work_is_refused_not_kept_waiting() {
    // One worker. `overrun` says it takes 5 ms and takes 2.5 s; its
    // deadline (1 s) comes before that of `later` asked 1.2 s in (300 ms
    // after that), so `later` waits behind it. Counted as done once past
    // its 5 ms (as it was), `later` was admitted and then kept waiting
    // until the overrunner ended, 1.3 s late; counted by its overrun, it is
    // refused at once, free to go elsewhere, and the node serves it again
    // once the overrunner has ended.
    let node = Node::start_with_config("workers = 1\n");
    node.deploy("overrun", "sleep.wasm", &batch("5ms"));
    node.deploy(
        "later",
        "sleep.wasm",
        &[
            "--clock",
            "--timeout",
            "5s",
            "--deadline",
            "300ms",
            "--expected",
            "5ms",
        ],
    );
    let started = std::time::Instant::now();
    let overrun = in_thread(&node, "overrun", "2500");
    until_in_flight(&node, "overrun", 1);
    std::thread::sleep(Duration::from_millis(1200).saturating_sub(started.elapsed()));
    let asked = std::time::Instant::now();
    let r = node.post("later", "5");
    let answered = asked.elapsed();
    assert_eq!(r.status(), 503);
    let (_, e) = error_of(r);
    assert_eq!(e["code"], "deadline_unmeetable", "{e}");
    assert!(answered < Duration::from_millis(1000), "{answered:?}");
    let overrun = overrun.join().unwrap();
    assert_eq!((overrun.0, overrun.1.as_str()), (200, "slept\n"));
    let r = node.post("later", "5");
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-weft-deadline-met"), "true");
}

#[test]
fn a_node_told_to_run_unmeetable_work_runs_it_late() {
    // Admitted where the default refuses it (the test above). (Whether it
    // then meets its deadline depends on the machine: `sleep` waits on the
    // wall clock, from before it had a worker.)
    let (node, running) = two_admitted("unmeetable = \"run\"\n");
    let r = node.post("batch", "400");
    assert_eq!(r.status(), 200);
    for t in running {
        assert_eq!(t.join().unwrap().0, 200);
    }
    assert_eq!(
        node.metric("weft_deadlines_total{function=\"batch\",outcome=\"refused\"}"),
        0.0
    );
}

#[test]
fn a_callee_inherits_its_callers_earlier_deadline() {
    // One worker, busy with `slow` (1.5 s, no deadline: due in 10 s). `back`
    // (200 ms of work, no deadline either) would queue behind it; called by
    // `front` (deadline 1 s) it runs by front's deadline, takes the worker,
    // and front answers while slow still runs.
    let node = Node::start_with_config("workers = 1\n");
    node.deploy("slow", "sleep.wasm", &["--clock", "--timeout", "10s"]);
    node.deploy("back", "sleep.wasm", &["--clock", "--timeout", "10s"]);
    node.deploy(
        "front",
        "chain.wasm",
        &[
            "--call",
            "back",
            "--config-value",
            "callee=back",
            "--deadline",
            "1s",
        ],
    );
    let slow = in_thread(&node, "slow", "1500");
    until_in_flight(&node, "slow", 1);
    // `back` reads front's request as its stdin: not a number, so 200 ms.
    let front = in_thread(&node, "front", "x").join().unwrap();
    let slow = slow.join().unwrap();
    assert_eq!(front.0, 200, "{}", front.1);
    assert!(front.1.contains("(slept\n)"), "{}", front.1);
    assert!(
        front.2 < slow.2,
        "the callee waited behind a later deadline"
    );
}

#[test]
fn work_this_node_cannot_finish_in_time_is_handed_to_a_peer_with_time_to_spare() {
    use crate::fabric::{lists, nodes, sees};
    use crate::servers::Nats;
    let nats = Nats::hub();
    let node = |name: &str, tier: &str| {
        Node::start_with_config_args(
            "workers = 1\n",
            &["--fabric", &nats.url(), "--tier", tier, "--node-name", name],
        )
    };
    let (edge, cloud) = (node("edge", "edge"), node("cloud-1", "cloud"));
    assert!(eventually(LONG, || sees(&edge, "cloud-1", true)
        && edge.json(&["nodes"])["registry_joined"] == true));
    edge.deploy("hog", "nap.wasm", &batch("900ms"));
    edge.deploy("batch", "sleep.wasm", &batch("400ms"));
    assert!(eventually(LONG, || lists(&cloud, "hog") && lists(&cloud, "batch")));
    // The edge's one worker owes 900 ms to work due before anything that
    // arrives now (the hog's estimate: a nap burns no CPU, so none of it
    // is paid off while it runs).
    let hog = in_thread(&edge, "hog", "5000");
    let hog_due = std::time::Instant::now() + Duration::from_secs(1);
    assert!(eventually(LONG, || edge.json(&["ls", "hog"])["in_flight"] == 1));

    // 900 + 400 ms cannot end within 1 s here: the cloud node, idle, can.
    let r = edge.post("batch", "300");
    assert_eq!(r.status(), 200, "{:?}\n{}", r.headers(), edge.log());
    assert_eq!(header(&r, "x-weft-node"), "cloud-1");
    assert_eq!(header(&r, "x-weft-placement"), "handed_off");
    assert_eq!(header(&r, "x-weft-deadline-met"), "true");

    // Its run there is in the cloud's profile, which its heartbeats carry:
    // 300 ms there leaves no time to spare within 250 ms, so nowhere can
    // meet that, and the edge refuses at once (once the hog is due before
    // it, and so ahead of it).
    assert!(eventually(LONG, || nodes(&edge).iter().any(|n| n["name"]
        == "cloud-1"
        && n["exec_profile"]["batch"][1].as_u64() >= Some(300_000))));
    std::thread::sleep(hog_due.saturating_duration_since(std::time::Instant::now()));
    let r = edge
        .http()
        .post(format!("{}/fn/batch", edge.url))
        .header("x-weft-deadline", "250ms")
        .body("10")
        .send()
        .unwrap();
    assert_eq!(r.status(), 503, "{:?}\n{}", r.headers(), edge.log());
    let (_, e) = error_of(r);
    assert_eq!(e["code"], "deadline_unmeetable", "{e}");
    let count = |outcome: &str| {
        edge.metric(&format!(
            "weft_deadlines_total{{function=\"batch\",outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!((count("met"), count("refused")), (1.0, 1.0));
    assert_eq!(
        cloud.json(&["usage"])["functions"]["batch"]["invocations"],
        1
    );
    assert_eq!(hog.join().unwrap().0, 200);
}

#[test]
fn weft_slo_reports_deadlines_latency_and_a_guest_that_overruns_its_estimate() {
    let node = Node::start();
    node.deploy(
        "spin",
        "sleep.wasm",
        &[
            "--clock",
            "--timeout",
            "5s",
            "--deadline",
            "1s",
            "--expected",
            "20ms",
        ],
    );
    // Each of the first three runs is longer than the estimate of its
    // time: the third in a row flags it and its profile keeps only them.
    for ms in ["30", "60", "120", "10", "1200"] {
        assert_eq!(node.post("spin", ms).status(), 200);
    }
    let v = node.json(&["slo", "spin"]);
    let f = &v["functions"][0];
    assert_eq!(f["name"], "spin", "{v}");
    assert_eq!(
        (f["met"].as_u64(), f["missed"].as_u64()),
        (Some(4), Some(1)),
        "{f}"
    );
    assert_eq!(
        (f["refused"].as_u64(), f["expired"].as_u64()),
        (Some(0), Some(0)),
        "{f}"
    );
    assert_eq!(f["met_ratio"].as_f64(), Some(0.8), "{f}");
    assert_eq!(
        (f["deadline_ms"].as_f64(), f["declared"].as_bool()),
        (Some(1000.0), Some(true))
    );
    assert_eq!(f["latencies"], 5, "{f}");
    let (p50, p99) = (f["p50_ms"].as_f64().unwrap(), f["p99_ms"].as_f64().unwrap());
    assert!((60.0..1200.0).contains(&p50) && p99 >= 1200.0, "{f}");
    assert_eq!(
        (f["overruns"].as_u64(), f["flagged"].as_u64()),
        (Some(4), Some(1)),
        "{f}"
    );
    assert_eq!(f["overrunning"], 1, "{f}");
    // What admission plans with now: the last run is among the kept ones.
    assert!(f["expected_ms"].as_f64().unwrap() >= 1200.0, "{f}");
    assert_eq!(node.metric("weft_overruns_total{function=\"spin\"}"), 4.0);
    assert!(
        node.log()
            .contains("ran past its estimate 3 times in a row")
    );

    // The table, every function, and an unknown one.
    node.deploy("idle", "echo.wasm", &[]);
    let text = node.ok(&["slo"]);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0][..3], ["NAME", "DEADLINE", "MET"], "{text}");
    assert_eq!(rows[1][..3], ["idle", "10s*", "0"], "{text}");
    assert_eq!(rows[2][..5], ["spin", "1s", "4", "1", "0"], "{text}");
    assert_eq!(rows[2][rows[2].len() - 2..], ["4", "!1"], "{text}");
    let out = node.cli(&["slo", "nope", "--json"]);
    assert!(!out.status.success());
    let e: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["error"]["code"], "function_not_found", "{e}");
}

#[test]
fn queued_work_of_the_most_urgent_function_claims_a_freed_slot_first() {
    // One sandbox slot. `a-lax` sorts first by name and was queued first;
    // `b-urgent`'s deadline falls sooner, so it takes the slot first.
    let node = Node::start_with_config("max_instances = 1\n");
    node.deploy(
        "a-lax",
        "nap.wasm",
        &["--deadline", "30s", "--timeout", "40s"],
    );
    node.deploy(
        "b-urgent",
        "nap.wasm",
        &["--deadline", "5s", "--timeout", "10s"],
    );
    let hog = queue(&node, "a-lax", "500", None);
    until_in_flight(&node, "a-lax", 1);
    let lax: Vec<String> = (0..3).map(|_| queue(&node, "a-lax", "50", None)).collect();
    let urgent = queue(&node, "b-urgent", "50", None);
    let settled_at = |id: &str| {
        let r = settled(&node, id);
        assert_eq!(r["state"], "succeeded", "{r}");
        r["updated_at_ms"].as_u64().unwrap()
    };
    let hog_done = settled_at(&hog);
    let urgent_done = settled_at(&urgent);
    assert!(urgent_done > hog_done);
    for id in &lax {
        let done = settled_at(id);
        assert!(
            urgent_done < done,
            "b-urgent ({urgent_done}) ran after a-lax {id} ({done})"
        );
    }
}
