//! One module per subcommand (or family of them); `main` dispatches to them.

pub(crate) mod api;
pub(crate) mod bench;
pub(crate) mod enqueue;
pub(crate) mod jobs;
pub(crate) mod list;
pub(crate) mod queue;
pub(crate) mod queues;
pub(crate) mod schedule;
pub(crate) mod task;
pub(crate) mod worker;

use tether_producer::Producer;
use tether_store::{Store, StoreConfig};

use crate::settings::Global;

/// A command's outcome: an error is printed as `error: …` and exits 1.
pub(crate) type CliResult = Result<(), String>;

pub(crate) fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Connects to the store, naming the (redacted) URL when it cannot.
pub(crate) async fn connect(config: StoreConfig) -> Result<Store, String> {
    let url = config.url.clone();
    Store::connect(config).await.map_err(|e| {
        format!(
            "cannot connect to Redis at {}: {e}",
            tether_store::redact(&url)
        )
    })
}

/// A producer on the configured store, for the commands that read and change jobs.
pub(crate) async fn producer(global: &Global) -> Result<Producer, String> {
    let file = global.file()?;
    Ok(Producer::from_store(connect(global.store(&file)?).await?))
}

/// A `--input` flag's JSON.
pub(crate) fn parse_input(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| format!("--input is not valid JSON: {e}"))
}
