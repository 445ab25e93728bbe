//! Tether's storage layer: the only crate that knows Redis keys, scripts and encodings.
//!
//! Every state change of a job is one Lua script (in `lua/`, loaded as functions
//! of one Redis function library after the shared `lua/common.lua` and `lua/flow.lua`), executed atomically and checked against the
//! job's current status and, for worker writes, its [`LeaseToken`] — the fencing
//! token that changes on every claim and every reap. A worker whose token is
//! stale gets [`LeaseError::Lost`] and can change nothing. No script fails after
//! its first write (Redis does not roll a script back), and every batch is bounded.
//!
//! The [`Store`] handle is cheap to clone; it multiplexes all calls over one
//! reconnecting connection, so concurrent calls are pipelined on the wire.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tether_store::StoreError> {
//! use tether_model::JobSpec;
//! use tether_store::{Store, StoreConfig};
//! let store = Store::connect(StoreConfig::new("redis://127.0.0.1:6380")).await?;
//! let job = store.enqueue(&JobSpec::new("noop")).await?;
//! let record = store.get("default", job.id).await?.unwrap();
//! assert_eq!(record.status, tether_model::Status::Pending);
//! # Ok(()) }
//! ```

mod check;
mod codec;
mod conn;
mod error;
mod external;
mod flow;
mod keys;
mod list;
mod ops;
mod reply;
mod schedules;
mod scripts;
mod tree;
mod watch;
mod worker_ops;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::AsyncCommands;
use tether_model::{DEFAULT_PRIORITY, Job, JobId, JobSpec, StartBy, Status};

pub use check::Mended;
pub use codec::{decode, encode};
pub use error::StoreError;
pub use external::{Drive, Driven, Lapsed, MAX_ABORT_MESSAGE, MAX_PROGRESS_MESSAGE};
pub use flow::{FlowState, SnoozeOutcome};
pub use list::{ListQuery, Page, SortDir, SortKey};
pub use ops::{
    IndexPos, MAX_WALK_STEP, THROUGHPUT_STREAM_ENTRIES, Throughput, WalkOrder, WalkStep,
};
pub use schedules::{DueSchedule, MAX_SCHEDULES_PER_OWNER, PutMode, StoredSchedule};
pub use tree::{Child, Spawned};
pub use worker_ops::{
    ClaimBatch, Claimed, FinishOutcome, HeldBack, Lease, LeaseError, LeaseToken, MAX_BATCH,
    Outcome, Reaped, RenewStatus, Waiter, WorkerInfo,
};

use keys::{LAYOUT_VERSION, QueueKeys};
use scripts::{Call, Function, SCRIPTS};

/// Connection and retention settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `redis://[user:pass@]host:port[/db]` (or `rediss://` for TLS); several
    /// comma-separated URLs are the seeds of a Redis Cluster.
    pub url: String,
    /// Use the cluster client even for a single seed URL.
    pub cluster: bool,
    /// How long one command may take before it counts as failed.
    pub response_timeout: Duration,
    /// How long finished jobs are kept.
    pub retention: Duration,
    /// Largest accepted encoded input.
    pub max_payload_bytes: usize,
    /// When above 0, an enqueue is acknowledged only once this many replicas of the
    /// queue's master confirmed it (`WAIT`); otherwise it fails with
    /// [`StoreError::NotReplicated`]. With asynchronous replication, a failover can
    /// lose writes no replica had received: this is how a producer learns of the risk.
    pub min_replicas: usize,
    /// How long an enqueue waits for `min_replicas` confirmations.
    pub replication_timeout: Duration,
    /// Latest start accepted, from now: a later `run_at` or `delay` is refused
    /// ([`StoreError::BeyondHorizon`]), so no job occupies Redis for ever.
    pub horizon: Duration,
    /// When above 0, how many unfinished jobs one owner may have in one queue; more
    /// is refused ([`StoreError::QuotaExceeded`]). Jobs without an owner are not counted.
    pub max_pending_per_owner: u64,
}

impl StoreConfig {
    /// Defaults: 10 s response timeout, 48 h retention, 1 MiB inputs, a 30-day
    /// horizon, no quota.
    pub fn new(url: impl Into<String>) -> Self {
        StoreConfig {
            url: url.into(),
            cluster: false,
            response_timeout: Duration::from_secs(10),
            retention: tether_model::DEFAULT_RETENTION,
            max_payload_bytes: tether_model::DEFAULT_MAX_PAYLOAD_BYTES,
            min_replicas: 0,
            replication_timeout: Duration::from_millis(500),
            horizon: DEFAULT_HORIZON,
            max_pending_per_owner: 0,
        }
    }
}

