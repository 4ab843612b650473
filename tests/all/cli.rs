use crate::harness::{Node, error_of, guest};

#[test]
fn deploy_and_invoke_rust_and_c_commands() {
    let node = Node::start();
    let d = node.deploy("hello", "rust-command.wasm", &[]);
    assert_eq!(d["kind"], "command");
    assert_eq!(d["active"], 1);
    assert_eq!(
        node.ok(&["invoke", "hello", "--data", "weft"]),
        "hello, weft!"
    );

    node.deploy("hello-c", "c-command.wasm", &[]);
    let out = node.ok(&["invoke", "hello-c", "--data", "weft"]);
    assert!(out.starts_with("hello, weft!"), "{out}");

    // --data-file
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("in.txt");
    std::fs::write(&f, "file").unwrap();
    assert_eq!(
        node.ok(&["invoke", "hello", "--data-file", f.to_str().unwrap()]),
        "hello, file!"
    );
}

#[test]
fn versions_rollback_and_remove() {
    let node = Node::start();
    node.deploy("f", "echo.wasm", &[]);
    let d = node.deploy("f", "rust-command.wasm", &["--timeout", "2s"]);
    assert_eq!(d["active"], 2);
    assert_eq!(node.ok(&["invoke", "f", "--data", "x"]), "hello, x!");

    let r = node.json(&["rollback", "f"]);
    assert_eq!(r["active"], 1);
    assert_eq!(node.ok(&["invoke", "f", "--data", "x"]), "x");

    let r = node.json(&["rollback", "f", "--to", "2"]);
    assert_eq!(r["active"], 2);
    let bad = node.cli(&["rollback", "f", "--to", "9"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("version_not_found"));

    let ls = node.json(&["ls"]);
    let f = &ls["functions"][0];
    assert_eq!(f["name"], "f");
    assert_eq!(f["versions"].as_array().unwrap().len(), 2);
    assert_eq!(f["limits"]["timeout_ms"], 2000);
    let text = node.ok(&["ls"]);
    assert!(text.contains("NAME") && text.contains("f "), "{text}");
    let one = node.ok(&["ls", "f"]);
    assert!(one.contains("VERSION") && one.contains("sha256:"), "{one}");

    let rm = node.json(&["rm", "f"]);
    assert_eq!(rm["removed"], "f");
    let gone = node.cli(&["invoke", "f"]);
    assert!(!gone.status.success());
    let err = String::from_utf8_lossy(&gone.stderr);
    assert!(
        err.contains("function `f` not found") && err.contains("function_not_found"),
        "{err}"
    );
    assert_eq!(node.json(&["ls"])["functions"].as_array().unwrap().len(), 0);
}

#[test]
fn a_module_is_compiled_once() {
    let node = Node::start();
    node.deploy("a", "echo.wasm", &[]);
    let path = guest("echo.wasm");
    let out = node.cli(&["deploy", "b", path.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already compiled"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(node.metric("weft_compilations_total"), 1.0);
    assert_eq!(node.ok(&["invoke", "b", "--data", "same"]), "same");
}

#[test]
fn command_exit_code_is_an_error_that_carries_the_code() {
    let node = Node::start();
    node.deploy("fail", "exit-code.wasm", &[]);
    let out = node.cli(&["invoke", "fail", "--data", "7"]);
    assert_eq!(out.status.code(), Some(7));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exited with code 7") && err.contains("function_exit"),
        "{err}"
    );
    assert!(err.contains("function `fail`"), "{err}");

    let resp = node.post("fail", "7");
    assert_eq!(resp.headers()["x-weft-exit-code"], "7");
    let (status, e) = crate::harness::error_of(resp);
    assert_eq!(status, 500);
    assert_eq!(e["code"], "function_exit");
    assert_eq!(e["exit_code"], 7);
    assert_eq!(e["function"], "fail");
}

#[test]
fn manifest_deploy_and_schema() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let echo = guest("echo.wasm");
    let hello = guest("rust-command.wasm");
    let manifest = dir.path().join("weft.toml");
    std::fs::write(
        &manifest,
        format!(
            "manifest_version = 1\n\n[functions.echo]\nmodule = {:?}\nmemory = \"32MiB\"\n\n\
             [functions.greet]\nmodule = {:?}\ntimeout = \"3s\"\nmax_concurrency = 2\n",
            echo.to_str().unwrap(),
            hello.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = node.json(&["deploy", "--manifest", manifest.to_str().unwrap()]);
    assert_eq!(out.as_array().unwrap().len(), 2);
    assert_eq!(node.ok(&["invoke", "echo", "--data", "e"]), "e");
    assert_eq!(node.ok(&["invoke", "greet", "--data", "g"]), "hello, g!");
    let ls = node.json(&["ls", "greet"]);
    assert_eq!(ls["limits"]["max_concurrency"], 2);

    // A relative module path resolves against the manifest's folder.
    std::fs::copy(&echo, dir.path().join("local.wasm")).unwrap();
    let rel = dir.path().join("rel.toml");
    std::fs::write(
        &rel,
        "manifest_version = 1\n[functions.rel]\nmodule = \"local.wasm\"\n",
    )
    .unwrap();
    node.ok(&["deploy", "--manifest", rel.to_str().unwrap()]);
    assert_eq!(node.ok(&["invoke", "rel", "--data", "r"]), "r");

    let schema = node.json(&["schema"]);
    let s = schema.to_string();
    assert!(
        s.contains("manifest_version") && s.contains("max_concurrency"),
        "{s}"
    );
    let api_schema: serde_json::Value = node.admin_get("/v1/schema").json().unwrap();
    assert_eq!(api_schema, schema);
}

#[test]
fn every_command_speaks_json() {
    let node = Node::start();
    node.deploy("e", "stderr-lines.wasm", &[]);
    let inv = node.json(&["invoke", "e", "--data", "2"]);
    assert_eq!(inv["status"], 200);
    assert_eq!(inv["body"], "done\n");
    assert!(inv["invocation"].as_str().is_some());
    assert!(node.json(&["ls"])["functions"].is_array());
    assert!(node.json(&["ls", "e"])["versions"].is_array());
    assert_eq!(node.json(&["usage"])["functions"]["e"]["invocations"], 1);
    assert_eq!(
        node.json(&["usage", "e"])["functions"]["e"]["invocations"],
        1
    );
    let logs = node.ok(&["logs", "e", "--json"]);
    assert_eq!(logs.lines().count(), 2);
    for l in logs.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["invocation"], inv["invocation"]);
    }
    node.deploy("e", "echo.wasm", &[]);
    assert_eq!(node.json(&["rollback", "e"])["active"], 1);
    assert_eq!(node.json(&["rm", "e"])["versions"], 2);
    // Errors as JSON on stderr.
    let out = node.cli(&["invoke", "nope", "--json"]);
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(v["error"]["code"], "function_not_found");
}

#[test]
fn client_errors_when_the_node_is_unreachable() {
    let out = std::process::Command::new(crate::harness::WEFT)
        .args(["ls", "--url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the node") && err.contains("unreachable"),
        "{err}"
    );
}

#[test]
fn a_malformed_url_is_refused_naming_the_flag() {
    for (url, reason) in [
        ("127.0.0.1:7777", "expected http://HOST[:PORT] or https://"),
        ("http://127.0.0.1:99999", "1-65535"),
        ("http://127.0.0.1:7777/api", "unexpected path `/api`"),
    ] {
        let out = std::process::Command::new(crate::harness::WEFT)
            .args(["ls", "--json", "--url", url])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
        assert_eq!(v["error"]["code"], "invalid_input", "{url}");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(
            m.contains(&format!("--url `{url}`")) && m.contains(reason),
            "{m}"
        );
    }
}

#[test]
fn wasi_cli_command_components_run_as_commands() {
    let node = Node::start();
    let d = node.deploy("echo2", "echo-p2.wasm", &[]);
    assert_eq!(d["kind"], "command");
    assert_eq!(
        node.ok(&["invoke", "echo2", "--data", "component"]),
        "component"
    );
    node.deploy("st2", "stateful-p2.wasm", &[]);
    for _ in 0..3 {
        assert_eq!(node.ok(&["invoke", "st2"]), "count=1 leaked=false\n");
    }
    node.deploy("fail2", "exit-code-p2.wasm", &[]);
    let (status, e) = crate::harness::error_of(node.post("fail2", "7"));
    assert_eq!(status, 500);
    assert_eq!(e["code"], "function_exit");
    assert!(e["exit_code"].as_i64().unwrap() != 0);
}

#[test]
fn commands_take_arguments_from_the_deploy() {
    // `binarytrees 10`, as the benchmarks game runs it, as a function.
    let node = Node::start();
    let d = node.deploy("trees", "bench-binarytrees.wasm", &["--arg", "10"]);
    assert_eq!(d["versions"][0]["spec"]["args"], serde_json::json!(["10"]));
    assert_eq!(
        node.ok(&["invoke", "trees"]),
        "stretch tree of depth 11\t check: 4095\n\
         1024\t trees of depth 4\t check: 31744\n\
         256\t trees of depth 6\t check: 32512\n\
         64\t trees of depth 8\t check: 32704\n\
         16\t trees of depth 10\t check: 32752\n\
         long lived tree of depth 10\t check: 2047\n"
    );
    let ls = node.ok(&["ls", "trees"]);
    assert!(ls.contains("args") && ls.contains("10"), "{ls}");

    // Without them it is the program's own usage error, exit code and all.
    node.deploy("bare", "bench-binarytrees.wasm", &[]);
    let out = node.cli(&["invoke", "bare"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[function_exit]"), "{err}");
    let logs = node.ok(&["logs", "bare"]);
    assert!(logs.contains("usage: binarytrees DEPTH"), "{logs}");

    // Arguments are checked, and an HTTP component takes none.
    let web = guest("http-hello.wasm");
    let out = node.cli(&["deploy", "web", web.to_str().unwrap(), "--arg", "x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("args: an HTTP component takes no arguments")
            && err.contains("[invalid_spec]"),
        "{err}"
    );
    let resp = node
        .http()
        .put(format!("{}/v1/functions/web", node.url))
        .json(&serde_json::json!({ "module": d["versions"][0]["digest"].as_str().map(|h| format!("sha256:{h}")), "args": ["a\u{0}b"] }))
        .send()
        .unwrap();
    let (status, body) = error_of(resp);
    assert_eq!(status, 400);
    assert_eq!(body["code"], "invalid_spec");
    assert_eq!(body["field"], "args[0]");
}

#[test]
fn a_manifest_is_checked_before_anything_is_uploaded() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("weft.toml");
    std::fs::write(
        &manifest,
        format!(
            "manifest_version = 1\n\
             [functions.ok]\nmodule = \"{}\"\n\
             [functions.tick]\nmodule = \"{}\"\n\
             [[functions.tick.cron]]\nschedule = \"61 * * * *\"\n",
            guest("echo.wasm").display(),
            guest("tick.wasm").display()
        ),
    )
    .unwrap();
    let out = node.cli(&["deploy", "--manifest", manifest.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "weft.toml: functions.tick.cron[0].schedule: cron expression `61 * * * *`: minute field"
        ) && err.contains("[invalid_manifest]"),
        "{err}"
    );
    // Nothing reached the node: no module compiled, no function deployed.
    assert_eq!(node.metric("weft_compilations_total"), 0.0);
    assert_eq!(node.json(&["ls"])["functions"].as_array().unwrap().len(), 0);
}
