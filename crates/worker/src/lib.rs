//! Tether's worker runtime.
//!
//! Register a handler per job type, then [`Worker::run`]. A job that runs from
//! input to output implements [`OneStep`]; a job whose work goes on elsewhere
//! implements [`Handler`]: `handle` starts it, then `check_complete` is polled
//! (checkpointing the progress object after each step) until it is done. The
//! runtime leases jobs in batches, renews leases with batched heartbeats, stops
//! jobs whose cancel was requested, whose lease was lost, or whose timeout
//! passed, catches panics, retries with the job's backoff, and shuts down
//! gracefully.
//!
//! Delivery is at-least-once: a job may run again after a crash or a lost
//! lease, but only the current lease holder's outcome is ever recorded. Pass
//! `(ctx.id(), ctx.attempt())` to downstream systems to make side effects
//! exactly-once.
//!
//! An input type that implements [`JobInput`] names its job type once: the worker
//! registers the handler under it ([`WorkerBuilder::register`]) and producers enqueue
//! with `JobSpec::of(&input)`.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use tether_store::{Store, StoreConfig};
//! use tether_worker::{JobContext, JobError, JobInput, OneStep, Worker};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Greeting {
//!     name: String,
//! }
//! impl JobInput for Greeting {
//!     const TYPE: &'static str = "greet";
//! }
//!
//! struct Greet;
//! impl OneStep for Greet {
//!     type Input = Greeting;
//!     type Output = String;
//!     async fn run(&self, _ctx: &JobContext, g: Greeting) -> Result<String, JobError> {
//!         Ok(format!("hello, {}", g.name))
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::connect(StoreConfig::new("redis://127.0.0.1:6380")).await?;
//! // Cancel `shutdown` to stop gracefully; the `tether` binary cancels it on SIGTERM or SIGINT.
//! let shutdown = tether_worker::CancellationToken::new();
//! Worker::builder(store).queues(["default"]).register(Greet).build()?.run(shutdown).await?;
//! # Ok(()) }
//! ```

mod batch;
mod context;
mod handler;
mod http;
pub mod metrics;
mod retry;
mod runtime;
mod trace;

pub use context::JobContext;
pub use handler::{Check, Handler, IntoHandler, JobError, OneStep, Step, kind};
pub use runtime::{
    MAX_CLAIM_BATCH, MAX_CONCURRENCY, Worker, WorkerBuilder, WorkerConfig, WorkerError,
};
pub use tether_model::JobInput;
pub use tether_store::Child;
pub use tokio_util::sync::CancellationToken;
#[cfg(feature = "otel")]
pub use trace::AttemptIds;