/// How far ahead a job may be scheduled by default: 30 days.
pub const DEFAULT_HORIZON: Duration = Duration::from_secs(30 * 24 * 3600);

/// The answer to an enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    pub id: JobId,
    /// False when an earlier job with the same idempotency key was returned instead.
    pub created: bool,
    /// When it was created and when it is due (Redis clock, ms); 0 when not `created`.
    pub created_at_ms: i64,
    pub due_at_ms: i64,
    /// False when a job with this id existed already (an earlier send of the same
    /// enqueue, or another firer of the same schedule firing).
    pub written_now: bool,
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelOutcome {
    /// The job was pending and is now cancelled.
    Cancelled,
    /// The job is running; its worker stops it at its next heartbeat.
    Requested,
}

/// Job counts of one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    pub queue: String,
    /// Ready to run now.
    pub pending: u64,
    /// Waiting for `run_at` or a retry backoff.
    pub scheduled: u64,
    pub processing: u64,
    /// Failed with no attempts left (re-queueable).
    pub dead: u64,
    /// Finished and still retained, by status.
    pub success: u64,
    pub failure: u64,
    pub cancelled: u64,
    /// Jobs ever written to the queue by an enqueue, whichever front end sent it
    /// (library, CLI, API, schedules): counted by the enqueue script itself, so it
    /// survives every process; it starts again at 0 when the registry forgets an idle,
    /// empty queue.
    pub enqueued: u64,
}

/// For the suites of this workspace only (feature `test-support`): the scripts by name.
#[cfg(feature = "test-support")]
#[doc(hidden)]
pub mod test_support {
    /// The name of every script, so a suite can run each one (on a cluster, say).
    pub fn script_names() -> Vec<&'static str> {
        crate::SCRIPTS.names()
    }
}

/// A handle to Tether's data in one Redis.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    conn: conn::Conn,
    topology: conn::Topology,
    /// Where enqueues that wait for replicas go (see [`conn::Dedicated`]).
    replicated: conn::Dedicated,
    config: StoreConfig,
    ready_queues: Mutex<HashSet<String>>,
    /// The shared subscriber connection of every watcher.
    watchers: watch::Hub,
    /// Claim ids whose reply never came, by queue and worker: sent again by the next claim.
    unanswered_claims: Mutex<HashMap<(String, String), String>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("url", &redact(&self.inner.config.url))
            .finish()
    }
}

/// The URL (or comma-separated URLs) with any password hidden, for logs.
pub fn redact(url: &str) -> String {
    url.split(',')
        .map(|url| match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}://***@{}", &url[..scheme], &url[at + 1..])
            }
            _ => url.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A job ready to be written: its spec, its chosen id, its encoded input.
type NewJob<'a> = (&'a JobSpec, JobId, &'a [u8]);

impl Store {
    /// Connects (once; later outages are reconnected with backoff by the connection itself).
    /// Several comma-separated URLs (or `cluster` set) select the Redis Cluster client.
    pub async fn connect(config: StoreConfig) -> Result<Store, StoreError> {
        let (conn, topology) = conn::connect(&config).await?;
        let watchers = watch::Hub::new(topology.clone(), config.response_timeout);
        let replicated = conn::Dedicated::new(topology.clone(), config.replication_timeout);
        let store = Store {
            inner: Arc::new(Inner {
                conn,
                replicated,
                topology,
                config,
                ready_queues: Mutex::new(HashSet::new()),
                watchers,
                unanswered_claims: Mutex::new(HashMap::new()),
            }),
        };
        store.check_layout().await?;
        Ok(store)
    }

