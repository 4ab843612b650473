//! Admission: the one place an invocation gets the right to run here.
//!
//! Two kinds of slot bound what runs: each function's `max_concurrency`
//! (with a bounded wait queue of `max_queue`), and the node's
//! `max_instances` sandboxes. A synchronous invocation takes a
//! [`FunctionSlot`] (waiting its turn), reads its body, then takes a node
//! slot: a [`Reservation`], or `node_at_capacity`. Queued work takes both
//! at once or not at all ([`Admission::try_reserve`]) *before* it is claimed
//! from the queue, so a busy node keeps its queued work queued and never
//! spends an attempt on capacity.
//!
//! Before either, an invocation is booked against its deadline
//! ([`Admission::book`]): the ledger holds every admitted invocation by
//! when it is due and what it is expected to take. One whose deadline
//! falls before the admitted work due ahead of it (shared by the workers)
//! plus its own expected time could end is refused at once,
//! `deadline_unmeetable`, unless the node is told to run it anyway.

use crate::error::{Error, Result};
use crate::function::Function;
use crate::metrics::{Metrics, OutcomeLabels};
use crate::usage::Usage;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::futures::Notified;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use weft_manifest::Unmeetable;
use weft_runtime::CpuCounter;

/// The node's slots, and whether it still takes work.
pub(crate) struct Admission {
    node_slots: Arc<Semaphore>,
    max_instances: u32,
    draining: AtomicBool,
    running: Arc<AtomicU64>,
    freed: Arc<SlotFreed>,
    metrics: Arc<Metrics>,
    usage: Arc<Usage>,
    ledger: Arc<Ledger>,
    workers: u64,
    unmeetable: Unmeetable,
}

/// The admitted invocations, by when they are due (and an arrival number):
/// what each is expected to take, µs, and the CPU time it has had so far.
#[derive(Default)]
struct Ledger {
    booked: Mutex<BTreeMap<(Instant, u64), (u64, CpuCounter)>>,
    seq: AtomicU64,
}

/// An invocation's entry in the ledger, removed when it drops (with its
/// [`Reservation`], when the sandbox has ended).
pub struct Booking {
    ledger: Arc<Ledger>,
    key: (Instant, u64),
    progress: CpuCounter,
}

impl Booking {
    /// Where the sandbox counts its CPU time, so that the ledger knows what
    /// is left of it.
    pub fn progress(&self) -> CpuCounter {
        self.progress.clone()
    }
}

impl Drop for Booking {
    fn drop(&mut self) {
        self.ledger.booked.lock().remove(&self.key);
    }
}

/// One of a function's slots, held: the invocation's turn came.
pub struct FunctionSlot {
    function: Arc<Function>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl FunctionSlot {
    /// The function (the version admitted).
    pub fn function(&self) -> &Arc<Function> {
        &self.function
    }
}

/// A function slot and a node slot: the invocation may start. Counted as
/// running until dropped, whichever way it ends.
pub struct Reservation {
    function: Arc<Function>,
    held: Option<Held>,
    running: Arc<AtomicU64>,
    freed: Arc<SlotFreed>,
    live: prometheus_client::metrics::gauge::Gauge,
    booking: Option<Booking>,
}

struct Held {
    slot: FunctionSlot,
    node: OwnedSemaphorePermit,
}

/// Tells the one waiter that asked (the dispatcher, when queued work waits
/// for capacity) that a slot freed. Every invocation frees a slot; unless
/// someone is waiting that costs a fence and a load, not a wake-up of the
/// dispatcher and a read of the queue.
#[derive(Default)]
pub struct SlotFreed {
    wanted: AtomicBool,
    notify: Notify,
}

impl SlotFreed {
    /// Asks to hear of the next freed slot. Call it before looking for a
    /// free slot: a slot freed after this call is never missed.
    pub fn want(&self) {
        self.wanted.store(true, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    /// No longer waiting for a slot.
    pub fn unwant(&self) {
        self.wanted.store(false, Ordering::Relaxed);
    }

    /// Completes once a slot freed after [`SlotFreed::want`] (at once if
    /// one already did).
    pub fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }

    /// A slot was given back (after its permits were released).
    fn freed(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.wanted.load(Ordering::Relaxed) && self.wanted.swap(false, Ordering::AcqRel) {
            self.notify.notify_one();
        }
    }
}

impl Reservation {
    /// The function (the version admitted).
    pub fn function(&self) -> &Arc<Function> {
        &self.function
    }

