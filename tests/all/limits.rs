use crate::harness::{Node, error_of};
use std::time::{Duration, Instant};

/// Margin past a deadline within which a runaway guest must be stopped.
const MARGIN: Duration = Duration::from_secs(2);

#[test]
fn a_guest_that_never_returns_is_stopped_at_its_deadline() {
    let node = Node::start();
    node.deploy("spin", "loop-forever.wasm", &["--timeout", "300ms"]);
    node.deploy("echo", "echo.wasm", &[]);
    let url = node.url.clone();
    let started = Instant::now();
    let runaway = std::thread::spawn(move || {
        reqwest::blocking::Client::new()
            .post(format!("{url}/fn/spin"))
            .send()
            .unwrap()
    });
    // Others are served meanwhile.
    for _ in 0..5 {
        assert_eq!(
            node.ok(&["invoke", "echo", "--data", "still here"]),
            "still here"
        );
    }
    let resp = runaway.join().unwrap();
    let elapsed = started.elapsed();
    let (status, e) = error_of(resp);
    assert_eq!(status, 504);
    assert_eq!(e["code"], "deadline_exceeded");
    assert_eq!(e["function"], "spin");
    assert!(e["message"].as_str().unwrap().contains("300 ms"), "{e}");
    assert!(
        elapsed < Duration::from_millis(300) + MARGIN,
        "stopped after {elapsed:?}"
    );
}

#[test]
fn traps_stack_overflow_and_memory_are_reported() {
    let node = Node::start();
    node.deploy("trap", "trap.wasm", &[]);
    let (status, e) = error_of(node.post("trap", ""));
    assert_eq!((status, e["code"].as_str()), (500, Some("function_trap")));
    assert!(e["message"].as_str().unwrap().contains("function `trap`"));

    node.deploy("deep", "stack-overflow.wasm", &[]);
    let (status, e) = error_of(node.post("deep", ""));
    assert_eq!((status, e["code"].as_str()), (500, Some("stack_overflow")));

    node.deploy("grow", "grow-memory.wasm", &["--memory", "16MiB"]);
    let ok = node.post("grow", "4");
    assert_eq!(ok.status(), 200);
    let peak: u64 = ok.headers()["x-weft-memory-peak"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(peak >= 4 << 20, "peak {peak}");
    let (status, e) = error_of(node.post("grow", "64"));
    assert_eq!(
        (status, e["code"].as_str()),
        (500, Some("memory_limit_exceeded"))
    );
    assert!(e["message"].as_str().unwrap().contains("16777216"), "{e}");
}

#[test]
fn a_guest_writing_gigabytes_is_cut_at_the_response_limit() {
    let node = Node::start();
    node.deploy(
        "flood",
        "big-stdout.wasm",
        &["--max-response-size", "1MiB", "--timeout", "30s"],
    );
    let started = Instant::now();
    let (status, e) = error_of(node.post("flood", ""));
    assert_eq!(status, 502);
    assert_eq!(e["code"], "response_too_large");
    // Cut at the limit, not after writing gigabytes or at the deadline.
    assert!(started.elapsed() < Duration::from_secs(10));
    // Under the limit it works.
    let ok = node.post("flood", "1000");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.bytes().unwrap().len(), 1000);
}

#[test]
fn oversized_request_bodies_are_refused() {
    let node = Node::start();
    node.deploy("echo", "echo.wasm", &["--max-request-size", "1KiB"]);
    let (status, e) = error_of(node.post("echo", vec![b'x'; 2048]));
    assert_eq!(status, 413);
    assert_eq!(e["code"], "request_too_large");
    assert_eq!(node.post("echo", vec![b'x'; 1024]).status(), 200);
}

#[test]
fn fuel_limits_and_metering() {
    let node = Node::start_with_config("fuel = true\n");
    node.deploy(
        "spin",
        "loop-forever.wasm",
        &["--fuel", "1000000", "--timeout", "20s"],
    );
    let (status, e) = error_of(node.post("spin", ""));
    assert_eq!((status, e["code"].as_str()), (500, Some("fuel_exhausted")));
    node.deploy("echo", "echo.wasm", &[]);
    let r = node.post("echo", "x");
    let fuel: u64 = r.headers()["x-weft-fuel"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(fuel > 0);

    // A node without fuel metering refuses a fuel limit at deploy.
    let plain = Node::start();
    let path = crate::harness::guest("echo.wasm");
    let out = plain.cli(&["deploy", "e", path.to_str().unwrap(), "--fuel", "10"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not meter fuel"));
}

#[test]
fn overload_answers_429_with_retry_after() {
    let node = Node::start();
    node.deploy(
        "slow",
        "sleep.wasm",
        &[
            "--clock",
            "--max-concurrency",
            "1",
            "--max-queue",
            "0",
            "--timeout",
            "10s",
        ],
    );
    let url = node.url.clone();
    let busy = std::thread::spawn(move || {
        reqwest::blocking::Client::new()
            .post(format!("{url}/fn/slow"))
            .body("1500")
            .send()
            .unwrap()
            .status()
    });
    assert!(crate::harness::eventually(Duration::from_secs(5), || {
        node.json(&["ls", "slow"])["in_flight"] == 1
    }));
    let resp = node.post("slow", "1");
    assert_eq!(resp.headers()["retry-after"], "1");
    let (status, e) = error_of(resp);
    assert_eq!(status, 429);
    assert_eq!(e["code"], "queue_full");
    assert_eq!(busy.join().unwrap(), 200);

    // With a queue, a second call waits its turn instead.
    node.deploy(
        "queued",
        "sleep.wasm",
        &[
            "--clock",
            "--max-concurrency",
            "1",
            "--max-queue",
            "4",
            "--timeout",
            "10s",
        ],
    );
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let url = node.url.clone();
            std::thread::spawn(move || {
                reqwest::blocking::Client::new()
                    .post(format!("{url}/fn/queued"))
                    .body("200")
                    .send()
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    assert!(node.metric("weft_rejections_total{function=\"slow\"") >= 1.0);
}

#[test]
fn a_guest_blocked_in_a_host_call_is_stopped_at_its_deadline() {
    let node = Node::start();
    node.deploy("nap", "nap.wasm", &["--clock", "--timeout", "300ms"]);
    let started = Instant::now();
    let (status, e) = error_of(node.post("nap", "60000"));
    assert_eq!(
        (status, e["code"].as_str()),
        (504, Some("deadline_exceeded"))
    );
    assert!(started.elapsed() < Duration::from_millis(300) + MARGIN);
    // A short nap finishes.
    assert_eq!(node.post("nap", "10").text().unwrap(), "rested\n");
}
