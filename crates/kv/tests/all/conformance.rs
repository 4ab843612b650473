//! Backend-independent behaviour: each body here runs unchanged against the
//! embedded backend and against a real Redis server.

use crate::support::{RedisServer, bucket, open, redis_spec};
use std::collections::BTreeSet;
use std::sync::Arc;
use weft_kv::{BackendSpec, Bucket, Code, KvError};

/// Every key in `b`, asserting that none is listed twice.
async fn all_keys(b: &dyn Bucket) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut cursor = None;
    loop {
        let page = b.list_keys(cursor).await.unwrap();
        for key in page.keys {
            assert!(seen.insert(key.clone()), "`{key}` listed twice");
        }
        cursor = page.cursor;
        if cursor.is_none() {
            return seen;
        }
    }
}

/// Removes every key so that a section starts from an empty store.
async fn clear(b: &dyn Bucket) {
    let keys: Vec<String> = all_keys(b).await.into_iter().collect();
    for chunk in keys.chunks(1000) {
        b.delete_many(chunk).await.unwrap();
    }
    assert!(all_keys(b).await.is_empty());
}

fn s(v: &str) -> String {
    v.to_owned()
}

/// The behaviour every backend must have.
async fn conformance(shared: Arc<dyn Bucket>) {
    let b = shared.as_ref();
    clear(b).await;

    compare_and_set(shared.clone()).await;
    clear(b).await;

    // set / get / overwrite / delete / exists; missing keys.
    assert_eq!(b.get("missing").await, Ok(None));
    assert_eq!(b.exists("missing").await, Ok(false));
    assert_eq!(b.delete("missing").await, Ok(()));
    b.set("k", b"one").await.unwrap();
    assert_eq!(b.get("k").await, Ok(Some(b"one".to_vec())));
    assert_eq!(b.exists("k").await, Ok(true));
    b.set("k", b"two").await.unwrap();
    assert_eq!(b.get("k").await, Ok(Some(b"two".to_vec())));
    b.delete("k").await.unwrap();
    assert_eq!(b.get("k").await, Ok(None));
    assert_eq!(b.exists("k").await, Ok(false));

    // Binary values, zero bytes, the empty value, unusual keys.
    let binary = vec![0u8, 1, 0, 255, 0, 0, 13, 10, 0];
    b.set("bin", &binary).await.unwrap();
    assert_eq!(b.get("bin").await, Ok(Some(binary.clone())));
    b.set("empty", b"").await.unwrap();
    assert_eq!(b.get("empty").await, Ok(Some(Vec::new())));
    assert_eq!(b.exists("empty").await, Ok(true));
    for key in ["a*b?[c]\\", "spaced key", "ünïcødé/🔑", "\0nul"] {
        b.set(key, key.as_bytes()).await.unwrap();
        assert_eq!(
            b.get(key).await,
            Ok(Some(key.as_bytes().to_vec())),
            "{key:?}"
        );
    }
    clear(b).await;

    // increment: missing counts as 0, stored as ASCII decimal.
    assert_eq!(b.increment("n", 5).await, Ok(5));
    assert_eq!(b.increment("n", 37).await, Ok(42));
    assert_eq!(b.get("n").await, Ok(Some(b"42".to_vec())));
    assert_eq!(b.increment("zero", 0).await, Ok(0));
    assert_eq!(b.get("zero").await, Ok(Some(b"0".to_vec())));
    b.set("n", b"100").await.unwrap();
    assert_eq!(b.increment("n", 1).await, Ok(101));
    for text in ["abc", "", "1.5", "007", "+1", " 1", "1 ", "-0", "\0"] {
        b.set("text", text.as_bytes()).await.unwrap();
        assert_eq!(
            b.increment("text", 1).await,
            Err(KvError::NotANumber { key: s("text") }),
            "{text:?}"
        );
        assert_eq!(b.get("text").await, Ok(Some(text.as_bytes().to_vec())));
    }
    b.set("max", i64::MAX.to_string().as_bytes()).await.unwrap();
    assert_eq!(
        b.increment("max", 1).await,
        Err(KvError::Overflow { key: s("max") })
    );
    assert_eq!(
        b.get("max").await,
        Ok(Some(i64::MAX.to_string().into_bytes()))
    );
    assert_eq!(
        b.increment("fresh", u64::MAX).await,
        Err(KvError::Overflow { key: s("fresh") })
    );
    assert_eq!(b.exists("fresh").await, Ok(false));
    assert_eq!(
        b.increment("fresh", i64::MAX as u64).await,
        Ok(i64::MAX as u64)
    );
    // A negative sum is stored (as Redis does) but cannot be returned.
    b.set("neg", b"-5").await.unwrap();
    assert_eq!(
        b.increment("neg", 2).await,
        Err(KvError::Overflow { key: s("neg") })
    );
    assert_eq!(b.get("neg").await, Ok(Some(b"-3".to_vec())));
    assert_eq!(b.increment("neg", 3).await, Ok(0));
    clear(b).await;

    // Batches: order kept, missing keys are None, last duplicate wins.
    b.set_many(&[
        (s("b1"), b"x".to_vec()),
        (s("b2"), vec![0, 0]),
        (s("b3"), b"old".to_vec()),
        (s("b3"), b"new".to_vec()),
    ])
    .await
    .unwrap();
    assert_eq!(
        b.get_many(&[s("b3"), s("nope"), s("b1"), s("b2"), s("b1")])
            .await,
        Ok(vec![
            Some((s("b3"), b"new".to_vec())),
            None,
            Some((s("b1"), b"x".to_vec())),
            Some((s("b2"), vec![0, 0])),
            Some((s("b1"), b"x".to_vec())),
        ])
    );
    b.delete_many(&[s("b1"), s("nope"), s("b3")]).await.unwrap();
    assert_eq!(all_keys(b).await, BTreeSet::from([s("b2")]));
    assert_eq!(b.get_many(&[]).await, Ok(Vec::new()));
    assert_eq!(b.set_many(&[]).await, Ok(()));
    assert_eq!(b.delete_many(&[]).await, Ok(()));
    clear(b).await;

    limits(b).await;
    clear(b).await;

    // Pagination over more than 1000 keys: every key exactly once.
    let mut expected = BTreeSet::new();
    for chunk in 0..3 {
        let entries: Vec<(String, Vec<u8>)> = (0..834)
            .map(|i| (format!("page:{chunk}:{i}"), vec![chunk as u8]))
            .collect();
        b.set_many(&entries).await.unwrap();
        expected.extend(entries.into_iter().map(|(k, _)| k));
    }
    expected.insert(s("*"));
    b.set("*", b"glob").await.unwrap();
    let mut pages = 0;
    let mut seen = BTreeSet::new();
    let mut cursor = None;
    loop {
        let page = b.list_keys(cursor).await.unwrap();
        pages += 1;
        for key in page.keys {
            assert!(seen.insert(key.clone()), "`{key}` listed twice");
        }
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, expected);
    assert!(pages > 1, "2503 keys fit in one page");

    // Deleting each page as it arrives still reaches every key.
    let mut deleted = BTreeSet::new();
    let mut cursor = None;
    loop {
        let page = b.list_keys(cursor).await.unwrap();
        // Redis pages may exceed 1000 keys slightly (`COUNT` is a hint).
        for chunk in page.keys.chunks(1000) {
            b.delete_many(chunk).await.unwrap();
        }
        deleted.extend(page.keys);
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(deleted, expected);
    assert!(all_keys(b).await.is_empty());
}

/// `compare_and_set`: a mismatch writes nothing (of the key, or of what
/// goes with it); writers that race lose nothing.
async fn compare_and_set(shared: Arc<dyn Bucket>) {
    let b = shared.as_ref();
    let some = |v: &[u8]| Some(v.to_vec());
    assert_eq!(
        b.compare_and_set("c", Some(b"x"), b"1", &[]).await,
        Ok(false)
    );
    assert_eq!(b.exists("c").await, Ok(false));
    let with_a = [(s("c:a"), some(b"A"))];
    assert_eq!(b.compare_and_set("c", None, b"1", &with_a).await, Ok(true));
    assert_eq!(b.get("c").await, Ok(some(b"1")));
    assert_eq!(b.get("c:a").await, Ok(some(b"A")));
    // Expected absent, but set: nothing of it lands (both backends here
    // have transactions).
    let with_b = [(s("c:b"), some(b"B"))];
    assert_eq!(b.compare_and_set("c", None, b"2", &with_b).await, Ok(false));
    assert_eq!(
        b.compare_and_set("c", Some(b"0"), b"2", &with_b).await,
        Ok(false)
    );
    assert_eq!(b.exists("c:b").await, Ok(false));
    assert_eq!(b.get("c").await, Ok(some(b"1")));
    // Removals and writes go with it.
    let changes = [
        (s("c:a"), None),
        (s("c:b"), some(b"B")),
        (s("c:none"), None),
    ];
    assert_eq!(
        b.compare_and_set("c", Some(b"1"), b"2", &changes).await,
        Ok(true)
    );
    assert_eq!(b.get("c").await, Ok(some(b"2")));
    assert_eq!(b.exists("c:a").await, Ok(false));
    assert_eq!(b.get("c:b").await, Ok(some(b"B")));
    // A key repeated in what goes with it takes its last change.
    let twice = [
        (s("c:r"), None),
        (s("c:r"), some(b"R")),
        (s("c:b"), some(b"x")),
        (s("c:b"), None),
    ];
    assert_eq!(
        b.compare_and_set("c", Some(b"2"), b"2", &twice).await,
        Ok(true)
    );
    assert_eq!(b.get("c:r").await, Ok(some(b"R")));
    assert_eq!(b.exists("c:b").await, Ok(false));
    // The empty value is a value, not an absence; binary compares exactly.
    b.set("e", b"").await.unwrap();
    assert_eq!(b.compare_and_set("e", None, b"x", &[]).await, Ok(false));
    assert_eq!(
        b.compare_and_set("e", Some(b""), &[0, 255], &[]).await,
        Ok(true)
    );
    assert_eq!(
        b.compare_and_set("e", Some(&[0]), b"y", &[]).await,
        Ok(false)
    );
    assert_eq!(
        b.compare_and_set("e", Some(&[0, 255]), b"y", &[]).await,
        Ok(true)
    );
    // Limits hold for what goes with it too.
    let big = [(s("c:big"), Some(vec![0u8; 1024 * 1024 + 1]))];
    assert!(
        b.compare_and_set("c", Some(b"2"), b"3", &big)
            .await
            .is_err()
    );
    assert_eq!(b.get("c").await, Ok(some(b"2")));
    // Four writers counting by read-then-compare-and-set: none lost.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let b = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while done < 25 {
                let now = b.get("n").await.unwrap();
                let n: u32 = now
                    .as_deref()
                    .map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                let next = (n + 1).to_string();
                if b.compare_and_set("n", now.as_deref(), next.as_bytes(), &[])
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
    assert_eq!(b.get("n").await, Ok(some(b"100")));
}

/// Limits give the right error and leave stored data untouched.
async fn limits(b: &dyn Bucket) {
    let long = "k".repeat(1025);
    let at_limit = "k".repeat(1024);
    let big = vec![7u8; 1024 * 1024 + 1];
    let max = vec![7u8; 1024 * 1024];
    b.set("keep", b"v").await.unwrap();
    let unchanged = || async {
        assert_eq!(b.get("keep").await, Ok(Some(b"v".to_vec())));
    };
    let too_long = Err(KvError::KeyTooLarge {
        len: 1025,
        limit: 1024,
    });

    assert_eq!(b.get(&long).await, too_long.clone().map(|()| None));
    assert_eq!(b.set(&long, b"v").await, too_long);
    assert_eq!(b.exists(&long).await, too_long.clone().map(|()| false));
    assert_eq!(b.delete(&long).await, too_long);
    assert_eq!(b.increment(&long, 1).await, too_long.clone().map(|()| 0));
    assert_eq!(
        b.set("keep", &big).await,
        Err(KvError::ValueTooLarge {
            len: 1024 * 1024 + 1,
            limit: 1024 * 1024
        })
    );
    unchanged().await;
    let empty = |r: Result<(), KvError>| assert_eq!(r.map_err(|e| e.code()), Err(Code::InvalidKey));
    empty(b.set("", b"v").await);
    empty(b.get("").await.map(drop));
    empty(b.delete("").await);
    empty(b.exists("").await.map(drop));
    empty(b.increment("", 1).await.map(drop));

    // A bad entry anywhere fails the whole batch before anything is written.
    assert_eq!(
        b.set_many(&[(s("keep"), b"new".to_vec()), (long.clone(), b"x".to_vec())])
            .await,
        too_long
    );
    assert_eq!(
        b.set_many(&[(s("keep"), b"new".to_vec()), (s("other"), big.clone())])
            .await
            .map_err(|e| e.code()),
        Err(Code::ValueTooLarge)
    );
    empty(b.delete_many(&[s("keep"), String::new()]).await);
    empty(b.get_many(&[s("keep"), String::new()]).await.map(drop));
    let many: Vec<(String, Vec<u8>)> = (0..1001).map(|i| (format!("m{i}"), vec![1])).collect();
    let names: Vec<String> = many.iter().map(|(k, _)| k.clone()).collect();
    let too_many = Err(KvError::BatchTooLarge {
        len: 1001,
        limit: 1000,
    });
    assert_eq!(b.set_many(&many).await, too_many);
    assert_eq!(
        b.get_many(&names).await,
        too_many.clone().map(|()| Vec::new())
    );
    assert_eq!(b.delete_many(&names).await, too_many);
    assert_eq!(b.exists("m0").await, Ok(false));
    unchanged().await;
    assert_eq!(all_keys(b).await, BTreeSet::from([s("keep")]));

    // Exactly at the limits is accepted.
    b.set(&at_limit, &max).await.unwrap();
    assert_eq!(b.get(&at_limit).await, Ok(Some(max)));
    b.set_many(&many[..1000]).await.unwrap();
    assert_eq!(b.get_many(&names[..1000]).await.unwrap().len(), 1000);
    b.delete_many(&names[..1000]).await.unwrap();
    assert_eq!(b.exists("m999").await, Ok(false));
}

/// Two stores never see each other's keys.
async fn isolation(a: Arc<dyn Bucket>, b: Arc<dyn Bucket>) {
    let (a, b) = (a.as_ref(), b.as_ref());
    clear(a).await;
    clear(b).await;
    a.set("shared", b"from a").await.unwrap();
    b.set("shared", b"from b").await.unwrap();
    a.set("only-a", b"1").await.unwrap();
    assert_eq!(a.get("shared").await, Ok(Some(b"from a".to_vec())));
    assert_eq!(b.get("shared").await, Ok(Some(b"from b".to_vec())));
    assert_eq!(b.exists("only-a").await, Ok(false));
    assert_eq!(a.increment("count", 2).await, Ok(2));
    assert_eq!(b.increment("count", 5).await, Ok(5));
    assert_eq!(
        all_keys(a).await,
        BTreeSet::from([s("shared"), s("only-a"), s("count")])
    );
    assert_eq!(all_keys(b).await, BTreeSet::from([s("shared"), s("count")]));
    b.delete_many(&[s("shared"), s("only-a")]).await.unwrap();
    assert_eq!(a.get("shared").await, Ok(Some(b"from a".to_vec())));
    assert_eq!(a.exists("only-a").await, Ok(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let stores = open(
        &dir.path().join("kv.redb"),
        &[("conf", BackendSpec::Embedded)],
    )
    .await;
    conformance(bucket(&stores, "conf")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_conformance() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let stores = open(
        &dir.path().join("kv.redb"),
        &[("conf", redis_spec(&server.url(), "weft:conf:"))],
    )
    .await;
    conformance(bucket(&stores, "conf")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_labels_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let stores = open(
        &dir.path().join("kv.redb"),
        &[("a", BackendSpec::Embedded), ("b", BackendSpec::Embedded)],
    )
    .await;
    isolation(bucket(&stores, "a"), bucket(&stores, "b")).await;
}

/// The first prefix holds a glob character that, unescaped in `SCAN MATCH`,
/// would also match the second prefix's keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_prefixes_are_isolated() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let stores = open(
        &dir.path().join("kv.redb"),
        &[
            ("a", redis_spec(&server.url(), "weft:a?:")),
            ("b", redis_spec(&server.url(), "weft:ab:")),
        ],
    )
    .await;
    isolation(bucket(&stores, "a"), bucket(&stores, "b")).await;
    isolation(bucket(&stores, "b"), bucket(&stores, "a")).await;
}
