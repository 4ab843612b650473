//! Crash safety with a real `kill -9`: a child process (this test binary,
//! re-run in child mode) enqueues in a loop and prints every acknowledged id;
//! the parent kills it with SIGKILL, reopens the queue and checks that every
//! acknowledged id is there, and that what the child had claimed is queued
//! again.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};
use weft_queue::{NewInvocation, Queue, QueueConfig, State};

const CHILD_ENV: &str = "WEFT_QUEUE_CRASH_CHILD";
const ROUNDS: usize = 5;
const CLAIMED_PER_ROUND: usize = 5;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // One write per line, flushed: the parent sees it once it is acknowledged.
    let _ = out.write_all(format!("{line}\n").as_bytes());
    let _ = out.flush();
}

/// Child mode: does nothing unless run by `enqueued_ids_survive_kill_9`.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let q = Queue::open(Path::new(&path), QueueConfig::default()).unwrap();
        // Some work claimed (running) when the kill comes.
        for _ in 0..CLAIMED_PER_ROUND {
            let id = q
                .enqueue(NewInvocation::new("g", b"g".to_vec(), "cli"))
                .await
                .unwrap()
                .id;
            say(&format!("ID {id}"));
        }
        for c in q.claim("g", CLAIMED_PER_ROUND, SystemTime::now()).unwrap() {
            say(&format!("CLAIMED {}", c.id));
        }
        let mut tasks = Vec::new();
        for t in 0..8 {
            let q = Arc::clone(&q);
            tasks.push(tokio::spawn(async move {
                for i in 0u64.. {
                    let payload = format!("{t}-{i}").into_bytes();
                    let id = q
                        .enqueue(NewInvocation::new("f", payload, "cli"))
                        .await
                        .unwrap()
                        .id;
                    say(&format!("ID {id}"));
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

#[test]
fn enqueued_ids_survive_kill_9() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.redb");
    let exe = std::env::current_exe().unwrap();
    let mut acknowledged = HashSet::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait for the first acknowledgement, then let it run ~300 ms.
        let first = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();

        let (mut ids, mut claimed) = (Vec::new(), Vec::new());
        for line in std::iter::once(first).chain(rx.try_iter()) {
            // A line cut by the kill is incomplete and ignored.
            let (kind, id) = line.split_once(' ').unwrap_or(("", ""));
            if id.len() != 28 {
                continue;
            }
            match kind {
                "ID" => ids.push(id.to_string()),
                "CLAIMED" => claimed.push(id.to_string()),
                _ => {}
            }
        }
        assert!(
            ids.len() > CLAIMED_PER_ROUND,
            "round {round}: only {} ids",
            ids.len()
        );
        assert_eq!(claimed.len(), CLAIMED_PER_ROUND, "round {round}");
        acknowledged.extend(ids);

        let q = Queue::open(&path, QueueConfig::default()).unwrap();
        for id in &acknowledged {
            assert!(
                q.get(id).unwrap().is_some(),
                "round {round}: acknowledged {id} lost"
            );
        }
        for id in &claimed {
            let rec = q.get(id).unwrap().unwrap();
            assert_eq!(
                (rec.state, rec.attempts),
                (State::Queued, 1),
                "round {round}: {id}"
            );
        }
        // Running work of this round is due again at once; take it so the
        // next round's claims are fresh.
        let again = q.claim("g", 100, SystemTime::now()).unwrap();
        assert!(claimed.iter().all(|id| again.iter().any(|c| &c.id == id)));
        for c in again {
            q.complete(&c.id, Vec::new()).unwrap();
        }
        // Every record is queued, running or done; counters match.
        assert_eq!(q.pending("g"), 0);
        assert!(q.pending("f") >= 1);
        eprintln!(
            "round {round}: {} acknowledged ids in total",
            acknowledged.len()
        );
    }
}
