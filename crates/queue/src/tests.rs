use super::*;
use redb::{ReadableDatabase, ReadableTableMetadata};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::UNIX_EPOCH;
use tables::{IDEMPOTENCY, PAYLOADS, RECORDS};

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    q: Arc<Queue>,
}

fn fixture(config: QueueConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.redb");
    let q = Queue::open_with(&path, config, Jitter::seeded(1)).unwrap();
    Fixture { _dir: dir, path, q }
}

/// The names of due functions, without when they became due.
fn names(due: Vec<(String, SystemTime)>) -> Vec<String> {
    due.into_iter().map(|(f, _)| f).collect()
}

fn inv(function: &str) -> NewInvocation {
    NewInvocation::new(
        function,
        format!("payload of {function}").into_bytes(),
        "cli",
    )
}

fn keyed(function: &str, key: &str) -> NewInvocation {
    NewInvocation {
        idempotency_key: Some(key.to_string()),
        ..inv(function)
    }
}

fn failure(code: &str) -> Failure {
    Failure {
        code: code.to_string(),
        message: format!("{code} happened"),
    }
}

fn now() -> SystemTime {
    SystemTime::now()
}

fn later(secs: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(secs)
}

fn table_len(q: &Queue, def: redb::TableDefinition<&str, &[u8]>) -> u64 {
    let tx = q.inner_db().begin_read().unwrap();
    tx.open_table(def).unwrap().len().unwrap()
}

fn has_payload(q: &Queue, id: &str) -> bool {
    let tx = q.inner_db().begin_read().unwrap();
    tx.open_table(PAYLOADS).unwrap().get(id).unwrap().is_some()
}

fn idempotency_len(q: &Queue) -> u64 {
    let tx = q.inner_db().begin_read().unwrap();
    tx.open_table(IDEMPOTENCY).unwrap().len().unwrap()
}

#[tokio::test]
async fn enqueue_claim_complete() {
    let f = fixture(QueueConfig::default());
    let q = &f.q;
    let mut new = inv("resize");
    new.meta.insert("k".into(), "v".into());
    let a = q.enqueue(new).await.unwrap();
    assert!(!a.duplicate);
    assert_eq!(a.id.len(), 28);
    let rec = q.get(&a.id).unwrap().unwrap();
    assert_eq!(rec.state, State::Queued);
    assert_eq!(rec.payload_size, "payload of resize".len() as u64);
    assert!(rec.next_attempt_at_ms.is_some());
    assert_eq!((q.pending("resize"), q.pending_total()), (1, 1));
    assert_eq!(
        names(q.due_functions(now()).unwrap()),
        vec!["resize".to_string()]
    );

    let claimed = q.claim("resize", 10, now()).unwrap();
    assert_eq!(claimed.len(), 1);
    let c = &claimed[0];
    assert_eq!((c.id.as_str(), c.attempt), (a.id.as_str(), 1));
    assert_eq!(c.payload, b"payload of resize");
    assert_eq!(
        (c.trigger.as_str(), c.meta.get("k").map(String::as_str)),
        ("cli", Some("v"))
    );
    assert_eq!(q.get(&a.id).unwrap().unwrap().state, State::Running);
    assert!(q.claim("resize", 10, now()).unwrap().is_empty());
    assert_eq!(q.pending("resize"), 1);
    assert!(q.due_functions(now()).unwrap().is_empty());
    assert_eq!(q.next_due().unwrap(), None);

    q.complete(&a.id, b"out".to_vec()).unwrap();
    let rec = q.get(&a.id).unwrap().unwrap();
    assert_eq!(rec.state, State::Succeeded);
    assert_eq!(rec.result.as_deref(), Some(&b"out"[..]));
    assert_eq!(rec.attempts, 1);
    assert!(!has_payload(q, &a.id));
    assert_eq!((q.pending("resize"), q.pending_total()), (0, 0));
    let json = serde_json::to_value(&rec).unwrap();
    assert_eq!(json["result"], "b3V0");
    assert_eq!(json["state"], "succeeded");

    let again = q.complete(&a.id, Vec::new()).unwrap_err();
    assert_eq!(again.code(), Code::NotRunning);
    assert!(matches!(
        q.complete("nope", Vec::new()),
        Err(QueueError::NotFound(_))
    ));
    assert!(q.get("nope").unwrap().is_none());
}

