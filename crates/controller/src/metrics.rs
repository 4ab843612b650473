//! Prometheus metrics of the node.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FnLabel {
    pub(crate) function: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabels {
    pub(crate) function: String,
    pub(crate) outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct QuantileLabels {
    pub(crate) function: String,
    pub(crate) quantile: String,
}

/// The outcomes of `weft_deadlines_total`, in the order of
/// `FnMetrics::deadlines` (and of `DeadlineOutcome`).
pub(crate) const DEADLINE_OUTCOMES: [&str; 4] = ["met", "missed", "expired", "refused"];

/// The `quantile` labels of a function's execution profile, in the order
/// of `weft_sched::SUMMARY_QUANTILES`.
const QUANTILES: [&str; 4] = ["0.5", "0.9", "0.99", "1"];

/// The `quantile` labels of `weft_deadline_latency_seconds`: the SLO
/// report's p50 and p99.
const SLO_QUANTILES: [&str; 2] = ["0.5", "0.99"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct MovedLabels {
    pub(crate) function: String,
    pub(crate) model: String,
    pub(crate) moved: String,
}

/// The `moved` labels of `weft_state_bytes_total`, in the order of
/// [`StateBytes`]' counters.
const MOVED: [&str; 4] = ["state_read", "state_written", "args_in", "args_out"];

/// A stateful function's bytes moved under its state model, by what moved
/// (in the order of [`MOVED`]).
#[derive(Clone)]
pub(crate) struct StateBytes {
    counters: [Counter; 4],
    model: String,
}

impl StateBytes {
    /// One invocation's: state read and written, arguments in and out.
    pub(crate) fn add(&self, moved: [u64; 4]) {
        for (c, n) in self.counters.iter().zip(moved) {
            c.inc_by(n);
        }
    }

    /// The state model they are counted under.
    pub(crate) fn model(&self) -> &str {
        &self.model
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StartLabels {
    pub(crate) function: String,
    pub(crate) start: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 10 µs .. ~84 s
    Histogram::new(exponential_buckets(0.000_01, 2.5, 18))
}

/// One function's metric handles, looked up once when the function is
/// installed rather than on every invocation.
#[derive(Clone)]
pub(crate) struct FnMetrics {
    pub(crate) ok: Counter,
    pub(crate) cold: Counter,
    pub(crate) warm: Counter,
    pub(crate) duration: Histogram,
    pub(crate) cpu_seconds: Counter<f64, AtomicU64>,
    profile: [Gauge<f64, AtomicU64>; 4],
    /// `weft_deadlines_total` by outcome: met, missed, expired, refused.
    pub(crate) deadlines: [Counter; 4],
    /// `weft_overruns_total`: runs longer than admission expected.
    pub(crate) overruns: Counter,
    /// `weft_state_bytes_total`, for a stateful function.
    pub(crate) state: Option<StateBytes>,
}

impl FnMetrics {
    /// Shows a function's execution profile: its quantiles, in seconds.
    pub(crate) fn show_profile(&self, p: &weft_sched::Profile) {
        if let Some(summary) = p.summary() {
            for (us, g) in summary.iter().zip(&self.profile) {
                g.set(*us as f64 / 1e6);
            }
        }
    }
}

pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) invocations: Family<OutcomeLabels, Counter>,
    pub(crate) starts: Family<StartLabels, Counter>,
    pub(crate) rejections: Family<OutcomeLabels, Counter>,
    pub(crate) duration: HistogramFamily<FnLabel>,
    pub(crate) cpu_seconds: Family<FnLabel, Counter<f64, AtomicU64>>,
    exec_profile: Family<QuantileLabels, Gauge<f64, AtomicU64>>,
    pub(crate) deadlines: Family<OutcomeLabels, Counter>,
    deadline_seconds: Family<FnLabel, Gauge<f64, AtomicU64>>,
    deadline_latency: Family<QuantileLabels, Gauge<f64, AtomicU64>>,
    overruns: Family<FnLabel, Counter>,
    state_bytes: Family<MovedLabels, Counter>,
    pub(crate) live_instances: Gauge,
    pub(crate) queued: Gauge,
    pub(crate) warm_functions: Gauge,
    pub(crate) compilations: Counter,
    pub(crate) async_accepted: Counter,
    pub(crate) async_refused: Counter,
    pub(crate) async_dead: Counter,
    pub(crate) trigger_dropped: Counter,
    workers: Gauge,
    workers_busy: Gauge,
    workers_waiting: Gauge,
    preemptions: Counter,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("weft");
        let m = Metrics {
            invocations: Family::default(),
            starts: Family::default(),
            rejections: Family::default(),
            duration: HistogramFamily::new_with_constructor(latency_histogram),
            cpu_seconds: Family::default(),
            exec_profile: Family::default(),
            deadline_seconds: Family::default(),
            deadline_latency: Family::default(),
            deadlines: Family::default(),
            overruns: Family::default(),
            state_bytes: Family::default(),
            live_instances: Gauge::default(),
            queued: Gauge::default(),
            warm_functions: Gauge::default(),
            compilations: Counter::default(),
            async_accepted: Counter::default(),
            async_refused: Counter::default(),
            async_dead: Counter::default(),
            trigger_dropped: Counter::default(),
            workers: Gauge::default(),
            workers_busy: Gauge::default(),
            workers_waiting: Gauge::default(),
            preemptions: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "invocations",
            "Invocations that ran, by function and outcome (ok or an error code)",
            m.invocations.clone(),
        );
        registry.register(
            "starts",
            "Sandbox starts by function and kind of start (cold: loaded from disk; warm)",
            m.starts.clone(),
        );
        registry.register(
            "rejections",
            "Invocations refused before running, by function and reason",
            m.rejections.clone(),
        );
        registry.register(
            "invocation_duration_seconds",
            "Wall time of invocations, by function",
            m.duration.clone(),
        );
        registry.register(
            "cpu_seconds",
            "CPU time consumed by sandboxes, by function",
            m.cpu_seconds.clone(),
        );
        registry.register(
            "execution_time_seconds",
            "Wall time of a function's last 16 invocations here, by quantile (1: the longest)",
            m.exec_profile.clone(),
        );
        registry.register(
            "deadlines",
            "Invocations by how their deadline went: met or missed (the response started within it or not), expired (queued work that passed it before starting), refused (it could not be met: deadline_unmeetable)",
            m.deadlines.clone(),
        );
        registry.register(
            "deadline_seconds",
            "A function's deadline, from arrival (its timeout when it declares none)",
            m.deadline_seconds.clone(),
        );
        registry.register(
            "deadline_latency_seconds",
            "Latency against the deadline: arrival to the response's start, of a function's last 1,024 invocations that entered here, by quantile",
            m.deadline_latency.clone(),
        );
        registry.register(
            "overruns",
            "Runs that took longer than admission expected of them (the function's profile at its admission percentile, or its declared estimate)",
            m.overruns.clone(),
        );
        registry.register(
            "live_instances",
            "Sandboxes running now",
            m.live_instances.clone(),
        );
        registry.register(
            "queued_invocations",
            "Invocations waiting for a free slot",
            m.queued.clone(),
        );
        registry.register(
            "warm_functions",
            "Functions holding compiled code in memory",
            m.warm_functions.clone(),
        );
        registry.register(
            "compilations",
            "Modules compiled by this process",
            m.compilations.clone(),
        );
        registry.register(
            "async_accepted",
            "Asynchronous invocations durably queued",
            m.async_accepted.clone(),
        );
        registry.register(
            "async_refused",
            "Asynchronous invocations refused (queue full, storage error)",
            m.async_refused.clone(),
        );
        registry.register(
            "async_dead_lettered",
            "Asynchronous invocations moved to the dead-letter list",
            m.async_dead.clone(),
        );
        registry.register(
            "trigger_dropped",
            "Trigger events dropped before queueing (oversized MQTT payloads)",
            m.trigger_dropped.clone(),
        );
        registry.register(
            "state_bytes",
            "Bytes a stateful function's invocations moved, by state model: state read and written, arguments in and out",
            m.state_bytes.clone(),
        );
        registry.register(
            "workers",
            "Guests that may execute at once on this node",
            m.workers.clone(),
        );
        registry.register(
            "workers_busy",
            "Workers executing a guest now",
            m.workers_busy.clone(),
        );
        registry.register(
            "workers_waiting",
            "Live sandboxes waiting for a worker now",
            m.workers_waiting.clone(),
        );
        registry.register(
            "worker_preemptions",
            "Running guests that gave their worker to an earlier deadline",
            m.preemptions.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The handles of `function`; `model`: its state model, if it has one.
    pub(crate) fn for_function(&self, function: &str, model: Option<&str>) -> FnMetrics {
        let start = |kind: &str| {
            self.starts
                .get_or_create(&StartLabels {
                    function: function.to_string(),
                    start: kind.to_string(),
                })
                .clone()
        };
        let label = FnLabel {
            function: function.to_string(),
        };
        FnMetrics {
            ok: self
                .invocations
                .get_or_create(&OutcomeLabels {
                    function: function.to_string(),
                    outcome: "ok".into(),
                })
                .clone(),
            cold: start("cold"),
            warm: start("warm"),
            duration: self.duration.get_or_create(&label).clone(),
            cpu_seconds: self.cpu_seconds.get_or_create(&label).clone(),
            overruns: self.overruns.get_or_create(&label).clone(),
            state: model.map(|model| StateBytes {
                counters: MOVED.map(|moved| {
                    self.state_bytes
                        .get_or_create(&MovedLabels {
                            function: function.to_string(),
                            model: model.to_string(),
                            moved: moved.to_string(),
                        })
                        .clone()
                }),
                model: model.to_string(),
            }),
            deadlines: DEADLINE_OUTCOMES.map(|outcome| {
                self.deadlines
                    .get_or_create(&OutcomeLabels {
                        function: function.to_string(),
                        outcome: outcome.to_string(),
                    })
                    .clone()
            }),
            profile: QUANTILES.map(|q| {
                self.exec_profile
                    .get_or_create(&QuantileLabels {
                        function: function.to_string(),
                        quantile: q.to_string(),
                    })
                    .clone()
            }),
        }
    }

    /// Drops a removed function's series.
    pub(crate) fn forget(&self, function: &str) {
        for start in ["cold", "warm"] {
            self.starts.remove(&StartLabels {
                function: function.to_string(),
                start: start.into(),
            });
        }
        let label = FnLabel {
            function: function.to_string(),
        };
        self.duration.remove(&label);
        self.cpu_seconds.remove(&label);
        self.overruns.remove(&label);
        for model in weft_manifest::StateModel::ALL {
            for moved in MOVED {
                self.state_bytes.remove(&MovedLabels {
                    function: function.to_string(),
                    model: model.as_str().to_string(),
                    moved: moved.to_string(),
                });
            }
        }
        for outcome in DEADLINE_OUTCOMES {
            self.deadlines.remove(&OutcomeLabels {
                function: function.to_string(),
                outcome: outcome.to_string(),
            });
        }
        for q in QUANTILES {
            self.exec_profile.remove(&QuantileLabels {
                function: function.to_string(),
                quantile: q.to_string(),
            });
        }
        self.deadline_seconds.remove(&label);
        for q in SLO_QUANTILES {
            self.deadline_latency.remove(&QuantileLabels {
                function: function.to_string(),
                quantile: q.to_string(),
            });
        }
    }

    /// Sets `function`'s deadline and its latencies against it (p50, p99),
    /// ms, as its SLO report has them (at each scrape: the report sorts
    /// its window).
    pub(crate) fn show_slo(&self, function: &str, deadline_ms: f64, latency_ms: [Option<f64>; 2]) {
        let label = FnLabel {
            function: function.to_string(),
        };
        self.deadline_seconds
            .get_or_create(&label)
            .set(deadline_ms / 1e3);
        for (q, ms) in SLO_QUANTILES.into_iter().zip(latency_ms) {
            if let Some(ms) = ms {
                self.deadline_latency
                    .get_or_create(&QuantileLabels {
                        function: function.to_string(),
                        quantile: q.to_string(),
                    })
                    .set(ms / 1e3);
            }
        }
    }

    /// The text exposition, with the workers as they stand now.
    pub(crate) fn render(&self, w: weft_runtime::WorkerStats) -> String {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.workers.set(gauge(w.workers));
        self.workers_busy.set(gauge(w.running));
        self.workers_waiting.set(gauge(w.waiting));
        self.preemptions
            .inc_by(w.preemptions.saturating_sub(self.preemptions.get()));
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