    /// Checks the layout of the records in Redis (`tether:meta` → `version`) before this
    /// process reads or writes any: a newer layout, or a live worker of an older one
    /// (it would misread the records this version writes), refuses the connection with
    /// a message saying what to do. Otherwise an empty Redis or one of an older layout
    /// is marked as this layout: older records are read as they are (docs/STORAGE.md).
    async fn check_layout(&self) -> Result<(), StoreError> {
        let stored: Option<String> = self
            .idempotent(|| async { Ok(self.conn().hget(keys::META, "version").await?) })
            .await?;
        let stored = match stored {
            None => None,
            Some(text) => Some(text.trim().parse::<u32>().map_err(|_| {
                StoreError::Layout(format!(
                    "{}.version holds {text:?}, not a layout number; nothing was changed",
                    keys::META
                ))
            })?),
        };
        match stored {
            Some(v) if v == LAYOUT_VERSION => return Ok(()),
            Some(v) if v > LAYOUT_VERSION => {
                return Err(StoreError::Layout(format!(
                    "this Redis holds layout {v} records, written by a newer Tether; this \
                     version reads and writes layout {LAYOUT_VERSION}: run the newer version"
                )));
            }
            _ => {}
        }
        let older = self.older_workers().await?;
        if !older.is_empty() {
            return Err(StoreError::Layout(format!(
                "workers of layout {} are live on this Redis ({}): they would misread the \
                 layout {LAYOUT_VERSION} records this version writes. Stop them (a graceful \
                 stop hands their jobs back), then start this version; see \
                 docs/OPERATIONS.md, upgrading the layout",
                stored.unwrap_or(1),
                older.join(", ")
            )));
        }
        let _: () = self
            .conn()
            .hset(keys::META, "version", LAYOUT_VERSION)
            .await?;
        Ok(())
    }

    /// Ids of live workers whose registration states no layout, or an older one.
    async fn older_workers(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .registrations()
            .await?
            .into_iter()
            .filter_map(|(id, description)| {
                let layout = serde_json::from_str::<serde_json::Value>(&description?)
                    .ok()
                    .and_then(|v| v.get("layout").and_then(serde_json::Value::as_u64))
                    .unwrap_or(1);
                (layout < u64::from(LAYOUT_VERSION)).then_some(id)
            })
            .collect())
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    pub(crate) fn conn(&self) -> conn::Conn {
        self.inner.conn.clone()
    }

