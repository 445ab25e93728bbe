//! What a running handler can see and do.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether_model::{ErrorCode, JobId, JobSpec, Phase, progress};
use tether_store::{Child, Claimed, Lease, LeaseError, RenewStatus, Spawned, Store};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::JobError;
use crate::metrics::Metrics;
use crate::retry::with_store_retries;
use crate::trace::AttemptTrace;

/// Progress writes closer together than this are coalesced (the last one still lands
/// with the next write or the outcome), so a chatty handler cannot flood Redis.
const PROGRESS_MIN_INTERVAL: Duration = Duration::from_millis(100);

/// An in-flight job as the heartbeat sees it.
#[derive(Debug)]
pub(crate) struct Slot {
    pub lease: Lease,
    pub cancel: CancellationToken,
    pub lost: CancellationToken,
    /// Local time at which the last confirmed renewal was *sent*: the lease cannot
    /// lapse in Redis before then + lease_ttl (but for clock steps on the Redis host,
    /// which the self-fence's margin covers when small).
    pub renewed_at: Mutex<Instant>,
    /// The lease deadline Redis last reported (ms, Redis clock), for the registration.
    pub deadline_ms: AtomicI64,
}

impl Slot {
    pub(crate) fn new(lease: Lease, claimed_at: Instant) -> Self {
        Slot {
            lease,
            cancel: CancellationToken::new(),
            lost: CancellationToken::new(),
            renewed_at: Mutex::new(claimed_at),
            deadline_ms: AtomicI64::new(0),
        }
    }

    /// Applies a renewal answer (heartbeat or progress report, both of which move the
    /// lease's deadline in Redis) for a request sent at `sent_at`.
    pub(crate) fn on_renewal(&self, status: RenewStatus, sent_at: Instant) {
        match status {
            RenewStatus::CancelRequested => {
                self.renewed(sent_at);
                self.cancel.cancel();
            }
            RenewStatus::Renewed => self.renewed(sent_at),
            // Lost, or an answer this worker does not know: stop and write nothing.
            _ => self.lost.cancel(),
        }
    }

    /// Applies the answer to a write that does not move the lease's deadline (a
    /// checkpoint): it can report a loss or a cancel, but it confirms no renewal.
    pub(crate) fn on_write(&self, status: RenewStatus) {
        match status {
            RenewStatus::CancelRequested => self.cancel.cancel(),
            RenewStatus::Renewed => {}
            // Lost, or an answer this worker does not know: stop and write nothing.
            _ => self.lost.cancel(),
        }
    }

    /// Answers can arrive out of order: the fence only ever moves forward.
    fn renewed(&self, sent_at: Instant) {
        let mut at = self.renewed_at.lock().unwrap();
        *at = (*at).max(sent_at);
    }
}

/// The running job's handle on Tether: identity, progress, cancellation, lease.
///
/// ```no_run
/// # async fn h(ctx: &tether_worker::JobContext) -> Result<(), tether_worker::JobError> {
/// for step in 0..10 {
///     if ctx.is_cancelled() { break; }           // cooperative cancel
///     ctx.set_progress(step * 10, format!("step {step}")).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct JobContext {
    inner: Arc<ContextInner>,
}

#[derive(Debug)]
struct ContextInner {
    store: Store,
    claimed: Claimed,
    slot: Arc<Slot>,
    lease_ttl: Duration,
    claimed_at: Instant,
    phase: Mutex<Phase>,
    last_progress: Mutex<Option<Instant>>,
    metrics: Metrics,
    /// Children spawned by this attempt: the next one's index.
    spawned: AtomicU64,
    trace: AttemptTrace,
}

impl JobContext {
    pub(crate) fn new(
        store: Store,
        claimed: Claimed,
        slot: Arc<Slot>,
        lease_ttl: Duration,
        metrics: Metrics,
        trace: AttemptTrace,
    ) -> Self {
        let phase = if claimed.checkpoint.is_some() && claimed.phase == Some(Phase::Check) {
            Phase::Check
        } else {
            Phase::Handle
        };
        JobContext {
            inner: Arc::new(ContextInner {
                store,
                claimed,
                slot,
                lease_ttl,
                claimed_at: Instant::now(),
                phase: Mutex::new(phase),
                last_progress: Mutex::new(None),
                metrics,
                spawned: AtomicU64::new(0),
                trace,
            }),
        }
    }

