//! The worker runtime: claim loops, job tasks, heartbeats, maintenance, shutdown.
//!
//! Tasks of one worker process:
//! * one **claim loop** per queue: waits for capacity, leases a batch with one
//!   script call, spawns a job task per job, and when the queue is empty blocks
//!   on a dedicated connection until something arrives;
//! * one **job task** per job: the Heat loop raced against cancel, lease loss,
//!   timeout and shutdown, then one fenced write of the outcome;
//! * the **heartbeat**: renews every in-flight lease (one call per queue) and
//!   self-fences jobs whose lease it could not renew in time;
//! * **maintenance**: promotes due delayed jobs, reaps lapsed leases, expires
//!   old records, samples queue depths. Every worker runs it; the scripts make
//!   concurrent runs harmless, so there is no leader to elect.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use rand::Rng;
use tether_model::{ErrorCode, JobId};
use tether_store::{
    Claimed, FinishOutcome, Lease, LeaseError, LeaseToken, Outcome, Store, StoreError, WorkerInfo,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::context::{JobContext, Slot};
use crate::handler::{ErasedHandler, Handler};
use crate::metrics::Metrics;
use crate::retry::{store_backoff, with_store_retries};

/// Worker settings. Defaults: 16 jobs at once, 30 s leases renewed every 10 s,
/// reaping every 5 s, 30 s shutdown grace, claims of up to 64 jobs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub queues: Vec<String>,
    /// Jobs run at once (across all queues).
    pub concurrency: usize,
    pub lease_ttl: Duration,
    /// Lease renewal period; `lease_ttl / 3` when not set.
    pub heartbeat: Option<Duration>,
    /// How often this worker looks for lapsed leases.
    pub reap_interval: Duration,
    /// How long shutdown waits for running jobs before handing their leases back.
    pub shutdown_grace: Duration,
    /// Most jobs leased in one claim call.
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
/// # async fn demo(store: tether_store::Store) -> Result<(), tether_worker::WorkerError> {
/// use std::time::Duration;
/// use tether_worker::{Worker, demo::Noop};
/// let worker = Worker::builder(store)
///     .queues(["default", "mail"])
///     .concurrency(64)
///     .lease_ttl(Duration::from_secs(30))
///     .handler("noop", Noop)
///     .build()?;
/// worker.run_until_signal().await
/// # }
/// ```
pub struct WorkerBuilder {
    store: Store,
    config: WorkerConfig,
    handlers: HashMap<String, Arc<dyn ErasedHandler>>,
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
    /// Registers `handler` for jobs of `job_type`.
    pub fn handler<H: Handler>(mut self, job_type: impl Into<String>, handler: H) -> Self {
        self.handlers.insert(job_type.into(), Arc::new(handler));
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<Worker, WorkerError> {
        let c = &self.config;
        if c.queues.is_empty() {
            return Err(WorkerError::Config("at least one queue is needed".into()));
        }
        for q in &c.queues {
            tether_model::validate_queue_name(q).map_err(|e| WorkerError::Config(e.to_string()))?;
        }
        if c.concurrency == 0 || c.claim_batch == 0 {
            return Err(WorkerError::Config(
                "concurrency and claim batch must be at least 1".into(),
            ));
        }
        if c.lease_ttl < Duration::from_millis(300) {
            return Err(WorkerError::Config(
                "lease_ttl must be at least 300ms".into(),
            ));
        }
        let id = c.id.clone().unwrap_or_else(default_worker_id);
        let metrics = Metrics::new(&id);
        let types: Vec<&str> = self.handlers.keys().map(String::as_str).collect();
        metrics.preregister(&c.queues, &types);
        let mut finishers = HashMap::new();
        let mut finisher_inboxes = Vec::new();
        for queue in &c.queues {
            let (tx, rx) = mpsc::unbounded_channel();
            finishers.insert(queue.clone(), tx);
            finisher_inboxes.push((queue.clone(), rx));
        }
        Ok(Worker {
            shared: Arc::new(Shared::new(
                self.store,
                self.config,
                self.handlers,
                id,
                metrics,
                finishers,
            )),
            finisher_inboxes,
        })
    }
}

fn default_worker_id() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "host".into());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::rng().random::<u16>()
    )
}

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

