//! `/metrics` and `/healthz` for Prometheus and orchestrators.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::WorkerError;
use crate::metrics::Metrics;

/// A scrape reads from Redis first only when the last read is older than this.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// A scrape waits this long for Redis at most, then serves the last values read.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(1);

/// Binds `addr` now (so a taken port is an error at start) and serves until `stop`.
/// Each scrape of `/metrics` first awaits `refresh` (what the worker reads from Redis
/// for its queues' series), unless another scrape did within [`REFRESH_EVERY`].
pub(crate) async fn serve<F, Fut>(
    addr: SocketAddr,
    metrics: Metrics,
    refresh: F,
    stop: CancellationToken,
) -> Result<(), WorkerError>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| WorkerError::MetricsBind { addr, source })?;
    tracing::info!(%addr, "serving /metrics and /healthz");
    // Concurrent scrapes wait for one read rather than each sending their own.
    let last_read: Arc<Mutex<Option<Instant>>> = Arc::default();
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let (metrics, refresh, last_read) =
                    (metrics.clone(), refresh.clone(), last_read.clone());
                async move {
                    {
                        let mut last = last_read.lock().await;
                        if last.is_none_or(|at| at.elapsed() >= REFRESH_EVERY) {
                            let _ = tokio::time::timeout(REFRESH_TIMEOUT, refresh()).await;
                            *last = Some(Instant::now());
                        }
                    }
                    let body = metrics.render();
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }));
    tokio::spawn(async move {
        let server = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await });
        if let Err(e) = server.await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(())
}
