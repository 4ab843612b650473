//! The node's workers: at most a fixed number of guests execute at once
//! (by default one per core); every other live sandbox waits its turn, in
//! the order the node's [`Scheduler`] names.
//!
//! Under earliest deadline first a waiting invocation whose deadline is
//! earlier than the latest one running takes that guest's worker at its
//! next epoch check: the arrival bumps the engine's epoch so that the check
//! comes at once, not at the next tick. A guest whose host call waits (a
//! store, an outgoing request, a callee) gives its worker back for as long
//! as it waits; woken, it runs on to its next check and takes a worker
//! there, or waits for one in its fiber, with its own deadline.
//!
//! Under earliest deadline first a guest also starts without a worker and
//! competes for one from its first check: most invocations end before it.
//! Under FIFO it waits its turn from the start.
//!
//! Every invocation's place is its absolute deadline (its timeout when it
//! declares none), which is never later than its arrival plus its timeout:
//! work that arrives after an invocation's deadline always comes after it,
//! so nothing waits for more than the work queued ahead of it by then, and
//! that work ends by its own timeouts. That bounds starvation.

use parking_lot::Mutex;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use wasmtime::{Engine, UpdateDeadline};
use weft_manifest::Scheduler;

/// The workers as `/metrics` and `weft status` show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStats {
    /// The order they serve in.
    pub scheduler: Scheduler,
    /// How many guests execute at once.
    pub workers: usize,
    /// Guests holding a worker now.
    pub running: usize,
    /// Guests waiting for one now.
    pub waiting: usize,
    /// Running guests that gave their worker to more urgent work, since
    /// the node started.
    pub preemptions: u64,
}

/// Where a guest stands in line: the instant that orders it (nanoseconds
/// since the workers started), then its arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    at: u64,
    seq: u64,
}

