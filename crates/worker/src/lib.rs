//! Tether's worker runtime.
//!
//! Register a [`Handler`] per job type, then [`Worker::run`]. The runtime
//! leases jobs in batches, runs each job's `handle` and then polls its
//! `check_complete` (checkpointing the progress object after each step),
//! renews leases with batched heartbeats, stops jobs whose cancel was
//! requested, whose lease was lost, or whose timeout passed, catches panics,
//! retries with the job's backoff, and shuts down gracefully.
//!
//! Delivery is at-least-once: a job may run again after a crash or a lost
//! lease, but only the current lease holder's outcome is ever recorded. Pass
//! `(ctx.id(), ctx.attempt())` to downstream systems to make side effects
//! exactly-once.
//!
//! ```no_run
//! use tether_store::{Store, StoreConfig};
//! use tether_worker::{Handler, JobContext, JobError, Step, Worker};
//!
//! struct Greet;
//! impl Handler for Greet {
//!     type Input = String;
//!     type Progress = ();
//!     type Output = String;
//!     async fn handle(&self, _ctx: &JobContext, name: &String) -> Result<Step<(), String>, JobError> {
//!         Ok(Step::Done(format!("hello, {name}")))
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::connect(StoreConfig::new("redis://127.0.0.1:6380")).await?;
//! // Cancel `shutdown` to stop gracefully; the `tether` binary cancels it on SIGTERM or SIGINT.
//! let shutdown = tether_worker::CancellationToken::new();
//! Worker::builder(store).queues(["default"]).handler("greet", Greet).build()?.run(shutdown).await?;
//! # Ok(()) }
//! ```

mod context;
mod handler;
mod http;
pub mod metrics;
mod retry;
mod runtime;

pub use context::JobContext;
pub use handler::{Check, Handler, JobError, Step};
pub use runtime::{
    MAX_CLAIM_BATCH, MAX_CONCURRENCY, Worker, WorkerBuilder, WorkerConfig, WorkerError,
};
pub use tokio_util::sync::CancellationToken;
