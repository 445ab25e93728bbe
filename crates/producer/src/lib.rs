//! Tether's producer library: the API services use to enqueue and follow jobs.
//!
//! ```no_run
//! use std::time::Duration;
//! use tether_producer::{JobSpec, Producer};
//!
//! # async fn demo() -> Result<(), tether_producer::Error> {
//! let producer = Producer::connect("redis://127.0.0.1:6380").await?;
//! let id = producer
//!     .enqueue(JobSpec::new("import").queue("images").input(&serde_json::json!({"size_mb": 10}))?)
//!     .await?;
//! let job = producer.wait(id, Duration::from_secs(60)).await?;
//! println!("{} finished {:?} with {:?}", job.id, job.status, job.result);
//! # Ok(()) }
//! ```
//!
//! With the `otel` feature, `enqueue` and `enqueue_many` store the W3C context of the
//! OpenTelemetry span current on the calling task with each job (unless the spec sets
//! [`JobSpec::trace()`]); the worker's spans of its attempts continue that trace.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
pub use tether_model::schedule::{CatchUp, Overlap, ScheduleSpec, Trigger};
pub use tether_model::{
    ErrorCode, Job, JobId, JobInput, JobOptions, JobSpec, LimitsPatch, Phase, QueueSettings,
    RetryPolicy, SpecError, StartBy, Status, TraceContext,
};
pub use tether_store::FlowState;

mod bulk;
mod external;
mod queues;
pub use bulk::{BulkAction, Cursor, Found, FoundMany, Walked};
pub use external::ExternalTask;
pub use tether_store::{
    CancelOutcome, Drive, Driven, IndexPos, ListQuery, Page, QueueStats, SortDir, SortKey,
    StoreConfig, Throughput, WorkerInfo,
};
/// A schedule with its firing state (next, last fire time, last job).
pub type Schedule = tether_store::StoredSchedule;
use tether_store::{Store, StoreError};

/// A producer call failed. Classify with the `is_*` methods.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// `wait` gave up before the job finished.
    #[error("timed out waiting for job {0}")]
    WaitTimeout(JobId),
    /// A queue limit out of range; nothing was changed.
    #[error("invalid queue settings: {0}")]
    Settings(#[from] tether_model::SettingsError),
    /// The call is for administrators: a producer scoped to an owner may not make it.
    #[error("NotPermitted: {0}")]
    NotPermitted(&'static str),
}

/// What kind of failure an [`Error`] is: what a caller such as an HTTP API answers
/// from, without knowing the store. The error's text says the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No such job or schedule, or not the caller's; `what` names it.
    NotFound { what: String },
    /// The job's status does not allow the operation.
    InvalidState { status: Status },
    /// The job does not allow the operation (a cancel of a non-cancelable job).
    NotSupported,
    /// The job or schedule spec was refused before anything was written.
    InvalidSpec { message: String },
    /// The encoded input is over the configured limit.
    PayloadTooLarge { size: usize, limit: usize },
    /// A job was due later than the store's horizon allows; nothing was written.
    BeyondHorizon,
    /// The owner has as many unfinished jobs in the queue as its quota; nothing was written.
    QuotaExceeded,
    /// The owner has as many schedules as one owner may have.
    TooManySchedules,
    /// A schedule of that name exists.
    ScheduleExists { name: String },
    /// The call is for administrators.
    NotPermitted,
    /// Redis cannot be reached right now; retrying later may work.
    Unavailable,
    /// Redis is out of memory and refuses writes; retrying later may work.
    StoreFull,
    /// Written, but fewer replicas than required confirmed it in time; resending with
    /// the same idempotency key is safe.
    NotReplicated { confirmed: usize, wanted: usize },
    /// `wait` gave up before the job finished.
    WaitTimeout,
    /// Anything else (a failed script, an unreadable record, a configuration): not
    /// the caller's doing, and nothing a retry would fix.
    Internal,
}