struct Shared {
    store: Store,
    config: WorkerConfig,
    handlers: HashMap<String, Arc<dyn ErasedHandler>>,
    id: String,
    metrics: Metrics,
    started_at: chrono::DateTime<chrono::Utc>,
    slots: Mutex<HashMap<JobId, Arc<Slot>>>,
    capacity: Arc<Semaphore>,
    jobs: TaskTracker,
    /// Fired when the shutdown grace period is over: running jobs stop and write nothing.
    abandon: CancellationToken,
    /// Leases of jobs stopped by `abandon`, to hand back.
    abandoned: Mutex<Vec<Lease>>,
    /// Per queue: where job tasks send their outcomes to be recorded in batches.
    finishers: HashMap<String, mpsc::UnboundedSender<FinishRequest>>,
}

/// An outcome to record, and where to send what the script answered
/// (`None`: shutdown's grace period ended before it could be written).
struct FinishRequest {
    lease: Lease,
    outcome: Outcome,
    reply: oneshot::Sender<Option<Result<FinishOutcome, LeaseError>>>,
}

impl Shared {
    fn new(
        store: Store,
        config: WorkerConfig,
        handlers: HashMap<String, Arc<dyn ErasedHandler>>,
        id: String,
        metrics: Metrics,
        finishers: HashMap<String, mpsc::UnboundedSender<FinishRequest>>,
    ) -> Self {
        Shared {
            finishers,
            capacity: Arc::new(Semaphore::new(config.concurrency)),
            store,
            config,
            handlers,
            id,
            metrics,
            started_at: chrono::Utc::now(),
            slots: Mutex::new(HashMap::new()),
            jobs: TaskTracker::new(),
            abandon: CancellationToken::new(),
            abandoned: Mutex::new(Vec::new()),
        }
    }

    fn heartbeat_every(&self) -> Duration {
        self.config.heartbeat.unwrap_or(self.config.lease_ttl / 3)
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

    pub fn id(&self) -> &str {
        &self.shared.id
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Runs until SIGTERM or SIGINT, then shuts down gracefully.
    pub async fn run_until_signal(self) -> Result<(), WorkerError> {
        let shutdown = CancellationToken::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received: no new jobs; finishing running ones");
            trigger.cancel();
        });
        self.run(shutdown).await
    }

    /// Runs until `shutdown` fires: stop claiming, let running jobs finish within the
    /// grace period, hand the rest back at once.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let Worker {
            shared,
            finisher_inboxes,
        } = self;
        let background = CancellationToken::new();
        if let Some(addr) = shared.config.metrics_addr {
            crate::http::serve(addr, shared.metrics.clone(), background.clone()).await?;
        }
        setup(&shared, &shutdown).await?;
        tracing::info!(worker = %shared.id, queues = ?shared.config.queues, concurrency = shared.config.concurrency, "worker started");

        for (queue, inbox) in finisher_inboxes {
            tokio::spawn(finisher(shared.clone(), queue, inbox, background.clone()));
        }
        let loops = TaskTracker::new();
        for queue in shared.config.queues.clone() {
            loops.spawn(claim_loop(shared.clone(), queue, shutdown.clone()));
        }
        loops.close();
        let heartbeat = tokio::spawn(heartbeat_loop(shared.clone(), background.clone()));
        let maintenance = tokio::spawn(maintenance_loop(shared.clone(), shutdown.clone()));

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
        release_abandoned(&shared).await;
        background.cancel();
        let _ = heartbeat.await;
        let _ = maintenance.await;
        if let Err(e) = shared.store.remove_worker(&shared.id).await {
            tracing::debug!(error = %e, "could not deregister");
        }
        tracing::info!(worker = %shared.id, "worker stopped");
        Ok(())
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
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

