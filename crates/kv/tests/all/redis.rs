//! The Redis backend's availability: lazy connection, fast failure while
//! the server is down, recovery without reopening.

use crate::support::{RedisServer, bucket, free_port, open, redis_spec};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use weft_kv::{Bucket, Code, KvError, KvLimits, Stores};

/// Asserts that `op` fails with `Unavailable` naming the store and the
/// address, within a few seconds.
async fn assert_unavailable<T: std::fmt::Debug>(
    port: u16,
    op: impl std::future::Future<Output = Result<T, KvError>>,
) {
    let started = Instant::now();
    let result = op.await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "took {took:?}");
    match result {
        Err(e @ KvError::Unavailable { .. }) => {
            let text = e.to_string();
            assert_eq!(e.code(), Code::StoreUnavailable);
            assert!(text.contains("`cache`"), "{text}");
            assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
            assert!(!text.contains("s3cret"), "{text}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

async fn works(b: &dyn Bucket, value: &[u8]) {
    b.set("k", value).await.unwrap();
    assert_eq!(b.get("k").await, Ok(Some(value.to_vec())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_open_then_started() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("redis://:s3cret@127.0.0.1:{port}");
    let opened = Instant::now();
    let stores = open(
        &dir.path().join("kv.redb"),
        &[("cache", redis_spec(&url, "weft:cache:"))],
    )
    .await;
    assert!(opened.elapsed() < Duration::from_secs(1));
    let b = bucket(&stores, "cache");
    assert_unavailable(port, b.get("k")).await;
    assert_unavailable(port, b.set("k", b"v")).await;
    assert_unavailable(port, b.increment("n", 1)).await;
    assert_unavailable(port, b.list_keys(None)).await;

    let _server = RedisServer::start_with(port, &["--requirepass", "s3cret"]);
    // The first operation after the server is back succeeds.
    assert_eq!(b.increment("n", 1).await, Ok(1));
    works(b.as_ref(), b"up").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_then_restarted() {
    let mut server = RedisServer::start();
    let port = server.port();
    let dir = tempfile::tempdir().unwrap();
    let stores = open(
        &dir.path().join("kv.redb"),
        &[("cache", redis_spec(&server.url(), "weft:cache:"))],
    )
    .await;
    let b = bucket(&stores, "cache");
    works(b.as_ref(), b"before").await;

    server.kill();
    assert_unavailable(port, b.get("k")).await;
    assert_unavailable(port, b.increment("n", 1)).await;
    assert_unavailable(port, b.set_many(&[("a".into(), vec![1])])).await;

    let _server = RedisServer::start_on(port);
    // No persistence: the restarted server is empty.
    assert_eq!(b.get("k").await, Ok(None));
    works(b.as_ref(), b"after").await;
    assert_eq!(b.increment("n", 3).await, Ok(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_malformed_url_fails_open() {
    let dir = tempfile::tempdir().unwrap();
    for url in ["not a url", "http://127.0.0.1:6379", "redis://:s3cret@[::1"] {
        let specs = BTreeMap::from([("broken".to_owned(), redis_spec(url, "p:"))]);
        let err = Stores::open(&dir.path().join("kv.redb"), specs, KvLimits::default())
            .await
            .unwrap_err();
        match &err {
            KvError::Backend { store, message } => {
                assert_eq!(store, "broken", "{url}");
                assert!(message.contains("invalid redis url"), "{message}");
                assert!(!message.contains("s3cret"), "{message}");
            }
            other => panic!("{url}: unexpected {other:?}"),
        }
        assert_eq!(err.code(), Code::StoreError);
    }
}

/// A server that accepts connections but never answers: operations give up
/// after the deadline instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_silent_server_times_out() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("redis://127.0.0.1:{port}");
    let stores = open(
        &dir.path().join("kv.redb"),
        &[("cache", redis_spec(&url, "c:"))],
    )
    .await;
    let b = bucket(&stores, "cache");
    assert_unavailable(port, b.get("k")).await;
    assert_unavailable(port, b.increment("n", 1)).await;
    drop(silent);
}
