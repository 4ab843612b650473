//! The queue: group-committed enqueues, and the dispatcher's operations.

use crate::backoff::{Jitter, backoff};
use crate::tables::{DEAD, FINISHED, READY, RECORDS, RESULTS, Stored, Tables, decode};
use crate::{
    Accepted, AfterFailure, Claimed, Failure, NewInvocation, QueueConfig, QueueError, Record,
    Result, State,
};
use parking_lot::Mutex;
use redb::{Database, ReadableDatabase, ReadableTable};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::futures::Notified;
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::{info, trace, warn};

/// Enqueues written per transaction, at most.
const MAX_BATCH: usize = 1024;
/// Enqueues waiting for the writer before `enqueue` itself waits.
const CHANNEL_CAPACITY: usize = 4096;
/// Longest idempotency key, in bytes.
const MAX_KEY_LEN: usize = 256;

fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn now_ms() -> u64 {
    to_ms(SystemTime::now())
}

/// Orders ids made in the same millisecond by acceptance.
static SEQUENCE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn new_id(now_ms: u64) -> Result<String> {
    let r = getrandom::u64()
        .map_err(|e| QueueError::Storage(format!("no randomness for an invocation id: {e}")))?;
    let seq = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) & 0xff_ffff;
    Ok(format!("{now_ms:012x}{seq:06x}{:010x}", r >> 24))
}

/// Queued plus running invocations, per function and in total.
#[derive(Default)]
struct Counters {
    total: u64,
    per: HashMap<String, u64>,
}

/// Changes to [`Counters`] made by one write transaction, applied after it
/// commits.
#[derive(Default)]
struct Delta {
    total: i64,
    per: HashMap<String, i64>,
}

impl Delta {
    fn add(&mut self, function: &str, n: i64) {
        self.total += n;
        *self.per.entry(function.to_string()).or_insert(0) += n;
    }
}

/// What the writer thread commits, in batches: enqueues, and completions
/// of running invocations.
enum Request {
    Enqueue {
        inv: NewInvocation,
        reply: oneshot::Sender<Result<Accepted>>,
    },
    Complete {
        id: String,
        output: Vec<u8>,
        reply: oneshot::Sender<Result<()>>,
    },
}