async fn claim_loop(shared: Arc<Shared>, queue: String, stop: CancellationToken) {
    let mut waiter = shared.store.waiter();
    let mut backoff = None;
    let idle_wait = Duration::from_secs(2);
    loop {
        let first = tokio::select! {
            permit = shared.capacity.clone().acquire_owned() => permit.expect("semaphore never closed"),
            _ = stop.cancelled() => return,
        };
        let mut permit = first;
        let extra = shared
            .capacity
            .available_permits()
            .min(shared.config.claim_batch - 1);
        if extra > 0
            && let Ok(more) = shared.capacity.clone().try_acquire_many_owned(extra as u32)
        {
            permit.merge(more);
        }
        let asked = permit.num_permits();
        let claimed = shared
            .store
            .claim(&queue, &shared.id, asked, shared.config.lease_ttl)
            .await;
        let pause = match claimed {
            Ok(jobs) => {
                backoff = None;
                let emptied = jobs.len() < asked;
                for job in jobs {
                    let one = permit.split(1).expect("a permit per claimed job");
                    shared.jobs.spawn(run_job(shared.clone(), job, one));
                }
                drop(permit);
                if !emptied {
                    continue;
                }
                // The claim emptied the stream: block until something new arrives.
                match tokio::select! { r = waiter.wait(&queue, idle_wait) => r, _ = stop.cancelled() => return }
                {
                    Ok(_) => continue,
                    Err(e) => {
                        shared
                            .metrics
                            .redis_errors
                            .with_label_values(&["wait"])
                            .inc();
                        tracing::warn!(%queue, error = %e, "waiting for jobs failed");
                        next_pause(&mut backoff)
                    }
                }
            }
            Err(e) => {
                drop(permit);
                shared
                    .metrics
                    .redis_errors
                    .with_label_values(&["claim"])
                    .inc();
                tracing::warn!(%queue, error = %e, "claim failed");
                next_pause(&mut backoff)
            }
        };
        tokio::select! { _ = tokio::time::sleep(pause) => {}, _ = stop.cancelled() => return }
    }
}

fn next_pause(
    state: &mut Option<<backon::ExponentialBuilder as backon::BackoffBuilder>::Backoff>,
) -> Duration {
    use backon::BackoffBuilder;
    state
        .get_or_insert_with(|| store_backoff().build())
        .next()
        .unwrap_or(Duration::from_secs(2))
}

async fn run_job(shared: Arc<Shared>, claimed: Claimed, permit: OwnedSemaphorePermit) {
    let lease = claimed.lease.clone();
    let (queue, job_type) = (lease.queue.clone(), claimed.job_type.clone());
    let slot = Arc::new(Slot::new(lease.clone(), Instant::now()));
    shared.slots.lock().unwrap().insert(lease.id, slot.clone());
    let m = &shared.metrics;
    m.started.with_label_values(&[&queue, &job_type]).inc();
    m.in_flight.with_label_values(&[&queue]).inc();
    m.wait
        .with_label_values(&[&queue])
        .observe((claimed.started_at_ms - claimed.ready_at_ms).max(0) as f64 / 1000.0);
    let started = Instant::now();

    let outcome = execute(&shared, claimed, &slot).await;
    let recorded = match outcome {
        Some(outcome) => record(&shared, &lease, &job_type, outcome).await,
        None => None,
    };
    let lost = match recorded {
        Some(Err(LeaseError::Lost)) => true,
        Some(Err(LeaseError::Store(e))) => {
            tracing::error!(job = %lease.id, error = %e, "outcome not recorded; the lease will lapse and the job run again");
            false
        }
        Some(Ok(FinishOutcome::Retrying)) => {
            m.retries.with_label_values(&[&queue, &job_type]).inc();
            false
        }
        Some(Ok(_)) => false,
        // Nothing was written: the lease was lost, or shutdown hands the job back.
        None => slot.lost.is_cancelled(),
    };
    if lost {
        m.lease_lost.with_label_values(&[&queue]).inc();
        tracing::warn!(job = %lease.id, "lease lost: another worker owns this job now; nothing was recorded");
    }
    m.duration
        .with_label_values(&[&queue, &job_type])
        .observe(started.elapsed().as_secs_f64());
    m.in_flight.with_label_values(&[&queue]).dec();
    shared.slots.lock().unwrap().remove(&lease.id);
    drop(permit);
}