    /// Keeps the invocation's booking until it ends.
    pub fn keep(&mut self, booking: Booking) {
        self.booking = Some(booking);
    }

    /// Gives the node slot back and keeps the function's: for queued work
    /// that placement sends to another node, whose local slot bounds how
    /// many of the function's invocations are out at once.
    pub fn into_function_slot(mut self) -> FunctionSlot {
        match self.held.take() {
            Some(Held { slot, node }) => {
                drop(node);
                self.release();
                slot
            }
            None => FunctionSlot {
                function: self.function.clone(),
                _permit: None,
            },
        }
    }

    fn release(&self) {
        let f = &self.function;
        f.touch();
        f.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.running.fetch_sub(1, Ordering::AcqRel);
        self.live.dec();
        self.freed.freed();
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            // Permits first, so that whoever the release wakes finds them.
            drop(held);
            self.release();
        }
    }
}

impl Admission {
    pub(crate) fn new(
        max_instances: u32,
        workers: usize,
        unmeetable: Unmeetable,
        metrics: Arc<Metrics>,
        usage: Arc<Usage>,
    ) -> Self {
        Admission {
            ledger: Arc::default(),
            workers: workers.max(1) as u64,
            unmeetable,
            node_slots: Arc::new(Semaphore::new(max_instances as usize)),
            max_instances,
            draining: AtomicBool::new(false),
            running: Arc::new(AtomicU64::new(0)),
            freed: Arc::new(SlotFreed::default()),
            metrics,
            usage,
        }
    }

    fn refuse(&self, f: &Function, e: Error) -> Error {
        self.metrics
            .rejections
            .get_or_create(&OutcomeLabels {
                function: f.name.clone(),
                outcome: e.code().as_str().into(),
            })
            .inc();
        self.usage.rejected(&f.name);
        e
    }

    fn open(&self) -> Result<()> {
        if self.draining.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        Ok(())
    }

    /// A slot of `f`, waiting in its bounded queue when all are busy: at
    /// most the function's timeout, and never past `deadline`.
    pub(crate) async fn function_slot(
        &self,
        f: &Arc<Function>,
        deadline: Option<Instant>,
    ) -> Result<FunctionSlot> {
        self.open()?;
        if let Ok(permit) = f.slots.clone().try_acquire_owned() {
            return Ok(FunctionSlot {
                function: f.clone(),
                _permit: Some(permit),
            });
        }
        let before = f.waiting.fetch_add(1, Ordering::AcqRel);
        if before >= f.max_queue {
            f.waiting.fetch_sub(1, Ordering::AcqRel);
            let e = Error::QueueFull {
                name: f.name.clone(),
                queue: f.max_queue,
            };
            return Err(self.refuse(f, e));
        }
        let started = Instant::now();
        let mut wait = f.limits.timeout;
        if let Some(d) = deadline {
            wait = wait.min(d.saturating_duration_since(started));
        }
        self.metrics.queued.inc();
        let got = tokio::time::timeout(wait, f.slots.clone().acquire_owned()).await;
        self.metrics.queued.dec();
        f.waiting.fetch_sub(1, Ordering::AcqRel);
        match got {
            Ok(Ok(permit)) => Ok(FunctionSlot {
                function: f.clone(),
                _permit: Some(permit),
            }),
            _ => {
                let e = Error::QueueTimeout {
                    name: f.name.clone(),
                    waited: started.elapsed(),
                };
                Err(self.refuse(f, e))
            }
        }
    }

    /// A node slot for an admitted invocation, or `node_at_capacity`.
    pub(crate) fn node_slot(&self, slot: FunctionSlot) -> Result<Reservation> {
        match self.node_slots.clone().try_acquire_owned() {
            Ok(node) => Ok(self.reserved(slot, node)),
            Err(_) => {
                let e = Error::NodeAtCapacity {
                    name: slot.function.name.clone(),
                    max: self.max_instances,
                };
                Err(self.refuse(&slot.function, e))
            }
        }
    }