/// One waiting guest; woken by sending on `tx`.
struct Entry {
    key: Key,
    tx: oneshot::Sender<()>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

struct State {
    free: usize,
    /// Waiting guests, earliest key on top.
    ready: BinaryHeap<Reverse<Entry>>,
    /// Keys of the guests holding a worker (at most `count`).
    running: Vec<Key>,
}

impl State {
    /// Drops waiters that went away (their request was cancelled).
    fn prune(&mut self, waiting: &AtomicUsize) {
        while self.ready.peek().is_some_and(|e| e.0.tx.is_closed()) {
            self.ready.pop();
            waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Gives a free worker to the most urgent waiter, if any.
    fn grant_next(&mut self, waiting: &AtomicUsize) {
        while let Some(Reverse(e)) = self.ready.pop() {
            waiting.fetch_sub(1, Ordering::Relaxed);
            if e.tx.send(()).is_ok() {
                self.running.push(e.key);
                return;
            }
        }
        self.free += 1;
    }

    fn remove_running(&mut self, key: Key) {
        if let Some(i) = self.running.iter().position(|k| *k == key) {
            self.running.swap_remove(i);
        }
    }

    fn latest_running(&self) -> Option<Key> {
        self.running.iter().max().copied()
    }
}

/// The node's workers. See the module docs.
pub(crate) struct Workers {
    scheduler: Scheduler,
    count: usize,
    base: Instant,
    engine: Engine,
    seq: AtomicU64,
    /// Waiters, read without the lock at every epoch check.
    waiting: AtomicUsize,
    preemptions: AtomicU64,
    state: Mutex<State>,
}

/// One invocation's place with the workers, shared by its [`Scheduled`]
/// future and its epoch callback.
pub(crate) struct Turn {
    key: Key,
    /// Whether it holds a worker now.
    holding: AtomicBool,
    /// Whether its last poll ended at an epoch check that kept the worker.
    ticked: AtomicBool,
    /// Time spent waiting for a worker, ns.
    waited: AtomicU64,
    workers: Arc<Workers>,
}

impl Drop for Turn {
    /// A sandbox dropped while it held a worker (a command whose
    /// instantiation took one and that never ran) gives it back.
    fn drop(&mut self) {
        if *self.holding.get_mut() {
            self.workers.release(self);
        }
    }
}

impl Turn {
    /// Time it spent waiting for a worker, so far.
    pub(crate) fn waited(&self) -> Duration {
        Duration::from_nanos(self.waited.load(Ordering::Relaxed))
    }
}

impl Workers {
    pub(crate) fn new(engine: &Engine, scheduler: Scheduler, count: usize) -> Self {
        Workers {
            scheduler,
            count,
            base: Instant::now(),
            engine: engine.clone(),
            seq: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            preemptions: AtomicU64::new(0),
            state: Mutex::new(State {
                free: count,
                ready: BinaryHeap::new(),
                running: Vec::with_capacity(count),
            }),
        }
    }

    pub(crate) fn stats(&self) -> WorkerStats {
        let running = self.state.lock().running.len();
        WorkerStats {
            scheduler: self.scheduler,
            workers: self.count,
            running,
            waiting: self.waiting.load(Ordering::Relaxed),
            preemptions: self.preemptions.load(Ordering::Relaxed),
        }
    }

    /// The place of an invocation that arrived at `arrived` and should end
    /// by `due`.
    pub(crate) fn turn(self: &Arc<Self>, due: Instant, arrived: Instant) -> Arc<Turn> {
        let at = match self.scheduler {
            Scheduler::Edf => due,
            Scheduler::Fifo => arrived,
        };
        let at =
            u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        Arc::new(Turn {
            key: Key {
                at,
                seq: self.seq.fetch_add(1, Ordering::Relaxed),
            },
            holding: AtomicBool::new(false),
            ticked: AtomicBool::new(false),
            waited: AtomicU64::new(0),
            workers: self.clone(),
        })
    }

    /// A worker now, or where one will be sent.
    fn take(&self, turn: &Turn) -> Result<(), oneshot::Receiver<()>> {
        let mut s = self.state.lock();
        if s.free > 0 {
            s.free -= 1;
            s.running.push(turn.key);
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        s.ready.push(Reverse(Entry { key: turn.key, tx }));
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let urgent = self.scheduler == Scheduler::Edf
            && s.latest_running().is_some_and(|latest| turn.key < latest);
        drop(s);
        if urgent {
            // The running guests check at once, not at the next tick.
            self.engine.increment_epoch();
        }
        Err(rx)
    }

    /// Gives back `turn`'s worker.
    fn release(&self, turn: &Turn) {
        let mut s = self.state.lock();
        s.remove_running(turn.key);
        s.grant_next(&self.waiting);
    }

    /// Whether `turn`, running, should give its worker to a more urgent
    /// waiter: it is the latest deadline running and a waiter's is earlier.
    fn should_yield(&self, turn: &Turn) -> bool {
        if self.scheduler == Scheduler::Fifo || self.waiting.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let mut s = self.state.lock();
        s.prune(&self.waiting);
        let Some(top) = s.ready.peek().map(|e| e.0.key) else {
            return false;
        };
        top < turn.key && s.latest_running() == Some(turn.key)
    }

    /// Hands `turn`'s worker to the most urgent waiter and queues `turn`
    /// again.
    fn preempt(&self, turn: &Turn) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut s = self.state.lock();
        s.remove_running(turn.key);
        s.ready.push(Reverse(Entry { key: turn.key, tx }));
        self.waiting.fetch_add(1, Ordering::Relaxed);
        s.grant_next(&self.waiting);
        drop(s);
        self.preemptions.fetch_add(1, Ordering::Relaxed);
        rx
    }
}

impl Turn {
    /// The epoch callback, at a check that is not the sandbox's deadline.
    /// A guest holding a worker yields to the executor (so that the
    /// thread's other tasks run), and gives the worker up to more urgent
    /// work. One without a worker (woken from a host call, it ran on until
    /// this check) takes one, or waits for one here, in its fiber.
    pub(crate) fn at_check(self: &Arc<Self>, workers: &Arc<Workers>) -> UpdateDeadline {
        if self.holding.load(Ordering::Relaxed) {
            if !workers.should_yield(self) {
                self.ticked.store(true, Ordering::Relaxed);
                return tick();
            }
            self.holding.store(false, Ordering::Relaxed);
            let rx = workers.preempt(self);
            return UpdateDeadline::YieldCustom(1, Box::pin(self.acquire(workers, rx)));
        }
        match workers.take(self) {
            Ok(()) => {
                self.holding.store(true, Ordering::Relaxed);
                self.ticked.store(true, Ordering::Relaxed);
                tick()
            }
            Err(rx) => UpdateDeadline::YieldCustom(1, Box::pin(self.acquire(workers, rx))),
        }
    }

    /// Waits for the worker `rx` brings.
    fn acquire(
        self: &Arc<Self>,
        workers: &Arc<Workers>,
        rx: oneshot::Receiver<()>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let mut wait = Waiting {
            rx: Some(rx),
            since: Instant::now(),
            workers: workers.clone(),
            turn: self.clone(),
        };
        async move { wait.granted().await }
    }
}

/// A yield to the executor at a tick, keeping the worker. Through tokio's
/// `yield_now`, which lets the thread poll for I/O before the guest goes
/// on: with wasmtime's plain `Yield` a thread busy with guests looked for
/// I/O only every 61 polls (tokio's `event_interval`), a tick each, so a
/// request arriving at a busy node waited some 30 ms to be read.
fn tick() -> UpdateDeadline {
    UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
}

/// A wait for a worker. Dropped before it ends (its invocation was
/// cancelled), it gives back a worker granted meanwhile.
struct Waiting {
    rx: Option<oneshot::Receiver<()>>,
    since: Instant,
    workers: Arc<Workers>,
    turn: Arc<Turn>,
}

impl Waiting {
    async fn granted(&mut self) {
        if let Some(rx) = self.rx.as_mut() {
            // An error: the workers are gone (the node is shutting down).
            let _ = rx.await;
        }
        self.rx = None;
        self.turn.holding.store(true, Ordering::Relaxed);
        let waited = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.turn.waited.fetch_add(waited, Ordering::Relaxed);
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.workers.release(&self.turn);
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A guest's execution with the workers: under FIFO it starts once it
    /// holds one, under EDF at once. It gives its worker back whenever it
    /// waits in a host call; its epoch callback ([`Turn::at_check`]) takes
    /// one again, and preempts.
    pub(crate) struct Scheduled<F> {
        #[pin]
        fut: F,
        turn: Arc<Turn>,
        start: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
        workers: Arc<Workers>,
    }

    impl<F> PinnedDrop for Scheduled<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // A wait for the first worker gives back what it was granted.
            drop(this.start.take());
            if this.turn.holding.swap(false, Ordering::Relaxed) {
                this.workers.release(this.turn);
            }
        }
    }
}

impl<F> Scheduled<F> {
    pub(crate) fn new(fut: F, workers: Arc<Workers>, turn: Arc<Turn>) -> Self {
        // Under EDF a guest starts without a worker and competes for one
        // from its first check on: most invocations end before it, and
        // would pay a hand-off between threads each for nothing. Under FIFO
        // it waits its turn from the start. (A command's instantiation,
        // before this, may have met a check and taken its worker already.)
        let start: Option<Pin<Box<dyn Future<Output = ()> + Send>>> =
            if workers.scheduler == Scheduler::Edf || turn.holding.load(Ordering::Relaxed) {
                None
            } else {
                match workers.take(&turn) {
                    Ok(()) => {
                        turn.holding.store(true, Ordering::Relaxed);
                        None
                    }
                    Err(rx) => Some(Box::pin(turn.acquire(&workers, rx))),
                }
            };
        Scheduled {
            fut,
            turn,
            start,
            workers,
        }
    }
}

impl<F: Future> Future for Scheduled<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if let Some(start) = this.start.as_mut() {
            if start.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            *this.start = None;
        }
        this.turn.ticked.store(false, Ordering::Relaxed);
        let out = this.fut.poll(cx);
        let ticked = this.turn.ticked.swap(false, Ordering::Relaxed);
        // Ended, or waiting in a host call (not at a check): the worker is
        // free meanwhile. A guest woken from the call runs on without one
        // until its next check, where it takes one again.
        if (out.is_ready() || !ticked) && this.turn.holding.swap(false, Ordering::Relaxed) {
            this.workers.release(this.turn);
        }
        out
    }
}
