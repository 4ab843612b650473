//! The live state of one function's active version: its limits, its slots
//! and wait queue, and whether it is warm.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use weft_manifest::{Defaults, FunctionSpec};
use weft_runtime::{Grants, Kind, Limits, Loaded};
use weft_store::VersionRecord;

use crate::caps::Resolved;
use crate::metrics::FnMetrics;
use weft_manifest::MqttTrigger;
use weft_manifest::Schedule;
use weft_queue::RetryPolicy;
use weft_runtime::Capabilities;

pub(crate) struct Function {
    pub(crate) name: String,
    pub(crate) version: VersionRecord,
    pub(crate) kind: Kind,
    pub(crate) limits: Limits,
    pub(crate) grants: Arc<Grants>,
    pub(crate) public: bool,
    pub(crate) max_concurrency: u32,
    pub(crate) max_queue: u32,
    pub(crate) idle_ttl: Duration,
    pub(crate) metrics: FnMetrics,
    pub(crate) caps: Arc<Capabilities>,
    pub(crate) retry: RetryPolicy,
    pub(crate) subscribes: Vec<String>,
    pub(crate) routes: Vec<String>,
    pub(crate) cron: Vec<(Schedule, Option<String>)>,
    pub(crate) mqtt: Vec<MqttTrigger>,
    pub(crate) slots: Arc<Semaphore>,
    waiting: AtomicU32,
    pub(crate) in_flight: AtomicU32,
    warm: Mutex<Option<Loaded>>,
    /// Serialises cold starts, so concurrent first calls load once.
    pub(crate) loading: tokio::sync::Mutex<()>,
    /// Milliseconds since `epoch` of the last invocation's end.
    last_used: AtomicU64,
    epoch: Instant,
    /// Mean wall time of its invocations here, µs (0: none yet), for
    /// placement.
    exec_us: AtomicU64,
}

/// Resolves a spec against the node's defaults.
pub(crate) fn resolve(spec: &FunctionSpec, d: &Defaults) -> (Limits, Grants) {
    let limits = Limits {
        memory: spec.memory.unwrap_or(d.memory).0,
        timeout: spec.timeout.unwrap_or(d.timeout).0,
        fuel: spec.fuel,
        max_request: spec.max_request_size.unwrap_or(d.max_request_size).0,
        max_response: spec.max_response_size.unwrap_or(d.max_response_size).0,
        max_log: d.max_log_size.0,
    };
    let grants = Grants {
        args: spec.args.clone(),
        env: spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        clock: spec.clock,
    };
    (limits, grants)
}

impl Function {
    pub(crate) fn new(
        name: &str,
        version: VersionRecord,
        kind: Kind,
        defaults: &Defaults,
        metrics: FnMetrics,
        resolved: Resolved,
    ) -> Self {
        let (limits, grants) = resolve(&version.spec, defaults);
        let max_concurrency = version
            .spec
            .max_concurrency
            .unwrap_or(defaults.max_concurrency);
        Function {
            name: name.to_string(),
            kind,
            limits,
            grants: Arc::new(grants),
            public: version.spec.public,
            max_concurrency,
            max_queue: version.spec.max_queue.unwrap_or(defaults.max_queue),
            idle_ttl: version.spec.idle_ttl.unwrap_or(defaults.idle_ttl).0,
            metrics,
            caps: resolved.caps,
            retry: resolved.retry,
            subscribes: resolved.subscribes,
            routes: resolved.routes,
            cron: resolved.cron,
            mqtt: resolved.mqtt,
            slots: Arc::new(Semaphore::new(max_concurrency as usize)),
            waiting: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            warm: Mutex::new(None),
            loading: tokio::sync::Mutex::new(()),
            last_used: AtomicU64::new(0),
            epoch: Instant::now(),
            exec_us: AtomicU64::new(0),
            version,
        }
    }

    /// Takes a slot, waiting in the bounded queue when all are busy.
    pub(crate) async fn admit(&self) -> Result<OwnedSemaphorePermit> {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Ok(p);
        }
        let before = self.waiting.fetch_add(1, Ordering::AcqRel);
        if before >= self.max_queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::QueueFull {
                name: self.name.clone(),
                queue: self.max_queue,
            });
        }
        let started = Instant::now();
        let got =
            tokio::time::timeout(self.limits.timeout, self.slots.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match got {
            Ok(Ok(p)) => Ok(p),
            _ => Err(Error::QueueTimeout {
                name: self.name.clone(),
                waited: started.elapsed(),
            }),
        }
    }

    /// Folds an invocation's wall time into the mean (weight 1/5).
    pub(crate) fn observe_exec(&self, wall: Duration) {
        let sample = (wall.as_micros() as u64).max(1);
        let old = self.exec_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            (old * 4 + sample) / 5
        };
        self.exec_us.store(new.max(1), Ordering::Relaxed);
    }

    /// Mean wall time here, µs, if it ran.
    pub(crate) fn exec_us(&self) -> Option<u64> {
        Some(self.exec_us.load(Ordering::Relaxed)).filter(|u| *u > 0)
    }

    pub(crate) fn waiting(&self) -> u32 {
        self.waiting.load(Ordering::Relaxed)
    }

    pub(crate) fn warm(&self) -> Option<Loaded> {
        self.warm
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_warm(&self, loaded: Option<Loaded>) -> bool {
        let mut w = self.warm.lock().unwrap_or_else(PoisonError::into_inner);
        let was = w.is_some();
        *w = loaded;
        was
    }

    pub(crate) fn touch(&self) {
        self.last_used
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Whether the function is warm, idle and past its idle TTL.
    pub(crate) fn idle_expired(&self) -> bool {
        let idle_for = self.epoch.elapsed().saturating_sub(Duration::from_millis(
            self.last_used.load(Ordering::Relaxed),
        ));
        self.in_flight.load(Ordering::Acquire) == 0 && idle_for >= self.idle_ttl
    }
}
