//! The worker's Prometheus metrics, on an explicit registry. The names and labels are a
//! contract with dashboards and alerts; docs/OPERATIONS.md lists them.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};

use prometheus::core::{Collector, Desc, MetricVec, MetricVecBuilder};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
    exponential_buckets,
};

/// The `type` label of a job type no handler of this worker serves: jobs of any type
/// can be enqueued, and one series per unknown type would grow without bound.
pub const OTHER_TYPE: &str = "other";

/// A metric family labelled `queue`, `type`, …, whose `type` values are the job types
/// registered with [`Metrics::preregister`], every other one reported as
/// [`OTHER_TYPE`]. (`queue` values are bounded already: a worker serves the queues it
/// is configured with.)
#[derive(Clone, Debug)]
pub struct ByType<V> {
    vec: V,
    known: Arc<RwLock<HashSet<String>>>,
}

impl<T: MetricVecBuilder> ByType<MetricVec<T>> {
    /// The series for these label values (in the family's order: queue, type, …).
    pub fn with_label_values<V: AsRef<str> + std::fmt::Debug>(&self, values: &[V]) -> T::M {
        let mut labels: Vec<&str> = values.iter().map(AsRef::as_ref).collect();
        if let Some(t) = labels.get_mut(1)
            && !self.known.read().unwrap().contains(*t)
        {
            *t = OTHER_TYPE;
        }
        self.vec.with_label_values(&labels)
    }
}

/// `tether_queue_enqueued_total{queue}`: every job ever enqueued to each queue this worker
/// serves, whichever front end sent it (library, CLI, API, schedules), as Redis counts it
/// (`QueueStats::enqueued`, read with the queue depths).
///
/// A collector of its own because the count is Redis's, not this process's: a restarted
/// worker reports the same total, and every worker of a queue reports it (aggregate with
/// `max by (queue)`). A queue appears once its count has been read: a 0 before the first
/// read would make the first read look like a burst of enqueues.
#[derive(Clone, Debug)]
pub struct QueueEnqueued {
    /// Never collected itself: its name, help and labels describe the family.
    template: IntCounterVec,
    totals: Arc<RwLock<BTreeMap<String, u64>>>,
}

impl QueueEnqueued {
    fn new() -> QueueEnqueued {
        QueueEnqueued {
            template: Self::family(),
            totals: Arc::default(),
        }
    }

    fn family() -> IntCounterVec {
        IntCounterVec::new(
            Opts::new(
                "tether_queue_enqueued_total",
                "Jobs enqueued to the queue through any path, counted in Redis",
            ),
            &["queue"],
        )
        .expect("metric")
    }

    /// Records the total last read from Redis for `queue`.
    pub fn set(&self, queue: &str, total: u64) {
        self.totals.write().unwrap().insert(queue.to_owned(), total);
    }
}

impl Collector for QueueEnqueued {
    fn desc(&self) -> Vec<&Desc> {
        self.template.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let family = Self::family();
        for (queue, total) in self.totals.read().unwrap().iter() {
            family.with_label_values(&[queue]).inc_by(*total);
        }
        family.collect()
    }
}

/// The values of `tether_jobs_throttled_total`'s `limit` label.
pub const THROTTLE_LIMITS: [&str; 5] = [
    "paused",
    "concurrency",
    "rate",
    "group_concurrency",
    "group_rate",
];

/// Handles to every worker metric; cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub started: ByType<IntCounterVec>,
    pub finished: ByType<IntCounterVec>,
    pub retries: ByType<IntCounterVec>,
    pub duration: ByType<HistogramVec>,
    pub wait: HistogramVec,
    pub in_flight: IntGaugeVec,
    pub queue_jobs: IntGaugeVec,
    /// Enqueues per queue as Redis counts them (read with `queue_jobs`).
    pub queue_enqueued: QueueEnqueued,
    pub lease_renewals: IntCounterVec,
    pub lease_expired: IntCounterVec,
    pub lease_lost: IntCounterVec,
    pub progress: prometheus::Histogram,
    pub redis_errors: IntCounterVec,
    /// 1 while the queue is paused (sampled from Redis).
    pub queue_paused: IntGaugeVec,
    /// Claims that flow control held back, by the `limit` that bound: `paused`,
    /// `concurrency`, `rate`, `group_concurrency`, `group_rate` (never a group name).
    pub throttled: IntCounterVec,
    /// Jobs this worker's maintenance failed because their start deadline passed.
    pub expired: IntCounterVec,
    /// Schedule firings handled by this worker, by `result`: `fired`, `duplicate` (the
    /// firing's job existed: another worker fired it), `skipped` (overlap policy),
    /// `missed` (not fired under the catch-up policy).
    pub schedule_firings: IntCounterVec,
    /// From a firing's fire time to its enqueue.
    pub schedule_lag: prometheus::Histogram,
    /// The job types with a handler: the only values of the `type` label besides `other`.
    known_types: Arc<RwLock<HashSet<String>>>,
}