#[tokio::test]
async fn fail_retries_with_jittered_backoff_then_dead() {
    let f = fixture(QueueConfig::default());
    let q = &f.q;
    let mut new = inv("f");
    new.retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(60),
    };
    let id = q.enqueue(new).await.unwrap().id;
    let mut t = now();
    for attempt in 1..=2u32 {
        let c = q.claim("f", 1, t).unwrap();
        assert_eq!((c.len(), c[0].attempt), (1, attempt));
        let after = q.fail_at(&id, failure("trap"), true, t).unwrap();
        let AfterFailure::Retry { at } = after else {
            panic!("attempt {attempt} should be retried")
        };
        let delay = at.duration_since(t).unwrap();
        let base = Duration::from_millis(1000 << (attempt - 1));
        // Millisecond rounding of `t` may add up to 1 ms below.
        assert!(
            delay + Duration::from_millis(1) >= base / 2 && delay <= base,
            "{delay:?}"
        );
        let rec = q.get(&id).unwrap().unwrap();
        assert_eq!(rec.state, State::Queued);
        assert_eq!(rec.last_error, Some(failure("trap")));
        // Not due before its backoff.
        assert!(q.claim("f", 1, t).unwrap().is_empty());
        assert_eq!(q.next_due().unwrap(), Some(at));
        assert!(q.due_functions(t).unwrap().is_empty());
        t = at;
    }
    q.claim("f", 1, t).unwrap();
    assert_eq!(
        q.fail_at(&id, failure("trap"), true, t).unwrap(),
        AfterFailure::Dead
    );
    let rec = q.get(&id).unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.attempts, rec.next_attempt_at_ms),
        (State::Dead, 3, None)
    );
    assert!(has_payload(q, &id));
    assert_eq!(q.dead(Some("f"), 10).unwrap().len(), 1);
    assert_eq!(q.pending("f"), 0);

    // Not retryable: dead at once.
    let id2 = q.enqueue(inv("f")).await.unwrap().id;
    q.claim("f", 1, now()).unwrap();
    assert_eq!(
        q.fail(&id2, failure("bad_input"), false).unwrap(),
        AfterFailure::Dead
    );
    assert_eq!(q.dead(None, 10).unwrap().len(), 2);
    assert_eq!(
        q.fail(&id2, failure("x"), true).unwrap_err().code(),
        Code::NotRunning
    );
}

#[tokio::test]
async fn seeded_jitter_gives_the_same_backoff() {
    let mut delays = Vec::new();
    for _ in 0..2 {
        let f = fixture(QueueConfig::default());
        let id = f.q.enqueue(inv("f")).await.unwrap().id;
        let t = now();
        f.q.claim("f", 1, t).unwrap();
        match f.q.fail_at(&id, failure("trap"), true, t).unwrap() {
            AfterFailure::Retry { at } => delays.push(at.duration_since(t).unwrap().as_millis()),
            AfterFailure::Dead => panic!("should retry"),
        }
    }
    assert_eq!(delays[0], delays[1]);
}

#[tokio::test]
async fn retry_and_drop_dead() {
    let f = fixture(QueueConfig::default());
    let q = &f.q;
    let mut new = keyed("f", "k1");
    new.retry.max_attempts = 1;
    let id = q.enqueue(new).await.unwrap().id;
    assert_eq!(
        q.retry_dead(&id).unwrap_err(),
        QueueError::NotDead(id.clone())
    );
    assert_eq!(q.drop_dead(&id).unwrap_err().code(), Code::NotDead);
    q.claim("f", 1, now()).unwrap();
    assert_eq!(q.retry_dead(&id).unwrap_err().code(), Code::NotDead);
    assert_eq!(
        q.fail(&id, failure("trap"), true).unwrap(),
        AfterFailure::Dead
    );

    q.retry_dead(&id).unwrap();
    let rec = q.get(&id).unwrap().unwrap();
    assert_eq!((rec.state, rec.attempts), (State::Queued, 0));
    assert!(q.dead(None, 10).unwrap().is_empty());
    assert_eq!(q.pending("f"), 1);
    let c = q.claim("f", 1, now()).unwrap();
    assert_eq!(
        (c[0].attempt, c[0].payload.as_slice()),
        (1, &b"payload of f"[..])
    );
    q.fail(&id, failure("trap"), false).unwrap();

    // Dead records still hold their idempotency key.
    assert!(q.enqueue(keyed("f", "k1")).await.unwrap().duplicate);
    q.drop_dead(&id).unwrap();
    assert!(q.get(&id).unwrap().is_none());
    assert!(!has_payload(q, &id));
    assert_eq!(
        q.drop_dead(&id).unwrap_err().code(),
        Code::InvocationNotFound
    );
    assert_eq!(
        q.retry_dead("nope").unwrap_err().code(),
        Code::InvocationNotFound
    );
    // The key is free again.
    assert!(!q.enqueue(keyed("f", "k1")).await.unwrap().duplicate);
}

