//! The worker's Prometheus metrics (names are a contract: SPEC §5), on an explicit registry.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
    exponential_buckets,
};

/// Handles to every worker metric; cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub started: IntCounterVec,
    pub finished: IntCounterVec,
    pub retries: IntCounterVec,
    pub duration: HistogramVec,
    pub wait: HistogramVec,
    pub in_flight: IntGaugeVec,
    pub queue_jobs: IntGaugeVec,
    pub lease_renewals: IntCounterVec,
    pub lease_expired: IntCounterVec,
    pub lease_lost: IntCounterVec,
    pub progress: prometheus::Histogram,
    pub redis_errors: IntCounterVec,
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
        let build = gauge("tether_build_info", "Build information", &["version"]);
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        Metrics {
            started: counter(
                "tether_jobs_started_total",
                "Attempts started",
                &["queue", "type"],
            ),
            finished: counter(
                "tether_jobs_finished_total",
                "Attempts finished, by recorded status",
                &["queue", "type", "status"],
            ),
            retries: counter(
                "tether_job_retries_total",
                "Attempts that failed and were scheduled again",
                &["queue", "type"],
            ),
            duration: histogram(
                "tether_job_duration_seconds",
                "Attempt run time (handle and checks)",
                &["queue", "type"],
                duration_buckets,
            ),
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
            progress,
            registry,
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
