//! The mesh against a real `nats-server` (Debian package `nats-server`),
//! started on a free port with JetStream and a small `max_payload`, so
//! bodies above it travel in chunks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft_kv::Code;
use weft_mesh::{
    CallError, CallMeta, Host, LocalLoad, Mesh, MeshConfig, RegistryEvent, ReplyOutcome,
};
use weft_sched::Tier;

struct Nats {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nats() -> Nats {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "listen: 127.0.0.1:{port}\nmax_payload: 65536\njetstream {{ store_dir: \"{}\" }}\n",
            dir.path().join("js").display()
        ),
    )
    .unwrap();
    let bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("nats-server is not installed: apt-get install -y nats-server");
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "nats-server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Nats {
        child,
        port,
        _dir: dir,
    }
}

/// A host that echoes bodies reversed and records registry events.
#[derive(Default)]
struct Echo {
    events: Mutex<Vec<RegistryEvent>>,
    slow: Mutex<Option<Duration>>,
    cancelled: Arc<std::sync::atomic::AtomicBool>,
}

struct Flag(Arc<std::sync::atomic::AtomicBool>);
impl Drop for Flag {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Host for Echo {
    fn load(&self) -> LocalLoad {
        LocalLoad {
            slots: 4,
            inflight: 1,
            exec_us: [("echo".to_string(), 250)].into(),
            exec_profile: [("echo".to_string(), [200, 250, 400, 410])].into(),
            ..LocalLoad::default()
        }
    }
    fn serve(&self, call: CallMeta, body: Bytes) -> BoxFuture<'static, (ReplyOutcome, Bytes)> {
        let slow = *self.slow.lock().unwrap();
        let flag = Flag(self.cancelled.clone());
        Box::pin(async move {
            if let Some(d) = slow {
                tokio::time::sleep(d).await;
            }
            std::mem::forget(flag);
            let mut out = body.to_vec();
            out.reverse();
            (
                ReplyOutcome::Ok {
                    invocation: format!("{}-1", call.function),
                    version: 1,
                    cold_start: false,
                    wall_us: 10,
                    cpu_us: 10,
                    status: 200,
                    headers: vec![],
                },
                Bytes::from(out),
            )
        })
    }
    fn registry(&self, event: RegistryEvent) -> BoxFuture<'static, ()> {
        self.events.lock().unwrap().push(event);
        Box::pin(async {})
    }
}