#[tokio::test]
async fn idempotency_key_dedupes() {
    let f = fixture(QueueConfig::default());
    let q = &f.q;
    let a = q.enqueue(keyed("f", "order-7")).await.unwrap();
    let b = q.enqueue(keyed("f", "order-7")).await.unwrap();
    assert_eq!((b.id.as_str(), b.duplicate), (a.id.as_str(), true));
    assert_eq!(q.pending("f"), 1);
    assert_eq!(table_len(q, RECORDS), 1);
    // Keys are per function.
    let c = q.enqueue(keyed("g", "order-7")).await.unwrap();
    assert!(!c.duplicate);
    assert_ne!(c.id, a.id);
    // Concurrent duplicates in one batch make one record.
    let ids: Vec<_> = futures_join((0..20).map(|_| q.enqueue(keyed("h", "same")))).await;
    let distinct: HashSet<_> = ids.iter().map(|r| r.as_ref().unwrap().id.clone()).collect();
    assert_eq!(distinct.len(), 1);
    assert_eq!(
        ids.iter()
            .filter(|r| !r.as_ref().unwrap().duplicate)
            .count(),
        1
    );
    assert_eq!(table_len(q, RECORDS), 3);

    for bad in [String::new(), "x".repeat(257)] {
        let e = q.enqueue(keyed("f", &bad)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidIdempotencyKey);
    }
    assert!(
        !q.enqueue(keyed("f", &"x".repeat(256)))
            .await
            .unwrap()
            .duplicate
    );
    let mut zero = inv("f");
    zero.retry.max_attempts = 0;
    assert_eq!(
        q.enqueue(zero).await.unwrap_err().code(),
        Code::InvalidRetryPolicy
    );
}

/// Polls the futures concurrently, in order.
async fn futures_join<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (f, slot) in set.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn full_at_node_and_function_limits_loses_nothing() {
    let f = fixture(QueueConfig {
        max_pending: 5,
        max_pending_per_function: 3,
        ..QueueConfig::default()
    });
    let q = &f.q;
    let mut accepted = Vec::new();
    for _ in 0..3 {
        accepted.push(
            q.enqueue(keyed("f", &format!("k{}", accepted.len())))
                .await
                .unwrap()
                .id,
        );
    }
    let e = q.enqueue(inv("f")).await.unwrap_err();
    assert_eq!(
        e,
        QueueError::Full {
            limit: 3,
            scope: "f".into()
        }
    );
    assert_eq!((e.code(), e.code().status()), (Code::QueueFull, 429));
    for _ in 0..2 {
        accepted.push(q.enqueue(inv("g")).await.unwrap().id);
    }
    let e = q.enqueue(inv("g")).await.unwrap_err();
    assert_eq!(
        e,
        QueueError::Full {
            limit: 5,
            scope: "node".into()
        }
    );
    // A duplicate is still answered when full.
    assert_eq!(q.enqueue(keyed("f", "k0")).await.unwrap().id, accepted[0]);
    // Concurrent enqueues against the limit: none gets in, none is lost.
    let burst = futures_join((0..10).map(|_| q.enqueue(inv("h")))).await;
    assert!(
        burst
            .iter()
            .all(|r| r.as_ref().unwrap_err().code() == Code::QueueFull)
    );
    assert_eq!(q.pending_total(), 5);
    assert_eq!(table_len(q, RECORDS), 5);
    for id in &accepted {
        assert_eq!(q.get(id).unwrap().unwrap().state, State::Queued);
    }
    // Running still counts; finishing frees room.
    let c = q.claim("f", 1, now()).unwrap();
    assert_eq!(
        q.enqueue(inv("h")).await.unwrap_err().code(),
        Code::QueueFull
    );
    q.complete(&c[0].id, Vec::new()).unwrap();
    q.enqueue(inv("h")).await.unwrap();
    // Reopened, the counters are rebuilt and still exact.
    drop(f.q);
    let q = Queue::open(
        &f.path,
        QueueConfig {
            max_pending: 5,
            max_pending_per_function: 3,
            ..QueueConfig::default()
        },
    )
    .unwrap();
    assert_eq!(
        (
            q.pending_total(),
            q.pending("f"),
            q.pending("g"),
            q.pending("h")
        ),
        (5, 2, 2, 1)
    );
    assert_eq!(
        q.enqueue(inv("h")).await.unwrap_err().code(),
        Code::QueueFull
    );
    let mut claimed = 0;
    for func in ["f", "g", "h"] {
        claimed += q.claim(func, 10, now()).unwrap().len();
    }
    assert_eq!(claimed, 5);
}

