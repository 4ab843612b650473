//! Informal enqueue throughput: one task, then many concurrent tasks.
//!
//! `cargo run --release -p weft-queue --example throughput -- [total] [tasks] [dir]`

use std::sync::Arc;
use std::time::Instant;
use weft_queue::{NewInvocation, Queue, QueueConfig, QueueError};

async fn run(q: &Arc<Queue>, total: usize, tasks: usize) -> Result<f64, QueueError> {
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let q = Arc::clone(q);
        let n = total / tasks;
        handles.push(tokio::spawn(async move {
            for i in 0..n {
                let inv = NewInvocation::new(format!("f{}", (t + i) % 8), vec![0u8; 256], "bench");
                q.enqueue(inv).await?;
            }
            Ok::<_, QueueError>(())
        }));
    }
    for h in handles {
        h.await.map_err(|e| QueueError::Storage(e.to_string()))??;
    }
    Ok((total / tasks * tasks) as f64 / start.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let total: usize = args.get(1).map_or(Ok(4000), |s| s.parse())?;
    let tasks: usize = args.get(2).map_or(Ok(64), |s| s.parse())?;
    let dir = match args.get(3) {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let config = QueueConfig {
        max_pending: u64::MAX,
        max_pending_per_function: u64::MAX,
        ..QueueConfig::default()
    };
    let q = Queue::open(&dir.path().join("single.redb"), config.clone())?;
    let single = run(&q, total / 8, 1).await?;
    println!(
        "1 task:      {single:>9.0} enqueues/s ({} enqueues)",
        total / 8
    );
    drop(q);
    let q = Queue::open(&dir.path().join("many.redb"), config)?;
    let many = run(&q, total, tasks).await?;
    println!("{tasks} tasks: {many:>9.0} enqueues/s ({total} enqueues)");
    Ok(())
}
