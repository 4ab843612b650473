use crate::harness::{Node, error_of, guest};
use std::io::Write;

fn upload(node: &Node, bytes: Vec<u8>) -> reqwest::blocking::Response {
    node.http()
        .put(format!("{}/v1/modules", node.url))
        .body(bytes)
        .send()
        .unwrap()
}

/// The healthy function every bad input must leave working.
fn still_serves(node: &Node) {
    assert_eq!(node.ok(&["invoke", "good", "--data", "ok"]), "ok");
    let ls = node.json(&["ls", "good"]);
    assert_eq!(ls["active"], 1);
}

#[test]
fn bad_modules_are_refused_with_a_clear_error() {
    let node = Node::start();
    node.deploy("good", "echo.wasm", &[]);

    let (status, e) = error_of(upload(&node, b"definitely not wasm".to_vec()));
    assert_eq!((status, e["code"].as_str()), (400, Some("invalid_module")));

    let mut truncated = std::fs::read(guest("echo.wasm")).unwrap();
    truncated.truncate(truncated.len() / 2);
    let (status, e) = error_of(upload(&node, truncated));
    assert_eq!((status, e["code"].as_str()), (400, Some("invalid_module")));

    let other = std::fs::read(guest("component-other-world.wat")).unwrap();
    let (status, e) = error_of(upload(&node, other));
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("unsupported_world"))
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("wasi:http/incoming-handler")
    );

    let bad_import = std::fs::read(guest("bad-import.wat")).unwrap();
    let (status, e) = error_of(upload(&node, bad_import));
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("import_not_granted"))
    );
    assert!(
        e["message"].as_str().unwrap().contains("env::not_granted"),
        "{e}"
    );

    // Through the CLI: the error names the function, exit is non-zero.
    let p = guest("bad-import.wat");
    let out = node.cli(&["deploy", "bad", p.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("import_not_granted") && err.contains("function `bad`"),
        "{err}"
    );
    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(junk.path(), b"\0asm\x01\0\0\0garbage").unwrap();
    let out = node.cli(&["deploy", "junk", junk.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid_module") && err.contains("function `junk`"),
        "{err}"
    );
    assert!(node.json(&["ls"])["functions"].as_array().unwrap().len() == 1);
    still_serves(&node);
}

#[test]
fn bad_names_specs_and_manifests_are_refused() {
    let node = Node::start();
    node.deploy("good", "echo.wasm", &[]);
    let p = guest("echo.wasm");
    let p = p.to_str().unwrap();

    let out = node.cli(&["deploy", "Bad_Name", p]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid name `Bad_Name`"));

    // Over the API, unknown fields and bad values name the field.
    let c = node.http();
    let digest = node.json(&["ls", "good"])["versions"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let r = c
        .put(format!("{}/v1/functions/x", node.url))
        .json(&serde_json::json!({"module": format!("sha256:{digest}"), "memroy": "1MiB"}))
        .send()
        .unwrap();
    let (status, e) = error_of(r);
    assert_eq!((status, e["code"].as_str()), (400, Some("invalid_spec")));
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `memroy`"),
        "{e}"
    );
    let r = c
        .put(format!("{}/v1/functions/x", node.url))
        .json(&serde_json::json!({"module": format!("sha256:{}", "0".repeat(64))}))
        .send()
        .unwrap();
    let (status, e) = error_of(r);
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("module_not_found"))
    );
    let r = c
        .put(format!("{}/v1/functions/BAD", node.url))
        .json(&serde_json::json!({"module": format!("sha256:{digest}")}))
        .send()
        .unwrap();
    assert_eq!(error_of(r).1["code"], "invalid_name");
    let r = c
        .put(format!("{}/v1/functions/x", node.url))
        .json(&serde_json::json!({"module": format!("sha256:{digest}"), "memory": "8GiB"}))
        .send()
        .unwrap();
    let (status, e) = error_of(r);
    assert_eq!((status, e["code"].as_str()), (400, Some("invalid_spec")));
    assert!(e["message"].as_str().unwrap().contains("max_memory"), "{e}");

    // A manifest with an unknown key deploys nothing.
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("weft.toml");
    std::fs::write(
        &m,
        format!("manifest_version = 1\n[functions.new]\nmodule = {p:?}\ntimeuot = \"1s\"\n"),
    )
    .unwrap();
    let out = node.cli(&["deploy", "--manifest", m.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("weft.toml") && err.contains("unknown field `timeuot`"),
        "{err}"
    );
    assert!(err.contains("invalid_manifest"), "{err}");
    assert!(node.cli(&["ls", "new"]).status.code() != Some(0));

    // Unknown routes and methods get the same error shape.
    let (status, e) = error_of(c.get(format!("{}/v1/nope", node.url)).send().unwrap());
    assert_eq!((status, e["code"].as_str()), (404, Some("not_found")));
    let (status, e) = error_of(c.post(format!("{}/v1/functions", node.url)).send().unwrap());
    assert_eq!(
        (status, e["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    still_serves(&node);
}

#[test]
fn a_client_that_disconnects_mid_request_harms_no_one() {
    let node = Node::start();
    node.deploy("good", "echo.wasm", &[]);
    node.deploy("slow", "sleep.wasm", &["--clock", "--timeout", "5s"]);
    let addr = node.url.trim_start_matches("http://").to_string();
    for _ in 0..5 {
        // Promise a body, send part of it, hang up.
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "POST /fn/good HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\npartial"
        )
        .unwrap();
        drop(s);
        // Hang up while the guest runs.
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "POST /fn/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n300"
        )
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(s);
    }
    still_serves(&node);
    // The abandoned invocations end and free their slots.
    assert!(crate::harness::eventually(
        std::time::Duration::from_secs(10),
        || { node.json(&["ls", "slow"])["in_flight"] == 0 }
    ));
}

#[test]
fn a_client_that_sends_its_body_too_slowly_gets_408_and_frees_its_slot() {
    use std::io::Read;
    let node = Node::start();
    node.deploy("good", "echo.wasm", &[]);
    node.deploy(
        "one",
        "echo.wasm",
        &[
            "--timeout",
            "300ms",
            "--max-concurrency",
            "1",
            "--max-queue",
            "0",
        ],
    );
    let addr = node.url.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "POST /fn/one HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nslow"
    )
    .unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(
        head.contains("request_timeout") && head.contains("function `one`"),
        "{head}"
    );
    // The slot is free again.
    assert_eq!(node.post("one", "fast").text().unwrap(), "fast");
    still_serves(&node);
}