impl Error {
    /// No such job, or not the caller's.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Store(e) if e.is_not_found())
    }
    /// Redis is unreachable right now; retrying later may work.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Store(e) if e.is_retryable())
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Store(e) if e.is_retryable() => ErrorKind::Unavailable,
            Error::Store(e) if e.is_out_of_memory() => ErrorKind::StoreFull,
            Error::Store(e) => match e {
                StoreError::NotFound(what) => ErrorKind::NotFound { what: what.clone() },
                StoreError::InvalidState(status) => ErrorKind::InvalidState { status: *status },
                StoreError::NotSupported => ErrorKind::NotSupported,
                StoreError::Spec(spec) => ErrorKind::InvalidSpec {
                    message: spec.to_string(),
                },
                StoreError::PayloadTooLarge { size, limit } => ErrorKind::PayloadTooLarge {
                    size: *size,
                    limit: *limit,
                },
                StoreError::BeyondHorizon { .. } => ErrorKind::BeyondHorizon,
                StoreError::QuotaExceeded { .. } => ErrorKind::QuotaExceeded,
                StoreError::TooManySchedules { .. } => ErrorKind::TooManySchedules,
                StoreError::ScheduleExists(name) => {
                    ErrorKind::ScheduleExists { name: name.clone() }
                }
                StoreError::NotReplicated { confirmed, wanted } => ErrorKind::NotReplicated {
                    confirmed: *confirmed,
                    wanted: *wanted,
                },
                _ => ErrorKind::Internal,
            },
            Error::Spec(spec) => ErrorKind::InvalidSpec {
                message: spec.to_string(),
            },
            Error::Settings(e) => ErrorKind::InvalidSpec {
                message: e.to_string(),
            },
            Error::WaitTimeout(_) => ErrorKind::WaitTimeout,
            Error::NotPermitted(_) => ErrorKind::NotPermitted,
        }
    }
}

/// What [`Producer::watch`] yields.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The job as it was when watching began.
    Snapshot(Job),
    /// Progress, message, phase or another field changed.
    Progress(Job),
    /// The status changed (and the job is not finished).
    Status(Job),
    /// The job reached a final status; the stream ends after this.
    Finished(Job),
}

impl Event {
    /// The job as this event saw it.
    pub fn job(&self) -> &Job {
        match self {
            Event::Snapshot(j) | Event::Progress(j) | Event::Status(j) | Event::Finished(j) => j,
        }
    }

    /// The event's name as streams show it: `snapshot`, `progress`, `status`, `finished`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Snapshot(_) => "snapshot",
            Event::Progress(_) => "progress",
            Event::Status(_) => "status",
            Event::Finished(_) => "finished",
        }
    }
}

/// A handle for enqueueing and following jobs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Producer {
    store: Store,
    owner: Option<String>,
    /// Where jobs were seen, so `get(id)` needs no search.
    queue_of: Arc<Mutex<HashMap<JobId, String>>>,
}

const QUEUE_CACHE_LIMIT: usize = 100_000;

impl Producer {
    /// Connects with default settings.
    pub async fn connect(url: &str) -> Result<Producer, Error> {
        Self::with_config(StoreConfig::new(url)).await
    }

    pub async fn with_config(config: StoreConfig) -> Result<Producer, Error> {
        Ok(Self::from_store(Store::connect(config).await?))
    }

    pub fn from_store(store: Store) -> Producer {
        Producer {
            store,
            owner: None,
            queue_of: Default::default(),
        }
    }

    /// A producer that acts for `owner`: its jobs get that owner, and it sees only that owner's jobs.
    pub fn for_owner(&self, owner: impl Into<String>) -> Producer {
        Producer {
            owner: Some(owner.into()),
            ..self.clone()
        }
    }

    fn remember(&self, id: JobId, queue: &str) {
        let mut map = self.queue_of.lock().unwrap();
        if map.len() >= QUEUE_CACHE_LIMIT {
            map.clear();
        }
        map.insert(id, queue.to_owned());
    }

    /// The spec as this producer may enqueue it: its owner, and a group of the owner's
    /// own (`<owner>/<group>`), so that one owner's jobs can never take places in
    /// another owner's group limits.
    fn scoped(&self, mut spec: JobSpec) -> JobSpec {
        // The enqueuing span's context travels with the job (when the caller traces).
        #[cfg(feature = "otel")]
        if spec.trace.is_none() {
            spec.trace = tether_model::TraceContext::current();
        }
        if let Some(owner) = &self.owner {
            spec.owner = Some(owner.clone());
            spec.group = self.scoped_group(spec.group);
            self.scope_batch(&mut spec);
        }
        spec
    }

