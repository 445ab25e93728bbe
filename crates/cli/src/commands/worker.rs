//! `tether worker`: a worker with the demo handler set until SIGTERM/SIGINT.

use std::time::Duration;

use tether_store::Store;
use tether_worker::Worker;

use super::{CliResult, err};
use crate::settings::{Global, WorkerArgs};
use crate::signal;

pub(crate) async fn run(args: WorkerArgs, global: &Global) -> CliResult {
    let file = global.file()?;
    let mut store_config = global.store(&file)?;
    // The same quota as the API's: a tenant's jobs cannot enqueue past it what the API
    // would refuse (a handler's children, schedule firings).
    store_config.max_pending_per_owner = args
        .max_pending_per_owner
        .or(file.api.max_pending_per_owner)
        .unwrap_or(crate::settings::DEFAULT_MAX_PENDING_PER_OWNER);
    let url = store_config.url.clone();
    let settings = args.settings(&file.worker, store_config.max_payload_bytes, &url);
    // Workers start even while Redis is down, and connect when it comes up.
    let store = loop {
        match Store::connect(store_config.clone()).await {
            Ok(store) => break store,
            // The records' layout is not this version's to serve (docs/STORAGE.md):
            // waiting would not change that, and the message says what to do.
            Err(e @ tether_store::StoreError::Layout(_)) => return Err(err(e)),
            Err(e) => {
                tracing::warn!(redis = %tether_store::redact(&url), error = %e, "Redis unreachable; retrying in 1s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                }
            }
        }
    };
    let builder = Worker::builder(store).config(settings.config);
    let worker = tether_demo_handlers::register(builder, &settings.ledger)
        .build()
        .map_err(err)?;
    let shutdown =
        signal::shutdown_on_signal("shutdown signal received: no new jobs; finishing running ones");
    worker.run(shutdown).await.map_err(err)
}