impl Metrics {
    /// Registers every metric on a fresh registry; `worker` becomes a constant label.
    pub fn new(worker: &str) -> Metrics {
        let registry = Registry::new_custom(
            None,
            Some([("worker".to_owned(), worker.to_owned())].into()),
        )
        .expect("valid registry");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric");
            registry.register(Box::new(c.clone())).expect("register");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("metric");
            registry.register(Box::new(g.clone())).expect("register");
            g
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("metric");
            registry.register(Box::new(h.clone())).expect("register");
            h
        };
        // 1 ms … ~1.1 h and 1 ms … ~9 min, doubling.
        let duration_buckets = exponential_buckets(0.001, 2.0, 23).expect("buckets");
        let wait_buckets = exponential_buckets(0.001, 2.0, 20).expect("buckets");
        let progress = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "tether_job_progress_ratio",
                "Progress reported by running jobs (0-1)",
            )
            .buckets(vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
        )
        .expect("metric");
        registry
            .register(Box::new(progress.clone()))
            .expect("register");
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("register");
        let build = gauge("tether_build_info", "Build information", &["version"]);
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let schedule_lag = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "tether_schedule_lag_seconds",
                "Time from a schedule firing's fire time to its enqueue",
            )
            .buckets(exponential_buckets(0.005, 2.0, 16).expect("buckets")),
        )
        .expect("metric");
        registry
            .register(Box::new(schedule_lag.clone()))
            .expect("register");
        let queue_enqueued = QueueEnqueued::new();
        registry
            .register(Box::new(queue_enqueued.clone()))
            .expect("register");
        let known = Arc::new(RwLock::new(HashSet::new()));
        let by_type = |vec| ByType {
            vec,
            known: known.clone(),
        };
        Metrics {
            known_types: known.clone(),
            started: by_type(counter(
                "tether_jobs_started_total",
                "Attempts started",
                &["queue", "type"],
            )),
            finished: by_type(counter(
                "tether_jobs_finished_total",
                "Attempts finished, by recorded status",
                &["queue", "type", "status"],
            )),
            retries: by_type(counter(
                "tether_job_retries_total",
                "Attempts that failed and were scheduled again",
                &["queue", "type"],
            )),
            duration: ByType {
                vec: histogram(
                    "tether_job_duration_seconds",
                    "Attempt run time (handle and checks)",
                    &["queue", "type"],
                    duration_buckets,
                ),
                known: known.clone(),
            },
            wait: histogram(
                "tether_job_wait_seconds",
                "Time from ready to start",
                &["queue"],
                wait_buckets,
            ),
            in_flight: gauge(
                "tether_jobs_in_flight",
                "Jobs running on this worker",
                &["queue"],
            ),
            queue_jobs: gauge(
                "tether_queue_jobs",
                "Jobs in the queue by state, sampled from Redis",
                &["queue", "state"],
            ),
            lease_renewals: counter(
                "tether_lease_renewals_total",
                "Leases renewed by heartbeats",
                &["queue"],
            ),
            lease_expired: counter(
                "tether_lease_expired_total",
                "Lapsed leases this worker's reaper took back",
                &["queue"],
            ),
            lease_lost: counter(
                "tether_lease_lost_total",
                "Jobs this worker abandoned because its lease was taken",
                &["queue"],
            ),
            redis_errors: counter("tether_redis_errors_total", "Failed Redis calls", &["op"]),
            queue_paused: gauge(
                "tether_queue_paused",
                "1 while the queue is paused, sampled from Redis",
                &["queue"],
            ),
            throttled: counter(
                "tether_jobs_throttled_total",
                "Claims held back by flow control, by the limit that bound",
                &["queue", "limit"],
            ),
            expired: counter(
                "tether_jobs_expired_total",
                "Jobs failed unstarted past their start deadline (Expired)",
                &["queue"],
            ),
            schedule_firings: counter(
                "tether_schedule_firings_total",
                "Schedule firings handled by this worker, by result",
                &["result"],
            ),
            schedule_lag,
            queue_enqueued,
            progress,
            registry,
        }
    }

    /// Creates every series this worker can report at zero, so dashboards and alerts
    /// see the series (and rates of 0) before the first event. `job_types` (the
    /// registered handlers) become the values of the `type` label; any other type is
    /// counted as [`OTHER_TYPE`].
    pub fn preregister(&self, queues: &[String], job_types: &[&str]) {
        self.known_types
            .write()
            .unwrap()
            .extend(job_types.iter().map(|t| t.to_string()));
        let job_types: Vec<&str> = job_types.iter().copied().chain([OTHER_TYPE]).collect();
        const OPS: [&str; 7] = [
            "claim", "wait", "renew", "progress", "promote", "reap", "schedule",
        ];
        for op in OPS {
            self.redis_errors.with_label_values(&[op]);
        }
        for result in ["fired", "duplicate", "skipped", "missed"] {
            self.schedule_firings.with_label_values(&[result]);
        }
        for q in queues {
            for v in [&self.lease_renewals, &self.lease_expired, &self.lease_lost] {
                v.with_label_values(&[q]);
            }
            self.in_flight.with_label_values(&[q]);
            self.queue_paused.with_label_values(&[q]);
            self.expired.with_label_values(&[q]);
            for limit in THROTTLE_LIMITS {
                self.throttled.with_label_values(&[q.as_str(), limit]);
            }
            for state in ["pending", "scheduled", "processing", "dead"] {
                self.queue_jobs.with_label_values(&[q.as_str(), state]);
            }
            self.wait.with_label_values(&[q]);
            for t in &job_types {
                self.started.with_label_values(&[q.as_str(), t]);
                self.retries.with_label_values(&[q.as_str(), t]);
                self.duration.with_label_values(&[q.as_str(), t]);
                for status in ["success", "failure", "cancelled"] {
                    self.finished.with_label_values(&[q.as_str(), t, status]);
                }
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encode metrics");
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names and labels are an interface (dashboards, alerts): a change here
    /// must be a deliberate change of this list.
    #[test]
    fn metric_names_and_labels_match_the_documented_list() {
        let metrics = Metrics::new("w1");
        metrics.preregister(&["q".to_owned()], &["t"]);
        metrics.queue_enqueued.set("q", 7);
        let text = metrics.render();
        let mut families: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter(|l| l.starts_with("tether_"))
            .map(str::to_owned)
            .collect();
        families.sort();
        assert_eq!(
            families,
            [
                "tether_build_info gauge",
                "tether_job_duration_seconds histogram",
                "tether_job_progress_ratio histogram",
                "tether_job_retries_total counter",
                "tether_job_wait_seconds histogram",
                "tether_jobs_expired_total counter",
                "tether_jobs_finished_total counter",
                "tether_jobs_in_flight gauge",
                "tether_jobs_started_total counter",
                "tether_jobs_throttled_total counter",
                "tether_lease_expired_total counter",
                "tether_lease_lost_total counter",
                "tether_lease_renewals_total counter",
                "tether_queue_enqueued_total counter",
                "tether_queue_jobs gauge",
                "tether_queue_paused gauge",
                "tether_redis_errors_total counter",
                "tether_schedule_firings_total counter",
                "tether_schedule_lag_seconds histogram",
            ]
        );
        for line in text.lines().filter(|l| l.starts_with("tether_")) {
            let labels = line
                .split_once('{')
                .map(|(_, rest)| rest.split('}').next().unwrap_or(""))
                .unwrap_or("");
            for pair in labels.split(',').filter(|p| !p.is_empty()) {
                let name = pair.split('=').next().unwrap();
                assert!(
                    [
                        "queue", "type", "status", "worker", "state", "op", "version", "le",
                        "result", "limit"
                    ]
                    .contains(&name),
                    "label {name} in {line}"
                );
            }
        }
        assert!(text.contains(
            r#"tether_jobs_finished_total{queue="q",status="failure",type="t",worker="w1"} 0"#
        ));
        // Redis's count, with the worker label like every other series.
        assert!(
            text.contains(r#"tether_queue_enqueued_total{queue="q",worker="w1"} 7"#),
            "{text}"
        );
        assert!(
            text.contains("process_resident_memory_bytes"),
            "process metrics"
        );
        // Histogram buckets span 1 ms to about an hour (duration) and 10 minutes (wait).
        assert!(text.contains(
            r#"tether_job_duration_seconds_bucket{queue="q",type="t",worker="w1",le="0.001"}"#
        ));
        assert!(text.contains(r#"le="4194.304""#) && text.contains(r#"le="524.288""#));
    }

    /// A job type no handler serves is reported as `other`: label values come from
    /// the registered types only, however many unknown types arrive.
    #[test]
    fn unknown_job_types_share_the_other_label() {
        let metrics = Metrics::new("w1");
        metrics.preregister(&["q".to_owned()], &["t"]);
        let before = metrics.render().lines().count();
        for i in 0..50 {
            let t = format!("unknown-{i}");
            metrics.started.with_label_values(&["q", t.as_str()]).inc();
            metrics.retries.with_label_values(&["q", t.as_str()]).inc();
            metrics
                .duration
                .with_label_values(&["q", t.as_str()])
                .observe(0.01);
            metrics
                .finished
                .with_label_values(&["q", t.as_str(), "failure"])
                .inc();
        }
        metrics.started.with_label_values(&["q", "t"]).inc();
        let text = metrics.render();
        assert!(!text.contains("unknown-"), "{text}");
        assert_eq!(text.lines().count(), before, "no new series");
        assert!(
            text.contains(r#"tether_jobs_started_total{queue="q",type="other",worker="w1"} 50"#)
        );
        assert!(text.contains(r#"tether_jobs_started_total{queue="q",type="t",worker="w1"} 1"#));
        assert!(text.contains(
            r#"tether_jobs_finished_total{queue="q",status="failure",type="other",worker="w1"} 50"#
        ));
    }
}
