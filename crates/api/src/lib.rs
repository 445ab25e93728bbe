//! Tether's REST API: OpenStack Glance v2 Tasks compatible, extended with
//! cancel (vSphere `CancelTask`), re-queue of dead tasks, name/description
//! (Xen), progress/phase/ETA in every task body, and live Server-Sent Events.
//!
//! It is a thin layer over `tether-producer` and knows nothing of Redis keys.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use tether_api::{ApiConfig, Auth};
//! let producer = tether_producer::Producer::connect("redis://127.0.0.1:6379").await.unwrap();
//! let config = ApiConfig { auth: Auth::from_toml(&std::fs::read_to_string("tokens.toml")?).unwrap(), ..ApiConfig::default() };
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9292").await?;
//! // Cancel `shutdown` to stop serving; the `tether` binary cancels it on SIGTERM or SIGINT.
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! tether_api::serve(listener, producer, config, shutdown.clone()).await
//! # }
//! ```

pub mod auth;
mod console;
mod error;
mod external;
pub mod glance;
mod metrics;
mod openapi;
mod queues;
mod routes;
mod schedules;
mod server;
mod streams;
#[cfg(feature = "otel")]
mod trace;
mod ui;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use tether_producer::Producer;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::{Auth, Caller};
pub use error::ApiError;
pub use metrics::{ApiMetrics, DYNAMIC_LABELS, EnqueuedCounter};

/// API settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub auth: Auth,
    /// When known, creating a task of another type is a 400 and the schema lists them.
    pub job_types: Option<Vec<String>>,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// Queue for tasks created without one.
    pub default_queue: String,
    /// When set, the only queues tasks may be created in (403 otherwise): each new
    /// queue name costs Redis keys and every unfiltered list a read. `None`: any valid name.
    pub allowed_queues: Option<Vec<String>>,
    /// The URL clients reach the API at (`https://tasks.example.com`); links in
    /// answers start with it. Unset, links use the request's Host header when it
    /// is a plain `host[:port]`, else `localhost`.
    pub public_url: Option<String>,
    /// When set, [`serve`] answers `/metrics` (and `/healthz`) on this address only,
    /// so the API port need not expose per-queue counts.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// A connection that has not sent a request's headers this long after it
    /// opened (or after its previous answer) is closed; a request's body that has
    /// not arrived whole this long after its headers is answered 408.
    pub header_read_timeout: Duration,
    /// A connection on which no byte moved either way this long is closed (a
    /// stalled body, a client that stopped reading). Event streams send a
    /// keep-alive comment well within it.
    pub idle_timeout: Duration,
    /// Most event streams open at once, over all callers; more are refused (429).
    pub max_event_streams: usize,
    /// Most event streams one caller (one owner) may hold open; more are refused (429).
    pub max_event_streams_per_caller: usize,
}

impl Default for ApiConfig {
    /// No tokens (every request is 401), any job type, 1 MiB bodies, queue `default`,
    /// any queue.
    fn default() -> Self {
        ApiConfig {
            auth: Auth::Tokens(Vec::new()),
            job_types: None,
            body_limit: 1024 * 1024,
            default_queue: "default".into(),
            allowed_queues: None,
            public_url: None,
            metrics_addr: None,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_event_streams: 1000,
            max_event_streams_per_caller: 20,
        }
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    producer: Producer,
    config: Arc<ApiConfig>,
    metrics: ApiMetrics,
    shutdown: CancellationToken,
    streams: Arc<streams::StreamSlots>,
}

#[derive(OpenApi)]
#[openapi(info(
    title = "Tether Tasks API",
    description = "OpenStack Glance v2 Tasks compatible job API with Tether's extensions"
))]
struct ApiDoc;

