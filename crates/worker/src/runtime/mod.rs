//! The worker runtime: claim loops, job tasks, heartbeats, maintenance, shutdown.
//!
//! Tasks of one worker process, one module each:
//! * [`claim`]: one **claim loop** per queue waits for capacity, leases a batch
//!   with one script call, spawns a job task per job, and when the queue is empty
//!   blocks on a dedicated connection until something arrives;
//! * [`job`]: one **job task** per attempt runs the Heat loop raced against
//!   cancel, lease loss, its own self-fence clock, timeout and shutdown, then hands
//!   the outcome to the queue's finisher;
//! * [`finisher`]: one per queue records the outcomes that arrived together in one
//!   fenced script call;
//! * [`heartbeat`]: renews every in-flight lease (one call per queue) and refreshes
//!   this worker's registration;
//! * [`scheduler`]: fires due schedules (every worker; no leader);
//! * [`maintenance`]: promotes due delayed jobs, reaps lapsed leases, expires old
//!   records (each in passes until nothing is left), samples queue depths. Every
//!   worker runs it; the scripts make concurrent runs harmless, so there is no
//!   leader to elect.
//!
//! An attempt is identified by its lease (job id and fencing token), not by the job
//! id alone: when a claim hands this worker a job it is still running under an older
//! lease (the old lease lapsed unnoticed and the job was reaped), the old attempt is
//! stopped at once and can no longer touch the new attempt's bookkeeping.

mod claim;
mod config;
mod finisher;
mod heartbeat;
mod job;
mod maintenance;
mod scheduler;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::Rng;
use tether_model::JobId;
use tether_store::{Lease, Store};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{MAX_CLAIM_BATCH, MAX_CONCURRENCY, WorkerBuilder, WorkerConfig, WorkerError};

use crate::context::Slot;
use crate::handler::ErasedHandler;
use crate::metrics::Metrics;
use crate::retry::with_store_retries;
use finisher::FinishRequest;

/// A worker process's runtime. See the module docs for its tasks.
pub struct Worker {
    shared: Arc<Shared>,
    /// Per queue: the finisher's end of `Shared::finishers`, handed to it by `run`.
    finisher_inboxes: Vec<(String, mpsc::UnboundedReceiver<FinishRequest>)>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.shared.id)
            .finish()
    }
}

/// What every task of a worker shares.
struct Shared {
    store: Store,
    config: WorkerConfig,
    handlers: HashMap<String, Arc<dyn ErasedHandler>>,
    id: String,
    /// Looked up once: the registration repeats it every heartbeat.
    host: String,
    metrics: Metrics,
    started_at: chrono::DateTime<chrono::Utc>,
    /// The current attempt of each job this worker runs.
    slots: Mutex<HashMap<JobId, Arc<Slot>>>,
    capacity: Arc<Semaphore>,
    jobs: TaskTracker,
    /// Fired when the shutdown grace period is over: running jobs stop and write nothing.
    abandon: CancellationToken,
    /// Workers' registrations as last read, to tell whether another live worker runs
    /// a job type this one lacks (read at most once per heartbeat period).
    registry: tokio::sync::Mutex<Option<(std::time::Instant, Vec<tether_store::WorkerInfo>)>>,
    /// Leases of jobs stopped by `abandon`, to hand back.
    abandoned: Mutex<Vec<Lease>>,
    /// Per queue: where job tasks send their outcomes to be recorded in batches.
    finishers: HashMap<String, mpsc::UnboundedSender<FinishRequest>>,
}

impl Shared {
    /// Counts a failed Redis call of kind `op`.
    fn redis_error(&self, op: &str) {
        self.metrics.redis_errors.with_label_values(&[op]).inc();
    }

    /// Registers a new attempt. An older attempt of the same job on this worker has
    /// lost its lease (the job could not have been claimed again otherwise): it is
    /// stopped now. Returns false, and registers nothing, when the attempt is itself
    /// the older one (two replies handled out of order).
    fn start_attempt(&self, slot: Arc<Slot>) -> bool {
        let mut slots = self.slots.lock().unwrap();
        if let Some(current) = slots.get(&slot.lease.id) {
            if current.lease.token.epoch() > slot.lease.token.epoch() {
                return false;
            }
            tracing::warn!(job = %slot.lease.id, "claimed again while an older attempt still ran here: stopping the older attempt");
            current.lost.cancel();
        }
        slots.insert(slot.lease.id, slot);
        true
    }

    /// Forgets an attempt, unless a newer attempt of the job has taken its place.
    fn end_attempt(&self, slot: &Arc<Slot>) {
        let mut slots = self.slots.lock().unwrap();
        if slots
            .get(&slot.lease.id)
            .is_some_and(|current| Arc::ptr_eq(current, slot))
        {
            slots.remove(&slot.lease.id);
        }
    }

    /// The attempts in flight now.
    fn attempts(&self) -> Vec<Arc<Slot>> {
        self.slots.lock().unwrap().values().cloned().collect()
    }
}

impl Worker {
    /// Starts building a worker on `store`.
    pub fn builder(store: Store) -> WorkerBuilder {
        WorkerBuilder {
            store,
            config: WorkerConfig::default(),
            handlers: HashMap::new(),
        }
    }