    /// A batch's jobs and `then` (and theirs) scoped as the batch is: its workers enqueue
    /// them later, as they are written in its input, so an owner's batch could otherwise
    /// name another owner, another owner's group, a parent or a schedule. Rewritten in
    /// place (no copy of the input). A batch its worker could not read is left as it is
    /// (it fails without spawning). The worker applies the same rules when it enqueues
    /// them (`JobSpec::owned_by`), for batches stored by other paths; dropping `parent`
    /// here also keeps the input readable (a stored input's job id is JSON text, which
    /// the worker's decoder reads as 16 bytes only).
    fn scope_batch(&self, spec: &mut JobSpec) {
        let Some(owner) = &self.owner else { return };
        let readable =
            tether_model::tree::each_batch_job::<SpecError>(spec, &mut |_| Ok(())).is_ok();
        if !readable {
            return;
        }
        tether_model::tree::each_batch_job_mut(spec, &mut |job| {
            job.insert("owner".into(), owner.clone().into());
            let group = job
                .remove("group")
                .and_then(|g| g.as_str().map(str::to_owned));
            if let Some(group) = self.scoped_group(group) {
                job.insert("group".into(), group.into());
            }
            for set_by_tether in ["parent", "schedule", "fire_time"] {
                job.remove(set_by_tether);
            }
        });
    }

    /// A group as this producer's jobs have it: an owner's behind `<owner>/` (a name
    /// given with that prefix already is taken as it is).
    fn scoped_group(&self, group: Option<String>) -> Option<String> {
        match &self.owner {
            Some(owner) => tether_model::limits::owner_group(owner, group),
            None => group,
        }
    }

    /// A list's or a bulk action's filter as this producer may apply it: its own
    /// owner's jobs only, and a group named as its enqueue named it.
    pub(crate) fn scoped_query(&self, query: &ListQuery) -> ListQuery {
        let mut query = query.clone();
        if self.owner.is_some() {
            query.owner = self.owner.clone();
            query.group = self.scoped_group(query.group);
        }
        query
    }

    /// Enqueues a job. With an idempotency key this owner used before, returns the earlier
    /// job's id (keys are scoped by owner: another owner's key is no match).
    pub async fn enqueue(&self, spec: JobSpec) -> Result<JobId, Error> {
        let spec = self.scoped(spec);
        let done = self.store.enqueue(&spec).await?;
        self.remember(done.id, &spec.queue);
        Ok(done.id)
    }

    /// Enqueues a job and returns its record as created (for an idempotency key seen
    /// before, the earlier job as it is now).
    pub async fn enqueue_returning(&self, spec: JobSpec) -> Result<Job, Error> {
        let spec = self.scoped(spec);
        let done = self.store.enqueue(&spec).await?;
        self.remember(done.id, &spec.queue);
        if done.created && done.created_at_ms > 0 {
            let at = |ms| chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
            return Ok(Job::new_pending(
                done.id,
                &spec,
                at(done.created_at_ms),
                at(done.due_at_ms),
            ));
        }
        // Keys are scoped by owner, so the earlier job is this owner's; should it have
        // expired meanwhile, the answer names no id (it could be no one else's anyway).
        self.get(done.id).await?.ok_or_else(|| {
            StoreError::NotFound("with that idempotency key (it just expired)".into()).into()
        })
    }

