use crate::harness::Node;

#[test]
fn wasi_http_component_runs_unchanged_and_sees_its_sub_path() {
    let node = Node::start();
    let d = node.deploy("web", "http-hello.wasm", &[]);
    assert_eq!(d["kind"], "http");
    let c = node.http();

    let r = c
        .get(format!("{}/fn/web/some/path?x=1", node.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert!(r.headers().contains_key("x-weft-invocation-id"));
    assert_eq!(r.text().unwrap(), "hello from GET /some/path?x=1\n");

    let r = c.get(format!("{}/fn/web", node.url)).send().unwrap();
    assert_eq!(r.text().unwrap(), "hello from GET /\n");

    let r = c
        .post(format!("{}/fn/web/echo", node.url))
        .body("payload")
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), "hello from POST /echo\npayload");

    let r = c
        .get(format!("{}/fn/web/status/418", node.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 418);

    // Through the CLI too.
    let out = node.ok(&[
        "invoke", "web", "--method", "PUT", "--path", "/cli", "--data", "b",
    ]);
    assert_eq!(out, "hello from PUT /cli\nb");
}

#[test]
fn http_component_limits_and_metering() {
    let node = Node::start();
    node.deploy(
        "web",
        "http-hello.wasm",
        &["--max-request-size", "1KiB", "--max-response-size", "64KiB"],
    );
    let c = node.http();
    // A request body over the limit is refused before the guest runs.
    let r = c
        .post(format!("{}/fn/web/x", node.url))
        .body(vec![b'a'; 4096])
        .send()
        .unwrap();
    let (status, e) = crate::harness::error_of(r);
    assert_eq!(status, 413);
    assert_eq!(e["code"], "request_too_large");
    assert_eq!(e["function"], "web");

    // The component echoes the body: a response over the limit is refused.
    node.deploy("web2", "http-hello.wasm", &["--max-response-size", "1KiB"]);
    let r = c
        .post(format!("{}/fn/web2/x", node.url))
        .body(vec![b'a'; 4000])
        .send();
    // Either refused before streaming, or the stream is cut: never 4000 bytes.
    let ok_len = r.and_then(|r| r.bytes()).map(|b| b.len()).unwrap_or(0);
    assert!(ok_len < 4000, "got {ok_len} bytes past a 1KiB limit");

    for _ in 0..3 {
        assert_eq!(
            c.get(format!("{}/fn/web/", node.url))
                .send()
                .unwrap()
                .status(),
            200
        );
    }
    assert!(crate::harness::eventually(
        std::time::Duration::from_secs(5),
        || { node.json(&["usage", "web"])["functions"]["web"]["invocations"] == 3 }
    ));
    let u = node.json(&["usage", "web"]);
    assert!(u["functions"]["web"]["cpu_ns"].as_u64().unwrap() > 0);
}