#[tokio::test]
async fn retry_dead_respects_limits() {
    let f = fixture(QueueConfig {
        max_pending_per_function: 1,
        ..QueueConfig::default()
    });
    let q = &f.q;
    let id = q.enqueue(inv("f")).await.unwrap().id;
    q.claim("f", 1, now()).unwrap();
    q.fail(&id, failure("trap"), false).unwrap();
    q.enqueue(inv("f")).await.unwrap();
    assert_eq!(q.retry_dead(&id).unwrap_err().code(), Code::QueueFull);
    assert_eq!(q.get(&id).unwrap().unwrap().state, State::Dead);
}

#[tokio::test]
async fn claim_respects_due_times_and_max() {
    let f = fixture(QueueConfig::default());
    let q = &f.q;
    let nb = later(60);
    let mut delayed = inv("f");
    delayed.not_before = Some(nb);
    let late = q.enqueue(delayed).await.unwrap().id;
    assert!(q.claim("f", 10, now()).unwrap().is_empty());
    assert!(q.due_functions(now()).unwrap().is_empty());
    let due = q.next_due().unwrap().unwrap();
    assert_eq!(
        due.duration_since(UNIX_EPOCH).unwrap().as_millis(),
        nb.duration_since(UNIX_EPOCH).unwrap().as_millis()
    );

    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(q.enqueue(inv("f")).await.unwrap().id);
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut past = inv("g");
    past.not_before = Some(SystemTime::UNIX_EPOCH);
    q.enqueue(past).await.unwrap();
    let due = q.due_functions(now()).unwrap();
    assert_eq!(names(due.clone()), vec!["f".to_string(), "g".to_string()]);
    // Each with when its head became due: f's first, before g was queued
    // (a time in the past counts from when it was queued).
    assert!(due[0].1 < due[1].1, "{due:?}");
    assert!(due[1].1 <= now());
    assert!(q.next_due().unwrap().unwrap() <= now());
    assert!(q.claim("f", 0, now()).unwrap().is_empty());
    let first: Vec<String> = q
        .claim("f", 2, now())
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(first, ids[..2]);
    let rest: Vec<String> = q
        .claim("f", 10, now())
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(rest, ids[2..]);
    let at_due: Vec<String> = q
        .claim("f", 10, nb)
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(at_due, vec![late]);
    assert_eq!(
        names(q.due_functions(later(3600)).unwrap()),
        vec!["g".to_string()]
    );
}

#[tokio::test]
async fn remove_function_buries_queued_only() {
    let f = fixture(QueueConfig::default());
    let q = &f.q;
    for _ in 0..4 {
        q.enqueue(inv("f")).await.unwrap();
    }
    let mut delayed = inv("f");
    delayed.not_before = Some(later(600));
    q.enqueue(delayed).await.unwrap();
    q.enqueue(inv("g")).await.unwrap();
    let running = q.claim("f", 1, now()).unwrap();
    assert_eq!(q.remove_function("f").unwrap(), 4);
    let dead = q.dead(Some("f"), 100).unwrap();
    assert_eq!(dead.len(), 4);
    assert!(
        dead.iter()
            .all(|r| r.last_error.as_ref().map(|e| e.code.as_str()) == Some("function_removed"))
    );
    assert_eq!(
        (q.pending("f"), q.pending("g"), q.pending_total()),
        (1, 1, 2)
    );
    assert_eq!(
        q.get(&running[0].id).unwrap().unwrap().state,
        State::Running
    );
    assert_eq!(q.dead(Some("g"), 100).unwrap().len(), 0);
    assert_eq!(q.dead(None, 2).unwrap().len(), 2);
    assert_eq!(q.remove_function("f").unwrap(), 0);
    assert_eq!(
        names(q.due_functions(later(3600)).unwrap()),
        vec!["g".to_string()]
    );
}