    /// Both slots now, or none (nothing waits, nothing is refused): how
    /// queued work is admitted before it is claimed.
    pub(crate) fn try_reserve(&self, f: &Arc<Function>) -> Option<Reservation> {
        if self.draining.load(Ordering::Acquire) {
            return None;
        }
        let permit = f.slots.clone().try_acquire_owned().ok()?;
        let node = self.node_slots.clone().try_acquire_owned().ok()?;
        Some(self.reserved(
            FunctionSlot {
                function: f.clone(),
                _permit: Some(permit),
            },
            node,
        ))
    }

    fn reserved(&self, slot: FunctionSlot, node: OwnedSemaphorePermit) -> Reservation {
        slot.function.in_flight.fetch_add(1, Ordering::AcqRel);
        self.running.fetch_add(1, Ordering::AcqRel);
        self.metrics.live_instances.inc();
        Reservation {
            function: slot.function.clone(),
            held: Some(Held { slot, node }),
            running: self.running.clone(),
            freed: self.freed.clone(),
            live: self.metrics.live_instances.clone(),
            booking: None,
        }
    }

    /// Books an invocation of `f` due at `due`. With `promised` (a declared
    /// or asked deadline) it is refused, `deadline_unmeetable`, when the
    /// admitted work due no later than it (what is left of each: its
    /// typical time, [`Function::typical_us`], less the CPU time it has
    /// had, or as much again as it overran, `weft_sched::left_us`), shared
    /// by the workers, plus its own expected time (at its
    /// admission percentile) would end after `due` (never with no work
    /// ahead). Work whose deadline is
    /// only its timeout is booked (it is work ahead of others) but never
    /// refused here.
    pub(crate) fn book(&self, f: &Function, due: Instant, promised: bool) -> Result<Booking> {
        let expected = f.expected_us().unwrap_or(0);
        let typical = f.typical_us().unwrap_or(0);
        let seq = self.ledger.seq.fetch_add(1, Ordering::Relaxed);
        let mut booked = self.ledger.booked.lock();
        if promised && self.unmeetable == Unmeetable::Refuse {
            let now = Instant::now();
            // What is left of each (`weft_sched::left_us`): its typical
            // time less what it has run, or an overrunner's overrun again.
            let ahead: u64 = booked
                .range(..(due, seq))
                .map(|(_, (us, ran))| weft_sched::left_us(*us, ran.get().as_micros() as u64))
                .sum();
            let left = due.saturating_duration_since(now).as_micros();
            let left = u64::try_from(left).unwrap_or(u64::MAX);
            if weft_sched::unmeetable(ahead, self.workers, expected, left) {
                let ahead = Duration::from_micros(ahead / self.workers);
                let expected = Duration::from_micros(expected);
                drop(booked);
                let e = Error::DeadlineUnmeetable {
                    name: f.name.clone(),
                    within: due.saturating_duration_since(now),
                    ahead,
                    expected,
                };
                return Err(self.refuse(f, e));
            }
        }
        let progress = CpuCounter::default();
        booked.insert((due, seq), (typical, progress.clone()));
        Ok(Booking {
            ledger: self.ledger.clone(),
            key: (due, seq),
            progress,
        })
    }

    /// Sandbox slots of the node.
    pub(crate) fn max_instances(&self) -> u32 {
        self.max_instances
    }

    /// Node slots free now.
    pub(crate) fn free(&self) -> usize {
        self.node_slots.available_permits()
    }

    /// Invocations running here now.
    pub(crate) fn running(&self) -> u64 {
        self.running.load(Ordering::Relaxed)
    }

    /// Tells a waiter that a slot freed.
    pub(crate) fn freed(&self) -> Arc<SlotFreed> {
        self.freed.clone()
    }

    /// Whether the node is draining.
    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Refuses new work and waits, up to `grace`, for running work to end;
    /// returns how much still runs.
    pub(crate) async fn drain(&self, grace: Duration) -> u64 {
        self.draining.store(true, Ordering::Release);
        let until = Instant::now() + grace;
        while self.running() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.running()
    }
}
