//! Worker settings, checked once by the builder.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tether_model::JobInput;
use tether_store::StoreError;

use super::Worker;
use crate::handler::{ErasedHandler, IntoHandler};

/// Most jobs leased in one claim call, so that one claim stays a short script call.
pub const MAX_CLAIM_BATCH: usize = 1000;

/// Most jobs one worker process runs at once: every heartbeat renews them all and
/// lists them in the worker's registration.
pub const MAX_CONCURRENCY: usize = 10_000;
/// Longest lease a worker takes.
pub(crate) const MAX_LEASE_TTL: Duration = Duration::from_secs(24 * 3600);

/// Worker settings. Defaults: 16 jobs at once, 30 s leases renewed every 10 s,
/// reaping every 5 s, 30 s shutdown grace, claims of up to 64 jobs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub queues: Vec<String>,
    /// Jobs run at once (across all queues), 1 to [`MAX_CONCURRENCY`].
    pub concurrency: usize,
    pub lease_ttl: Duration,
    /// Lease renewal period, at most a third of `lease_ttl` (so one renewal can fail and
    /// the next still land in time); `lease_ttl / 3` when not set.
    pub heartbeat: Option<Duration>,
    /// How often this worker looks for lapsed leases and expired records.
    pub reap_interval: Duration,
    /// How long shutdown waits for running jobs before handing their leases back.
    pub shutdown_grace: Duration,
    /// Most jobs leased in one claim call, 1 to [`MAX_CLAIM_BATCH`].
    pub claim_batch: usize,
    /// Inputs larger than this fail with `PayloadTooLarge` without running.
    pub max_payload_bytes: usize,
    /// Serve `/metrics` and `/healthz` here.
    pub metrics_addr: Option<SocketAddr>,
    /// This worker's id; `<host>-<pid>-<random>` when not set.
    pub id: Option<String>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            queues: vec!["default".to_owned()],
            concurrency: 16,
            lease_ttl: tether_model::DEFAULT_LEASE_TTL,
            heartbeat: None,
            reap_interval: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(30),
            claim_batch: 64,
            max_payload_bytes: tether_model::DEFAULT_MAX_PAYLOAD_BYTES,
            metrics_addr: None,
            id: None,
        }
    }
}

impl WorkerConfig {
    /// The renewal period in force.
    pub fn heartbeat_every(&self) -> Duration {
        self.heartbeat.unwrap_or(self.lease_ttl / 3)
    }

    /// Refuses settings that cannot work, with a message naming the setting.
    pub fn validate(&self) -> Result<(), WorkerError> {
        let refuse = |message: String| Err(WorkerError::Config(message));
        if self.queues.is_empty() {
            return refuse("at least one queue is needed".into());
        }
        for (i, q) in self.queues.iter().enumerate() {
            tether_model::validate_queue_name(q).map_err(|e| WorkerError::Config(e.to_string()))?;
            if self.queues[..i].contains(q) {
                return refuse(format!("queue {q} is listed twice"));
            }
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return refuse(format!(
                "concurrency must be 1 to {MAX_CONCURRENCY}, not {}",
                self.concurrency
            ));
        }
        if !(1..=MAX_CLAIM_BATCH).contains(&self.claim_batch) {
            return refuse(format!(
                "claim batch must be 1 to {MAX_CLAIM_BATCH}, not {}",
                self.claim_batch
            ));
        }
        if self.lease_ttl < Duration::from_millis(300) || self.lease_ttl > MAX_LEASE_TTL {
            return refuse(format!(
                "lease ttl must be 300ms to {}h, not {:?}",
                MAX_LEASE_TTL.as_secs() / 3600,
                self.lease_ttl
            ));
        }
        let beat = self.heartbeat_every();
        // One renewal can fail and the next still land before the self-fence.
        if beat.is_zero() || beat > self.lease_ttl / 3 {
            return refuse(format!(
                "heartbeat must be above 0 and at most a third of the lease ttl ({:?}), not {beat:?}",
                self.lease_ttl
            ));
        }
        if self.reap_interval.is_zero() {
            return refuse("reap interval must be above 0".into());
        }
        Ok(())
    }
}