    /// True when connected to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.conn, conn::Conn::Cluster(_))
    }

    /// Runs an idempotent call again on connection errors (the reconnecting connection
    /// fails the calls in flight when Redis goes away), for up to about 1.5 s.
    pub(crate) async fn idempotent<T, F, Fut>(&self, mut call: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut pause = Duration::from_millis(50);
        for _ in 0..5 {
            match call().await {
                Err(e) if e.is_retryable() => {
                    tracing::debug!(error = %e, ?pause, "redis call failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                other => return other,
            }
        }
        call().await
    }

    fn retention_ms(&self) -> u64 {
        self.inner.config.retention.as_millis() as u64
    }

    /// Runs `script` for `queue` with the calling convention of `lua/common.lua`.
    pub(crate) fn invocation<'a>(script: &'a Function, keys: &QueueKeys) -> Call<'a> {
        let mut inv = script.call(&keys.fixed);
        inv.arg(&keys.prefix);
        inv
    }

    /// Creates the queue's stream and consumer group and registers the queue (once per process).
    pub async fn ensure_queue(&self, queue: &str) -> Result<(), StoreError> {
        tether_model::validate_queue_name(queue)?;
        if self.inner.ready_queues.lock().unwrap().contains(queue) {
            return Ok(());
        }
        self.create_queue(queue).await?;
        self.inner
            .ready_queues
            .lock()
            .unwrap()
            .insert(queue.to_owned());
        Ok(())
    }

    async fn create_queue(&self, queue: &str) -> Result<(), StoreError> {
        let keys = QueueKeys::new(queue);
        let mut conn = self.conn();
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(keys.stream())
            .arg(keys::GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => return Err(e.into()),
            _ => {}
        }
        // Two keys in two slots: two commands, not one pipeline (once per queue and process).
        let _: () = conn.sadd(keys::QUEUES, queue).await?;
        let _: () = conn.hset_nx(keys::META, "version", LAYOUT_VERSION).await?;
        Ok(())
    }

    /// Forgets that `queue` was set up, after Redis lost its data (NOGROUP).
    pub(crate) async fn recreate_queue(&self, queue: &str) -> Result<(), StoreError> {
        self.inner.ready_queues.lock().unwrap().remove(queue);
        self.ensure_queue(queue).await
    }

    /// Every known queue, sorted.
    pub async fn queues(&self) -> Result<Vec<String>, StoreError> {
        let mut queues: Vec<String> = self
            .idempotent(|| async { Ok(self.conn().smembers(keys::QUEUES).await?) })
            .await?;
        queues.sort();
        Ok(queues)
    }

    /// Removes from the registry each queue that holds no jobs of any kind and had no
    /// enqueue for `idle`, with its leftover keys; queues a live worker serves are kept.
    /// Returns the names forgotten. Safe against a concurrent enqueue: an enqueue into a
    /// forgotten queue sets it up and registers it again.
    pub async fn forget_idle_queues(&self, idle: Duration) -> Result<Vec<String>, StoreError> {
        let served: HashSet<String> = self
            .workers()
            .await?
            .into_iter()
            .flat_map(|w| w.queues)
            .collect();
        let idle_ms = (idle.as_millis() as u64).to_string();
        let mut forgotten = Vec::new();
        for queue in self.queues().await? {
            if served.contains(&queue) || tether_model::validate_queue_name(&queue).is_err() {
                continue;
            }
            let word: String = self
                .queue_script(&SCRIPTS.forget, &queue, &[&idle_ms])
                .await?;
            if !reply::ok_or("forget", &word, "IN_USE")? {
                continue;
            }
            self.inner.ready_queues.lock().unwrap().remove(&queue);
            let keys = QueueKeys::new(&queue);
            let mut conn = self.conn();
            // Two slots, so two commands: an enqueue between the script and SREM has
            // registered the queue and set `used` again; then it stays registered.
            let _: () = conn.srem(keys::QUEUES, &queue).await?;
            let used: bool = conn.exists(keys.used()).await?;
            if used {
                let _: () = conn.sadd(keys::QUEUES, &queue).await?;
            } else {
                forgotten.push(queue);
            }
        }
        Ok(forgotten)
    }

    fn prepare(&self, spec: &JobSpec, input: Option<Vec<u8>>) -> Result<Vec<u8>, StoreError> {
        spec.validate()?;
        let input = match input {
            Some(raw) => raw,
            None => encode(&spec.input)?,
        };
        let limit = self.inner.config.max_payload_bytes;
        if input.len() > limit {
            return Err(StoreError::PayloadTooLarge {
                size: input.len(),
                limit,
            });
        }
        Ok(input)
    }

    /// Appends one job's arguments for `enqueue.lua`.
    fn push_job(inv: &mut Call<'_>, spec: &JobSpec, id: JobId, input: &[u8]) {
        let run_at_ms = spec
            .run_at
            .map(|t| t.timestamp_millis().max(0))
            .unwrap_or(0);
        let delay_ms = spec.delay.map(|d| d.as_millis() as u64).unwrap_or(0);
        let fields = codec::spec_fields(spec, input);
        let (start_by_ms, start_within_ms) = match spec.start_by.map(StartBy::stored) {
            Some(StartBy::At(t)) => (t.timestamp_millis(), 0),
            Some(StartBy::Within(d)) => (0, d.as_millis() as u64),
            None => (0, 0),
        };
        let priority = if spec.priority == DEFAULT_PRIORITY {
            String::new()
        } else {
            spec.priority.to_string()
        };
        let options = (
            run_at_ms,
            delay_ms,
            spec.idempotency_key.as_deref().unwrap_or(""),
            spec.owner.as_deref().unwrap_or(""),
            start_by_ms,
            start_within_ms,
            priority.as_str(),
            spec.effective_group().unwrap_or(""),
        );
        let defaults = (0, 0, "", "", 0, 0, "", "");
        let lease_ms = spec.external_lease.map(|lease| lease.as_millis() as u64);
        // An owner's batch counts against its quota as every job it will bring into being
        // (its workers enqueue them later, each checked only against what is unfinished
        // then).
        let weight = match spec.owner {
            Some(_) => tether_model::tree::job_weight(spec),
            None => 1,
        };
        // One argument for all of a job's options, empty when none is set; an external
        // task's lease is a ninth option and a weight other than 1 a tenth, left out for
        // every other job.
        let (a, b, c, d, e, f, g, h) = options;
        let encoded = match (lease_ms, weight) {
            (None, 1) if options == defaults => Ok(Vec::new()),
            (None, 1) => rmp_serde::to_vec(&options),
            (Some(lease_ms), 1) => rmp_serde::to_vec(&(a, b, c, d, e, f, g, h, lease_ms)),
            (lease_ms, weight) => {
                rmp_serde::to_vec(&(a, b, c, d, e, f, g, h, lease_ms.unwrap_or(0), weight))
            }
        };
        let options = encoded.expect("a tuple of numbers and strings encodes");
        // The id as its 16 bytes: a waiting job is named so (layout 4), and the script
        // spells out the text form the keys use.
        inv.arg(&codec::raw_id(&id)[..])
            .arg(options)
            .arg(fields.len() * 2);
        for (field, value) in fields {
            inv.arg(field).arg(value.as_ref());
        }
    }

    /// Enqueues jobs of one queue in one script call. Safe to resend: ids are chosen
    /// here, and a resend after a lost reply finds them written.
    async fn enqueue_batch(
        &self,
        queue: &str,
        jobs: &[NewJob<'_>],
    ) -> Result<Vec<Enqueued>, StoreError> {
        self.idempotent(|| self.ensure_queue(queue)).await?;
        let keys = QueueKeys::new(queue);
        let wanted = self.inner.config.min_replicas;
        let (rows, confirmed): (Vec<reply::EnqueueRow>, usize) = self
            .idempotent(|| async {
                let mut inv = Self::invocation(&SCRIPTS.enqueue, &keys);
                inv.arg(self.inner.config.horizon.as_millis() as u64)
                    .arg(self.inner.config.max_pending_per_owner);
                for (spec, id, input) in jobs {
                    Self::push_job(&mut inv, spec, *id, input);
                }
                if wanted == 0 {
                    return Ok((inv.invoke_async(&mut self.conn()).await?, 0));
                }
                // WAIT counts what its own connection wrote: it must follow the script on
                // the same connection, so both go in one pipeline (routed by the script's
                // key), on a connection of their own: WAIT blocks the connection it is on.
                let mut pipe = redis::pipe();
                pipe.add_command(inv.command().clone())
                    .cmd("WAIT")
                    .arg(wanted)
                    .arg(self.inner.config.replication_timeout.as_millis() as u64);
                let mut conn = self.inner.replicated.take().await?;
                let replies = match pipe.query_async(&mut conn).await {
                    Err(e) if scripts::is_missing_function(&e) => {
                        scripts::load_library(&mut conn).await?;
                        pipe.query_async(&mut conn).await?
                    }
                    other => other?,
                };
                self.inner.replicated.give_back(conn);
                Ok(replies)
            })
            .await?;
        let mut enqueued = Vec::with_capacity(rows.len());
        let mut new_queue = false;
        for row in rows {
            match reply::enqueue(row)? {
                reply::EnqueueReply::Job(job) => enqueued.push(job),
                reply::EnqueueReply::NewQueue => new_queue = true,
                reply::EnqueueReply::Quota { pending, quota } => {
                    return Err(StoreError::QuotaExceeded { pending, quota });
                }
                reply::EnqueueReply::Horizon => {
                    let horizon = self.inner.config.horizon;
                    return Err(StoreError::BeyondHorizon { horizon });
                }
            }
        }
        if new_queue {
            // The queue had been forgotten by the registry (or is new): list it again.
            self.idempotent(|| async {
                let _: () = self.conn().sadd(keys::QUEUES, queue).await?;
                Ok(())
            })
            .await?;
        }
        if confirmed < wanted {
            return Err(StoreError::NotReplicated { confirmed, wanted });
        }
        Ok(enqueued)
    }

    /// Enqueues one job: ready now, or scheduled for `run_at` / after `delay`.
    pub async fn enqueue(&self, spec: &JobSpec) -> Result<Enqueued, StoreError> {
        self.enqueue_encoded(spec, None).await
    }

    /// Enqueues with an input already encoded as MessagePack (passed through unchecked;
    /// a worker that cannot decode it fails the job with `InvalidPayload`).
    pub async fn enqueue_encoded(
        &self,
        spec: &JobSpec,
        input: Option<Vec<u8>>,
    ) -> Result<Enqueued, StoreError> {
        let input = self.prepare(spec, input)?;
        let mut done = self
            .enqueue_batch(&spec.queue, &[(spec, JobId::new(), &input)])
            .await?;
        done.pop()
            .ok_or_else(|| StoreError::decode("enqueue", "empty reply"))
    }

    /// Enqueues one job under an id chosen by the caller, such as a schedule's firing
    /// id: a second enqueue with the same id finds the job written and writes nothing
    /// (`created` is then false).
    pub async fn enqueue_as(&self, spec: &JobSpec, id: JobId) -> Result<Enqueued, StoreError> {
        let input = self.prepare(spec, None)?;
        let mut done = self
            .enqueue_batch(&spec.queue, &[(spec, id, &input)])
            .await?;
        done.pop()
            .ok_or_else(|| StoreError::decode("enqueue", "empty reply"))
    }

    /// Enqueues many jobs, one script call per chunk of a queue's jobs, a few chunks in
    /// flight at once; all specs are checked before any is written. Results are in order.
    pub async fn enqueue_many(&self, specs: &[JobSpec]) -> Result<Vec<Enqueued>, StoreError> {
        use futures::StreamExt;
        const CHUNK: usize = 500;
        let inputs = specs
            .iter()
            .map(|spec| self.prepare(spec, None))
            .collect::<Result<Vec<_>, _>>()?;
        let mut by_queue: Vec<(&str, Vec<(usize, NewJob<'_>)>)> = Vec::new();
        for (index, (spec, input)) in specs.iter().zip(&inputs).enumerate() {
            let job = (spec, JobId::new(), input.as_slice());
            match by_queue.iter_mut().find(|(q, _)| *q == spec.queue) {
                Some((_, jobs)) => jobs.push((index, job)),
                None => by_queue.push((spec.queue.as_str(), vec![(index, job)])),
            }
        }
        let chunks: Vec<(&str, &[(usize, NewJob<'_>)])> = by_queue
            .iter()
            .flat_map(|(queue, jobs)| jobs.chunks(CHUNK).map(move |chunk| (*queue, chunk)))
            .collect();
        let mut out: Vec<Option<Enqueued>> = vec![None; specs.len()];
        let mut results = futures::stream::iter(chunks)
            .map(|(queue, chunk)| async move {
                let jobs: Vec<NewJob<'_>> = chunk.iter().map(|(_, job)| *job).collect();
                let done = self.enqueue_batch(queue, &jobs).await?;
                Ok::<_, StoreError>(
                    chunk
                        .iter()
                        .map(|(index, _)| *index)
                        .zip(done)
                        .collect::<Vec<_>>(),
                )
            })
            .buffered(4);
        while let Some(done) = results.next().await {
            for (index, enqueued) in done? {
                out[index] = Some(enqueued);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// The job's record, or `None` when it does not exist (or has expired).
    /// The owner of a job that has a record (a job that has started has one): `None`
    /// when there is no record, `Some(None)` when the job has no owner. Reads two fields,
    /// not the record.
    ///
    /// ```no_run
    /// # async fn demo(store: &tether_store::Store, id: tether_model::JobId) -> Result<(), tether_store::StoreError> {
    /// if let Some(Some(owner)) = store.owner_of("default", id).await? {
    ///     println!("{id} is {owner}'s");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn owner_of(
        &self,
        queue: &str,
        id: JobId,
    ) -> Result<Option<Option<String>>, StoreError> {
        tether_model::validate_queue_name(queue)?;
        let key = QueueKeys::new(queue).job(&id.to_string());
        let (status, owner): (Option<String>, Option<String>) = self
            .idempotent(|| async {
                Ok(redis::cmd("HMGET")
                    .arg(&key)
                    .arg(&["st", "owner"])
                    .query_async(&mut self.conn())
                    .await?)
            })
            .await?;
        Ok(status.map(|_| owner))
    }

    pub async fn get(&self, queue: &str, id: JobId) -> Result<Option<Job>, StoreError> {
        tether_model::validate_queue_name(queue)?;
        let keys = QueueKeys::new(queue);
        let shown = tether_model::tree::MAX_SUBTASKS_SHOWN as isize;
        // `waiting` is read before the record: a job leaves it for its record (claimed,
        // or given one by a script), never the other way, so one of the two reads finds
        // a job that exists throughout.
        type Read = (
            Option<Vec<u8>>,
            HashMap<String, Vec<u8>>,
            Option<f64>,
            Vec<String>,
            u64,
        );
        let (waiting, fields, deadline, kids, kid_count): Read = self
            .idempotent(|| async {
                Ok(redis::pipe()
                    .hget(keys.waiting(), &codec::raw_id(&id)[..])
                    .hgetall(keys.job(&id.to_string()))
                    .zscore(keys.leases(), id.to_string())
                    .zrange(keys.kids(&id.to_string()), 0, shown - 1)
                    .zcard(keys.kids(&id.to_string()))
                    .query_async(&mut self.conn())
                    .await?)
            })
            .await?;
        let fields = if fields.is_empty() {
            // No record: the job is waiting on the stream (layout 4), or not there.
            match waiting.as_deref().and_then(codec::Fields::of_waiting) {
                Some(fields) => fields,
                None => return Ok(None),
            }
        } else {
            codec::Fields(fields)
        };
        let mut job = fields.into_job(id, queue, deadline.map(|d| d as i64))?;
        job.subtasks = kids
            .iter()
            .filter_map(|m| tree::parse_kid(m))
            .map(|(id, _)| id)
            .collect();
        job.subtask_count = kid_count;
        if kid_count > 0 && job.root_id.is_none() {
            job.root_id = Some(id); // the root of its own tree
        }
        Ok(Some(job))
    }

    /// The trace context `id` was enqueued with (its `tp` field), checked again; `None`
    /// when it has none. Read by a worker that exports traces, at the start of an
    /// attempt: the claim does not carry it, so that claims cost the same without.
    pub async fn trace_context(
        &self,
        queue: &str,
        id: JobId,
    ) -> Result<Option<tether_model::TraceContext>, StoreError> {
        let keys = QueueKeys::new(queue);
        let stored: Option<String> = self
            .idempotent(|| async { Ok(self.conn().hget(keys.job(&id.to_string()), "tp").await?) })
            .await?;
        Ok(stored
            .as_deref()
            .and_then(tether_model::TraceContext::decode))
    }

    /// Which queue holds `id`: asks every known queue, all at once.
    pub async fn find_queue(&self, id: JobId) -> Result<Option<String>, StoreError> {
        let queues = self.queues().await?;
        Ok(self.locate_jobs(&[id], &queues).await?.pop().flatten())
    }

    async fn queue_script<T: redis::FromRedisValue>(
        &self,
        script: &Function,
        queue: &str,
        args: &[&str],
    ) -> Result<T, StoreError> {
        tether_model::validate_queue_name(queue)?;
        let keys = QueueKeys::new(queue);
        let mut inv = Self::invocation(script, &keys);
        for arg in args {
            inv.arg(*arg);
        }
        Ok(inv.invoke_async(&mut self.conn()).await?)
    }

    /// CancelTask. `owner` restricts the call to that owner's jobs (others are `NotFound`).
    pub async fn cancel(
        &self,
        queue: &str,
        id: JobId,
        owner: Option<&str>,
    ) -> Result<CancelOutcome, StoreError> {
        self.cancel_with(queue, id, owner, false).await
    }

    /// CancelTask; with `force`, also a job created with `cancelable: false` (for
    /// administrators only: callers check who asks). A running job stops at its
    /// worker's next heartbeat, as with any cancel.
    pub async fn cancel_with(
        &self,
        queue: &str,
        id: JobId,
        owner: Option<&str>,
        force: bool,
    ) -> Result<CancelOutcome, StoreError> {
        let retention = self.retention_ms().to_string();
        let id_text = id.to_string();
        let force = if force { "1" } else { "0" };
        let word: String = self
            .queue_script(
                &SCRIPTS.cancel,
                queue,
                &[&id_text, owner.unwrap_or(""), &retention, force],
            )
            .await?;
        reply::cancel(&word, &id_text)
    }

    /// Re-queues a dead job (failed with its attempts exhausted) for a fresh run.
    pub async fn retry_dead(
        &self,
        queue: &str,
        id: JobId,
        owner: Option<&str>,
    ) -> Result<(), StoreError> {
        self.job_script(&SCRIPTS.retry_dead, "retry_dead", queue, id, owner)
            .await
    }

    /// A script on one job, owner-checked (`owner`: only that owner's job), that
    /// answers `OK` or a refusal.
    pub(crate) async fn job_script(
        &self,
        script: &Function,
        name: &str,
        queue: &str,
        id: JobId,
        owner: Option<&str>,
    ) -> Result<(), StoreError> {
        let id_text = id.to_string();
        let word: String = self
            .queue_script(script, queue, &[&id_text, owner.unwrap_or("")])
            .await?;
        reply::ok(name, &word, &id_text)
    }

    /// Sets a job's name and/or description.
    pub async fn set_labels(
        &self,
        queue: &str,
        id: JobId,
        owner: Option<&str>,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<(), StoreError> {
        let id_text = id.to_string();
        let mut args = vec![id_text.as_str(), owner.unwrap_or("")];
        if let Some(name) = name {
            args.extend(["name", name]);
        }
        if let Some(desc) = description {
            args.extend(["desc", desc]);
        }
        if args.len() == 2 {
            return Ok(());
        }
        let word: String = self.queue_script(&SCRIPTS.set_labels, queue, &args).await?;
        reply::ok("set_labels", &word, &id_text)
    }

    /// Counts for one queue, from lengths and counters (no scans).
    pub async fn stats(&self, queue: &str) -> Result<QueueStats, StoreError> {
        tether_model::validate_queue_name(queue)?;
        let keys = QueueKeys::new(queue);
        let mut pipe = redis::pipe();
        pipe.xlen(keys.stream())
            .zcard(keys.delayed())
            // (From '(-inf': not the member that pins its encoding, common.lua.)
            .zcount(keys.leases(), "(-inf", "+inf")
            .zcard(keys.dead())
            .hgetall(keys.counts())
            .cmd("XRANGE")
            .arg(keys.stream())
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1);
        type Head = Vec<(String, Vec<Vec<u8>>)>;
        let (entries, scheduled, processing, dead, counts, head): (
            u64,
            u64,
            u64,
            u64,
            HashMap<String, i64>,
            Head,
        ) = self
            .idempotent(|| async { Ok(pipe.query_async(&mut self.conn()).await?) })
            .await?;
        let count = |s: Status| counts.get(s.as_str()).copied().unwrap_or(0).max(0) as u64;
        // Ready jobs wait in the stream or, with a priority or a group, in lists. A
        // wake-up entry (`d`, no job) is only ever added to an empty stream, so there is
        // at most one, at the head.
        let listed = counts.get("queued").copied().unwrap_or(0).max(0) as u64;
        let bell = head
            .first()
            .is_some_and(|(_, fields)| fields.first().is_some_and(|f| f == b"d"));
        let pending = entries - u64::from(bell && entries > 0);
        Ok(QueueStats {
            queue: queue.to_owned(),
            pending: pending + listed,
            scheduled,
            processing,
            dead,
            success: count(Status::Success),
            failure: count(Status::Failure),
            cancelled: count(Status::Cancelled),
            enqueued: counts.get("enqueued").copied().unwrap_or(0).max(0) as u64,
        })
    }

    /// A stream that yields `()` whenever the job changes (pub/sub; may miss
    /// changes across a reconnect, so callers also re-read on a timer).
    ///
    /// Every watcher of a store shares one subscriber connection: watching
    /// costs Redis a subscription per watched job, not a client per watcher.
    pub async fn job_changes(
        &self,
        queue: &str,
        id: JobId,
    ) -> Result<impl futures::Stream<Item = ()> + Send + 'static + use<>, StoreError> {
        let channel = QueueKeys::new(queue).events(&id.to_string());
        let subscription = self.inner.watchers.subscribe(&channel).await?;
        // Subscribed first, then flagged: no change after the flag can go unannounced.
        // A job gone meanwhile is no error here: the caller's next read finds it gone.
        let word: String = self
            .queue_script(&SCRIPTS.watch, queue, &[&id.to_string()])
            .await?;
        reply::ok_or("watch", &word, "NOT_FOUND")?;
        Ok(futures::stream::unfold(subscription, |mut s| async move {
            s.changed().await.map(|()| ((), s))
        }))
    }

    /// Server facts a worker checks at start: (maxmemory-policy, appendonly, appendfsync).
    pub async fn durability(&self) -> Result<(String, String, String), StoreError> {
        let mut conn = self.conn();
        let mut get = async |name: &str| -> Result<String, StoreError> {
            let pair: Vec<String> = redis::cmd("CONFIG")
                .arg("GET")
                .arg(name)
                .query_async(&mut conn)
                .await?;
            Ok(pair.get(1).cloned().unwrap_or_default())
        };
        Ok((
            get("maxmemory-policy").await?,
            get("appendonly").await?,
            get("appendfsync").await?,
        ))
    }

    /// `INFO <section>` as field → value (for benchmarks and diagnostics).
    pub async fn server_info(&self, section: &str) -> Result<HashMap<String, String>, StoreError> {
        let text: String = redis::cmd("INFO")
            .arg(section)
            .query_async(&mut self.conn())
            .await?;
        Ok(text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect())
    }

    /// `CONFIG RESETSTAT`: zeroes the server's command and CPU statistics.
    pub async fn reset_server_stats(&self) -> Result<(), StoreError> {
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// PING.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        Ok(())
    }
}
