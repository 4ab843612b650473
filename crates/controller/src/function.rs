//! One function's active version as the node serves it: what it declares,
//! resolved against the node (limits, grants, capabilities, triggers,
//! placement requirements), and its live state (slots, wait queue, warm
//! code, learned execution time).
//!
//! A [`Function`] is immutable but for its live counters: a redeploy
//! installs a new one, and an invocation keeps the one it resolved until it
//! ends, so it runs one version from admission to its last byte.

use crate::caps::Resolved;
use crate::metrics::FnMetrics;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use weft_manifest::{Defaults, FunctionSpec, MqttTrigger, Percentile, Schedule};
use weft_queue::RetryPolicy;
use weft_runtime::{Capabilities, Grants, Kind, Limits, Loaded};
use weft_sched::{Privacy, Profile, Requirements, Window};
use weft_store::VersionRecord;

/// One function's active version, resolved, with its live state.
pub struct Function {
    pub(crate) name: String,
    pub(crate) version: VersionRecord,
    pub(crate) kind: Kind,
    pub(crate) limits: Limits,
    pub(crate) slo: Slo,
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
    pub(crate) state: Option<crate::state::FunctionState>,
    requirements: Requirements,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) waiting: AtomicU32,
    pub(crate) in_flight: AtomicU32,
    warm: Mutex<Option<Loaded>>,
    /// Serialises cold starts, so concurrent first calls load once.
    pub(crate) loading: tokio::sync::Mutex<()>,
    /// Milliseconds since `epoch` of the last invocation's end.
    last_used: AtomicU64,
    epoch: Instant,
    /// Wall times of its last invocations here.
    profile: Mutex<Profile>,
    /// What `weft slo` reports beyond the counters.
    record: Mutex<SloRecord>,
    /// Per invocation, what its state moved: bytes and round trips to its
    /// home (moving averages; placement counts them).
    state_moved: Mutex<(f64, f64)>,
}

/// Overruns in a row that flag a function and reset its profile to them.
pub const OVERRUN_STREAK: u32 = 3;

/// End-to-end latencies a function's SLO report keeps (its p99 needs 100).
pub const LATENCY_WINDOW: usize = 1024;

/// Beyond the counters: latencies and overruns.
#[derive(Default)]
struct SloRecord {
    latencies: Window<LATENCY_WINDOW>,
    overruns: u64,
    /// Overruns in a row now.
    streak: u32,
    /// Times it reached [`OVERRUN_STREAK`].
    flagged: u64,
}

/// How a function has kept its deadlines here (`weft slo`): the counts
/// since it was installed, latencies of its last [`LATENCY_WINDOW`] runs
/// that entered here.
#[derive(Debug, Clone, Serialize)]
pub struct SloReport {
    /// The function.
    pub name: String,
    /// Its deadline (its timeout when it declares none), ms.
    pub deadline_ms: f64,
    /// Whether it declares one.
    pub declared: bool,
    /// Answers that started within their deadline.
    pub met: u64,
    /// Answers that started after it.
    pub missed: u64,
    /// Refused at once: `deadline_unmeetable`.
    pub refused: u64,
    /// Queued work whose deadline passed before it started.
    pub expired: u64,
    /// `met / (met + missed)`, once one ran.
    pub met_ratio: Option<f64>,
    /// Latencies held.
    pub latencies: usize,
    /// Median latency, arrival to the response's start, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, ms.
    pub p99_ms: Option<f64>,
    /// What admission expects a run to take now, ms.
    pub expected_ms: Option<f64>,
    /// Runs longer than admission expected.
    pub overruns: u64,
    /// Times it overran [`OVERRUN_STREAK`] times in a row (each time its
    /// profile kept only those runs).
    pub flagged: u64,
    /// Overruns in a row now.
    pub overrunning: u32,
}