/// Why a worker could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    #[error("invalid worker settings: {0}")]
    Config(String),
    #[error("cannot serve metrics on {addr}: {source}")]
    MetricsBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Builds a [`Worker`].
///
/// ```no_run
/// # use tether_worker::{JobContext, JobError, OneStep};
/// # struct Noop;
/// # impl OneStep for Noop {
/// #     type Input = ();
/// #     type Output = ();
/// #     async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> { Ok(()) }
/// # }
/// # async fn demo(store: tether_store::Store) -> Result<(), tether_worker::WorkerError> {
/// use std::time::Duration;
/// use tether_worker::Worker;
/// let worker = Worker::builder(store)
///     .queues(["default", "mail"])
///     .concurrency(64)
///     .lease_ttl(Duration::from_secs(30))
///     .handler("noop", Noop)
///     .build()?;
/// worker.run(tether_worker::CancellationToken::new()).await
/// # }
/// ```
pub struct WorkerBuilder {
    pub(super) store: tether_store::Store,
    pub(super) config: WorkerConfig,
    pub(super) handlers: HashMap<String, Arc<dyn ErasedHandler>>,
}

impl std::fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("config", &self.config)
            .finish()
    }
}

impl WorkerBuilder {
    pub fn config(mut self, config: WorkerConfig) -> Self {
        self.config = config;
        self
    }
    pub fn queues<I: IntoIterator<Item = S>, S: Into<String>>(mut self, queues: I) -> Self {
        self.config.queues = queues.into_iter().map(Into::into).collect();
        self
    }
    pub fn concurrency(mut self, n: usize) -> Self {
        self.config.concurrency = n;
        self
    }
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.config.lease_ttl = ttl;
        self
    }
    pub fn reap_interval(mut self, every: Duration) -> Self {
        self.config.reap_interval = every;
        self
    }
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.shutdown_grace = grace;
        self
    }
    pub fn metrics_addr(mut self, addr: SocketAddr) -> Self {
        self.config.metrics_addr = Some(addr);
        self
    }
    /// Registers `handler` (a [`OneStep`](crate::OneStep) or a [`Handler`](crate::Handler))
    /// for jobs of `job_type`; a later registration of the same type replaces it.
    pub fn handler<K, H: IntoHandler<K>>(
        mut self,
        job_type: impl Into<String>,
        handler: H,
    ) -> Self {
        self.handlers.insert(job_type.into(), handler.into_erased());
        self
    }

    /// Registers `handler` for the job type its input names ([`JobInput::TYPE`]): the
    /// type producers enqueue with [`JobSpec::of`](tether_model::JobSpec::of).
    ///
    /// ```
    /// use serde::Deserialize;
    /// use tether_worker::{JobContext, JobError, JobInput, OneStep, Worker};
    ///
    /// #[derive(Deserialize)]
    /// struct Email { to: String }
    /// impl JobInput for Email { const TYPE: &'static str = "send_email"; }
    ///
    /// struct SendEmail;
    /// impl OneStep for SendEmail {
    ///     type Input = Email;
    ///     type Output = ();
    ///     async fn run(&self, _: &JobContext, email: Email) -> Result<(), JobError> {
    ///         println!("to {}", email.to);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # fn demo(store: tether_store::Store) -> Result<(), tether_worker::WorkerError> {
    /// // Runs the jobs of `JobSpec::of(&Email { .. })`, of type "send_email".
    /// let worker = Worker::builder(store).queues(["mail"]).register(SendEmail).build()?;
    /// # Ok(()) }
    /// ```
    pub fn register<K, H>(self, handler: H) -> Self
    where
        H: IntoHandler<K>,
        H::Input: JobInput,
    {
        self.handler(<H::Input as JobInput>::TYPE, handler)
    }

    /// Checks the settings.
    pub fn build(mut self) -> Result<Worker, WorkerError> {
        self.config.validate()?;
        // Every worker runs batches (`Producer::enqueue_batch`): they have no handler of
        // their own.
        self.handlers
            .entry(tether_model::tree::BATCH_TYPE.to_owned())
            .or_insert_with(|| crate::batch::Batch.into_erased());
        Ok(Worker::new(self.store, self.config, self.handlers))
    }
}
