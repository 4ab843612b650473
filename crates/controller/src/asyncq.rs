//! The durable queue of asynchronous invocations, as the node uses it:
//! every operation off the async threads, acceptance counted in metrics.
//! What runs queued work, and where, is the router's dispatcher.

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::Notify;
use weft_queue::{Accepted, AfterFailure, Claimed, Failure, NewInvocation, Queue, Record};

/// The queue, and the node's counters of it.
pub(crate) struct AsyncQueue {
    queue: Arc<Queue>,
    metrics: Arc<Metrics>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, weft_queue::QueueError> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("queue task: {e}")))?
        .map_err(Error::from)
}

impl AsyncQueue {
    pub(crate) fn new(queue: Arc<Queue>, metrics: Arc<Metrics>) -> Self {
        AsyncQueue { queue, metrics }
    }

    /// Queues an invocation; returns once it is durable (or, with an
    /// idempotency key seen before, the first invocation's id).
    pub(crate) async fn enqueue(&self, new: NewInvocation) -> Result<Accepted> {
        let accepted = self.queue.enqueue(new).await;
        match &accepted {
            Ok(a) if !a.duplicate => {
                self.metrics.async_accepted.inc();
            }
            Ok(_) => {}
            Err(_) => {
                self.metrics.async_refused.inc();
            }
        }
        Ok(accepted?)
    }

    /// Functions with work due now.
    pub(crate) async fn due_functions(&self) -> Result<Vec<(String, SystemTime)>> {
        let q = self.queue.clone();
        blocking(move || q.due_functions(SystemTime::now())).await
    }

    /// Claims up to `max` due invocations of `function`.
    pub(crate) async fn claim(&self, function: &str, max: usize) -> Result<Vec<Claimed>> {
        let (q, f) = (self.queue.clone(), function.to_string());
        blocking(move || q.claim(&f, max, SystemTime::now())).await
    }

    /// When the next queued invocation is due, if any.
    pub(crate) async fn next_due(&self) -> Result<Option<SystemTime>> {
        let q = self.queue.clone();
        blocking(move || q.next_due()).await
    }

    /// Records a success (group-committed with other writes).
    pub(crate) async fn complete(&self, id: &str, result: Vec<u8>) -> Result<()> {
        Ok(self.queue.complete_grouped(id, result).await?)
    }

    /// Records a failed attempt: retried later, or dead-lettered.
    pub(crate) async fn fail(
        &self,
        id: &str,
        failure: Failure,
        retryable: bool,
    ) -> Result<AfterFailure> {
        let (q, id) = (self.queue.clone(), id.to_string());
        let after = blocking(move || q.fail(&id, failure, retryable)).await?;
        if after == AfterFailure::Dead {
            self.metrics.async_dead.inc();
        }
        Ok(after)
    }

    /// Puts a claimed invocation back, due at `at`, without spending its
    /// attempt: it did not run.
    pub(crate) async fn defer(&self, id: &str, why: Failure, at: SystemTime) -> Result<()> {
        let (q, id) = (self.queue.clone(), id.to_string());
        blocking(move || q.defer(&id, why, at)).await
    }

    /// Dead-letters every queued invocation of a removed function.
    pub(crate) async fn remove_function(&self, function: &str) -> Result<u64> {
        let (q, f) = (self.queue.clone(), function.to_string());
        blocking(move || q.remove_function(&f)).await
    }

    /// Dead-letters every queued invocation of a removed function, here.
    pub(crate) fn remove_function_now(&self, function: &str) -> Result<u64> {
        Ok(self.queue.remove_function(function)?)
    }

    /// One invocation's record.
    pub(crate) async fn get(&self, id: &str) -> Result<Record> {
        let (q, key) = (self.queue.clone(), id.to_string());
        blocking(move || q.get(&key))
            .await?
            .ok_or_else(|| Error::Queue(weft_queue::QueueError::NotFound(id.to_string())))
    }

    /// The dead-letter list, oldest first, of one function or all.
    pub(crate) async fn dead(&self, function: Option<String>, limit: usize) -> Result<Vec<Record>> {
        let q = self.queue.clone();
        blocking(move || q.dead(function.as_deref(), limit)).await
    }

    /// Queues a dead-lettered invocation again, with its attempts reset
    /// and its metadata rewritten by `rearm`.
    pub(crate) async fn retry_dead(
        &self,
        id: &str,
        rearm: impl FnOnce(&mut BTreeMap<String, String>) + Send + 'static,
    ) -> Result<()> {
        let (q, key) = (self.queue.clone(), id.to_string());
        blocking(move || q.retry_dead_with(&key, rearm)).await
    }

    /// Deletes a dead-lettered invocation.
    pub(crate) async fn drop_dead(&self, id: &str) -> Result<()> {
        let (q, key) = (self.queue.clone(), id.to_string());
        blocking(move || q.drop_dead(&key)).await
    }

    /// Drops finished records past their TTL; returns how many.
    pub(crate) async fn collect_garbage(&self) -> Result<u64> {
        let q = self.queue.clone();
        blocking(move || q.collect_garbage(SystemTime::now())).await
    }

    /// Queued and running invocations of the node.
    pub(crate) fn pending(&self) -> u64 {
        self.queue.pending_total()
    }

    /// Woken by every enqueue.
    pub(crate) fn notifier(&self) -> Arc<Notify> {
        self.queue.notifier()
    }
}