/// What a function promises its callers: when it should have answered,
/// and how long it is expected to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// From arrival: the declared deadline, or else the timeout.
    pub deadline: Duration,
    /// Whether `deadline` was declared.
    pub declared: bool,
    /// The first estimate of the execution time, until one is learned.
    pub expected: Option<Duration>,
    /// The percentile of execution times admission plans with.
    pub admission: Percentile,
}

impl Slo {
    /// Why no invocation could be ordered by `deadline` on a node whose
    /// scheduling quantum (its epoch tick) is `quantum`; `None` when one
    /// can. The one rule for a declared deadline (at deploy) and one a
    /// request asks for.
    pub fn below_quantum(deadline: Duration, quantum: Duration) -> Option<String> {
        (deadline < quantum).then(|| {
            format!(
                "{} is below this node's scheduling quantum of {}: no invocation could be ordered by it",
                weft_manifest::HumanDuration(deadline),
                weft_manifest::HumanDuration(quantum)
            )
        })
    }

    fn new(spec: &FunctionSpec, timeout: Duration) -> Self {
        Slo {
            deadline: spec.deadline.map_or(timeout, |d| d.0),
            declared: spec.deadline.is_some(),
            expected: spec.expected.map(|e| e.0),
            admission: spec.admission.unwrap_or(Percentile::P90),
        }
    }
}

