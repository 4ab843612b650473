use crate::harness::Node;

#[test]
fn every_invocation_gets_a_fresh_sandbox() {
    let node = Node::start();
    node.deploy("st", "stateful.wasm", &[]);
    for _ in 0..5 {
        assert_eq!(node.ok(&["invoke", "st"]), "count=1 leaked=false\n");
    }
    // Concurrent invocations do not see each other either.
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let url = node.url.clone();
            std::thread::spawn(move || {
                reqwest::blocking::Client::new()
                    .post(format!("{url}/fn/st"))
                    .send()
                    .unwrap()
                    .text()
                    .unwrap()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), "count=1 leaked=false\n");
    }
}

#[test]
fn nothing_is_granted_by_default() {
    let node = Node::start();
    node.deploy("env", "env.wasm", &[]);
    assert_eq!(node.ok(&["invoke", "env"]), "args=1\n");
    node.deploy("probe", "fs-probe.wasm", &[]);
    assert_eq!(
        node.ok(&["invoke", "probe"]),
        "dir=err\nfile=err\nnet=err\n"
    );
    node.deploy("clock", "clock.wasm", &[]);
    let out = node.ok(&["invoke", "clock"]);
    assert!(out.contains("wall=0\n"), "{out}");
}

#[test]
fn grants_give_env_and_clock() {
    let node = Node::start();
    node.deploy("env", "env.wasm", &["--env", "GREETING=hi", "--env", "B=2"]);
    assert_eq!(node.ok(&["invoke", "env"]), "B=2\nGREETING=hi\nargs=1\n");
    node.deploy("clock", "clock.wasm", &["--clock"]);
    let out = node.ok(&["invoke", "clock"]);
    let wall: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("wall="))
        .and_then(|w| w.trim().parse().ok())
        .unwrap_or(0);
    assert!(wall > 1_700_000_000, "{out}");
}

#[test]
fn outbound_http_is_denied_by_default() {
    let node = Node::start();
    node.deploy("out", "http-out-p2.wasm", &[]);
    assert_eq!(
        node.ok(&["invoke", "out"]),
        "denied: ErrorCode::HttpRequestDenied\n"
    );
    // A p1 module importing wasi:http is refused at deploy, not at run time.
    let path = crate::harness::guest("http-out.wasm");
    let out = node.cli(&["deploy", "out1", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("import_not_granted"));
}