/// Runs the handler; `None` means write nothing (lease lost, or shutdown hand-back).
async fn execute(shared: &Shared, claimed: Claimed, slot: &Arc<Slot>) -> Option<Outcome> {
    let error =
        |e: crate::JobError, policy: &tether_model::RetryPolicy, attempt: u32| Outcome::Error {
            retryable: e.transient,
            retry_delay: policy.delay(attempt, rand::rng().random()),
            message: e.message,
            code: e.code,
            info: e.info,
        };
    let policy = claimed.backoff;
    let attempt = claimed.attempts;
    let Some(handler) = shared.handlers.get(&claimed.job_type).cloned() else {
        let known: Vec<&String> = shared.handlers.keys().collect();
        let e = crate::JobError::reserved(
            ErrorCode::UnknownJobType,
            false,
            format!(
                "no handler for job type {:?} on this worker (it has {known:?})",
                claimed.job_type
            ),
        );
        return Some(error(e, &policy, attempt));
    };
    if claimed.input.len() > shared.config.max_payload_bytes {
        let e = crate::JobError::reserved(
            ErrorCode::PayloadTooLarge,
            false,
            format!(
                "input is {} bytes; this worker accepts at most {}",
                claimed.input.len(),
                shared.config.max_payload_bytes
            ),
        );
        return Some(error(e, &policy, attempt));
    }
    let timeout = claimed.timeout;
    let ctx = JobContext::new(
        shared.store.clone(),
        claimed,
        slot.clone(),
        shared.config.lease_ttl,
        shared.metrics.clone(),
    );
    let run = AssertUnwindSafe(handler.run(&ctx)).catch_unwind();
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        _ = slot.lost.cancelled() => None,
        _ = shared.abandon.cancelled() => {
            shared.abandoned.lock().unwrap().push(slot.lease.clone());
            None
        }
        _ = slot.cancel.cancelled() => Some(Outcome::Cancelled { message: "cancelled on request".into() }),
        _ = deadline => {
            let t = timeout.unwrap_or_default();
            let e = crate::JobError::reserved(ErrorCode::Timedout, true, format!("timed out after {}", humanize(t)));
            Some(error(e, &policy, attempt))
        }
        result = run => Some(match result {
            Ok(Ok(output)) => Outcome::Success(output),
            Ok(Err(e)) => error(e, &policy, attempt),
            Err(panic) => {
                let text = panic.downcast_ref::<&str>().map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".into());
                let e = crate::JobError::reserved(ErrorCode::HandlerPanicked, true, format!("handler panicked: {text}"));
                error(e, &policy, attempt)
            }
        }),
    }
}