#[tokio::test]
async fn garbage_collection_drops_old_results_and_keys() {
    let f = fixture(QueueConfig {
        result_ttl: Duration::from_secs(3600),
        ..QueueConfig::default()
    });
    let q = &f.q;
    let done = q.enqueue(keyed("f", "once")).await.unwrap().id;
    let mut one_try = keyed("f", "dead-one");
    one_try.retry.max_attempts = 1;
    let dead = q.enqueue(one_try).await.unwrap().id;
    let queued = q.enqueue(inv("f")).await.unwrap().id;
    let c = q.claim("f", 2, now()).unwrap();
    assert_eq!(c.len(), 2);
    q.complete(&done, b"r".to_vec()).unwrap();
    q.fail(&dead, failure("trap"), true).unwrap();
    assert_eq!(q.collect_garbage(now()).unwrap(), 0);
    assert_eq!(q.collect_garbage(later(3500)).unwrap(), 0);
    assert_eq!(idempotency_len(q), 2);
    assert_eq!(q.collect_garbage(later(3700)).unwrap(), 1);
    assert!(q.get(&done).unwrap().is_none());
    assert_eq!(q.get(&dead).unwrap().unwrap().state, State::Dead);
    assert_eq!(q.get(&queued).unwrap().unwrap().state, State::Queued);
    assert_eq!(idempotency_len(q), 1);
    assert_eq!(table_len(q, RECORDS), 2);
    assert!(!q.enqueue(keyed("f", "once")).await.unwrap().duplicate);
    assert_eq!(q.collect_garbage(later(3700)).unwrap(), 0);
}

