//! The embedded backend: durability, file handling, page size.

use crate::support::{bucket, open};
use std::collections::BTreeMap;
use weft_kv::{BackendSpec, Code, KvError, KvLimits, Stores};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    // The parent directories are created too.
    let path = dir.path().join("node/data/kv.redb");
    let specs = [("a", BackendSpec::Embedded), ("b", BackendSpec::Embedded)];
    {
        let stores = open(&path, &specs).await;
        let a = bucket(&stores, "a");
        a.set("k", &[0, 1, 2]).await.unwrap();
        a.increment("n", 41).await.unwrap();
        bucket(&stores, "b")
            .set_many(&[("x".into(), b"y".to_vec())])
            .await
            .unwrap();
    }
    assert!(path.is_file());
    let stores = open(&path, &specs).await;
    let a = bucket(&stores, "a");
    assert_eq!(a.get("k").await, Ok(Some(vec![0, 1, 2])));
    assert_eq!(a.increment("n", 1).await, Ok(42));
    assert_eq!(bucket(&stores, "b").get("x").await, Ok(Some(b"y".to_vec())));
    assert_eq!(stores.labels(), ["a", "b"]);
    assert!(stores.bucket("c").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_pages_hold_at_most_1000_keys() {
    let dir = tempfile::tempdir().unwrap();
    let stores = open(&dir.path().join("kv.redb"), &[("p", BackendSpec::Embedded)]).await;
    let b = bucket(&stores, "p");
    for chunk in 0..3 {
        let entries: Vec<(String, Vec<u8>)> = (0..1000)
            .map(|i| (format!("{chunk}-{i}"), Vec::new()))
            .collect();
        b.set_many(&entries).await.unwrap();
    }
    let mut sizes = Vec::new();
    let mut cursor = None;
    loop {
        let page = b.list_keys(cursor).await.unwrap();
        sizes.push(page.keys.len());
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    // Exactly full pages, and no empty trailing page.
    assert_eq!(sizes, [1000, 1000, 1000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_file_is_only_created_when_needed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.redb");
    let stores = Stores::open(&path, BTreeMap::new(), KvLimits::default())
        .await
        .unwrap();
    assert!(stores.labels().is_empty());
    assert!(!path.exists());

    let specs = BTreeMap::from([(String::new(), BackendSpec::Embedded)]);
    let err = Stores::open(&path, specs, KvLimits::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::StoreError);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_open_failure_names_the_store() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be.
    let specs = BTreeMap::from([("kv".to_owned(), BackendSpec::Embedded)]);
    let err = Stores::open(dir.path(), specs, KvLimits::default())
        .await
        .unwrap_err();
    match &err {
        KvError::Backend { store, message } => {
            assert_eq!(store, "kv");
            assert!(
                message.contains(&dir.path().display().to_string()),
                "{message}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Concurrent writes share commits (group commit) and each behaves as if
/// alone: every increment counts, exactly one of many compare-and-sets from
/// the same value wins, and a write refused for what it found (an increment
/// of text) neither writes nor fails the writes beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_concurrent_writes_commit_together_and_each_as_if_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.redb");
    let specs = [("a", BackendSpec::Embedded), ("b", BackendSpec::Embedded)];
    let stores = open(&path, &specs).await;
    let (a, b) = (bucket(&stores, "a"), bucket(&stores, "b"));
    a.set("text", b"not a number").await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200u64 {
        let (a, b) = (a.clone(), b.clone());
        tasks.spawn(async move {
            let n = a.increment("n", 1).await.unwrap();
            let won = b
                .compare_and_set(
                    "head",
                    None,
                    &i.to_be_bytes(),
                    &[(format!("by/{i}"), Some(vec![1]))],
                )
                .await
                .unwrap();
            let refused = a.increment("text", 1).await;
            assert_eq!(refused.unwrap_err().code(), Code::NotANumber);
            b.set(&format!("k/{i}"), &n.to_be_bytes()).await.unwrap();
            (n, won)
        });
    }
    let mut counts = Vec::new();
    let mut winners = 0;
    while let Some(r) = tasks.join_next().await {
        let (n, won) = r.unwrap();
        counts.push(n);
        winners += usize::from(won);
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=200).collect::<Vec<u64>>());
    assert_eq!(winners, 1);
    let head = b.get("head").await.unwrap().unwrap();
    let i = u64::from_be_bytes(head.try_into().unwrap());
    assert_eq!(b.get(&format!("by/{i}")).await, Ok(Some(vec![1])));
    for j in (0..200u64).filter(|&j| j != i) {
        assert_eq!(b.exists(&format!("by/{j}")).await, Ok(false), "by/{j}");
    }
    assert_eq!(a.get("text").await, Ok(Some(b"not a number".to_vec())));
    drop((a, b, stores));
    // All of it on disk.
    let stores = open(&path, &specs).await;
    assert_eq!(
        bucket(&stores, "a").get("n").await,
        Ok(Some(b"200".to_vec()))
    );
    assert_eq!(
        bucket(&stores, "b")
            .list_keys(None)
            .await
            .unwrap()
            .keys
            .len(),
        202
    );
}
