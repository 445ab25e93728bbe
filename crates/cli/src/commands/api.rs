//! `tether api`: the REST API until SIGTERM/SIGINT.

use std::time::Duration;

use tether_producer::Producer;
use tether_store::Store;

use super::{CliResult, connect, err};
use crate::settings::{ApiArgs, Global};
use crate::signal;

pub(crate) async fn run(args: ApiArgs, global: &Global) -> CliResult {
    let file = global.file()?;
    let mut store_config = global.store(&file)?;
    args.store(&file.api, &mut store_config);
    let store = connect(store_config).await?;
    let settings = args.settings(&file.api)?;
    let shutdown = signal::shutdown_on_signal("shutdown signal received");
    let idle = settings.forget_idle_queues;
    if !idle.is_zero() {
        tokio::spawn(forget_idle_queues(store.clone(), idle, shutdown.clone()));
    }
    let listen = settings.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let producer = Producer::from_store(store);
    tether_api::serve(listener, producer, settings.config, shutdown)
        .await
        .map_err(err)
}

/// Every few minutes, drops queues that are empty and unused from the registry, so junk
/// queue names do not slow every unfiltered list for ever.
async fn forget_idle_queues(
    store: Store,
    idle: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let every = (idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(300));
    loop {
        tokio::select! { _ = tokio::time::sleep(every) => {}, _ = stop.cancelled() => return }
        match store.forget_idle_queues(idle).await {
            Ok(gone) if !gone.is_empty() => tracing::info!(queues = ?gone, "forgot idle queues"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "forgetting idle queues failed"),
        }
    }
}
