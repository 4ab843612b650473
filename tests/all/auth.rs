use crate::harness::{Node, error_of};

#[test]
fn beyond_loopback_the_admin_api_needs_the_token() {
    let node = Node::start_public();
    let token = node
        .token
        .clone()
        .expect("a token is printed at first start");
    assert!(token.len() >= 32);

    // The CLI with the token works.
    node.deploy("private", "echo.wasm", &[]);
    node.deploy("open", "echo.wasm", &["--public"]);

    let c = node.http();
    let (status, e) = error_of(c.get(format!("{}/v1/functions", node.url)).send().unwrap());
    assert_eq!((status, e["code"].as_str()), (401, Some("unauthorized")));
    let r = c
        .get(format!("{}/v1/functions", node.url))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        c.get(format!("{}/metrics", node.url))
            .send()
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        c.get(format!("{}/healthz", node.url))
            .send()
            .unwrap()
            .status(),
        200
    );

    // Invocation routes: private needs the token, public does not.
    assert_eq!(
        c.post(format!("{}/fn/private", node.url))
            .send()
            .unwrap()
            .status(),
        401
    );
    let r = c
        .post(format!("{}/fn/private", node.url))
        .bearer_auth(&token)
        .body("p")
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), "p");
    let r = c
        .post(format!("{}/fn/open", node.url))
        .body("o")
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), "o");
    assert_eq!(node.json(&["ls", "open"])["public"], true);

    // The CLI without the token is refused with a clear message.
    let out = std::process::Command::new(crate::harness::WEFT)
        .args(["ls"])
        .env("WEFT_URL", &node.url)
        .env_remove("WEFT_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unauthorized"));

    // The token is shown once; after a restart the same token still works.
    let mut node = node;
    node.restart();
    assert_eq!(node.token.as_deref(), Some(token.as_str()));
    assert_eq!(node.json(&["ls"])["functions"].as_array().unwrap().len(), 2);
    assert!(!node.log().contains(&token), "the token must not be logged");
}

#[test]
fn a_configured_token_is_used_and_bad_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("node.toml");
    std::fs::write(&cfg, "max_instance = 4\n").unwrap();
    let out = std::process::Command::new(crate::harness::WEFT)
        .args(["up", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .arg("--data")
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("node.toml") && err.contains("unknown field `max_instance`"),
        "{err}"
    );

    let out = std::process::Command::new(crate::harness::WEFT)
        .args(["up", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen `not-an-address`"));
}