impl Request {
    /// Answers the caller with a failure of the whole batch.
    fn fail(self, e: &QueueError) {
        // The caller may have gone away.
        match self {
            Request::Enqueue { reply, .. } => {
                let _ = reply.send(Err(e.clone()));
            }
            Request::Complete { reply, .. } => {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// The answer to one [`Request`] of a batch.
enum Answer {
    Enqueue(Result<Accepted>),
    Complete(Result<()>),
}

struct Inner {
    db: Database,
    config: QueueConfig,
    /// Serializes write transactions together with the counter updates that
    /// follow their commit, so limit checks see every committed change.
    write_lock: Mutex<()>,
    counters: Mutex<Counters>,
    jitter: Mutex<Jitter>,
    notify: Arc<Notify>,
}

impl Inner {
    /// Runs `f` in one write transaction and commits it (fsync), then applies
    /// its counter changes. An error from `f` aborts the transaction.
    fn write<T>(&self, f: impl FnOnce(&mut Tables<'_>, &mut Delta) -> Result<T>) -> Result<T> {
        let _serial = self.write_lock.lock();
        let tx = self.db.begin_write()?;
        let mut delta = Delta::default();
        let out = match Tables::open(&tx) {
            Ok(mut t) => f(&mut t, &mut delta),
            Err(e) => Err(e),
        };
        match out {
            Ok(v) => {
                tx.commit()?;
                self.apply(delta);
                Ok(v)
            }
            Err(e) => {
                if let Err(abort) = tx.abort() {
                    warn!(error = %abort, "queue: aborting a write transaction failed");
                }
                Err(e)
            }
        }
    }

    fn apply(&self, delta: Delta) {
        if delta.total == 0 && delta.per.values().all(|&n| n == 0) {
            return;
        }
        let mut c = self.counters.lock();
        c.total = c.total.saturating_add_signed(delta.total);
        for (f, n) in delta.per {
            let v = c.per.get(&f).copied().unwrap_or(0).saturating_add_signed(n);
            if v == 0 {
                c.per.remove(&f);
            } else {
                c.per.insert(f, v);
            }
        }
    }

    /// Whether one more invocation of `function` fits, counting the changes
    /// of the current transaction.
    fn room(&self, function: &str, delta: &Delta) -> Result<()> {
        let c = self.counters.lock();
        if c.total.saturating_add_signed(delta.total) >= self.config.max_pending {
            return Err(QueueError::Full {
                limit: self.config.max_pending,
                scope: "node".to_string(),
            });
        }
        let per = c.per.get(function).copied().unwrap_or(0);
        let d = delta.per.get(function).copied().unwrap_or(0);
        if per.saturating_add_signed(d) >= self.config.max_pending_per_function {
            return Err(QueueError::Full {
                limit: self.config.max_pending_per_function,
                scope: function.to_string(),
            });
        }
        Ok(())
    }

    /// Writes a batch of requests in one transaction. The outer error fails
    /// the whole batch; inner ones (limits, a record not running) only
    /// their request.
    fn commit_batch(&self, batch: &[Request]) -> Result<Vec<Answer>> {
        let now = now_ms();
        let out = self.write(|t, delta| {
            batch
                .iter()
                .map(|req| match req {
                    Request::Enqueue { inv, .. } => {
                        self.accept_one(t, delta, inv, now).map(Answer::Enqueue)
                    }
                    Request::Complete { id, output, .. } => {
                        complete_one(t, delta, id, output, now).map(Answer::Complete)
                    }
                })
                .collect::<Result<Vec<_>>>()
        })?;
        if out
            .iter()
            .any(|r| matches!(r, Answer::Enqueue(Ok(a)) if !a.duplicate))
        {
            self.notify.notify_one();
        }
        Ok(out)
    }

    fn accept_one(
        &self,
        t: &mut Tables<'_>,
        delta: &mut Delta,
        inv: &NewInvocation,
        now: u64,
    ) -> Result<Result<Accepted>> {
        let function = inv.function.as_str();
        if let Some(key) = &inv.idempotency_key
            && let Some(id) = t.idempotency.get((function, key.as_str()))?
        {
            return Ok(Ok(Accepted {
                id: id.value().to_string(),
                duplicate: true,
            }));
        }
        if let Err(e) = self.room(function, delta) {
            return Ok(Err(e));
        }
        let id = loop {
            let id = new_id(now)?;
            if t.records.get(id.as_str())?.is_none() {
                break id;
            }
        };
        let mut rec = Stored {
            id: id.clone(),
            function: inv.function.clone(),
            state: State::Queued,
            trigger: inv.trigger.clone(),
            meta: inv.meta.clone(),
            idempotency_key: inv.idempotency_key.clone(),
            attempts: 0,
            max_attempts: inv.retry.max_attempts,
            initial_backoff_ms: millis(inv.retry.initial_backoff),
            max_backoff_ms: millis(inv.retry.max_backoff),
            created_at_ms: now,
            updated_at_ms: now,
            due_ms: None,
            last_error: None,
            payload_size: inv.payload.len() as u64,
        };
        t.payloads.insert(id.as_str(), inv.payload.as_slice())?;
        if let Some(key) = &inv.idempotency_key {
            t.idempotency
                .insert((function, key.as_str()), id.as_str())?;
        }
        let due = inv.not_before.map_or(now, to_ms).max(now);
        t.queue(&mut rec, due, now)?;
        delta.add(function, 1);
        Ok(Ok(Accepted {
            id,
            duplicate: false,
        }))
    }

    /// The earliest due time of each function with queued records.
    fn heads(&self) -> Result<Vec<(String, u64)>> {
        let tx = self.db.begin_read()?;
        let ready = tx.open_table(READY)?;
        let mut out = Vec::new();
        let mut from = String::new();
        loop {
            let head = match ready.range((from.as_str(), 0u64, "")..)?.next() {
                Some(item) => {
                    let (k, _) = item?;
                    let (f, due, _) = k.value();
                    (f.to_string(), due)
                }
                None => break,
            };
            // The smallest name after every key of this function.
            from = format!("{}\0", head.0);
            out.push(head);
        }
        Ok(out)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The writer thread: group commit of enqueues and completions.
fn run_writer(inner: Arc<Inner>, mut rx: mpsc::Receiver<Request>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(req) => batch.push(req),
                Err(_) => break,
            }
        }
        trace!(size = batch.len(), "queue: group commit");
        match inner.commit_batch(&batch) {
            Ok(answers) => {
                for (req, answer) in batch.drain(..).zip(answers) {
                    // The caller may have gone away; what was committed stays.
                    match (req, answer) {
                        (Request::Enqueue { reply, .. }, Answer::Enqueue(a)) => {
                            let _ = reply.send(a);
                        }
                        (Request::Complete { reply, .. }, Answer::Complete(a)) => {
                            let _ = reply.send(a);
                        }
                        (req, _) => req.fail(&QueueError::Storage(
                            "queue writer: answers out of order".to_string(),
                        )),
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, size = batch.len(), "queue: batch failed");
                for req in batch.drain(..) {
                    req.fail(&e);
                }
            }
        }
    }
}

/// Marks a running invocation succeeded, within a write transaction. A
/// record that is not running is the request's own error, not the batch's.
fn complete_one(
    t: &mut Tables<'_>,
    delta: &mut Delta,
    id: &str,
    output: &[u8],
    now: u64,
) -> Result<Result<()>> {
    let mut rec = match t.load(id) {
        Ok(r) => r,
        Err(e @ QueueError::NotFound(_)) => return Ok(Err(e)),
        Err(e) => return Err(e),
    };
    if rec.state != State::Running {
        return Ok(Err(QueueError::NotRunning(id.to_string())));
    }
    t.running.remove(id)?;
    t.payloads.remove(id)?;
    t.results.insert(id, output)?;
    t.finished.insert((now, id), ())?;
    rec.state = State::Succeeded;
    rec.due_ms = None;
    rec.updated_at_ms = now;
    t.save(&rec)?;
    delta.add(&rec.function, -1);
    Ok(Ok(()))
}

fn stopped() -> QueueError {
    QueueError::Storage("the queue writer has stopped".to_string())
}

/// The node's durable invocation queue. See the [crate docs](crate).
///
/// Dropping the last handle stops the writer thread and closes the file.
pub struct Queue {
    inner: Arc<Inner>,
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
}

impl Queue {
    /// Opens (or creates) the queue file, with jitter from the OS entropy.
    ///
    /// Recovery: every record found running (the process died during its
    /// run) is queued again, due now, its attempt still counted, and logged.
    pub fn open(path: &Path, config: QueueConfig) -> Result<Arc<Queue>> {
        Queue::open_with(path, config, Jitter::from_entropy())
    }

    /// [`Queue::open`] with a given jitter source, e.g. [`Jitter::seeded`].
    pub fn open_with(path: &Path, config: QueueConfig, jitter: Jitter) -> Result<Arc<Queue>> {
        let db = Database::create(path)?;
        let inner = Arc::new(Inner {
            db,
            config,
            write_lock: Mutex::new(()),
            counters: Mutex::new(Counters::default()),
            jitter: Mutex::new(jitter),
            notify: Arc::new(Notify::new()),
        });
        let now = now_ms();
        let recovered = inner.write(|t, _| {
            let mut running = Vec::new();
            for item in t.running.iter()? {
                let (id, _) = item?;
                running.push(id.value().to_string());
            }
            for id in &running {
                t.running.remove(id.as_str())?;
                let Some(mut rec) = t.try_load(id)? else {
                    warn!(id, "queue: running entry without a record; dropped");
                    continue;
                };
                warn!(
                    id,
                    function = rec.function,
                    attempts = rec.attempts,
                    "queue: invocation was running when the node stopped; queued again"
                );
                t.queue(&mut rec, now, now)?;
            }
            Ok(running.len())
        })?;
        let mut counters = Counters::default();
        {
            let tx = inner.db.begin_read()?;
            let ready = tx.open_table(READY)?;
            for item in ready.iter()? {
                let (k, _) = item?;
                let (f, _, _) = k.value();
                counters.total += 1;
                match counters.per.get_mut(f) {
                    Some(n) => *n += 1,
                    None => {
                        counters.per.insert(f.to_string(), 1);
                    }
                }
            }
        }
        let total = counters.total;
        *inner.counters.lock() = counters;
        if recovered > 0 || total > 0 {
            info!(queued = total, recovered, "queue: opened");
            inner.notify.notify_one();
        }
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let for_writer = Arc::clone(&inner);
        let writer = std::thread::Builder::new()
            .name("weft-queue-writer".to_string())
            .spawn(move || run_writer(for_writer, rx))
            .map_err(|e| QueueError::Storage(format!("cannot start the queue writer: {e}")))?;
        Ok(Arc::new(Queue {
            inner,
            requests: Some(tx),
            writer: Some(writer),
        }))
    }

    /// The configuration.
    pub fn config(&self) -> &QueueConfig {
        &self.inner.config
    }

    /// Accepts an invocation. Once this returns `Ok`, the invocation is on
    /// disk. A duplicate idempotency key returns the earlier record's id with
    /// `duplicate: true` (even when the queue is full). Enqueues from
    /// concurrent callers share one commit.
    ///
    /// If the future is dropped after the request reached the writer, the
    /// invocation may still be accepted.
    pub async fn enqueue(&self, inv: NewInvocation) -> Result<Accepted> {
        if let Some(key) = &inv.idempotency_key
            && (key.is_empty() || key.len() > MAX_KEY_LEN)
        {
            return Err(QueueError::InvalidKey(format!(
                "key for `{}` is {} bytes; 1 to {MAX_KEY_LEN} allowed",
                inv.function,
                key.len()
            )));
        }
        if inv.retry.max_attempts == 0 {
            return Err(QueueError::InvalidRetry(inv.function));
        }
        let requests = self.requests.as_ref().ok_or_else(stopped)?;
        let (reply, answer) = oneshot::channel();
        requests
            .send(Request::Enqueue { inv, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Claims up to `max` records of `function` due at `now`, earliest due
    /// first: each is marked running (durably) and its attempt counted.
    pub fn claim(&self, function: &str, max: usize, now: SystemTime) -> Result<Vec<Claimed>> {
        let now = to_ms(now);
        let end = (function, now.saturating_add(1), "");
        {
            // Nothing due: no write transaction (and no fsync).
            let tx = self.inner.db.begin_read()?;
            let ready = tx.open_table(READY)?;
            if max == 0 || ready.range((function, 0u64, "")..end)?.next().is_none() {
                return Ok(Vec::new());
            }
        }
        self.inner.write(|t, _| {
            let mut due = Vec::new();
            for item in t.ready.range((function, 0u64, "")..end)?.take(max) {
                let (k, _) = item?;
                let (_, at, id) = k.value();
                due.push((at, id.to_string()));
            }
            let mut out = Vec::with_capacity(due.len());
            for (at, id) in due {
                t.ready.remove((function, at, id.as_str()))?;
                let mut rec = t.load(&id)?;
                rec.state = State::Running;
                rec.attempts = rec.attempts.saturating_add(1);
                rec.due_ms = None;
                rec.updated_at_ms = now;
                t.running.insert(id.as_str(), function)?;
                t.save(&rec)?;
                let payload = match t.payloads.get(id.as_str())? {
                    Some(p) => p.value().to_vec(),
                    None => {
                        warn!(id, "queue: claimed invocation has no payload");
                        Vec::new()
                    }
                };
                out.push(Claimed {
                    id,
                    function: rec.function,
                    payload,
                    attempt: rec.attempts,
                    trigger: rec.trigger,
                    meta: rec.meta,
                });
            }
            Ok(out)
        })
    }

    /// Functions with at least one record due at `now`, by name, each with
    /// when its earliest due record became due.
    pub fn due_functions(&self, now: SystemTime) -> Result<Vec<(String, SystemTime)>> {
        let now = to_ms(now);
        Ok(self
            .inner
            .heads()?
            .into_iter()
            .filter(|(_, due)| *due <= now)
            .map(|(f, due)| (f, from_ms(due)))
            .collect())
    }

    /// The earliest due time among queued records (possibly in the past).
    pub fn next_due(&self) -> Result<Option<SystemTime>> {
        Ok(self
            .inner
            .heads()?
            .into_iter()
            .map(|(_, due)| due)
            .min()
            .map(from_ms))
    }

    /// Records the success of a running invocation: its output is kept until
    /// the result TTL, its payload deleted. Its own write transaction; see
    /// [`Queue::complete_grouped`] for the dispatcher's path.
    pub fn complete(&self, id: &str, output: Vec<u8>) -> Result<()> {
        let now = now_ms();
        self.inner
            .write(|t, delta| complete_one(t, delta, id, &output, now))?
    }

    /// [`Queue::complete`] through the writer thread: completions from
    /// concurrent callers share one commit (and one fsync) with each other
    /// and with enqueues.
    pub async fn complete_grouped(&self, id: &str, output: Vec<u8>) -> Result<()> {
        let requests = self.requests.as_ref().ok_or_else(stopped)?;
        let (reply, answer) = oneshot::channel();
        requests
            .send(Request::Complete {
                id: id.to_string(),
                output,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Records the failure of a running invocation: if `retryable` and
    /// attempts remain, it is queued again after a backoff; otherwise it goes
    /// to the dead-letter list.
    pub fn fail(&self, id: &str, failure: Failure, retryable: bool) -> Result<AfterFailure> {
        self.fail_at(id, failure, retryable, SystemTime::now())
    }

    /// [`Queue::fail`] at a given time.
    pub fn fail_at(
        &self,
        id: &str,
        failure: Failure,
        retryable: bool,
        now: SystemTime,
    ) -> Result<AfterFailure> {
        let now = to_ms(now);
        let after = self.inner.write(|t, delta| {
            let mut rec = t.load(id)?;
            if rec.state != State::Running {
                return Err(QueueError::NotRunning(id.to_string()));
            }
            t.running.remove(id)?;
            if retryable && rec.attempts < rec.max_attempts {
                let random = self.inner.jitter.lock().next_u64();
                let delay = backoff(&rec.policy(), rec.attempts, random);
                let due = now.saturating_add(millis(delay));
                rec.last_error = Some(failure);
                t.queue(&mut rec, due, now)?;
                Ok(AfterFailure::Retry { at: from_ms(due) })
            } else {
                t.bury(&mut rec, failure, now)?;
                delta.add(&rec.function, -1);
                Ok(AfterFailure::Dead)
            }
        })?;
        if matches!(after, AfterFailure::Retry { .. }) {
            self.inner.notify.notify_one();
        }
        Ok(after)
    }

    /// Puts a running invocation back in the queue, due at `at`, without
    /// counting the attempt: it did not run (its node was unreachable, say),
    /// so no retry is spent and it never dead-letters for that.
    pub fn defer(&self, id: &str, why: Failure, at: SystemTime) -> Result<()> {
        let now = to_ms(SystemTime::now());
        let due = to_ms(at);
        self.inner.write(|t, _| {
            let mut rec = t.load(id)?;
            if rec.state != State::Running {
                return Err(QueueError::NotRunning(id.to_string()));
            }
            t.running.remove(id)?;
            rec.attempts = rec.attempts.saturating_sub(1);
            rec.last_error = Some(why);
            t.queue(&mut rec, due, now)?;
            Ok(())
        })?;
        self.inner.notify.notify_one();
        Ok(())
    }

    /// One invocation, with its result if it succeeded.
    pub fn get(&self, id: &str) -> Result<Option<Record>> {
        let tx = self.inner.db.begin_read()?;
        let records = tx.open_table(RECORDS)?;
        let Some(rec) = records
            .get(id)?
            .map(|v| decode(id, v.value()))
            .transpose()?
        else {
            return Ok(None);
        };
        let result = if rec.state == State::Succeeded {
            let results = tx.open_table(RESULTS)?;
            results.get(id)?.map(|v| v.value().to_vec())
        } else {
            None
        };
        Ok(Some(rec.into_record(result)))
    }

    /// Up to `limit` dead invocations, of one function or all, ordered by
    /// function then id (acceptance time).
    pub fn dead(&self, function: Option<&str>, limit: usize) -> Result<Vec<Record>> {
        let tx = self.inner.db.begin_read()?;
        let dead = tx.open_table(DEAD)?;
        let records = tx.open_table(RECORDS)?;
        let entries = match function {
            Some(f) => dead.range((f, "")..)?,
            None => dead.iter()?,
        };
        let mut out = Vec::new();
        for item in entries {
            if out.len() >= limit {
                break;
            }
            let (k, _) = item?;
            let (f, id) = k.value();
            if function.is_some_and(|want| want != f) {
                break;
            }
            if let Some(v) = records.get(id)? {
                out.push(decode(id, v.value())?.into_record(None));
            }
        }
        Ok(out)
    }

    /// Queues a dead invocation again, due now, with its attempts reset.
    /// Subject to the pending limits.
    pub fn retry_dead(&self, id: &str) -> Result<()> {
        self.retry_dead_with(id, |_| {})
    }

    /// The same, with its metadata rewritten by `rearm` first (what is
    /// relative to its arrival starts afresh).
    pub fn retry_dead_with(
        &self,
        id: &str,
        rearm: impl FnOnce(&mut BTreeMap<String, String>),
    ) -> Result<()> {
        let now = now_ms();
        self.inner.write(|t, delta| {
            let mut rec = t.load(id)?;
            if rec.state != State::Dead {
                return Err(QueueError::NotDead(id.to_string()));
            }
            self.inner.room(&rec.function, delta)?;
            t.dead.remove((rec.function.as_str(), id))?;
            rearm(&mut rec.meta);
            rec.attempts = 0;
            t.queue(&mut rec, now, now)?;
            delta.add(&rec.function, 1);
            Ok(())
        })?;
        self.inner.notify.notify_one();
        Ok(())
    }

    /// Deletes a dead invocation with its payload (and frees its
    /// idempotency key).
    pub fn drop_dead(&self, id: &str) -> Result<()> {
        self.inner.write(|t, _| {
            let rec = t.load(id)?;
            if rec.state != State::Dead {
                return Err(QueueError::NotDead(id.to_string()));
            }
            t.dead.remove((rec.function.as_str(), id))?;
            t.delete(&rec)
        })
    }

    /// Queued plus running invocations of `function`, from memory.
    pub fn pending(&self, function: &str) -> u64 {
        self.inner
            .counters
            .lock()
            .per
            .get(function)
            .copied()
            .unwrap_or(0)
    }

    /// Queued plus running invocations on the node, from memory.
    pub fn pending_total(&self) -> u64 {
        self.inner.counters.lock().total
    }

    /// For a deleted function: moves its queued invocations to the
    /// dead-letter list with failure code `function_removed`, and returns how
    /// many. Running ones are left to finish; report their failures as not
    /// retryable, or they are queued again.
    pub fn remove_function(&self, function: &str) -> Result<u64> {
        let now = now_ms();
        let removed = self.inner.write(|t, delta| {
            let mut queued = Vec::new();
            for item in t.ready.range((function, 0u64, "")..)? {
                let (k, _) = item?;
                let (f, at, id) = k.value();
                if f != function {
                    break;
                }
                queued.push((at, id.to_string()));
            }
            for (at, id) in &queued {
                t.ready.remove((function, *at, id.as_str()))?;
                let mut rec = t.load(id)?;
                let failure = Failure {
                    code: "function_removed".to_string(),
                    message: format!("function `{function}` was removed before the invocation ran"),
                };
                t.bury(&mut rec, failure, now)?;
                delta.add(function, -1);
            }
            Ok(queued.len() as u64)
        })?;
        if removed > 0 {
            info!(
                function,
                removed, "queue: queued invocations of a removed function are dead"
            );
        }
        Ok(removed)
    }

    /// Deletes succeeded records (with results and idempotency entries)
    /// finished more than the result TTL before `now`; returns how many.
    pub fn collect_garbage(&self, now: SystemTime) -> Result<u64> {
        let cutoff = to_ms(now).saturating_sub(millis(self.inner.config.result_ttl));
        {
            let tx = self.inner.db.begin_read()?;
            let finished = tx.open_table(FINISHED)?;
            match finished.first()? {
                Some((k, _)) if k.value().0 < cutoff => {}
                _ => return Ok(0),
            }
        }
        let removed = self.inner.write(|t, _| {
            let mut old = Vec::new();
            for item in t.finished.range(..(cutoff, ""))? {
                let (k, _) = item?;
                let (at, id) = k.value();
                old.push((at, id.to_string()));
            }
            for (at, id) in &old {
                t.finished.remove((*at, id.as_str()))?;
                if let Some(rec) = t.try_load(id)? {
                    t.delete(&rec)?;
                }
            }
            Ok(old.len() as u64)
        })?;
        trace!(removed, "queue: garbage collected");
        Ok(removed)
    }

    /// Resolves when a record may have become due (enqueue, retry, recovery,
    /// retry of a dead one); a wake-up given while nobody waits is kept for
    /// the next call. Re-check [`Queue::due_functions`] and
    /// [`Queue::next_due`] after it.
    pub fn notified(&self) -> Notified<'_> {
        self.inner.notify.notified()
    }

    /// The [`Notify`] behind [`Queue::notified`], for a task that outlives a
    /// borrow of the queue.
    pub fn notifier(&self) -> Arc<Notify> {
        Arc::clone(&self.inner.notify)
    }
}

#[cfg(test)]
impl Queue {
    pub(crate) fn inner_db(&self) -> &Database {
        &self.inner.db
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // Closing the channel ends the writer once it has answered every
        // request; joining it closes the file before a reopen.
        self.requests.take();
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            warn!("queue: the writer thread panicked");
        }
    }
}
