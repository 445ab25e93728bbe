//! Retrying storage calls through Redis outages.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tether_store::StoreError;
use tokio_util::sync::CancellationToken;

/// Backoff for storage calls: 50 ms doubling to 2 s, with jitter, without end.
pub(crate) fn store_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .with_jitter()
        .without_max_times()
}

/// Runs `call` until it succeeds or fails for a reason other than a connection problem.
/// Gives up (returns `None`) when `stop` fires.
pub(crate) async fn with_store_retries<T, F, Fut>(
    stop: &CancellationToken,
    call: F,
) -> Option<Result<T, StoreError>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let retried = call
        .retry(store_backoff())
        .when(|e: &StoreError| e.is_retryable())
        .notify(|e, pause| tracing::warn!(error = %e, ?pause, "redis unavailable; retrying"));
    tokio::select! {
        result = retried => Some(result),
        _ = stop.cancelled() => None,
    }
}