async fn node(port: u16, name: &str, tier: Tier, host: Arc<Echo>) -> Arc<Mesh> {
    let mut c = MeshConfig::new(format!("nats://127.0.0.1:{port}"), name, tier);
    c.heartbeat = Duration::from_millis(200);
    c.labels = BTreeMap::from([("site".to_string(), "a".to_string())]);
    let m = Mesh::connect(c).await.unwrap();
    m.start(host).await.unwrap();
    m
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn call(function: &str) -> CallMeta {
    CallMeta {
        id: String::new(),
        from: String::new(),
        function: function.into(),
        trigger: "call".into(),
        subject: String::new(),
        attempt: 1,
        chain: vec![],
        ancestors: vec![],
        version: 0,
        timeout_ms: 0,
        deadline_us: None,
        http: None,
        body_len: 0,
        chunks: 0,
        state_key: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_calls_registry_and_artifacts() {
    let server = nats();
    let (ha, hb) = (Arc::new(Echo::default()), Arc::new(Echo::default()));
    let a = node(server.port, "edge-a", Tier::Edge, ha.clone()).await;
    let b = node(server.port, "cloud-b", Tier::Cloud, hb.clone()).await;

    // Membership: each sees the other, with its tier, load and a round trip.
    until("a sees b with an RTT", || {
        a.peers()
            .iter()
            .any(|p| p.heartbeat.name == "cloud-b" && p.up && p.rtt_us.is_some())
    })
    .await;
    let pb = a
        .peers()
        .into_iter()
        .find(|p| p.heartbeat.name == "cloud-b")
        .unwrap();
    assert_eq!(pb.heartbeat.tier, Tier::Cloud);
    assert_eq!(pb.heartbeat.slots, 4);
    assert_eq!(pb.heartbeat.exec_us.get("echo"), Some(&250));
    assert_eq!(
        pb.heartbeat.exec_profile.get("echo"),
        Some(&[200, 250, 400, 410]),
        "peers plan with the profile"
    );
    assert!(b.peers().iter().any(|p| p.heartbeat.name == "edge-a"));

    // A call, small and then larger than max_payload (chunked both ways).
    let deadline = Instant::now() + Duration::from_secs(10);
    let (reply, body) = a
        .call(
            "cloud-b",
            call("echo"),
            Bytes::from_static(b"abc"),
            deadline,
        )
        .await
        .unwrap();
    assert_eq!(&body[..], b"cba");
    assert_eq!(reply.node, "cloud-b");
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let (reply, body) = a
        .call("cloud-b", call("echo"), Bytes::from(big.clone()), deadline)
        .await
        .unwrap();
    assert!(reply.chunks > 1, "a 1 MB reply must be chunked at 64 KiB");
    let mut want = big;
    want.reverse();
    assert_eq!(body.len(), want.len());
    assert!(body[..] == want[..]);
    until("a measured bandwidth to b", || {
        a.peers().iter().any(|p| p.bandwidth_bps.is_some())
    })
    .await;

    // Nobody listens for a node that never was: unreachable at once.
    let e = a
        .call("nowhere", call("echo"), Bytes::new(), deadline)
        .await
        .unwrap_err();
    assert_eq!(e, CallError::Unreachable("nowhere".into()));

    // A caller that gives up cancels the remote work.
    *hb.slow.lock().unwrap() = Some(Duration::from_secs(30));
    let short = Instant::now() + Duration::from_millis(300);
    let e = tokio::time::timeout(
        Duration::from_secs(5),
        a.call("cloud-b", call("echo"), Bytes::new(), short),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(matches!(e, CallError::Timeout { .. }), "{e}");
    until("the remote work was cancelled", || {
        hb.cancelled.load(std::sync::atomic::Ordering::SeqCst)
    })
    .await;
    *hb.slow.lock().unwrap() = None;

    // Registry: create, conflicting create, CAS update, watched by b.
    a.registry_get("nothing").await.unwrap();
    until("b joined the registry", || b.joined()).await;
    let rev = a
        .registry_put("hello", Bytes::from_static(b"v1"), None)
        .await
        .unwrap();
    assert!(matches!(
        a.registry_put("hello", Bytes::from_static(b"vX"), None)
            .await,
        Err(weft_mesh::MeshError::Conflict(_))
    ));
    let rev2 = a
        .registry_put("hello", Bytes::from_static(b"v2"), Some(rev))
        .await
        .unwrap();
    assert!(matches!(
        a.registry_put("hello", Bytes::from_static(b"v3"), Some(rev))
            .await,
        Err(weft_mesh::MeshError::Conflict(_))
    ));
    assert_eq!(
        b.registry_get("hello").await.unwrap(),
        Some((Bytes::from_static(b"v2"), rev2))
    );
    until("b saw the update", || {
        hb.events.lock().unwrap().iter().any(|e| {
            *e == RegistryEvent::Put {
                key: "hello".into(),
                value: Bytes::from_static(b"v2"),
            }
        })
    })
    .await;
    a.registry_delete("hello").await.unwrap();
    until("b saw the delete", || {
        hb.events.lock().unwrap().iter().any(|e| {
            *e == RegistryEvent::Delete {
                key: "hello".into(),
            }
        })
    })
    .await;

    // A late joiner gets a snapshot.
    a.registry_put("late", Bytes::from_static(b"x"), None)
        .await
        .unwrap();
    let hc = Arc::new(Echo::default());
    let c = node(server.port, "fog-c", Tier::Fog, hc.clone()).await;
    until("c joined", || c.joined()).await;
    assert!(hc.events.lock().unwrap().iter().any(|e| matches!(
        e,
        RegistryEvent::Snapshot(s) if s == &vec![("late".to_string(), Bytes::from_static(b"x"))]
    )));

    // Artifacts: stored once, fetched and verified; a corrupt one refused.
    let module = vec![7u8; 300_000];
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&module));
    a.artifact_put(&digest, &module).await.unwrap();
    a.artifact_put(&digest, &module).await.unwrap();
    assert_eq!(&c.artifact_get(&digest).await.unwrap()[..], &module[..]);
    let fake = "0".repeat(64);
    a.artifact_put(&fake, b"not what the name says")
        .await
        .unwrap();
    let e = c.artifact_get(&fake).await.unwrap_err();
    assert!(e.to_string().contains("corrupt"), "{e}");
    let e = c.artifact_get(&"1".repeat(64)).await.unwrap_err();
    assert!(matches!(e, weft_mesh::MeshError::NoArtifact(_)), "{e}");

    // A node that stops beating is marked down; it comes back by itself.
    until("a sees fog-c up", || {
        a.peers()
            .iter()
            .any(|p| p.heartbeat.name == "fog-c" && p.up)
    })
    .await;
    c.shutdown().await;
    drop(c);
    until("fog-c marked down", || {
        a.peers()
            .iter()
            .any(|p| p.heartbeat.name == "fog-c" && !p.up)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_are_refused_and_the_node_goes_on() {
    let server = nats();
    let ha = Arc::new(Echo::default());
    let a = node(server.port, "edge-a", Tier::Edge, ha.clone()).await;
    let raw = async_nats::connect(format!("nats://127.0.0.1:{}", server.port))
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let hb = |name: &str, slots: u32, sent_ms: u64| {
        serde_json::json!({
            "v": weft_mesh::wire::WIRE_VERSION, "name": name, "incarnation": 1, "tier": "edge", "labels": {},
            "slots": slots, "inflight": 0, "queued": 0, "warm": [], "stores": [],
            "cost": 1.0, "energy": 1.0, "exec_us": {}, "sent_ms": sent_ms
        })
        .to_string()
    };
    for (subject, payload) in [
        ("weft.hb.evil", "{not json".to_string()),
        ("weft.hb.greedy", hb("greedy", 4_000_000_000, now)),
        ("weft.hb.skewed", hb("skewed", 4, now + 3_600_000)),
        ("weft.hb.liar", hb("someone-else", 4, now)),
        (
            "weft.node.edge-a.call",
            "\u{0}\u{0}\u{0}\u{ff}garbage".to_string(),
        ),
    ] {
        raw.publish(subject, payload.into()).await.unwrap();
    }
    // A call whose declared body is a lie is answered with an error.
    let lie = CallMeta {
        id: "x1".into(),
        from: "mallory".into(),
        body_len: 10,
        chunks: 1,
        timeout_ms: 1000,
        ..call("echo")
    };
    let json = serde_json::to_vec(&lie).unwrap();
    let mut framed = (json.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&json);
    framed.extend_from_slice(b"abc");
    let reply = raw
        .request("weft.node.edge-a.call", framed.into())
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&reply.payload).contains("invalid_call"));

    raw.publish("weft.hb.honest", hb("honest", 4, now).into())
        .await
        .unwrap();
    until("the honest peer is seen", || {
        a.peers().iter().any(|p| p.heartbeat.name == "honest")
    })
    .await;
    let names: Vec<String> = a.peers().into_iter().map(|p| p.heartbeat.name).collect();
    assert_eq!(
        names,
        vec!["honest".to_string()],
        "only the honest peer is believed"
    );
    // And the node still serves calls.
    let b = node(
        server.port,
        "cloud-b",
        Tier::Cloud,
        Arc::new(Echo::default()),
    )
    .await;
    let (_, body) = b
        .call(
            "edge-a",
            call("echo"),
            Bytes::from_static(b"ok"),
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(&body[..], b"ko");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabric_key_value_store_is_shared_and_consistent() {
    let server = nats();
    let a = node(server.port, "edge-a", Tier::Edge, Arc::new(Echo::default())).await;
    let b = node(
        server.port,
        "cloud-b",
        Tier::Cloud,
        Arc::new(Echo::default()),
    )
    .await;
    let (ka, kb) = (
        weft_mesh::kv_bucket(&a, "shared"),
        weft_mesh::kv_bucket(&b, "shared"),
    );
    // Any UTF-8 key round-trips; what one node writes the other reads.
    for key in ["plain", "with space/and.dots*>", "ключ", ""] {
        ka.set(key, key.as_bytes()).await.unwrap();
        assert_eq!(kb.get(key).await.unwrap().as_deref(), Some(key.as_bytes()));
        assert!(kb.exists(key).await.unwrap());
    }
    kb.delete("plain").await.unwrap();
    assert_eq!(ka.get("plain").await.unwrap(), None);
    kb.delete("never-there").await.unwrap();
    // Increments from both nodes at once: none lost.
    let mut tasks = Vec::new();
    for bucket in [ka.clone(), kb.clone()] {
        tasks.push(tokio::spawn(async move {
            for _ in 0..40 {
                bucket.increment("counter", 1).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        ka.get("counter").await.unwrap().as_deref(),
        Some(&b"80"[..])
    );
    assert_eq!(kb.increment("counter", 5).await.unwrap(), 85);
    // Compare-and-set from both nodes at once: each wins only on the value
    // it read, so none of the 40 steps is lost.
    let mut tasks = Vec::new();
    for bucket in [ka.clone(), kb.clone()] {
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while done < 20 {
                let now = bucket.get("cas").await.unwrap();
                let n: u32 = now
                    .as_deref()
                    .map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                let next = (n + 1).to_string();
                let with = [(format!("cas:{next}"), Some(b"x".to_vec()))];
                if bucket
                    .compare_and_set("cas", now.as_deref(), next.as_bytes(), &with)
                    .await
                    .unwrap()
                {
                    done += 1;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(ka.get("cas").await.unwrap().as_deref(), Some(&b"40"[..]));
    assert!(kb.exists("cas:40").await.unwrap());
    assert!(
        !kb.compare_and_set("cas", None, b"0", &[("cas:del".to_string(), None)])
            .await
            .unwrap()
    );
    ka.set("word", b"seven").await.unwrap();
    assert_eq!(
        kb.increment("word", 1).await.unwrap_err().code(),
        Code::NotANumber
    );
    // Listing pages through every key exactly once.
    let puts: Vec<_> = (0..1_100)
        .map(|i| {
            let ka = ka.clone();
            async move { ka.set(&format!("k{i}"), b"v").await }
        })
        .collect();
    for r in futures::future::join_all(puts).await {
        r.unwrap();
    }
    let mut seen = std::collections::BTreeSet::new();
    let (mut cursor, mut pages) = (None, 0);
    loop {
        let page = kb.list_keys(cursor).await.unwrap();
        pages += 1;
        for k in page.keys {
            assert!(seen.insert(k.clone()), "{k} listed twice");
        }
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert!(pages >= 2, "1,100+ keys take two pages");
    assert!((0..1_100).all(|i| seen.contains(&format!("k{i}"))));
    assert!(seen.contains("counter") && seen.contains("ключ"));
    // With the fabric gone, operations fail fast and clearly.
    drop(server);
    let t = Instant::now();
    let e = ka.get("counter").await.unwrap_err();
    assert_eq!(e.code(), Code::StoreUnavailable, "{e}");
    assert!(t.elapsed() < Duration::from_secs(10));
}