/// Limits and grants of a spec, with the node's defaults.
pub(crate) fn limits(spec: &FunctionSpec, d: &Defaults) -> (Limits, Grants) {
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

/// What the function asks of the node that runs it: its `[placement]`, and
/// what it declares (stores, MQTT triggers, the topics it publishes on),
/// which a node must provide or the guest would be denied it there.
/// What the function asks of the node that runs it; `home`: the store its
/// state lives in here (`external`, `edge`), which a node must serve too.
fn requirements(spec: &FunctionSpec, home: Option<&str>) -> Requirements {
    let p = spec.placement.clone().unwrap_or_default();
    Requirements {
        tiers: p.tier.iter().filter_map(|t| t.parse().ok()).collect(),
        labels: p.labels.clone(),
        privacy: Privacy::named(p.privacy.as_deref()),
        latency_ms: p
            .latency
            .map(|l| l.0.as_millis().min(u128::from(u32::MAX)) as u32),
        near: p.near.iter().map(|n| n.to_string()).collect(),
        cost_weight: f64::from(p.cost_weight.unwrap_or(0)),
        energy_weight: f64::from(p.energy_weight.unwrap_or(0)),
        stores: spec
            .key_value_stores
            .iter()
            .map(|s| s.to_string())
            .chain(home.map(str::to_string))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        broker: !spec.mqtt.is_empty(),
        topics: spec.publishes.clone(),
    }
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
        let (limits, grants) = limits(&version.spec, defaults);
        let requirements = requirements(
            &version.spec,
            resolved.state.as_ref().and_then(|s| s.shared_home()),
        );
        let max_concurrency = version
            .spec
            .max_concurrency
            .unwrap_or(defaults.max_concurrency);
        Function {
            name: name.to_string(),
            kind,
            slo: Slo::new(&version.spec, limits.timeout),
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
            state: resolved.state,
            requirements,
            slots: Arc::new(Semaphore::new(max_concurrency as usize)),
            waiting: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            warm: Mutex::new(None),
            loading: tokio::sync::Mutex::new(()),
            last_used: AtomicU64::new(0),
            epoch: Instant::now(),
            profile: Mutex::new(Profile::default()),
            record: Mutex::default(),
            state_moved: Mutex::new((0.0, 0.0)),
            version,
        }
    }

    /// Its deadline, execution estimate and admission percentile.
    pub fn slo(&self) -> &Slo {
        &self.slo
    }

    /// Its state, when it keeps one here.
    pub fn state(&self) -> Option<&crate::state::FunctionState> {
        self.state.as_ref()
    }

    /// What one of its invocations moves of its state, as placement
    /// counts it: bytes, and round trips to the state's home (moving
    /// averages of its runs here).
    pub fn state_moved(&self) -> (u64, u32) {
        let (bytes, trips) = *self.state_moved.lock();
        (bytes.round() as u64, trips.round() as u32)
    }

    /// One run's state traffic.
    pub(crate) fn observe_state(&self, bytes: u64, trips: u64) {
        let mut m = self.state_moved.lock();
        let a = weft_sched::EWMA_ALPHA;
        if m.0 == 0.0 && m.1 == 0.0 {
            *m = (bytes as f64, trips as f64);
        } else {
            m.0 += a * (bytes as f64 - m.0);
            m.1 += a * (trips as f64 - m.1);
        }
    }

    /// The function's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version this is.
    pub fn version(&self) -> u32 {
        self.version.version
    }

    /// What it declared.
    pub fn spec(&self) -> &FunctionSpec {
        &self.version.spec
    }

    /// A command or an HTTP component.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The limits in force (the node's defaults where it sets none).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether `/fn/NAME` may be invoked without the node's token.
    pub fn is_public(&self) -> bool {
        self.public
    }

    /// Whether running it twice does no harm.
    pub fn is_idempotent(&self) -> bool {
        self.version.spec.idempotent
    }

    /// What it asks of the node that runs it.
    pub fn requirements(&self) -> &Requirements {
        &self.requirements
    }

    /// Sandboxes of it that may run at once here.
    pub fn max_concurrency(&self) -> u32 {
        self.max_concurrency
    }

    /// Its invocations running here now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Its invocations waiting for a slot here now.
    pub fn waiting(&self) -> u32 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Whether its compiled code is in memory.
    pub fn is_warm(&self) -> bool {
        self.warm.lock().is_some()
    }

    /// Its mean wall time here over its last runs, µs, once it ran.
    pub fn exec_us(&self) -> Option<u64> {
        self.profile.lock().mean()
    }

    /// What admission expects a run to take here, µs: its profile at the
    /// declared percentile, or its first estimate before the first run.
    pub fn expected_us(&self) -> Option<u64> {
        self.profile
            .lock()
            .percentile(self.slo.admission.fraction())
            .or_else(|| self.declared_us())
    }

    /// Its declared first estimate, µs.
    fn declared_us(&self) -> Option<u64> {
        self.slo
            .expected
            .map(|e| u64::try_from(e.as_micros()).unwrap_or(u64::MAX))
    }

    /// What a run typically takes here, µs: its profile's mean, or its
    /// first estimate before the first run. Admission counts the work
    /// ahead of an invocation so: the time many runs take together is near
    /// the sum of their means, where a sum of percentiles would be far
    /// above it.
    pub fn typical_us(&self) -> Option<u64> {
        self.profile.lock().mean().or_else(|| self.declared_us())
    }

    /// The execution times of its last runs here.
    pub fn profile(&self) -> Profile {
        *self.profile.lock()
    }

    /// The retry policy of its asynchronous invocations.
    pub fn retry(&self) -> RetryPolicy {
        self.retry
    }

    /// Topic patterns it is subscribed to.
    pub fn subscribes(&self) -> &[String] {
        &self.subscribes
    }

    /// HTTP routes it serves besides `/fn/NAME`.
    pub fn routes(&self) -> &[String] {
        &self.routes
    }

    /// Its cron schedules and their payloads.
    pub fn cron(&self) -> &[(Schedule, Option<String>)] {
        &self.cron
    }

    /// Its MQTT triggers.
    pub fn mqtt(&self) -> &[MqttTrigger] {
        &self.mqtt
    }

    /// Records an invocation's execution time (its wall time but for the
    /// time it waited for a worker) in its profile, and the profile's
    /// percentiles in its metrics. A run longer than admission expected is
    /// an overrun; the [`OVERRUN_STREAK`]th in a row flags the function and
    /// leaves its profile only those runs, so that admission plans with
    /// what it takes now (returned: the estimate it overran, µs).
    pub(crate) fn observe_exec(&self, wall: Duration) -> Option<u64> {
        let us = wall.as_micros().min(u128::from(u64::MAX)) as u64;
        let estimate = self.expected_us();
        let overran = estimate.is_some_and(|e| us > e);
        let (profile, flagged) = {
            let mut p = self.profile.lock();
            p.record(us);
            let mut r = self.record.lock();
            r.streak = if overran { r.streak + 1 } else { 0 };
            r.overruns += u64::from(overran);
            let flagged = overran && r.streak.is_multiple_of(OVERRUN_STREAK);
            if flagged {
                r.flagged += 1;
                p.keep_last(OVERRUN_STREAK as usize);
            }
            (*p, flagged)
        };
        if overran {
            self.metrics.overruns.inc();
        }
        self.metrics.show_profile(&profile);
        estimate.filter(|_| flagged)
    }

    /// How an invocation that entered here went against its deadline:
    /// counted, and its latency (to the response's start) kept when it ran.
    pub(crate) fn observe_deadline(&self, outcome: DeadlineOutcome, latency: Option<Duration>) {
        self.metrics.deadlines[outcome as usize].inc();
        if let Some(l) = latency {
            let us = l.as_micros().min(u128::from(u64::MAX)) as u64;
            self.record.lock().latencies.record(us);
        }
    }

    /// How it has kept its deadlines here.
    pub fn slo_report(&self) -> SloReport {
        let count = |o: DeadlineOutcome| self.metrics.deadlines[o as usize].get();
        // Before the record's lock: `observe_exec` takes the profile's, then
        // the record's, and the two must not be taken the other way round.
        let expected = self.expected_us();
        let r = self.record.lock();
        let ms = |us: u64| us as f64 / 1000.0;
        let (met, missed) = (count(DeadlineOutcome::Met), count(DeadlineOutcome::Missed));
        SloReport {
            name: self.name.clone(),
            deadline_ms: ms(u64::try_from(self.slo.deadline.as_micros()).unwrap_or(u64::MAX)),
            declared: self.slo.declared,
            met,
            missed,
            refused: count(DeadlineOutcome::Refused),
            expired: count(DeadlineOutcome::Expired),
            met_ratio: (met + missed > 0).then(|| met as f64 / (met + missed) as f64),
            latencies: r.latencies.len(),
            p50_ms: r.latencies.percentile(0.5).map(ms),
            p99_ms: r.latencies.percentile(0.99).map(ms),
            expected_ms: expected.map(ms),
            overruns: r.overruns,
            flagged: r.flagged,
            overrunning: r.streak,
        }
    }

    pub(crate) fn warm(&self) -> Option<Loaded> {
        self.warm.lock().clone()
    }

    /// Sets or drops the compiled code; whether some was held before.
    pub(crate) fn set_warm(&self, loaded: Option<Loaded>) -> bool {
        let mut w = self.warm.lock();
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

/// How an invocation's deadline went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineOutcome {
    /// The response started within it.
    Met = 0,
    /// The response started after it.
    Missed,
    /// Queued work that passed it before it could start (not run).
    Expired,
    /// Refused at once: it could not be met (`deadline_unmeetable`).
    Refused,
}

impl DeadlineOutcome {
    /// The `outcome` label.
    pub fn as_str(self) -> &'static str {
        crate::metrics::DEADLINE_OUTCOMES[self as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::DeadlineOutcome;

    #[test]
    fn deadline_outcomes_name_their_counters() {
        let all = [
            DeadlineOutcome::Met,
            DeadlineOutcome::Missed,
            DeadlineOutcome::Expired,
            DeadlineOutcome::Refused,
        ];
        let names: Vec<_> = all.iter().map(|o| o.as_str()).collect();
        assert_eq!(names, ["met", "missed", "expired", "refused"]);
    }
}