fn humanize(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// Writes the outcome through the queue's finisher (batched with others finishing at the
/// same time). `None` when shutdown's grace period ended first.
async fn record(
    shared: &Shared,
    lease: &Lease,
    job_type: &str,
    outcome: Outcome,
) -> Option<Result<FinishOutcome, LeaseError>> {
    let kind = match &outcome {
        Outcome::Success(_) => "success",
        Outcome::Cancelled { .. } => "cancelled",
        Outcome::Error { .. } => "failure",
    };
    let (reply, answer) = oneshot::channel();
    let request = FinishRequest {
        lease: lease.clone(),
        outcome,
        reply,
    };
    shared.finishers.get(&lease.queue)?.send(request).ok()?;
    let result = answer.await.ok()??;
    let status = match (kind, &result) {
        (_, Ok(FinishOutcome::Retrying) | Err(_)) => None,
        ("failure", Ok(FinishOutcome::Dead)) => Some("failure"),
        // A failure that lost to a pending cancel is recorded as cancelled.
        ("failure", _) => Some("cancelled"),
        (kind, _) => Some(kind),
    };
    if let Some(status) = status {
        shared
            .metrics
            .finished
            .with_label_values(&[&lease.queue, job_type, status])
            .inc();
    }
    Some(result)
}

/// Records the outcomes of a queue's jobs: whatever has arrived while the previous
/// call was in flight goes in one script call, resent through Redis outages (the
/// script makes resends safe), and each job gets its own answer.
async fn finisher(
    shared: Arc<Shared>,
    queue: String,
    mut inbox: mpsc::UnboundedReceiver<FinishRequest>,
    stop: CancellationToken,
) {
    const MAX_BATCH: usize = 256;
    loop {
        let first = tokio::select! {
            request = inbox.recv() => match request { Some(r) => r, None => return },
            _ = stop.cancelled() => return,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match inbox.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let pairs: Vec<(&Lease, &Outcome)> = batch.iter().map(|r| (&r.lease, &r.outcome)).collect();
        let result =
            with_store_retries(&shared.abandon, || shared.store.finish_many(&queue, &pairs)).await;
        drop(pairs);
        match result {
            Some(Ok(results)) => {
                for (request, result) in batch.into_iter().zip(results) {
                    let _ = request.reply.send(Some(result));
                }
            }
            Some(Err(e)) => {
                let message = e.to_string();
                for request in batch {
                    let _ = request
                        .reply
                        .send(Some(Err(LeaseError::Store(StoreError::Script(
                            message.clone(),
                        )))));
                }
            }
            None => {
                for request in batch {
                    let _ = request.reply.send(None);
                }
            }
        }
    }
}

async fn heartbeat_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let ttl = shared.config.lease_ttl;
    let every = shared.heartbeat_every();
    // Fence checks run ten times per lease so a stalled worker stops soon after its lease could lapse.
    let mut tick = tokio::time::interval((ttl / 10).min(every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_beat = Instant::now() - every;
    loop {
        tokio::select! { _ = tick.tick() => {}, _ = stop.cancelled() => return }
        if last_beat.elapsed() >= every {
            last_beat = Instant::now();
            beat(&shared).await;
        }
        let margin = ttl / 10;
        for slot in shared.slots.lock().unwrap().values() {
            if !slot.lost.is_cancelled()
                && slot.renewed_at.lock().unwrap().elapsed() + margin >= ttl
            {
                tracing::warn!(job = %slot.lease.id, "lease could not be renewed in time: stopping the job (self-fence)");
                slot.lost.cancel();
            }
        }
    }
}

/// One heartbeat: renew every lease, one call per queue, and refresh this worker's registration.
async fn beat(shared: &Shared) {
    let mut by_queue: HashMap<String, Vec<Arc<Slot>>> = HashMap::new();
    for slot in shared.slots.lock().unwrap().values() {
        by_queue
            .entry(slot.lease.queue.clone())
            .or_default()
            .push(slot.clone());
    }
    let sent_at = Instant::now();
    let renewals = by_queue.iter().map(|(queue, slots)| async move {
        let leases: Vec<(JobId, LeaseToken)> = slots
            .iter()
            .map(|s| (s.lease.id, s.lease.token.clone()))
            .collect();
        match shared
            .store
            .renew(queue, &leases, shared.config.lease_ttl)
            .await
        {
            Ok((deadline, statuses)) => {
                for (slot, status) in slots.iter().zip(statuses) {
                    slot.on_renewal(status, sent_at);
                }
                shared
                    .metrics
                    .lease_renewals
                    .with_label_values(&[queue])
                    .inc_by(slots.len() as u64);
                Some((queue, slots, deadline))
            }
            Err(e) => {
                shared
                    .metrics
                    .redis_errors
                    .with_label_values(&["renew"])
                    .inc();
                tracing::warn!(%queue, error = %e, "lease renewal failed");
                None
            }
        }
    });
    let renewed = futures::future::join_all(renewals).await;
    let jobs = renewed
        .into_iter()
        .flatten()
        .flat_map(|(queue, slots, deadline)| {
            let at = chrono::DateTime::from_timestamp_millis(deadline).unwrap_or_default();
            slots
                .iter()
                .map(move |s| (queue.clone(), s.lease.id, at))
                .collect::<Vec<_>>()
        })
        .collect();
    let info = WorkerInfo {
        id: shared.id.clone(),
        host: nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default(),
        pid: std::process::id(),
        queues: shared.config.queues.clone(),
        concurrency: shared.config.concurrency,
        started_at: shared.started_at,
        jobs,
    };
    if let Err(e) = shared
        .store
        .put_worker(&info, shared.heartbeat_every() * 3)
        .await
    {
        tracing::debug!(error = %e, "worker registration not refreshed");
    }
}

async fn maintenance_loop(shared: Arc<Shared>, stop: CancellationToken) {
    const MAX_PROMOTE_PAUSE: Duration = Duration::from_millis(500);
    let mut next_reap = Instant::now();
    loop {
        let mut pause = MAX_PROMOTE_PAUSE;
        for queue in &shared.config.queues {
            match shared.store.promote(queue, 1000).await {
                Ok((_, Some(next_due))) => {
                    pause = pause.min(next_due.max(Duration::from_millis(5)))
                }
                Ok((_, None)) => {}
                Err(e) => {
                    shared
                        .metrics
                        .redis_errors
                        .with_label_values(&["promote"])
                        .inc();
                    tracing::debug!(%queue, error = %e, "promote failed");
                }
            }
        }
        if Instant::now() >= next_reap {
            let jitter = rand::rng().random_range(0.8..1.2);
            next_reap = Instant::now() + shared.config.reap_interval.mul_f64(jitter);
            for queue in &shared.config.queues {
                reap_and_sample(&shared, queue).await;
            }
        }
        tokio::select! { _ = tokio::time::sleep(pause) => {}, _ = stop.cancelled() => return }
    }
}

async fn reap_and_sample(shared: &Shared, queue: &str) {
    match shared.store.reap(queue, 1000).await {
        Ok(ids) if !ids.is_empty() => {
            shared
                .metrics
                .lease_expired
                .with_label_values(&[queue])
                .inc_by(ids.len() as u64);
            tracing::warn!(%queue, jobs = ids.len(), "took back jobs whose lease lapsed");
        }
        Ok(_) => {}
        Err(e) => {
            shared
                .metrics
                .redis_errors
                .with_label_values(&["reap"])
                .inc();
            tracing::debug!(%queue, error = %e, "reap failed");
        }
    }
    if let Err(e) = shared.store.expire(queue, 1000).await {
        tracing::debug!(%queue, error = %e, "expire failed");
    }
    if let Ok(stats) = shared.store.stats(queue).await {
        let g = &shared.metrics.queue_jobs;
        for (state, n) in [
            ("pending", stats.pending),
            ("scheduled", stats.scheduled),
            ("processing", stats.processing),
            ("dead", stats.dead),
        ] {
            g.with_label_values(&[queue, state]).set(n as i64);
        }
    }
}

/// Hands back the leases of jobs stopped at the end of the grace period.
async fn release_abandoned(shared: &Shared) {
    let leases = std::mem::take(&mut *shared.abandoned.lock().unwrap());
    let mut by_queue: HashMap<String, Vec<(JobId, LeaseToken)>> = HashMap::new();
    for lease in leases {
        by_queue
            .entry(lease.queue)
            .or_default()
            .push((lease.id, lease.token));
    }
    for (queue, leases) in by_queue {
        match shared.store.release(&queue, &leases).await {
            Ok(n) => tracing::info!(%queue, released = n, "handed unfinished jobs back"),
            Err(e) => {
                tracing::warn!(%queue, error = %e, "could not hand jobs back; their leases will lapse")
            }
        }
    }
}