    /// Enqueues a batch: a parent with no handler of its own (any worker serving
    /// `then`'s queue runs it) that spawns `jobs` as its children, waits for them all, and
    /// then enqueues `then` exactly once with a summary as its input: `batch` (the parent's
    /// id), `total`, `succeeded`, `failed`, `cancelled`, `failed_ids`. A `then` with an
    /// input object of its own gets the summary added to it as `summary`; any other input
    /// becomes `{summary, input}`. Returns the batch's id; its children and `then` are
    /// this producer's owner's. The jobs travel in the batch's input, so the payload
    /// limit bounds the batch.
    ///
    /// ```no_run
    /// use tether_producer::{JobSpec, Producer};
    /// # async fn demo(producer: &Producer) -> Result<(), tether_producer::Error> {
    /// let resize = |n: u32| JobSpec::new("resize").queue("images").input_json(serde_json::json!({"n": n}));
    /// let batch = producer
    ///     .enqueue_batch((0..100).map(resize).collect(), JobSpec::new("notify"))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_batch(&self, jobs: Vec<JobSpec>, then: JobSpec) -> Result<JobId, Error> {
        let jobs: Vec<JobSpec> = jobs.into_iter().map(|s| self.scoped(s)).collect();
        for spec in &jobs {
            spec.validate()?;
        }
        let then = self.scoped(then);
        then.validate()?;
        let queue = then.queue.clone();
        let input = tether_model::tree::BatchInput { jobs, then };
        let spec = JobSpec::new(tether_model::tree::BATCH_TYPE)
            .queue(queue)
            .input(&input)?;
        self.enqueue(spec).await
    }

    /// Enqueues many jobs in pipelined round trips.
    pub async fn enqueue_many(&self, specs: Vec<JobSpec>) -> Result<Vec<JobId>, Error> {
        let specs: Vec<JobSpec> = specs.into_iter().map(|s| self.scoped(s)).collect();
        let done = self.store.enqueue_many(&specs).await?;
        for (spec, d) in specs.iter().zip(&done) {
            self.remember(d.id, &spec.queue);
        }
        Ok(done.into_iter().map(|d| d.id).collect())
    }

    /// The queue holding `id`.
    async fn locate(&self, id: JobId) -> Result<String, Error> {
        if let Some(q) = self.queue_of.lock().unwrap().get(&id).cloned() {
            return Ok(q);
        }
        let queue = self
            .store
            .find_queue(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        self.remember(id, &queue);
        Ok(queue)
    }

    fn visible(&self, job: &Job) -> bool {
        self.owner
            .as_ref()
            .is_none_or(|o| job.owner.as_ref() == Some(o))
    }

    /// The job, if it exists and is visible to this producer.
    pub async fn get(&self, id: JobId) -> Result<Option<Job>, Error> {
        let queue = match self.locate(id).await {
            Ok(q) => q,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(self
            .store
            .get(&queue, id)
            .await?
            .filter(|j| self.visible(j)))
    }

    /// A page of job summaries (no input or result).
    pub async fn list(&self, query: ListQuery) -> Result<Page, Error> {
        Ok(self.store.list(&self.scoped_query(&query)).await?)
    }

    /// A page of a job's children (full records) in spawn order, after `marker`: what
    /// `GET /v2/tasks?parent=ID` lists. The parent must be visible to this producer.
    pub async fn children(
        &self,
        parent: JobId,
        marker: Option<JobId>,
        limit: usize,
    ) -> Result<Page, Error> {
        let queue = self.locate(parent).await?;
        if self.get(parent).await?.is_none() {
            return Err(StoreError::NotFound(parent.to_string()).into());
        }
        let limit = limit.clamp(1, 1000);
        let after = match marker {
            Some(m) => Some((m, self.locate(m).await?)),
            None => None,
        };
        let after = after.as_ref().map(|(m, q)| (*m, q.as_str()));
        let mut ids = self
            .store
            .child_ids(&queue, parent, after, limit + 1)
            .await?;
        let more = ids.len() > limit;
        ids.truncate(limit);
        let jobs = futures::future::try_join_all(
            ids.iter()
                .map(|(id, q)| async move { self.store.get(q, *id).await }),
        )
        .await?;
        let jobs: Vec<Job> = jobs
            .into_iter()
            .flatten()
            .filter(|j| self.visible(j))
            .collect();
        for (id, q) in &ids {
            self.remember(*id, q);
        }
        Ok(Page {
            next_marker: more.then(|| ids.last().map(|(id, _)| *id)).flatten(),
            jobs,
        })
    }

    /// CancelTask: pending jobs are cancelled at once; running ones stop at their worker's
    /// next heartbeat. The job's whole subtree is cancelled with it, level by level.
    pub async fn cancel(&self, id: JobId) -> Result<CancelOutcome, Error> {
        let queue = self.locate(id).await?;
        // The cancel records the cascade first; a canceller that dies before it is
        // marked done leaves the rest of it to the workers' maintenance.
        let outcome = self.store.cancel(&queue, id, self.owner.as_deref()).await?;
        self.store
            .cancel_subtree(&queue, id, self.owner.as_deref(), false)
            .await?;
        self.store.cascade_done(&queue, id).await?;
        Ok(outcome)
    }

    /// CancelTask even for a job created with `cancelable: false`: for administrators,
    /// so only an unscoped producer may (`NotPermitted` otherwise). A running job stops at
    /// its worker's next heartbeat, as with any cancel.
    pub async fn force_cancel(&self, id: JobId) -> Result<CancelOutcome, Error> {
        if self.owner.is_some() {
            return Err(Error::NotPermitted(
                "only administrators may cancel a non-cancelable job",
            ));
        }
        let queue = self.locate(id).await?;
        let outcome = self.store.cancel_with(&queue, id, None, true).await?;
        self.store.cancel_subtree(&queue, id, None, true).await?;
        self.store.cascade_done(&queue, id).await?;
        Ok(outcome)
    }

    /// Re-queues a dead job for a fresh run.
    pub async fn retry(&self, id: JobId) -> Result<(), Error> {
        let queue = self.locate(id).await?;
        Ok(self
            .store
            .retry_dead(&queue, id, self.owner.as_deref())
            .await?)
    }

    pub async fn set_name(&self, id: JobId, name: &str) -> Result<(), Error> {
        let queue = self.locate(id).await?;
        Ok(self
            .store
            .set_labels(&queue, id, self.owner.as_deref(), Some(name), None)
            .await?)
    }

    pub async fn set_description(&self, id: JobId, description: &str) -> Result<(), Error> {
        let queue = self.locate(id).await?;
        Ok(self
            .store
            .set_labels(&queue, id, self.owner.as_deref(), None, Some(description))
            .await?)
    }

    /// Counts per queue (all known queues when `queues` is empty).
    pub async fn stats(&self, queues: &[String]) -> Result<Vec<QueueStats>, Error> {
        let queues = if queues.is_empty() {
            self.store.queues().await?
        } else {
            queues.to_vec()
        };
        let mut out = Vec::with_capacity(queues.len());
        for q in queues {
            out.push(self.store.stats(&q).await?);
        }
        Ok(out)
    }

    /// Live workers.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        Ok(self.store.workers().await?)
    }

    /// Every known queue, sorted.
    pub async fn queues(&self) -> Result<Vec<String>, Error> {
        Ok(self.store.queues().await?)
    }

    /// Checks that a queue's records, stream, indexes and counters agree (read-only,
    /// in bounded steps, safe while workers run); returns the problems found, none when
    /// consistent. For administrators: the problems name any owner's jobs, so a producer
    /// scoped to an owner may not (`NotPermitted`).
    pub async fn check_consistency(&self, queue: &str) -> Result<Vec<String>, Error> {
        if self.owner.is_some() {
            return Err(Error::NotPermitted(
                "only administrators may check a queue's consistency",
            ));
        }
        Ok(self.store.check_consistency(queue).await?)
    }

    /// Puts back what a process of an older storage layout left behind during a
    /// rolling upgrade (docs/OPERATIONS.md): pending jobs whose stream entry it
    /// trimmed are made ready again, and jobs it ended without indexing them are
    /// indexed. For administrators, like [`Producer::check_consistency`].
    pub async fn mend(&self, queue: &str) -> Result<tether_store::Mended, Error> {
        if self.owner.is_some() {
            return Err(Error::NotPermitted("only administrators may mend a queue"));
        }
        Ok(self.store.mend(queue).await?)
    }

    /// Whether Redis answers (`PING`).
    pub async fn ping(&self) -> Result<(), Error> {
        Ok(self.store.ping().await?)
    }

    /// The job's changes: a snapshot, then every observed change, ending with `Finished`.
    ///
    /// Changes are pushed by Redis pub/sub; a re-read every second also covers
    /// messages lost across a reconnect. Intermediate values may be coalesced.
    pub async fn watch(
        &self,
        id: JobId,
    ) -> Result<impl Stream<Item = Result<Event, Error>> + Send + 'static + use<>, Error> {
        let queue = self.locate(id).await?;
        // Visible to this producer before the job is marked watched (a write: a plain
        // pending job gets its record), then read again once subscribed, so no change
        // falls between the first read and the subscription.
        if self.get(id).await?.is_none() {
            return Err(StoreError::NotFound(id.to_string()).into());
        }
        let changes = self.store.job_changes(&queue, id).await?.boxed();
        let first = self
            .get(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        struct State {
            producer: Producer,
            id: JobId,
            changes: futures::stream::BoxStream<'static, ()>,
            first: Option<Job>,
            last: Option<Job>,
            done: bool,
        }
        let state = State {
            producer: self.clone(),
            id,
            changes,
            first: Some(first),
            last: None,
            done: false,
        };
        Ok(futures::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            loop {
                let read = match st.first.take() {
                    Some(first) => Ok(Some(first)),
                    None => {
                        // Wake on a change announcement or after a second, whichever comes first.
                        let _ =
                            tokio::time::timeout(Duration::from_secs(1), st.changes.next()).await;
                        st.producer.get(st.id).await
                    }
                };
                let job = match read {
                    Ok(Some(job)) => job,
                    Ok(None) => {
                        return Some((
                            Err(StoreError::NotFound(st.id.to_string()).into()),
                            State { done: true, ..st },
                        ));
                    }
                    Err(e) if e.is_unavailable() => continue,
                    Err(e) => return Some((Err(e), State { done: true, ..st })),
                };
                let event = match &st.last {
                    None if job.status.is_final() => Event::Finished(job.clone()),
                    None => Event::Snapshot(job.clone()),
                    Some(prev) if prev == &job => continue,
                    Some(_) if job.status.is_final() => Event::Finished(job.clone()),
                    Some(prev) if prev.status != job.status => Event::Status(job.clone()),
                    Some(_) => Event::Progress(job.clone()),
                };
                st.done = matches!(event, Event::Finished(_));
                st.last = Some(job);
                return Some((Ok(event), st));
            }
        }))
    }

    /// Creates a schedule owned by this producer's owner: from its next fire time on,
    /// workers enqueue `spec.job` once per fire time (see [`ScheduleSpec`]).
    ///
    /// ```no_run
    /// # async fn demo(producer: tether_producer::Producer) -> Result<(), tether_producer::Error> {
    /// use tether_producer::{JobSpec, ScheduleSpec, Trigger};
    /// let nightly = ScheduleSpec::new(
    ///     "nightly-report",
    ///     JobSpec::new("report").queue("reports"),
    ///     Trigger::cron("0 3 * * *", "Europe/Berlin")?,
    /// );
    /// let schedule = producer.create_schedule(nightly).await?;
    /// println!("first run at {:?}", schedule.next_fire_time);
    /// # Ok(()) }
    /// ```
    pub async fn create_schedule(&self, spec: ScheduleSpec) -> Result<Schedule, Error> {
        Ok(self
            .store
            .put_schedule(self.owner.as_deref(), &spec, tether_store::PutMode::Create)
            .await?)
    }

    /// Replaces an existing schedule's job, trigger and policies; it keeps its history
    /// and fires next at the new trigger's next time.
    pub async fn update_schedule(&self, spec: ScheduleSpec) -> Result<Schedule, Error> {
        Ok(self
            .store
            .put_schedule(self.owner.as_deref(), &spec, tether_store::PutMode::Replace)
            .await?)
    }

    /// This owner's schedules by name (an unscoped producer: every owner's).
    pub async fn schedules(&self) -> Result<Vec<Schedule>, Error> {
        Ok(self.store.schedules(self.owner.as_deref()).await?)
    }

    /// One schedule of this owner.
    pub async fn schedule(&self, name: &str) -> Result<Schedule, Error> {
        self.store
            .schedule(self.owner.as_deref(), name)
            .await?
            .ok_or_else(|| StoreError::NotFound(name.to_owned()).into())
    }

    /// Stops a schedule from firing until resumed.
    pub async fn pause_schedule(&self, name: &str) -> Result<(), Error> {
        Ok(self
            .store
            .pause_schedule(self.owner.as_deref(), name)
            .await?)
    }

    /// Resumes a paused schedule at its next fire time from now; what it would have
    /// fired while paused is not fired.
    pub async fn resume_schedule(&self, name: &str) -> Result<(), Error> {
        Ok(self
            .store
            .resume_schedule(self.owner.as_deref(), name)
            .await?)
    }

    /// Deletes a schedule; the jobs it fired stay.
    pub async fn delete_schedule(&self, name: &str) -> Result<(), Error> {
        Ok(self
            .store
            .delete_schedule(self.owner.as_deref(), name)
            .await?)
    }

    /// Fires a schedule now, outside its times (its overlap policy does not apply);
    /// the job records now as its fire time. Returns the job's id.
    pub async fn trigger_now(&self, name: &str) -> Result<JobId, Error> {
        let owner = self.owner.as_deref();
        let schedule = self.schedule(name).await?;
        let now = self.store.redis_now().await?;
        let id = tether_model::schedule::firing_id(owner, name, now);
        let job = schedule.spec.job.clone().firing_of(name, now);
        self.store.enqueue_as(&job, id).await?;
        self.remember(id, &job.queue);
        self.store.record_firing(owner, name, now, id).await?;
        Ok(id)
    }

    /// Waits until the job finishes and returns it; `WaitTimeout` after `timeout`.
    pub async fn wait(&self, id: JobId, timeout: Duration) -> Result<Job, Error> {
        let follow = async {
            let mut events = std::pin::pin!(self.watch(id).await?);
            while let Some(event) = events.next().await {
                if let Event::Finished(job) = event? {
                    return Ok(job);
                }
            }
            Err(Error::Store(StoreError::NotFound(id.to_string())))
        };
        tokio::time::timeout(timeout, follow)
            .await
            .unwrap_or(Err(Error::WaitTimeout(id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(e: impl Into<Error>) -> ErrorKind {
        e.into().kind()
    }

    #[test]
    fn store_failures_have_the_kind_callers_answer_from() {
        assert_eq!(
            kind(StoreError::NotFound("j".into())),
            ErrorKind::NotFound { what: "j".into() }
        );
        assert_eq!(
            kind(StoreError::InvalidState(Status::Success)),
            ErrorKind::InvalidState {
                status: Status::Success
            }
        );
        assert_eq!(kind(StoreError::NotSupported), ErrorKind::NotSupported);
        assert_eq!(
            kind(StoreError::QuotaExceeded {
                pending: 3,
                quota: 3
            }),
            ErrorKind::QuotaExceeded
        );
        assert_eq!(
            kind(StoreError::ScheduleExists("nightly".into())),
            ErrorKind::ScheduleExists {
                name: "nightly".into()
            }
        );
        assert_eq!(
            kind(StoreError::NotReplicated {
                confirmed: 0,
                wanted: 1
            }),
            ErrorKind::NotReplicated {
                confirmed: 0,
                wanted: 1
            }
        );
        assert_eq!(
            kind(StoreError::Reply("renew answered \"WHATEVER\"".into())),
            ErrorKind::Internal
        );
    }

    #[test]
    fn redis_failures_are_unavailable_or_full() {
        let io =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(kind(StoreError::Redis(io)), ErrorKind::Unavailable);
        let full = redis::make_extension_error(
            "OOM".into(),
            Some("command not allowed when used memory > 'maxmemory'.".into()),
        );
        assert_eq!(kind(StoreError::Redis(full)), ErrorKind::StoreFull);
    }

    #[test]
    fn producer_refusals_have_their_kind() {
        assert_eq!(
            Error::NotPermitted("admins only").kind(),
            ErrorKind::NotPermitted
        );
        assert_eq!(
            Error::WaitTimeout(JobId::new()).kind(),
            ErrorKind::WaitTimeout
        );
    }
}