    fn new(
        store: Store,
        config: WorkerConfig,
        handlers: HashMap<String, Arc<dyn ErasedHandler>>,
    ) -> Worker {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "host".into());
        let id = config.id.clone().unwrap_or_else(|| {
            format!(
                "{host}-{}-{:04x}",
                std::process::id(),
                rand::rng().random::<u16>()
            )
        });
        let metrics = Metrics::new(&id);
        let types: Vec<&str> = handlers.keys().map(String::as_str).collect();
        metrics.preregister(&config.queues, &types);
        let mut finishers = HashMap::new();
        let mut finisher_inboxes = Vec::new();
        for queue in &config.queues {
            let (tx, rx) = mpsc::unbounded_channel();
            finishers.insert(queue.clone(), tx);
            finisher_inboxes.push((queue.clone(), rx));
        }
        let shared = Shared {
            capacity: Arc::new(Semaphore::new(config.concurrency)),
            finishers,
            store,
            config,
            handlers,
            id,
            host,
            metrics,
            started_at: chrono::Utc::now(),
            slots: Mutex::new(HashMap::new()),
            jobs: TaskTracker::new(),
            abandon: CancellationToken::new(),
            abandoned: Mutex::new(Vec::new()),
            registry: tokio::sync::Mutex::new(None),
        };
        Worker {
            shared: Arc::new(shared),
            finisher_inboxes,
        }
    }

    pub fn id(&self) -> &str {
        &self.shared.id
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Runs until `shutdown` fires: stop claiming, let running jobs finish within the
    /// grace period, hand the rest back at once. The caller decides what stops it (the
    /// `tether` binary: SIGTERM or SIGINT); the library listens for no signal.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let Worker {
            shared,
            finisher_inboxes,
        } = self;
        let background = CancellationToken::new();
        if let Some(addr) = shared.config.metrics_addr {
            // A scrape shows the queues' counts as Redis has them now (at most one read
            // per queue a second), not as the last maintenance pass saw them.
            let reader = shared.clone();
            let refresh = move || {
                let shared = reader.clone();
                async move {
                    let queues = shared.config.queues.iter();
                    futures::future::join_all(queues.map(|q| maintenance::read_counts(&shared, q)))
                        .await;
                }
            };
            crate::http::serve(addr, shared.metrics.clone(), refresh, background.clone()).await?;
        }
        setup(&shared, &shutdown).await?;
        tracing::info!(worker = %shared.id, queues = ?shared.config.queues, concurrency = shared.config.concurrency, "worker started");

        for (queue, inbox) in finisher_inboxes {
            tokio::spawn(finisher::run(
                shared.clone(),
                queue,
                inbox,
                background.clone(),
            ));
        }
        let loops = TaskTracker::new();
        for queue in shared.config.queues.clone() {
            loops.spawn(claim::run(shared.clone(), queue, shutdown.clone()));
        }
        loops.close();
        let heartbeat = tokio::spawn(heartbeat::run(shared.clone(), background.clone()));
        let promotion = tokio::spawn(maintenance::promote_loop(shared.clone(), shutdown.clone()));
        let maintenance = tokio::spawn(maintenance::run(shared.clone(), shutdown.clone()));
        let scheduler = tokio::spawn(scheduler::run(shared.clone(), shutdown.clone()));

        shutdown.cancelled().await;
        loops.wait().await;
        shared.jobs.close();
        if tokio::time::timeout(shared.config.shutdown_grace, shared.jobs.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "grace period over: stopping running jobs and handing their leases back"
            );
            shared.abandon.cancel();
            shared.jobs.wait().await;
        }
        maintenance::release_abandoned(&shared).await;
        background.cancel();
        let _ = heartbeat.await;
        let _ = promotion.await;
        let _ = maintenance.await;
        let _ = scheduler.await;
        if let Err(e) = shared.store.remove_worker(&shared.id).await {
            tracing::debug!(error = %e, "could not deregister");
        }
        tracing::info!(worker = %shared.id, "worker stopped");
        Ok(())
    }
}

/// Registers the queues (retrying while Redis is unreachable) and reports durability.
async fn setup(shared: &Shared, shutdown: &CancellationToken) -> Result<(), WorkerError> {
    for queue in &shared.config.queues {
        match with_store_retries(shutdown, || shared.store.ensure_queue(queue)).await {
            Some(result) => result?,
            None => return Ok(()),
        }
    }
    // Registered before the first claim, so other workers know at once which job
    // types this one runs (they hand such jobs back instead of failing them).
    heartbeat::register(shared).await;
    match shared.store.durability().await {
        Ok((policy, aof, fsync)) => {
            if policy != "noeviction" {
                tracing::warn!(%policy, "Redis maxmemory-policy is not noeviction: Redis may evict job records under memory pressure; set maxmemory-policy noeviction");
            }
            if aof == "yes" {
                tracing::info!(appendfsync = %fsync, "Redis AOF is on");
            } else {
                tracing::warn!(
                    "Redis AOF is off: a Redis crash loses jobs written since the last snapshot; set appendonly yes"
                );
            }
        }
        Err(e) => {
            tracing::info!(error = %e, "cannot read Redis durability settings (CONFIG GET refused?)")
        }
    }
    Ok(())
}