/// The router and its OpenAPI document. `shutdown` ends open event streams.
pub fn router(
    producer: Producer,
    config: ApiConfig,
    shutdown: CancellationToken,
) -> (Router, ApiMetrics) {
    let metrics = ApiMetrics::with_known(
        [config.default_queue.clone()],
        config.job_types.clone().unwrap_or_default(),
    );
    let state = AppState {
        producer,
        metrics: metrics.clone(),
        streams: streams::StreamSlots::new(
            config.max_event_streams,
            config.max_event_streams_per_caller,
        ),
        config: Arc::new(config),
        shutdown,
    };
    let body_limit = state.config.body_limit;
    let metrics_here = state.config.metrics_addr.is_none();
    let (api, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::create_task, routes::list_tasks))
        .routes(routes!(routes::show_task, routes::patch_task))
        .routes(routes!(routes::cancel_task))
        .routes(routes!(routes::retry_task))
        .routes(routes!(console::bulk_tasks))
        .routes(routes!(console::search))
        .routes(routes!(external::progress))
        .routes(routes!(external::describe))
        .routes(routes!(external::complete))
        .routes(routes!(external::abort))
        .routes(routes!(external::spawn_child))
        .routes(routes!(routes::task_events))
        .routes(routes!(routes::schema_task))
        .routes(routes!(routes::schema_tasks))
        .routes(routes!(routes::versions_doc))
        .routes(routes!(routes::list_queues))
        .routes(routes!(
            schedules::create_schedule,
            schedules::list_schedules
        ))
        .routes(routes!(
            schedules::show_schedule,
            schedules::patch_schedule,
            schedules::delete_schedule
        ))
        .routes(routes!(queues::show_queue, queues::patch_queue))
        .routes(routes!(queues::pause_queue))
        .routes(routes!(queues::resume_queue))
        .routes(routes!(console::retry_dead))
        .routes(routes!(console::purge_dead))
        .routes(routes!(console::throughput))
        .routes(routes!(schedules::pause_schedule))
        .routes(routes!(schedules::resume_schedule))
        .routes(routes!(schedules::trigger_schedule))
        .split_for_parts();
    let doc = Arc::new(openapi::document(&doc, &state.config));
    let app = api
        .route("/", get(routes::root))
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .route("/ui", get(ui::to_console))
        .route("/ui/", get(ui::index))
        .route("/ui/app.js", get(ui::app_js))
        .route("/ui/style.css", get(ui::style_css))
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz));
    // With a metrics address, /metrics stays off the API port: it names every
    // queue and type with counts.
    let app = if metrics_here {
        app.route("/metrics", get(routes::metrics))
    } else {
        app
    };
    let app = app
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.config.header_read_timeout,
            body_deadline,
        ))
        .layer(axum::middleware::from_fn(openstack_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            record_request,
        ))
        .with_state(state);
    (app, metrics)
}

/// Counts every request by route, method and status, and times it.
async fn record_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.observe(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Holds a request's body to arriving whole within the header-read timeout of its
/// headers (see [`server::DeadlineBody`]); a handler reading it late gets a 408.
async fn body_deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::Body::new(server::DeadlineBody::new(body, limit));
    next.run(Request::from_parts(parts, body)).await
}

/// OpenStack clients read an error body as `{"<name>": {"message": …, "code": <http status>}}`
/// (python-glanceclient calls `.get("message")` on every top-level value). Errors go to
/// them in that envelope; everyone else gets the flat `{"code": …, "message": …}`.
async fn openstack_errors(request: Request, next: Next) -> Response {
    const OPENSTACK_AGENTS: [&str; 3] = ["python-glanceclient", "openstacksdk", "keystoneauth1"];
    let openstack = request
        .headers()
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| OPENSTACK_AGENTS.iter().any(|a| ua.contains(a)));
    let response = next.run(request).await;
    if !openstack || !(response.status().is_client_error() || response.status().is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return Response::from_parts(parts, axum::body::Body::empty());
    };
    let flat: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let envelope = serde_json::json!({
        "error": {"code": parts.status.as_u16(), "title": flat["code"], "message": flat["message"]}
    });
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(envelope.to_string()))
}

/// Serves until `shutdown` fires; open event streams end then, in-flight requests finish.
/// Every connection is held to [`ApiConfig::header_read_timeout`] and
/// [`ApiConfig::idle_timeout`]; with [`ApiConfig::metrics_addr`], `/metrics` is
/// served there instead.
pub async fn serve(
    listener: tokio::net::TcpListener,
    producer: Producer,
    config: ApiConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if matches!(config.auth, Auth::Disabled) {
        tracing::warn!(
            "AUTHENTICATION IS DISABLED (--insecure-no-auth): anyone who can reach this port is an admin"
        );
    }
    let metrics_addr = config.metrics_addr;
    let timeouts = server::Timeouts {
        header_read: config.header_read_timeout,
        idle: config.idle_timeout,
    };
    let (app, metrics) = router(producer, config, shutdown.clone());
    if let Some(addr) = metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(%addr, "API metrics listening");
        tokio::spawn(server::run(
            listener,
            metrics_router(metrics),
            timeouts,
            shutdown.clone(),
        ));
    }
    tracing::info!(addr = %listener.local_addr()?, "API listening");
    server::run(listener, app, timeouts, shutdown).await
}

/// `/metrics` and `/healthz` alone, for [`ApiConfig::metrics_addr`].
pub fn metrics_router(metrics: ApiMetrics) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { routes::metrics_text(&metrics) }
            }),
        )
        .route("/healthz", get(routes::healthz))
}