    pub fn id(&self) -> JobId {
        self.inner.claimed.lease.id
    }

    pub fn queue(&self) -> &str {
        &self.inner.claimed.lease.queue
    }

    pub fn job_type(&self) -> &str {
        &self.inner.claimed.job_type
    }

    /// This attempt's number, from 1. Pass `(id, attempt)` downstream to make side effects idempotent.
    pub fn attempt(&self) -> u32 {
        self.inner.claimed.attempts
    }

    pub fn max_attempts(&self) -> u32 {
        self.inner.claimed.max_attempts
    }

    /// The phase the job is in.
    pub fn phase(&self) -> Phase {
        *self.inner.phase.lock().unwrap()
    }

    /// A producer asked to cancel. The runtime stops the handler at its next await
    /// regardless; checking this lets a handler stop at a clean point first.
    pub fn is_cancelled(&self) -> bool {
        self.inner.slot.cancel.is_cancelled()
    }

    /// Completes when a cancel is requested.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.inner.slot.cancel.cancelled()
    }

    /// Completes when the lease is lost (another worker owns the job now).
    pub fn lease_lost(&self) -> WaitForCancellationFuture<'_> {
        self.inner.slot.lost.cancelled()
    }

    /// Reports progress (clamped to 0–100) and what is happening; renews the lease too.
    ///
    /// Writes closer than 100 ms apart are coalesced. Errors only when the lease is lost.
    pub async fn set_progress(&self, pct: i64, message: impl AsRef<str>) -> Result<(), JobError> {
        let pct = progress::clamp(pct);
        self.inner.metrics.progress.observe(f64::from(pct) / 100.0);
        {
            let mut last = self.inner.last_progress.lock().unwrap();
            if last.is_some_and(|t| t.elapsed() < PROGRESS_MIN_INTERVAL) && pct < 100 {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        // ETA on the Redis clock: the attempt's start plus locally measured elapsed time.
        let started_ms = self.inner.claimed.started_at_ms;
        let now_ms = started_ms + self.inner.claimed_at.elapsed().as_millis() as i64;
        let eta = progress::eta(ms(started_ms), ms(now_ms), pct).map(|t| t.timestamp_millis());
        let sent_at = Instant::now();
        let lease = &self.inner.claimed.lease;
        match self
            .inner
            .store
            .progress(
                lease,
                self.inner.lease_ttl,
                pct,
                Some(message.as_ref()),
                eta,
            )
            .await
        {
            Ok(status) => {
                self.inner.slot.on_renewal(status, sent_at);
                if status == RenewStatus::Lost {
                    return Err(lost());
                }
                Ok(())
            }
            Err(e) => {
                // Progress is best effort; the heartbeat keeps the lease.
                self.inner
                    .metrics
                    .redis_errors
                    .with_label_values(&["progress"])
                    .inc();
                tracing::debug!(job = %self.id(), error = %e, "progress not recorded");
                Ok(())
            }
        }
    }

    /// Spawns a child job (any queue): it is identified by this job and its index among
    /// the children this run spawns (the first is `#0`), so a run after a crash that
    /// spawns the same children in the same order spawns none twice. The child gets this
    /// job's owner and the tree's root. See [`spawn_keyed`](Self::spawn_keyed) for
    /// children that are not spawned in a fixed order.
    ///
    /// ```no_run
    /// # use tether_worker::{JobContext, JobError};
    /// # async fn demo(ctx: &JobContext) -> Result<(), JobError> {
    /// use tether_model::JobSpec;
    /// for disk in ["a", "b"] {
    ///     let spec = JobSpec::new("copy").queue("disks").input(&disk).unwrap();
    ///     ctx.spawn(spec).await?;
    /// }
    /// let children = ctx.children().await?;
    /// # Ok(()) }
    /// ```
    pub async fn spawn(&self, spec: JobSpec) -> Result<JobId, JobError> {
        let index = self.inner.spawned.fetch_add(1, Ordering::Relaxed);
        self.spawn_at(&format!("#{index}"), index, spec).await
    }

    /// Spawns a child identified by this job and `key` (1-256 bytes): spawning the same
    /// key again, in this run or a later one, spawns nothing and returns the same id.
    pub async fn spawn_keyed(&self, key: &str, spec: JobSpec) -> Result<JobId, JobError> {
        let index = self.inner.spawned.fetch_add(1, Ordering::Relaxed);
        self.spawn_at(key, index, spec).await
    }

    async fn spawn_at(&self, key: &str, index: u64, spec: JobSpec) -> Result<JobId, JobError> {
        // The child continues this job's trace: its attempts are spans below the step
        // that spawns it (the handler runs in that step's context).
        #[cfg(feature = "otel")]
        let spec = match spec.trace {
            None if self.inner.trace.is_on() => JobSpec {
                trace: tether_model::TraceContext::current(),
                ..spec
            },
            _ => spec,
        };
        let lease = &self.inner.claimed.lease;
        let spawned = with_store_retries(&self.inner.slot.lost, || async {
            match self
                .inner
                .store
                .spawn(lease, key, index, spec.clone())
                .await
            {
                Err(LeaseError::Store(e)) => Err(e),
                Err(_) => Ok(None), // the lease was lost
                Ok(spawned) => Ok(Some(spawned)),
            }
        })
        .await;
        match spawned {
            Some(Ok(Some(Spawned { id, .. }))) => Ok(id),
            Some(Ok(None)) | None => Err(lost()),
            Some(Err(e)) if e.is_retryable() => {
                Err(JobError::transient(format!("spawn failed: {e}")))
            }
            Some(Err(e)) => Err(JobError::fatal(format!("spawn refused: {e}"))),
        }
    }

    /// Cancels this job's unfinished children and their subtrees (pending ones at once,
    /// running ones at their next heartbeat); returns how many.
    pub async fn cancel_children(&self) -> Result<usize, JobError> {
        self.inner
            .store
            .cancel_subtree(self.queue(), self.id(), None, true)
            .await
            .map_err(|e| JobError::transient(format!("cancelling children failed: {e}")))
    }

    /// The fan-in step of a parent waiting for its children (call it from
    /// `check_complete`): reports their rolled-up progress as its own, and answers the
    /// children once every one is final (`None` before). With
    /// [`FailurePolicy::FailFast`](tether_model::tree::FailurePolicy), a child that did
    /// not succeed cancels the others and fails the parent at once (`ChildFailed`).
    ///
    /// ```no_run
    /// # use tether_worker::{Check, JobContext, JobError};
    /// # async fn check(ctx: &JobContext) -> Result<Check<usize>, JobError> {
    /// use tether_model::tree::FailurePolicy;
    /// Ok(match ctx.fan_in(FailurePolicy::WaitAll).await? {
    ///     Some(children) => Check::Done(children.len()),
    ///     None => Check::Pending,
    /// })
    /// # }
    /// ```
    pub async fn fan_in(
        &self,
        policy: tether_model::tree::FailurePolicy,
    ) -> Result<Option<Vec<Child>>, JobError> {
        let children = self.children().await?;
        let finished = children.iter().filter(|c| c.is_final()).count();
        let unsuccessful: Vec<&Child> = children
            .iter()
            .filter(|c| c.is_final() && c.status != Some(tether_model::Status::Success))
            .collect();
        if policy == tether_model::tree::FailurePolicy::FailFast && !unsuccessful.is_empty() {
            let failed = unsuccessful[0].id;
            self.cancel_children().await?;
            return Err(JobError::fatal(format!(
                "child {failed} did not succeed; the other children were cancelled"
            ))
            .with_code("ChildFailed"));
        }
        self.set_progress(
            i64::from(Child::rolled_up(&children)),
            format!("{finished} of {} children finished", children.len()),
        )
        .await?;
        Ok((finished == children.len()).then_some(children))
    }

    /// Enqueues `spec` under `id` (derived from this job, so a run after a crash finds
    /// it written and enqueues nothing): a job that follows this one, not a child.
    pub async fn enqueue_once(&self, spec: JobSpec, id: JobId) -> Result<(), JobError> {
        let store = &self.inner.store;
        match with_store_retries(&self.inner.slot.lost, || store.enqueue_as(&spec, id)).await {
            Some(Ok(_)) => Ok(()),
            None => Err(lost()),
            Some(Err(e)) if e.is_retryable() => {
                Err(JobError::transient(format!("enqueue failed: {e}")))
            }
            Some(Err(e)) => Err(JobError::fatal(format!("enqueue refused: {e}"))),
        }
    }

    /// This job's owner (the tenant that created it), `None` for a job created without
    /// one. Read from the store, so it costs a round trip; a job whose record is gone
    /// (deleted after its lease lapsed) answers as a lost lease.
    ///
    /// ```no_run
    /// # async fn demo(ctx: &tether_worker::JobContext) -> Result<(), tether_worker::JobError> {
    /// let follow_up = tether_model::JobSpec::new("notify");
    /// let follow_up = match ctx.owner().await? {
    ///     Some(owner) => follow_up.owner(owner),
    ///     None => follow_up,
    /// };
    /// # Ok(()) }
    /// ```
    pub async fn owner(&self) -> Result<Option<String>, JobError> {
        let store = &self.inner.store;
        let read = || store.owner_of(self.queue(), self.id());
        match with_store_retries(&self.inner.slot.lost, read).await {
            Some(Ok(Some(owner))) => Ok(owner),
            Some(Ok(None)) => Err(lost()),
            None => Err(lost()),
            Some(Err(e)) => Err(JobError::transient(format!(
                "reading the owner failed: {e}"
            ))),
        }
    }

    /// This job's children in spawn order, with their status, progress and weight.
    pub async fn children(&self) -> Result<Vec<Child>, JobError> {
        self.inner
            .store
            .children(self.queue(), self.id())
            .await
            .map_err(|e| JobError::transient(format!("reading children failed: {e}")))
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        *self.inner.phase.lock().unwrap() = phase;
    }

    pub(crate) fn trace(&self) -> &AttemptTrace {
        &self.inner.trace
    }

    pub(crate) fn raw_input(&self) -> &[u8] {
        &self.inner.claimed.input
    }

    /// The checkpoint to resume from, when an earlier attempt got past `handle`.
    pub(crate) fn resume_checkpoint(&self) -> Option<&[u8]> {
        match self.inner.claimed.phase {
            Some(Phase::Check) => self.inner.claimed.checkpoint.as_deref(),
            _ => None,
        }
    }

    /// Saves phase and progress object, retrying through Redis hiccups while the lease lasts.
    pub(crate) async fn checkpoint(&self, phase: Phase, object: &[u8]) -> Result<(), JobError> {
        let lease = &self.inner.claimed.lease;
        let status = with_store_retries(&self.inner.slot.lost, || {
            self.inner.store.checkpoint(lease, phase, object)
        })
        .await;
        match status {
            Some(Ok(status)) => {
                self.inner.slot.on_write(status);
                if status == RenewStatus::Lost {
                    Err(lost())
                } else {
                    Ok(())
                }
            }
            Some(Err(e)) => Err(JobError::transient(format!("checkpoint failed: {e}"))),
            None => Err(lost()),
        }
    }
}

fn ms(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn lost() -> JobError {
    JobError::reserved(ErrorCode::LeaseExpired, true, "the lease was lost")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(claimed_at: Instant) -> Slot {
        let lease = Lease {
            queue: "q".into(),
            id: JobId::new(),
            token: "1.0".parse().unwrap(),
        };
        Slot::new(lease, claimed_at)
    }

    #[test]
    fn a_checkpoint_confirms_no_renewal() {
        let claimed = Instant::now();
        let s = slot(claimed);
        // A checkpoint does not move the lease's deadline in Redis, so it must not move
        // the self-fence either.
        s.on_write(RenewStatus::Renewed);
        assert_eq!(*s.renewed_at.lock().unwrap(), claimed);
        s.on_write(RenewStatus::CancelRequested);
        assert!(s.cancel.is_cancelled());
        assert_eq!(*s.renewed_at.lock().unwrap(), claimed);
        s.on_write(RenewStatus::Lost);
        assert!(s.lost.is_cancelled());
    }

    #[test]
    fn a_late_answer_never_moves_the_fence_back() {
        let claimed = Instant::now();
        let s = slot(claimed);
        let later = claimed + Duration::from_millis(500);
        s.on_renewal(RenewStatus::Renewed, later);
        s.on_renewal(RenewStatus::Renewed, claimed + Duration::from_millis(100));
        assert_eq!(*s.renewed_at.lock().unwrap(), later);
    }
}