#[tokio::test]
async fn reopen_requeues_running_and_notifies() {
    let f = fixture(QueueConfig::default());
    let first = f.q.enqueue(inv("f")).await.unwrap().id;
    let second = f.q.enqueue(inv("f")).await.unwrap().id;
    let c = f.q.claim("f", 1, now()).unwrap();
    // Both are due in the same millisecond: either may come first.
    let (a, b) = if c[0].id == first {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(c[0].id, a);
    drop(f.q);
    let q = Queue::open(&f.path, QueueConfig::default()).unwrap();
    let rec = q.get(&a).unwrap().unwrap();
    assert_eq!((rec.state, rec.attempts), (State::Queued, 1));
    assert_eq!((q.pending("f"), q.pending_total()), (2, 2));
    // The wake-up is waiting for the dispatcher.
    tokio::time::timeout(Duration::from_secs(5), q.notified())
        .await
        .unwrap();
    let again: Vec<_> = q.claim("f", 10, now()).unwrap();
    assert_eq!(again.len(), 2);
    let ra = again.iter().find(|c| c.id == a).unwrap();
    assert_eq!(ra.attempt, 2);
    assert!(again.iter().any(|c| c.id == b && c.attempt == 1));
}

#[tokio::test]
async fn enqueue_and_retry_notify() {
    let f = fixture(QueueConfig::default());
    let q = Arc::clone(&f.q);
    let notify = q.notifier();
    let waiter = tokio::spawn(async move { notify.notified().await });
    tokio::task::yield_now().await;
    q.enqueue(inv("f")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enqueues_are_distinct_and_claimed_once() {
    let f = fixture(QueueConfig::default());
    let mut tasks = Vec::new();
    for t in 0..50 {
        let q = Arc::clone(&f.q);
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(200);
            for i in 0..200 {
                let func = format!("f{}", (t + i) % 5);
                ids.push(q.enqueue(inv(&func)).await.unwrap().id);
            }
            ids
        }));
    }
    let mut all = HashSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(all.insert(id), "duplicate id");
        }
    }
    assert_eq!(all.len(), 10_000);
    assert_eq!(f.q.pending_total(), 10_000);
    let mut claimed = HashSet::new();
    for (func, _) in f.q.due_functions(now()).unwrap() {
        loop {
            let batch = f.q.claim(&func, 700, now()).unwrap();
            if batch.is_empty() {
                break;
            }
            for c in batch {
                assert!(claimed.insert(c.id), "claimed twice");
            }
        }
    }
    assert_eq!(claimed, all);
    assert!(f.q.due_functions(later(3600)).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_enqueues_finish() {
    let f = fixture(QueueConfig::default());
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let q = Arc::clone(&f.q);
        tasks.push(tokio::spawn(async move {
            q.enqueue(inv(&format!("f{}", i % 7))).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(f.q.pending_total(), 1000);
}

#[test]
fn error_codes_and_messages() {
    let full = QueueError::Full {
        limit: 3,
        scope: "f".into(),
    };
    assert_eq!(
        full.to_string(),
        "queue full: function `f` has 3 pending invocations"
    );
    let node = QueueError::Full {
        limit: 9,
        scope: "node".into(),
    };
    assert_eq!(
        node.to_string(),
        "queue full: the node has 9 pending invocations"
    );
    let codes = [
        (full, "queue_full", 429),
        (
            QueueError::NotFound("x".into()),
            "invocation_not_found",
            404,
        ),
        (QueueError::NotDead("x".into()), "not_dead", 409),
        (QueueError::NotRunning("x".into()), "not_running", 409),
        (
            QueueError::InvalidKey("x".into()),
            "invalid_idempotency_key",
            400,
        ),
        (
            QueueError::InvalidRetry("x".into()),
            "invalid_retry_policy",
            400,
        ),
        (QueueError::Storage("x".into()), "internal", 500),
    ];
    for (e, code, status) in codes {
        assert_eq!((e.code().as_str(), e.code().status()), (code, status));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_completions_mixed_with_enqueues() {
    let f = fixture(QueueConfig::default());
    for _ in 0..300 {
        f.q.enqueue(inv("f")).await.unwrap();
    }
    let claimed = f.q.claim("f", 300, now()).unwrap();
    assert_eq!(claimed.len(), 300);
    let mut tasks = Vec::new();
    for c in claimed {
        let q = Arc::clone(&f.q);
        tasks.push(tokio::spawn(async move {
            // Enqueues and completions share the writer's batches.
            let new = q.enqueue(inv("g")).await.unwrap().id;
            q.complete_grouped(&c.id, c.id.as_bytes().to_vec())
                .await
                .unwrap();
            (c.id, new)
        }));
    }
    for t in tasks {
        let (done, new) = t.await.unwrap();
        let rec = f.q.get(&done).unwrap().unwrap();
        assert_eq!(rec.state, State::Succeeded);
        assert_eq!(rec.result.as_deref(), Some(done.as_bytes()));
        assert_eq!(f.q.get(&new).unwrap().unwrap().state, State::Queued);
    }
    assert_eq!(f.q.pending("f"), 0);
    assert_eq!(f.q.pending("g"), 300);
    // Errors stay with their request: not running, unknown.
    let queued = f.q.enqueue(inv("h")).await.unwrap().id;
    assert!(matches!(
        f.q.complete_grouped(&queued, vec![]).await,
        Err(QueueError::NotRunning(_))
    ));
    assert!(matches!(
        f.q.complete_grouped("nope", vec![]).await,
        Err(QueueError::NotFound(_))
    ));
    assert_eq!(f.q.get(&queued).unwrap().unwrap().state, State::Queued);
}

#[tokio::test]
async fn defer_requeues_without_spending_an_attempt() {
    let f = fixture(QueueConfig::default());
    let q = &f.q;
    let a = q.enqueue(inv("far")).await.unwrap();
    // Deferred ten times (say, its node unreachable): never dead-lettered,
    // never counted, and due again when asked.
    for _ in 0..10 {
        let c = q.claim("far", 1, later(100)).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].attempt, 1);
        q.defer(&a.id, failure("node_unreachable"), later(50))
            .unwrap();
        let rec = q.get(&a.id).unwrap().unwrap();
        assert_eq!(rec.state, State::Queued);
        assert_eq!(rec.attempts, 0);
        assert_eq!(rec.last_error.as_ref().unwrap().code, "node_unreachable");
    }
    assert!(
        q.claim("far", 1, later(10)).unwrap().is_empty(),
        "not due before `at`"
    );
    assert_eq!(q.claim("far", 1, later(60)).unwrap().len(), 1);
    assert_eq!(
        q.defer("nope", failure("x"), now()).unwrap_err().code(),
        Code::InvocationNotFound
    );
    q.complete(&a.id, Vec::new()).unwrap();
    assert_eq!(
        q.defer(&a.id, failure("x"), now()).unwrap_err().code(),
        Code::NotRunning
    );
}
