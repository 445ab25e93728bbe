//! The API's Prometheus metrics: enqueues, and requests by route and status.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Handles to the API's metrics; cheap to clone.
#[derive(Clone, Debug)]
pub struct ApiMetrics {
    registry: Registry,
    pub enqueued: IntCounterVec,
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let enqueued = IntCounterVec::new(
            Opts::new(
                "tether_jobs_enqueued_total",
                "Jobs enqueued through the API",
            ),
            &["queue", "type"],
        )
        .expect("metric");
        let requests = IntCounterVec::new(
            Opts::new(
                "tether_http_requests_total",
                "API requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "tether_http_request_duration_seconds",
                "API request latency by route",
            )
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16).expect("buckets")),
            &["route", "method"],
        )
        .expect("metric");
        let build = prometheus::IntGaugeVec::new(
            Opts::new("tether_build_info", "Build information"),
            &["version"],
        )
        .expect("metric");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        registry.register(Box::new(build)).expect("register");
        for m in [&enqueued, &requests] {
            registry.register(Box::new(m.clone())).expect("register");
        }
        registry
            .register(Box::new(latency.clone()))
            .expect("register");
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("register");
        ApiMetrics {
            registry,
            enqueued,
            requests,
            latency,
        }
    }

    pub(crate) fn observe(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[route, method])
            .observe(took.as_secs_f64());
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encode");
        String::from_utf8(buf).unwrap_or_default()
    }
}
