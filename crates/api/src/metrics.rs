//! The API's Prometheus metrics: enqueues, and requests by route and status.
//!
//! Every label value comes from a bounded set: methods from the standard ones,
//! routes from the router's patterns, queues and types from configuration plus
//! the first few others seen (see [`LabelSet`]); anything else is `other`. A
//! client cannot add series by inventing names.

use std::sync::Arc;
use std::time::Duration;

use tether_model::labels::LabelSet;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Handles to the API's metrics; cheap to clone.
#[derive(Clone, Debug)]
pub struct ApiMetrics {
    registry: Registry,
    /// `tether_jobs_enqueued_total{queue,type}`.
    pub enqueued: EnqueuedCounter,
    requests: IntCounterVec,
    latency: HistogramVec,
    methods: Arc<LabelSet>,
}

/// Queue and type names beyond configuration that may become labels (each).
pub const DYNAMIC_LABELS: usize = 32;

/// Jobs enqueued by queue and type, with both names bounded before they become labels.
#[derive(Clone, Debug)]
pub struct EnqueuedCounter {
    counter: IntCounterVec,
    queues: Arc<LabelSet>,
    types: Arc<LabelSet>,
}

impl EnqueuedCounter {
    /// The counter for `[queue, type]`; names outside the bounded sets count as `other`.
    pub fn with_label_values<S: AsRef<str>>(&self, values: &[S]) -> prometheus::IntCounter {
        let get = |i: usize| values.get(i).map(AsRef::as_ref).unwrap_or("");
        self.counter
            .with_label_values(&[self.queues.label(get(0)), self.types.label(get(1))])
    }
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiMetrics {
    /// Metrics that know no queues or types in advance.
    pub fn new() -> Self {
        Self::with_known(["default"], [] as [&str; 0])
    }

    /// Metrics whose `queue` and `type` labels always admit `queues` and `types`,
    /// plus [`DYNAMIC_LABELS`] others each.
    pub fn with_known<Q, T>(
        queues: impl IntoIterator<Item = Q>,
        types: impl IntoIterator<Item = T>,
    ) -> Self
    where
        Q: Into<String>,
        T: Into<String>,
    {
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
        let enqueued = EnqueuedCounter {
            counter: enqueued,
            queues: Arc::new(LabelSet::new(queues, DYNAMIC_LABELS)),
            types: Arc::new(LabelSet::new(types, DYNAMIC_LABELS)),
        };
        for m in [&enqueued.counter, &requests] {
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
            methods: Arc::new(LabelSet::http_methods()),
        }
    }

    /// Records one request. `route` must be a router pattern (or one fixed word);
    /// `method` is bounded here.
    pub(crate) fn observe(&self, route: &str, method: &str, status: u16, took: Duration) {
        let method = self.methods.label(method);
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[route, method])
            .observe(took.as_secs_f64());
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encode");
        String::from_utf8(buf).unwrap_or_default()
    }
}
